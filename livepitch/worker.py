"""The worker thread: ring -> resampler -> streaming engine -> MIDI sink.

Everything between the audio callback and the MIDI port happens here, on one thread. When it
falls more than ``max_backlog_frames`` behind the capture it skips ahead to the newest audio,
counts and logs the drop, and releases the sounding notes — it never leaves a note hanging.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from livepitch.engine import StreamingEngine
from livepitch.events import Event, NoteOn
from livepitch.geometry import MODEL_RATE_HZ
from livepitch.midi_sink import MidiSink
from livepitch.recent_audio import RecentAudio
from livepitch.resample_stream import DeviceToModel
from livepitch.ring_buffer import AudioRing
from livepitch.samples import MAX_SAMPLE_MAGNITUDE, cleaned, needs_cleaning

log = logging.getLogger("livepitch.worker")

POLL_S = 0.004
"""How long the worker sleeps when the ring is empty: short against a model hop (35 ms),
long enough that waking costs little CPU."""


RECENT_AUDIO_SAMPLES = 2 * MODEL_RATE_HZ
"""How much of the audio fed to the engine the worker keeps for a successor engine [samples
at 22050 Hz]: more than any engine holds back for its lookahead and hop."""

METER_FALL_DB_PER_S = 20.0
"""How fast the level meter falls from a peak (a status line read every 100 ms sees each attack)."""


@dataclass
class WorkerStats:
    """Counters the main thread reads for the status line (written by the worker only)."""

    blocks: int = 0
    drops: int = 0
    non_finite_blocks: int = 0
    level_dbfs: float = -120.0
    """The input's block RMS as the noise gate reads it, held: it falls at ``METER_FALL_DB_PER_S``."""
    cpu_load: float = 0.0
    notes_started: int = 0
    sounding_pitches: tuple[int, ...] = ()
    """The notes the engine is playing (whether or not a MIDI port is up), replaced whole."""


class Worker:
    """Owns the engine and the sink while running; start it, then ``stop`` it from the main thread."""

    def __init__(
        self,
        ring: AudioRing,
        converter: DeviceToModel,
        engine: StreamingEngine,
        sink: MidiSink,
        max_backlog_frames: int,
        chunk_frames: int,
        on_events: Callable[[list[Event]], None] | None = None,
        preroll: np.ndarray | None = None,
    ) -> None:
        """``preroll``: model-rate audio the engine gets before the ring's (a predecessor's
        audio it never judged, see ``RecentAudio``)."""
        self.ring = ring
        self.converter = converter
        self.engine = engine
        self.sink = sink
        self.max_backlog_frames = max_backlog_frames
        self.chunk_frames = chunk_frames
        self.on_events = on_events
        self.stats = WorkerStats()
        self.recent = RecentAudio(RECENT_AUDIO_SAMPLES)
        """The newest audio fed to the engine since its stream last started (read once stopped)."""
        self._preroll = preroll
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="livepitch-worker", daemon=True)
        self._poll_s = POLL_S
        self.detached = False
        """True once ``stop`` gave up waiting: the thread, if it ever wakes, sends nothing more
        (its notes were released without it)."""

    @property
    def alive(self) -> bool:
        """Whether the thread is running."""
        return self._thread.is_alive()

    def start(self) -> None:
        """Start the worker thread."""
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Ask the worker to stop and wait for it (main thread)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        self.detached = self._thread.is_alive()

    def _run(self) -> None:
        """Worker thread body."""
        wall_start, cpu_start = time.monotonic(), time.thread_time()
        try:
            if self._preroll is not None and self._preroll.size:
                self._feed_model_rate(self._preroll, sent_after=self._preroll.shape[0])
                self._preroll = None
            while not self._stop.is_set():
                if not self.process_available():
                    self._stop.wait(self._poll_s)
                now = time.monotonic()
                if now - wall_start >= 1.0:
                    cpu_now = time.thread_time()
                    self.stats.cpu_load = (cpu_now - cpu_start) / (now - wall_start)
                    wall_start, cpu_start = now, cpu_now
        except BaseException as err:  # reported by the main thread, which releases the notes (a
            self.error = (
                err  # SystemExit from an embedding program's on_events too: it ends no thread but this)
            )
            log.debug("worker failed", exc_info=True)

    def process_available(self, last: bool = False) -> bool:
        """Process what the ring holds (worker thread); False if it was empty."""
        if self.ring.available_frames == 0 and not last:
            return False
        while self.ring.available_frames > 0 or last:
            if not last and self._stop.is_set():
                break
            if not last and (self.ring.available_frames > self.max_backlog_frames or self.ring.has_dropped):
                self._skip_ahead(self.ring.available_frames)
                if self._stop.is_set():  # (its notes' release may have waited for the port)
                    break
            block = self.ring.read(self.chunk_frames)
            final = last and self.ring.available_frames == 0
            self._feed(block, final)
            if final:
                break
        return True

    def _skip_ahead(self, available: int) -> None:
        """Fallen behind, or audio lost to a full ring: skip to the newest audio, end the notes
        and start the engine's stream again after the gap."""
        keep = self.chunk_frames
        skipped = self.ring.skip(max(0, available - keep))
        lost = skipped + self.ring.take_dropped_frames()
        self.stats.drops += 1
        log.warning(
            "fell %.0f ms behind the audio: skipped it and released the sounding notes (drop %d)",
            1000.0 * lost / self.converter.device_rate_hz,
            self.stats.drops,
        )
        self.deliver(self.engine.release_all())
        if self.detached:  # given up on: the engine and the clock are the main thread's now
            return
        held = self.converter.reset()
        # recorded and printed times after the gap go on by the audio fed (or held back by the
        # resampler) and the audio lost, so they stay on the performance's clock
        fed = self.engine.break_stream() + held
        self.recent.clear()
        lost_samples = round(lost * self.engine.rate_hz / self.converter.device_rate_hz)
        self.sink.advance_clock(fed + lost_samples, refused=lambda: self.detached)

    def _feed(self, block: np.ndarray, last: bool) -> None:
        if needs_cleaning(block):
            self.stats.non_finite_blocks += 1
            if self.stats.non_finite_blocks == 1 or self.stats.non_finite_blocks % 1000 == 0:
                log.warning(
                    "the input delivered NaN, infinite or absurd samples (beyond ±%g); "
                    "they are replaced by silence or clipped",
                    MAX_SAMPLE_MAGNITUDE,
                )
            block = cleaned(block)
        self.stats.blocks += 1
        self._feed_model_rate(self.converter.convert(block, last=last))

    def _feed_model_rate(self, mono: np.ndarray, sent_after: int = 0) -> None:
        """Feed mono 22050 Hz audio to the engine, keep it in ``recent``, send the events;
        ``sent_after``: they go out once the engine has consumed that many samples (a preroll
        fed at once), which is what their ``emitted_sample`` says."""
        self.recent.append(mono)
        events = self.engine.feed(mono)
        if sent_after:
            events = [
                dataclasses.replace(event, emitted_sample=max(event.emitted_sample, sent_after))
                for event in events
            ]
        self.deliver(events)
        fallen = self.stats.level_dbfs - METER_FALL_DB_PER_S * mono.shape[0] / self.engine.rate_hz
        self.stats.level_dbfs = max(-120.0, self.engine.levels.newest_db, fallen)

    def deliver(self, events: list[Event]) -> None:
        """Count, send and show ``events`` (the worker thread, or the main thread once the
        worker has stopped)."""
        if not events or self.detached:
            return
        self.stats.notes_started += sum(1 for event in events if isinstance(event, NoteOn))
        self.stats.sounding_pitches = tuple(sorted(self.engine.tracker.sounding.values()))
        self.sink.send(events, refused=lambda: self.detached)
        if self.on_events is not None:
            self.on_events(events)
