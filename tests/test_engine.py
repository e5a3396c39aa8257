"""The streaming engine end to end on synthesised audio: notes, bends, invariants, determinism."""

from __future__ import annotations

import csv
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from livepitch.cli import main
from livepitch.engine import build_engine, stream_audio
from livepitch.event_files import event_csv_row
from livepitch.events import Event, NoteOn, PitchBend
from livepitch.settings import LiveSettings
from tests.event_checks import check_event_stream, note_ons
from tests.synth import glide, sequence, vibrato

SILENCE = np.zeros(11025, np.float32)
MPE = LiveSettings.model_validate({"midi": {"bends": "mpe"}})


def events_for(
    model: Any, audio: npt.NDArray[np.float32], settings: LiveSettings, block: int = 1024
) -> list[Event]:
    return list(stream_audio(audio, build_engine(model, settings), block))


def test_melody_notes_arrive_with_their_onsets_and_bounded_latency(model: Any) -> None:
    melody = [(0.5, 0.5, 48), (1.2, 0.5, 55), (1.9, 0.5, 60), (2.6, 0.5, 67)]
    events = events_for(model, sequence(melody, 3.4), LiveSettings())
    check_event_stream(events)
    ons = [e for e in note_ons(events) if e.velocity >= 80]
    assert [e.pitch for e in ons] == [48, 55, 60, 67]
    for on, (onset_s, _, _) in zip(ons, melody, strict=True):
        assert abs(on.time_sample / 22050 - onset_s) <= 2 * 256 / 22050
        # lookahead 68 + 6 x 256 samples, up to 3 frames of hop, 1 frame of confirmation
        assert on.emitted_sample - on.time_sample <= 68 + 6 * 256 + 3 * 256 + 256


def test_sung_vibrato_is_one_note_with_bends(model: Any) -> None:
    audio = np.concatenate([SILENCE, vibrato(64, 2.0, 0.5), SILENCE])
    events = events_for(model, audio, MPE)
    check_event_stream(events)
    loud = [e for e in note_ons(events) if e.velocity >= 64]
    assert [e.pitch for e in loud] == [64]
    cents = [e.cents for e in events if isinstance(e, PitchBend) and e.channel == loud[0].channel]
    assert max(cents) > 25 and min(cents) < -25


def test_glide_is_one_note_whose_bends_follow_it(model: Any) -> None:
    audio = np.concatenate([SILENCE, glide(60, 63, 1.0), SILENCE])
    events = events_for(model, audio, MPE)
    check_event_stream(events)
    loud = [e for e in note_ons(events) if e.velocity >= 80]
    assert [e.pitch for e in loud] == [60]
    cents = [e.cents for e in events if isinstance(e, PitchBend) and e.channel == loud[0].channel]
    assert max(cents) > 250


def test_block_sizes_1_64_1000_4096_give_identical_events(model: Any) -> None:
    audio = np.concatenate([sequence([(0.1, 0.4, 60), (0.45, 0.4, 64)], 0.9), vibrato(67, 0.6, 0.4)])
    runs = [events_for(model, audio, MPE, block) for block in (1, 64, 1000, 4096)]
    for run in runs[1:]:
        assert run == runs[0]
    check_event_stream(runs[0])
    assert note_ons(runs[0])


@pytest.mark.parametrize("bends", ["none", "single", "mpe"])
def test_silence_gives_no_events_in_any_mode(model: Any, bends: str) -> None:
    settings = LiveSettings.model_validate({"midi": {"bends": bends}})
    assert events_for(model, np.zeros(22050, np.float32), settings) == []


def test_release_all_ends_every_sounding_note_now(model: Any) -> None:
    engine = build_engine(model, MPE)
    audio = sequence([(0.1, 2.0, 60), (0.1, 2.0, 67)], 1.0)
    events = engine.feed(audio)
    sounding = {(e.channel, e.pitch) for e in events if isinstance(e, NoteOn)}
    assert sounding
    released = engine.release_all()
    assert {(e.channel, e.pitch) for e in released} == sounding
    check_event_stream(events + released)
    assert all(e.emitted_sample == engine.consumed_samples for e in released)


def test_the_public_api_streams_a_file(tmp_path: Any) -> None:
    import soundfile

    from livepitch.api import open_engine, stream_file

    path = tmp_path / "44100Hz_stereo_two_tones.wav"
    mono = sequence([(0.2, 0.4, 60), (0.8, 0.4, 67)], 1.5, rate_hz=44100)
    soundfile.write(path, np.stack([mono, mono], axis=1), 44100)
    events = list(stream_file(path))
    check_event_stream(events)
    assert [e.pitch for e in note_ons(events)] == [60, 67]
    # the same events as `livepitch transcribe --stream` (and a replay): the file converted alike
    cli = [
        "transcribe",
        str(path),
        "--stream",
        "-o",
        str(tmp_path / "cli.mid"),
        "--events-csv",
        str(tmp_path / "cli.csv"),
    ]
    assert main([*cli, "-q"]) == 0
    with open(tmp_path / "cli.csv", newline="") as handle:
        assert list(csv.reader(handle))[1:] == [event_csv_row(e) for e in events]
    engine = open_engine()
    assert engine.rate_hz == 22050
    fed = engine.feed(sequence([(0.2, 0.4, 60)], 1.0)) + engine.finish()
    assert [e.pitch for e in note_ons(fed)] == [60]


def test_a_melody_under_the_noise_gate_plays_nothing_and_over_it_plays(model: Any) -> None:
    # the model normalises each window, so a melody at -57 dBFS RMS looks as loud as at -17
    melody = [(0.5, 0.5, 48), (1.2, 0.5, 55), (1.9, 0.5, 60)]
    quiet = (0.01 * sequence(melody, 2.6)).astype(np.float32)
    ungated = LiveSettings.model_validate({"tracker": {"gate_dbfs": -120.0}})
    assert [e.pitch for e in note_ons(events_for(model, quiet, ungated))] == [48, 55, 60]
    assert events_for(model, quiet, LiveSettings()) == []  # the default gate, -48 dBFS
    assert [e.pitch for e in note_ons(events_for(model, quiet * 100, LiveSettings()))] == [48, 55, 60]


@pytest.mark.parametrize("engine", ["incremental", "window"])
def test_a_clean_sine_whose_note_posterior_ramps_up_slowly_plays(model: Any, engine: str) -> None:
    """A float 440 Hz sine from 0.3 s: its note posterior passes 0.3 only two frames after the
    onset peak (0.20, 0.29, 0.49 with the incremental engine), which once dropped the note."""
    from livepitch.resample_stream import DeviceToModel

    seconds = np.arange(round(2.0 * 44100)) / 44100
    sine = np.where(seconds >= 0.3, 0.3 * np.sin(2 * np.pi * 440.0 * seconds), 0.0).astype(np.float32)
    audio = DeviceToModel(44100, 1).convert(sine[:, None], last=True)
    events = list(
        stream_audio(
            audio, build_engine(model, LiveSettings.model_validate({"stream": {"engine": engine}})), 1024
        )
    )
    check_event_stream(events)
    (on,) = note_ons(events)
    assert on.pitch == 69 and abs(on.time_sample / 22050 - 0.3) < 0.03


@pytest.mark.parametrize("engine", ["incremental", "window"])
@pytest.mark.parametrize("pitch", [57, 69])
def test_a_note_struck_at_the_first_sample_plays(model: Any, engine: str, pitch: int) -> None:
    """A sample trimmed to its attack: the onset peaks at frame 0 (the engines see silence
    before the stream, as the graph does) and the note plays, as the offline decoder finds it.
    It replayed as silence when a peak needed a published frame before it."""
    settings = LiveSettings.model_validate({"stream": {"engine": engine}})
    for lead_s in (0.0, 0.005):
        audio = sequence([(lead_s, 1.0, pitch)], 1.5)
        events = events_for(model, audio, settings)
        check_event_stream(events)
        ons = note_ons(events)
        assert ons[0].pitch == pitch and ons[0].time_sample / 22050 < lead_s + 0.03, (lead_s, ons)
        # (A3's octave may come too, weaker: its posterior at the window's edge is borderline)
        assert [on.pitch for on in ons if on.velocity >= 80] == [pitch], (lead_s, ons)


def test_nan_samples_fed_through_the_api_are_silence_and_every_note_ends(model: Any) -> None:
    """One NaN in a block poisoned the model's state: feed raised for seconds after it, and
    finish raised too, leaving the note that had started without its note-off."""
    melody = sequence([(0.3, 1.5, 60)], 2.5)
    clean = events_for(model, melody, LiveSettings(), block=512)
    engine = build_engine(model, LiveSettings())
    events: list[Event] = []
    for index, start in enumerate(range(0, melody.shape[0], 512)):
        block = melody[start : start + 512].copy()
        if index == 40:  # 0.93 s: the note sounds
            block[10], block[20] = np.nan, np.inf
        events += engine.feed(block)
    events += engine.finish()
    check_event_stream(events)  # every note-on has its note-off
    assert [e.pitch for e in note_ons(events)] == [e.pitch for e in note_ons(clean)] == [60]


def test_a_block_that_is_not_mono_is_refused(model: Any) -> None:
    engine = build_engine(model, LiveSettings())
    with pytest.raises(ValueError, match=r"mono audio, shape \(samples,\), not \(512, 2\)"):
        engine.feed(np.zeros((512, 2), np.float32))
    assert engine.feed(np.zeros((512, 1), np.float32)) == []  # a single column is mono


def test_the_converter_refuses_blocks_of_another_shape() -> None:
    """A 1-D block raised an IndexError, and a block with another channel count was taken as
    it came (column 0, or a mono block as stereo)."""
    from livepitch.api import DeviceToModel

    stereo = DeviceToModel(48000, 2)
    for block in (np.zeros(480, np.float32), np.zeros((480, 1), np.float32), np.zeros((480, 3), np.float32)):
        with pytest.raises(ValueError, match=r"blocks of shape \(frames, 2\) expected"):
            stereo.convert(block)
    assert stereo.convert(np.zeros((480, 2), np.float32), last=True).shape[0] == 220


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.bool_, np.complex64])
def test_feed_refuses_samples_that_are_not_floating_point(model: Any, dtype: Any) -> None:
    """int16 PCM fed as is would be thousands of times too loud for the noise gate (a quiet
    room would play notes): a TypeError, and the engine goes on as before."""
    engine = build_engine(model, LiveSettings())
    with pytest.raises(TypeError, match="floating point"):
        engine.feed(np.ones(1024, dtype=dtype))
    assert engine.consumed_samples == 0
    melody = sequence([(0.2, 0.4, 60)], 1.0)
    assert [e.pitch for e in note_ons(engine.feed(melody) + engine.finish())] == [60]


def test_stream_file_takes_the_daemons_input_channel(tmp_path: Any) -> None:
    """With ``DaemonSettings``, the channel a replay would take (not a downmix)."""
    import soundfile

    from livepitch.api import stream_file
    from livepitch.settings import DaemonSettings

    path = tmp_path / "two_channels.wav"
    left, right = sequence([(0.2, 0.5, 60)], 1.0), sequence([(0.2, 0.5, 67)], 1.0)
    soundfile.write(path, np.stack([left, right], axis=1), 22050)
    second = DaemonSettings.model_validate({"audio": {"channel": 2}})
    assert [e.pitch for e in note_ons(list(stream_file(path, second)))] == [67]
    with pytest.raises(ValueError, match="channel 3 does not exist"):
        list(stream_file(path, DaemonSettings.model_validate({"audio": {"channel": 3}})))
