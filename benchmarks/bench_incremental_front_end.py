"""What the incremental engine's front end changes, measured on the shared recordings (issue 5).

    python benchmarks/bench_incremental_front_end.py [--seconds 20]

1. **The newest samples.** A CQT column computed ``l`` frames after its centre uses the
   graph's padding for the audio after the newest sample. Its deviation from the same column
   computed 160 frames (1.9 s) later, in dB, per octave (p50 / p95 over columns and bins).
2. **Normalisation.** The window engine scales frame t's window by the minimum and maximum of
   all 172 columns it computes at its edge. The incremental engine uses the minimum and
   maximum of the trailing 172 columns as it computed them (final ones ``refresh`` frames
   after their centre, the newer ones provisional, recomputed at that edge). Deviation of the
   minimum and maximum [dB] and of the normalised value (the largest over the range),
   p50 / p95 / max over edges.
3. **Posteriors.** The incremental engine (refresh = lookahead) against the window engine at a
   hop of one frame and the same lookahead: mean and p99 |difference| of the onset, note and
   contour posteriors.

Prints markdown on stdout.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the livepitch command runs numpy

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))

from datasets import data_dir

from livepitch.audio_file import read_audio
from livepitch.frames import Frame
from livepitch.incremental_engine import FeatureColumns, IncrementalEngine
from livepitch.model_file import resolve_model_path
from livepitch.model_weights import FrontEndWeights
from livepitch.onnx_model import BasicPitchModel
from livepitch.streaming_cqt import StreamingCqt
from livepitch.window_engine import WindowEngine

RECORDINGS = (
    "voice_vocadito/vocadito_1.wav",
    "guitar_guitarset/00_BN1-129-Eb_comp_mic.wav",
    "piano_madmom/stereo_sample.wav",
)
SETTLED_LAG = 160
LAGS = (0, 1, 2, 4, 8, 16, 32)


def edges(cqt: StreamingCqt, audio: npt.NDArray[np.float32], start_frame: int) -> range:
    """Push ``audio`` up to edge ``start_frame`` and return the edges that fit in the audio."""
    cqt.push(audio[: 256 * start_frame + 68])
    return range(start_frame, (audio.shape[0] - 68) // 256 + 1)


def lag_deviation(
    audio: npt.NDArray[np.float32], front_end: FrontEndWeights
) -> dict[int, npt.NDArray[np.float64]]:
    """Per lag: |column at lag - column at SETTLED_LAG| [dB], ``[columns, bins]``."""
    cqt = StreamingCqt(front_end, SETTLED_LAG)
    at_lag: dict[int, dict[int, npt.NDArray[np.float32]]] = {lag: {} for lag in (*LAGS, SETTLED_LAG)}
    for edge in edges(cqt, audio, SETTLED_LAG + 1):
        if edge > SETTLED_LAG + 1:
            cqt.push(audio[256 * (edge - 1) + 68 : 256 * edge + 68])
        indices = np.array([edge - lag for lag in (*LAGS, SETTLED_LAG)])
        for lag, column in zip((*LAGS, SETTLED_LAG), cqt.columns(indices), strict=True):
            at_lag[lag][edge - lag] = column
    settled = at_lag[SETTLED_LAG]
    return {
        lag: np.stack([np.abs(columns[c] - settled[c]) for c in columns if c in settled]).astype(np.float64)
        for lag, columns in at_lag.items()
        if lag != SETTLED_LAG
    }


def normalisation_deviation(
    audio: npt.NDArray[np.float32], front_end: FrontEndWeights, refresh: int
) -> npt.NDArray[np.float64]:
    """Per published frame: |Δ min|, |Δ max| [dB] and the largest normalised difference."""
    cqt = StreamingCqt(front_end, 171)
    features = FeatureColumns(front_end, 172 - refresh)  # as the engine keeps it
    rows = []
    for edge in edges(cqt, audio, 172):
        if edge > 172:
            cqt.push(audio[256 * (edge - 1) + 68 : 256 * edge + 68])
        window = cqt.columns(np.arange(edge - 171, edge + 1))  # what the window engine computes
        final = window[171 - refresh]
        newer = window[172 - refresh :]
        features.push(final, newer)
        low, high = features.last_range_db
        w_low, w_high = float(window.min()), float(window.max())
        values = np.linspace(w_low, w_high, 64)
        difference = np.abs((values - low) / (high - low) - (values - w_low) / (w_high - w_low)).max()
        if edge >= 2 * 172:  # the incremental window holds only columns it computed itself
            rows.append((abs(low - w_low), abs(high - w_high), difference))
    return np.array(rows)


def run_frames(engine: object, audio: npt.NDArray[np.float32]) -> list[Frame]:
    frames: list[Frame] = []
    for start in range(0, audio.shape[0], 1024):
        frames.extend(engine.push(audio[start : start + 1024]))  # type: ignore[attr-defined]
    return frames


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="audio used from each recording (20)")
    args = parser.parse_args()
    model = BasicPitchModel(resolve_model_path(), threads=1)
    weights = model.incremental_weights()
    front_end = weights.front_end
    audios = {name: read_audio(data_dir() / name)[: int(args.seconds * 22050)] for name in RECORDINGS}

    print(f"Recordings: {', '.join(RECORDINGS)}, first {args.seconds:g} s each.\n")
    print("### CQT column computed l frames after its centre vs 160 frames after, |dB| p50 / p95\n")
    octaves = front_end.n_octaves
    per = front_end.bins_per_octave
    lowest_hz = [27.5 * 2 ** (max(0, front_end.n_bins - per * (o + 1)) / per) for o in range(octaves)]
    print(
        "| lag l (ms) | "
        + " | ".join(f"octave {o} (from {lowest_hz[o]:.0f} Hz)" for o in range(octaves))
        + " |"
    )
    print("|---" * (octaves + 1) + "|")
    pooled: dict[int, list[npt.NDArray[np.float64]]] = {}
    for audio in audios.values():
        for lag, deviation in lag_deviation(audio, front_end).items():
            pooled.setdefault(lag, []).append(deviation)
    for lag in LAGS:
        deviation = np.concatenate(pooled[lag])
        cells = []
        for octave in range(octaves):  # octave 0 is the top: the last 36 bins
            high = front_end.n_bins - front_end.bins_per_octave * octave
            part = deviation[:, max(0, high - front_end.bins_per_octave) : high]
            cells.append(f"{np.percentile(part, 50):.2f} / {np.percentile(part, 95):.2f}")
        print(f"| {lag} ({1000 * (68 + 256 * lag) / 22050:.1f}) | " + " | ".join(cells) + " |")
    sys.stdout.flush()

    print("\n### Running normalisation vs the window's, per published frame: p50 / p95 / max\n")
    print("| refresh r | abs(Δ min) dB | abs(Δ max) dB | largest normalised difference |")
    print("|---|---|---|---|")
    for refresh in (0, 4, 8):
        rows = np.concatenate([normalisation_deviation(a, front_end, refresh) for a in audios.values()])
        cells = [
            f"{np.percentile(rows[:, i], 50):.3f} / {np.percentile(rows[:, i], 95):.3f} / {rows[:, i].max():.3f}"
            for i in range(3)
        ]
        print(f"| {refresh} | " + " | ".join(cells) + " |")
    sys.stdout.flush()

    print("\n### Posteriors: incremental (refresh = lookahead) vs window engine at hop 1, mean / p99 / max\n")
    print("| lookahead k (ms) | onset | note | contour |")
    print("|---|---|---|---|")
    audio = audios[RECORDINGS[0]]
    for lookahead in (4, 8):
        window = run_frames(WindowEngine(model, lookahead, 1), audio)
        incremental = run_frames(IncrementalEngine(weights, lookahead, lookahead), audio)
        cells = []
        for name in ("onset", "note", "contour"):
            a = np.stack([getattr(f, name) for f in window])
            b = np.stack([getattr(f, name) for f in incremental])
            d = np.abs(a - b)
            cells.append(f"{d.mean():.4f} / {np.percentile(d, 99):.3f} / {d.max():.3f}")
        print(f"| {lookahead} ({1000 * (68 + 256 * lookahead) / 22050:.1f}) | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
