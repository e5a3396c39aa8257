"""A preallocated single-producer / single-consumer ring of audio frames.

The producer is the audio callback (PortAudio's thread, or a file-replay thread): ``write``
copies a block in and returns; when the ring is full it drops the block and counts an
overflow — no locks, no allocation, no logging. The consumer is the worker thread
(``read``). Each side only advances its own counter, and a Python int store is atomic, so
the two never need a lock.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


class AudioRing:
    """Ring of ``capacity_frames`` frames of ``channels`` float32 samples at the device rate."""

    def __init__(self, capacity_frames: int, channels: int) -> None:
        if capacity_frames < 1 or channels < 1:
            raise ValueError("capacity_frames and channels must be >= 1")
        self.capacity_frames = capacity_frames
        self.channels = channels
        self._buffer = np.zeros((capacity_frames, channels), dtype=np.float32)
        self._written = 0  # total frames written; advanced only by the producer
        self._read = 0  # total frames read; advanced only by the consumer
        self.overflows = 0
        """Blocks dropped because the ring was full (producer side)."""
        self.dropped_frames = 0
        """Frames in those blocks."""

    @property
    def available_frames(self) -> int:
        """Frames written and not yet read."""
        return self._written - self._read

    def write(self, block: npt.NDArray[np.float32]) -> bool:
        """Copy ``block`` (``[frames, channels]``) in; False (and an overflow) if it does not fit.

        Called on the producer thread only (the audio callback).
        """
        frames = block.shape[0]
        if frames > self.capacity_frames - (self._written - self._read):
            self.overflows += 1
            self.dropped_frames += frames
            return False
        start = self._written % self.capacity_frames
        first = min(frames, self.capacity_frames - start)
        self._buffer[start : start + first] = block[:first]
        if first < frames:
            self._buffer[: frames - first] = block[first:]
        self._written += frames
        return True

    def read(self, max_frames: int | None = None) -> npt.NDArray[np.float32]:
        """Take up to ``max_frames`` (all available by default) frames out; consumer thread only."""
        frames = self._written - self._read
        if max_frames is not None:
            frames = min(frames, max_frames)
        start = self._read % self.capacity_frames
        first = min(frames, self.capacity_frames - start)
        out = np.empty((frames, self.channels), dtype=np.float32)
        out[:first] = self._buffer[start : start + first]
        if first < frames:
            out[first:] = self._buffer[: frames - first]
        self._read += frames
        return out

    def skip(self, frames: int) -> int:
        """Discard up to ``frames`` unread frames (consumer thread); return how many."""
        frames = min(frames, self._written - self._read)
        self._read += frames
        return frames
