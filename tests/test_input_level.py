"""Per-frame input levels for the noise gate: values, block edges, block sizes, memory."""

from __future__ import annotations

import numpy as np
import pytest

from livepitch.input_level import SILENCE_DB, FrameLevels


def levels_of(audio: np.ndarray, pieces: int = 1) -> FrameLevels:
    levels = FrameLevels()
    for piece in np.array_split(audio.astype(np.float32), pieces):
        levels.push(piece)
    return levels


def test_a_sine_reads_its_rms_level_in_dbfs() -> None:
    t = np.arange(22050) / 22050
    sine = 0.1 * np.sin(2 * np.pi * (5 * 22050 / 256) * t)  # 5 periods a block; -23.01 dB RMS
    levels = levels_of(sine)
    assert levels.level_db(40, 22050) == pytest.approx(-23.01, abs=0.05)
    assert levels_of(0.5 * sine).level_db(40, 22050) == pytest.approx(-23.01 - 6.02, abs=0.05)


def test_frame_t_reads_its_block_and_two_before_up_to_the_emitted_sample() -> None:
    audio = np.zeros(4096, np.float32)
    audio[319] = 1.0  # the last sample of frame 1's block [64, 320)
    levels = levels_of(audio)
    assert levels.level_db(0, 319) == SILENCE_DB  # frame 1's block not complete yet
    assert levels.level_db(0, 320) == pytest.approx(10 * np.log10(1 / 256))
    assert levels.level_db(3, 4096) == pytest.approx(10 * np.log10(1 / 256))  # blocks 1, 2, 3
    assert levels.level_db(4, 4096) == SILENCE_DB  # blocks 2 .. 15


def test_a_frame_reads_at_most_sixteen_blocks_ahead() -> None:
    audio = np.zeros(256 * 40, np.float32)
    audio[256 * 20] = 1.0  # in frame 20's block
    levels = levels_of(audio)
    assert levels.level_db(4, audio.shape[0]) > SILENCE_DB
    assert levels.level_db(3, audio.shape[0]) == SILENCE_DB


@pytest.mark.parametrize("pieces", [7, 100, 3001])
def test_any_block_sizes_give_the_same_levels(pieces: int) -> None:
    audio = np.random.default_rng(1).normal(0.0, 0.05, 3001 * 3).astype(np.float32)
    whole, cut = levels_of(audio), levels_of(audio, pieces)
    for frame in range(0, 34):
        assert cut.level_db(frame, 256 * frame + 68) == whole.level_db(frame, 256 * frame + 68)


def test_forgetting_keeps_what_the_next_frames_read() -> None:
    audio = np.random.default_rng(2).normal(0.0, 0.05, 256 * 30).astype(np.float32)
    kept, forgetting = levels_of(audio), levels_of(audio)
    for frame in range(0, 25):
        assert forgetting.level_db(frame, 256 * frame + 1000) == kept.level_db(frame, 256 * frame + 1000)
        forgetting.forget_before(frame + 1)
