"""Offline transcription: ``livepitch transcribe`` against the upstream ``basic-pitch`` CLI.

    benchmarks/setup_upstream.sh                 # once: upstream Basic Pitch 0.4.0 in its own venv
    python benchmarks/bench_transcribe.py        # from the livepitch venv

1. Speed and memory. A 30 s recording (the first 30 s of ``voice_vocadito/vocadito_1.wav``,
   44.1 kHz mono 16-bit, written to a temporary directory) is transcribed by the two CLIs as
   separate processes, alternately (livepitch first in pairs 1, 3, 5, ..., upstream first in
   pairs 2, 4, ...) after one warm-up run of each. Wall time is measured around ``Popen`` ... ``wait4`` and
   peak RSS is the child's own ``ru_maxrss`` as returned by ``os.wait4``.
2. Accuracy. Every annotated recording in the shared data directory is transcribed by
   livepitch (Python API, default settings) and by the upstream CLI (``--save-note-events``,
   default settings), and both are scored with mir_eval's note F1: onset only, and with
   offsets (onset 50 ms, pitch 50 cents, offset 20 % of the note or at least 50 ms).

Prints markdown for ``docs/benchmarks.md`` and exits 0 (2 when the upstream venv is missing).
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile
from datasets import NoteArray, NoteCounts, Recording, count_matches, data_dir, load_all, note_f1

REPO = Path(__file__).resolve().parents[1]
DEFAULT_UPSTREAM_VENV = REPO / "benchmarks" / ".upstream-venv"
RECORDING_SECONDS = 30.0
TARGET_WALL_RATIO = 0.40
TARGET_RSS_RATIO = 0.50


# ---------------------------------------------------------------------------------------------
# running a process and measuring it


@dataclass(frozen=True)
class Run:
    """One measured process."""

    tool: str
    wall_s: float
    cpu_s: float
    peak_rss_mb: float


def measure(tool: str, command: Sequence[str], log_path: Path) -> Run:
    """Run ``command`` to completion; wall time, user+sys CPU time and peak RSS of the process.

    ``os.wait4`` returns the child's own rusage, so ``ru_maxrss`` (KiB on Linux) is the peak
    resident set of that process alone, not a maximum over earlier children.
    """
    with log_path.open("wb") as log:
        start = time.perf_counter()
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        wall_s = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{shlex.join(command)} exited {process.returncode}; see {log_path}")
    return Run(
        tool=tool,
        wall_s=wall_s,
        cpu_s=usage.ru_utime + usage.ru_stime,
        peak_rss_mb=usage.ru_maxrss / 1024.0,
    )


@dataclass(frozen=True)
class Tools:
    """The two command lines and the interpreters behind them."""

    livepitch: list[str]
    upstream: list[str]
    upstream_python: Path


def find_tools(upstream_venv: Path) -> Tools | None:
    """The ``livepitch`` and ``basic-pitch`` executables, or None when upstream is missing."""
    upstream = upstream_venv / "bin" / "basic-pitch"
    upstream_python = upstream_venv / "bin" / "python"
    if not (upstream.is_file() and upstream_python.is_file()):
        return None
    livepitch = Path(sys.executable).parent / "livepitch"
    livepitch_command = [str(livepitch)] if livepitch.is_file() else [sys.executable, "-m", "livepitch"]
    return Tools(livepitch=livepitch_command, upstream=[str(upstream)], upstream_python=upstream_python)


def livepitch_run(tools: Tools, audio: Path, work: Path, tag: str) -> Run:
    """``livepitch transcribe AUDIO -o OUT.mid``."""
    midi = work / f"livepitch_{tag}.mid"
    run = measure(
        "livepitch",
        [*tools.livepitch, "transcribe", str(audio), "-o", str(midi)],
        work / f"livepitch_{tag}.log",
    )
    if not midi.is_file():
        raise RuntimeError(f"livepitch wrote no {midi}")
    return run


def upstream_run(tools: Tools, audio: Path, work: Path, tag: str) -> Run:
    """``basic-pitch OUT_DIR AUDIO`` (writes ``OUT_DIR/<stem>_basic_pitch.mid``).

    The directory must be fresh: upstream refuses to overwrite. Upstream also exits 0 after
    printing an error, so the output file is checked.
    """
    out_dir = work / f"upstream_{tag}"
    out_dir.mkdir()
    run = measure("upstream", [*tools.upstream, str(out_dir), str(audio)], work / f"upstream_{tag}.log")
    midi = out_dir / f"{audio.stem}_basic_pitch.mid"
    if not midi.is_file():
        raise RuntimeError(f"basic-pitch wrote no {midi}; see {work / f'upstream_{tag}.log'}")
    return run


# ---------------------------------------------------------------------------------------------
# part 1: speed and memory


def make_recording(work: Path) -> tuple[Path, str]:
    """The first 30 s of vocadito_1.wav, same format, and a description of it."""
    source = data_dir() / "voice_vocadito" / "vocadito_1.wav"
    info = soundfile.info(str(source))
    frames = round(RECORDING_SECONDS * info.samplerate)
    if info.frames < frames:
        raise RuntimeError(f"{source} is shorter than {RECORDING_SECONDS} s")
    data, rate = soundfile.read(str(source), frames=frames, dtype="int16", always_2d=True)
    target = work / "vocadito_1_first30s.wav"
    soundfile.write(str(target), data, rate, subtype=info.subtype)
    description = (
        f"first {RECORDING_SECONDS:g} s of `voice_vocadito/vocadito_1.wav` (solo voice), "
        f"{rate} Hz, {'mono' if info.channels == 1 else f'{info.channels} channels'}, {info.subtype}"
    )
    return target, description


def run_speed(tools: Tools, audio: Path, work: Path, repeats: int) -> list[Run]:
    """Warm up both tools, then alternate them ``repeats`` times (order flipped every run)."""
    livepitch_run(tools, audio, work, "warmup")
    upstream_run(tools, audio, work, "warmup")
    runs: list[Run] = []
    for index in range(repeats):
        order = ("livepitch", "upstream") if index % 2 == 0 else ("upstream", "livepitch")
        for tool in order:
            run = (livepitch_run if tool == "livepitch" else upstream_run)(tools, audio, work, str(index))
            print(
                f"  run {index + 1}/{repeats} {tool:9s} wall {run.wall_s:6.2f} s  cpu {run.cpu_s:6.2f} s  "
                f"peak RSS {run.peak_rss_mb:6.1f} MB",
                file=sys.stderr,
            )
            runs.append(run)
    return runs


def speed_table(runs: list[Run]) -> tuple[str, dict[str, float]]:
    """Markdown table of the runs and the ratios the targets are checked on."""
    lp = [run for run in runs if run.tool == "livepitch"]
    up = [run for run in runs if run.tool == "upstream"]

    def row(name: str, selected: list[Run]) -> str:
        walls = [run.wall_s for run in selected]
        cpus = [run.cpu_s for run in selected]
        rss = [run.peak_rss_mb for run in selected]
        return (
            f"| {name} | {len(selected)} | {statistics.median(walls):.2f} | {min(walls):.2f} | "
            f"{statistics.median(cpus):.2f} | {statistics.median(rss):.0f} | {max(rss):.0f} |"
        )

    def median_of(selected: list[Run], field: str) -> float:
        return statistics.median(float(getattr(run, field)) for run in selected)

    ratios = {
        "wall_median": median_of(lp, "wall_s") / median_of(up, "wall_s"),
        "wall_min": min(r.wall_s for r in lp) / min(r.wall_s for r in up),
        "wall_paired_median": statistics.median(a.wall_s / b.wall_s for a, b in zip(lp, up, strict=True)),
        "cpu_median": median_of(lp, "cpu_s") / median_of(up, "cpu_s"),
        "rss_median": median_of(lp, "peak_rss_mb") / median_of(up, "peak_rss_mb"),
        "rss_max": max(r.peak_rss_mb for r in lp) / max(r.peak_rss_mb for r in up),
    }
    lines = [
        "| tool | runs | wall median [s] | wall min [s] | CPU user+sys median [s] | peak RSS median [MB] | peak RSS max [MB] |",
        "|---|---|---|---|---|---|---|",
        row("upstream `basic-pitch` 0.4.0 (ONNX)", up),
        row("`livepitch transcribe`", lp),
        f"| **livepitch / upstream** | | **{ratios['wall_median']:.0%}** | {ratios['wall_min']:.0%} | "
        f"{ratios['cpu_median']:.0%} | **{ratios['rss_median']:.0%}** | {ratios['rss_max']:.0%} |",
    ]
    table = "\n".join(lines)
    table += (
        f"\n\nMedian of the per-pair wall-time ratios (run i of livepitch / run i of upstream): "
        f"{ratios['wall_paired_median']:.0%}."
    )
    return table, ratios


# ---------------------------------------------------------------------------------------------
# part 2: accuracy


def livepitch_notes(recordings: list[Recording]) -> dict[str, NoteArray]:
    """Transcribe every recording in-process with livepitch's default settings."""
    from livepitch.model_file import resolve_model_path
    from livepitch.onnx_model import BasicPitchModel
    from livepitch.settings import TranscribeSettings
    from livepitch.transcribe import transcribe_file

    settings = TranscribeSettings()
    model = BasicPitchModel(resolve_model_path(settings.model.path), threads=settings.model.threads)
    notes: dict[str, NoteArray] = {}
    for recording in recordings:
        result = transcribe_file(recording.audio_path, model, settings)
        rows = [(note.start_s, note.end_s, float(note.pitch)) for note in result.notes]
        notes[recording.name] = np.asarray(rows, dtype=np.float64).reshape(-1, 3)
    return notes


def read_upstream_csv(path: Path) -> NoteArray:
    """Upstream's note-events CSV: ``start_time_s,end_time_s,pitch_midi,velocity[,bends...]``."""
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        if header[:3] != ["start_time_s", "end_time_s", "pitch_midi"]:
            raise RuntimeError(f"{path}: unexpected header {header}")
        rows = [(float(r[0]), float(r[1]), float(r[2])) for r in reader if r]
    return np.asarray(rows, dtype=np.float64).reshape(-1, 3)


def upstream_notes(tools: Tools, recordings: list[Recording], work: Path) -> dict[str, NoteArray]:
    """Transcribe every recording with one ``basic-pitch --save-note-events`` process."""
    out_dir = work / "upstream_accuracy"
    out_dir.mkdir()
    audio = [str(recording.audio_path) for recording in recordings]
    measure(
        "upstream",
        [*tools.upstream, str(out_dir), *audio, "--save-note-events"],
        work / "upstream_accuracy.log",
    )
    notes: dict[str, NoteArray] = {}
    for recording in recordings:
        path = out_dir / f"{recording.audio_path.stem}_basic_pitch.csv"
        if not path.is_file():
            raise RuntimeError(f"basic-pitch wrote no {path}; see {work / 'upstream_accuracy.log'}")
        notes[recording.name] = read_upstream_csv(path)
    return notes


@dataclass(frozen=True)
class Scores:
    """Counts of one tool on one recording or pooled over a dataset."""

    upstream: NoteCounts
    livepitch: NoteCounts

    @property
    def target_met(self) -> bool:
        eps = 1e-12
        return (
            self.livepitch.f1_onset >= self.upstream.f1_onset - eps
            and self.livepitch.f1_offset >= self.upstream.f1_offset - eps
        )


def score(
    recordings: list[Recording], upstream: dict[str, NoteArray], livepitch: dict[str, NoteArray]
) -> dict[str, Scores]:
    """Counts per recording, checked against mir_eval's own F1."""
    scores: dict[str, Scores] = {}
    for recording in recordings:
        counts: list[NoteCounts] = []
        for estimate in (upstream[recording.name], livepitch[recording.name]):
            count = count_matches(recording.notes, estimate)
            for with_offsets, f1 in ((False, count.f1_onset), (True, count.f1_offset)):
                reference_f1 = note_f1(recording.notes, estimate, with_offsets)
                if abs(reference_f1 - f1) > 1e-9:
                    raise RuntimeError(f"{recording.name}: F1 from counts {f1} != mir_eval {reference_f1}")
            counts.append(count)
        scores[recording.name] = Scores(upstream=counts[0], livepitch=counts[1])
    return scores


def accuracy_tables(recordings: list[Recording], scores: dict[str, Scores]) -> tuple[str, bool]:
    """Per-dataset table (counts pooled over a dataset's files), per-recording table, verdict."""
    header = (
        "| {what} | ref notes | upstream notes | livepitch notes | F1 onset, upstream | F1 onset, livepitch "
        "| F1 with offset, upstream | F1 with offset, livepitch | livepitch >= upstream |\n"
        "|---|---|---|---|---|---|---|---|---|"
    )

    def row(name: str, pooled: Scores) -> str:
        up, lp = pooled.upstream, pooled.livepitch
        return (
            f"| {name} | {up.n_ref} | {up.n_est} | {lp.n_est} | {up.f1_onset:.3f} | {lp.f1_onset:.3f} | "
            f"{up.f1_offset:.3f} | {lp.f1_offset:.3f} | {'yes' if pooled.target_met else '**no**'} |"
        )

    datasets: dict[str, Scores] = {}
    for recording in recordings:
        s = scores[recording.name]
        if recording.dataset in datasets:
            previous = datasets[recording.dataset]
            s = Scores(upstream=previous.upstream + s.upstream, livepitch=previous.livepitch + s.livepitch)
        datasets[recording.dataset] = s
    per_dataset = [header.format(what="dataset")] + [row(name, s) for name, s in datasets.items()]
    per_recording = [header.format(what="recording")] + [
        row(f"{r.dataset}/{r.name}", scores[r.name]) for r in recordings
    ]
    all_met = all(s.target_met for s in datasets.values())
    text = (
        "\n".join(per_dataset)
        + "\n\nA dataset's F1 pools its files' counts (2 x matched / (ref + estimated notes)).\n\n"
        + "\n".join(per_recording)
    )
    return text, all_met


# ---------------------------------------------------------------------------------------------
# report


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def upstream_versions(tools: Tools) -> str:
    script = (
        "import importlib.metadata as m, platform; "
        "print(platform.python_version(), *(p + ' ' + m.version(p) for p in "
        "('basic-pitch', 'onnxruntime', 'librosa', 'numpy')), sep=', ')"
    )
    result = subprocess.run(
        [str(tools.upstream_python), "-c", script], capture_output=True, text=True, check=True
    )
    return result.stdout.strip()


def livepitch_versions() -> str:
    import importlib.metadata as metadata

    packages = ("livepitch", "onnxruntime", "numpy", "soxr", "mir_eval")
    return ", ".join([platform.python_version(), *(f"{p} {metadata.version(p)}" for p in packages)])


def machine_lines(tools: Tools) -> list[str]:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return [
        f"- date: {datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}",
        f"- machine: {cores} cores (`nproc`), {cpu_model()}, {platform.system()} {platform.release()}",
        f"- livepitch venv: Python {livepitch_versions()}",
        f"- upstream venv: Python {upstream_versions(tools)}",
        f"- command: `{shlex.join(['python', 'benchmarks/bench_transcribe.py', *sys.argv[1:]])}`",
    ]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-n", "--repeats", type=int, default=5, help="timed runs of each tool (5)")
    parser.add_argument(
        "--upstream-venv",
        type=Path,
        default=DEFAULT_UPSTREAM_VENV,
        help="venv made by benchmarks/setup_upstream.sh (benchmarks/.upstream-venv)",
    )
    parser.add_argument("--skip-speed", action="store_true", help="only the accuracy part")
    parser.add_argument("--skip-accuracy", action="store_true", help="only the speed part")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also save the raw results as JSON")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    tools = find_tools(args.upstream_venv)
    if tools is None:
        print(
            f"upstream Basic Pitch venv not found at {args.upstream_venv}; create it with "
            "benchmarks/setup_upstream.sh (or pass --upstream-venv)",
            file=sys.stderr,
        )
        return 2
    results: dict[str, object] = {}
    print("## Offline transcription vs upstream Basic Pitch (issue 2)\n")
    print("\n".join(machine_lines(tools)))
    with tempfile.TemporaryDirectory(prefix="livepitch-bench-") as tmp:
        work = Path(tmp)
        if not args.skip_speed:
            audio, description = make_recording(work)
            print(f"\n### Speed and memory\n\nRecording: {description}. ", end="")
            print(
                f"One warm-up run of each tool, then {args.repeats} timed run(s) of each, alternating "
                "(livepitch first on odd-numbered pairs, upstream first on even ones); each run is a "
                "separate process, wall time from spawn to exit, peak RSS = the process's "
                "`ru_maxrss` from `os.wait4`.\n",
                flush=True,
            )
            runs = run_speed(tools, audio, work, args.repeats)
            table, ratios = speed_table(runs)
            print(table)
            wall_ok = ratios["wall_median"] <= TARGET_WALL_RATIO
            rss_ok = ratios["rss_median"] <= TARGET_RSS_RATIO
            print(
                f"\nTargets: wall time <= {TARGET_WALL_RATIO:.0%} of upstream: "
                f"{'met' if wall_ok else 'NOT met'} ({ratios['wall_median']:.0%}); "
                f"peak RSS <= {TARGET_RSS_RATIO:.0%}: {'met' if rss_ok else 'NOT met'} "
                f"({ratios['rss_median']:.0%}).",
                flush=True,
            )
            results["speed"] = {"recording": description, "runs": [asdict(r) for r in runs], "ratios": ratios}
        if not args.skip_accuracy:
            recordings = load_all()
            shown_data_dir = os.path.relpath(data_dir(), REPO)
            upstream = upstream_notes(tools, recordings, work)
            livepitch = livepitch_notes(recordings)
            scores = score(recordings, upstream, livepitch)
            text, all_met = accuracy_tables(recordings, scores)
            print(
                f"\n### Note accuracy (mir_eval)\n\nAnnotations from `{shown_data_dir}` (vocadito: annotator A1). "
                "Both tools with default settings; mir_eval `precision_recall_f1_overlap`, onset tolerance "
                "50 ms, pitch tolerance 50 cents, offsets (when scored) within 20 % of the reference note's "
                "length or 50 ms.\n"
            )
            print(text)
            print(f"\nTarget F1 >= upstream on every dataset: {'met' if all_met else 'NOT met'}.")
            results["accuracy"] = {
                name: {"upstream": asdict(s.upstream), "livepitch": asdict(s.livepitch)}
                for name, s in scores.items()
            }
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
