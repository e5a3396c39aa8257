"""The graph's CQT computed incrementally: one log-power column per 256 samples (numpy only).

The Basic Pitch front end (nnAudio's CQT2010v2) runs one 256-tap kernel bank per octave, top
octave first, on a cascade of signals that each halve the rate with a 256-tap lowpass:
``x[o+1][n] = sum_k h[k] x[o][2n + k - 127]``, and octave ``o``'s column ``c`` is
``sum_k K[:, k] x[o][s_o c + k - 128]`` with stride ``s_o = 256 / 2**o``. This module keeps
every octave's signal as an endless stream on the absolute sample grid (sample 0 is the first
audio sample, earlier audio is silence) and computes each column once.

**The newest samples.** A column's kernel reaches ``128 * 2**o`` input samples each side, plus
the cascade's delays: ±6 ms at the top octave, ±3 s at the lowest. When a column is computed,
the audio after the newest sample does not exist yet. ``column`` fills it exactly as the window
engine's model window ending at the newest sample would: zeros beyond the audio in each
lowpass stage, then each octave's signal reflected at its end (the graph's own padding). So a
column computed with the newest sample at ``256 c + 68 + 256 d`` equals, in every octave
whose support ends before the window's start, the CQT of the window that publishes frame
``c`` with a lookahead of ``d`` frames. The engine decides ``d`` (its CQT lookahead).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from livepitch.geometry import FRAME_HOP_SAMPLES, WINDOW_SAMPLES
from livepitch.model_weights import Array, FrontEndWeights


class _Signal:
    """The final samples of one octave's signal, ``[start, end)`` on its own absolute grid."""

    def __init__(self, end: int, keep: int) -> None:
        self.keep = keep
        self.data = np.zeros(4 * keep, dtype=np.float32)
        self.filled = keep  # a history of silence
        self.end = end

    @property
    def start(self) -> int:
        return self.end - self.filled

    def append(self, samples: Array) -> None:
        n = samples.shape[0]
        if self.filled + n > self.data.shape[0]:
            kept = min(self.keep, self.filled)
            data = np.zeros(max(self.data.shape[0], 2 * (kept + n)), dtype=np.float32)
            data[:kept] = self.data[self.filled - kept : self.filled]
            self.data, self.filled = data, kept
        self.data[self.filled : self.filled + n] = samples
        self.filled += n
        self.end += n

    def get(self, first: int, last: int) -> Array:
        """Samples ``first .. last`` (inclusive; all final and kept)."""
        offset = self.filled - self.end
        assert first >= self.start and last < self.end, "sample not kept"
        return self.data[first + offset : last + 1 + offset]


class StreamingCqt:
    """Consumes 22050 Hz audio; computes the graph's log-power CQT columns on demand.

    Runs on the engine's owner thread (the daemon's worker); not thread-safe.
    ``max_lag_frames`` bounds how far behind the newest sample a requested column may be.
    """

    def __init__(self, weights: FrontEndWeights, max_lag_frames: int) -> None:
        self.weights = weights
        self._taps = int(weights.kernels.shape[1])
        self._reach = weights.kernel_pad_samples
        self._lp_pad = weights.lowpass_pad_samples
        self._max_lag_frames = max_lag_frames
        self._kernels_t = np.ascontiguousarray(weights.kernels.T, dtype=np.float32)
        self._lowpass = np.ascontiguousarray(weights.lowpass, dtype=np.float32)
        self._power_scale = (weights.bin_scale.astype(np.float64) ** 2).astype(np.float32)
        self._floor = np.float32(weights.log_floor)
        self._offsets = np.arange(-self._reach, self._taps - self._reach)
        self._gathers: dict[tuple[int, tuple[int, ...], int, int], npt.NDArray[np.intp]] = {}
        self.reset()

    def reset(self) -> None:
        """Forget all audio; the next sample pushed is sample 0."""
        self._signals: list[_Signal] = []
        end = 0
        for stride in self.weights.column_strides:
            keep = 2 * self._taps + stride * (self._max_lag_frames + 2) + self._reach + 64
            self._signals.append(_Signal(end, keep))
            end = self._next_final_end(end)

    def _next_final_end(self, end: int) -> int:
        """End of the next octave's final samples, given this octave's final end."""
        return (end - (self._taps - self._lp_pad)) // 2 + 1

    @property
    def consumed_samples(self) -> int:
        return self._signals[0].end

    def _decimate(self, source: Array, source_first: int, first: int, last: int) -> Array:
        """Lowpass-and-halve outputs ``first .. last`` from ``source`` (which starts at input
        sample ``source_first`` and covers every input they need)."""
        begin = 2 * first - self._lp_pad - source_first
        stop = 2 * last - self._lp_pad + self._taps - source_first
        return np.correlate(source[begin:stop], self._lowpass, "valid")[::2]

    def push(self, samples: Array) -> None:
        """Append audio and extend every octave's final samples."""
        self._signals[0].append(np.asarray(samples, dtype=np.float32))
        for lower, upper in zip(self._signals, self._signals[1:], strict=False):
            new_end = self._next_final_end(lower.end)
            if new_end > upper.end:
                first_in = 2 * upper.end - self._lp_pad
                source = lower.get(first_in, lower.end - 1)
                upper.append(self._decimate(source, first_in, upper.end, new_end - 1))

    def column(self, index: int) -> Array:
        """Log-power column ``index`` (``[n_bins]``, dB); see ``columns``."""
        column: Array = self.columns(np.array([index]))[0]
        return column

    def columns(self, indices: npt.NDArray[np.int64]) -> Array:
        """Log-power columns ``[len(indices), n_bins]`` (dB), padding the future like the graph.

        Every column is computed as the graph computes it in the window that ends at the
        newest sample (which must lie ``68 + 256 l`` samples after each column's centre,
        ``0 <= l <= max_lag_frames``): the octaves' provisional samples are derived once for
        that window and shared by all the columns.
        """
        w = self.weights
        edge = self.consumed_samples
        window_start = edge - WINDOW_SAMPLES
        assert window_start % (1 << (w.n_octaves - 1)) == 0, "edge off the frame grid"
        lowest, highest = int(indices.min()), int(indices.max())
        newest_lag, oldest_lag = edge - FRAME_HOP_SAMPLES * highest, edge - FRAME_HOP_SAMPLES * lowest
        assert newest_lag > 0 and oldest_lag <= FRAME_HOP_SAMPLES * (self._max_lag_frames + 1), (
            "column not kept"
        )
        n = indices.shape[0]
        segments = np.empty((n, w.n_octaves, self._taps), dtype=np.float32)
        key = tuple((indices - (edge >> 8)).tolist())  # the columns' places relative to the edge
        previous: tuple[Array, int] | None = None  # the previous octave as the window sees it, zero-padded
        for octave in range(w.n_octaves):
            signal, stride, last, first, stop = self._octave_span(octave, window_start, lowest)
            seen = np.zeros(stop - first, dtype=np.float32)  # samples first .., zeros after ``last``
            kept_last = min(last, signal.end - 1)
            seen[: kept_last - first + 1] = signal.get(first, kept_last)
            if kept_last < last:  # provisional: decimated from the previous octave, zeros after its end
                assert previous is not None
                source, source_first = previous
                seen[kept_last - first + 1 : last - first + 1] = self._decimate(
                    source, source_first, kept_last + 1, last
                )
            gather = self._gathers.get((octave, key, first - stride * (edge >> 8), last - first))
            if gather is None:
                gather = self._gather(stride, indices, first, last)
                self._gathers[(octave, key, first - stride * (edge >> 8), last - first)] = gather
            segments[:, octave] = seen[gather]
            previous = (seen, first)
        spectra = segments.reshape(n * w.n_octaves, self._taps) @ self._kernels_t  # [n * octaves, 2 * bins]
        half = w.bins_per_octave
        power = spectra[:, :half] ** 2 + spectra[:, half:] ** 2  # [n * octaves, bins_per_octave]
        stacked = power.reshape(n, w.n_octaves, half)[:, ::-1].reshape(n, -1)[:, -w.n_bins :]  # lowest first
        result: Array = (10.0 * np.log10(stacked * self._power_scale + self._floor)).astype(np.float32)
        return result

    def _octave_span(self, octave: int, window_start: int, lowest: int) -> tuple[_Signal, int, int, int, int]:
        """Octave ``octave``'s signal and stride, the window's last sample, and the span
        ``first .. stop - 1`` the columns and the next octave's provisional samples read."""
        w = self.weights
        signal, stride = self._signals[octave], w.column_strides[octave]
        last = (window_start >> octave) + w.octave_lengths[octave] - 1
        first = stride * lowest - self._reach
        stop = last + 1
        if octave + 1 < w.n_octaves:
            following = self._signals[octave + 1]
            first = min(first, 2 * following.end - self._lp_pad)
            next_last = (window_start >> (octave + 1)) + w.octave_lengths[octave + 1] - 1
            stop = max(stop, 2 * next_last - self._lp_pad + self._taps)
        return signal, stride, last, first, stop

    def _gather(
        self, stride: int, indices: npt.NDArray[np.int64], first: int, last: int
    ) -> npt.NDArray[np.intp]:
        """Where each column's kernel reads in ``seen``, reflected at ``last`` as the graph pads."""
        positions = stride * indices[:, None] + self._offsets[None, :]
        positions = np.where(positions > last, 2 * last - positions, positions)
        return np.asarray(positions - first, dtype=np.intp)
