"""Where offline windows go, and where each kept frame is centred.

Two placements, both keeping 142 of each window's 172 frames (15 trimmed at each side) and
the exact sample position of every frame:

* ``compat``: upstream Basic Pitch's current placement. 3840 zeros are prepended and windows
  start every 36164 samples, but the kept frames span 142 x 256 = 36352 samples, so each
  window join steps back 188 samples (upstream issue 190). The frame count is
  ``int(n_samples / 36164 * 142)``. Used for parity with upstream's reference outputs.
* ``uniform`` (default): windows start every 36352 samples, so frame t is centred on sample
  ``256 * t`` exactly, with no drift however long the file. Frames are kept while their centre
  lies inside the audio: ``ceil(n_samples / 256)`` of them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

import numpy as np
import numpy.typing as npt

from livepitch.geometry import (
    EDGE_FRAMES,
    FRAME_HOP_SAMPLES,
    KEPT_FRAMES,
    LEAD_PAD_SAMPLES,
    WINDOW_SAMPLES,
)

COMPAT_HOP_SAMPLES = WINDOW_SAMPLES - 2 * EDGE_FRAMES * FRAME_HOP_SAMPLES
"""Upstream's window hop (36164 samples)."""

UNIFORM_HOP_SAMPLES = KEPT_FRAMES * FRAME_HOP_SAMPLES
"""Window hop that makes kept frames exactly one frame hop apart across joins (36352)."""


class Windowing(str, Enum):
    """Offline window placement."""

    COMPAT = "compat"
    UNIFORM = "uniform"


@dataclass(frozen=True)
class WindowPlan:
    """Windows to run and the frames kept from them.

    ``window_start_samples[w]`` is the audio sample at window w's first input sample
    (negative: zeros before the audio). Frames kept from window w are its frames
    ``EDGE_FRAMES .. EDGE_FRAMES + KEPT_FRAMES - 1``, concatenated in window order and cut to
    ``n_frames``; ``frame_centre_samples`` holds each kept frame's centre.
    """

    window_start_samples: npt.NDArray[np.int64]
    n_frames: int

    @property
    def n_windows(self) -> int:
        """Number of windows to run."""
        return int(self.window_start_samples.shape[0])

    @property
    def frame_centre_samples(self) -> npt.NDArray[np.int64]:
        """Centre of every kept frame [samples from the start of the audio]."""
        offsets = FRAME_HOP_SAMPLES * (EDGE_FRAMES + np.arange(KEPT_FRAMES, dtype=np.int64))
        centres = (self.window_start_samples[:, None] + offsets[None, :]).reshape(-1)
        return centres[: self.n_frames]


def plan_windows(n_samples: int, windowing: Windowing) -> WindowPlan:
    """Plan the windows covering ``n_samples`` samples of audio at the model rate."""
    if n_samples < 0:
        raise ValueError("n_samples must be >= 0")
    if windowing is Windowing.COMPAT:
        hop_samples = COMPAT_HOP_SAMPLES
        n_windows = math.ceil((n_samples + LEAD_PAD_SAMPLES) / hop_samples)
        n_frames = int(n_samples / hop_samples * KEPT_FRAMES)
    else:
        hop_samples = UNIFORM_HOP_SAMPLES
        n_frames = math.ceil(n_samples / FRAME_HOP_SAMPLES)
        n_windows = math.ceil(n_frames / KEPT_FRAMES)
    starts = np.arange(n_windows, dtype=np.int64) * hop_samples - LEAD_PAD_SAMPLES
    return WindowPlan(window_start_samples=starts, n_frames=n_frames)


def cut_windows(
    audio: npt.NDArray[np.float32], window_start_samples: npt.NDArray[np.int64]
) -> npt.NDArray[np.float32]:
    """Copy the windows starting at ``window_start_samples`` out of ``audio``, zero-padded.

    Returns ``[len(window_start_samples), WINDOW_SAMPLES]`` float32.
    """
    windows = np.zeros((len(window_start_samples), WINDOW_SAMPLES), dtype=np.float32)
    n_samples = audio.shape[0]
    for row, start in enumerate(window_start_samples.tolist()):
        first = max(start, 0)
        last = min(start + WINDOW_SAMPLES, n_samples)
        if last > first:
            windows[row, first - start : last - start] = audio[first:last]
    return windows
