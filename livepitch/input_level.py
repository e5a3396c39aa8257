"""The input's loudness on the frame grid, for the tracker's noise gate (numpy only).

The model normalises every window by its own loudest bin, so room noise or a preamp's hiss
alone looks like notes to it. The gate asks the audio itself: was anything loud enough near a
note's onset? Frame t's *block* is the 256 model-rate samples ``[256 t - 192, 256 t + 64)``,
complete once the audio reaches ``256 t + 64`` (before any engine publishes frame t). Its level
is ``10 log10(mean square)`` in dBFS (a full-scale square wave is 0 dB, a full-scale sine -3).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from livepitch.geometry import FRAME_HOP_SAMPLES

BLOCK_START_OFFSET_SAMPLES = -192
"""Frame t's block starts at ``256 t - 192`` and ends at ``256 t + 64`` [samples]."""

SILENCE_DB = -200.0
"""The level of digital silence (and of blocks before the stream) [dBFS]."""

LOOKBACK_FRAMES = 2
"""A frame's level also covers the two blocks before it (the attack may start there)."""

MAX_AHEAD_FRAMES = 16
"""A frame's level covers at most this many blocks after it (the longest lookahead plus a hop)."""


class FrameLevels:
    """Per-frame block levels of a stream, kept until the frames have been published.

    Runs on the engine's owner thread (the daemon's worker); not thread-safe.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """Forget all audio; the next sample is sample 0."""
        self._first_frame = 0  # frame of _levels_db[0]
        self._levels_db: list[float] = []  # complete blocks from _first_frame on
        self._filling_frame = 0  # the frame whose block is being filled
        self._block = np.zeros(FRAME_HOP_SAMPLES, dtype=np.float64)
        self._filled = -BLOCK_START_OFFSET_SAMPLES  # frame 0's block starts with silence

    def push(self, block: npt.NDArray[np.float32]) -> None:
        """Consume audio (mono float32 at 22050 Hz) after what came before.

        A block's level is computed once it is complete, from all its samples at once, so it
        is the same for any block sizes."""
        samples = np.asarray(block, dtype=np.float64).reshape(-1)
        offset = 0
        while offset < samples.shape[0]:
            take = min(samples.shape[0] - offset, FRAME_HOP_SAMPLES - self._filled)
            self._block[self._filled : self._filled + take] = samples[offset : offset + take]
            self._filled += take
            offset += take
            if self._filled == FRAME_HOP_SAMPLES:
                self._levels_db.append(_db(float(np.dot(self._block, self._block)) / FRAME_HOP_SAMPLES))
                self._filling_frame += 1
                self._filled = 0

    @property
    def newest_db(self) -> float:
        """The level of the newest complete block [dBFS] (for a level meter)."""
        return self._levels_db[-1] if self._levels_db else SILENCE_DB

    def level_db(self, frame_index: int, emitted_sample: int) -> float:
        """The loudest block from frame ``frame_index - 2`` up to the last one complete at
        ``emitted_sample`` (at most ``MAX_AHEAD_FRAMES`` after it) [dBFS]; blocks before the
        stream are silence."""
        newest = (emitted_sample - BLOCK_START_OFFSET_SAMPLES) // FRAME_HOP_SAMPLES - 1
        newest = min(newest, frame_index + MAX_AHEAD_FRAMES, self._filling_frame - 1)
        first = max(frame_index - LOOKBACK_FRAMES, self._first_frame)
        if newest < first:
            return SILENCE_DB
        window = self._levels_db[first - self._first_frame : newest - self._first_frame + 1]
        return max(window)

    def forget_before(self, frame_index: int) -> None:
        """Drop the blocks no frame from ``frame_index`` on needs."""
        drop = min(frame_index - LOOKBACK_FRAMES - self._first_frame, len(self._levels_db))
        if drop > 0:
            del self._levels_db[:drop]
            self._first_frame += drop


def _db(mean_square: float) -> float:
    return 10.0 * math.log10(mean_square) if mean_square > 1e-20 else SILENCE_DB
