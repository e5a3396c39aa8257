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
    the audio system's own overflow flags as xruns, when there were any).

    Where it is too long, the latency goes first, then the CPU load, then the port's name
    (never "MIDI down"), then the notes give way (the lowest shown, ``+N`` for the rest): the
    level, the notes and the counters stay in sight down to about 60 columns (below that the
    line is cut)."""
    names = [note_name(p) for p in sorted(s.sounding)]
    port = s.port if s.port is not None else "MIDI down"
    level = f"in {s.level_dbfs:5.0f} dB [{level_meter(s.level_dbfs, gate_dbfs=s.gate_dbfs)}]"
    counters = f"overflows {s.overflows} drops {s.drops}" + (
        f" xruns {s.device_overflows}" if s.device_overflows else ""
    )
    optional = {
        "cpu": f"cpu {100 * s.cpu_load:3.0f}%",
        "delay": f"delay {s.lookahead_ms:.0f}-{s.worst_delay_ms:.0f} ms",
        "port": port,
    }
    dropped: set[str] = set()

    def line(notes: str) -> str:
        parts = [
            level,
            f"notes {notes}",
            *(text for key, text in optional.items() if key not in dropped),
            counters,
        ]
        return " | ".join(parts)

    shown = " ".join(names) or "-"
    for key in ("delay", "cpu", "port"):
        if len(line(shown)) <= width or (key == "port" and s.port is None):
            break
        dropped.add(key)
    for count in range(len(names) - 1, 0, -1):
        if len(line(shown)) <= width:
            break
        shown = " ".join([*names[:count], f"+{len(names) - count}"])
    return line(shown)[:width]


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
