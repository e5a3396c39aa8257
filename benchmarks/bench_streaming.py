"""Streaming engine benchmark: accuracy, latency, bends and CPU against lookahead and hop.

For every (lookahead, hop) and every recording in ``../shared/data``, replays the audio through
the streaming engine exactly as ``livepitch transcribe --stream`` does and reports, per dataset
(notes pooled over its files):

* note F1 onset-only and with offsets against the annotations (mir_eval, 50 ms / 50 cents),
  and the same against livepitch's offline transcription of the same audio;
* note-on latency: ``emitted_s`` of each matched note-on minus the annotated onset, p50/p95;
* pitch-bend error on ``vocadito_1``: |sounding pitch + bend - annotated f0| in cents, median
  and p95 over voiced frames where a note within a semitone sounds;
* CPU seconds per audio second of the engine (model + tracker), one onnxruntime thread.

Usage: ``python benchmarks/bench_streaming.py [--lookahead-ms 25 50 ...] [--hops 2 4 8]
[--incremental-cqt-frames 0 2 4]`` (the incremental engine always has a hop of one frame).
Frames from the model are cached in ``benchmarks/results/`` so tracker-only reruns are fast.
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as the livepitch command runs numpy (before it loads)

import mir_eval
import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))

from datasets import NoteArray, NoteCounts, Recording, count_matches, load_all

from livepitch.audio_file import read_audio
from livepitch.engine import StreamingEngine
from livepitch.event_files import events_to_notes
from livepitch.events import Event, NoteOn
from livepitch.frames import Frame, FrameEngine
from livepitch.incremental_engine import IncrementalEngine
from livepitch.model_file import resolve_model_path
from livepitch.onnx_model import BasicPitchModel
from livepitch.settings import LiveSettings, TranscribeSettings
from livepitch.tracker import NoteTracker
from livepitch.transcribe import transcribe_audio
from livepitch.voices import VoiceAllocator
from livepitch.window_engine import WindowEngine, lookahead_frames_for_ms

RESULTS = Path(__file__).resolve().parent / "results"
RATE_HZ = 22050


@dataclass
class FrameRun:
    """Frames of one recording at one (lookahead, hop), and the CPU time they took."""

    frames: list[Frame]
    cpu_s: float
    audio_s: float


@dataclass(frozen=True)
class EngineChoice:
    """Which frame engine a row uses: the window engine at ``hop``, or the incremental engine
    (hop 1) with ``cqt_frames`` of the lookahead given to the CQT."""

    kind: str
    hop: int = 1
    cqt_frames: int = 0

    @property
    def key(self) -> str:
        return f"h{self.hop}" if self.kind == "window" else f"inc5_r{self.cqt_frames}"

    @property
    def label(self) -> str:
        return (
            f"window, hop {self.hop}" if self.kind == "window" else f"incremental, refresh {self.cqt_frames}"
        )


def compute_frames(
    audio: npt.NDArray[np.float32], model: BasicPitchModel, k: int, choice: EngineChoice
) -> FrameRun:
    engine: FrameEngine
    if choice.kind == "window":
        engine = WindowEngine(model, k, choice.hop)
    else:
        engine = IncrementalEngine(model.incremental_weights(), k, choice.cqt_frames)
    start = time.process_time()
    frames: list[Frame] = []
    for i in range(0, audio.shape[0], 1024):
        frames.extend(engine.push(audio[i : i + 1024]))
    frames.extend(engine.flush())
    return FrameRun(frames, time.process_time() - start, audio.shape[0] / RATE_HZ)


def cached_frames(
    recording: Recording, audio: npt.NDArray[np.float32], model: BasicPitchModel, k: int, choice: EngineChoice
) -> FrameRun:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"frames_v4_{recording.name}_k{k}_{choice.key}.pkl"
    if path.exists():
        with open(path, "rb") as handle:
            run: FrameRun = pickle.load(handle)
        return run
    run = compute_frames(audio, model, k, choice)
    with open(path, "wb") as handle:
        pickle.dump(run, handle)
    return run


class _ReplayFrames:
    """A ``FrameEngine`` that replays recorded frames (so tracker settings can be swept)."""

    def __init__(self, frames: list[Frame], n_samples: int) -> None:
        self._frames = frames
        self._n_samples = n_samples

    hop_frames = 1

    @property
    def lookahead_samples(self) -> int:
        return 0

    @property
    def consumed_samples(self) -> int:
        return self._n_samples

    def push(self, block: npt.NDArray[np.float32]) -> list[Frame]:
        return []

    def flush(self) -> list[Frame]:
        return self._frames

    def reset(self) -> None:
        return None

    def warm_up(self) -> None:
        return None

    def share_gil(self, promptly: bool) -> None:
        return None


def track(
    frames: list[Frame], audio: npt.NDArray[np.float32], settings: LiveSettings
) -> tuple[list[Event], float]:
    """Run tracker + voices over recorded frames of ``audio`` (which sets the input levels
    the noise gate reads); return events and tracker CPU seconds."""
    engine = StreamingEngine(
        _ReplayFrames(frames, audio.shape[0]),
        NoteTracker(settings.tracker.tracker_params(settings.midi.max_followed_bend_semitones)),
        VoiceAllocator(
            settings.midi.bends,
            settings.midi.effective_bend_range_semitones,
            settings.tracker.bend_threshold_cents,
        ),
    )
    start = time.process_time()
    events = engine.feed(audio)  # the levels only: the recorded frames come at the end
    events += engine.finish()
    return events, time.process_time() - start


def notes_array(events: list[Event]) -> NoteArray:
    notes = events_to_notes(events)
    return np.array([[n.start_s, n.end_s, n.pitch] for n in notes], dtype=np.float64).reshape(-1, 3)


def note_on_latencies_s(reference: NoteArray, events: list[Event]) -> list[float]:
    """emitted_s of each note-on matched (onset-only) to an annotated note, minus its onset."""
    ons = [e for e in events if isinstance(e, NoteOn)]
    if not ons or not len(reference):
        return []
    est_intervals = np.array([[e.time_sample / RATE_HZ, e.time_sample / RATE_HZ + 0.1] for e in ons])
    est_hz = 440.0 * 2.0 ** ((np.array([e.pitch for e in ons]) - 69.0) / 12.0)
    ref_hz = 440.0 * 2.0 ** ((reference[:, 2] - 69.0) / 12.0)
    pairs = mir_eval.transcription.match_notes(
        reference[:, :2],
        ref_hz,
        est_intervals,
        est_hz,
        onset_tolerance=0.05,
        pitch_tolerance=50.0,
        offset_ratio=None,
    )
    return [ons[j].emitted_sample / RATE_HZ - reference[i, 0] for i, j in pairs]


def bend_errors_cents(events: list[Event], f0_path: Path) -> list[float]:
    """|note + bend - f0| [cents] at annotated voiced frames where a note within 100 cents sounds."""
    table = np.loadtxt(f0_path, delimiter=",")
    times, hz = table[:, 0], table[:, 1]
    notes = events_to_notes(events)
    errors: list[float] = []
    for t, f in zip(times.tolist(), hz.tolist(), strict=True):
        if f <= 0:
            continue
        truth = 69.0 + 12.0 * np.log2(f / 440.0)
        sample = t * RATE_HZ
        best: float | None = None
        for note in notes:
            if note.start_sample <= sample < note.end_sample:
                bend = 0.0
                if note.has_bends:
                    idx = np.searchsorted(note.bend_samples, sample, side="right") - 1
                    bend = float(note.bend_semitones[idx]) if idx >= 0 else 0.0
                error = abs(note.pitch + bend - truth) * 100.0
                if best is None or error < best:
                    best = error
        if best is not None and best < 100.0:
            errors.append(best)
    return errors


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


@dataclass
class Row:
    dataset: str
    counts: NoteCounts
    vs_offline: NoteCounts
    latencies_s: list[float]
    cpu_s: float
    audio_s: float
    engine_cpu_s: float


def evaluate(
    recordings: list[Recording],
    audios: dict[str, npt.NDArray[np.float32]],
    offline: dict[str, NoteArray],
    model: BasicPitchModel,
    k: int,
    choice: EngineChoice,
    settings: LiveSettings,
) -> tuple[dict[str, Row], list[float]]:
    rows: dict[str, Row] = {}
    bend_errors: list[float] = []
    for recording in recordings:
        run = cached_frames(recording, audios[recording.name], model, k, choice)
        events, tracker_cpu_s = track(run.frames, audios[recording.name], settings)
        estimate = notes_array(events)
        counts = count_matches(recording.notes, estimate)
        versus = count_matches(offline[recording.name], estimate)
        latencies = note_on_latencies_s(recording.notes, events)
        row = rows.get(recording.dataset)
        cpu = run.cpu_s + tracker_cpu_s
        if row is None:
            rows[recording.dataset] = Row(
                recording.dataset, counts, versus, latencies, cpu, run.audio_s, run.cpu_s
            )
        else:
            row.counts += counts
            row.vs_offline += versus
            row.latencies_s += latencies
            row.cpu_s += cpu
            row.audio_s += run.audio_s
            row.engine_cpu_s += run.cpu_s
        if recording.name == "vocadito_1":
            bend_errors = bend_errors_cents(events, recording.audio_path.with_name("vocadito_1_f0.csv"))
    return rows, bend_errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--lookahead-ms", type=float, nargs="+", default=[26.3, 49.5, 72.7, 96.0, 154.0, 246.9]
    )
    parser.add_argument("--hops", type=int, nargs="+", default=[2, 4, 8], help="window engine hops")
    parser.add_argument(
        "--incremental-cqt-frames",
        type=int,
        nargs="*",
        default=[],
        metavar="D",
        help="also run the incremental engine with D frames of the lookahead given to the CQT",
    )
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="tracker setting")
    args = parser.parse_args()

    tracker_values: dict[str, object] = {}
    for item in args.set:
        field, value = item.split("=", 1)
        tracker_values[field] = value
    settings = LiveSettings.model_validate({"tracker": tracker_values, "model": {"threads": 1}})

    model = BasicPitchModel(resolve_model_path(), threads=1)
    recordings = load_all()
    audios = {r.name: read_audio(r.audio_path) for r in recordings}
    offline: dict[str, NoteArray] = {}
    offline_counts: dict[str, NoteCounts] = {}
    for recording in recordings:
        notes = transcribe_audio(audios[recording.name], model, TranscribeSettings()).notes
        offline[recording.name] = np.array([[n.start_s, n.end_s, n.pitch] for n in notes]).reshape(-1, 3)
        c = count_matches(recording.notes, offline[recording.name])
        offline_counts[recording.dataset] = (
            offline_counts[recording.dataset] + c if recording.dataset in offline_counts else c
        )

    print("| dataset | offline F1 onset | offline F1 offset |")
    print("|---|---|---|")
    for dataset, c in offline_counts.items():
        print(f"| {dataset} | {c.f1_onset:.3f} | {c.f1_offset:.3f} |")
    print()
    print(
        "| lookahead ms (used) | engine | dataset | F1 onset | F1 offset | F1 onset vs offline | F1 offset vs offline "
        "| note-on latency p50 / p95 ms | CPU s per audio s (frame engine only) |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for lookahead_ms in args.lookahead_ms:
        k = lookahead_frames_for_ms(lookahead_ms)
        used_ms = 1000.0 * (68 + 256 * k) / RATE_HZ
        choices = [EngineChoice("window", hop=hop) for hop in args.hops]
        choices += [EngineChoice("incremental", cqt_frames=d) for d in args.incremental_cqt_frames]
        for choice in choices:
            hop = choice.label
            rows, bend_errors = evaluate(recordings, audios, offline, model, k, choice, settings)
            for row in rows.values():
                lat = [1000.0 * x for x in row.latencies_s]
                print(
                    f"| {lookahead_ms:g} ({used_ms:.1f}) | {hop} | {row.dataset} | {row.counts.f1_onset:.3f} "
                    f"| {row.counts.f1_offset:.3f} | {row.vs_offline.f1_onset:.3f} | {row.vs_offline.f1_offset:.3f} "
                    f"| {percentile(lat, 50):.0f} / {percentile(lat, 95):.0f} "
                    f"| {row.cpu_s / row.audio_s:.3f} ({row.engine_cpu_s / row.audio_s:.3f}) |"
                )
            print(
                f"| {lookahead_ms:g} ({used_ms:.1f}) | {hop} | bends vocadito_1 | median {percentile(bend_errors, 50):.1f} "
                f"cents | p95 {percentile(bend_errors, 95):.1f} cents | frames {len(bend_errors)} | | | |"
            )
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
