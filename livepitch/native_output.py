"""Silencing what native audio and MIDI libraries print straight to stderr.

What they print is kept in a memory file while the call runs (not on a disk, never shown):
if PortAudio aborts the process inside one, the livepitch executed in its place
(``livepitch.abort_restart``) inherits that file and logs the last lines, the failed
assert's own.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator

CAPTURE_NAME = "livepitch-native-stderr"
"""The memory file's name (``/proc/self/fd`` shows it as ``/memfd:`` followed by it)."""

LAST_WORDS_LINES = 3
"""How many of the last lines an aborted call printed are logged after the restart."""

_capture: int | None = None  # the memory file's descriptor, once made (-1: cannot be made)
_capture_lock = threading.Lock()  # (PortAudio calls run quietly on helper threads too)


def native_output_wanted() -> bool:
    """``LIVEPITCH_AUDIO_DEBUG`` set to anything but empty or 0: show what native libraries print."""
    return os.environ.get("LIVEPITCH_AUDIO_DEBUG", "") not in ("", "0")


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Hide what ALSA, libjack and libmpg123 print to stderr (devices probed, MP3s decoded).

    Probing prints a dozen lines on machines without a sound card or JACK server; livepitch
    reports what matters itself. ``LIVEPITCH_AUDIO_DEBUG=1`` shows them. It swaps file
    descriptor 2 for the whole process while it runs: another thread's log line then is lost.
    """
    if native_output_wanted():
        yield
        return
    try:
        saved = os.dup(2)
    except OSError:  # started without a stderr (``2>&-``): nothing to hide
        yield
        return
    try:
        target = capture_descriptor()
        if target is not None:
            try:
                os.ftruncate(target, 0)  # (the last call's words are of no use now)
                os.lseek(target, 0, os.SEEK_SET)
            except OSError:
                target = None
        if target is not None:
            os.dup2(target, 2)
            yield
        else:
            with open(os.devnull, "w") as devnull:
                os.dup2(devnull.fileno(), 2)
                yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        target = _capture
        if target is not None and target >= 0:  # an abort in a later call that is not quiet
            with contextlib.suppress(OSError):  # must not find these words for its own
                os.ftruncate(target, 0)


def capture_descriptor() -> int | None:
    """The memory file quiet calls print into (made the first time), or None where memory
    files do not exist (then they print into /dev/null)."""
    global _capture
    with _capture_lock:
        if _capture is None:
            try:
                _capture = os.memfd_create(CAPTURE_NAME, os.MFD_CLOEXEC)
            except (AttributeError, OSError):  # (not Linux, or an old kernel)
                _capture = -1
        return _capture if _capture >= 0 else None


def inherited_last_words(descriptor_text: str) -> str | None:
    """The last lines a quiet call printed before PortAudio aborted the process that executed
    this one, from the memory file it handed on as descriptor ``descriptor_text``; closes it.
    None if there is no such file there (a descriptor of another kind is left alone) or it
    holds nothing."""
    if not descriptor_text.isdigit():
        return None
    descriptor = int(descriptor_text)
    try:
        target = os.readlink(f"/proc/self/fd/{descriptor}")
    except OSError:
        return None
    if descriptor < 3 or not target.startswith(f"/memfd:{CAPTURE_NAME}"):
        return None
    try:
        size = os.fstat(descriptor).st_size
        data = os.pread(descriptor, 4096, max(0, size - 4096))
    except OSError:
        data = b""
    finally:
        with contextlib.suppress(OSError):
            os.close(descriptor)
    lines = [line.strip() for line in data.decode("utf-8", "replace").splitlines() if line.strip()]
    return " | ".join(lines[-LAST_WORDS_LINES:]) or None
