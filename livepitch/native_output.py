"""Silencing what native audio and MIDI libraries print straight to stderr."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


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
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
