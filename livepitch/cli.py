"""Command line: ``livepitch`` (the live daemon), ``transcribe``, ``devices``, ``config``.

Exit codes: 0 success (also a daemon stopped by SIGINT/SIGTERM); 1 unexpected runtime
failure; 2 bad usage or setting; 3 unreadable or invalid audio input; 4 model missing or
incompatible; 5 output not writable; 6 audio device unknown or unusable; 7 MIDI port
unusable; 130 interrupted (Ctrl-C during a file command); 141 whoever read the standard
output stopped reading (``livepitch devices | head -1``).
"""

from __future__ import annotations

import argparse
import difflib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from livepitch import launch
from livepitch.cli_options import Parser, build_parser
from livepitch.cli_settings import daemon_settings_from_args
from livepitch.errors import LivepitchError, OutputError
from livepitch.logs import report_error
from livepitch.self_restart import (
    CLOCK_VARIABLE,
    HANDED_ON,
    LAST_WORDS_VARIABLE,
    abort_count,
    ignore_late_signals,
    ready_abort_restart,
    remember_early_signals,
    restart_self,
    resume_count,
)

log = logging.getLogger("livepitch")

EXIT_OK = 0
EXIT_INTERRUPTED = launch.EXIT_INTERRUPTED
EXIT_BROKEN_PIPE = 141
"""Standard output was closed by its reader (as a shell reports a process killed by SIGPIPE)."""


def _asks_for_json(tables: dict[str, Any] | None) -> bool:
    """Whether a configuration file's tables set ``ui.log_json`` (looked at before the
    settings are checked, so that an error in the same file reaches the journal as JSON)."""
    ui = (tables or {}).get("ui")
    return isinstance(ui, dict) and ui.get("log_json") is True


def run_daemon_command(args: argparse.Namespace, early: list[int] | None = None) -> int:
    """``livepitch [run]``: the live daemon; ``early``: signals noted while it started
    (``remember_early_signals``), acted on once it runs."""
    early = remember_early_signals() if early is None else early
    from livepitch.config_file import read_config_file
    from livepitch.logs import configure_logging

    if args.log_json:  # a bad configuration's one line is JSON too, for the service's journal
        configure_logging("warning", True)
    tables = read_config_file(args.config) if args.config is not None else None  # (once: it may be a pipe)
    if _asks_for_json(tables):
        configure_logging("warning", True)
    settings = daemon_settings_from_args(args, tables)
    from livepitch.daemon import Daemon
    from livepitch.self_restart import SessionClock
    from livepitch.status import StatusLine

    status_line = StatusLine()
    if settings.ui.log_json:  # stderr is read as JSON lines: no refreshing line between them
        status_line.enabled = False
    configure_logging("debug" if args.verbose else settings.ui.log_level, settings.ui.log_json, status_line)
    reload = (lambda: daemon_settings_from_args(args)) if args.config is not None else None
    resumed = resume_count()
    if resumed and settings.port.record is not None:
        record = settings.port.record
        settings = settings.model_copy(
            update={
                "port": settings.port.model_copy(
                    update={"record": record.with_stem(f"{record.stem}-resumed{resumed}")}
                )
            }
        )
    aborts = abort_count()
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
        restart_process=lambda clock: restart_self(
            resumed + 1, clock, daemon.stop_requested, 0 if daemon.audio_flowed else aborts
        ),
        abort_restart=lambda clock, flowed: ready_abort_restart(
            resumed, 0 if flowed else aborts, clock, flowed
        ),
        resumed=resumed,
        clock=SessionClock.from_text(os.environ.get(CLOCK_VARIABLE, "")) if resumed else None,
    )
    for variable in HANDED_ON:  # this process's own
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
        ignore_late_signals()
    if daemon.audio_wedged:  # PortAudio's exit handler would wait forever on the abandoned stream
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


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


SINGLE_THREAD_BLAS = {"OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
"""numpy's BLAS runs the incremental engine's small products: one thread each, so no BLAS
worker spins beside the audio callback (set before numpy loads; the environment wins)."""


class _GuardedStdout:
    """Standard output whose failed writes (a full disk, an I/O error) are ``OutputError`` s:
    one line and exit 5 like any output, where Python would end with a traceback. A reader
    gone away stays a ``BrokenPipeError`` (exit 141)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            raise
        except OSError as err:
            raise _stdout_failed(err) from err

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as err:
            raise _stdout_failed(err) from err

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _stdout_failed(err: OSError) -> OutputError:
    _silence_stdout()
    return OutputError(f"cannot write standard output: {err.strerror or err}")


def _silence_stdout() -> None:
    """Point standard output at /dev/null, so that flushing it at exit fails no more."""
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError, AttributeError):  # (not a file)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``livepitch`` command; returns the exit code."""
    stdout = sys.stdout
    if stdout is not None and not isinstance(stdout, _GuardedStdout):
        sys.stdout = _GuardedStdout(stdout)
    try:
        code = _main(argv)
        sys.stdout.flush()  # here, where a reader gone away is caught, not at exit
        _end_audio_system(code)
        return code
    except KeyboardInterrupt:  # Ctrl-C while the command starts (importing numpy, parsing)
        print("livepitch: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # whoever read standard output went away (``livepitch devices | head``)
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    except OutputError as err:  # standard output failed at the last flush
        report_error(err)
        return err.exit_code
    finally:
        sys.stdout = stdout


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
    early = remember_early_signals()  # before the imports the parser needs (0.3 s)
    for name, value in SINGLE_THREAD_BLAS.items():
        os.environ.setdefault(name, value)
    parser = build_parser()
    arguments = list(sys.argv[1:] if argv is None else argv)
    commands = {"run", "transcribe", "devices", "config"}
    head = 1 if arguments and arguments[0] in ("-v", "--verbose") else 0  # the one global flag
    rest = arguments[head:]
    if not rest or (rest[0] not in commands and rest[0] not in ("-h", "--help", "--version")):
        arguments.insert(head, "run")
    Parser.json_errors = "--log-json" in arguments
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
        if rest and unknown[0] == rest[0] and not rest[0].startswith("-"):  # ``livepitch transcibe x.wav``
            close = difflib.get_close_matches(rest[0], sorted(commands), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            parser.error(f"unknown command {rest[0]!r} (commands: {', '.join(sorted(commands))}){hint}")
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="livepitch: %(levelname)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        if args.command == "transcribe":
            from livepitch.transcribe_command import run_transcribe

            return run_transcribe(args)
        if args.command == "config":
            return run_config_command(args)
        if args.command == "devices":
            return run_devices_command()
        return run_daemon_command(args, early)
    except LivepitchError as err:
        report_error(err)
        return err.exit_code
    except KeyboardInterrupt:
        print("livepitch: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
