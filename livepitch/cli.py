"""Command line: ``livepitch transcribe`` and friends.

Exit codes: 0 success; 1 unexpected runtime failure; 2 bad usage or setting; 3 unreadable
or invalid audio input; 4 model missing or incompatible; 5 output not writable;
130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from livepitch import __version__
from livepitch.errors import ConfigError, LivepitchError, OutputError

log = logging.getLogger("livepitch")

EXIT_OK = 0
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr (exit 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _add_decoder_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("note decoding (upstream Basic Pitch defaults)")
    group.add_argument(
        "--onset-threshold", type=float, metavar="P", help="onset peak needed for a note, 0-1 (0.5)"
    )
    group.add_argument(
        "--frame-threshold",
        type=float,
        metavar="P",
        help="note posterior that keeps a note on, 0-1 (0.3)",
    )
    group.add_argument(
        "--min-note-ms", type=float, metavar="MS", help="notes must last longer than this (127.70)"
    )
    group.add_argument("--min-hz", type=float, metavar="HZ", help="ignore pitches below this frequency")
    group.add_argument("--max-hz", type=float, metavar="HZ", help="ignore pitches above this frequency")
    group.add_argument("--no-melodia", action="store_true", help="turn the melodia trick off")
    group.add_argument(
        "--infer-onsets",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="also take onsets from rises of the note posterior (offline: on; --stream: off)",
    )


def _add_midi_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("MIDI")
    group.add_argument("--bends", choices=["none", "single", "mpe"], help="pitch-bend mode (single)")
    group.add_argument(
        "--bend-range",
        type=int,
        metavar="SEMITONES",
        help="bend range announced by RPN 0 (2; 48 with mpe)",
    )


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model", type=Path, metavar="PATH", help="nmp.onnx to use instead of the installed one"
    )
    group.add_argument("--threads", type=int, metavar="N", help="onnxruntime threads (0: automatic)")


def build_parser() -> argparse.ArgumentParser:
    """The ``livepitch`` argument parser with all subcommands."""
    parser = _Parser(
        prog="livepitch",
        description="Polyphonic audio to MIDI with Spotify's Basic Pitch model.",
        epilog="Exit codes: 0 ok, 1 runtime failure, 2 bad usage or setting, 3 bad audio input, "
        "4 model missing or incompatible, 5 output not writable, 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"livepitch {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debugging detail")
    commands = parser.add_subparsers(dest="command", parser_class=_Parser)

    transcribe = commands.add_parser(
        "transcribe",
        help="transcribe audio files to MIDI",
        description="Transcribe audio files (anything libsndfile reads) to MIDI files.",
    )
    transcribe.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="audio files")
    transcribe.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="OUT",
        help="MIDI file for one input, or a directory for one .mid per input (default: INPUT's name .mid here)",
    )
    transcribe.add_argument(
        "--csv",
        type=Path,
        metavar="NOTES.csv",
        help="also write the notes as CSV (a directory for several inputs)",
    )
    transcribe.add_argument(
        "--posteriors",
        type=Path,
        metavar="POST.npz",
        help="also save the model posteriors (a directory for several inputs)",
    )
    transcribe.add_argument(
        "--windowing",
        choices=["compat", "uniform"],
        help="frame grid: uniform (default) or upstream's compat",
    )
    transcribe.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    stream = transcribe.add_argument_group("file as live (the streaming engine, with a virtual clock)")
    stream.add_argument("--stream", action="store_true", help="run the live code path on the file")
    stream.add_argument(
        "--lookahead-ms", type=float, metavar="MS", help="audio after a frame before it is used (60)"
    )
    stream.add_argument("--hop-frames", type=int, metavar="H", help="frames published per model run (3)")
    stream.add_argument("--block-samples", type=int, metavar="N", help="block size fed to the engine (1024)")
    stream.add_argument(
        "--events-csv", type=Path, metavar="EVENTS.csv", help="write every event (needs --stream)"
    )
    stream.add_argument("--release-ms", type=float, metavar="MS", help="quiet time before a note-off (35)")
    stream.add_argument("--max-polyphony", type=int, metavar="N", help="most notes at once (15)")
    stream.add_argument(
        "--bend-threshold-cents", type=float, metavar="C", help="send bends that moved more (5)"
    )
    _add_decoder_options(transcribe)
    _add_midi_options(transcribe)
    _add_model_options(transcribe)
    return parser


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def transcribe_settings_from_args(args: argparse.Namespace) -> Any:
    """Validated ``TranscribeSettings`` from parsed arguments (unset flags keep defaults)."""
    from livepitch.settings import TranscribeSettings, build_settings

    values: dict[str, Any] = {
        "decoder": _drop_none(
            {
                "onset_threshold": args.onset_threshold,
                "frame_threshold": args.frame_threshold,
                "min_note_ms": args.min_note_ms,
                "min_hz": args.min_hz,
                "max_hz": args.max_hz,
                "melodia": False if args.no_melodia else None,
                "infer_onsets": args.infer_onsets,
            }
        ),
        "midi": _drop_none({"bends": args.bends, "bend_range_semitones": args.bend_range}),
        "model": _drop_none({"path": args.model, "threads": args.threads}),
    }
    if args.windowing is not None:
        values["windowing"] = args.windowing
    return build_settings(TranscribeSettings, values)


def live_settings_from_args(args: argparse.Namespace) -> Any:
    """Validated ``LiveSettings`` from parsed arguments (unset flags keep defaults)."""
    from livepitch.settings import LiveSettings, build_settings

    tracker = _drop_none(
        {
            "onset_threshold": args.onset_threshold,
            "frame_threshold": args.frame_threshold,
            "min_note_ms": args.min_note_ms,
            "min_hz": args.min_hz,
            "max_hz": args.max_hz,
            "infer_onsets": args.infer_onsets,
            "release_ms": args.release_ms,
            "max_polyphony": args.max_polyphony,
            "bend_threshold_cents": args.bend_threshold_cents,
        }
    )
    values: dict[str, Any] = {
        "tracker": tracker,
        "stream": _drop_none(
            {
                "lookahead_ms": args.lookahead_ms,
                "hop_frames": args.hop_frames,
                "block_samples": args.block_samples,
            }
        ),
        "midi": _drop_none({"bends": args.bends, "bend_range_semitones": args.bend_range}),
        "model": _drop_none({"path": args.model, "threads": args.threads}),
    }
    return build_settings(LiveSettings, values)


_STREAM_ONLY = (
    "lookahead_ms",
    "hop_frames",
    "block_samples",
    "events_csv",
    "release_ms",
    "max_polyphony",
    "bend_threshold_cents",
)


def _with_suffix(path: Path, suffixes: tuple[str, ...]) -> Path:
    return path if path.suffix.lower() in suffixes else path.with_name(path.name + suffixes[0])


def plan_outputs(
    inputs: Sequence[Path], target: Path | None, suffixes: tuple[str, ...], default_here: bool
) -> list[Path | None]:
    """One output path per input: ``target`` itself for one input, else files in a directory.

    A single input with a ``target`` that is an existing directory (or ends in a separator)
    writes into it. Several inputs need a directory, created when missing. Without a target,
    ``default_here`` writes ``<input stem><suffix>`` to the current directory, else nothing.
    """
    if target is None:
        if not default_here:
            return [None] * len(inputs)
        return [Path(path.stem + suffixes[0]) for path in inputs]
    as_directory = len(inputs) > 1 or target.is_dir() or str(target).endswith(("/", "\\"))
    if not as_directory:
        _check_parent(target)
        return [_with_suffix(target, suffixes)]
    if target.exists() and not target.is_dir():
        raise OutputError(f"{target} is a file; several inputs need an output directory")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputError(f"cannot create directory {target}: {err.strerror or err}") from err
    paths = [target / (path.stem + suffixes[0]) for path in inputs]
    if len(set(paths)) != len(paths):
        raise OutputError(f"two inputs have the same name; their outputs in {target} would collide")
    return list(paths)


def _check_parent(path: Path) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"cannot write {path}: directory {parent} does not exist")


def run_transcribe(args: argparse.Namespace) -> int:
    """``livepitch transcribe``: one MIDI file (and optional CSV/posteriors) per input."""
    if args.stream:
        return run_transcribe_stream(args)
    used = [name for name in _STREAM_ONLY if getattr(args, name) is not None]
    if used:
        raise ConfigError(f"--{used[0].replace('_', '-')} needs --stream")
    settings = transcribe_settings_from_args(args)
    midi_paths = plan_outputs(args.inputs, args.output, (".mid", ".midi"), default_here=True)
    csv_paths = plan_outputs(args.inputs, args.csv, (".csv",), default_here=False)
    npz_paths = plan_outputs(args.inputs, args.posteriors, (".npz",), default_here=False)

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
            _report(err)
            exit_code = exit_code or err.exit_code
            continue
        if not args.quiet:
            duration_s = transcription.posteriors.n_frames * 256 / 22050
            print(
                f"{input_path} -> {midi_path}: {len(transcription.notes)} notes in {duration_s:.2f} s of audio"
            )
    return exit_code


def run_transcribe_stream(args: argparse.Namespace) -> int:
    """``livepitch transcribe --stream``: the live engine on files, with a virtual clock."""
    if args.no_melodia or args.windowing is not None:
        raise ConfigError("--no-melodia and --windowing apply to the offline decoder, not to --stream")
    settings = live_settings_from_args(args)
    midi_paths = plan_outputs(args.inputs, args.output, (".mid", ".midi"), default_here=True)
    csv_paths = plan_outputs(args.inputs, args.csv, (".csv",), default_here=False)
    events_paths = plan_outputs(args.inputs, args.events_csv, (".csv",), default_here=False)
    if args.posteriors is not None:
        raise ConfigError("--posteriors applies to the offline run, not to --stream")

    from livepitch.audio_file import read_audio
    from livepitch.engine import build_engine, stream_audio
    from livepitch.event_files import events_to_notes, write_events_csv, write_events_midi
    from livepitch.events import NoteOn
    from livepitch.model_file import resolve_model_path
    from livepitch.notes_csv import write_notes_csv
    from livepitch.onnx_model import BasicPitchModel

    model = BasicPitchModel(resolve_model_path(settings.model.path), threads=settings.model.threads)
    exit_code = EXIT_OK
    for input_path, midi_path, csv_path, events_path in zip(
        args.inputs, midi_paths, csv_paths, events_paths, strict=True
    ):
        try:
            audio = read_audio(input_path)
            engine = build_engine(model, settings)
            events = list(stream_audio(audio, engine, settings.stream.block_samples))
            bend_range = settings.midi.effective_bend_range_semitones
            if midi_path is not None:
                write_events_midi(midi_path, events, settings.midi.bends, bend_range)
            if csv_path is not None:
                write_notes_csv(csv_path, events_to_notes(events))
            if events_path is not None:
                write_events_csv(events_path, events)
        except LivepitchError as err:
            _report(err)
            exit_code = exit_code or err.exit_code
            continue
        if not args.quiet:
            latencies_ms = sorted(
                1000.0 * (e.emitted_sample - e.time_sample) / 22050 for e in events if isinstance(e, NoteOn)
            )
            n_notes = len(latencies_ms)
            summary = f"{input_path} -> {midi_path}: {n_notes} notes, {len(events)} events"
            if latencies_ms:
                p50 = latencies_ms[n_notes // 2]
                p95 = latencies_ms[min(n_notes - 1, int(0.95 * n_notes))]
                summary += f", note-on delay after the detected onset p50 {p50:.0f} ms, p95 {p95:.0f} ms"
            print(summary)
    return exit_code


def _report(err: LivepitchError) -> None:
    print(f"livepitch: error: {err}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``livepitch`` command; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="livepitch: %(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        if args.command == "transcribe":
            return run_transcribe(args)
        parser.print_help(sys.stderr)
        return ConfigError.exit_code
    except LivepitchError as err:
        _report(err)
        return err.exit_code
    except KeyboardInterrupt:
        print("livepitch: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
