"""Writing a file in a forked child process, so that the live threads never wait for it.

Saving a long take (mido builds every message in Python: about 30 ms per 1000 events) takes
the GIL for seconds, and the worker thread, which needs it between its numpy calls, falls
behind. A child made by ``fork`` has a copy of the events and its own interpreter: it writes
and exits, on the other core. Only the main thread starts, polls and waits for it; one
child at a time. Where there is no ``fork`` (Windows), the caller writes itself.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from livepitch.errors import first_line

MAX_MESSAGE_BYTES = 4096
STOP_WAIT_S = 10.0
"""Longest a stop waits for a save in progress before ending it [s]."""


@dataclass(frozen=True)
class Saved:
    """A child's save that ended: what it saved, whether it failed and why, its CPU time."""

    label: int
    error: str | None
    cpu_s: float


class BackgroundSave:
    """At most one child writing at a time; ``poll`` reaps it (main thread only)."""

    def __init__(self) -> None:
        self._pid: int | None = None
        self._label = 0
        self._messages: int | None = None  # the read end of the child's error pipe

    @staticmethod
    def available() -> bool:
        """Whether this platform can fork."""
        return hasattr(os, "fork")

    @property
    def busy(self) -> bool:
        """A child is still writing (or has not been reaped yet)."""
        return self._pid is not None

    def start(self, write: Callable[[], None], label: int) -> None:
        """Fork a child that calls ``write`` and exits; ``label`` comes back from ``poll``.

        In the child, anything ``write`` raises becomes the save's error; nothing else of
        this process runs there (``os._exit``: no exit handlers, no buffered output twice).
        """
        assert self._pid is None, "one save at a time"
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child
            status = 0
            try:
                os.close(read_end)
                try:
                    write()
                except BaseException as err:
                    status = 1
                    os.write(write_end, first_line(err).encode("utf-8", "replace")[:MAX_MESSAGE_BYTES])
            finally:
                os._exit(status)
        os.close(write_end)
        self._pid, self._label, self._messages = pid, label, read_end

    def poll(self, wait_s: float = 0.0) -> Saved | None:
        """The save that ended since the last call, or None. ``wait_s``: wait that long for a
        running one, then end it (a child stuck on a stalled disk must not hold up a stop)."""
        if self._pid is None:
            return None
        deadline_s = time.monotonic() + wait_s
        while True:
            pid, status, usage = os.wait4(self._pid, os.WNOHANG)
            if pid != 0 or time.monotonic() >= deadline_s:
                break
            time.sleep(0.01)
        if pid == 0:
            if wait_s <= 0.0:
                return None
            os.kill(self._pid, signal.SIGKILL)
            pid, status, usage = os.wait4(self._pid, 0)
        self._pid = None
        assert self._messages is not None
        try:
            message = os.read(self._messages, MAX_MESSAGE_BYTES).decode("utf-8", "replace")
        finally:
            os.close(self._messages)
            self._messages = None
        error = None
        if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL and not message:
            error = f"the save did not finish within {wait_s:g} s (a stalled disk?)"
        elif not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
            error = message or f"the saving process ended with status {status}"
        return Saved(self._label, error, usage.ru_utime + usage.ru_stime)
