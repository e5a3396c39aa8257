"""livepitch executing itself again: to reconnect to a restarted audio system, or after
PortAudio aborted it. What one process hands the next (the environment variables below), the
stop and reload signals held across the exec, and what the new process reads back."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from livepitch.errors import DeviceError

HELD_SIGNALS = ("SIGTERM", "SIGHUP")
"""Signals held back (blocked) across livepitch's restart of itself, until the new process can
note them: with their default action a stop would kill it and a reload end it."""


def remember_early_signals() -> list[int]:
    """Until the daemon installs its own handlers: SIGTERM and SIGHUP are noted, not fatal
    (``systemctl reload`` right after a start used to end the service). A process that
    livepitch restarted (``RESUME_VARIABLE``, or ``ABORTS_VARIABLE`` for one started afresh
    after an abort) was started with them blocked: they are unblocked now, so that one sent
    meanwhile is noted here."""
    early: list[int] = []
    held = [getattr(signal, name) for name in HELD_SIGNALS if hasattr(signal, name)]
    for signum in held:
        signal.signal(signum, lambda signum, _frame: early.append(signum))
    if (resume_count() or abort_count()) and hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, held)
    return early


def ignore_late_signals() -> None:
    """The session is over (notes released, outputs written): a stop or reload signal now has
    nothing to act on. Python puts the default handlers back as it exits, so a second Ctrl-C
    then would end the process by the signal instead of with the session's exit code."""
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)


CLOCK_MAX_AGE_S = 60.0
"""Longest a restarted process may take to read the clock its predecessor handed it [s]."""


@dataclass(frozen=True)
class SessionClock:
    """The session's clock handed to a restarted process: its time after the last sample an
    engine read [samples at 22050 Hz], when the input stopped (``time.monotonic``, the same
    clock in every process) and the audio it left unread [s]."""

    time_samples: int
    stopped_monotonic_s: float
    unread_s: float

    def to_text(self) -> str:
        return f"{self.time_samples} {self.stopped_monotonic_s!r} {self.unread_s!r}"

    @staticmethod
    def from_text(text: str) -> SessionClock | None:
        """The clock ``to_text`` wrote, or None for anything else."""
        try:
            time_text, stopped_text, unread_text = text.split()
            clock = SessionClock(int(time_text), float(stopped_text), float(unread_text))
        except ValueError:
            return None
        age_s = time.monotonic() - clock.stopped_monotonic_s  # NaN fails the test too
        fresh = 0.0 <= age_s <= CLOCK_MAX_AGE_S  # not left over from another boot or by hand
        return clock if fresh and clock.time_samples >= 0 and 0.0 <= clock.unread_s <= 60.0 else None


RESUME_VARIABLE = "LIVEPITCH_RESUMED"
"""Set when livepitch re-executes itself to reconnect to a restarted audio system."""


def resume_count() -> int:
    value = os.environ.get(RESUME_VARIABLE, "0")
    return int(value) if value.isdigit() else 0


CLOCK_VARIABLE = "LIVEPITCH_SESSION_CLOCK"
"""The session's clock, handed to the re-executed livepitch (``SessionClock.to_text``)."""


ABORTS_VARIABLE = "LIVEPITCH_ABORTS"
"""Set when livepitch was executed again because PortAudio aborted it: how many times in a row
(without audio flowing in between)."""

LAST_WORDS_VARIABLE = "LIVEPITCH_ABORT_OUTPUT_FD"
"""Set with ``ABORTS_VARIABLE``: the descriptor of the memory file holding what the aborted
PortAudio call printed (``livepitch.native_output``), inherited from the aborted process."""

HANDED_ON = (RESUME_VARIABLE, CLOCK_VARIABLE, ABORTS_VARIABLE, LAST_WORDS_VARIABLE)
"""What one livepitch tells the next it executes: never passed on as it was."""

MAX_ABORTS_IN_A_ROW = 10
"""After this many restarts on PortAudio's aborts with no audio flowing between them, the next
abort ends the process (a service manager's turn)."""


def abort_count() -> int:
    value = os.environ.get(ABORTS_VARIABLE, "0")
    return int(value) if value.isdigit() else 0


def _restart_command(
    count: int, clock: SessionClock | None, aborts: int = 0
) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of a new livepitch with this one's arguments: resumed
    (``count`` > 0: it waits for its devices and goes on with the session's ``clock``), or
    started afresh (0); ``aborts``: after how many aborts in a row."""
    environment = dict(os.environ)
    for variable in HANDED_ON:
        environment.pop(variable, None)
    if count:
        environment[RESUME_VARIABLE] = str(count)
        if clock is not None:
            environment[CLOCK_VARIABLE] = clock.to_text()
    if aborts:
        environment[ABORTS_VARIABLE] = str(aborts)
    return [sys.executable, "-m", "livepitch", *sys.argv[1:]], environment


def ready_abort_restart(resumed: int, aborts_before: int, clock: SessionClock | None, flowed: bool) -> None:
    """Before a PortAudio call (main thread): what an abort during it executes
    (``livepitch.abort_restart``): livepitch resumed with ``clock``, or started afresh if this
    process started afresh and no audio flowed yet (a wrong ``--input`` then still fails);
    nothing if livepitch is stopping (no clock) or that would be more than
    ``MAX_ABORTS_IN_A_ROW`` aborts in a row (``aborts_before``: since audio last flowed)."""
    from livepitch import abort_restart

    if clock is None or aborts_before >= MAX_ABORTS_IN_A_ROW:
        abort_restart.clear_command()
        return
    from livepitch.native_output import capture_descriptor

    count = resumed + 1 if resumed or flowed else 0
    command, environment = _restart_command(count, clock, aborts_before + 1)
    descriptor = capture_descriptor()  # what the call prints, the failed assert's line: for the log
    if descriptor is not None:
        environment[LAST_WORDS_VARIABLE] = str(descriptor)
    abort_restart.keep_across_exec(descriptor)
    abort_restart.set_command(command, environment)


def restart_self(
    count: int, clock: SessionClock, stop_requested: Callable[[], bool] = lambda: False, aborts: int = 0
) -> None:
    """Replace this process with a fresh livepitch (same arguments) that waits for its devices
    and goes on with the session's clock (``aborts``: PortAudio's aborts in a row, carried on
    while no audio flows). Returns (no restart) if a stop was asked by the time the stop and
    reload signals are held back for the new process."""
    command, environment = _restart_command(count, clock, aborts)
    held = [getattr(signal, name) for name in HELD_SIGNALS if hasattr(signal, name)]
    blocked = hasattr(signal, "pthread_sigmask")
    if blocked:  # the mask survives execve: the new process unblocks them once it can note them
        signal.pthread_sigmask(signal.SIG_BLOCK, held)  # (runs the handlers of any that came before)
    if stop_requested():  # a SIGTERM just before: this process ends instead of restarting
        if blocked:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, held)
        return
    sys.stdout.flush()
    sys.stderr.flush()
    _inherit_no_descriptors()
    try:
        os.execve(command[0], command, environment)
    except OSError as err:
        if blocked:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, held)
        raise DeviceError(f"cannot restart livepitch to reconnect: {err}") from err


def _inherit_no_descriptors() -> None:
    """Every file descriptor but 0, 1 and 2 closes at the next exec. libjack's sockets do not
    by themselves: inherited, they kept the old process's JACK clients registered as zombies,
    and a live server stopped answering the new process's clients."""
    listing = next((path for path in ("/proc/self/fd", "/dev/fd") if os.path.isdir(path)), None)
    descriptors = [int(name) for name in os.listdir(listing)] if listing else range(3, 1024)
    for descriptor in descriptors:
        if descriptor > 2:
            with contextlib.suppress(OSError):  # (closed since it was listed, or the listing's own)
                os.set_inheritable(descriptor, False)
