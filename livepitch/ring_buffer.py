"""A preallocated single-producer / single-consumer ring of audio frames.

The producer is the audio callback (PortAudio's thread: livepitch/_capture_native.c, or
``write`` from a Python callback or a file-replay thread): it copies a block in and returns;
when the ring is full it drops the block and counts an overflow — no locks, no allocation, no
logging. The consumer is the worker thread (``read``). Each side only advances its own
counters, each an aligned int64 whose store is atomic, and the producer publishes frames by
advancing its count after copying them, so the two never need a lock.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

# Slots of ``AudioRing.counters``; livepitch/_capture_native.c uses the same indices.
COUNTER_WRITTEN = 0
"""Frames written, ever (producer)."""
COUNTER_READ = 1
"""Frames read or skipped, ever (consumer)."""
COUNTER_OVERFLOWS = 2
"""Blocks dropped because the ring was full (producer)."""
COUNTER_DROPPED = 3
"""Frames in those blocks (producer)."""
COUNTER_DEVICE_OVERFLOWS = 4
"""Blocks the device flagged as overflowed (the native callback; Python callbacks count their own)."""
COUNTER_DELIVERED = 5
"""Frames the native callback received, kept or dropped."""
COUNTER_LAST_CALLBACK_NS = 6
"""``time.monotonic_ns()`` when the producer last wrote or was called (producer)."""
COUNTER_SLOTS = 8


def _no_fence() -> None:
    """A Python producer holds the GIL to write, which orders its stores for the reader."""


class AudioRing:
    """Ring of ``capacity_frames`` frames of ``channels`` float32 samples at the device rate.

    ``frames`` and ``counters`` are plain numpy arrays so that a producer written in C (the
    native audio callback) can share them by address; each counter is an aligned int64 that
    only one side ever stores.
    """

    def __init__(self, capacity_frames: int, channels: int) -> None:
        if capacity_frames < 1 or channels < 1:
            raise ValueError("capacity_frames and channels must be >= 1")
        self.capacity_frames = capacity_frames
        self.channels = channels
        self.frames = np.zeros((capacity_frames, channels), dtype=np.float32)
        self.counters = np.zeros(COUNTER_SLOTS, dtype=np.int64)
        self.fence: Callable[[], None] = _no_fence
        """A memory fence around the reader's copy; a producer in C sets a real one."""
        self._dropped_taken = 0

    @property
    def overflows(self) -> int:
        """Blocks dropped because the ring was full (producer side)."""
        return int(self.counters[COUNTER_OVERFLOWS])

    @property
    def dropped_frames(self) -> int:
        """Frames in those blocks."""
        return int(self.counters[COUNTER_DROPPED])

    @property
    def last_callback_monotonic_s(self) -> float | None:
        """When the producer last wrote, or was called with audio (``time.monotonic()``), if ever."""
        at_ns = int(self.counters[COUNTER_LAST_CALLBACK_NS])
        return at_ns / 1e9 if at_ns else None

    @property
    def available_frames(self) -> int:
        """Frames written and not yet read."""
        counters = self.counters
        return int(counters[COUNTER_WRITTEN] - counters[COUNTER_READ])

    def write(self, block: npt.NDArray[np.float32]) -> bool:
        """Copy ``block`` (``[frames, channels]``) in; False (and an overflow) if it does not fit.

        Called on the producer thread only (a Python audio callback or a file replay).
        """
        counters = self.counters
        counters[COUNTER_LAST_CALLBACK_NS] = time.monotonic_ns()
        frames = block.shape[0]
        written = int(counters[COUNTER_WRITTEN])
        if frames > self.capacity_frames - (written - int(counters[COUNTER_READ])):
            counters[COUNTER_OVERFLOWS] += 1
            counters[COUNTER_DROPPED] += frames
            return False
        start = written % self.capacity_frames
        first = min(frames, self.capacity_frames - start)
        self.frames[start : start + first] = block[:first]
        if first < frames:
            self.frames[: frames - first] = block[first:]
        counters[COUNTER_WRITTEN] = written + frames
        return True

    def read(self, max_frames: int | None = None) -> npt.NDArray[np.float32]:
        """Take up to ``max_frames`` (all available by default) frames out; consumer thread only."""
        counters = self.counters
        read = int(counters[COUNTER_READ])
        frames = int(counters[COUNTER_WRITTEN]) - read
        self.fence()  # the frames counted are in place before they are copied
        if max_frames is not None:
            frames = min(frames, max_frames)
        start = read % self.capacity_frames
        first = min(frames, self.capacity_frames - start)
        out = np.empty((frames, self.channels), dtype=np.float32)
        out[:first] = self.frames[start : start + first]
        if first < frames:
            out[first:] = self.frames[: frames - first]
        self.fence()  # and copied before the producer may overwrite them
        counters[COUNTER_READ] = read + frames
        return out

    def take_dropped_frames(self) -> int:
        """Frames the producer dropped (overflows) since the last call; consumer thread."""
        dropped = int(self.counters[COUNTER_DROPPED])
        new, self._dropped_taken = dropped - self._dropped_taken, dropped
        return new

    @property
    def has_dropped(self) -> bool:
        """Whether frames were dropped that ``take_dropped_frames`` has not returned yet."""
        return int(self.counters[COUNTER_DROPPED]) != self._dropped_taken

    def skip(self, frames: int) -> int:
        """Discard up to ``frames`` unread frames (consumer thread); return how many."""
        counters = self.counters
        read = int(counters[COUNTER_READ])
        frames = min(frames, int(counters[COUNTER_WRITTEN]) - read)
        counters[COUNTER_READ] = read + frames
        return frames
