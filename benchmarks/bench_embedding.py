"""The engine embedded in a program (``livepitch.api``): numpy's BLAS threads, and a busy
Python thread beside it.

    python benchmarks/bench_embedding.py [--seconds 10] [--repeats 3]

Feeds the first ``--seconds`` of ``voice_vocadito/vocadito_1.wav`` (converted to 22050 Hz
first) through ``livepitch.api.open_engine()`` (the default incremental engine) in 1024-sample
blocks, in a fresh process per run, in these set-ups: numpy with OpenBLAS's default thread
count (one per core) and the engine holding BLAS to one thread around its calls (livepitch's
own code); the same with that hold turned off (the code before it); ``OPENBLAS_NUM_THREADS=1``
(as the ``livepitch`` command runs); and a Python thread busy-looping beside the feeding
thread, at Python's default switch interval (5 ms) and at the daemon's (0.5 ms). Each set-up
runs on an idle machine and beside one busy-looping process per core. Reports the process's
CPU time (all its threads: BLAS's, and a busy thread's), the feeding thread's own CPU time and
the feeding's wall time, per audio second (median over repeats), as markdown on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RECORDING = DATA / "voice_vocadito" / "vocadito_1.wav"

CHILD = """
import json, sys, time
import numpy as np
import soundfile
from livepitch.engine import stream_audio
from livepitch.api import open_engine
from livepitch.resample_stream import recording_to_model_rate
from livepitch.settings import AudioSettings
if sys.argv[2] == "off":  # the engine before it held BLAS to one thread
    import contextlib
    import livepitch.incremental_engine
    livepitch.incremental_engine.one_blas_thread = contextlib.nullcontext
if sys.argv[4] != "none":  # a Python thread computing beside the engine
    import threading
    def busy():
        while True:
            pass
    threading.Thread(target=busy, daemon=True).start()
    if sys.argv[4] != "default":
        sys.setswitchinterval(float(sys.argv[4]))
frames, rate_hz = soundfile.read(sys.argv[1], dtype="float32", always_2d=True)
frames = frames[: int(float(sys.argv[3]) * rate_hz)]
audio = recording_to_model_rate(frames, rate_hz, AudioSettings().resample_quality)
engine = open_engine()
wall, cpu, own = time.monotonic(), time.process_time(), time.thread_time()
events = sum(1 for _ in stream_audio(audio, engine, 1024))
print(json.dumps({
    "cpu_s": time.process_time() - cpu,
    "thread_cpu_s": time.thread_time() - own,
    "wall_s": time.monotonic() - wall,
    "events": events,
}))
"""

SETUPS = {
    "numpy's default BLAS threads, the engine holds them to one": ({}, "on", "none"),
    "numpy's default BLAS threads, no hold (before)": ({}, "off", "none"),
    "OPENBLAS_NUM_THREADS=1 (the livepitch command)": ({"OPENBLAS_NUM_THREADS": "1"}, "on", "none"),
    "a busy Python thread beside, switch interval 5 ms (Python's default)": ({}, "on", "default"),
    "a busy Python thread beside, switch interval 0.5 ms (the daemon's)": ({}, "on", "0.0005"),
}


def run_once(
    extra_env: dict[str, str], hold: str, busy: str, seconds: float, timeout_s: float
) -> dict[str, float] | None:
    env = {key: value for key, value in os.environ.items() if key != "OPENBLAS_NUM_THREADS"}
    env.update(extra_env)
    try:
        result = subprocess.run(
            [sys.executable, "-c", CHILD, str(RECORDING), hold, str(seconds), busy],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=True,
        )
    except subprocess.TimeoutExpired:
        return None
    values: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return values


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="audio streamed per run [s]")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--timeout-s", type=float, default=300.0, help="a run that takes longer is cut off")
    args = parser.parse_args()
    if not RECORDING.is_file():
        print(f"missing {RECORDING}", file=sys.stderr)
        return 2
    cores = os.cpu_count() or 1
    print(
        f"{args.seconds:g} s of {RECORDING.name}, {args.repeats} runs each, {cores} cores; per audio second\n"
    )
    print("| set-up | machine | process CPU [s] | feeding thread's CPU [s] | wall [s] | events |")
    print("|---|---|---|---|---|---|")
    for loaded in (False, True):
        burners = (
            [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(cores)]
            if loaded
            else []
        )
        try:
            time.sleep(0.5 if loaded else 0.0)
            for name, (extra_env, hold, busy) in SETUPS.items():
                runs = [
                    run_once(extra_env, hold, busy, args.seconds, args.timeout_s) for _ in range(args.repeats)
                ]
                done = [run for run in runs if run is not None]
                cut = len(runs) - len(done)
                cpu, own, wall = (
                    statistics.median(run[key] for run in done) / args.seconds if done else float("nan")
                    for key in ("cpu_s", "thread_cpu_s", "wall_s")
                )
                events = sorted({int(run["events"]) for run in done})
                note = f" ({cut} cut off at {args.timeout_s:g} s)" if cut else ""
                machine = f"{cores} busy loops beside" if loaded else "idle"
                print(
                    f"| {name} | {machine} | {cpu:.3f}{note} | {own:.3f} | {wall:.3f} | {events} |",
                    flush=True,
                )
        finally:
            for burner in burners:
                burner.kill()
                burner.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
