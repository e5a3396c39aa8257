"""The one refreshing status line for a person at a terminal (main thread only)."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import TextIO

NOTE_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def note_name(pitch: int) -> str:
    """Scientific pitch name of a MIDI note (60 -> C4)."""
    return f"{NOTE_NAMES[pitch % 12]}{pitch // 12 - 1}"


def level_meter(level_dbfs: float, width: int = 10, gate_dbfs: float | None = None) -> str:
    """A bar for a level between -60 and 0 dBFS, with ``|`` where the noise gate opens."""
    filled = max(0, min(width, round((level_dbfs + 60.0) / 60.0 * width)))
    bar = ["#"] * filled + ["-"] * (width - filled)
    if gate_dbfs is not None and gate_dbfs > -60.0:
        bar[min(width - 1, round((gate_dbfs + 60.0) / 60.0 * width))] = "|"
    return "".join(bar)


@dataclass
class StatusSnapshot:
    """What the status line shows."""

    level_dbfs: float
    sounding: list[int]
    cpu_load: float
    lookahead_ms: float
    worst_delay_ms: float
    overflows: int
    """Blocks livepitch's ring could not take (audio it lost)."""
    drops: int
    port: str | None
    gate_dbfs: float | None = None
    device_overflows: int = 0
    """Callbacks the audio system flagged as overflowed (with JACK: after any xrun)."""


def format_status(s: StatusSnapshot, width: int = 100) -> str:
    """One line of at most ``width`` characters: input level (RMS, as the noise gate reads it,
    ``|`` at the gate), sounding notes, worker CPU, latency, port, overflow/drop counters (and
    the audio system's own overflow flags as xruns, when there were any). Where the line is
    too long, the notes give way first (the lowest ones shown, ``+N`` for the rest), so the
    counters stay in sight."""
    names = [note_name(p) for p in sorted(s.sounding)]
    port = s.port if s.port is not None else "MIDI down"
    head = f"in {s.level_dbfs:5.0f} dB [{level_meter(s.level_dbfs, gate_dbfs=s.gate_dbfs)}] | notes "
    tail = (
        f" | cpu {100 * s.cpu_load:3.0f}% | delay {s.lookahead_ms:.0f}-{s.worst_delay_ms:.0f} ms | {port} "
        f"| overflows {s.overflows} drops {s.drops}{f' xruns {s.device_overflows}' if s.device_overflows else ''}"
    )
    room = width - len(head) - len(tail)
    shown = " ".join(names) or "-"
    for count in range(len(names) - 1, -1, -1):
        if len(shown) <= room:
            break
        shown = " ".join([*names[:count], f"+{len(names) - count}"])
    return (head + shown + tail)[:width]


class StatusLine:
    """Rewrites one line on a terminal; does nothing when the stream is not a terminal."""

    def __init__(self, stream: TextIO | None = None) -> None:
        """``stream``: standard error by default (None when the process started without one)."""
        chosen = sys.stderr if stream is None else stream
        self.stream: TextIO = chosen
        self.enabled = chosen is not None and chosen.isatty()
        self._shown = False

    def show(self, text: str) -> None:
        """Replace the line with ``text``, cut to the terminal's width (a wrapped line could
        not be cleared: every refresh would leave a copy)."""
        if self.enabled:
            self.stream.write("\r\x1b[2K" + text[: self.columns - 1])
            self.stream.flush()
            self._shown = True

    @property
    def columns(self) -> int:
        """The terminal's width now (it can be resized), 100 where it cannot say (or says 0)."""
        try:
            columns = os.get_terminal_size(self.stream.fileno()).columns
        except (OSError, ValueError, AttributeError):
            return 100
        return max(2, columns) if columns > 0 else 100

    def clear(self) -> None:
        """Remove the line (before a log message, and at exit)."""
        if self.enabled and self._shown:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()
            self._shown = False
