"""Audio input: files that are not what they seem (cut, damaged, unnamed in UTF-8, pipes, or not
audio), and the capture ring."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile

from livepitch.audio_file import read_audio, read_audio_frames
from livepitch.audio_sources import FileReplaySource
from livepitch.decoder import pitch_bin_range
from livepitch.errors import AudioInputError
from livepitch.ring_buffer import AudioRing
from livepitch.samples import MAX_SAMPLE_MAGNITUDE
from tests.synth import sequence


def replay_to_the_end(source: FileReplaySource, capacity_frames: int) -> AudioRing:
    ring = AudioRing(capacity_frames, source.channels)
    source.start(ring)
    deadline = time.monotonic() + 20.0
    while not (source.finished or source.error) and time.monotonic() < deadline:
        time.sleep(0.01)
    source.stop()
    return ring


def test_a_file_cut_while_it_replays_ends_with_an_error_not_its_last_block_repeated(tmp_path: Path) -> None:
    audio = sequence([(0.1, 1.5, 60)], 2.0)
    wav = tmp_path / "take.wav"
    soundfile.write(wav, audio, 22050)
    source = FileReplaySource(wav, 1024, speed=1000.0)  # opened whole: 44100 frames declared
    os.truncate(wav, 44 + 2 * 10_000)  # then cut to 10000 frames (16-bit mono after a 44-byte header)
    ring = replay_to_the_end(source, 50_000)
    assert source.error is not None and "ended after 0.45 s of its 2.00 s" in source.error
    assert not source.finished
    assert source.frames_delivered == ring.available_frames == 10_000


def test_a_flac_cut_short_says_so_when_its_replay_reaches_the_cut(tmp_path: Path) -> None:
    """libsndfile fails to seek in a cut FLAC ("Internal psf_fseek() failed"): the replay says
    the file is damaged or cut short, and where, as for a cut WAV."""
    flac = tmp_path / "take.flac"
    soundfile.write(flac, np.random.default_rng(0).uniform(-0.5, 0.5, 4 * 22050), 22050, format="FLAC")
    os.truncate(flac, flac.stat().st_size // 2)
    source = FileReplaySource(flac, 1024, speed=1000.0)
    replay_to_the_end(source, 200_000)
    assert source.error is not None, "the cut went unnoticed"
    assert f"{flac}: damaged or cut short" in source.error and "of its 4.00 s" in source.error
    assert source.frames_delivered < 3 * 22050


@pytest.mark.parametrize("format_name", ["WAV", "MP3"])
def test_a_replay_started_part_way_delivers_the_rest_of_the_file(tmp_path: Path, format_name: str) -> None:
    """What a reload resumes from: the file's frames from ``start_at`` on (MP3 is decoded whole)."""
    path = tmp_path / f"take.{format_name.lower()}"
    soundfile.write(path, sequence([(0.1, 1.5, 60)], 2.0), 22050, format=format_name)
    whole, _ = read_audio_frames(path)
    source = FileReplaySource(path, 1000, speed=1000.0)
    source.start_at(30_001)
    ring = replay_to_the_end(source, 50_000)
    assert source.finished and source.position_frames == whole.shape[0]
    assert source.frames_delivered == ring.available_frames == whole.shape[0] - 30_001
    assert np.array_equal(ring.read(ring.available_frames), whole[30_001:])


def test_pipes_and_directories_are_refused_for_replay(tmp_path: Path) -> None:
    fifo = tmp_path / "live.wav"
    os.mkfifo(fifo)
    with pytest.raises(AudioInputError, match="not a regular file"):
        FileReplaySource(fifo, 1024)
    with pytest.raises(AudioInputError, match="is a directory"):
        FileReplaySource(tmp_path, 1024)


def test_an_mp3_that_decodes_short_is_read_with_a_warning_its_length_being_an_estimate(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An MP3's frame count is the decoder's estimate (without a VBR header, from the first
    frame's bitrate), so decoding less than it is no proof of damage: warned, not refused."""
    mp3 = tmp_path / "tune.mp3"
    soundfile.write(mp3, sequence([(0.2, 3.0, 60)], 4.0), 22050, format="MP3")
    data = bytearray(mp3.read_bytes())
    third = len(data) // 3
    noise = np.random.default_rng(3).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    data[third : third + 3000] = noise  # garbage the decoder stops at (other garbage fails it outright)
    mp3.write_bytes(bytes(data))
    with caplog.at_level("WARNING", logger="livepitch"):
        audio = read_audio(mp3)
        source = FileReplaySource(mp3, 1024)
    assert 0 < audio.shape[0] < 2 * 22050
    assert sum("damaged or cut short" in r.getMessage() for r in caplog.records) == 2
    assert source.rate_hz == 22050


def test_a_file_name_that_is_not_utf8_is_read_and_replayed(tmp_path: Path) -> None:
    name = Path(os.fsdecode(os.path.join(os.fsencode(tmp_path), b"take\xff.wav")))
    soundfile.write(os.fsencode(name), sequence([(0.1, 0.3, 60)], 0.5), 22050)
    frames, rate_hz = read_audio_frames(name)
    assert frames.shape == (11025, 1) and rate_hz == 22050
    ring = replay_to_the_end(FileReplaySource(name, 1024, speed=1000.0), 20_000)
    assert ring.available_frames == 11025


def test_samples_far_beyond_full_scale_are_refused_naming_the_file(tmp_path: Path) -> None:
    audio = sequence([(0.1, 0.5, 60)], 1.0)
    audio[5000] = 1e25  # finite, but the model's log spectrum would overflow into NaN
    wav = tmp_path / "spike.wav"
    soundfile.write(wav, audio, 22050, subtype="FLOAT")
    with pytest.raises(AudioInputError, match=r"spike.wav: 1 samples lie beyond ±10000"):
        read_audio(wav)
    audio[5000] = 0.9 * MAX_SAMPLE_MAGNITUDE  # hot, but a float file may hold it
    soundfile.write(wav, audio, 22050, subtype="FLOAT")
    assert read_audio(wav).shape[0] == 22050


@pytest.mark.parametrize(
    ("min_hz", "max_hz", "expected"),
    [
        (None, 20.0, (0, 0)),
        (None, 1.0, (0, 0)),
        (5000.0, None, (88, 88)),
        (None, 410.0, (0, 47)),
        (1.0, None, (0, 88)),
    ],
)
def test_frequency_limits_beyond_the_models_range_keep_all_or_nothing(
    min_hz: float | None, max_hz: float | None, expected: tuple[int, int]
) -> None:
    assert pitch_bin_range(min_hz, max_hz) == expected


def test_a_wav_whose_header_declares_more_than_it_holds_is_read_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A recording cut short (libsndfile reads what is there and says the header overstates
    it): its audio is all there is, so it is read, and the shortfall is said once."""
    wav = tmp_path / "crashed.wav"
    soundfile.write(wav, sequence([(0.1, 1.5, 60)], 2.0), 22050, subtype="PCM_16")
    os.truncate(wav, 44 + 2 * 15_000)
    with caplog.at_level("WARNING", logger="livepitch"):
        audio = read_audio(wav)
        FileReplaySource(wav, 1024)
    assert audio.shape[0] == 15_000
    warnings = [r.getMessage() for r in caplog.records if "cut short?" in r.getMessage()]
    assert len(warnings) == 2 and "declares 2.00 s, the file holds 0.68 s" in warnings[0]
    caplog.clear()
    whole = tmp_path / "whole.wav"
    soundfile.write(whole, sequence([(0.1, 0.5, 60)], 1.0), 22050, subtype="PCM_16")
    with caplog.at_level("WARNING", logger="livepitch"):
        read_audio(whole)
    assert not caplog.records


def test_a_block_that_exactly_fills_the_capture_ring_is_taken() -> None:
    """A ring sized to a whole number of blocks holds that many: refusing the block that fills
    it would lose audio and count an overflow where nothing overflowed."""
    ring = AudioRing(512, 1)
    assert ring.write(np.zeros((256, 1), np.float32))
    assert ring.write(np.ones((256, 1), np.float32))
    assert ring.overflows == 0 and ring.available_frames == 512
    assert not ring.write(np.zeros((1, 1), np.float32))  # one frame more does not fit
    assert ring.overflows == 1


def test_skipping_more_than_the_ring_holds_stops_at_the_newest_audio() -> None:
    """A drop skips what the worker is behind by: skipping past what was written would put the
    reader ahead of the writer, taking the ring's stale last lap for new audio."""
    ring = AudioRing(256, 1)
    ring.write(np.zeros((10, 1), np.float32))
    assert ring.skip(100) == 10 and ring.available_frames == 0
    ring.write(np.ones((5, 1), np.float32))
    assert ring.read().tolist() == [[1.0]] * 5
