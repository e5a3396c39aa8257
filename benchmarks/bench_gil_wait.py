"""How long another Python thread waits for the GIL while an engine runs (issue 4's overflows).

    python benchmarks/bench_gil_wait.py [--seconds 20] [--repeats 2]

With ``--audio-callback python`` (or where its C callback was not built) the live daemon's
audio callback is Python code on PortAudio's thread: each device block it must take the GIL
from the worker, which runs the engine. This replays the first ``--seconds``
of vocadito_1 through each engine in 512-sample blocks, pausing a quarter of a block's
duration between blocks as a live worker idles, while a second thread stands in for the
callback: it sleeps 2 ms, then measures how late it woke (the wait for the GIL, plus the
scheduler's). Reports that lateness (p50 / p99 / p99.9 / max, and how many ticks came more than
2 and 5 ms late) per engine, and the worker's CPU per audio second, with the daemon's GIL
switch interval (0.5 ms). ``--no-yield`` turns off the incremental CNN's yielding between
layers (``livepitch.streaming_cnn.YIELD_EVERY_S``) for comparison. Prints markdown.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the livepitch command runs numpy (before it loads)

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from datasets import data_dir

from livepitch import streaming_cnn
from livepitch.audio_file import read_audio
from livepitch.engine import build_engine
from livepitch.geometry import MODEL_RATE_HZ
from livepitch.model_file import resolve_model_path
from livepitch.onnx_model import BasicPitchModel
from livepitch.settings import LiveSettings

SWITCH_INTERVAL_S = 0.0005  # as the daemon sets it (livepitch.daemon.GIL_SWITCH_INTERVAL_S)
TICK_S = 0.002
BLOCK_SAMPLES = 512
ENGINES = {
    "incremental, 72.7 ms, refresh 7 (default)": {},
    "window, hop 3, 61.1 ms": {"engine": "window", "lookahead_ms": 60.0},
}


def run(model: BasicPitchModel, stream: dict[str, object], audio: np.ndarray) -> tuple[np.ndarray, float]:
    """Ticker lateness [ms] while ``audio`` streams through the engine, and the worker's CPU [s]."""
    engine = build_engine(model, LiveSettings.model_validate({"stream": stream}))
    engine.frames.warm_up()
    late_ms: list[float] = []
    stop = threading.Event()

    def ticker() -> None:
        while not stop.is_set():
            start = time.perf_counter()
            time.sleep(TICK_S)
            late_ms.append(1000.0 * (time.perf_counter() - start - TICK_S))

    thread = threading.Thread(target=ticker)
    thread.start()
    cpu_start = time.thread_time()
    for first in range(0, audio.shape[0], BLOCK_SAMPLES):
        engine.feed(audio[first : first + BLOCK_SAMPLES])
        time.sleep(BLOCK_SAMPLES / MODEL_RATE_HZ / 4)
    cpu_s = time.thread_time() - cpu_start
    stop.set()
    thread.join()
    return np.array(late_ms), cpu_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--no-yield", action="store_true", help="the incremental CNN never yields")
    args = parser.parse_args()
    if args.no_yield:
        streaming_cnn.YIELD_EVERY_S = float("inf")
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    model = BasicPitchModel(resolve_model_path(), threads=1)
    audio = read_audio(data_dir() / "voice_vocadito" / "vocadito_1.wav")[
        : round(args.seconds * MODEL_RATE_HZ)
    ]
    print(
        f"yielding between CNN layers: {'off' if args.no_yield else 'on'}; {args.repeats} runs of {args.seconds:g} s\n"
    )
    print(
        "| engine | run | ticks | late p50 / p99 / p99.9 / max ms | > 2 ms | > 5 ms | worker CPU s per audio s |"
    )
    print("|---|---|---|---|---|---|---|")
    for repeat in range(args.repeats):
        for name, stream in ENGINES.items():
            late, cpu_s = run(model, stream, audio)
            p50, p99, p999 = np.percentile(late, [50, 99, 99.9])
            print(
                f"| {name} | {repeat + 1} | {late.size} | {p50:.2f} / {p99:.2f} / {p999:.2f} / {late.max():.2f} "
                f"| {(late > 2).sum()} | {(late > 5).sum()} | {cpu_s / args.seconds:.3f} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
