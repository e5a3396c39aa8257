"""Write notes as CSV: one row a note, sorted by onset."""

from __future__ import annotations

import csv
from pathlib import Path

from livepitch.errors import unwritable
from livepitch.notes import Note
from livepitch.output_files import replaced_whole

NOTES_CSV_COLUMNS = ("onset_s", "offset_s", "pitch", "velocity", "amplitude", "mean_bend_cents")


def write_notes_csv(path: str | Path, notes: list[Note]) -> None:
    """Write ``notes`` with a header row; pitch is the MIDI number, velocity 1-127."""
    rows = sorted(notes, key=lambda n: (n.start_sample, n.pitch))
    try:
        with replaced_whole(path) as written, open(written, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(NOTES_CSV_COLUMNS)
            for note in rows:
                bend = f"{float(note.bend_semitones.mean()) * 100:.1f}" if note.has_bends else ""
                writer.writerow(
                    [
                        f"{note.start_s:.6f}",
                        f"{note.end_s:.6f}",
                        note.pitch,
                        note.velocity,
                        f"{note.amplitude:.6f}",
                        bend,
                    ]
                )
    except OSError as err:
        raise unwritable(path, err) from err
