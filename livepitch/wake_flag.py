"""A flag that a signal handler may set while the same thread waits for it.

Python runs a signal handler on the main thread between two bytecodes, also while that thread
is inside ``threading.Event.wait`` holding the Event's lock: an ``Event.set`` in the handler
then waits for that lock for good (a race soak caught a SIGTERM that never ended livepitch this
way). ``WakeFlag.set`` takes no lock: it sets a bool and writes a byte to a socket pair that
``wait`` selects on (a socket pair, not a pipe: ``select`` takes sockets on every platform).
"""

from __future__ import annotations

import contextlib
import select
import socket
import time


class WakeFlag:
    """``threading.Event``'s ``set``, ``clear``, ``is_set`` and ``wait``, safe to ``set`` from a
    signal handler and from any thread; ``close`` frees its sockets (it then never waits)."""

    def __init__(self) -> None:
        self._flag = False
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)

    def set(self) -> None:
        self._flag = True
        with contextlib.suppress(OSError):  # full (set many times), or closed: the flag tells
            self._writer.send(b"\0")

    def is_set(self) -> bool:
        return self._flag

    def clear(self) -> None:
        self._flag = False
        self._drain()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Until set, or ``timeout_s`` passed; returns whether it is set."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not self._flag and self._reader.fileno() >= 0:
            left_s = None if deadline is None else deadline - time.monotonic()
            if left_s is not None and left_s <= 0:
                break
            readable, _, _ = select.select([self._reader], [], [], left_s)
            if readable and not self._flag:  # a byte from before a clear
                self._drain()
        return self._flag

    def close(self) -> None:
        self._reader.close()
        self._writer.close()

    def _drain(self) -> None:
        with contextlib.suppress(OSError):  # (empty, or closed)
            while self._reader.recv(4096):
                pass
