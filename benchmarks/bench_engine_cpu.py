"""CPU of the frame engines side by side: the default against the window engine (issue 5).

    python benchmarks/bench_engine_cpu.py [--repeats 3] [--seconds 20]

Runs each engine configuration on the first ``--seconds`` of every recording in
``../shared/data``, in 1024-sample blocks as ``livepitch transcribe --stream`` does, the
configurations interleaved (each repeat runs them all, in a rotated order) so that a noisy
machine slows them alike. Reports the frame engine's process CPU time per audio second
(median over repeats and recordings, and min-max) and its ratio to the window engine at its
old default (hop 3, 61.1 ms), which is computed in the same runs. numpy's BLAS and onnxruntime
each run on one thread, as in the ``livepitch`` command. The incremental engines run without
yielding the GIL between CNN layers, as the daemon runs them beside its C audio callback; one
row yields, as beside a Python callback. Prints markdown on stdout.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the livepitch command runs numpy (before it loads)

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))

from datasets import load_all

from livepitch.audio_file import read_audio
from livepitch.frames import FrameEngine
from livepitch.geometry import MODEL_RATE_HZ
from livepitch.incremental_engine import IncrementalEngine
from livepitch.model_file import resolve_model_path
from livepitch.onnx_model import BasicPitchModel
from livepitch.window_engine import WindowEngine

BLOCK_SAMPLES = 1024
BASELINE = "window, hop 3, 61.1 ms (old default)"


def engines(model: BasicPitchModel) -> dict[str, FrameEngine]:
    """The configurations compared, each built once (``reset`` between runs)."""
    weights = model.incremental_weights()

    def incremental(refresh_frames: int, yields: bool = False) -> IncrementalEngine:
        engine = IncrementalEngine(weights, 6, refresh_frames)
        engine.share_gil(yields)  # the daemon yields only beside a Python audio callback
        return engine

    return {
        "incremental, refresh 7, 72.7 ms (default)": incremental(7),
        "the default yielding the GIL (beside a Python audio callback)": incremental(7, yields=True),
        "incremental, refresh 6, 72.7 ms": incremental(6),
        "incremental, refresh 0, 72.7 ms": incremental(0),
        BASELINE: WindowEngine(model, 5, 3),
        "window, hop 1, 72.7 ms": WindowEngine(model, 6, 1),
    }


def cpu_per_audio_s(engine: FrameEngine, audio: npt.NDArray[np.float32]) -> float:
    """Process CPU seconds per audio second to stream ``audio`` through ``engine``."""
    engine.reset()
    start = time.process_time()
    for first in range(0, audio.shape[0], BLOCK_SAMPLES):
        engine.push(audio[first : first + BLOCK_SAMPLES])
    engine.flush()
    cpu_s = time.process_time() - start
    return float(cpu_s * MODEL_RATE_HZ / audio.shape[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20.0, help="audio per recording [s]")
    args = parser.parse_args()

    model = BasicPitchModel(resolve_model_path(), threads=1)
    configs = engines(model)
    audios = [read_audio(r.audio_path)[: round(args.seconds * MODEL_RATE_HZ)] for r in load_all()]
    for engine in configs.values():
        engine.warm_up()
    samples: dict[str, list[float]] = {name: [] for name in configs}
    names = list(configs)
    for repeat in range(args.repeats):
        for audio in audios:
            shift = repeat % len(names)
            for name in names[shift:] + names[:shift]:
                samples[name].append(cpu_per_audio_s(configs[name], audio))
    baseline = statistics.median(samples[BASELINE])
    total_s = sum(a.shape[0] for a in audios) / MODEL_RATE_HZ
    print(f"{len(audios)} recordings, {total_s:.1f} s of audio, {args.repeats} repeats\n")
    print("| engine | CPU s per audio s, median (min-max) | against the old default |")
    print("|---|---|---|")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.3f} ({min(values):.3f}-{max(values):.3f}) | {median / baseline:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
