"""Asking the file system about a path the user named, with one line when it cannot answer."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path

from livepitch.errors import LivepitchError, OutputError

_NOTHING_THERE = (errno.ENOENT, errno.ENOTDIR, errno.ELOOP)
"""Failures that mean no file is there (as ``Path.exists`` takes them): missing, a file where
a directory should be on the way, a symbolic link loop."""


def stat_or_none(path: Path, error: Callable[[str], LivepitchError]) -> os.stat_result | None:
    """``os.stat(path)`` (following links), or None when nothing is there; any other failure
    (a directory on the way that may not be searched, a name too long) raises ``error`` with
    one line naming the path and the cause."""
    try:
        return os.stat(path)
    except OSError as err:
        if err.errno in _NOTHING_THERE:
            return None
        raise error(f"{path}: {err.strerror or err}") from err


def is_directory(status: os.stat_result | None) -> bool:
    """Whether ``stat_or_none`` found a directory."""
    return status is not None and stat.S_ISDIR(status.st_mode)


def is_regular_file(status: os.stat_result | None) -> bool:
    """Whether ``stat_or_none`` found a regular file (not a device, a pipe or a directory)."""
    return status is not None and stat.S_ISREG(status.st_mode)


def cannot_write(message: str) -> OutputError:
    """The ``error`` for ``stat_or_none`` on an output path (or its directory)."""
    return OutputError(f"cannot write {message}")
