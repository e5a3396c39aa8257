"""The streaming engine: audio blocks in, MIDI events out — the one code path for live and file.

``StreamingEngine`` chains a ``FrameEngine`` (model scheduling), the ``NoteTracker`` and the
``VoiceAllocator``. The daemon's worker thread feeds it microphone blocks; ``stream_audio``
feeds it a file's samples in fixed blocks with a virtual clock, as fast as the CPU allows,
so a file run emits exactly the events a live run of the same audio would.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt

from livepitch.errors import ModelError
from livepitch.events import Event
from livepitch.frames import Frame, FrameEngine
from livepitch.geometry import FRAME_HOP_SAMPLES, MODEL_RATE_HZ
from livepitch.incremental_engine import IncrementalEngine
from livepitch.input_level import FrameLevels
from livepitch.samples import UNSCALED_PEAK, cleaned, mono_float32, needs_cleaning, peak
from livepitch.settings import EngineKind, LiveSettings, StreamSettings
from livepitch.tracker import NoteTracker
from livepitch.voices import VoiceAllocator
from livepitch.window_engine import WindowEngine, WindowFramesModel, lookahead_frames_for_ms

log = logging.getLogger("livepitch")


class StreamingEngine:
    """Feeds audio through frames, tracker and voice allocation; one owner thread."""

    rate_hz = MODEL_RATE_HZ
    """Sample rate of the audio ``feed`` takes [Hz]."""

    def __init__(self, frames: FrameEngine, tracker: NoteTracker, voices: VoiceAllocator) -> None:
        self.frames = frames
        self.tracker = tracker
        self.voices = voices
        self.levels = FrameLevels()
        self._last_frame_end = 0
        self._finished = False
        self._warned_unscaled = False

    @property
    def consumed_samples(self) -> int:
        """Samples at 22050 Hz consumed so far: the engine's clock."""
        return self.frames.consumed_samples

    @property
    def published_end_sample(self) -> int:
        """Where the last published frame's hop ends [samples at 22050 Hz]: the audio after
        it has not reached the tracker (it waits for its lookahead)."""
        return self._last_frame_end

    def feed(self, block: npt.NDArray[np.float32]) -> list[Event]:
        """Consume a block of mono float32 audio at 22050 Hz; return the events it caused.

        ``ValueError`` for a block that is not mono (``DeviceToModel`` downmixes), ``TypeError``
        for samples that are not floating point (integer PCM is not scaled to ±1 here, and would
        sound thousands of times too loud to the noise gate); NaN and infinite samples become
        silence and samples beyond ±1e4 are clipped, as the daemon's input does (they would
        poison the model's state for seconds, and leave the note sounding then without its
        note-off). ``RuntimeError`` after ``finish``, until ``reset``."""
        if self._finished:
            raise RuntimeError("the stream has ended (finish); reset() before feeding more audio")
        samples = mono_float32(block, "feed", "DeviceToModel downmixes")
        block_peak = peak(samples)
        if needs_cleaning(samples, block_peak):
            samples = cleaned(samples)
            block_peak = peak(samples)
        if block_peak > UNSCALED_PEAK and not self._warned_unscaled:
            self._warned_unscaled = True
            log.warning(
                "samples reach %.0f, where full scale is 1.0: scale integer PCM to ±1 "
                "(int16 / 32768) before feeding it",
                block_peak,
            )
        block = samples
        self.levels.push(block)
        events: list[Event] = []
        for frame in self.frames.push(block):
            events.extend(self._process(frame))
        return events

    def _process(self, frame: Frame) -> list[Event]:
        level_db = self.levels.level_db(frame.index, frame.emitted_sample)
        self.levels.forget_before(frame.index + 1)
        self._last_frame_end = frame.centre_sample + FRAME_HOP_SAMPLES
        return self.voices.handle(self.tracker.process(frame, level_db))

    def finish(self) -> list[Event]:
        """End of stream: publish the remaining frames, then end every sounding note."""
        self._finished = True
        events: list[Event] = []
        for frame in self.frames.flush():
            events.extend(self._process(frame))
        end = min(self._last_frame_end, self.consumed_samples)
        events.extend(self.voices.handle(self.tracker.finish(end, self.consumed_samples)))
        return events

    def release_all(self) -> list[Event]:
        """End every sounding note now (stop, fault, overload); the stream may go on."""
        now = self.consumed_samples
        return self.voices.handle(self.tracker.finish(min(self._last_frame_end, now), now))

    def break_stream(self) -> int:
        """The audio jumps (a drop skipped some): forget the audio held for the lookahead, so
        nothing from before the jump is published after it, and start the clock again at 0;
        return the samples consumed before. Channels and wheels stay as the synth has them
        (``release_all`` first)."""
        consumed = self.consumed_samples
        self._forget_audio()
        self.voices.rebase_clock(consumed)
        return consumed

    def warm_up(self) -> None:
        """Build and run the model once before real audio arrives (call on any thread, before use)."""
        self.frames.warm_up()

    def reset(self) -> None:
        """Restart from sample 0 with no state (release notes first)."""
        self._forget_audio()
        self.voices.reset()

    def _forget_audio(self) -> None:
        """Frames, tracker and levels start again at sample 0."""
        self._finished = False
        self.frames.reset()
        self.tracker.reset()
        self.levels.reset()
        self._last_frame_end = 0


def build_frame_engine(model: WindowFramesModel, settings: StreamSettings) -> FrameEngine:
    """The frame engine ``settings.engine`` names, at the configured lookahead.

    The incremental engine needs ``model.incremental_weights()`` (``BasicPitchModel`` has it)."""
    lookahead_frames = lookahead_frames_for_ms(settings.lookahead_ms)
    if settings.engine is EngineKind.INCREMENTAL:
        weights = getattr(model, "incremental_weights", None)
        if weights is None:
            raise ModelError("this model cannot run the incremental engine; use --engine window")
        return IncrementalEngine(weights(), lookahead_frames, settings.cqt_refresh_frames)
    return WindowEngine(model, lookahead_frames, settings.hop_frames)  # (the settings checked they fit)


def build_engine(model: WindowFramesModel, settings: LiveSettings) -> StreamingEngine:
    """A ``StreamingEngine`` configured by ``settings`` (window or incremental frame engine)."""
    return StreamingEngine(
        build_frame_engine(model, settings.stream),
        NoteTracker(settings.tracker.tracker_params(settings.midi.max_followed_bend_semitones)),
        VoiceAllocator(
            settings.midi.bends,
            settings.midi.effective_bend_range_semitones,
            settings.tracker.bend_threshold_cents,
        ),
    )


def stream_audio(
    audio: npt.NDArray[np.float32], engine: StreamingEngine, block_samples: int
) -> Iterator[Event]:
    """Replay ``audio`` (mono, 22050 Hz) through ``engine`` in blocks; yield every event."""
    for start in range(0, audio.shape[0], block_samples):
        yield from engine.feed(audio[start : start + block_samples])
    yield from engine.finish()
