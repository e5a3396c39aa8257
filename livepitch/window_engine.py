"""The window engine: runs the model's 2 s window every hop and publishes the new frames.

Each run computes the front end (CQT, window-wide normalisation, harmonic stacking) on the
whole window but the CNN only on the frames from the first it publishes to the window's end
(plus the receptive field before them), which gives exactly the full graph's posteriors at a
third of its cost. The frames after the published ones travel with them as a preview.

Schedule (all integers, model-rate samples). With lookahead ``k`` frames and hop ``H``
frames, the model runs on windows whose newest publishable frame is t = H-1, 2H-1, ...; the
window for newest frame t starts at ``256 * (t - 171 + k)`` and ends at
``43844 + 256 * (t - 171 + k)``, so frame t sits at window frame ``171 - k`` and has
``68 + 256 k`` samples of audio after its centre. Each run publishes the H frames
t-H+1 .. t: every frame exactly once, on the uniform grid, with a lookahead of
``68 + 256 k`` to ``68 + 256 (k + H - 1)`` samples. Windows reaching before sample 0 are zero
padded (no 2 s wait at start). The schedule depends only on sample positions, never on how
the audio was cut into blocks, so every block size gives identical frames.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np
import numpy.typing as npt

from livepitch.frames import Frame, cut_at_boundaries, end_preview_at
from livepitch.geometry import FRAME_HOP_SAMPLES, WINDOW_FRAMES, WINDOW_SAMPLES
from livepitch.posteriors import WindowOutputs

WINDOW_TAIL_SAMPLES = WINDOW_SAMPLES - (WINDOW_FRAMES - 1) * FRAME_HOP_SAMPLES
"""Audio after the centre of a window's last frame (68 samples, 3.1 ms)."""

MAX_LOOKAHEAD_FRAMES = WINDOW_FRAMES - 1

CONTEXT_FRAMES = 10
"""Frames of a window before any frame the window engine publishes: the CNN's receptive field
(onset: 10 frames each side), so no published frame sees the zeros before a window's start."""


def lookahead_samples_for_frames(lookahead_frames: int) -> int:
    """Audio after a frame's centre at a lookahead of k frames, ``68 + 256 k`` [samples]: the
    frame sits k frames before the last of a model window, whose centre is 68 samples from
    the window's end. Also the sample at which edge (newest frame) k is complete."""
    return WINDOW_TAIL_SAMPLES + FRAME_HOP_SAMPLES * lookahead_frames


class WindowFramesModel(Protocol):
    """Posteriors of chosen frames of one 43844-sample window (``BasicPitchModel.run_window``)."""

    def run_window(
        self, window: npt.NDArray[np.float32], first_frame: int, n_frames: int
    ) -> WindowOutputs: ...


def lookahead_frames_for_ms(lookahead_ms: float, rate_hz: int = 22050) -> int:
    """Fewest whole frames beyond the window edge that give at least ``lookahead_ms``.

    The lookahead actually used is ``68 + 256 k`` samples (3.1 ms + k x 11.6 ms): 60 ms gives
    61.1 ms, 49.5 gives 49.5, 50 gives 61.1.
    """
    samples = lookahead_ms * rate_hz / 1000.0
    steps = (samples - WINDOW_TAIL_SAMPLES) / FRAME_HOP_SAMPLES
    return max(0, min(MAX_LOOKAHEAD_FRAMES, math.ceil(steps - 1e-6)))


class WindowEngine:
    """A ``FrameEngine`` that runs ``model`` on one full window per hop.

    Runs on the worker thread (the one calling ``push``/``flush``); not thread-safe.
    """

    def __init__(self, model: WindowFramesModel, lookahead_frames: int, hop_frames: int) -> None:
        if not 0 <= lookahead_frames <= MAX_LOOKAHEAD_FRAMES:
            raise ValueError(f"lookahead_frames must be 0..{MAX_LOOKAHEAD_FRAMES}")
        if not 1 <= hop_frames <= WINDOW_FRAMES - CONTEXT_FRAMES - lookahead_frames:
            raise ValueError(f"hop_frames must be 1..{WINDOW_FRAMES - CONTEXT_FRAMES - lookahead_frames}")
        self._model = model
        self.lookahead_frames = lookahead_frames
        self.hop_frames = hop_frames
        self._history = np.zeros(WINDOW_SAMPLES, dtype=np.float32)
        self.reset()

    @property
    def lookahead_samples(self) -> int:
        """Minimum audio after a published frame's centre [samples]."""
        return lookahead_samples_for_frames(self.lookahead_frames)

    @property
    def consumed_samples(self) -> int:
        """Samples consumed so far."""
        return self._consumed

    @property
    def windows_run(self) -> int:
        """Model windows run since the last reset."""
        return self._windows_run

    def warm_up(self) -> None:
        """Run the model once on a silent window (sessions built, caches warm); state untouched."""
        self._model.run_window(np.zeros(WINDOW_SAMPLES, dtype=np.float32), 0, WINDOW_FRAMES)

    def share_gil(self, promptly: bool) -> None:
        """Nothing to do: onnxruntime releases the GIL for the whole of a model run."""

    def reset(self) -> None:
        """Forget all audio; the next sample pushed is sample 0."""
        self._history[:] = 0.0
        self._write_pos = 0  # next write position in the circular history
        self._consumed = 0
        self._next_frame = 0  # first frame not yet published
        self._windows_run = 0

    def _window_end_for(self, newest_frame: int) -> int:
        start = FRAME_HOP_SAMPLES * (newest_frame - (WINDOW_FRAMES - 1) + self.lookahead_frames)
        return start + WINDOW_SAMPLES

    def _next_run_end(self) -> int:
        return self._window_end_for(self._next_frame + self.hop_frames - 1)

    def push(self, block: npt.NDArray[np.float32]) -> list[Frame]:
        """Consume ``block`` (mono float32 at 22050 Hz); return newly publishable frames."""
        samples = np.asarray(block, dtype=np.float32).reshape(-1)
        frames: list[Frame] = []
        for piece, at_run in cut_at_boundaries(samples, lambda: self._consumed, self._next_run_end):
            self._append(piece)
            if at_run:
                frames.extend(self._run(self._consumed))
        return frames

    def flush(self) -> list[Frame]:
        """Publish the frames whose centres lie inside the audio, padding the future with zeros."""
        end_sample = self._consumed
        n_frames = math.ceil(end_sample / FRAME_HOP_SAMPLES)
        frames: list[Frame] = []
        while self._next_frame < n_frames:
            run_end = self._next_run_end()
            self._append(np.zeros(run_end - self._consumed, dtype=np.float32))
            frames.extend(end_preview_at(f, n_frames) for f in self._run(end_sample) if f.index < n_frames)
        self._consumed = end_sample
        return frames

    def _append(self, samples: npt.NDArray[np.float32]) -> None:
        n = samples.shape[0]
        if n >= WINDOW_SAMPLES:
            self._history[:] = samples[-WINDOW_SAMPLES:]
            self._write_pos = 0
        elif n:
            first = min(n, WINDOW_SAMPLES - self._write_pos)
            self._history[self._write_pos : self._write_pos + first] = samples[:first]
            self._history[: n - first] = samples[first:]
            self._write_pos = (self._write_pos + n) % WINDOW_SAMPLES
        self._consumed += n

    def _run(self, emitted_sample: int) -> list[Frame]:
        window = np.concatenate([self._history[self._write_pos :], self._history[: self._write_pos]])
        window_start = self._consumed - WINDOW_SAMPLES
        first_j = (FRAME_HOP_SAMPLES * self._next_frame - window_start) // FRAME_HOP_SAMPLES
        # the published frames, and the window's newer frames after them as a preview
        outputs = self._model.run_window(window, first_j, WINDOW_FRAMES - first_j)
        self._windows_run += 1
        frames = []
        for row in range(self.hop_frames):
            t = self._next_frame
            frames.append(
                Frame(
                    index=t,
                    centre_sample=FRAME_HOP_SAMPLES * t,
                    emitted_sample=emitted_sample,
                    note=outputs.note[row],
                    onset=outputs.onset[row],
                    contour=outputs.contour[row],
                    preview_note=outputs.note[row + 1 :],
                    preview_onset=outputs.onset[row + 1 :],
                )
            )
            self._next_frame += 1
        return frames
