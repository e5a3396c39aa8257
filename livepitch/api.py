"""The Python API for integrators: feed audio blocks, get MIDI events.

    from livepitch.api import (
        LiveSession, daemon_settings, midi_messages, open_engine, setup_messages, stream_file, transcribe
    )

    engine = open_engine()                      # default settings, installed model
    port.send_all(setup_messages(engine))       # MPE zone or bend range, as the daemon's port sends
    for block in blocks_of_mono_float32_at(engine.rate_hz):
        events = engine.feed(block)             # NoteOn / NoteOff / PitchBend values
        port.send_all(midi_messages(events))    # mido messages
    events = engine.finish()                    # the last frames, then every note ends

    for event in stream_file("take.wav"):       # the same engine over a file, as fast as the CPU allows
        print(event.time_s, event)

    notes = transcribe("take.wav")              # offline: Basic Pitch's decoding of the whole file

    session = LiveSession(on_events, daemon_settings("my.toml"), midi=False)  # the live daemon, here
    session.run()                               # until session.stop() from another thread

Audio fed to ``feed`` is mono float32 at 22050 Hz (``engine.rate_hz``); ``DeviceToModel`` converts
other rates and channel counts (as the daemon does). Events carry ``time_sample`` (when the note
happened, as the tracker believes) and ``emitted_sample`` (how much audio had been fed when it
was emitted), both sample indices at 22050 Hz (``time_s`` and ``emitted_s`` in seconds), and a
0-based MIDI ``channel`` (the events log and the printed notes count channels 1-16).
``live_settings`` (the engine's) and ``daemon_settings`` (everything) read a configuration file
(``config/voice.toml``, or one ``livepitch config`` printed) with one-line ``ConfigError``
messages.

**Threads.** An engine belongs to the thread that feeds it (one engine per thread; several may
run side by side). Each frame is many short numpy calls, each releasing Python's GIL: a
CPU-bound Python thread beside it takes the GIL for up to the interpreter's switch interval (5
ms by default) at every release, which made the feeding 1.3 times slower than real time. The
daemon sets ``sys.setswitchinterval(0.0005)``; a program whose other Python threads compute
should do the same, or feed the engine in a process of its own. numpy's BLAS is held to one
thread while the engine computes (``livepitch.blas_threads``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import mido
import numpy.typing as npt

from livepitch.audio_file import read_audio_frames
from livepitch.engine import StreamingEngine, build_engine, stream_audio
from livepitch.errors import ConfigError, LivepitchError
from livepitch.event_files import event_to_message
from livepitch.events import Event, NoteOff, NoteOn, PitchBend
from livepitch.midi_file import setup_messages as _setup_messages
from livepitch.notes import Note
from livepitch.resample_stream import DeviceToModel, recording_to_model_rate
from livepitch.samples import mono_float32
from livepitch.settings import AudioSettings, DaemonSettings, LiveSettings, TranscribeSettings

__all__ = [
    "ConfigError",
    "DaemonSettings",
    "DeviceToModel",
    "Event",
    "LiveSession",
    "LiveSettings",
    "LivepitchError",
    "Note",
    "NoteOff",
    "NoteOn",
    "PitchBend",
    "StreamingEngine",
    "TranscribeSettings",
    "daemon_settings",
    "live_settings",
    "midi_messages",
    "open_engine",
    "setup_messages",
    "stream_file",
    "transcribe",
]


def live_settings(config: str | Path | None = None, **groups: dict[str, Any]) -> LiveSettings:
    """Engine settings: the defaults, then a configuration file's ``model``, ``stream``,
    ``tracker`` and ``midi`` tables (``config``: a preset, or the daemon's file), then
    ``groups`` (``stream={"lookahead_ms": 100}``). ``ConfigError``, one line naming the
    setting (and the file that set it), for anything not allowed."""
    from livepitch.cli_settings import live_tables_of, settings_from

    path, overrides = _config_path(config), _checked(groups, LiveSettings)
    from_file = live_tables_of(path, overrides) if path is not None else {}
    settings: LiveSettings = settings_from(LiveSettings, path, from_file, overrides)
    return settings


def daemon_settings(config: str | Path | None = None, **groups: dict[str, Any]) -> DaemonSettings:
    """Everything the live daemon (``LiveSession``) runs with: the defaults, then a
    configuration file (as ``livepitch --config``: file names in it relative to its
    directory), then ``groups`` (``audio={"input_file": "take.wav"}``); ``ConfigError`` as
    ``live_settings``."""
    from livepitch.cli_settings import config_tables, settings_from

    path, overrides = _config_path(config), _checked(groups, DaemonSettings)
    from_file = config_tables(path) if path is not None else {}
    settings: DaemonSettings = settings_from(DaemonSettings, path, from_file, overrides)
    return settings


def _config_path(config: str | Path | None) -> Path | None:
    if config is None:
        return None
    if not str(config).strip():
        raise ConfigError("a configuration file name cannot be empty")
    return Path(config).expanduser()


def _checked(groups: dict[str, Any], model_type: type[LiveSettings]) -> dict[str, Any]:
    """``groups`` with numbers and switches checked as a file's are (``"100"`` or ``True`` for
    a count is refused, not converted)."""
    from livepitch.config_file import check_value_types

    check_value_types(groups, model_type, "the settings given")
    return dict(groups)


def open_engine(settings: LiveSettings | None = None) -> StreamingEngine:
    """A streaming engine with the installed (or ``settings.model.path``) Basic Pitch model.

    The engine belongs to the thread that feeds it.
    """
    from livepitch.model_file import resolve_model_path
    from livepitch.onnx_model import BasicPitchModel

    settings = settings or LiveSettings()
    model = BasicPitchModel(resolve_model_path(settings.model.path), threads=settings.model.threads or 1)
    engine = build_engine(model, settings)
    engine.warm_up()
    return engine


def stream_file(path: str | Path, settings: LiveSettings | None = None) -> Iterator[Event]:
    """Every event the live engine emits for an audio file (any format, rate and channels):
    the events ``livepitch transcribe --stream`` and a replay (``--input-file``) give, the
    file converted as the daemon converts it (with ``DaemonSettings``, its ``audio.channel``
    and ``audio.resample_quality``). ``ValueError`` for a channel the file lacks."""
    settings = settings or LiveSettings()
    audio_settings = settings.audio if isinstance(settings, DaemonSettings) else AudioSettings()
    channel = None if audio_settings.channel is None else audio_settings.channel - 1
    frames, rate_hz = read_audio_frames(path)
    audio = recording_to_model_rate(frames, rate_hz, audio_settings.resample_quality, channel)
    yield from stream_audio(audio, open_engine(settings), settings.stream.block_samples)


def midi_messages(events: Iterable[Event]) -> list[mido.Message]:
    """The MIDI messages of ``events``, in order (note-on, note-off, pitch wheel; channels as the
    engine's voice allocation chose them)."""
    return [event_to_message(event) for event in events]


def setup_messages(settings: LiveSettings | StreamingEngine | None = None) -> list[mido.Message]:
    """What to send a synth before the first note, as livepitch's port does: with ``bends =
    "mpe"`` the MPE lower zone (the configuration message, then the members' bend range with
    RPN 0), with ``"single"`` the bend range on channel 1, with ``"none"`` nothing. Send it again
    when a synth connects later. ``settings``: an engine's, or the defaults."""
    if isinstance(settings, StreamingEngine):
        return _setup_messages(settings.voices.bends, settings.voices.bend_range_semitones)
    midi = (settings or LiveSettings()).midi
    return _setup_messages(midi.bends, midi.effective_bend_range_semitones)


def transcribe(
    audio: str | bytes | os.PathLike[str] | npt.ArrayLike, settings: TranscribeSettings | None = None
) -> list[Note]:
    """The notes of a whole recording, decoded offline as Basic Pitch does (``livepitch
    transcribe``): an audio file, or mono float samples at 22050 Hz."""
    from livepitch.model_file import resolve_model_path
    from livepitch.onnx_model import BasicPitchModel
    from livepitch.transcribe import transcribe_audio, transcribe_file

    settings = settings or TranscribeSettings()
    if isinstance(audio, (str, bytes, os.PathLike)):
        path, samples = Path(os.fsdecode(audio)), None
    else:
        path, samples = (
            None,
            mono_float32(audio, "transcribe", "average the channels first (audio.mean(axis=1))"),
        )
    model = BasicPitchModel(resolve_model_path(settings.model.path), threads=settings.model.threads)
    if path is not None:
        return transcribe_file(path, model, settings).notes
    assert samples is not None
    return transcribe_audio(samples, model, settings).notes


class _NoPort:
    """A MIDI output that sends nothing (a ``LiveSession`` without MIDI)."""

    name = "no MIDI port"

    def send(self, message: list[int]) -> None:
        pass

    def close(self) -> None:
        pass


class LiveSession:
    """The live daemon in this program: an audio input (or ``audio.input_file`` replayed in real
    time) through the engine to ``on_events``, and to a MIDI port unless ``midi`` is False.

    ``run`` blocks until ``stop`` (from any thread) or the replayed file's end, with everything
    the daemon does: a lost device or MIDI port is reopened with backoff, the notes sounding
    are released on every stop, fault and overload (their note-offs reach ``on_events`` too),
    an overloaded worker skips ahead. ``on_events`` gets each batch on the worker thread (keep
    it short: the audio waits), and the note-offs of a stop, a fault or the file's end on the
    thread that called ``run``, once the input has stopped (while a call stuck on the worker
    thread may still run); event times are on the session's clock, which goes on across drops
    and recoveries. An exception there on the worker thread ends the session (``LivepitchError``,
    the exception as its cause); one with a stop's note-offs is logged. The program configures
    the ``livepitch`` logger (``ui.log_level`` and ``ui.log_json`` are the command's). A device's
    recovery resets PortAudio for the whole process (as ``sounddevice``'s own
    ``_terminate``/``_initialize`` would: other streams of the program close too), and a stream
    the audio system never releases is a ``DeviceError`` (the command restarts itself instead). ``run`` raises ``LivepitchError`` subclasses for what cannot start
    (``DeviceError`` for an unknown input, ``MidiPortError``, ``ModelError``). It sets the
    interpreter's switch interval to 0.5 ms (see the module's notes on threads). A session
    runs once.
    """

    def __init__(
        self,
        on_events: Callable[[list[Event]], None],
        settings: DaemonSettings | None = None,
        midi: bool = True,
    ) -> None:
        from livepitch.daemon import Daemon
        from livepitch.factories import Factories, default_factories
        from livepitch.status import StatusLine

        settings = settings or DaemonSettings()
        factories = default_factories()
        if not midi:
            factories = Factories(factories.model, factories.source, lambda _: _NoPort())
        status = StatusLine()
        status.enabled = False  # the program's terminal is its own
        self._daemon = Daemon(settings, factories, status_line=status, on_events=on_events)
        self._ran = False

    def run(self) -> None:
        """Listen until ``stop`` or the replayed file's end (the calling thread); once."""
        if self._ran:
            raise RuntimeError("a LiveSession runs once: make a new one")
        self._ran = True
        self._daemon.run()

    def stop(self) -> None:
        """End the session: the notes sounding are released, the input and port close (any thread)."""
        self._daemon.request_stop()
