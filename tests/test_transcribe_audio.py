"""Transcription of audio the tests synthesise: exact pitches, onsets within one frame."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

from livepitch.audio_file import read_audio
from livepitch.errors import AudioInputError
from livepitch.settings import TranscribeSettings
from livepitch.transcribe import Transcription, transcribe_audio, transcribe_file
from tests.synth import sequence, tone

FRAME_S = 256 / 22050
MELODY = [(0.5, 0.6, 48), (1.3, 0.6, 55), (2.1, 0.6, 60), (2.9, 0.6, 67), (3.7, 0.6, 72), (4.5, 0.6, 65)]
"""(onset_s, duration_s, pitch) of single tones the model transcribes cleanly."""


PRECISE = TranscribeSettings.model_validate({"decoder": {"infer_onsets": False}})
"""Onsets from the onset posterior alone: its peak is within one frame of the true onset."""


def _assert_notes(
    transcription: Transcription, expected: list[tuple[float, float, int]], tolerance_frames: int = 1
) -> None:
    got = [(n.start_s, n.pitch) for n in transcription.notes]
    assert [p for _, p in got] == [p for _, _, p in expected], got
    for (start_s, _), (onset_s, _, _) in zip(got, expected, strict=True):
        assert abs(start_s - onset_s) <= tolerance_frames * FRAME_S, (start_s, onset_s)


@pytest.fixture(scope="module")
def melody_audio() -> np.ndarray:
    return sequence(MELODY, 5.5)


def test_melody_of_single_tones_gives_exact_pitches_and_onsets_within_one_frame(
    model: Any, melody_audio: np.ndarray
) -> None:
    _assert_notes(transcribe_audio(melody_audio, model, PRECISE), MELODY)


def test_default_inferred_onsets_lead_the_true_onset_by_at_most_two_frames(
    model: Any, melody_audio: np.ndarray
) -> None:
    # Upstream's inferred onsets fire on the note posterior's rise, up to two frames early.
    _assert_notes(transcribe_audio(melody_audio, model, TranscribeSettings()), MELODY, tolerance_frames=2)


def test_in_tune_tones_bend_less_than_five_cents(model: Any, melody_audio: np.ndarray) -> None:
    for note in transcribe_audio(melody_audio, model, TranscribeSettings()).notes:
        assert abs(float(np.median(note.bend_semitones))) < 0.05, note


def test_a_tone_30_cents_sharp_is_reported_30_cents_sharp(model: Any) -> None:
    audio = np.concatenate([np.zeros(11025), tone(64.3, 1.0), np.zeros(11025)]).astype(np.float32)
    notes = [n for n in transcribe_audio(audio, model, TranscribeSettings()).notes if n.pitch == 64]
    assert len(notes) == 1
    assert abs(float(np.median(notes[0].bend_semitones)) - 0.30) < 0.05


def test_chord_notes_all_start_together_and_any_extra_note_is_a_quieter_overtone(model: Any) -> None:
    chord = [60, 64, 67]
    audio = sequence([(0.5, 1.0, p) for p in chord], 2.0)
    notes = transcribe_audio(audio, model, PRECISE).notes
    found = {n.pitch: n for n in notes if n.pitch in chord}
    assert sorted(found) == chord
    for note in found.values():
        assert abs(note.start_s - 0.5) <= FRAME_S
    weakest = min(n.velocity for n in found.values())
    for extra in (n for n in notes if n.pitch not in chord):
        assert any(extra.pitch - p in (12, 19, 24, 28) for p in chord), extra
        assert extra.velocity < weakest


def test_silence_gives_no_notes(model: Any) -> None:
    assert transcribe_audio(np.zeros(22050 * 3, np.float32), model, TranscribeSettings()).notes == []


@pytest.mark.parametrize(("rate_hz", "channels"), [(8000, 1), (96000, 1), (44100, 2), (48000, 6)])
def test_any_rate_and_channel_count_gives_the_same_notes(
    model: Any, tmp_path: Path, rate_hz: int, channels: int
) -> None:
    events = [(0.5, 0.6, 55), (1.3, 0.6, 67)]
    mono = sequence(events, 2.2, rate_hz=rate_hz)
    data = np.repeat(mono[:, None], channels, axis=1) if channels > 1 else mono
    path = tmp_path / f"{rate_hz}Hz_{channels}ch.wav"
    soundfile.write(path, data, rate_hz, subtype="FLOAT")
    audio = read_audio(path)
    assert abs(audio.shape[0] - round(2.2 * 22050)) <= 1
    _assert_notes(transcribe_file(path, model, PRECISE), events)


def test_stereo_is_downmixed_by_averaging(tmp_path: Path) -> None:
    left = np.full(1000, 0.5, np.float32)
    right = np.full(1000, -0.1, np.float32)
    path = tmp_path / "22050Hz_stereo_dc.wav"
    soundfile.write(path, np.stack([left, right], axis=1), 22050, subtype="FLOAT")
    np.testing.assert_allclose(read_audio(path), 0.2, atol=1e-6)


def test_nan_samples_are_rejected(tmp_path: Path) -> None:
    audio = tone(60, 1.0).astype(np.float32)
    audio[5000] = np.nan
    path = tmp_path / "nan.wav"
    soundfile.write(path, audio, 22050, subtype="FLOAT")
    with pytest.raises(AudioInputError, match="NaN or infinite"):
        read_audio(path)


def test_empty_and_corrupt_files_are_rejected(tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros(0, np.float32), 22050)
    with pytest.raises(AudioInputError, match="no audio samples"):
        read_audio(empty)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    with pytest.raises(AudioInputError, match="cannot read audio"):
        read_audio(corrupt)
    with pytest.raises(AudioInputError, match="no such file"):
        read_audio(tmp_path / "missing.flac")


def test_a_file_whose_rate_is_not_an_audio_rate_is_refused(tmp_path: Path) -> None:
    one_hz = tmp_path / "one_hz.wav"  # a damaged header, or not audio at all
    soundfile.write(one_hz, np.zeros(50, np.float32), 1)
    with pytest.raises(AudioInputError, match="sample rate is 1 Hz, below the 4000 Hz"):
        read_audio(one_hz)
    low = tmp_path / "5512Hz.wav"  # the lowest rate in common use still reads
    soundfile.write(low, np.zeros(5512, np.float32), 5512)
    assert read_audio(low).shape == (22050,)
