"""Window placement and frame positions."""

from __future__ import annotations

import numpy as np
import pytest

from livepitch.geometry import FRAME_HOP_SAMPLES, WINDOW_SAMPLES
from livepitch.windowing import Windowing, cut_windows, plan_windows


def test_compat_frame_count_matches_upstream_for_vocadito_10() -> None:
    # vocadito_10.wav resampled to 22050 Hz has 200607 samples; upstream keeps 787 frames.
    assert plan_windows(200607, Windowing.COMPAT).n_frames == 787


def test_compat_frames_step_back_188_samples_at_each_window_join() -> None:
    centres = plan_windows(200607, Windowing.COMPAT).frame_centre_samples
    steps = np.diff(centres)
    assert set(steps[:141].tolist()) == {FRAME_HOP_SAMPLES}
    assert steps[141] == FRAME_HOP_SAMPLES - 188
    assert centres[142] == 36164


@pytest.mark.parametrize("n_samples", [1, 255, 256, 257, 36352, 36353, 22050 * 3600])
def test_uniform_frames_lie_exactly_one_hop_apart_with_no_drift(n_samples: int) -> None:
    plan = plan_windows(n_samples, Windowing.UNIFORM)
    centres = plan.frame_centre_samples
    assert plan.n_frames == -(-n_samples // FRAME_HOP_SAMPLES)
    np.testing.assert_array_equal(centres, FRAME_HOP_SAMPLES * np.arange(plan.n_frames))
    assert centres[-1] < n_samples


def test_cut_windows_zero_pads_before_and_after_the_audio() -> None:
    audio = np.arange(1, 1001, dtype=np.float32)
    windows = cut_windows(audio, np.array([-10, 990], dtype=np.int64))
    assert windows.shape == (2, WINDOW_SAMPLES)
    assert np.all(windows[0, :10] == 0) and windows[0, 10] == 1 and windows[0, 1009] == 1000
    assert np.all(windows[0, 1010:] == 0)
    np.testing.assert_array_equal(windows[1, :10], audio[990:])
    assert np.all(windows[1, 10:] == 0)
