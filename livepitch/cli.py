"""Command line: ``livepitch`` (the live daemon), ``transcribe``, ``devices``, ``config``.

Exit codes: 0 success (also a daemon stopped by SIGINT/SIGTERM); 1 unexpected runtime
failure; 2 bad usage or setting; 3 unreadable or invalid audio input; 4 model missing or
incompatible; 5 output not writable; 6 audio device unknown or unusable; 7 MIDI port
unusable; 130 interrupted (Ctrl-C during a file command); 141 whoever read the standard
output stopped reading (``livepitch devices | head -1``).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from livepitch import __version__, launch
from livepitch.errors import ConfigError, DeviceError, LivepitchError, OutputError
from livepitch.geometry import MODEL_RATE_HZ
from livepitch.logs import JsonFormatter
from livepitch.paths import cannot_write, is_directory, is_regular_file, stat_or_none

if TYPE_CHECKING:
    from pydantic import BaseModel

    from livepitch.daemon import SessionClock

log = logging.getLogger("livepitch")

EXIT_OK = 0
EXIT_INTERRUPTED = launch.EXIT_INTERRUPTED
EXIT_BROKEN_PIPE = 141
"""Standard output was closed by its reader (as a shell reports a process killed by SIGPIPE)."""


class _Parser(argparse.ArgumentParser):
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
    parser = _Parser(
        prog="livepitch",
        description="Polyphonic audio to MIDI with Spotify's Basic Pitch model.",
        epilog="Without a command, runs the live daemon (livepitch run --help). Exit codes: 0 ok, "
        "1 runtime failure, 2 bad usage or setting, 3 bad audio input, 4 model missing or incompatible, "
        "5 output not writable, 6 audio device unusable, 7 MIDI port unusable, 130 interrupted, "
        "141 standard output closed by its reader.",
    )
    parser.add_argument("--version", action="version", version=f"livepitch {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debugging detail")
    commands = parser.add_subparsers(dest="command", parser_class=_Parser)

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


def daemon_values_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the flags set, as nested tables (unset flags are left out)."""
    groups = {
        "audio": {
            "input": args.input,
            "host_api": args.host_api,
            "channel": args.channel,
            "sample_rate_hz": args.sample_rate,
            "block_frames": args.block_frames,
            "callback": args.audio_callback,
            "input_file": args.input_file,
            "ring_ms": args.ring_ms,
            "max_backlog_ms": args.max_backlog_ms,
        },
        "port": {
            "port": args.port,
            "midi_api": args.midi_api,
            "connect": args.connect,
            "record": args.record,
            "events_csv": args.events_csv,
            "save_every_s": args.save_every_s,
        },
        "midi": {"bends": args.bends, "bend_range_semitones": args.bend_range},
        "stream": {
            "engine": args.engine,
            "lookahead_ms": args.lookahead_ms,
            "hop_frames": args.hop_frames,
            "cqt_refresh_frames": args.cqt_refresh_frames,
        },
        "tracker": {
            "onset_threshold": args.onset_threshold,
            "frame_threshold": args.frame_threshold,
            "infer_onsets": args.infer_onsets,
            "release_ms": args.release_ms,
            "min_note_ms": args.min_note_ms,
            "probation_ms": args.probation_ms,
            "gate_dbfs": args.gate_dbfs,
            "confirm_with_preview": args.confirm_with_preview,
            "max_polyphony": args.max_polyphony,
            "min_hz": args.min_hz,
            "max_hz": args.max_hz,
            "bend_threshold_cents": args.bend_threshold_cents,
            "bend_smoothing_ms": args.bend_smoothing_ms,
        },
        "model": {"path": args.model, "threads": args.threads},
        "ui": {
            "quiet": args.quiet,
            "print_notes": args.print_notes,
            "log_json": args.log_json,
            "log_level": args.log_level,
        },
    }
    return {name: values for name, group in groups.items() if (values := _drop_none(group))}


def daemon_settings_from_args(args: argparse.Namespace, tables: dict[str, Any] | None = None) -> Any:
    """Effective ``DaemonSettings``: defaults < ``--config`` file < flags. ``tables``: the
    file's, already read (else it is read here: a reload reads it again)."""
    from livepitch.config_file import merge
    from livepitch.settings import DaemonSettings, SettingError, build_settings

    values = _config_tables(args.config, tables) if args.config is not None else {}
    flags = daemon_values_from_args(args)
    try:
        settings = build_settings(DaemonSettings, merge(values, flags))
    except SettingError as err:  # one the file set, and no flag: the file is named
        if args.config is not None and _given(values, err.location) and not _given(flags, err.location):
            raise ConfigError(f"{args.config}: {err}") from err
        raise _naming_the_flag(err) from err
    if args.config is not None:
        _outputs_spare_the_config(settings, Path(args.config))
    return settings


_FLAGS_NAMED_OTHERWISE = {
    "sample_rate_hz": "--sample-rate",
    "callback": "--audio-callback",
    "bend_range_semitones": "--bend-range",
    "path": "--model",
    "melodia": "--no-melodia",
}
"""Settings whose flag is not ``--`` and the field's name with hyphens."""


def _naming_the_flag(err: Any) -> ConfigError:
    """A ``SettingError`` about a value a flag gave, its line starting with that flag
    (``--lookahead-ms (stream.lookahead_ms) = 2.0: ...``): the user typed the flag."""
    field = err.location[-1] if err.location else ""
    dotted = ".".join(err.location)
    text = str(err)
    if not field or not (text.startswith(dotted + " ") or text.startswith(dotted + ":")):
        return err  # type: ignore[no-any-return]
    flag = _FLAGS_NAMED_OTHERWISE.get(field, "--" + field.replace("_", "-"))
    return type(err)(f"{flag} ({dotted}){text[len(dotted) :]}", err.location)  # type: ignore[no-any-return]


def _config_tables(config: Path, tables: dict[str, Any] | None = None) -> dict[str, Any]:
    """A daemon configuration file's tables (``tables``: already read), their value types
    checked, file names made relative to the file's directory."""
    from livepitch.config_file import check_value_types, files_relative_to, read_config_file
    from livepitch.settings import DaemonSettings

    values = read_config_file(config) if tables is None else tables
    check_value_types(values, DaemonSettings, config)
    return files_relative_to(values, DaemonSettings, config)


def _given(tables: dict[str, Any], location: tuple[str, ...]) -> bool:
    """Whether ``tables`` set the setting at ``location`` (or, for a group, any of its fields)."""
    value: Any = tables
    for part in location:
        if not isinstance(value, dict) or part not in value:
            return False
        value = value[part]
    return True


def _outputs_spare_the_config(settings: Any, config: Path) -> None:
    """``--record`` and ``--events-csv`` must not name the configuration file (it would be
    truncated at the start, and a reload would then read an empty configuration)."""
    from livepitch.settings import resolved_path

    for flag, path in (("--record", settings.port.record), ("--events-csv", settings.port.events_csv)):
        if path is not None and resolved_path(path) == resolved_path(config):
            raise ConfigError(f"{flag} {path} is also the --config file: it would be overwritten")


HELD_SIGNALS = ("SIGTERM", "SIGHUP")
"""Signals held back (blocked) across livepitch's restart of itself, until the new process can
note them: with their default action a stop would kill it and a reload end it."""


def _remember_early_signals() -> list[int]:
    """Until the daemon installs its own handlers: SIGTERM and SIGHUP are noted, not fatal
    (``systemctl reload`` right after a start used to end the service). A process that
    livepitch restarted (``RESUME_VARIABLE``, or ``ABORTS_VARIABLE`` for one started afresh
    after an abort) was started with them blocked: they are unblocked now, so that one sent
    meanwhile is noted here."""
    early: list[int] = []
    held = [getattr(signal, name) for name in HELD_SIGNALS if hasattr(signal, name)]
    for signum in held:
        signal.signal(signum, lambda signum, _frame: early.append(signum))
    if (_resume_count() or _abort_count()) and hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, held)
    return early


def _ignore_late_signals() -> None:
    """The session is over (notes released, outputs written): a stop or reload signal now has
    nothing to act on. Python puts the default handlers back as it exits, so a second Ctrl-C
    then would end the process by the signal instead of with the session's exit code."""
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)


def _asks_for_json(tables: dict[str, Any] | None) -> bool:
    """Whether a configuration file's tables set ``ui.log_json`` (looked at before the
    settings are checked, so that an error in the same file reaches the journal as JSON)."""
    ui = (tables or {}).get("ui")
    return isinstance(ui, dict) and ui.get("log_json") is True


def run_daemon_command(args: argparse.Namespace, early: list[int] | None = None) -> int:
    """``livepitch [run]``: the live daemon; ``early``: signals noted while it started
    (``_remember_early_signals``), acted on once it runs."""
    early = _remember_early_signals() if early is None else early
    from livepitch.config_file import read_config_file
    from livepitch.logs import configure_logging

    if args.log_json:  # a bad configuration's one line is JSON too, for the service's journal
        configure_logging("warning", True)
    tables = read_config_file(args.config) if args.config is not None else None  # (once: it may be a pipe)
    if _asks_for_json(tables):
        configure_logging("warning", True)
    settings = daemon_settings_from_args(args, tables)
    from livepitch.daemon import Daemon, SessionClock
    from livepitch.status import StatusLine

    status_line = StatusLine()
    if settings.ui.log_json:  # stderr is read as JSON lines: no refreshing line between them
        status_line.enabled = False
    configure_logging("debug" if args.verbose else settings.ui.log_level, settings.ui.log_json, status_line)
    reload = (lambda: daemon_settings_from_args(args)) if args.config is not None else None
    resumed = _resume_count()
    if resumed and settings.port.record is not None:
        record = settings.port.record
        settings = settings.model_copy(
            update={
                "port": settings.port.model_copy(
                    update={"record": record.with_stem(f"{record.stem}-resumed{resumed}")}
                )
            }
        )
    aborts = _abort_count()
    if aborts:
        from livepitch.native_output import inherited_last_words

        last_words = inherited_last_words(os.environ.get(LAST_WORDS_VARIABLE, ""))
        log.warning(
            "restarted: PortAudio aborted livepitch as the audio system failed during a call (%d in a row)%s",
            aborts,
            f"; it printed: {last_words}" if last_words else "",
        )
    daemon = Daemon(
        settings,
        reload=reload,
        status_line=status_line,
        restart_process=lambda clock: _restart_self(
            resumed + 1, clock, daemon.stop_requested, 0 if daemon.audio_flowed else aborts
        ),
        abort_restart=lambda clock, flowed: _ready_abort_restart(
            resumed, 0 if flowed else aborts, clock, flowed
        ),
        resumed=resumed,
        clock=SessionClock.from_text(os.environ.get(CLOCK_VARIABLE, "")) if resumed else None,
    )
    for variable in _HANDED_ON:  # this process's own
        os.environ.pop(variable, None)
    daemon.install_signal_handlers()
    from livepitch import abort_restart

    abort_restart.watch_stop_signals((signal.SIGTERM, signal.SIGINT))  # a stop is not aborted into a restart
    from livepitch.jack_watch import quiet_libjack_messages

    quiet_libjack_messages()  # where JACK is used; LIVEPITCH_AUDIO_DEBUG=1 keeps its messages
    for signum in early:
        if signum == signal.SIGTERM:
            daemon.request_stop()
        else:
            daemon.request_reload()
    try:
        code = daemon.run()
    finally:  # (a session that failed at its end, say writing its recording, too)
        _ignore_late_signals()
    if daemon.audio_wedged:  # PortAudio's exit handler would wait forever on the abandoned stream
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


RESUME_VARIABLE = "LIVEPITCH_RESUMED"
"""Set when livepitch re-executes itself to reconnect to a restarted audio system."""


def _resume_count() -> int:
    value = os.environ.get(RESUME_VARIABLE, "0")
    return int(value) if value.isdigit() else 0


CLOCK_VARIABLE = "LIVEPITCH_SESSION_CLOCK"
"""The session's clock, handed to the re-executed livepitch (``SessionClock.to_text``)."""


ABORTS_VARIABLE = "LIVEPITCH_ABORTS"
"""Set when livepitch was executed again because PortAudio aborted it: how many times in a row
(without audio flowing in between)."""

LAST_WORDS_VARIABLE = "LIVEPITCH_ABORT_OUTPUT_FD"
"""Set with ``ABORTS_VARIABLE``: the descriptor of the memory file holding what the aborted
PortAudio call printed (``livepitch.native_output``), inherited from the aborted process."""

_HANDED_ON = (RESUME_VARIABLE, CLOCK_VARIABLE, ABORTS_VARIABLE, LAST_WORDS_VARIABLE)
"""What one livepitch tells the next it executes: never passed on as it was."""

MAX_ABORTS_IN_A_ROW = 10
"""After this many restarts on PortAudio's aborts with no audio flowing between them, the next
abort ends the process (a service manager's turn)."""


def _abort_count() -> int:
    value = os.environ.get(ABORTS_VARIABLE, "0")
    return int(value) if value.isdigit() else 0


def _restart_command(
    count: int, clock: SessionClock | None, aborts: int = 0
) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of a new livepitch with this one's arguments: resumed
    (``count`` > 0: it waits for its devices and goes on with the session's ``clock``), or
    started afresh (0); ``aborts``: after how many aborts in a row."""
    environment = dict(os.environ)
    for variable in _HANDED_ON:
        environment.pop(variable, None)
    if count:
        environment[RESUME_VARIABLE] = str(count)
        if clock is not None:
            environment[CLOCK_VARIABLE] = clock.to_text()
    if aborts:
        environment[ABORTS_VARIABLE] = str(aborts)
    return [sys.executable, "-m", "livepitch", *sys.argv[1:]], environment


def _ready_abort_restart(resumed: int, aborts_before: int, clock: SessionClock | None, flowed: bool) -> None:
    """Before a PortAudio call (main thread): what an abort during it executes
    (``livepitch.abort_restart``): livepitch resumed with ``clock``, or started afresh if this
    process started afresh and no audio flowed yet (a wrong ``--input`` then still fails);
    nothing if livepitch is stopping (no clock) or that would be more than
    ``MAX_ABORTS_IN_A_ROW`` aborts in a row (``aborts_before``: since audio last flowed)."""
    from livepitch import abort_restart

    if clock is None or aborts_before >= MAX_ABORTS_IN_A_ROW:
        abort_restart.clear_command()
        return
    from livepitch.native_output import capture_descriptor

    count = resumed + 1 if resumed or flowed else 0
    command, environment = _restart_command(count, clock, aborts_before + 1)
    descriptor = capture_descriptor()  # what the call prints, the failed assert's line: for the log
    if descriptor is not None:
        environment[LAST_WORDS_VARIABLE] = str(descriptor)
    abort_restart.keep_across_exec(descriptor)
    abort_restart.set_command(command, environment)


def _restart_self(
    count: int, clock: SessionClock, stop_requested: Callable[[], bool] = lambda: False, aborts: int = 0
) -> None:
    """Replace this process with a fresh livepitch (same arguments) that waits for its devices
    and goes on with the session's clock (``aborts``: PortAudio's aborts in a row, carried on
    while no audio flows). Returns (no restart) if a stop was asked by the time the stop and
    reload signals are held back for the new process."""
    command, environment = _restart_command(count, clock, aborts)
    held = [getattr(signal, name) for name in HELD_SIGNALS if hasattr(signal, name)]
    blocked = hasattr(signal, "pthread_sigmask")
    if blocked:  # the mask survives execve: the new process unblocks them once it can note them
        signal.pthread_sigmask(signal.SIG_BLOCK, held)  # (runs the handlers of any that came before)
    if stop_requested():  # a SIGTERM just before: this process ends instead of restarting
        if blocked:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, held)
        return
    sys.stdout.flush()
    sys.stderr.flush()
    _inherit_no_descriptors()
    try:
        os.execve(command[0], command, environment)
    except OSError as err:
        if blocked:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, held)
        raise DeviceError(f"cannot restart livepitch to reconnect: {err}") from err


def _inherit_no_descriptors() -> None:
    """Every file descriptor but 0, 1 and 2 closes at the next exec. libjack's sockets do not
    by themselves: inherited, they kept the old process's JACK clients registered as zombies,
    and a live server stopped answering the new process's clients."""
    listing = next((path for path in ("/proc/self/fd", "/dev/fd") if os.path.isdir(path)), None)
    descriptors = [int(name) for name in os.listdir(listing)] if listing else range(3, 1024)
    for descriptor in descriptors:
        if descriptor > 2:
            with contextlib.suppress(OSError):  # (closed since it was listed, or the listing's own)
                os.set_inheritable(descriptor, False)


def run_config_command(args: argparse.Namespace) -> int:
    """``livepitch config``: print the effective configuration as TOML."""
    from livepitch.config_file import settings_to_toml

    print(settings_to_toml(daemon_settings_from_args(args)), end="")
    return EXIT_OK


def run_devices_command() -> int:
    """``livepitch devices``: audio inputs and MIDI output ports."""
    from livepitch.audio_device import list_input_devices
    from livepitch.midi_port import list_output_ports

    print("Audio inputs (index: name [audio system], channels, default rate):")
    devices = list_input_devices()
    for device in devices:
        print(
            f"  {device.index}: {device.name} [{device.host_api}], {device.max_input_channels} ch, "
            f"{device.default_rate_hz} Hz"
        )
    if not devices:
        print("  none")
    print("MIDI output ports (by MIDI system):")
    for api, ports in list_output_ports().items():
        shown = ports if isinstance(ports, str) else ", ".join(ports) or "none"
        print(f"  {api}: {shown}")
    return EXIT_OK


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def transcribe_settings_from_args(args: argparse.Namespace) -> Any:
    """Validated ``TranscribeSettings`` from parsed arguments (unset flags keep defaults)."""
    from livepitch.settings import SettingError, TranscribeSettings, build_settings

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
    try:
        return build_settings(TranscribeSettings, values)
    except SettingError as err:  # (every value here is a flag's)
        raise _naming_the_flag(err) from err


def live_settings_from_args(args: argparse.Namespace) -> Any:
    """Validated ``LiveSettings`` from parsed arguments (unset flags keep defaults)."""
    from livepitch.config_file import merge
    from livepitch.settings import LiveSettings, SettingError, build_settings

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
            "probation_ms": args.probation_ms,
            "gate_dbfs": args.gate_dbfs,
            "confirm_with_preview": args.confirm_with_preview,
            "bend_smoothing_ms": args.bend_smoothing_ms,
        }
    )
    values: dict[str, Any] = {
        "tracker": tracker,
        "stream": _drop_none(
            {
                "engine": args.engine,
                "lookahead_ms": args.lookahead_ms,
                "hop_frames": args.hop_frames,
                "cqt_refresh_frames": args.cqt_refresh_frames,
                "block_samples": args.block_samples,
            }
        ),
        "midi": _drop_none({"bends": args.bends, "bend_range_semitones": args.bend_range}),
        "model": _drop_none({"path": args.model, "threads": args.threads}),
    }
    flags = {group: fields for group, fields in values.items() if fields}
    from_file = _live_tables_of(args.config) if args.config is not None else {}
    try:
        return build_settings(LiveSettings, merge(from_file, flags))
    except SettingError as err:
        if _given(from_file, err.location) and not _given(flags, err.location):
            raise ConfigError(f"{args.config}: {err}") from err
        raise _naming_the_flag(err) from err


def _live_tables_of(config: Path) -> dict[str, Any]:
    """The groups of a daemon configuration file the live engine uses (model, stream, tracker,
    midi: a preset's), the whole file checked as the daemon would check it."""
    from livepitch.settings import DaemonSettings, SettingError, build_settings

    tables = _config_tables(config)
    try:
        build_settings(DaemonSettings, tables)
    except SettingError as err:
        raise ConfigError(f"{config}: {err}") from err
    return {group: tables[group] for group in LIVE_GROUPS if group in tables}


LIVE_GROUPS = ("model", "stream", "tracker", "midi")
"""A configuration file's sections that ``transcribe --stream --config`` takes."""


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


def check_outputs_apart(inputs: Sequence[Path], outputs: dict[str, list[Path | None]]) -> None:
    """``ConfigError`` if two outputs, or an output and an input, are the same file: one would
    silently replace the other."""
    from livepitch.settings import resolved_path

    taken = {resolved_path(path): "an input" for path in inputs}
    for flag, paths in outputs.items():
        for source, path in zip(inputs, paths, strict=True):
            if path is None:
                continue
            other = taken.get(resolved_path(path))
            if other is not None:
                raise ConfigError(f"{flag} {path} (for {source}) is also {other}: it would be overwritten")
            taken[resolved_path(path)] = f"{flag} for {source}"


def _check_parent(path: Path) -> None:
    parent = path.parent if str(path.parent) else Path(".")
    status = stat_or_none(parent, cannot_write)
    if not is_directory(status):
        problem = "is a file, not a directory" if status is not None else "does not exist"
        raise OutputError(f"cannot write {path}: {parent} {problem}")


def run_transcribe(args: argparse.Namespace) -> int:
    """``livepitch transcribe``: one MIDI file (and optional CSV/posteriors) per input."""
    if args.stream:
        return run_transcribe_stream(args)
    used = [name for name in (*_STREAM_ONLY, "config") if getattr(args, name) is not None]
    if used:
        raise ConfigError(f"--{used[0].replace('_', '-')} needs --stream")
    settings = transcribe_settings_from_args(args)
    midi_paths = plan_outputs(args.inputs, args.output, (".mid", ".midi"), default_here=True)
    csv_paths = plan_outputs(args.inputs, args.csv, (".csv",), default_here=False)
    npz_paths = plan_outputs(args.inputs, args.posteriors, (".npz",), default_here=False)
    check_outputs_apart(args.inputs, {"-o": midi_paths, "--csv": csv_paths, "--posteriors": npz_paths})

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
            duration_s = transcription.audio_samples / MODEL_RATE_HZ
            print(
                f"{input_path} -> {midi_path}: {_count(len(transcription.notes), 'note')} in {duration_s:.2f} s of audio"
            )
    return exit_code


def run_transcribe_stream(args: argparse.Namespace) -> int:
    """``livepitch transcribe --stream``: the live engine on files, with a virtual clock."""
    offline_only = [
        flag for flag, given in (("--no-melodia", args.no_melodia), ("--windowing", args.windowing)) if given
    ]
    if offline_only:
        raise ConfigError(f"{' and '.join(offline_only)}: for the offline decoder, not --stream")
    settings = live_settings_from_args(args)
    midi_paths = plan_outputs(args.inputs, args.output, (".mid", ".midi"), default_here=True)
    csv_paths = plan_outputs(args.inputs, args.csv, (".csv",), default_here=False)
    events_paths = plan_outputs(args.inputs, args.events_csv, (".csv",), default_here=False)
    check_outputs_apart(args.inputs, {"-o": midi_paths, "--csv": csv_paths, "--events-csv": events_paths})
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
            _report(err)
            exit_code = exit_code or err.exit_code
            continue
        if not args.quiet:
            latencies_ms = sorted(
                1000.0 * (e.emitted_sample - e.time_sample) / 22050 for e in events if isinstance(e, NoteOn)
            )
            n_notes = len(latencies_ms)
            summary = (
                f"{input_path} -> {midi_path}: {_count(n_notes, 'note')}, {_count(len(events), 'event')}"
            )
            if latencies_ms:
                p50 = latencies_ms[n_notes // 2]
                p95 = latencies_ms[min(n_notes - 1, int(0.95 * n_notes))]
                summary += f", note-on delay after the detected onset p50 {p50:.0f} ms, p95 {p95:.0f} ms"
            print(summary)
    return exit_code


def _report(err: LivepitchError) -> None:
    """The one error line: through the JSON log handler once ``--log-json`` set one up."""
    handlers = logging.getLogger("livepitch").handlers
    if any(isinstance(handler.formatter, JsonFormatter) for handler in handlers):
        logging.getLogger("livepitch").error("%s", err)
        return
    print(f"livepitch: error: {err}", file=sys.stderr)


SINGLE_THREAD_BLAS = {"OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
"""numpy's BLAS runs the incremental engine's small products: one thread each, so no BLAS
worker spins beside the audio callback (set before numpy loads; the environment wins)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``livepitch`` command; returns the exit code."""
    try:
        code = _main(argv)
        sys.stdout.flush()  # here, where a reader gone away is caught, not at exit
        _end_audio_system(code)
        return code
    except KeyboardInterrupt:  # Ctrl-C while the command starts (importing numpy, parsing)
        print("livepitch: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # whoever read standard output went away (``livepitch devices | head``)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so that flushing it at exit fails no more
        return EXIT_BROKEN_PIPE


def _end_audio_system(code: int) -> None:
    """End PortAudio here, as the process is about to exit with ``code``, not in sounddevice's
    exit handler: a JACK server dying at that moment fails an assert in ``Pa_Terminate``, and
    the process then ends with ``code`` instead of by SIGABRT with a core dump."""
    audio_device = sys.modules.get("livepitch.audio_device")
    if audio_device is None:  # PortAudio never loaded
        return
    from livepitch import abort_restart

    sys.stderr.flush()
    with abort_restart.exiting_on_abort(code):
        try:
            audio_device.terminate_portaudio()
        except Exception as err:  # (what sounddevice's exit handler would print: a debug line)
            logging.getLogger("livepitch").debug("ending PortAudio: %s", err)


def _main(argv: Sequence[str] | None) -> int:
    early = _remember_early_signals()  # before the imports the parser needs (0.3 s)
    for name, value in SINGLE_THREAD_BLAS.items():
        os.environ.setdefault(name, value)
    parser = build_parser()
    arguments = list(sys.argv[1:] if argv is None else argv)
    commands = {"run", "transcribe", "devices", "config"}
    head = 1 if arguments and arguments[0] in ("-v", "--verbose") else 0  # the one global flag
    rest = arguments[head:]
    if not rest or (rest[0] not in commands and rest[0] not in ("-h", "--help", "--version")):
        arguments.insert(head, "run")
    _Parser.json_errors = "--log-json" in arguments
    args, unknown = parser.parse_known_args(arguments)
    if args.command != "run":  # the other commands end as any program does
        for name in ("SIGTERM", "SIGHUP"):
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), signal.SIG_DFL)
        for signum in early:
            os.kill(os.getpid(), signum)
    if unknown:
        misplaced = [word for word in unknown if word in commands]
        if misplaced:  # e.g. ``livepitch --config x.toml config``: the run command was implied
            parser.error(f"the command comes first, its options after it: livepitch {misplaced[0]} ...")
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="livepitch: %(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        if args.command == "transcribe":
            return run_transcribe(args)
        if args.command == "config":
            return run_config_command(args)
        if args.command == "devices":
            return run_devices_command()
        return run_daemon_command(args, early)
    except LivepitchError as err:
        _report(err)
        return err.exit_code
    except KeyboardInterrupt:
        print("livepitch: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
