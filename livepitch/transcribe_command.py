"""``livepitch transcribe``: files to MIDI, offline or through the live engine (``--stream``),
and where each input's outputs go."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path

from livepitch.cli_settings import live_settings_from_args, transcribe_settings_from_args
from livepitch.errors import ConfigError, LivepitchError, OutputError
from livepitch.geometry import MODEL_RATE_HZ
from livepitch.logs import report_error
from livepitch.paths import cannot_write, is_directory, is_regular_file, stat_or_none

EXIT_OK = 0


_STREAM_ONLY = (
    "engine",
    "lookahead_ms",
    "hop_frames",
    "cqt_refresh_frames",
    "block_samples",
    "events_csv",
    "release_ms",
    "max_polyphony",
    "bend_threshold_cents",
    "probation_ms",
    "gate_dbfs",
    "confirm_with_preview",
    "bend_smoothing_ms",
)


def _with_suffix(path: Path, suffixes: tuple[str, ...]) -> Path:
    """``path`` as named, or with the first of ``suffixes`` if it has none (``-o take``)."""
    return path if path.suffix else path.with_name(path.name + suffixes[0])


def _count(n: int, noun: str) -> str:
    """``1 note``, ``2 notes``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def plan_outputs(
    inputs: Sequence[Path], target_text: str | None, suffixes: tuple[str, ...], default_here: bool
) -> list[Path | None]:
    """One output path per input: ``target_text`` itself for one input, else files in a directory.

    A single input with a target that is an existing directory (or is written ending in a
    separator: ``out/``) writes into it; else the target is the file, as named (with the
    first suffix if it has none). Several inputs need a directory, created when missing.
    Without a target, ``default_here`` writes ``<input stem><suffix>`` to the current directory,
    else nothing.
    """
    if target_text is None:
        if not default_here:
            return [None] * len(inputs)
        return [Path(path.stem + suffixes[0]) for path in inputs]
    target = Path(target_text)  # (a Path forgets a trailing separator)
    status = stat_or_none(target, cannot_write)
    as_directory = len(inputs) > 1 or is_directory(status) or target_text.endswith(("/", os.sep))
    if not as_directory:
        _check_parent(target)
        if status is not None and not is_regular_file(status):  # /dev/null, a pipe: as named
            return [target]
        return [_with_suffix(target, suffixes)]
    if status is not None and not is_directory(status):
        raise ConfigError(f"{target} is a file; several inputs need an output directory")
    if status is None and not target_text.endswith(("/", os.sep)) and target.suffix.lower() in suffixes:
        raise ConfigError(
            f"{target} names a file, and several inputs need an output directory (write {target_text}/ to make one)"
        )
    paths = [target / (path.stem + suffixes[0]) for path in inputs]
    if len(set(paths)) != len(paths):  # (before the directory is made: nothing left behind)
        raise ConfigError(f"two inputs have the same name; their outputs in {target} would collide")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot create directory {target}: {err.strerror or err}") from err
    return list(paths)


def check_outputs_apart(
    inputs: Sequence[Path], outputs: dict[str, list[Path | None]], read: dict[str, Path | None] | None = None
) -> None:
    """``ConfigError`` if two outputs, or an output and an input or another file the run reads
    (``read``: what it is -> its path, e.g. the model), are the same file: one would silently
    replace the other."""
    from livepitch.settings import resolved_path

    taken = {resolved_path(path): "an input" for path in inputs}
    taken.update({resolved_path(path): what for what, path in (read or {}).items() if path is not None})
    for flag, paths in outputs.items():
        for source, path in zip(inputs, paths, strict=True):
            if path is None:
                continue
            other = taken.get(resolved_path(path))
            if other is not None:
                raise ConfigError(f"{flag} {path} (for {source}) is also {other}: it would be overwritten")
            taken[resolved_path(path)] = f"{flag} for {source}"


def _plan_all(
    args: argparse.Namespace, flag: str, target_text: str | None, suffix: str, model_path: Path | None
) -> tuple[list[Path | None], list[Path | None], list[Path | None]]:
    """Each input's MIDI file (``-o``), notes CSV (``--csv``) and the file ``flag`` asks for,
    none of them the same file as another, as an input, the model or the configuration."""
    midi_paths = plan_outputs(args.inputs, args.output, (".mid", ".midi"), default_here=True)
    csv_paths = plan_outputs(args.inputs, args.csv, (".csv",), default_here=False)
    other_paths = plan_outputs(args.inputs, target_text, (suffix,), default_here=False)
    read = {"the --model file": model_path, "the --config file": getattr(args, "config", None)}
    check_outputs_apart(args.inputs, {"-o": midi_paths, "--csv": csv_paths, flag: other_paths}, read)
    return midi_paths, csv_paths, other_paths


def _check_parent(path: Path) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    status = stat_or_none(parent, cannot_write)
    if not is_directory(status):
        problem = "is a file, not a directory" if status is not None else "does not exist"
        raise OutputError(f"cannot write {path}: {parent} {problem}")


def run_transcribe(args: argparse.Namespace) -> int:
    """``livepitch transcribe``: one MIDI file (and optional CSV/posteriors) per input."""
    _log_json_if_asked(args)
    if args.stream:
        return run_transcribe_stream(args)
    used = [name for name in (*_STREAM_ONLY, "config") if getattr(args, name) is not None]
    if used:
        raise ConfigError(f"--{used[0].replace('_', '-')} needs --stream")
    settings = transcribe_settings_from_args(args)
    midi_paths, csv_paths, npz_paths = _plan_all(
        args, "--posteriors", args.posteriors, ".npz", settings.model.path
    )

    from livepitch.model_file import resolve_model_path
    from livepitch.onnx_model import BasicPitchModel
    from livepitch.transcribe import transcribe_file, write_transcription

    model = BasicPitchModel(resolve_model_path(settings.model.path), threads=settings.model.threads)
    exit_code = EXIT_OK
    for input_path, midi_path, csv_path, npz_path in zip(
        args.inputs, midi_paths, csv_paths, npz_paths, strict=True
    ):
        try:
            transcription = transcribe_file(input_path, model, settings)
            write_transcription(transcription, settings, midi_path, csv_path, npz_path)
        except LivepitchError as err:
            failed = _input_failed(args, input_path, midi_path, err)  # (reported whatever failed before)
            exit_code = exit_code or failed
            continue
        duration_s = transcription.audio_samples / MODEL_RATE_HZ
        if args.log_json:
            _print_json(input_path, midi_path, notes=len(transcription.notes), audio_s=round(duration_s, 3))
        elif not args.quiet:
            print(
                f"{input_path} -> {midi_path}: {_count(len(transcription.notes), 'note')} in {duration_s:.2f} s of audio"
            )
    return exit_code


def _input_failed(
    args: argparse.Namespace, input_path: Path, midi_path: Path | None, err: LivepitchError
) -> int:
    """Report one input's failure (the error line; with ``--log-json`` its record on stdout too,
    so a batch job reads one per input); return its exit code."""
    report_error(err)
    if args.log_json:
        _print_json(input_path, midi_path, error=str(err), exit_code=err.exit_code)
    return err.exit_code


def _print_json(input_path: Path, midi_path: Path | None, **figures: object) -> None:
    """One input's outcome as a JSON object on stdout (``--log-json``)."""
    print(
        json.dumps(
            {"input": str(input_path), "midi": None if midi_path is None else str(midi_path), **figures}
        )
    )


def _log_json_if_asked(args: argparse.Namespace) -> None:
    """``--log-json``: every log line and error on stderr as JSON, from here on."""
    if args.log_json:
        from livepitch.logs import configure_logging

        configure_logging("debug" if args.verbose else "warning", True)


def run_transcribe_stream(args: argparse.Namespace) -> int:
    """``livepitch transcribe --stream``: the live engine on files, with a virtual clock."""
    offline_only = [
        flag for flag, given in (("--no-melodia", args.no_melodia), ("--windowing", args.windowing)) if given
    ]
    if offline_only:
        raise ConfigError(f"{' and '.join(offline_only)}: for the offline decoder, not --stream")
    settings = live_settings_from_args(args)
    midi_paths, csv_paths, events_paths = _plan_all(
        args, "--events-csv", args.events_csv, ".csv", settings.model.path
    )
    if args.posteriors is not None:
        raise ConfigError("--posteriors applies to the offline run, not to --stream")

    from livepitch.audio_file import read_audio_frames
    from livepitch.engine import build_engine, stream_audio
    from livepitch.event_files import events_to_notes, write_events_csv, write_events_midi
    from livepitch.events import NoteOn
    from livepitch.model_file import resolve_model_path
    from livepitch.notes_csv import write_notes_csv
    from livepitch.onnx_model import BasicPitchModel
    from livepitch.resample_stream import recording_to_model_rate
    from livepitch.settings import AudioSettings

    model = BasicPitchModel(resolve_model_path(settings.model.path), threads=settings.model.threads)
    exit_code = EXIT_OK
    for input_path, midi_path, csv_path, events_path in zip(
        args.inputs, midi_paths, csv_paths, events_paths, strict=True
    ):
        try:
            # converted as the daemon converts a replayed file: its streaming resampler
            frames, rate_hz = read_audio_frames(input_path)
            audio = recording_to_model_rate(frames, rate_hz, AudioSettings().resample_quality)
            engine = build_engine(model, settings)
            engine.frames.share_gil(False)  # no other thread here waits for it
            events = list(stream_audio(audio, engine, settings.stream.block_samples))
            bend_range = settings.midi.effective_bend_range_semitones
            if midi_path is not None:
                write_events_midi(midi_path, events, settings.midi.bends, bend_range)
            if csv_path is not None:
                write_notes_csv(csv_path, events_to_notes(events))
            if events_path is not None:
                write_events_csv(events_path, events)
        except LivepitchError as err:
            failed = _input_failed(args, input_path, midi_path, err)  # (reported whatever failed before)
            exit_code = exit_code or failed
            continue
        if args.quiet and not args.log_json:
            continue
        latencies_ms = sorted(
            1000.0 * (e.emitted_sample - e.time_sample) / 22050 for e in events if isinstance(e, NoteOn)
        )
        n_notes = len(latencies_ms)
        p50 = latencies_ms[n_notes // 2] if latencies_ms else None
        p95 = latencies_ms[min(n_notes - 1, int(0.95 * n_notes))] if latencies_ms else None
        if args.log_json:
            _print_json(
                input_path,
                midi_path,
                notes=n_notes,
                events=len(events),
                delay_p50_ms=None if p50 is None else round(p50, 1),
                delay_p95_ms=None if p95 is None else round(p95, 1),
            )
            continue
        summary = f"{input_path} -> {midi_path}: {_count(n_notes, 'note')}, {_count(len(events), 'event')}"
        if p50 is not None and p95 is not None:
            summary += f", note-on delay after the detected onset p50 {p50:.0f} ms, p95 {p95:.0f} ms"
        print(summary)
    return exit_code
