"""How the daemon gets its model, audio source and MIDI port: the real ones, or a test's fakes."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from livepitch.audio_sources import AudioSource, FileReplaySource
from livepitch.midi_sink import Port
from livepitch.settings import DaemonSettings, EngineKind
from livepitch.window_engine import WindowFramesModel

log = logging.getLogger("livepitch")


@dataclass
class Factories:
    """How the daemon gets its model, audio source and MIDI port (tests substitute fakes)."""

    model: Callable[[DaemonSettings], WindowFramesModel]
    source: Callable[[DaemonSettings], AudioSource]
    port: Callable[[DaemonSettings], Port]


def default_factories() -> Factories:
    """The real model, sounddevice or file replay, and python-rtmidi."""

    def model(settings: DaemonSettings) -> WindowFramesModel:
        from livepitch.model_file import resolve_model_path
        from livepitch.onnx_model import BasicPitchModel

        incremental = settings.stream.engine is EngineKind.INCREMENTAL
        model = BasicPitchModel(
            resolve_model_path(settings.model.path),
            threads=settings.model.threads or 1,
            spin=False,
            defer_session=incremental,  # onnxruntime loads only if a reload picks the window engine
        )
        if incremental:
            model.incremental_weights()  # a file that is not Basic Pitch's fails here, at start
        return model

    def source(settings: DaemonSettings) -> AudioSource:
        audio = settings.audio
        if audio.input_file is not None:
            unused = [
                name
                for name, value in (
                    ("input", audio.input),
                    ("host_api", audio.host_api),
                    ("sample_rate_hz", audio.sample_rate_hz),
                    ("callback", None if audio.callback == "c" else audio.callback),
                )
                if value is not None
            ]
            if unused:  # set for live use (a config file), not for a replay: say so, once per start
                log.info("replaying %s: audio.%s not used", audio.input_file, ", audio.".join(unused))
            return FileReplaySource(audio.input_file, audio.block_frames)
        from livepitch.audio_device import DeviceSource

        return DeviceSource(
            audio.input,
            audio.host_api,
            audio.sample_rate_hz,
            audio.block_frames,
            audio.channel,
            audio.callback,
        )

    def port(settings: DaemonSettings) -> Port:
        from livepitch.midi_port import open_output

        return open_output(settings.port.port, settings.port.midi_api, settings.port.connect)

    return Factories(model, source, port)
