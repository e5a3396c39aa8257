"""Frames as a streaming engine publishes them, and the interface every engine implements."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class Frame:
    """The model's posteriors for one frame, published once.

    ``index`` is the frame number t (centred on model-rate sample ``centre_sample`` =
    ``256 * t`` on the uniform grid); ``emitted_sample`` is how many samples the engine had
    consumed when it published the frame (so ``emitted_sample - centre_sample`` is the frame's
    lookahead). ``note``/``onset`` have 88 bins, ``contour`` 264.

    ``preview_note`` ``[n, 88]`` is the note posterior of the n frames after this one that the
    engine has already computed, with less lookahead than a published frame (possibly none):
    a hint at whether a note goes on, never a substitute for the frames to come.
    ``preview_onset`` ``[n, 88]`` is the onset posterior of the same frames.
    """

    index: int
    centre_sample: int
    emitted_sample: int
    note: npt.NDArray[np.float32]
    onset: npt.NDArray[np.float32]
    contour: npt.NDArray[np.float32]
    preview_note: npt.NDArray[np.float32] = field(default_factory=lambda: np.zeros((0, 88), np.float32))
    preview_onset: npt.NDArray[np.float32] = field(default_factory=lambda: np.zeros((0, 88), np.float32))


def end_preview_at(frame: Frame, n_frames: int) -> Frame:
    """``frame`` with its preview cut to the frames before ``n_frames`` (the end of the audio):
    past it the engines computed zero padding, not audio."""
    keep = max(0, n_frames - frame.index - 1)
    if frame.preview_note.shape[0] <= keep and frame.preview_onset.shape[0] <= keep:
        return frame
    return replace(frame, preview_note=frame.preview_note[:keep], preview_onset=frame.preview_onset[:keep])


class FrameEngine(Protocol):
    """Turns an endless stream of 22050 Hz audio into frames, each published exactly once.

    Implementations: ``WindowEngine`` (re-runs the full 2 s model window every hop) and
    ``IncrementalEngine`` (computes only the new columns, a hop of one frame). Both keep the
    same contract: frames in order, on the uniform grid, each with at least
    ``lookahead_samples`` of audio after its centre unless the stream ended.
    """

    @property
    def lookahead_samples(self) -> int:
        """Audio after a frame's centre that the engine waits for [samples]."""
        ...

    @property
    def hop_frames(self) -> int:
        """Frames published together (each run of the model publishes this many)."""
        ...

    @property
    def consumed_samples(self) -> int:
        """Samples consumed so far (the engine's clock)."""
        ...

    def push(self, block: npt.NDArray[np.float32]) -> list[Frame]:
        """Consume a block of any length; return the frames it made publishable."""
        ...

    def flush(self) -> list[Frame]:
        """End of stream: publish every remaining frame whose centre lies inside the audio."""
        ...

    def reset(self) -> None:
        """Forget all audio and restart the clock at 0."""
        ...

    def warm_up(self) -> None:
        """Prepare and run the model once on silence (no state changes), so the first real
        run neither fails late nor takes longer than the others."""
        ...

    def share_gil(self, promptly: bool) -> None:
        """Whether another Python thread (a Python audio callback) needs the GIL within a
        fraction of a block while the engine runs; not needing it may save CPU."""
        ...


def cut_at_boundaries(
    samples: npt.NDArray[np.float32], consumed: Callable[[], int], boundary: Callable[[], int]
) -> Iterator[tuple[npt.NDArray[np.float32], bool]]:
    """Cut a block so that pieces end exactly on an engine's schedule (model-rate samples).

    Yields ``(piece, ends_on_boundary)``; the caller consumes each piece (advancing
    ``consumed()``) and runs its model when the piece ends on ``boundary()``, the next
    scheduled sample count, which is read again for every piece. Being driven only by sample
    positions, the schedule is the same for any block sizes.
    """
    offset = 0
    while offset < samples.shape[0]:
        end = boundary()
        take = min(samples.shape[0] - offset, end - consumed())
        yield samples[offset : offset + take], consumed() + take == end
        offset += take
