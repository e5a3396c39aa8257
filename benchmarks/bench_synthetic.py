"""Synthetic notes, slides and vibrato through the streaming engine: notes found, note-ons extra.

The project's own test audio (``tests/synth.py``): 12 random melodies of 6 harmonic tones
(MIDI 40-83, 0.15-0.6 s, 0.05-0.3 s apart; seed 0), 5 one-second slides (60->63, 55->50,
48->55, 67->69, 72->67) and 3 vibrato notes (52, 64, 76; ±0.5 semitone). For each engine
setting it counts the expected pitches that got a note-on and every other note-on (octave
ghosts, slides re-triggered), MPE bends so that a slide can stay one note.

Usage: ``python benchmarks/bench_synthetic.py [--set FIELD=VALUE ...]`` (tracker settings).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from livepitch.engine import build_engine, stream_audio
from livepitch.events import NoteOn
from livepitch.model_file import resolve_model_path
from livepitch.onnx_model import BasicPitchModel
from livepitch.settings import LiveSettings
from tests.synth import glide, sequence, vibrato

ENGINES: dict[str, dict[str, object]] = {
    "incremental, refresh 7, 72.7 ms (default)": {},
    "window, hop 3, 61.1 ms": {"engine": "window", "lookahead_ms": 60.0},
    "window, hop 1, 72.7 ms": {"engine": "window", "lookahead_ms": 70.0, "hop_frames": 1},
    "incremental, refresh 6, 61.1 ms": {
        "engine": "incremental",
        "lookahead_ms": 60.0,
        "cqt_refresh_frames": 6,
    },
    "incremental, refresh 6, 72.7 ms": {
        "engine": "incremental",
        "lookahead_ms": 70.0,
        "cqt_refresh_frames": 6,
    },
    "incremental, refresh 8, 72.7 ms": {
        "engine": "incremental",
        "lookahead_ms": 70.0,
        "cqt_refresh_frames": 8,
    },
}


def cases() -> list[tuple[str, npt.NDArray[np.float32], list[int]]]:
    """(kind, audio at 22050 Hz, the pitches that should each get a note-on)."""
    rng = np.random.default_rng(0)
    silence = np.zeros(11025, np.float32)
    found: list[tuple[str, npt.NDArray[np.float32], list[int]]] = []
    for _ in range(12):
        notes: list[tuple[float, float, float]] = []
        t = 0.2
        for _ in range(6):
            pitch, duration = int(rng.integers(40, 84)), float(rng.uniform(0.15, 0.6))
            notes.append((t, duration, pitch))
            t += duration + float(rng.uniform(0.05, 0.3))
        found.append(("melodies", sequence(notes, t + 0.3), [int(n[2]) for n in notes]))
    for start, end in [(60, 63), (55, 50), (48, 55), (67, 69), (72, 67)]:
        found.append(("slides", np.concatenate([silence, glide(start, end, 1.0), silence]), [start]))
    for pitch in (52, 64, 76):
        found.append(("vibrato", np.concatenate([silence, vibrato(pitch, 1.5, 0.5), silence]), [pitch]))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="tracker setting")
    args = parser.parse_args()
    tracker = dict(item.split("=", 1) for item in args.set)
    model = BasicPitchModel(resolve_model_path(), threads=1)
    audio_cases = cases()
    print(
        "| engine | melodies (72 notes): found · extra | slides (5): found · extra | vibrato (3): found · extra |"
    )
    print("|---|---|---|---|")
    for label, stream in ENGINES.items():
        settings = LiveSettings.model_validate(
            {"midi": {"bends": "mpe"}, "stream": stream, "tracker": tracker}
        )
        totals = {kind: [0, 0] for kind in ("melodies", "slides", "vibrato")}
        for kind, audio, expected in audio_cases:
            ons = [
                e.pitch
                for e in stream_audio(audio, build_engine(model, settings), 1024)
                if isinstance(e, NoteOn)
            ]
            hits = sum(1 for pitch in expected if pitch in ons)
            totals[kind][0] += hits
            totals[kind][1] += len(ons) - hits
        cells = " | ".join(f"{found} · {extra}" for found, extra in totals.values())
        print(f"| {label} | {cells} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
