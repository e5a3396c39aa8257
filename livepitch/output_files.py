"""Writing an output file whole or not at all (a full disk keeps the previous take)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def replaced_whole(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write; on success it replaces ``path`` in one
    step, on any failure it is removed and ``path`` is left as it was.

    A symbolic link is written through (its target is replaced); an existing file's permission
    bits carry over; what is not a regular file (``/dev/null``, a pipe) is written directly. The temporary name keeps ``path``'s suffix (numpy's ``savez`` adds
    ``.npz`` to a name without it)."""
    try:
        destination = Path(os.path.realpath(path, strict=True))
    except FileNotFoundError:  # a new file (or a link to one): written where it leads
        destination = Path(os.path.realpath(path))
    # (a symbolic link loop raises OSError: it cannot be written)
    if destination.exists() and not destination.is_file():  # a device or a pipe: never replaced
        yield Path(path)  # (as named: numpy adds .npz to a name without it)
        return
    handle, temporary = tempfile.mkstemp(
        prefix=f".{destination.stem}.", suffix=destination.suffix, dir=destination.parent
    )
    os.close(handle)
    written = Path(temporary)
    try:
        yield written
        if destination.exists():
            shutil.copymode(destination, written)
        else:  # mkstemp's 0600 is for the temporary file, not for a take
            written.chmod(0o666 & ~_umask())
        os.replace(written, destination)
    except BaseException:
        written.unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process's file mode creation mask (read, not set: other threads create files)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)  # where /proc is missing: set and restore at once
    os.umask(mask)
    return mask
