"""The Python API as an integrator meets it: settings from a file, MIDI messages, offline
notes, and what bad input gets."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import mido
import numpy as np
import pytest

from livepitch import api
from tests.event_checks import check_event_stream, note_ons
from tests.synth import sequence

CONFIG = Path(__file__).resolve().parents[1] / "config"


def test_live_settings_read_a_preset_then_the_groups_given() -> None:
    voice = api.live_settings(CONFIG / "voice.toml")
    assert voice != api.LiveSettings()  # the preset's values, not the defaults
    tuned = api.live_settings(CONFIG / "voice.toml", stream={"lookahead_ms": 100.0})
    assert tuned.stream.lookahead_ms == 100.0 and tuned.tracker == voice.tracker
    assert api.live_settings() == api.LiveSettings()


def test_a_bad_setting_is_one_line_naming_it_and_the_file_that_set_it(tmp_path: Path) -> None:
    with pytest.raises(api.ConfigError) as given:
        api.live_settings(stream={"lookahead_ms": 1.0})
    assert "\n" not in str(given.value) and str(given.value).startswith("stream.lookahead_ms")
    config = tmp_path / "mine.toml"
    config.write_text("[stream]\nlookahead_ms = 1.0\n")
    with pytest.raises(api.ConfigError, match=rf"^{config}: stream.lookahead_ms") as read:
        api.live_settings(config)
    assert "\n" not in str(read.value)
    with pytest.raises(api.ConfigError, match=r"missing\.toml"):
        api.live_settings(tmp_path / "missing.toml")


@pytest.mark.parametrize("bends", ["mpe", "single", "none"])
def test_setup_and_event_messages_are_what_the_daemons_port_sends(model: Any, bends: str) -> None:
    settings = api.live_settings(midi={"bends": bends})
    setup = api.setup_messages(settings)
    if bends == "mpe":  # RPN 6 on the manager channel: 15 member channels, first
        assert [(m.channel, m.control, m.value) for m in setup[:3]] == [(0, 101, 0), (0, 100, 6), (0, 6, 15)]
        assert len([m for m in setup if m.control == 100 and m.value == 0]) == 16  # RPN 0 on all 16
    elif bends == "single":  # RPN 0 on channel 1: +-2 semitones
        assert [(m.channel, m.control, m.value) for m in setup[:3]] == [(0, 101, 0), (0, 100, 0), (0, 6, 2)]
    else:
        assert setup == []
    from livepitch.engine import build_engine

    engine = build_engine(model, settings)
    assert api.setup_messages(engine) == setup  # an engine knows its own
    events = engine.feed(sequence([(0.2, 0.5, 60)], 1.0)) + engine.finish()
    messages = api.midi_messages(events)
    assert [(m.type, m.note) for m in messages if m.type != "pitchwheel"] == [
        ("note_on", 60),
        ("note_off", 60),
    ]
    assert all(isinstance(m, mido.Message) for m in messages)
    on = note_ons(events)[0]
    assert isinstance(on, api.NoteOn) and on.time_s == on.time_sample / 22050 and on.emitted_s > on.time_s


def test_absurd_samples_are_clipped_without_warnings_and_the_stream_ends_once(model: Any) -> None:
    from livepitch.engine import build_engine

    engine = build_engine(model, api.LiveSettings())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's overflow warnings from the CQT, before
        events = engine.feed(np.full(1024, 1e30, np.float32))
        events += engine.feed(sequence([(0.2, 0.5, 60)], 1.0))
    events += engine.finish()
    check_event_stream(events)
    with pytest.raises(RuntimeError, match=r"ended \(finish\); reset\(\) before feeding"):
        engine.feed(np.zeros(256, np.float32))
    engine.reset()
    assert engine.feed(np.zeros(256, np.float32)) == []


def test_the_converter_takes_mono_as_a_list_or_one_dimension_and_refuses_nonsense() -> None:
    mono = api.DeviceToModel(44100, 1)
    assert mono.convert([0.0] * 441).dtype == np.float32  # type: ignore[arg-type]
    assert mono.convert(np.zeros(441, np.float32)).ndim == 1
    with pytest.raises(TypeError, match="floating point"):
        mono.convert(np.zeros(441, np.int16))
    mono.convert(np.zeros(441, np.float32), last=True)
    with pytest.raises(RuntimeError, match=r"ended .*reset\(\) before converting more"):
        mono.convert(np.zeros(441, np.float32))
    mono.reset()
    mono.convert(np.zeros(441, np.float32))
    for rate_hz in (0, 1, 1_000_000):
        with pytest.raises(ValueError, match=f"device rate {rate_hz} Hz outside 4000..768000 Hz"):
            api.DeviceToModel(rate_hz, 1)


def test_transcribe_gives_the_notes_of_a_file_or_of_samples(tmp_path: Path) -> None:
    import soundfile

    audio = sequence([(0.2, 0.5, 60), (0.9, 0.5, 67)], 1.6)
    path = tmp_path / "two.wav"
    soundfile.write(path, audio, 22050)
    from_file = api.transcribe(path)
    assert [note.pitch for note in from_file] == [60, 67]
    assert [note.pitch for note in api.transcribe(audio)] == [60, 67]
    with pytest.raises(ValueError, match=r"mono audio, shape \(samples,\), not \(35280, 2\)"):
        api.transcribe(np.stack([audio, audio], axis=1))
    with pytest.raises(TypeError, match="floating point"):
        api.transcribe((audio * 32767).astype(np.int16))


def test_a_live_session_hands_every_event_to_the_program_and_releases_on_stop(tmp_path: Path) -> None:
    """An integrator wanting a live input's events in Python had only the MIDI port or an
    events log to read; a stop's note-offs must reach the program too (never a stuck note)."""
    import threading
    import time

    import soundfile

    wav = tmp_path / "held.wav"
    soundfile.write(wav, sequence([(0.2, 0.4, 60), (0.8, 3.0, 64)], 4.0), 22050)
    settings = api.DaemonSettings.model_validate({"audio": {"input_file": wav}, "ui": {"quiet": True}})
    received: list[api.Event] = []
    threads: set[str] = set()

    def on_events(events: list[api.Event]) -> None:
        threads.add(threading.current_thread().name)
        received.extend(events)

    session = api.LiveSession(on_events, settings, midi=False)
    runner = threading.Thread(target=session.run)
    runner.start()
    deadline = time.monotonic() + 10.0
    while 64 not in [on.pitch for on in note_ons(received)] and time.monotonic() < deadline:
        time.sleep(0.02)
    session.stop()  # E4 sounds (until 3.8 s)
    runner.join(10.0)
    assert not runner.is_alive()
    assert [on.pitch for on in note_ons(received)] == [60, 64]
    check_event_stream(received)  # E4's note-off came with the stop
    assert isinstance(received[-1], api.NoteOff) and received[-1].pitch == 64
    assert len(threads) == 2  # the worker's, and the main loop's release


def test_a_live_session_that_cannot_open_its_input_raises_one_line(tmp_path: Path) -> None:
    settings = api.DaemonSettings.model_validate({"audio": {"input_file": tmp_path / "gone.wav"}})
    session = api.LiveSession(lambda events: None, settings, midi=False)
    with pytest.raises(api.LivepitchError, match=r"gone\.wav"):
        session.run()


def test_integer_pcm_fed_unscaled_is_named_once(model: Any, caplog: pytest.LogCaptureFixture) -> None:
    """int16 samples cast to float without the 1/32768 scaling were taken as they came: extra
    notes, and nothing said why."""
    from livepitch.engine import build_engine

    engine = build_engine(model, api.LiveSettings())
    pcm = (sequence([(0.2, 0.5, 60)], 1.0) / np.abs(sequence([(0.2, 0.5, 60)], 1.0)).max() * 32000).astype(
        np.int16
    )
    with caplog.at_level("WARNING", logger="livepitch"):
        for start in range(0, pcm.shape[0], 2048):
            engine.feed(pcm[start : start + 2048].astype(np.float32))
        engine.feed(sequence([(0.0, 0.2, 60)], 0.2))  # scaled audio says nothing
    (warning,) = [record.getMessage() for record in caplog.records]
    assert "full scale is 1.0: scale integer PCM to ±1 (int16 / 32768)" in warning


def _replay_settings(tmp_path: Path, notes: list[tuple[float, float, int]], seconds: float) -> Any:
    import soundfile

    wav = tmp_path / "take.wav"
    soundfile.write(wav, sequence(notes, seconds), 22050)
    return api.daemon_settings(audio={"input_file": str(wav)}, ui={"quiet": True})


def test_a_live_session_runs_once(tmp_path: Path) -> None:
    """A second run replayed the file again with the first run's threads half torn down."""
    session = api.LiveSession(
        lambda events: None, _replay_settings(tmp_path, [(0.1, 0.2, 60)], 0.5), midi=False
    )
    session.run()
    with pytest.raises(RuntimeError, match="runs once"):
        session.run()


@pytest.mark.parametrize("raised", [KeyError("a bug in the program"), SystemExit(3)])
def test_what_on_events_raises_ends_the_session_with_it_as_the_cause(
    tmp_path: Path, raised: BaseException
) -> None:
    """A SystemExit there ended the worker thread silently and run() went on waiting."""
    received: list[api.Event] = []

    def on_events(events: list[api.Event]) -> None:
        received.extend(events)
        if any(isinstance(event, api.NoteOn) for event in events):
            raise raised

    settings = _replay_settings(tmp_path, [(0.2, 1.5, 60)], 3.0)
    with pytest.raises(api.LivepitchError, match="the worker failed") as failed:
        api.LiveSession(on_events, settings, midi=False).run()
    assert failed.value.__cause__ is raised
    check_event_stream(received)  # the note-on's note-off came with the release


def test_a_stuck_on_events_still_gets_the_stops_note_offs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that does not stop in time (here: on_events blocked) used to leave the program
    without the note-offs the MIDI port got."""
    import functools
    import threading

    from livepitch.worker import Worker

    monkeypatch.setattr(Worker, "stop", functools.partialmethod(Worker.stop, timeout_s=0.3))
    blocked, release = threading.Event(), threading.Event()
    received: list[api.Event] = []

    def on_events(events: list[api.Event]) -> None:
        received.extend(events)
        if threading.current_thread().name != "MainThread" and note_ons(received) and not blocked.is_set():
            blocked.set()
            release.wait(10.0)  # stuck, with the note sounding

    session = api.LiveSession(on_events, _replay_settings(tmp_path, [(0.2, 2.0, 64)], 3.0), midi=False)
    runner = threading.Thread(target=session.run)
    runner.start()
    assert blocked.wait(10.0)
    session.stop()
    runner.join(10.0)
    release.set()
    assert not runner.is_alive()
    assert [e.pitch for e in note_ons(received)] == [64] and isinstance(received[-1], api.NoteOff)
    assert received[-1].pitch == 64


def test_settings_take_the_overrides_before_judging_the_file(tmp_path: Path) -> None:
    """A file value an override replaces is not judged alone (the daemon merges first); an
    override is checked as strictly as a file's value."""
    config = tmp_path / "short.toml"
    config.write_text('[stream]\nlookahead_ms = 1.0\n[audio]\ninput_file = "take.wav"\n')
    assert api.live_settings(config, stream={"lookahead_ms": 100.0}).stream.lookahead_ms == 100.0
    daemon = api.daemon_settings(config, stream={"lookahead_ms": 100.0})
    assert daemon.audio.input_file == tmp_path / "take.wav"  # relative to the file, as --config
    with pytest.raises(api.ConfigError, match=r'^the settings given: stream.lookahead_ms = "100": must be'):
        api.live_settings(stream={"lookahead_ms": "100"})
    with pytest.raises(api.ConfigError, match="cannot be empty"):
        api.live_settings("")
