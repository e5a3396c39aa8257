"""Writing an output file whole or not at all (a full disk keeps the previous take)."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

MAX_TEMPORARY_SUFFIX_CHARS = 8
"""A temporary file keeps the suffix of the file it replaces up to this long (``.mid``, ``.npz``)."""


@contextlib.contextmanager
def replaced_whole(path: str | Path, announce: Callable[[Path], None] | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write (given to ``announce`` first, if
    given, so that whoever may end this process early can remove it); on success it replaces ``path`` in one
    step, on any failure it is removed and ``path`` is left as it was.

    A symbolic link is written through (its target is replaced); an existing file's permission
    bits carry over. What is not a regular file (``/dev/null``, ``/dev/stdout``, a pipe) is
    written directly, and so is a file that cannot be replaced where it can be written (a
    read-only directory, a file bind-mounted alone, another user's file in a sticky directory).
    The temporary name is short (any name the file system takes for ``path`` must leave room
    for it) and keeps a short suffix of ``path``'s."""
    try:
        existing = os.stat(path)  # (follows links: a link to a device is a device)
    except FileNotFoundError:
        existing = None
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        with reader_held(path):
            yield Path(path)
        return
    try:
        destination = Path(os.path.realpath(path, strict=True))
    except FileNotFoundError:  # a new file (or a link to one): written where it leads
        destination = Path(os.path.realpath(path))
    # (a symbolic link loop raises OSError: it cannot be written)
    try:
        suffix = destination.suffix if len(destination.suffix) <= MAX_TEMPORARY_SUFFIX_CHARS else ""
        handle, temporary = tempfile.mkstemp(prefix=".livepitch-", suffix=suffix, dir=destination.parent)
    except PermissionError:  # no new file in that directory: the old one is overwritten
        if existing is None:
            raise
        yield Path(path)
        return
    os.close(handle)
    written = Path(temporary)
    try:
        if announce is not None:
            announce(written)
        yield written
        if existing is not None:
            shutil.copymode(destination, written)
        else:  # mkstemp's 0600 is for the temporary file, not for a take
            written.chmod(0o666 & ~_umask())
        try:
            os.replace(written, destination)
        except OSError as err:
            if err.errno not in (errno.EBUSY, errno.EPERM, errno.EACCES, errno.EXDEV):
                raise
            shutil.copyfile(written, destination)  # replacing is refused, writing is not
    finally:
        written.unlink(missing_ok=True)


PIPE_READER_WAIT_S = 2.0
"""How long writing to a named pipe waits for a program to read it [s]."""
_PIPE_POLL_S = 0.02


def open_pipe_end(path: str | Path, wait_s: float = PIPE_READER_WAIT_S) -> int | None:
    """For a named pipe: a descriptor open for writing (non-blocking) once a program reads it,
    waiting up to ``wait_s`` for one; while it is open, the reader sees no end of its input,
    and opening the pipe to write does not wait (opening a pipe nobody reads would wait for a
    reader forever, and no signal ends that wait). ``OSError`` if nobody reads it by then;
    None for anything else (a file, a device, nothing)."""
    try:
        if not stat.S_ISFIFO(os.stat(path).st_mode):
            return None
    except OSError:
        return None
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as err:
            if err.errno != errno.ENXIO:
                raise
            if time.monotonic() >= deadline:
                raise OSError(
                    errno.ENXIO, "it is a pipe that no program reads (start the reader first)"
                ) from err
        time.sleep(_PIPE_POLL_S)


@contextlib.contextmanager
def reader_held(path: str | Path, wait_s: float = PIPE_READER_WAIT_S) -> Iterator[None]:
    """``open_pipe_end`` for as long as the block runs (nothing for what is not a pipe)."""
    held = open_pipe_end(path, wait_s)
    try:
        yield
    finally:
        if held is not None:
            os.close(held)


def _umask() -> int:
    """The process's file mode creation mask (read, not set: other threads create files)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # where /proc is missing: set and restore at once
    os.umask(mask)
    return mask
