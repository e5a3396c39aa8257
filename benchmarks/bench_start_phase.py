"""Does where capture starts decide which notes play? The live test signal at several start offsets.

    python benchmarks/bench_start_phase.py [--offsets 0 70 140 210 280 350 420 490]

A live session's frame grid (one frame per 256 samples at 22050 Hz) starts at its first
captured sample, so the same performance falls differently on it from one session to the
next. This replays ``bench_live_jack``'s test signal (53 notes at 48 kHz) as the daemon's
worker does — ``DeviceToModel`` (soxr QQ) in 512-frame blocks, then the default engine — with
``offset`` zero samples in front, and matches its note-ons as ``bench_live_jack`` does.
Prints a markdown table: per offset, notes matched, the missed ones (onset s, MIDI pitch) and
the extra note-ons.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the livepitch command runs numpy

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_live_jack import RATE_HZ, match, synth_signal

from livepitch.api import DeviceToModel, open_engine
from livepitch.events import NoteOn
from livepitch.geometry import MODEL_RATE_HZ

BLOCK_FRAMES = 512


def note_ons(audio: np.ndarray, offset: int) -> list[tuple[float, int]]:
    """(emission s on the signal's own clock, pitch) of every note-on, ``offset`` samples of silence first."""
    padded = np.concatenate([np.zeros(offset, np.float32), audio.astype(np.float32)])[:, None]
    engine = open_engine()
    convert = DeviceToModel(RATE_HZ, 1, quality="QQ")
    events = []
    for start in range(0, padded.shape[0], BLOCK_FRAMES):
        last = start + BLOCK_FRAMES >= padded.shape[0]
        events += engine.feed(convert.convert(padded[start : start + BLOCK_FRAMES], last=last))
    events += engine.finish()
    shift_s = offset / RATE_HZ
    return [(e.emitted_sample / MODEL_RATE_HZ - shift_s, e.pitch) for e in events if isinstance(e, NoteOn)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--offsets",
        type=int,
        nargs="+",
        default=[0, 70, 140, 210, 280, 350, 420, 490, 27648],
        help="zero samples (48 kHz) before the signal; 557 is one model frame; a JACK session's is a "
        "multiple of its period (512 here), and 27648 is the one of 160 where the E2 at 19.52 s plays late",
    )
    args = parser.parse_args(argv)
    audio, truth = synth_signal()
    print("| start offset (48 kHz samples) | matched of 53 | missed (s, pitch) | extra note-ons (s, pitch) |")
    print("|---|---|---|---|")
    missed_total = extra_total = 0
    for offset in args.offsets:
        ons = note_ons(audio, offset)
        found, extra = match(truth, ons)
        missed = [truth[i] for i, j in enumerate(found) if j is None]
        missed_total += len(missed)
        extra_total += len(extra)
        missed_text = ", ".join(f"{t:.2f} {p}" for t, p in missed) or "none"
        extra_text = ", ".join(f"{ons[j][0]:.2f} {ons[j][1]}" for j in extra) or "none"
        print(f"| {offset} | {len(truth) - len(missed)} | {missed_text} | {extra_text} |", flush=True)
    print(
        f"| all | {len(args.offsets) * len(truth) - missed_total} of {len(args.offsets) * len(truth)} | {missed_total} | {extra_total} |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
