"""The newest stretch of the model-rate audio a worker fed its engine, for the next engine.

A reload that keeps the audio stream hands the new engine the audio the old one held back for
its lookahead (never judged), so a note starting there is not lost. Worker thread only, until
the worker has stopped.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


class RecentAudio:
    """The newest ``capacity_samples`` of a mono stream, in a preallocated circular buffer."""

    def __init__(self, capacity_samples: int) -> None:
        if capacity_samples < 1:
            raise ValueError("capacity_samples must be at least 1")
        self._buffer = np.zeros(capacity_samples, dtype=np.float32)
        self._end = 0  # where the next sample goes
        self._held = 0  # how many samples the buffer holds (at most its capacity)

    @property
    def held_samples(self) -> int:
        """Samples kept, at most the capacity."""
        return self._held

    def append(self, samples: npt.NDArray[np.float32]) -> None:
        """Add ``samples`` (mono) after the ones kept, forgetting the oldest beyond the capacity."""
        capacity = self._buffer.shape[0]
        count = samples.shape[0]
        if count >= capacity:
            self._buffer[:] = samples[count - capacity :]
            self._end, self._held = 0, capacity
            return
        first = min(count, capacity - self._end)
        self._buffer[self._end : self._end + first] = samples[:first]
        self._buffer[: count - first] = samples[first:]
        self._end = (self._end + count) % capacity
        self._held = min(capacity, self._held + count)

    def newest(self, count: int) -> npt.NDArray[np.float32]:
        """A copy of the newest ``count`` samples kept, oldest first (fewer if fewer are kept)."""
        count = max(0, min(count, self._held))
        start = self._end - count
        if start >= 0:
            newest: npt.NDArray[np.float32] = self._buffer[start : self._end].copy()
            return newest
        wrapped: npt.NDArray[np.float32] = np.concatenate([self._buffer[start:], self._buffer[: self._end]])
        return wrapped

    def clear(self) -> None:
        """Forget every sample (the stream jumped)."""
        self._end = self._held = 0
