"""The Python API for integrators: feed audio blocks, get MIDI events.

    from livepitch.api import open_engine, stream_file

    engine = open_engine()                      # default settings, installed model
    for block in blocks_of_mono_float32_at(engine.rate_hz):
        for event in engine.feed(block):
            ...                                  # NoteOn / NoteOff / PitchBend values
    for event in engine.finish():
        ...

    for event in stream_file("take.wav"):       # the same engine over a file, as fast as the CPU allows
        print(event)

Audio fed to ``feed`` is mono float32 at 22050 Hz (``engine.rate_hz``); ``DeviceToModel`` converts
other rates and channel counts (as the daemon does). Events carry ``time_sample`` (when the note happened, as
the tracker believes) and ``emitted_sample`` (how much audio had been fed when it was emitted),
both model-rate sample indices.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from livepitch.audio_file import read_audio_frames
from livepitch.engine import StreamingEngine, build_engine, stream_audio
from livepitch.events import Event
from livepitch.resample_stream import DeviceToModel, recording_to_model_rate
from livepitch.settings import AudioSettings, DaemonSettings, LiveSettings

__all__ = ["DeviceToModel", "Event", "LiveSettings", "StreamingEngine", "open_engine", "stream_file"]


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
