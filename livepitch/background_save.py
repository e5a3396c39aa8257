"""Writing a file in a forked child process, so that the live threads never wait for it.

Saving a long take (mido builds every message in Python: about 30 ms per 1000 events) takes
the GIL for seconds, and the worker thread, which needs it between its numpy calls, falls
behind. A child made by ``fork`` has a copy of the events and its own interpreter: it writes
and exits, on the other core. Only the main thread starts, polls and ends it; one child at a
time. Where there is no ``fork`` (Windows), or it fails (no memory, no more processes), the
caller writes itself.

The child tells the parent through a pipe, one line each: the temporary file it writes
(``temporary<TAB>path``, so that a child ended early leaves none behind) and why it failed
(``error<TAB>text``).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from livepitch.errors import first_line

MAX_MESSAGE_BYTES = 8192
REAP_AFTER_KILL_S = 1.0
"""How long an ended child is waited for (one stuck in the kernel on a stalled disk is left) [s]."""

Announce = Callable[[Path], None]
"""What the child calls with the temporary file it is about to write."""


@dataclass(frozen=True)
class Saved:
    """A child's save that ended: what it saved, why it failed (None: it did not), whether it
    was ended before it finished, its CPU time [s]."""

    label: int
    error: str | None
    cancelled: bool
    cpu_s: float


class BackgroundSave:
    """At most one child writing at a time; ``poll`` reaps it (main thread only)."""

    def __init__(self) -> None:
        self._pid: int | None = None
        self._label = 0
        self._messages: int | None = None  # the read end of the child's pipe

    @staticmethod
    def available() -> bool:
        """Whether this platform can fork."""
        return hasattr(os, "fork")

    @property
    def busy(self) -> bool:
        """A child is still writing (or has not been reaped yet)."""
        return self._pid is not None

    def start(self, write: Callable[[Announce], None], label: int) -> bool:
        """Fork a child that calls ``write(announce)`` and exits; ``label`` comes back from
        ``poll``. False (nothing started) if the system refused to fork.

        In the child, anything ``write`` raises becomes the save's error; nothing else of
        this process runs there (``os._exit``: no exit handlers, no buffered output twice).
        """
        assert self._pid is None, "one save at a time"
        read_end, write_end = os.pipe()
        try:
            pid = os.fork()
        except OSError:
            os.close(read_end)
            os.close(write_end)
            return False
        if pid == 0:  # the child
            status = 0
            try:
                os.close(read_end)

                def announce(temporary: Path) -> None:
                    os.write(write_end, f"temporary\t{temporary}\n".encode("utf-8", "surrogateescape"))

                try:
                    write(announce)
                except BaseException as err:
                    status = 1
                    os.write(write_end, f"error\t{first_line(err)}\n".encode("utf-8", "replace"))
            finally:
                os._exit(status)
        os.close(write_end)
        self._pid, self._label, self._messages = pid, label, read_end
        return True

    def poll(self, wait_s: float = 0.0, end: bool = False) -> Saved | None:
        """The save that ended since the last call, or None. ``wait_s``: wait that long for a
        running one; ``end``: then end it (a stop does not wait for a save it supersedes, nor
        for a child stuck on a stalled disk), removing its temporary file."""
        if self._pid is None:
            return None
        found = self._wait(self._pid, wait_s)
        cancelled = False
        if found is None:
            if not end:
                return None
            cancelled = True
            os.kill(self._pid, signal.SIGKILL)
            found = self._wait(self._pid, REAP_AFTER_KILL_S)  # (None: stuck in the kernel, left)
        status, cpu_s = found if found is not None else (None, 0.0)
        self._pid = None
        temporary, error = self._read_messages()
        if cancelled and temporary is not None:
            temporary.unlink(missing_ok=True)  # (renamed already, or never made: nothing to do)
        if (
            error is None
            and not cancelled
            and not (status is not None and os.waitstatus_to_exitcode(status) == 0)
        ):
            error = f"the saving process ended with status {status}"
        return Saved(self._label, error, cancelled, cpu_s)

    @staticmethod
    def _wait(pid: int, wait_s: float) -> tuple[int, float] | None:
        """The child's exit status and CPU time, if it ended within ``wait_s``."""
        deadline_s = time.monotonic() + wait_s
        while True:
            found, status, usage = os.wait4(pid, os.WNOHANG)
            if found != 0:
                return status, usage.ru_utime + usage.ru_stime
            if time.monotonic() >= deadline_s:
                return None
            time.sleep(0.01)

    def _read_messages(self) -> tuple[Path | None, str | None]:
        """The temporary file and the error the child reported (the pipe is closed after)."""
        assert self._messages is not None
        data = b""
        try:
            os.set_blocking(self._messages, False)  # (a child left stuck still holds its end)
            while len(data) < MAX_MESSAGE_BYTES:
                chunk = os.read(self._messages, MAX_MESSAGE_BYTES)
                if not chunk:
                    break
                data += chunk
        except BlockingIOError:
            pass
        finally:
            os.close(self._messages)
            self._messages = None
        temporary: Path | None = None
        error: str | None = None
        for line in data.decode("utf-8", "surrogateescape").splitlines():
            kind, _, text = line.partition("\t")
            if kind == "temporary":
                temporary = Path(text)
            elif kind == "error":
                error = text
        return temporary, error
