"""A fresh livepitch instead of a dead one when PortAudio aborts: livepitch/_abort_restart.c.

PortAudio's JACK backend ``assert``s on its state, and a JACK server dying while a stream
opens or closes, or while PortAudio starts or resets, fails one: ``abort()`` ends the process
(docs/benchmarks.md, "Race soak"). While a PortAudio call runs inside ``restarting_on_abort``
and the daemon has set a command (``set_command``: livepitch again, resumed, with the session's
clock), the C handler executes that command instead, as a restart to reconnect does. Outside
those calls SIGABRT acts as before, and so it does once a stop signal has arrived
(``watch_stop_signals``). PortAudio's own end as the process exits runs in
``exiting_on_abort``: an abort or a fault there ends the process with its exit code, not by
a signal with a core dump. A segmentation fault or a bus error during those calls is handled as an abort:
once libjack has seen its server die, the next JACK client opened in the process (a failed MIDI
port) frees the clients still open, PortAudio's among them, and PortAudio's next call on it
faults. The extension is optional (setup.py): without it an abort ends livepitch (a service
manager restarts it).
"""

from __future__ import annotations

import importlib
import os
import signal
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import ModuleType

_native: ModuleType | None
try:
    _native = importlib.import_module("livepitch._abort_restart")
except ImportError:  # not compiled here (no C compiler at install time)
    _native = None

ABI_VERSION = 5
"""The version of livepitch/_abort_restart.c this module speaks (its ``ABI_VERSION``)."""


def available() -> bool:
    """True when the handler was built with this install, from this version of its source."""
    return _native is not None and getattr(_native, "ABI_VERSION", None) == ABI_VERSION


def set_command(argv: Sequence[str], env: Mapping[str, str]) -> bool:
    """What an abort inside ``restarting_on_abort`` executes: ``argv[0]`` with ``argv`` and
    exactly ``env``. Installs the handler the first time. False where it was not built."""
    if _native is None or not available():
        return False
    _native.set_command(
        os.fsencode(argv[0]),
        [os.fsencode(arg) for arg in argv],
        [os.fsencode(f"{name}={value}") for name, value in env.items()],
    )
    return True


def keep_across_exec(descriptor: int | None) -> None:
    """The command inherits ``descriptor`` (every other from 3 on closes; None: none)."""
    if _native is not None and available():
        _native.keep_across_exec(-1 if descriptor is None else descriptor)


def watch_stop_signals(signals: Sequence[int]) -> bool:
    """From now on (main thread), no command runs once one of ``signals`` (a stop: SIGTERM,
    SIGINT) has arrived, even before Python's handler for it has run. Takes Python's signal
    wakeup pipe (``signal.set_wakeup_fd``). False where the extension was not built."""
    if _native is None or not available():
        return False
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    os.set_blocking(write_end, False)
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    _native.watch_stop_signals(read_end, [int(signum) for signum in signals])
    return True


def clear_command() -> None:
    """No command: an abort ends the process, as without this module."""
    if _native is not None and available():
        _native.clear_command()


def armed() -> bool:
    """Whether an abort now executes the command (a call is under way and a command is set)."""
    return _native is not None and available() and bool(_native.armed())


@contextmanager
def restarting_on_abort() -> Iterator[None]:
    """Around one PortAudio call, on any thread: an abort meanwhile executes the command."""
    if _native is None or not available():
        yield
        return
    _native.arm()
    try:
        yield
    finally:
        _native.disarm()


@contextmanager
def exiting_on_abort(code: int) -> Iterator[None]:
    """Around PortAudio's end as the process exits (main thread): an abort, a segmentation
    fault or a bus error meanwhile ends the process with ``code`` at once (what it was about to
    exit with)."""
    if _native is None or not available():
        yield
        return
    _native.set_exit_code(code)
    _native.arm()
    try:
        yield
    finally:
        _native.disarm()
        _native.set_exit_code(-1)
