"""The daemon with fake devices: exact events, and every note released on stop, fault and overload."""

from __future__ import annotations

import csv
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mido
import numpy as np
import numpy.typing as npt
import pytest
import soundfile

from livepitch.audio_sources import FileReplaySource
from livepitch.daemon import Daemon
from livepitch.engine import build_engine, stream_audio
from livepitch.errors import ConfigError, DeviceError, MidiPortError
from livepitch.event_files import write_events_csv
from livepitch.events import Event, NoteOn
from livepitch.factories import Factories
from livepitch.midi_file import setup_messages
from livepitch.midi_sink import MidiSink
from livepitch.settings import BendMode, DaemonSettings
from livepitch.status import StatusLine
from tests.fakes import FakeSource, RecordingPort, sounding_after
from tests.synth import sequence

MELODY = [(0.3, 0.5, 60), (0.9, 0.5, 64), (1.5, 1.2, 67), (1.5, 1.2, 72)]
MPE_SETUP = [m.bytes() for m in setup_messages(BendMode.MPE, 48)]


class QuietStatus(StatusLine):
    def __init__(self) -> None:
        self.enabled = False
        self._shown = False


def settings(**groups: dict[str, Any]) -> DaemonSettings:
    base: dict[str, Any] = {"ui": {"quiet": True}, "audio": {"ring_ms": 10000.0, "max_backlog_ms": 9000.0}}
    for group, values in groups.items():  # a group given keeps the defaults it does not name
        base[group] = {**base.get(group, {}), **values}
    return DaemonSettings.model_validate(base)


def make_daemon(
    model: Any, config: DaemonSettings, sources: list[FakeSource], ports: list[RecordingPort]
) -> Daemon:
    queue_sources, queue_ports = list(sources), list(ports)

    def next_source(_: DaemonSettings) -> FakeSource:
        if not queue_sources:
            from livepitch.errors import DeviceError

            raise DeviceError("no more fake devices")
        return queue_sources.pop(0)

    def next_port(_: DaemonSettings) -> RecordingPort:
        return queue_ports.pop(0)

    return Daemon(config, Factories(lambda _: model, next_source, next_port), status_line=QuietStatus())


class BusyDevice(FakeSource):
    """A device found, that fails when its stream is started."""

    def start(self, ring: Any) -> None:
        from livepitch.errors import DeviceError

        raise DeviceError("cannot open fake: device busy")


def assert_one_pipeline_played_the_melody(port: RecordingPort) -> None:
    """The melody's four notes, and no release (All Notes Off) before the last: the reload was
    refused before it stopped anything."""
    all_notes_off = [
        i for i, m in enumerate(port.messages) if m.type == "control_change" and m.control == 123
    ]
    last_on = max(i for i, m in enumerate(port.messages) if m.type == "note_on")
    assert all_notes_off and min(all_notes_off) > last_on
    assert note_ons(port) == [60, 64, 67, 72]


def run_in_thread(daemon: Daemon) -> tuple[threading.Thread, list[int]]:
    result: list[int] = []
    thread = threading.Thread(target=lambda: result.append(daemon.run()), daemon=True)
    thread.start()
    return thread, result


def wait_for(condition: Any, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.01)


def logged_note_ons(events_csv: Path) -> list[tuple[int, float]]:
    """(pitch, time [s]) of every note-on in an events log, in its order."""
    with open(events_csv, newline="") as handle:
        return [
            (int(row["pitch"]), float(row["time_s"]))
            for row in csv.DictReader(handle)
            if row["kind"] == "note_on"
        ]


def replay_resumed_at_s(caplog: pytest.LogCaptureFixture) -> list[float]:
    """Where each replay a reload restarted went on [s], as logged."""
    return [
        float(r.getMessage().split()[-2]) for r in caplog.records if "replay goes on at" in r.getMessage()
    ]


def run_reloading_at(daemon: Daemon, port: RecordingPort, pitch: int) -> int:
    """Run ``daemon`` until it ends, asking for a reload once ``port`` got a note-on of ``pitch``."""
    thread, result = run_in_thread(daemon)
    wait_for(lambda: pitch in note_ons(port))
    daemon.request_reload()
    thread.join(60)
    assert len(result) == 1, "the daemon did not end"
    return result[0]


def at_the_file_end(daemon: Daemon, read: Callable[[Any], Any]) -> list[Any]:
    """Run ``daemon`` on a replay that ends, and return ``read(daemon)`` taken when the file
    ended, before the pipeline stopped (one value)."""
    seen: list[Any] = []
    original = daemon._finish_file

    def remember() -> None:
        seen.append(read(daemon))
        original()

    daemon._finish_file = remember  # type: ignore[method-assign]
    assert daemon.run() == 0
    assert len(seen) == 1
    return seen


def note_ons(port: RecordingPort) -> list[int]:
    return [m.note for m in port.messages if m.type == "note_on" and m.velocity >= 70]


@pytest.fixture(scope="module")
def melody() -> npt.NDArray[np.float32]:
    return sequence(MELODY, 3.0)


@pytest.mark.parametrize("engine", ["window", "incremental"])
def test_a_live_run_sends_exactly_the_file_runs_events(
    model: Any, melody: np.ndarray, tmp_path: Path, engine: str
) -> None:
    live_csv, file_csv = tmp_path / "live.csv", tmp_path / "file.csv"
    config = settings(port={"events_csv": live_csv}, midi={"bends": "mpe"}, stream={"engine": engine})
    port = RecordingPort()
    daemon = make_daemon(model, config, [FakeSource(melody, 22050, block_frames=300)], [port])
    assert daemon.run() == 0
    write_events_csv(file_csv, stream_audio(melody, build_engine(model, config), 1024))
    assert live_csv.read_text() == file_csv.read_text()
    assert note_ons(port) == [60, 64, 67, 72]
    assert sounding_after(port.messages) == set()


class PythonCallbackSource(FakeSource):
    """A fake device whose producer is Python code on the audio system's thread."""

    @property
    def callback_needs_gil(self) -> bool:
        return True


@pytest.mark.parametrize("needs_gil", [False, True])
def test_the_cnn_yields_the_gil_only_when_a_python_audio_callback_waits_for_it(
    model: Any, melody: np.ndarray, needs_gil: bool
) -> None:
    from livepitch.incremental_engine import IncrementalEngine
    from livepitch.streaming_cnn import YIELD_EVERY_S

    source = (PythonCallbackSource if needs_gil else FakeSource)(melody, 22050, block_frames=300)
    port = RecordingPort()
    daemon = make_daemon(model, settings(), [source], [port])
    assert daemon.run() == 0
    assert note_ons(port) == [60, 64, 67, 72]
    assert daemon.engine is not None and isinstance(daemon.engine.frames, IncrementalEngine)
    assert daemon.engine.frames._cnn.yield_every_s == (YIELD_EVERY_S if needs_gil else None)


def test_a_replay_that_ends_sends_all_notes_off_once_per_channel(model: Any, melody: np.ndarray) -> None:
    """The file's end releases the notes; the shutdown after it has nothing more to tell the synth."""
    port = RecordingPort()
    daemon = make_daemon(model, settings(midi={"bends": "mpe"}), [FakeSource(melody, 22050)], [port])
    assert daemon.run() == 0
    used = {m.channel for m in port.messages if m.type == "note_on"}
    all_off = [m.channel for m in port.messages if m.type == "control_change" and m.control == 123]
    assert len(used) > 1 and sorted(all_off) == sorted(used)
    last_note_on = max(i for i, m in enumerate(port.messages) if m.type == "note_on")
    first_all_off = min(
        i for i, m in enumerate(port.messages) if m.type == "control_change" and m.control == 123
    )
    assert first_all_off > last_note_on


def test_device_rate_and_channels_are_converted(model: Any, melody: np.ndarray) -> None:
    stereo_48k = np.repeat(sequence(MELODY, 3.0, rate_hz=48000)[:, None], 2, axis=1)
    port = RecordingPort()
    daemon = make_daemon(model, settings(), [FakeSource(stereo_48k, 48000, block_frames=480)], [port])
    assert daemon.run() == 0
    assert note_ons(port) == [60, 64, 67, 72]


def test_stop_mid_note_releases_everything_and_exits_0(model: Any, melody: np.ndarray) -> None:
    port = RecordingPort()
    source = FakeSource(melody, 22050, speed=1.0, finish=False)
    daemon = make_daemon(model, settings(midi={"bends": "mpe"}), [source], [port])
    thread, result = run_in_thread(daemon)
    wait_for(lambda: 67 in note_ons(port))
    daemon.request_stop()
    thread.join(10)
    assert result == [0]
    assert sounding_after(port.messages) == set()
    offs = {(m.channel, m.note) for m in port.messages if m.type == "note_off"}
    assert any(note == 67 for _, note in offs)
    all_off_channels = {m.channel for m in port.messages if m.type == "control_change" and m.control == 123}
    used = {m.channel for m in port.messages if m.type == "note_on"}
    assert used <= all_off_channels
    assert port.closed


class TimedStart(FakeSource):
    """A fake device that remembers when its stream started (monotonic s)."""

    started_at = 0.0

    def start(self, ring: Any) -> None:
        self.started_at = time.monotonic()
        super().start(ring)


def test_recorded_times_after_a_lost_device_returns_count_the_time_it_was_away(
    model: Any, melody: np.ndarray, tmp_path: Path
) -> None:
    """The outage is part of the performance: the notes after it are recorded when they were
    played, not joined on to the notes before it."""
    first = TimedStart(melody, 22050, speed=1.0, vanish_after_s=1.2, drained_before_vanishing=True)
    second = TimedStart(melody, 22050, speed=1.0)
    events_csv = tmp_path / "events.csv"
    daemon = make_daemon(
        model,
        settings(midi={"bends": "none"}, port={"events_csv": events_csv}),
        [first, second],
        [RecordingPort()],
    )
    thread, result = run_in_thread(daemon)
    thread.join(60)
    assert result == [0] and daemon.recoveries == 1
    ons = logged_note_ons(events_csv)
    away_s = second.started_at - first.started_at  # the second run's audio starts then
    assert away_s > 1.7  # 1.2 s of audio, then the first retry half a second later
    second_run = ons[-4:]
    assert [pitch for pitch, _ in second_run] == [60, 64, 67, 72]
    # (the loss is dated to the ring's last write; dated to the main loop's tick that last saw
    # progress, they were recorded up to 0.1 s early, 106 ms in a loaded CI run; joined on, they
    # would be 1.7 s early)
    for (_, at_s), onset_s in zip(second_run, [0.3, 0.9, 1.5, 1.5], strict=True):
        assert away_s + onset_s - 0.03 < at_s < away_s + onset_s + 0.15, (ons, away_s)


def test_a_vanished_device_releases_the_notes_and_is_reopened(model: Any, melody: np.ndarray) -> None:
    port = RecordingPort()
    first = FakeSource(melody, 22050, speed=1.0, vanish_after_s=1.2, drained_before_vanishing=True)
    second = FakeSource(melody, 22050, speed=4.0)
    daemon = make_daemon(model, settings(), [first, second], [port])
    thread, result = run_in_thread(daemon)
    thread.join(60)
    assert result == [0]
    assert daemon.recoveries == 1
    ons = note_ons(port)
    # the first run heard 60 and 64 before the device vanished; the second run the whole melody
    assert ons[:2] == [60, 64] and ons[-4:] == [60, 64, 67, 72] and ons.count(60) == 2
    # at the loss, 67 was sounding: it was ended before the second run started
    loss = next(
        i
        for i, m in enumerate(port.messages)
        if m.type == "note_on" and i > 0 and m.note == 60 and m.velocity > 0 and i > 5
    )
    assert sounding_after(port.messages[:loss]) == set()
    assert sounding_after(port.messages) == set()


def test_a_note_at_the_first_sample_plays_and_one_sounding_when_a_device_returns_does_not_again(
    model: Any,
) -> None:
    """The session's first sample is a note's attack: it plays (a sample trimmed to its attack).
    The device vanishes and returns with the note still sounding (its audio starts inside
    it): the pipeline continues the session, and the note, released at the loss, is not struck
    again by the return's first frame."""
    port = RecordingPort()
    held = sequence([(0.0, 3.0, 64)], 3.0)
    first = FakeSource(held, 22050, speed=1.0, vanish_after_s=1.0, drained_before_vanishing=True)
    second = FakeSource(held[: 22050 * 2], 22050, speed=4.0)
    daemon = make_daemon(model, settings(), [first, second], [port])
    thread, result = run_in_thread(daemon)
    thread.join(60)
    assert result == [0] and daemon.recoveries == 1
    assert note_ons(port) == [64]
    assert sounding_after(port.messages) == set()


def test_overload_skips_ahead_counts_the_drop_and_releases_notes(
    model: Any, melody: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class SlowModel:
        def __init__(self) -> None:
            self.calls = 0

        def run_window(self, window: Any, first: int, count: int) -> Any:
            self.calls += 1
            if 60 <= self.calls <= 63:
                time.sleep(0.25)  # the worker stalls for a second
            return model.run_window(window, first, count)

    port = RecordingPort()
    # a window model made slow (the overload path is the same for every engine)
    events_csv = tmp_path / "events.csv"
    config = settings(
        audio={"max_backlog_ms": 200.0}, stream={"engine": "window"}, port={"events_csv": events_csv}
    )
    source = FakeSource(np.concatenate([melody, melody]), 22050, speed=1.0)
    handed: list[Event] = []  # what a program embedding the daemon gets (LiveSession)
    daemon = Daemon(
        config,
        Factories(lambda _: SlowModel(), lambda _: source, lambda _: port),
        status_line=QuietStatus(),
        on_events=handed.extend,
    )
    sounding_at_drops: list[set[tuple[int, int]]] = []
    advance_clock = MidiSink.advance_clock

    def advance_clock_after_the_release(sink: MidiSink, samples: int, refused: Any = None) -> None:
        sounding_at_drops.append(sounding_after(port.messages))  # the drop's note-offs are out
        advance_clock(sink, samples, refused)

    monkeypatch.setattr(MidiSink, "advance_clock", advance_clock_after_the_release)
    drops = at_the_file_end(daemon, lambda d: d.worker.stats.drops)
    assert drops[0] >= 1
    assert len(sounding_at_drops) == drops[0] and all(not s for s in sounding_at_drops), sounding_at_drops
    assert sounding_after(port.messages) == set()
    # the notes after the gap keep their times: the engine's clock lost the audio skipped (a
    # second past 2 s; the last chord starts at 4.5 s)
    last_c5_s = [at_s for pitch, at_s in logged_note_ons(events_csv) if pitch == 72][-1]
    assert abs(last_c5_s - 4.5) < 0.05
    # and the program's events are on the same clock (they started again near 0 after a drop)
    handed_ons = [(on.pitch, round(on.time_s, 6)) for on in handed if isinstance(on, NoteOn)]
    assert handed_ons == logged_note_ons(events_csv)


def test_ring_overflow_is_counted_not_fatal(
    model: Any, melody: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="livepitch")
    port = RecordingPort()
    config = settings(audio={"ring_ms": 100.0, "max_backlog_ms": 80.0})
    source = FakeSource(melody, 22050, burst_frames=22050)  # a 1 s burst into a 0.1 s ring
    daemon = make_daemon(model, config, [source], [port])
    ring_overflows = at_the_file_end(daemon, lambda d: d._ring.overflows)
    assert ring_overflows[0] >= 1
    assert sounding_after(port.messages) == set()
    # counted once (the end of the file stops the pipeline, the shutdown tries again), apart
    # from what the device flagged
    assert daemon.totals["overflows"] == ring_overflows[0]
    assert daemon.totals["device_overflows"] == source.overflows
    session = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("session:"))
    assert f"notes, {ring_overflows[0]} overflows, " in session
    assert f"; {source.overflows} input overflows flagged by the audio system" in session


def test_a_failing_midi_port_is_reopened_and_nothing_sticks(model: Any, melody: np.ndarray) -> None:
    broken = RecordingPort("first", fail_after=3)
    spare = RecordingPort("second")
    daemon = make_daemon(
        model, settings(midi={"bends": "none"}), [FakeSource(melody, 22050, speed=2.0)], [broken, spare]
    )
    assert daemon.run() == 0
    assert broken.closed and spare.messages
    # whatever the first port left sounding, the second never shows a note left on
    assert sounding_after(spare.messages) == set()


def test_sighup_reload_restarts_with_the_new_settings_and_releases_notes(
    model: Any, melody: np.ndarray
) -> None:
    port = RecordingPort()
    sources = [FakeSource(melody, 22050, speed=1.0, finish=False), FakeSource(melody, 22050, speed=4.0)]
    daemon = make_daemon(model, settings(midi={"bends": "none"}), sources, [port, RecordingPort("second")])
    # a new block size: the stream is reopened (the next fake device, replaying from its start)
    reloaded = settings(midi={"bends": "none"}, tracker={"max_hz": 300.0}, audio={"block_frames": 512})
    daemon._reload_settings = lambda: reloaded
    assert run_reloading_at(daemon, port, 64) == 0
    assert daemon.settings.tracker.max_hz == 300.0
    ons = note_ons(port)
    first_run, second_run = ons[: ons.index(64) + 1], ons[ons.index(64) + 1 :]
    assert first_run[:2] == [60, 64]
    assert second_run == [60]  # 64, 67 and 72 lie above 300 Hz now
    assert sounding_after(port.messages) == set()
    # the session's note count covers both pipelines
    assert daemon.totals["notes"] == len([m for m in port.messages if m.type == "note_on" and m.velocity > 0])


class CountedStarts(FakeSource):
    """A fake device that counts how often its stream was started and stopped."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.starts = self.stops = 0

    def start(self, ring: Any) -> None:
        self.starts += 1
        super().start(ring)

    def stop(self, reopening: bool = False) -> None:
        self.stops += 1
        super().stop(reopening)


def test_a_reload_that_leaves_the_audio_settings_alone_keeps_the_stream_open(
    model: Any, melody: np.ndarray, tmp_path: Path
) -> None:
    """Reopened, a JACK capture port gets a new name and loses what was connected to it. The
    new worker reads the same ring on: the notes after the reload come once, on the session's
    clock, and the ones sounding at the reload were released."""
    device = CountedStarts(melody, 22050, speed=1.0)
    port = RecordingPort()
    events_csv = tmp_path / "events.csv"
    config = settings(midi={"bends": "none"}, port={"events_csv": events_csv})
    daemon = make_daemon(model, config, [device], [port])
    daemon._reload_settings = lambda: settings(
        midi={"bends": "none"}, tracker={"max_hz": 1000.0}, audio={"max_backlog_ms": 8000.0}
    )
    assert run_reloading_at(daemon, port, 64) == 0
    assert daemon.settings.tracker.max_hz == 1000.0
    assert (device.starts, device.stops) == (1, 1)  # the factory gave no other device either
    # the rest of the melody, once; the chord's notes in either order (the new engine's frames
    # fall wherever the reload happened)
    ons = note_ons(port)
    assert ons[:2] == [60, 64] and sorted(ons[2:]) == [67, 72]
    sent = [(m.type, m.note) for m in port.messages if m.type in ("note_on", "note_off")]
    assert sent.index(("note_off", 64)) < sent.index(("note_on", 67))  # released at the reload
    assert sounding_after(port.messages) == set()
    onsets_s = dict(logged_note_ons(events_csv))
    for pitch, melody_onset_s in ((60, 0.3), (64, 0.9), (67, 1.5), (72, 1.5)):
        assert abs(onsets_s[pitch] - melody_onset_s) < 0.05, (pitch, onsets_s)
    assert daemon.totals["audio_frames"] == melody.shape[0]  # counted once


class PausesAt(FakeSource):
    """A fake device whose audio stops at ``pause_frame`` until ``go`` is set (a moment to
    reload in, with the engine holding a known stretch of audio)."""

    def __init__(self, audio: npt.NDArray[np.float32], rate_hz: int, pause_frame: int, **kwargs: Any) -> None:
        super().__init__(audio, rate_hz, **kwargs)
        self.pause_frame = pause_frame
        self.go = threading.Event()

    def start(self, ring: Any) -> None:
        source = self

        class Paused:
            written = 0

            def __getattr__(self, name: str) -> Any:
                return getattr(ring, name)

            def write(self, block: Any) -> bool:
                if self.written + block.shape[0] > source.pause_frame:
                    source.go.wait(10.0)
                self.written += block.shape[0]
                return bool(ring.write(block))

        super().start(Paused())  # type: ignore[arg-type]


@pytest.fixture
def pauses_are_not_losses(monkeypatch: pytest.MonkeyPatch) -> None:
    """A ``PausesAt`` device's pause is a moment to reload in, not a device gone quiet: on a
    busy machine the reload can come more than ``STALL_S`` after the device paused."""
    import livepitch.daemon as daemon_module

    monkeypatch.setattr(daemon_module, "STALL_S", 60.0)


@pytest.mark.parametrize("engine", ["incremental", "window"])
def test_a_kept_stream_plays_a_note_that_started_in_the_audio_the_old_engine_held(
    model: Any, tmp_path: Path, engine: str, pauses_are_not_losses: None
) -> None:
    """G4 starts 20 ms before the reload: the old engine holds that audio for its lookahead
    (72.7 ms) and never judges it; the new engine gets it first, so G4 is played, at its
    time (it was lost before)."""
    phrase = sequence([(0.3, 0.5, 60), (1.0, 0.4, 64), (1.6, 0.8, 67), (2.8, 0.5, 72)], 3.6)
    pause_frame = round(1.62 * 22050)  # (block edges: 256 frames)
    device = PausesAt(phrase, 22050, pause_frame - pause_frame % 256, speed=1.0)
    port = RecordingPort()
    events_csv = tmp_path / "events.csv"
    audio = {"ring_ms": 8000.0, "max_backlog_ms": 6000.0}
    stream = {"engine": engine}
    config = settings(audio=audio, stream=stream, midi={"bends": "none"}, port={"events_csv": events_csv})
    daemon = make_daemon(model, config, [device], [port])
    daemon._reload_settings = lambda: settings(
        audio=audio, stream=stream, midi={"bends": "none"}, tracker={"max_hz": 1000.0}
    )
    thread, result = run_in_thread(daemon)
    wait_for(lambda: daemon.engine is not None and daemon.engine.consumed_samples >= device.pause_frame)
    old_worker = daemon.worker
    assert 67 not in note_ons(port)  # still held for the lookahead
    daemon.request_reload()
    wait_for(lambda: daemon.worker is not None and daemon.worker is not old_worker)
    device.go.set()
    thread.join(60)
    assert result == [0] and daemon.settings.tracker.max_hz == 1000.0
    ons = logged_note_ons(events_csv)
    assert [pitch for pitch, _ in ons] == [60, 64, 67, 72]
    for (_, at_s), expected_s in zip(ons, [0.3, 1.0, 1.6, 2.8], strict=True):
        assert abs(at_s - expected_s) < 0.03, ons
    assert sounding_after(port.messages) == set()
    assert_emitted_in_order(events_csv)


def assert_emitted_in_order(events_csv: Path) -> None:
    """The events log is in the order events went out: its ``emitted_s`` never goes back."""
    with open(events_csv, newline="") as handle:
        emitted = [float(row["emitted_s"]) for row in csv.DictReader(handle)]
    assert emitted == sorted(emitted), emitted


def test_a_note_the_old_engine_played_just_before_a_kept_reload_may_strike_again_when_it_goes_out(
    model: Any, tmp_path: Path, pauses_are_not_losses: None
) -> None:
    """The new engine judges again the last 46 ms the old one published: G4, played 25 ms
    after its onset's lookahead and released by the reload, can come again (it is still
    sounding). Its events went out when the new engine had read that audio, and the log says
    so (they were logged at the audio's position, before the reload's release)."""
    phrase = sequence([(0.3, 0.5, 60), (1.6, 0.8, 67), (2.8, 0.5, 72)], 3.6)
    pause_frame = round(1.70 * 22050)
    device = PausesAt(phrase, 22050, pause_frame - pause_frame % 256, speed=1.0)
    port = RecordingPort()
    events_csv = tmp_path / "events.csv"
    audio = {"ring_ms": 8000.0, "max_backlog_ms": 6000.0}
    config = settings(audio=audio, midi={"bends": "none"}, port={"events_csv": events_csv})
    daemon = make_daemon(model, config, [device], [port])
    daemon._reload_settings = lambda: settings(
        audio=audio, midi={"bends": "none"}, tracker={"max_hz": 1000.0}
    )
    thread, result = run_in_thread(daemon)
    wait_for(lambda: daemon.engine is not None and daemon.engine.consumed_samples >= device.pause_frame)
    old_worker = daemon.worker
    assert 67 in note_ons(port)
    daemon.request_reload()
    wait_for(lambda: daemon.worker is not None and daemon.worker is not old_worker)
    device.go.set()
    thread.join(60)
    assert result == [0]
    assert [pitch for pitch, _ in logged_note_ons(events_csv)] in ([60, 67, 72], [60, 67, 67, 72])
    assert_emitted_in_order(events_csv)
    assert sounding_after(port.messages) == set()


class StallsOnce:
    """The model, stalling the worker thread for a second once ``stall`` is set (then clearing it)."""

    def __init__(self, model: Any, stall: threading.Event) -> None:
        self._model, self._stall = model, stall

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def run_window(self, window: Any, first: int, count: int) -> Any:
        if self._stall.is_set() and threading.current_thread().name == "livepitch-worker":
            self._stall.clear()
            time.sleep(1.0)
        return self._model.run_window(window, first, count)


class SlowToWarmUp:
    """The model, with every run off the worker thread (an engine's warm-up) after the first
    ``fast`` taking ``delay_s`` longer."""

    def __init__(self, model: Any, delay_s: float, fast: int = 1) -> None:
        self._model, self._delay_s, self._fast = model, delay_s, fast
        self.warm_ups = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def run_window(self, window: Any, first: int, count: int) -> Any:
        if threading.current_thread().name != "livepitch-worker":
            self.warm_ups += 1
            if self.warm_ups > self._fast:
                time.sleep(self._delay_s)
        return self._model.run_window(window, first, count)


def test_a_kept_stream_does_not_wait_for_the_new_engine_to_warm_up(model: Any, tmp_path: Path) -> None:
    """The new engine is made ready before the old worker stops: a warm-up longer than the
    backlog limit (300 ms) is no gap in the audio, so no drop, and times go on."""
    slow = SlowToWarmUp(model, 0.4)
    # the chord a second after E4 (a note starting while the old engine still held it for its
    # lookahead would be lost to the reload; a loaded machine's worker reaches E4 late)
    phrase = sequence([(0.3, 0.5, 60), (0.9, 0.5, 64), (2.4, 1.0, 67), (2.4, 1.0, 72)], 4.0)
    device = FakeSource(np.concatenate([phrase, phrase]), 22050, speed=1.0)
    port = RecordingPort()
    events_csv = tmp_path / "events.csv"
    audio = {"ring_ms": 2000.0, "max_backlog_ms": 300.0}
    config = settings(
        audio=audio, stream={"engine": "window"}, midi={"bends": "none"}, port={"events_csv": events_csv}
    )
    daemon = Daemon(
        config, Factories(lambda _: slow, lambda _: device, lambda _: port), status_line=QuietStatus()
    )
    daemon._reload_settings = lambda: settings(
        audio=audio, stream={"engine": "window"}, midi={"bends": "none"}, tracker={"max_hz": 1000.0}
    )
    thread, result = run_in_thread(daemon)
    wait_for(lambda: 64 in note_ons(port))
    daemon.request_reload()
    thread.join(60)
    assert result == [0] and slow.warm_ups >= 2
    assert daemon.totals["drops"] == 0
    ons = logged_note_ons(events_csv)
    ons.sort(key=lambda on: (round(on[1], 1), on[0]))  # a chord's notes in either order
    assert [pitch for pitch, _ in ons] == [60, 64, 67, 72, 60, 64, 67, 72]
    for (_, at_s), expected_s in zip(ons, [0.3, 0.9, 2.4, 2.4, 4.3, 4.9, 6.4, 6.4], strict=True):
        assert abs(at_s - expected_s) < 0.05, ons


def test_a_reload_reopens_the_stream_when_the_old_worker_would_not_stop(
    model: Any, melody: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker stuck past its stop's wait could still read the ring: a new worker must not
    share it, so the stream is opened again (a new ring)."""
    from livepitch import worker as worker_module

    stop = worker_module.Worker.stop
    monkeypatch.setattr(worker_module.Worker, "stop", lambda self, timeout_s=0.2: stop(self, timeout_s))
    stall = threading.Event()

    devices = [CountedStarts(melody, 22050, speed=1.0, finish=False), CountedStarts(melody, 22050, speed=4.0)]
    port = RecordingPort()
    config = settings(stream={"engine": "window"}, midi={"bends": "none"})
    daemon = make_daemon(StallsOnce(model, stall), config, list[FakeSource](devices), [port])
    daemon._reload_settings = lambda: settings(
        stream={"engine": "window"}, midi={"bends": "none"}, tracker={"max_hz": 1000.0}
    )
    thread, result = run_in_thread(daemon)
    wait_for(lambda: 60 in note_ons(port))
    old = daemon.worker
    assert old is not None
    stall.set()
    wait_for(lambda: not stall.is_set())
    daemon.request_reload()
    wait_for(lambda: daemon.worker not in (None, old))
    assert daemon.worker is not None and daemon.worker.ring is not old.ring
    thread.join(60)
    assert result == [0]
    assert [(d.starts, d.stops) for d in devices] == [(1, 1), (1, 1)]
    assert sounding_after(port.messages) == set()


def test_a_reload_during_a_file_replay_goes_on_where_the_replay_was(
    model: Any, melody: np.ndarray, tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: Any
) -> None:
    """The replay goes on a little before where its engine had published up to (so a note
    starting there is not lost), and recorded and printed times go on with the file's."""
    wav = tmp_path / "melody.wav"
    soundfile.write(wav, melody, 22050, subtype="FLOAT")
    port = RecordingPort()
    events_csv = tmp_path / "events.csv"
    config = settings(
        midi={"bends": "none"},
        audio={"input_file": wav},
        port={"events_csv": events_csv},
        ui={"quiet": True, "print_notes": True},
    )
    daemon = Daemon(
        config,
        Factories(lambda _: model, lambda _: FileReplaySource(wav, 1024, speed=2.0), lambda _: port),
        status_line=QuietStatus(),
    )
    daemon._reload_settings = lambda: config.model_copy(deep=True)
    thread, result = run_in_thread(daemon)
    wait_for(lambda: 64 in note_ons(port))
    with caplog.at_level("INFO", logger="livepitch"):
        daemon.request_reload()
        thread.join(60)
    assert result == [0]
    resumed_at_s = replay_resumed_at_s(caplog)
    assert len(resumed_at_s) == 1 and 0.7 < resumed_at_s[0] < 1.5
    ons = note_ons(port)
    assert ons.count(60) == 1 and ons[-2:] == [67, 72]  # not replayed again from its start
    assert sounding_after(port.messages) == set()
    onsets_s = dict(logged_note_ons(events_csv))
    printed = {
        re.search(r"\(\s*(\d+)\)", line).group(1): float(line.split()[0])  # type: ignore[union-attr]
        for line in capsys.readouterr().out.splitlines()
        if "velocity" in line
    }
    for pitch, melody_onset_s in ((60, 0.3), (64, 0.9), (67, 1.5), (72, 1.5)):
        assert abs(onsets_s[pitch] - melody_onset_s) < 0.05, (pitch, onsets_s)
        assert abs(printed[str(pitch)] - onsets_s[pitch]) < 0.002, (pitch, printed)


def test_a_reload_after_a_drop_resumes_the_replay_past_the_audio_skipped(
    model: Any, melody: np.ndarray, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stall = threading.Event()

    wav = tmp_path / "twice.wav"
    soundfile.write(wav, np.concatenate([melody, melody]), 22050, subtype="FLOAT")
    config = settings(
        midi={"bends": "none"},
        stream={"engine": "window"},
        audio={"input_file": wav, "ring_ms": 10000.0, "max_backlog_ms": 200.0},
    )
    sources: list[FileReplaySource] = []

    def replay(_: DaemonSettings) -> FileReplaySource:
        sources.append(FileReplaySource(wav, 1024, speed=1.0))
        return sources[-1]

    port = RecordingPort()
    daemon = Daemon(
        config,
        Factories(lambda _: StallsOnce(model, stall), replay, lambda _: port),
        status_line=QuietStatus(),
    )
    daemon._reload_settings = lambda: config.model_copy(deep=True)
    thread, result = run_in_thread(daemon)
    wait_for(lambda: 60 in note_ons(port))
    stall.set()
    wait_for(lambda: daemon.worker is not None and daemon.worker.stats.drops == 1)
    dropped_at_s = sources[0].position_frames / 22050
    with caplog.at_level("INFO", logger="livepitch"):
        daemon.request_reload()
        thread.join(60)
    assert result == [0]
    resumed_at_s = replay_resumed_at_s(caplog)
    # past the drop (it went on at 0.44 s, before the second skipped), and no later than where
    # the replay was when the reload stopped it
    stopped_at_s = sources[0].position_frames / 22050
    assert len(resumed_at_s) == 1, resumed_at_s
    assert dropped_at_s - 0.4 < resumed_at_s[0] <= stopped_at_s, (resumed_at_s, dropped_at_s, stopped_at_s)
    assert sounding_after(port.messages) == set()


def test_a_reload_that_fails_after_switching_the_bend_mode_switches_the_port_back(
    model: Any, melody: np.ndarray
) -> None:
    """The bend mode changes on the open port (a synth connected to it stays connected), and
    back again when the reloaded configuration fails."""
    first, spare = RecordingPort("first"), RecordingPort("spare")

    sources = [
        FakeSource(melody, 22050, speed=1.0, finish=False),
        BusyDevice(melody, 22050, speed=1.0),  # the reload's: fails only once it is started
        FakeSource(melody, 22050, speed=4.0),  # the previous configuration's again
    ]
    daemon = make_daemon(model, settings(midi={"bends": "mpe"}), sources, [first, spare])
    daemon._reload_settings = lambda: settings(midi={"bends": "single"}, audio={"block_frames": 512})
    assert run_reloading_at(daemon, first, 64) == 0
    assert daemon.settings.midi.bends is BendMode.MPE
    assert not spare.messages  # one port all along
    sent = [m.bytes() for m in first.messages]
    setups = [i for i in range(len(sent)) if sent[i : i + len(MPE_SETUP)] == MPE_SETUP]
    assert len(setups) == 2  # at the start, and again when the reload went back
    again = first.messages[setups[1] :]
    assert {m.channel for m in again if m.type == "note_on"} <= set(range(1, 16))  # member channels
    assert sounding_after(first.messages) == set()


def test_blocks_longer_than_the_backlog_limit_are_refused_with_the_fields_named(model: Any) -> None:
    source = FakeSource(np.zeros(22050, np.float32), 22050)
    config = settings(audio={"block_frames": 16384, "ring_ms": 10000.0, "max_backlog_ms": 300.0})
    with pytest.raises(
        ConfigError,
        match=r"audio.max_backlog_ms = 300 must be at least two blocks of block_frames = 16384 \(743 ms",
    ):
        make_daemon(model, config, [source], [RecordingPort()]).run()
    # the worker reads 64 frames at least: at 2 kHz that is 32 ms, more than half of 20 ms
    config = settings(audio={"block_frames": 16, "ring_ms": 200.0, "max_backlog_ms": 20.0})
    with pytest.raises(
        ConfigError, match=r"max_backlog_ms = 20 must be at least two blocks of block_frames = 16 \(32 ms"
    ):
        make_daemon(model, config, [FakeSource(np.zeros(2000, np.float32), 2000)], [RecordingPort()]).run()
    config = settings(audio={"block_frames": 4096, "ring_ms": 500.0, "max_backlog_ms": 400.0})
    with pytest.raises(
        ConfigError, match=r"audio.ring_ms = 500 must hold max_backlog_ms \(400\) plus a block"
    ):
        make_daemon(model, config, [FakeSource(np.zeros(22050, np.float32), 22050)], [RecordingPort()]).run()


def test_the_status_line_shows_level_notes_load_latency_and_counters() -> None:
    from livepitch.status import StatusSnapshot, format_status, note_name

    assert [note_name(p) for p in (21, 60, 61, 108)] == ["A0", "C4", "C#4", "C8"]
    line = format_status(StatusSnapshot(-12.0, [64, 60], 0.41, 61.1, 84.3, 2, 1, "BasicPitch Out"), width=200)
    assert "-12 dB [########--]" in line and "notes C4 E4" in line and "cpu  41%" in line
    assert "delay 61-84 ms | BasicPitch Out |" in line and line.endswith("overflows 2 drops 1")
    # the audio system's overflow flags (JACK's xruns) when there are any; the port stays in
    # sight at 100 columns whatever the counters
    chord = [48, 52, 55, 60, 64, 67]
    flagged = format_status(StatusSnapshot(-12.0, chord, 0.4, 61.1, 84.3, 0, 0, None, device_overflows=3))
    assert "| MIDI down |" in flagged
    assert format_status(StatusSnapshot(-12.0, [], 0.4, 61.1, 84.3, 0, 0, "o", device_overflows=3)).endswith(
        "| o | overflows 0 drops 0 xruns 3"
    )
    # on a narrow terminal the latency, the CPU load and the port's name give way first, then
    # the notes (the lowest shown, +N for the rest): the level, notes and counters stay
    snapshot = StatusSnapshot(-12.0, chord, 0.4, 61.1, 84.3, 5, 2, "BasicPitch Out")
    assert "cpu  40% | delay 61-84 ms | BasicPitch Out |" in format_status(snapshot, width=150)
    narrow = format_status(snapshot, width=79)
    assert narrow == "in   -12 dB [########--] | notes C3 E3 G3 C4 E4 G4 | overflows 5 drops 2"
    crowded = format_status(
        StatusSnapshot(-12.0, [*chord, 72, 76, 79, 84], 0.4, 61.1, 84.3, 5, 2, "o"), width=79
    )
    assert len(crowded) <= 79 and crowded.endswith("| overflows 5 drops 2"), crowded
    assert re.search(r"notes C3 E3 G3 .*\+\d \| overflows", crowded), crowded
    one_note = format_status(StatusSnapshot(-12.0, [67], 0.4, 61.1, 84.3, 0, 0, "BasicPitch Out"), width=79)
    assert "notes G4" in one_note and one_note.endswith("overflows 0 drops 0")
    gated = format_status(StatusSnapshot(-30.0, [], 0.1, 61.1, 84.3, 0, 0, None, gate_dbfs=-48.0))
    assert "-30 dB [##|##-----]" in gated  # the level the gate reads, | at the gate


def test_stop_while_the_worker_runs_behind_releases_everything_promptly(
    model: Any, melody: np.ndarray
) -> None:
    class BehindModel:
        """About 1.3 x slower than real time at hop 3: the worker never catches up."""

        def run_window(self, window: Any, first: int, count: int) -> Any:
            time.sleep(0.045)
            return model.run_window(window, first, count)

    port = RecordingPort()
    config = settings(audio={"ring_ms": 20000.0, "max_backlog_ms": 15000.0}, stream={"engine": "window"})
    source = FakeSource(np.concatenate([melody] * 4), 22050, speed=1.0, finish=False)
    daemon = Daemon(
        config,
        Factories(lambda _: BehindModel(), lambda _: source, lambda _: port),
        status_line=QuietStatus(),
    )
    thread, result = run_in_thread(daemon)
    wait_for(lambda: 64 in note_ons(port))
    stopped_at = time.monotonic()
    daemon.request_stop()
    thread.join(10)
    assert result == [0]
    assert time.monotonic() - stopped_at < 3.0
    assert sounding_after(port.messages) == set()
    count = len(port.messages)
    time.sleep(0.3)
    assert len(port.messages) == count and port.closed  # nothing is sent after the stop


def test_a_recording_continues_in_time_across_a_device_recovery(
    model: Any, melody: np.ndarray, tmp_path: Path
) -> None:
    import mido

    record = tmp_path / "session.mid"
    port = RecordingPort()
    # a loss drops the audio the worker has not read yet: on a loaded machine that could be
    # the first run's notes, so this device vanishes only once the worker has caught up
    first = FakeSource(melody, 22050, speed=4.0, vanish_after_s=1.8, drained_before_vanishing=True)
    second = FakeSource(melody, 22050, speed=4.0)
    daemon = make_daemon(model, settings(port={"record": record}), [first, second], [port])
    assert daemon.run() == 0
    seconds, ons = 0.0, []
    for message in mido.MidiFile(record):
        seconds += message.time
        if message.type == "note_on" and message.velocity >= 70:
            ons.append((round(seconds, 2), message.note))
    times = [t for t, _ in ons]
    assert times == sorted(times)
    starts_of_60 = [t for t, note in ons if note == 60]
    # the second run follows the first (its clock resumes where the first engine's ended)
    assert len(starts_of_60) == 2 and starts_of_60[1] > max(t for t, _ in ons if t < starts_of_60[1])
    assert {n for t, n in ons if t >= starts_of_60[1]} >= {60, 67, 72}


def meter_at_the_end(model: Any, audio: npt.NDArray[np.float32]) -> float:
    """The status meter's level (worker stats) when a replay of ``audio`` at 22050 Hz ends."""
    daemon = make_daemon(model, settings(), [FakeSource(audio, 22050)], [RecordingPort()])
    (level,) = at_the_file_end(daemon, lambda d: d.worker.stats.level_dbfs)
    return float(level)


def test_the_level_meter_reads_the_rms_the_noise_gate_reads(model: Any) -> None:
    rng = np.random.default_rng(3)
    noise = (0.01 * rng.standard_normal(22050)).astype(np.float32)  # -40 dBFS RMS, peaks near -28
    assert abs(meter_at_the_end(model, noise) - -40.0) < 1.5


def test_the_level_meter_holds_an_attack_and_falls_at_20_db_a_second(model: Any) -> None:
    audio = np.zeros(22050, np.float32)
    audio[11025:11281] = 0.1  # one loud block (-20 dBFS), then silence for half a second
    assert abs(meter_at_the_end(model, audio) - (-20.0 - 20.0 * 0.5)) < 1.5


def test_the_status_line_shows_the_notes_playing_even_without_a_midi_port(
    model: Any, melody: np.ndarray
) -> None:
    class Shown(StatusLine):
        def __init__(self) -> None:
            self.enabled = True
            self.lines: list[str] = []

        def show(self, text: str) -> None:
            self.lines.append(text)

        def clear(self) -> None:
            pass

    def no_port(_: DaemonSettings) -> RecordingPort:
        raise MidiPortError("no MIDI system here")

    config = settings(ui={"quiet": False}, audio={"input_file": "take.wav", "ring_ms": 10000.0})
    shown = Shown()
    source = FakeSource(melody, 22050, speed=1.0)
    daemon = Daemon(config, Factories(lambda _: model, lambda _: source, no_port), status_line=shown)
    assert daemon.run() == 0
    assert any("notes E4 |" in line and "| no MIDI |" in line for line in shown.lines), shown.lines[-5:]


@pytest.mark.parametrize(
    "audio",
    [{"block_frames": 16384, "max_backlog_ms": 300.0}, {"channel": 3}],  # blocks longer than the backlog
    ids=["block size", "channel"],
)
def test_a_reload_refused_up_front_leaves_the_notes_playing(
    model: Any, melody: np.ndarray, audio: dict[str, float]
) -> None:
    port = RecordingPort()
    sources = [FakeSource(melody, 22050, speed=1.0), FakeSource(melody, 22050)]
    daemon = make_daemon(model, settings(midi={"bends": "none"}), sources, [port])
    daemon._reload_settings = lambda: settings(midi={"bends": "none"}, audio=audio)
    assert run_reloading_at(daemon, port, 60) == 0
    assert daemon.totals["notes"] == len([m for m in port.messages if m.type == "note_on" and m.velocity > 0])
    assert daemon.settings.audio.block_frames == 256 and daemon.settings.audio.channel is None
    assert_one_pipeline_played_the_melody(port)


def test_a_reload_to_the_other_engine_loads_the_model_for_it_before_stopping_the_pipeline(
    model: Any, melody: np.ndarray
) -> None:
    from livepitch.errors import ModelError

    asked: list[str] = []

    def load(new: DaemonSettings) -> Any:
        asked.append(new.stream.engine.value)
        if len(asked) > 1:  # the incremental engine's model has no onnxruntime session to reuse
            raise ModelError("cannot load model nmp.onnx: onnxruntime refused it")
        return model

    port = RecordingPort()
    sources = [FakeSource(melody, 22050, speed=1.0), FakeSource(melody, 22050)]
    daemon = Daemon(
        settings(midi={"bends": "none"}),
        Factories(load, lambda _: sources.pop(0), lambda _: port),
        status_line=QuietStatus(),
    )
    daemon._reload_settings = lambda: settings(midi={"bends": "none"}, stream={"engine": "window"})
    assert run_reloading_at(daemon, port, 60) == 0
    assert asked == ["incremental", "window"]
    assert daemon.settings.stream.engine.value == "incremental"
    assert_one_pipeline_played_the_melody(port)


def test_a_worker_abandoned_by_stop_sends_nothing_after_the_release(model: Any, melody: np.ndarray) -> None:
    """A worker that did not stop in time may be waiting for the sink with a note-on while the
    main thread releases: sent after the release, the note would sound with nothing left to
    end it. Nor does anything it tries later go out."""
    from livepitch.events import NoteOn as On

    port = RecordingPort()
    daemon = make_daemon(model, settings(), [FakeSource(melody, 22050, speed=1.0, finish=False)], [port])
    thread, result = run_in_thread(daemon)
    wait_for(lambda: daemon.worker is not None and daemon.sink is not None)
    worker, sink = daemon.worker, daemon.sink
    assert worker is not None and sink is not None
    with sink._lock:  # the main thread's release holds the sink
        waiting = threading.Thread(target=lambda: worker.deliver([On(0, 10, 0, 90, 100)]))
        waiting.start()
        time.sleep(0.3)  # the batch waits for the lock
        worker.detached = True  # what stop() sets when the thread did not end in time
        sink.release_all()
    waiting.join(5)
    worker.deliver([On(0, 10, 0, 91, 100)])
    assert 90 not in note_ons(port) and 91 not in note_ons(port)
    daemon._stop.set()
    thread.join(30)
    assert result == [0]


def test_a_failure_in_the_last_steps_of_a_replay_is_one_error(model: Any, melody: np.ndarray) -> None:
    from livepitch.errors import LivepitchError

    class FailsOnTheMainThread:
        def __getattr__(self, name: str) -> Any:
            return getattr(model, name)

        def run_window(self, window: Any, first: int, count: int) -> Any:
            if source._done.is_set() and threading.current_thread() is threading.main_thread():
                raise RuntimeError("onnxruntime: out of memory")
            return model.run_window(window, first, count)

    port = RecordingPort()
    source = FakeSource(melody, 22050, speed=3.0)
    config = settings(
        stream={"engine": "window"},
        audio={"ring_ms": 10000.0, "max_backlog_ms": 9000.0, "input_file": "take.wav"},
    )
    daemon = Daemon(
        config,
        Factories(lambda _: FailsOnTheMainThread(), lambda _: source, lambda _: port),
        status_line=QuietStatus(),
    )
    with pytest.raises(LivepitchError, match="out of memory"):
        daemon.run()
    assert sounding_after(port.messages) == set() and port.closed


def test_a_device_lost_while_a_failed_reload_goes_back_is_recovered(model: Any, melody: np.ndarray) -> None:
    from livepitch.errors import DeviceError

    queue: list[Any] = [
        FakeSource(melody, 22050, speed=1.0, finish=False),
        BusyDevice(melody, 22050),  # the reload's
        DeviceError("no audio input device matching 'fake' (unplugged)"),  # the old one, gone too
        FakeSource(melody, 22050, speed=1.0, finish=False),  # back again
    ]

    def next_source(_: DaemonSettings) -> FakeSource:
        item = queue.pop(0)
        if isinstance(item, Exception):
            raise item
        return item  # type: ignore[no-any-return]

    port = RecordingPort()
    daemon = Daemon(
        settings(), Factories(lambda _: model, next_source, lambda _: port), status_line=QuietStatus()
    )
    daemon._reload_settings = lambda: settings(midi={"bends": "none"}, audio={"block_frames": 512})
    thread, result = run_in_thread(daemon)
    wait_for(lambda: 60 in note_ons(port))
    daemon.request_reload()
    wait_for(lambda: daemon.recoveries == 1, 30)
    daemon._stop.set()
    thread.join(30)
    assert result == [0] and not queue
    assert sounding_after(port.messages) == set()


def test_a_sighup_while_waiting_for_a_lost_device_tries_the_newly_configured_one_at_once(
    model: Any, melody: np.ndarray
) -> None:
    from livepitch.errors import DeviceError

    first = FakeSource(melody, 22050, speed=1.0, vanish_after_s=0.6)
    replacement = FakeSource(melody, 22050, speed=4.0)

    def next_source(config: DaemonSettings) -> FakeSource:
        if config.audio.input == "other mic":
            return replacement
        if first.frames_delivered == 0:
            return first
        raise DeviceError("no audio input device matching 'fake' (unplugged for good)")

    port = RecordingPort()
    daemon = Daemon(
        settings(), Factories(lambda _: model, next_source, lambda _: port), status_line=QuietStatus()
    )
    daemon._reload_settings = lambda: settings(
        audio={"input": "other mic", "ring_ms": 10000.0, "max_backlog_ms": 9000.0}
    )
    thread, result = run_in_thread(daemon)
    wait_for(lambda: daemon.source is None and first.error is not None)  # recovering
    time.sleep(2.0)  # past the first retries: the wait between them is growing
    asked = time.monotonic()
    daemon.request_reload()
    wait_for(lambda: daemon.recoveries == 1, 10)
    # not after the current wait (2 s, then 5 s); the restart itself (PortAudio, the engine's
    # warm-up on the main thread) took up to 0.55 s with the other core loaded
    assert time.monotonic() - asked < 1.5
    thread.join(30)
    assert result == [0] and daemon.settings.audio.input == "other mic"
    assert note_ons(port)[-4:] == [60, 64, 67, 72]
    assert sounding_after(port.messages) == set()


class FlushingSource(FakeSource):
    """A device whose stop delivers the rest of its audio into the ring (as a stream that
    flushes its buffers on close), and the notes ``port`` had sounding then."""

    def __init__(self, port: RecordingPort, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.port = port
        self.sounding_at_stop: set[Any] | None = None

    def start(self, ring: Any) -> None:
        self._ring = ring
        super().start(ring)

    def stop(self, reopening: bool = False) -> None:
        self.sounding_at_stop = sounding_after(self.port.messages)
        super().stop(reopening)
        self._ring.write(self.audio[self.frames_delivered :])
        time.sleep(0.5)


def test_a_stop_releases_the_notes_before_the_device_closes_and_plays_nothing_it_delivers_then(
    model: Any, melody: np.ndarray
) -> None:
    """A stop (or a reload, a loss) ends the notes first, then closes the device, which can
    take a second (PortAudio waiting for a JACK server that died) or abort the process: the
    audio a closing device still delivers starts no note, and the session counts what was sent."""
    port = RecordingPort()
    source = FlushingSource(port, melody, 22050, speed=1.0, finish=False)
    daemon = make_daemon(model, settings(), [source], [port])
    thread, result = run_in_thread(daemon)
    wait_for(lambda: 60 in note_ons(port))
    daemon.request_stop()
    thread.join(60)
    assert result == [0]
    assert source.sounding_at_stop == set()
    assert note_ons(port) == [60]  # not the three notes in the audio delivered as it closed
    sent = [m for m in port.messages if m.type == "note_on" and m.velocity > 0]
    assert daemon.totals["notes"] == len(sent)
    assert sounding_after(port.messages) == set()


def test_a_device_that_fails_to_start_ends_with_its_error_and_no_session_line(
    model: Any, melody: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    from livepitch.errors import DeviceError

    daemon = make_daemon(model, settings(), [BusyDevice(melody, 22050)], [RecordingPort()])
    with caplog.at_level("INFO", logger="livepitch"), pytest.raises(DeviceError, match="device busy"):
        daemon.run()
    assert not [r for r in caplog.records if "session:" in r.getMessage()]
    # its worker never started: nothing to report but the device's error
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.records


def test_a_replayed_file_that_stalls_is_an_error_not_a_device_to_wait_for(
    model: Any, melody: np.ndarray, tmp_path: Path
) -> None:
    from livepitch.errors import AudioInputError

    wav = tmp_path / "take.wav"
    wav.write_bytes(b"")  # named only: the fake source below stands for its replay
    config = settings(audio={"input_file": wav, "ring_ms": 10000.0, "max_backlog_ms": 9000.0})
    port = RecordingPort()
    stalling = FakeSource(melody[: 22050 // 2], 22050, speed=4.0, finish=False)  # delivers, then nothing
    daemon = make_daemon(model, config, [stalling], [port])
    with pytest.raises(AudioInputError, match="no audio arrived for a while"):
        daemon.run()
    assert daemon.recoveries == 0
    assert sounding_after(port.messages) == set() and port.closed


def test_a_configuration_reloaded_while_down_that_fails_falls_back_to_the_last_good_one(
    model: Any, melody: np.ndarray, tmp_path: Path
) -> None:
    """Reloaded while the device is away: a replay of a missing file (refused as input), then
    blocks too long for the device (refused when it returns). Each time the daemon goes back
    to the configuration that worked and resumes when the device is back."""
    from livepitch.errors import DeviceError
    from livepitch.factories import default_factories

    first = FakeSource(melody, 22050, speed=1.0, vanish_after_s=0.6)
    back = FakeSource(melody, 22050, speed=4.0)
    tries: list[int] = []

    def next_source(config: DaemonSettings) -> Any:
        if config.audio.input_file is not None:
            return default_factories().source(config)  # the real replay source: the file is missing
        if first.frames_delivered == 0:
            return first
        tries.append(config.audio.block_frames)
        if len(tries) < 3:
            raise DeviceError("no audio input device matching 'fake' (unplugged)")
        return back

    port = RecordingPort()
    daemon = Daemon(
        settings(), Factories(lambda _: model, next_source, lambda _: port), status_line=QuietStatus()
    )
    reloads = [
        settings(
            audio={"input_file": tmp_path / "missing.wav", "ring_ms": 10000.0, "max_backlog_ms": 9000.0}
        ),
        settings(audio={"block_frames": 16384, "ring_ms": 2000.0, "max_backlog_ms": 1000.0}),
    ]
    daemon._reload_settings = lambda: reloads.pop(0)
    thread, result = run_in_thread(daemon)
    wait_for(lambda: daemon.source is None and first.error is not None)
    daemon.request_reload()
    wait_for(lambda: len(reloads) == 1)
    daemon.request_reload()
    wait_for(lambda: daemon.recoveries == 1, 30)
    thread.join(30)
    assert result == [0] and not reloads
    assert daemon.settings.audio.block_frames == settings().audio.block_frames  # the working one
    assert note_ons(port)[-4:] == [60, 64, 67, 72]
    assert sounding_after(port.messages) == set()


def test_a_reload_keeps_the_recording_in_the_file_it_started_in(
    model: Any, melody: np.ndarray, tmp_path: Path
) -> None:
    """After a restart to reconnect the recording goes to a renamed file; a SIGHUP before the
    MIDI port is back must not point it at the first run's file."""
    from livepitch.errors import MidiPortError

    first_take, resumed_take = tmp_path / "take.mid", tmp_path / "take-resumed1.mid"
    ports: list[RecordingPort] = []

    def next_port(_: DaemonSettings) -> RecordingPort:
        if not ports:
            ports.append(RecordingPort())
            raise MidiPortError("JACK is not back yet")
        return ports[0]

    daemon = Daemon(
        settings(port={"record": resumed_take}),
        Factories(lambda _: model, lambda _: FakeSource(melody, 22050, speed=4.0), next_port),
        status_line=QuietStatus(),
        resumed=1,
    )
    daemon._reload_settings = lambda: settings(port={"record": first_take})  # as the command line gives it
    daemon.request_reload()
    assert daemon.run() == 0
    assert resumed_take.exists() and not first_take.exists()


def test_an_engine_that_fails_to_release_its_notes_still_leaves_none_sounding(
    model: Any, melody: np.ndarray, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    port = RecordingPort()
    # audio goes on after the melody: on a loaded machine the worker may reach 67 after the
    # melody's last sample, and a device that stops delivering would be recovered first
    audio = np.concatenate([melody, np.zeros(30 * 22050, np.float32)])
    source = FakeSource(audio, 22050, speed=1.0, finish=False)
    daemon = make_daemon(model, settings(midi={"bends": "mpe"}), [source], [port])
    thread, result = run_in_thread(daemon)
    wait_for(lambda: 67 in note_ons(port))

    def broken_release() -> list[Any]:
        raise KeyError(3)

    assert daemon.engine is not None
    monkeypatch.setattr(daemon.engine, "release_all", broken_release)
    daemon.request_stop()
    thread.join(10)
    assert result == [0]
    assert sounding_after(port.messages) == set()
    assert "cannot end the engine's notes (3)" in caplog.text


def test_a_device_that_fails_to_start_leaves_the_last_takes_recording_and_events_log_alone(
    model: Any, melody: np.ndarray, tmp_path: Path
) -> None:
    record, events = tmp_path / "take.mid", tmp_path / "take.csv"
    record.write_bytes(b"the last take")
    events.write_text("the last take's events\n")
    config = settings(port={"record": record, "events_csv": events})
    daemon = make_daemon(model, config, [BusyDevice(melody, 22050)], [RecordingPort()])
    with pytest.raises(DeviceError, match="device busy"):
        daemon.run()
    assert record.read_bytes() == b"the last take"
    assert events.read_text() == "the last take's events\n"


def test_a_stop_asked_while_recovering_from_a_wedged_stream_stops_instead_of_restarting(
    model: Any, melody: np.ndarray
) -> None:
    """A lost stream the audio system will not release makes livepitch restart itself; a
    SIGTERM that arrives meanwhile (here: while the lost source stops) must end the process,
    not be forgotten by the new one."""
    restarts: list[int] = []
    stop_now: list[Any] = []

    class WedgedSource(FakeSource):
        wedged = True

        def stop(self, reopening: bool = False) -> None:
            super().stop(reopening)
            stop_now[0]()  # the service manager's SIGTERM, during the recovery

    port = RecordingPort()
    source = WedgedSource(melody, 22050, speed=1.0, vanish_after_s=1.2, drained_before_vanishing=True)
    daemon = Daemon(
        settings(),
        Factories(lambda _: model, lambda _: source, lambda _: port),
        status_line=QuietStatus(),
        restart_process=lambda _: restarts.append(1),
    )
    stop_now.append(daemon.request_stop)
    thread, result = run_in_thread(daemon)
    thread.join(30)
    assert result == [0] and restarts == []
    assert sounding_after(port.messages) == set() and port.closed


class Restarted(Exception):
    """What ``os.execve`` does to a daemon restarting itself (the call does not return)."""


def run_until_restarted(daemon: Daemon) -> tuple[threading.Thread, list[Any]]:
    """Run ``daemon`` on a thread; its result, or "restarted" if it restarted itself."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(daemon.run())
        except Restarted:
            outcome.append("restarted")

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


def test_a_stream_a_reload_could_not_release_makes_livepitch_restart_without_opening_another(
    model: Any, melody: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reload closes the old stream, which the audio system never releases (its JACK server
    died under it): opening another beside it crashed in libjack, and resetting PortAudio
    would wait forever on it (SIGTERM unanswered), so livepitch restarts itself at once, with
    the notes released first; the new settings' stream is never opened in this process."""
    import livepitch.audio_device

    resets: list[int] = []
    monkeypatch.setattr(livepitch.audio_device, "reinitialise_portaudio", lambda: resets.append(1))

    class WedgesOnStop(FakeSource):
        wedged = False

        def stop(self, reopening: bool = False) -> None:
            super().stop(reopening)
            self.wedged = True

    def restart(clock: Any) -> None:
        raise Restarted

    port = RecordingPort()
    reloads = CountedStarts(melody, 22050)
    sources: list[FakeSource] = [WedgesOnStop(melody, 22050, speed=1.0, finish=False), reloads]
    daemon = Daemon(
        settings(midi={"bends": "none"}),
        Factories(lambda _: model, lambda _: sources.pop(0), lambda _: port),
        status_line=QuietStatus(),
        restart_process=restart,
    )
    daemon._reload_settings = lambda: settings(midi={"bends": "none"}, audio={"block_frames": 512})
    thread, outcome = run_until_restarted(daemon)
    wait_for(lambda: 64 in note_ons(port))
    daemon.request_reload()
    thread.join(20)
    assert outcome == ["restarted"] and resets == [] and reloads.starts == 0
    assert daemon.audio_wedged
    assert sounding_after(port.messages) == set() and port.closed


def test_a_restarted_process_looks_for_the_devices_afresh_between_tries(
    model: Any, melody: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The restarted process may have listed the devices while the JACK server was going down
    (none found): each later try makes PortAudio look again, so the server coming back is seen."""
    import livepitch.audio_device

    resets: list[int] = []
    monkeypatch.setattr(livepitch.audio_device, "reinitialise_portaudio", lambda: resets.append(1))
    monkeypatch.setattr("livepitch.daemon.RETRY_DELAYS_S", (0.01,))
    port = RecordingPort()
    tries: list[int] = []

    def next_source(_: DaemonSettings) -> FakeSource:
        tries.append(len(resets))
        if len(tries) < 3:
            raise DeviceError("no audio input in an audio system matching 'JACK' (have: none)")
        return FakeSource(melody, 22050)

    daemon = Daemon(
        settings(),
        Factories(lambda _: model, next_source, lambda _: port),
        status_line=QuietStatus(),
        resumed=1,
    )
    assert daemon.run() == 0
    assert tries == [0, 1, 2]  # the first try as started, each later one after a reset
    assert note_ons(port) == [60, 64, 67, 72]


def test_a_process_restarted_to_reconnect_goes_on_with_the_sessions_clock(
    model: Any, melody: np.ndarray, tmp_path: Path
) -> None:
    """A lost stream the audio system will not release makes livepitch re-execute itself; the
    new process appends to the same events log, so its times go on from the old one's, with
    the time the input was away."""
    from livepitch.self_restart import SessionClock

    class WedgedSource(TimedStart):
        wedged = True

    clocks: list[SessionClock] = []
    restarted_at: list[float] = []

    def restart(clock: SessionClock) -> None:
        clocks.append(clock)
        restarted_at.append(time.monotonic())
        raise Restarted

    events_csv = tmp_path / "events.csv"
    config = settings(midi={"bends": "none"}, port={"events_csv": events_csv})
    first = WedgedSource(melody, 22050, speed=1.0, vanish_after_s=1.2, drained_before_vanishing=True)
    old = Daemon(
        config,
        Factories(lambda _: model, lambda _: first, lambda _: RecordingPort()),
        status_line=QuietStatus(),
        restart_process=restart,
    )
    with pytest.raises(Restarted):
        old.run()
    # handed over as of the restart: the audio read (1.2 s) and the time since the input last
    # delivered, at most the time since it started
    (clock,) = clocks
    # (the fake delivers a block ahead of its clock)
    assert 1.2 <= clock.time_samples / 22050 <= restarted_at[0] - first.started_at + 0.15, clocks
    assert abs(clock.stopped_monotonic_s - restarted_at[0]) < 0.05 and clock.unread_s == 0.0
    carried = SessionClock.from_text(clocks[0].to_text())  # as the environment hands it over
    assert carried == clocks[0]
    time.sleep(0.3)
    second = TimedStart(melody, 22050, speed=1.0)
    new = Daemon(
        config,
        Factories(lambda _: model, lambda _: second, lambda _: RecordingPort()),
        status_line=QuietStatus(),
        resumed=1,
        clock=carried,
    )
    assert new.run() == 0
    ons = logged_note_ons(events_csv)
    away_s = second.started_at - first.started_at
    assert [pitch for pitch, _ in ons] == [60, 64, 60, 64, 67, 72]
    for (_, at_s), onset_s in zip(ons[2:], [0.3, 0.9, 1.5, 1.5], strict=True):
        assert away_s + onset_s - 0.02 < at_s < away_s + onset_s + 0.15, (ons, away_s)


def test_a_session_clock_from_the_environment_is_read_or_ignored() -> None:
    from livepitch.self_restart import SessionClock

    stopped_s = time.monotonic() - 2.0
    assert SessionClock.from_text(f"22050 {stopped_s!r} 0.25") == SessionClock(22050, stopped_s, 0.25)
    future, stale = stopped_s + 100.0, stopped_s - 100.0  # set by hand, or from another boot
    for text in (
        "",
        "1 2",
        "x 1.0 0.0",
        f"-5 {stopped_s} 0.0",
        "5 nan 0.0",
        f"5 {stopped_s} -1.0",
        f"5 {future} 0",
    ):
        assert SessionClock.from_text(text) is None, text
    assert SessionClock.from_text(f"5 {stale} 0") is None


def test_the_status_line_fits_a_narrow_terminal() -> None:
    """At 40 columns a 100-character line wrapped over three rows, and clearing the line
    cleared only the last: the terminal filled with copies ten times a second."""
    import fcntl
    import struct
    import termios

    controller, terminal = os.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 40, 0, 0))
    with os.fdopen(terminal, "w") as stream:
        line = StatusLine(stream)
        assert line.enabled
        line.show("x" * 100)
    written = os.read(controller, 1000).decode()
    os.close(controller)
    assert written.startswith("\r\x1b[2K") and written.count("x") == 39


class LoggedSource(FakeSource):
    """A fake device that notes its stream's start and stop in ``log``, and at the stop the
    notes ``port`` has sounding."""

    def __init__(self, log: list[tuple[Any, ...]], port: RecordingPort, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.log, self.port = log, port

    def start(self, ring: Any) -> None:
        self.log.append(("start", time.monotonic()))
        super().start(ring)

    def stop(self, reopening: bool = False) -> None:
        self.log.append(("stop", time.monotonic(), sounding_after(self.port.messages)))
        super().stop(reopening)


def test_every_audio_system_call_is_preceded_by_the_restart_an_abort_during_it_would_execute(
    model: Any, melody: np.ndarray
) -> None:
    """Before each stream start and stop, the command PortAudio aborting the process would
    execute instead gets the session's clock as of then, and whether audio ever flowed here
    (the count of aborts in a row starts again once it has)."""
    log: list[tuple[Any, ...]] = []
    port = RecordingPort()
    first = LoggedSource(
        log, port, melody, 22050, speed=1.0, vanish_after_s=1.2, drained_before_vanishing=True
    )
    second = LoggedSource(log, port, melody, 22050, speed=4.0)
    sources = [first, second]
    daemon = Daemon(
        settings(),
        Factories(lambda _: model, lambda _: sources.pop(0), lambda _: port),
        status_line=QuietStatus(),
        abort_restart=lambda clock, flowed: log.append(("ready", time.monotonic(), clock, flowed)),
    )
    thread, result = run_in_thread(daemon)
    thread.join(60)
    assert result == [0] and daemon.recoveries == 1
    kinds = [entry[0] for entry in log]
    calls = [i for i, kind in enumerate(kinds) if kind != "ready"]
    # the notes were released before each stream closed (67 sounded at the loss)
    assert [log[i][2] for i in calls if kinds[i] == "stop"] == [set(), set()]
    assert log[-1][2] is None  # the session's end: an abort then ends the process
    assert [kinds[i] for i in calls] == ["start", "stop", "start", "stop"], kinds
    assert kinds[0] == "ready" and all(kinds[i - 1] == "ready" for i in calls), kinds
    readies = [log[i - 1][1:] for i in calls]  # (when, clock, flowed) before each call
    assert [flowed for _, _, flowed in readies] == [False, True, True, True]
    for when_s, clock, _ in readies:  # handed over as of then (a clock older than a minute is refused)
        assert abs(clock.stopped_monotonic_s - when_s) < 0.05
    assert readies[0][1].time_samples == 0
    # at the loss: the audio read (1.2 s) and the time since the input last delivered
    (lost_at_s, at_loss, _), (reopen_at_s, at_reopen, _) = readies[1], readies[2]
    assert 1.2 < at_loss.time_samples / 22050 < 3.0
    # before the reopening, the time away counts on
    away_s = (at_reopen.time_samples - at_loss.time_samples) / 22050
    assert abs(away_s - (reopen_at_s - lost_at_s)) < 0.02, (away_s, reopen_at_s - lost_at_s)


def test_before_a_stream_closes_the_recording_and_the_events_log_are_on_disk(
    model: Any, melody: np.ndarray, tmp_path: Path
) -> None:
    """PortAudio may abort the process as it closes a stream: the restart that follows would
    lose what only this process held. The notes just released are on disk by then."""
    record, events_csv = tmp_path / "take.mid", tmp_path / "events.csv"
    on_disk: list[tuple[list[int], list[str]]] = []

    class Checked(FakeSource):
        def stop(self, reopening: bool = False) -> None:
            notes = [m.note for m in mido.MidiFile(record) if m.type == "note_on" and m.velocity > 0]
            rows = [row["kind"] for row in csv.DictReader(events_csv.open())]
            on_disk.append((notes, rows))
            super().stop(reopening)

    first = Checked(melody, 22050, speed=1.0, vanish_after_s=1.2, drained_before_vanishing=True)
    second = Checked(melody, 22050, speed=4.0)
    sources, port = [first, second], RecordingPort()
    daemon = Daemon(
        settings(port={"record": record, "events_csv": events_csv}),
        Factories(lambda _: model, lambda _: sources.pop(0), lambda _: port),
        status_line=QuietStatus(),
        abort_restart=lambda clock, flowed: None,
    )
    thread, result = run_in_thread(daemon)
    thread.join(60)
    assert result == [0]
    notes, rows = on_disk[0]  # at the loss: 60 heard, 64 sounding; both ended
    assert notes == [60, 64]
    assert rows.count("note_on") == 2 and rows.count("note_off") == 2, rows


def test_once_a_stop_is_asked_an_abort_while_the_stream_closes_ends_the_process(
    model: Any, melody: np.ndarray
) -> None:
    log: list[tuple[Any, ...]] = []
    port = RecordingPort()
    source = LoggedSource(log, port, np.tile(melody, 4), 22050, speed=1.0)
    daemon = Daemon(
        settings(),
        Factories(lambda _: model, lambda _: source, lambda _: port),
        status_line=QuietStatus(),
        abort_restart=lambda clock, flowed: log.append(("ready", time.monotonic(), clock, flowed)),
    )
    thread, result = run_in_thread(daemon)
    wait_for(lambda: [entry[0] for entry in log].count("start") == 1)
    time.sleep(1.0)
    daemon.request_stop()
    thread.join(60)
    assert result == [0]
    kinds = [entry[0] for entry in log]
    stop = kinds.index("stop")
    assert kinds[stop - 1] == "ready" and log[stop - 1][2] is None, log
    assert log[stop][2] == set()


def test_printed_notes_are_json_objects_when_the_logs_are_json(
    model: Any, melody: np.ndarray, capsys: pytest.CaptureFixture[str]
) -> None:
    """A service reads its output as JSON lines: --print-notes with --log-json printed the
    person's text lines among them."""
    import json

    port = RecordingPort()
    config = settings(midi={"bends": "none"}, ui={"quiet": True, "print_notes": True, "log_json": True})
    daemon = make_daemon(model, config, [FakeSource(melody, 22050, block_frames=300)], [port])
    assert daemon.run() == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(note["name"], note["pitch"]) for note in printed] == [
        ("C4", 60),
        ("E4", 64),
        ("G4", 67),
        ("C5", 72),
    ]
    for note, onset_s in zip(printed, (0.3, 0.9, 1.5, 1.5), strict=True):
        assert abs(note["note_on_s"] - onset_s) < 0.05 and note["channel"] == 1 and note["velocity"] > 0
        assert 0 < note["sent_after_ms"] < 150
