"""The worker's drops: skipping to the newest audio keeps the session's clock and every note."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest

from livepitch.engine import build_engine
from livepitch.events import Event, NoteOff, NoteOn
from livepitch.midi_sink import MidiSink
from livepitch.recent_audio import RecentAudio
from livepitch.resample_stream import DeviceToModel
from livepitch.ring_buffer import AudioRing
from livepitch.settings import BendMode, DaemonSettings
from livepitch.worker import Worker
from tests.fakes import RecordingPort, sounding_after
from tests.synth import sequence

RATE_HZ = 22050


class LoggedSink(MidiSink):
    """A sink that keeps every event as logged (with the session's offset applied)."""

    def __init__(self) -> None:
        self.port = RecordingPort()
        super().__init__(self.port, BendMode.NONE, 2)
        self.logged: list[tuple[Event, int]] = []  # with the session's offset then

    def _log(self, event: Event) -> None:
        self.logged.append((event, self.time_offset_samples))
        super()._log(event)

    def logged_at_s(self, kind: type) -> list[tuple[int, float]]:
        """(pitch, session time [s]) of the events of ``kind`` logged."""
        return [
            (event.pitch, (event.time_sample + offset) / RATE_HZ)
            for event, offset in self.logged
            if isinstance(event, kind)
        ]


def worker_for(
    model: Any, sink: MidiSink, ring_frames: int = 10 * RATE_HZ, rate_hz: int = RATE_HZ, quality: str = "QQ"
) -> tuple[Worker, AudioRing]:
    config = DaemonSettings.model_validate({"midi": {"bends": "none"}})
    engine = build_engine(model, config)
    engine.warm_up()
    ring = AudioRing(ring_frames, 1)
    converter = DeviceToModel(rate_hz, 1, None, quality)
    worker = Worker(ring, converter, engine, sink, max_backlog_frames=int(0.2 * rate_hz), chunk_frames=256)
    return worker, ring


def play(worker: Worker, ring: AudioRing, audio: np.ndarray, first: int, stop: int) -> None:
    """Deliver ``audio[first:stop]`` block by block, the worker keeping up."""
    for start in range(first, stop, 256):
        ring.write(audio[start : min(start + 256, stop), None])
        worker.process_available()


def test_a_note_whose_onset_waits_for_its_lookahead_at_a_drop_is_not_played_after_the_gap(
    model: Any,
) -> None:
    """C4 at 0.3 s, E4 at 2.0 s; the worker falls a second behind when it has read 0.34 s: C4's
    onset is still in the engine's lookahead. It must not come out after the gap (it was
    dated 1 s late, and once a second time), and E4 keeps its time."""
    audio = sequence([(0.3, 0.2, 60), (2.0, 0.4, 64)], 3.0).astype(np.float32)
    sink = LoggedSink()
    worker, ring = worker_for(model, sink)
    cut = int(0.34 * RATE_HZ)
    play(worker, ring, audio, 0, cut)
    ring.write(audio[cut : cut + RATE_HZ, None])  # a second at once: skipped
    worker.process_available()
    assert sounding_after(sink.port.messages) == set()  # nothing of before the gap goes on
    play(worker, ring, audio, cut + RATE_HZ, audio.shape[0])
    worker.deliver(worker.engine.finish())
    assert worker.stats.drops == 1
    ons = sink.logged_at_s(NoteOn)
    assert [pitch for pitch, _ in ons] in ([64], [60, 64]), ons
    assert all(abs(at_s - {60: 0.3, 64: 2.0}[pitch]) < 0.05 for pitch, at_s in ons), ons
    assert sounding_after(sink.port.messages) == set()
    assert len(sink.logged_at_s(NoteOff)) == len(ons)


def test_audio_lost_to_a_full_ring_is_a_drop_on_the_sessions_clock(model: Any) -> None:
    """A block the full ring refused is audio the engine never hears: a gap in the stream, so
    a drop (notes released, the engine's stream started again) and the clock goes on by it."""
    audio = sequence([(0.3, 0.4, 60), (2.0, 0.4, 64)], 3.0).astype(np.float32)
    sink = LoggedSink()
    worker, ring = worker_for(model, sink, ring_frames=RATE_HZ // 2)
    play(worker, ring, audio, 0, RATE_HZ)
    assert not ring.write(audio[RATE_HZ : 2 * RATE_HZ - 256, None])  # more than the ring holds
    play(worker, ring, audio, 2 * RATE_HZ - 256, audio.shape[0])
    assert worker.stats.drops == 1 and ring.overflows == 1
    ons = sink.logged_at_s(NoteOn)
    assert [pitch for pitch, _ in ons] == [60, 64], ons
    assert abs(ons[1][1] - 2.0) < 0.05, ons


def test_a_worker_given_up_on_leaves_the_sessions_clock_alone(model: Any) -> None:
    """Once the main thread gave up waiting for it, the clock is the main thread's."""
    sink = LoggedSink()
    worker, ring = worker_for(model, sink)
    ring.write(np.zeros((RATE_HZ, 1), np.float32))
    worker.detached = True
    worker.process_available()
    assert worker.stats.drops == 1 and sink.time_offset_samples == 0


def test_a_drop_counts_the_audio_the_resampler_held_back(model: Any) -> None:
    """soxr's HQ holds 20-40 ms back at 48 kHz; a drop resets it, and that audio's time is
    not lost: E4 after the drop keeps the time it has without one."""
    rate_hz = 48000
    audio = sequence([(2.0, 0.4, 64)], 3.0, rate_hz=rate_hz).astype(np.float32)
    times_s = []
    for drop in (False, True):
        sink = LoggedSink()
        worker, ring = worker_for(model, sink, rate_hz=rate_hz, quality="HQ")
        cut = int(0.5 * rate_hz)
        play(worker, ring, audio, 0, cut)
        if drop:
            ring.write(audio[cut : cut + rate_hz // 2, None])
            worker.process_available()
            assert worker.stats.drops == 1
            cut += rate_hz // 2
        play(worker, ring, audio, cut, audio.shape[0])
        times_s.append(sink.logged_at_s(NoteOn)[-1][1])
    assert abs(times_s[1] - times_s[0]) < 0.006, times_s  # (the frame grid moves with a drop)


def test_a_drop_ends_the_notes_sounding_at_once(model: Any) -> None:
    """C4 sounds when the worker falls a second behind: the drop ends it then (the engine's
    stream starts again, so no later note-off would come for it); left to the stop's All
    Notes Off, it would hang on the synth through the rest of the session."""
    audio = sequence([(0.3, 1.5, 60)], 3.0).astype(np.float32)
    sink = LoggedSink()
    worker, ring = worker_for(model, sink)
    cut = int(0.8 * RATE_HZ)
    play(worker, ring, audio, 0, cut)
    assert sink.sounding == [(0, 60)]
    ring.write(audio[cut : cut + RATE_HZ, None])  # a second at once: skipped
    worker.process_available()
    assert worker.stats.drops == 1
    assert sounding_after(sink.port.messages) == set() and sink.sounding == []


def test_a_batch_waiting_for_the_sink_when_the_worker_is_given_up_on_is_not_sent(model: Any) -> None:
    """The worker waits for the sink with a note-on while the main thread, having given up on
    it, releases: sent after the release, the note would sound with nothing left to end it."""
    sink = LoggedSink()
    worker, _ = worker_for(model, sink)
    with sink._lock:  # the main thread's release holds the sink
        thread = threading.Thread(target=lambda: worker.deliver([NoteOn(0, 10, 0, 64, 100)]))
        thread.start()
        deadline = time.monotonic() + 10.0
        while worker.stats.notes_started == 0 and time.monotonic() < deadline:
            time.sleep(0.001)
        time.sleep(0.1)  # counted, then waiting for the lock
        worker.detached = True  # stop() gave up on it
        sink.release_all()
    thread.join(5)
    assert worker.stats.notes_started == 1  # it was on its way, not turned back before the sink
    assert [m.note for m in sink.port.messages if m.type == "note_on"] == []


def test_recent_audio_keeps_the_newest_samples_across_the_wrap() -> None:
    recent = RecentAudio(5)
    assert recent.newest(3).shape == (0,)
    recent.append(np.arange(3, dtype=np.float32))
    recent.append(np.arange(3, 7, dtype=np.float32))  # wraps: 0 and 1 are forgotten
    assert recent.held_samples == 5
    assert recent.newest(9).tolist() == [2, 3, 4, 5, 6]
    assert recent.newest(2).tolist() == [5, 6]
    recent.append(np.arange(10, 18, dtype=np.float32))  # more than it holds
    assert recent.newest(5).tolist() == [13, 14, 15, 16, 17]
    recent.clear()
    assert recent.newest(5).shape == (0,)


def test_a_resamplers_flush_returns_the_audio_it_held() -> None:
    """What soxr still holds at a reload goes to the next engine, so the stream loses nothing."""
    converter = DeviceToModel(48000, 1, quality="HQ")
    block = np.sin(np.arange(4800, dtype=np.float32) / 10.0)[:, None].astype(np.float32)
    out = converter.convert(block)
    held = converter.flush()
    assert out.shape[0] + held.shape[0] == 2205  # 0.1 s at 22050 Hz, all of it
    assert held.shape[0] > 0 and np.abs(held).max() > 0.1
    assert converter.flush().shape == (0,)  # a fresh stream holds nothing


def test_the_converter_refuses_no_channels_and_integer_samples() -> None:
    with pytest.raises(ValueError, match="at least one channel"):
        DeviceToModel(44100, 0)
    with pytest.raises(TypeError, match="floating point"):
        DeviceToModel(44100, 1).convert(np.ones((441, 1), dtype=np.int16))
