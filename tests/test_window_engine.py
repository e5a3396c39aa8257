"""The window engine's schedule: every frame once, exact positions, any block size, no drift."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from livepitch.audio_file import read_audio
from livepitch.frames import Frame
from livepitch.geometry import FRAME_HOP_SAMPLES, WINDOW_FRAMES, WINDOW_SAMPLES
from livepitch.offline import compute_posteriors
from livepitch.posteriors import WindowOutputs
from livepitch.window_engine import WindowEngine, lookahead_frames_for_ms
from livepitch.windowing import Windowing
from tests.synth import sequence


class PositionModel:
    """A stand-in model whose 'posteriors' say which window sample each frame was centred on.

    note[:, 0] holds the window's first sample value + 256 * j, so feeding a ramp (sample
    index as value) reveals the absolute position of every published frame.
    """

    def __init__(self) -> None:
        self.calls = 0

    def run_window(self, window: npt.NDArray[np.float32], first_frame: int, n_frames: int) -> WindowOutputs:
        self.calls += 1
        note = np.zeros((n_frames, 88), np.float32)
        for row in range(n_frames):
            note[row, 0] = window[FRAME_HOP_SAMPLES * (first_frame + row)]
        return WindowOutputs(
            note, np.zeros((n_frames, 88), np.float32), np.zeros((n_frames, 264), np.float32)
        )


def _run(engine: WindowEngine, audio: npt.NDArray[np.float32], block: int) -> list[Frame]:
    frames: list[Frame] = []
    for start in range(0, audio.shape[0], block):
        frames.extend(engine.push(audio[start : start + block]))
    return frames + engine.flush()


@pytest.mark.parametrize(("lookahead_frames", "hop_frames"), [(0, 1), (2, 4), (6, 3), (15, 142), (30, 7)])
def test_each_frame_once_on_the_grid_with_its_lookahead(lookahead_frames: int, hop_frames: int) -> None:
    n_samples = 3 * WINDOW_SAMPLES + 12345
    ramp = np.arange(n_samples, dtype=np.float64).astype(np.float32)
    engine = WindowEngine(PositionModel(), lookahead_frames, hop_frames)
    frames = _run(engine, ramp, 1000)
    n_frames = -(-n_samples // FRAME_HOP_SAMPLES)
    assert [f.index for f in frames] == list(range(n_frames))
    assert [f.centre_sample for f in frames] == [FRAME_HOP_SAMPLES * t for t in range(n_frames)]
    for frame in frames:
        # the model saw the sample at the frame's centre there (0 for zero-padded history)
        assert frame.note[0] == pytest.approx(float(frame.centre_sample) if frame.centre_sample else 0.0)
    unflushed = [f for f in frames if f.emitted_sample < n_samples]
    assert unflushed and all(
        f.emitted_sample - f.centre_sample >= engine.lookahead_samples for f in unflushed
    )
    lag = max(f.emitted_sample - f.centre_sample for f in unflushed)
    assert lag == engine.lookahead_samples + FRAME_HOP_SAMPLES * (hop_frames - 1)
    # the preview: the frames after each one, never past the audio (zero padding at the end)
    assert all(len(f.preview_onset) == len(f.preview_note) for f in frames)
    assert max(f.index + len(f.preview_note) for f in frames) == n_frames - 1


def test_an_hour_of_audio_in_random_blocks_has_no_drift() -> None:
    rng = np.random.default_rng(1)
    engine = WindowEngine(PositionModel(), 6, 16)
    silence = np.zeros(22050 * 10, np.float32)
    last: Frame | None = None
    count = 0
    for _ in range(360):  # 360 x 10 s = 1 hour
        start = 0
        while start < silence.shape[0]:
            size = int(rng.integers(1, 9000))
            for frame in engine.push(silence[start : start + size]):
                assert frame.index == count and frame.centre_sample == FRAME_HOP_SAMPLES * count
                count += 1
                last = frame
            start += size
    assert engine.consumed_samples == 22050 * 3600
    assert (
        last is not None
        and engine.consumed_samples - last.centre_sample < engine.lookahead_samples + 16 * 256
    )


def test_block_size_never_changes_the_frames(model: Any) -> None:
    audio = sequence([(0.2, 0.4, 60), (0.7, 0.5, 67)], 1.3)
    reference: list[Frame] | None = None
    for block in (1, 64, 1000, 4096):
        frames = _run(WindowEngine(model, 4, 3), audio, block)
        if reference is None:
            reference = frames
            continue
        assert len(frames) == len(reference)
        for a, b in zip(frames, reference, strict=True):
            assert (a.index, a.emitted_sample) == (b.index, b.emitted_sample)
            np.testing.assert_array_equal(a.note, b.note)
            np.testing.assert_array_equal(a.onset, b.onset)


def test_cnn_on_a_slab_equals_the_full_graph(model: Any) -> None:
    window = (np.random.default_rng(0).standard_normal(WINDOW_SAMPLES) * 0.1).astype(np.float32)
    full = model.run(window[None, :])
    for first, count in ((0, 5), (150, 4), (WINDOW_FRAMES - 3, 3), (80, 30)):
        part = model.run_window(window, first, count)
        np.testing.assert_array_equal(part.note, full.note[0, first : first + count])
        np.testing.assert_array_equal(part.onset, full.onset[0, first : first + count])
        np.testing.assert_array_equal(part.contour, full.contour[0, first : first + count])


def test_with_the_offline_lookahead_and_hop_streaming_equals_offline_exactly(
    data_dir: Path, model: Any
) -> None:
    # Lookahead 15 frames + hop 142 frames places windows exactly where offline uniform windowing
    # does, so the posteriors are identical (measured max deviation 0.0). At other hops the
    # window-wide normalisation differs: at lookahead 15 and hop 10 onsets deviate by up to 0.19.
    audio = read_audio(data_dir / "reference_basic_pitch" / "vocadito_10.wav")
    offline = compute_posteriors(audio, model, Windowing.UNIFORM)
    frames = _run(WindowEngine(model, 15, 142), audio, 4096)
    assert len(frames) == offline.n_frames
    np.testing.assert_array_equal(np.stack([f.note for f in frames]), offline.note)
    np.testing.assert_array_equal(np.stack([f.onset for f in frames]), offline.onset)
    np.testing.assert_array_equal(np.stack([f.contour for f in frames]), offline.contour)


def test_lookahead_ms_maps_to_whole_frames_beyond_the_window_edge() -> None:
    # the fewest frames that give at least the lookahead asked for: 68 + 256 k samples
    assert lookahead_frames_for_ms(0) == 0
    assert lookahead_frames_for_ms(3.0) == 0  # 68 samples = 3.08 ms
    assert lookahead_frames_for_ms(49.5) == 4  # 1092 samples = 49.52 ms
    assert lookahead_frames_for_ms(50) == 5
    assert lookahead_frames_for_ms(60) == 5  # 61.1 ms
    assert lookahead_frames_for_ms(70) == 6  # 72.7 ms, the default
    assert lookahead_frames_for_ms(72.7) == 6
    assert lookahead_frames_for_ms(10_000) == WINDOW_FRAMES - 1
    for ms in (1.0, 10.0, 33.3, 60.0, 99.0, 500.0):
        assert 68 + 256 * lookahead_frames_for_ms(ms) >= ms * 22.05 - 1e-6
