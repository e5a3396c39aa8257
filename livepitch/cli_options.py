"""The ``livepitch`` command line's parser: its commands, flags and their help."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from livepitch import __version__
from livepitch.logs import JsonFormatter

if TYPE_CHECKING:
    from pydantic import BaseModel


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr (exit 2); a JSON line when the
    command line asks for ``--log-json`` (a service's journal reads every line as JSON)."""

    json_errors = False
    """Set by ``main`` when the command line has ``--log-json`` (subparsers share it)."""

    def error(self, message: str) -> NoReturn:
        text = f"{message} (see --help)"
        if self.json_errors:
            record = logging.LogRecord("livepitch", logging.ERROR, __file__, 0, "%s", (text,), None)
            self.exit(2, JsonFormatter().format(record) + "\n")
        self.exit(2, f"{self.prog}: error: {text}\n")


def _file_argument(text: str) -> str:
    """A file named on the command line: not empty (it would mean the current directory) and
    not ``-`` (files are written whole, not to standard output); ``~`` is the home directory."""
    if not text.strip():
        raise argparse.ArgumentTypeError("a file name cannot be empty")
    if text == "-":
        raise argparse.ArgumentTypeError("'-' (standard input or output) is not supported: name a file")
    return os.path.expanduser(text)  # (a trailing separator, which asks for a directory, stays)


def _path_argument(text: str) -> Path:
    """``_file_argument`` as a ``Path``."""
    return Path(_file_argument(text))


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
        "--min-note-ms",
        type=float,
        metavar="MS",
        help="offline: notes must last longer than this (127.70); --stream: a quiet note is not ended sooner (35)",
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
        "--model", type=_path_argument, metavar="PATH", help="nmp.onnx to use instead of the installed one"
    )
    group.add_argument("--threads", type=int, metavar="N", help="onnxruntime threads (0: automatic)")


def build_parser() -> argparse.ArgumentParser:
    """The ``livepitch`` argument parser with all subcommands."""
    parser = Parser(
        prog="livepitch",
        description="Polyphonic audio to MIDI with Spotify's Basic Pitch model.",
        epilog="Without a command, runs the live daemon (livepitch run --help). Exit codes: 0 ok, "
        "1 runtime failure, 2 bad usage or setting, 3 bad audio input, 4 model missing or incompatible, "
        "5 output not writable, 6 audio device unusable, 7 MIDI port unusable, 130 interrupted, "
        "141 standard output closed by its reader.",
    )
    parser.add_argument("--version", action="version", version=f"livepitch {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debugging detail")
    commands = parser.add_subparsers(dest="command", parser_class=Parser)

    run = commands.add_parser(
        "run",
        help="listen and play what is heard on a MIDI port (the default command)",
        description="Listen to an audio input and send what it hears as MIDI, live.",
    )
    _add_daemon_options(run)
    config = commands.add_parser(
        "config",
        help="print the effective configuration as TOML",
        description="Print the configuration the daemon would run with (defaults < --config < flags).",
    )
    _add_daemon_options(config)
    devices = commands.add_parser(
        "devices",
        help="list audio inputs and MIDI output ports",
        description="List audio input devices (with audio system, channels, rate) and MIDI output ports.",
    )

    transcribe = commands.add_parser(
        "transcribe",
        help="transcribe audio files to MIDI",
        description="Transcribe audio files (anything libsndfile reads) to MIDI files.",
    )
    transcribe.add_argument("inputs", nargs="+", type=_path_argument, metavar="INPUT", help="audio files")
    transcribe.add_argument(
        "-o",
        "--output",
        type=_file_argument,
        metavar="OUT",
        help="MIDI file for one input, or a directory for one .mid per input (default: INPUT's name .mid here)",
    )
    transcribe.add_argument(
        "--csv",
        type=_file_argument,
        metavar="NOTES.csv",
        help="also write the notes as CSV (a directory for several inputs)",
    )
    transcribe.add_argument(
        "--posteriors",
        type=_file_argument,
        metavar="POST.npz",
        help="also save the model posteriors (a directory for several inputs)",
    )
    transcribe.add_argument(
        "--windowing",
        choices=["compat", "uniform"],
        help="frame grid: uniform (default) or upstream's compat",
    )
    transcribe.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    transcribe.add_argument(
        "--log-json",
        action="store_true",
        help="errors as JSON log lines on stderr, and a JSON object per input on stdout (for a batch job)",
    )
    stream = transcribe.add_argument_group("file as live (the streaming engine, with a virtual clock)")
    stream.add_argument("--stream", action="store_true", help="run the live code path on the file")
    stream.add_argument(
        "--config",
        type=_path_argument,
        metavar="FILE.toml",
        help="the daemon's configuration file (a preset): its model, stream, tracker and midi settings; flags win",
    )
    stream.add_argument("--block-samples", type=int, metavar="N", help="block size fed to the engine (1024)")
    stream.add_argument(
        "--events-csv", type=str, metavar="EVENTS.csv", help="write every event (needs --stream)"
    )
    _add_live_engine_options(stream)
    _add_decoder_options(transcribe)
    _add_midi_options(transcribe)
    _add_model_options(transcribe)
    for command in (run, config, devices, transcribe):  # -v after the command too (livepitch run -v)
        command.add_argument(
            "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="log debugging detail"
        )
    return parser


def _default(model: type[BaseModel], field: str) -> str:
    """A settings field's default as help shows it (60.0 as 60, an enum by its value)."""
    value = model.model_fields[field].default
    value = getattr(value, "value", value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


def _add_live_engine_options(group: argparse._ArgumentGroup) -> None:
    """Streaming-engine and tracker flags shared by ``run`` and ``transcribe --stream``; each
    help ends with the setting's default."""
    from livepitch.settings import StreamSettings, TrackerSettings

    numeric: list[tuple[str, type, str, type[BaseModel], str, str]] = [
        (
            "--lookahead-ms",
            float,
            "MS",
            StreamSettings,
            "lookahead_ms",
            "audio after a frame before it is used",
        ),
        (
            "--hop-frames",
            int,
            "H",
            StreamSettings,
            "hop_frames",
            "window engine: frames published per model run",
        ),
        (
            "--cqt-refresh-frames",
            int,
            "N",
            StreamSettings,
            "cqt_refresh_frames",
            "incremental engine: newest CQT columns recomputed at every frame",
        ),
        ("--release-ms", float, "MS", TrackerSettings, "release_ms", "quiet time before a note-off"),
        ("--max-polyphony", int, "N", TrackerSettings, "max_polyphony", "most notes at once"),
        ("--probation-ms", float, "MS", TrackerSettings, "probation_ms", "how long a weak onset must hold"),
        (
            "--gate-dbfs",
            float,
            "DB",
            TrackerSettings,
            "gate_dbfs",
            "no note starts unless the input near its onset is this loud [dBFS], -120 = off",
        ),
        (
            "--bend-threshold-cents",
            float,
            "C",
            TrackerSettings,
            "bend_threshold_cents",
            "send bends that moved more",
        ),
        (
            "--bend-smoothing-ms",
            float,
            "MS",
            TrackerSettings,
            "bend_smoothing_ms",
            "bend smoothing time constant",
        ),
    ]
    group.add_argument(
        "--engine",
        choices=("incremental", "window"),
        help="incremental: compute only new columns, every frame; window: re-run the 2 s model window "
        f"every hop ({_default(StreamSettings, 'engine')})",
    )
    for option, kind, metavar, model, field, text in numeric:
        group.add_argument(option, type=kind, metavar=metavar, help=f"{text} ({_default(model, field)})")
    group.add_argument(
        "--confirm-with-preview",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="confirm an onset peak with the engine's preview of the next frame, a frame sooner (on)",
    )


def _add_daemon_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", type=_path_argument, metavar="FILE", help="TOML configuration (see config/default.toml)"
    )
    audio = parser.add_argument_group("audio input")
    audio.add_argument(
        "--input", metavar="DEVICE", help="input device: index or part of its name (default device)"
    )
    audio.add_argument(
        "--host-api", metavar="NAME", help="audio system to take the device from (ALSA, JACK, ...)"
    )
    audio.add_argument(
        "--channel", type=int, metavar="N", help="use input channel N (1-based) instead of a downmix"
    )
    audio.add_argument(
        "--sample-rate", type=int, metavar="HZ", help="device sample rate (the device's default)"
    )
    audio.add_argument("--block-frames", type=int, metavar="N", help="device frames per audio callback (256)")
    audio.add_argument(
        "--audio-callback",
        choices=("c", "python"),
        help="c: livepitch's C callback, which never waits for Python (the default, where it was built); python: the Python one",
    )
    audio.add_argument(
        "--input-file",
        type=_path_argument,
        metavar="FILE",
        help="replay a file in real time instead of a device",
    )
    audio.add_argument("--ring-ms", type=float, metavar="MS", help="capture ring capacity (2000)")
    audio.add_argument(
        "--max-backlog-ms", type=float, metavar="MS", help="skip ahead when this far behind (300)"
    )
    midi = parser.add_argument_group("MIDI output")
    midi.add_argument("--port", metavar="NAME", help='virtual output port name ("BasicPitch Out")')
    midi.add_argument(
        "--midi-api", choices=["auto", "alsa", "jack", "coremidi", "windows"], help="MIDI system (auto)"
    )
    midi.add_argument("--connect", metavar="NAME", help="send to an existing port whose name contains NAME")
    midi.add_argument("--bends", choices=["none", "single", "mpe"], help="pitch-bend mode (single)")
    midi.add_argument(
        "--bend-range", type=int, metavar="SEMITONES", help="bend range sent with RPN 0 (2; 48 with mpe)"
    )
    midi.add_argument(
        "--record", type=_path_argument, metavar="FILE.mid", help="also write the session to a MIDI file"
    )
    midi.add_argument(
        "--events-csv", type=_path_argument, metavar="EVENTS.csv", help="also log every event as CSV"
    )
    midi.add_argument(
        "--save-every-s", type=float, metavar="S", help="write the --record file so far this often (60)"
    )
    engine = parser.add_argument_group("engine and tracker")
    _add_live_engine_options(engine)
    engine.add_argument(
        "--onset-threshold", type=float, metavar="P", help="onset strength for a note, 0-1 (0.5)"
    )
    engine.add_argument(
        "--frame-threshold", type=float, metavar="P", help="note posterior that keeps a note on (0.3)"
    )
    engine.add_argument(
        "--infer-onsets",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="onsets from note rises (off)",
    )
    engine.add_argument(
        "--min-note-ms",
        type=float,
        metavar="MS",
        help="no note ends by going quiet or is struck again sooner after its note-on (35)",
    )
    engine.add_argument("--min-hz", type=float, metavar="HZ", help="ignore pitches below")
    engine.add_argument("--max-hz", type=float, metavar="HZ", help="ignore pitches above")
    model = parser.add_argument_group("model")
    model.add_argument(
        "--model", type=_path_argument, metavar="PATH", help="nmp.onnx to use instead of the installed one"
    )
    model.add_argument("--threads", type=int, metavar="N", help="onnxruntime threads (0: one for the daemon)")
    ui = parser.add_argument_group("output for people and services")
    ui.add_argument("-q", "--quiet", action="store_true", default=None, help="no status line")
    ui.add_argument("--print-notes", action="store_true", default=None, help="print a line for every note-on")
    ui.add_argument(
        "--log-json", action="store_true", default=None, help="log JSON lines (for a service manager)"
    )
    ui.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="log level (info)")
