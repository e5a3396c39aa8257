"""livepitch's exceptions: one root, each subclass also the matching builtin.

The CLI turns any ``LivepitchError`` into one line on stderr and the class's ``exit_code``.
"""

from __future__ import annotations


class LivepitchError(Exception):
    """Root of every error livepitch raises on purpose."""

    exit_code = 1


class ConfigError(LivepitchError, ValueError):
    """An option or configuration value is out of range or malformed."""

    exit_code = 2


class AudioInputError(LivepitchError, OSError):
    """An audio file is missing, unreadable, corrupt, empty or holds NaN/Inf samples."""

    exit_code = 3


class ModelError(LivepitchError, OSError):
    """The model file is missing or not a compatible Basic Pitch graph."""

    exit_code = 4


class OutputError(LivepitchError, OSError):
    """An output file or directory cannot be written."""

    exit_code = 5


class DeviceError(LivepitchError, OSError):
    """An audio device is unknown, cannot be opened, or went away."""

    exit_code = 6


class AudioWedgedError(DeviceError):
    """PortAudio would not let go of a stream whose server died under it: this process can no
    longer reset its audio system (``Pa_Terminate`` would wait forever); only a new process can."""


class MidiPortError(LivepitchError, OSError):
    """A MIDI port cannot be opened or written."""

    exit_code = 7


class MidiMessageLost(LivepitchError, OSError):
    """One MIDI message the port could not take; the port itself goes on (a virtual port's
    connections would be lost by reopening it)."""

    exit_code = 7


def first_line(err: BaseException) -> str:
    """The first line of an exception's message (its type name when it has none)."""
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]


def unwritable(path: object, err: BaseException) -> OutputError:
    """The ``OutputError`` for ``path`` failing to be written: the system's reason, without
    the name of a temporary file the user never gave."""
    reason = err.strerror if isinstance(err, OSError) and err.strerror else first_line(err)
    return OutputError(f"cannot write {path}: {reason}")
