"""Whole-recording inference: audio in, posteriors for every frame out."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import numpy.typing as npt

from livepitch.geometry import EDGE_FRAMES, KEPT_FRAMES
from livepitch.posteriors import Posteriors, WindowOutputs
from livepitch.windowing import Windowing, cut_windows, plan_windows


class WindowModel(Protocol):
    """Anything that maps ``[batch, 43844]`` windows to ``[batch, 172, bins]`` posteriors."""

    def run(self, windows: npt.NDArray[np.float32]) -> WindowOutputs: ...


def compute_posteriors(
    audio: npt.NDArray[np.float32],
    model: WindowModel,
    windowing: Windowing = Windowing.UNIFORM,
    batch_windows: int = 2,
) -> Posteriors:
    """Run ``model`` over mono ``audio`` at 22050 Hz and stitch the kept frames.

    Windows are run ``batch_windows`` at a time (faster than one by one, bounded memory).
    """
    plan = plan_windows(audio.shape[0], windowing)
    n_frames = plan.n_frames
    kept_total = plan.n_windows * KEPT_FRAMES
    note = np.empty((kept_total, 88), dtype=np.float32)
    onset = np.empty((kept_total, 88), dtype=np.float32)
    contour = np.empty((kept_total, 264), dtype=np.float32)
    kept = slice(EDGE_FRAMES, EDGE_FRAMES + KEPT_FRAMES)
    for first in range(0, plan.n_windows, batch_windows):
        starts = plan.window_start_samples[first : first + batch_windows]
        outputs = model.run(cut_windows(audio, starts))
        rows = slice(first * KEPT_FRAMES, (first + len(starts)) * KEPT_FRAMES)
        note[rows] = outputs.note[:, kept].reshape(-1, 88)
        onset[rows] = outputs.onset[:, kept].reshape(-1, 88)
        contour[rows] = outputs.contour[:, kept].reshape(-1, 264)
    return Posteriors(
        note=note[:n_frames],
        onset=onset[:n_frames],
        contour=contour[:n_frames],
        frame_centre_samples=plan.frame_centre_samples,
    )
