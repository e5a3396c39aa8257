"""Logging to stderr: plain lines for a person, JSON lines for a service manager."""

from __future__ import annotations

import json
import logging
import sys
import time

from livepitch.errors import LivepitchError
from livepitch.status import StatusLine


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(
            {
                "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                + f".{int(record.msecs):03d}Z",
                "level": record.levelname.lower(),
                "logger": record.name,
                "message": record.getMessage(),
            }
        )


class _StatusAwareHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Clears the status line before writing a log line."""

    def __init__(self, status_line: StatusLine | None) -> None:
        super().__init__(sys.stderr)
        self.status_line = status_line

    def emit(self, record: logging.LogRecord) -> None:
        if self.status_line is not None:
            self.status_line.clear()
        super().emit(record)


def configure_logging(level: str, as_json: bool, status_line: StatusLine | None = None) -> None:
    """Send livepitch's log records to stderr at ``level`` (debug/info/warning/error)."""
    handler = _StatusAwareHandler(status_line)
    handler.setFormatter(
        JsonFormatter() if as_json else logging.Formatter("livepitch: %(levelname)s: %(message)s")
    )
    logger = logging.getLogger("livepitch")
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False


def report_error(err: LivepitchError) -> None:
    """The one error line: through the JSON log handler once ``--log-json`` set one up."""
    handlers = logging.getLogger("livepitch").handlers
    if any(isinstance(handler.formatter, JsonFormatter) for handler in handlers):
        logging.getLogger("livepitch").error("%s", err)
        return
    print(f"livepitch: error: {err}", file=sys.stderr)
