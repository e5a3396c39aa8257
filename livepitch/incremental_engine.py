"""The incremental engine: computes each CQT column and each CNN column once, publishes every frame.

Where the window engine re-runs the 2 s model window every hop, this engine keeps the state
of every stage and does only the new work per 256 samples (one frame):

1. ``StreamingCqt`` computes the new log-power columns; the graph's own padding stands in for
   the audio that has not arrived (see ``livepitch.streaming_cqt``).
2. The graph normalises each window's log-CQT by its minimum and maximum; here the columns are
   normalised by the minimum and maximum over the trailing 172 columns (2 s, the window's
   extent) as the engine computed them, the newest ones as just recomputed.
3. Batch norm and harmonic stacking (per column), then ``CnnStream`` adds the column to every
   layer's running sums and recomputes only the provisional columns near the edge.

Schedule (integers, model-rate samples). With a lookahead of ``k`` frames, frame t is
published when the audio reaches edge ``E = t + k``, i.e. ``256 E + 68`` samples: the window
engine's lookahead, always with a hop of one frame. At each edge, CQT column ``E - r`` becomes
final (``r`` = ``refresh_frames``) and columns ``E - r + 1 .. E`` are recomputed with the
graph's padding after the newest sample; the CNN reads frame t from its edge at column E,
later columns zero as at a window's end, exactly the window engine's right edge. Columns
before sample 0 are computed like any other (on silence before the stream, which the graph
sees as zeros). Every frame sees the same audio whatever the block sizes, so every block size
gives identical frames.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import numpy.typing as npt

from livepitch.blas_threads import one_blas_thread
from livepitch.frames import Frame, cut_at_boundaries, end_preview_at
from livepitch.geometry import FRAME_HOP_SAMPLES, WINDOW_FRAMES
from livepitch.model_weights import Array, FrontEndWeights, IncrementalWeights
from livepitch.streaming_cnn import YIELD_EVERY_S, CnnStream
from livepitch.streaming_cqt import StreamingCqt
from livepitch.window_engine import MAX_LOOKAHEAD_FRAMES, lookahead_samples_for_frames

MAX_REFRESH_FRAMES = 40
"""Most CQT columns recomputed per hop (each costs about a tenth of a millisecond)."""

PRE_ROLL_FRAMES = 16
"""Silent feature columns fed to the CNN at reset, so frame 0 has silence before it (>= 11)."""


class FeatureColumns:
    """Log-CQT columns -> CNN input columns ``[264, 8]``: min/max normalisation over the last
    ``window_frames`` final columns and the provisional ones after them, batch norm, harmonic
    stacking."""

    def __init__(self, weights: FrontEndWeights, window_frames: int = WINDOW_FRAMES) -> None:
        self._w = weights
        self._window_frames = window_frames
        self.silence_db = float(10.0 * np.log10(np.float32(weights.log_floor)))
        self.reset()

    def reset(self) -> None:
        """Trailing window of silence."""
        self.last_range_db = (self.silence_db, self.silence_db)  # the last push's min and max [dB]
        self._minima: deque[float] = deque(
            [self.silence_db] * self._window_frames, maxlen=self._window_frames
        )
        self._maxima: deque[float] = deque(
            [self.silence_db] * self._window_frames, maxlen=self._window_frames
        )

    def push(self, log_column: Array, newer: Array) -> tuple[Array, Array]:
        """Normalise final ``log_column`` and the provisional columns after it (``newer``,
        ``[n, bins]``, not remembered) by the trailing window up to the newest; return the
        features ``[264, 8]`` and ``[n, 264, 8]``."""
        self._minima.append(float(log_column.min()))
        self._maxima.append(float(log_column.max()))
        low, high = min(self._minima), max(self._maxima)
        if newer.shape[0]:
            low, high = min(low, float(newer.min())), max(high, float(newer.max()))
        self.last_range_db = (low, high)
        span = high - low
        scale = np.float32(1.0 / span) if span != 0.0 else np.float32(0.0)
        columns = np.concatenate([log_column[None], newer])
        stacked = self.stack_many((columns - np.float32(low)) * scale)
        return stacked[0], stacked[1:]

    def stack_many(self, normalised: Array) -> Array:
        """Batch norm and harmonic stacking of normalised columns ``[n, bins]`` -> ``[n, 264, 8]``."""
        w = self._w
        scaled = normalised * np.float32(w.batch_norm_scale) + np.float32(w.batch_norm_offset)
        n_columns, n_bins = scaled.shape
        out = np.zeros((n_columns, w.n_feature_bins, len(w.harmonic_shifts)), dtype=np.float32)
        for channel, shift in enumerate(w.harmonic_shifts):
            if shift >= 0:
                source = scaled[:, shift : shift + w.n_feature_bins]
                out[:, : source.shape[1], channel] = source
            else:
                source = scaled[:, : min(n_bins, w.n_feature_bins + shift)]
                out[:, -shift : -shift + source.shape[1], channel] = source
        return out

    def silence(self) -> Array:
        """The features of a silent column (normalised to 0, as the graph does)."""
        column: Array = self.stack_many(np.zeros((1, self._w.n_bins), dtype=np.float32))[0]
        return column


class IncrementalEngine:
    """A ``FrameEngine`` that computes only the new CQT and CNN columns, one frame per hop.

    Runs on the worker thread (the one calling ``push``/``flush``); not thread-safe.
    """

    hop_frames = 1

    def __init__(self, weights: IncrementalWeights, lookahead_frames: int, refresh_frames: int) -> None:
        if not 0 <= lookahead_frames <= MAX_LOOKAHEAD_FRAMES:
            raise ValueError(f"lookahead_frames must be 0..{MAX_LOOKAHEAD_FRAMES}")
        if not 0 <= refresh_frames <= MAX_REFRESH_FRAMES:
            raise ValueError(f"refresh_frames must be 0..{MAX_REFRESH_FRAMES}")
        self.lookahead_frames = lookahead_frames
        self.refresh_frames = refresh_frames
        self._weights = weights
        self._cqt = StreamingCqt(weights.front_end, refresh_frames)
        # the final columns E-171 .. E-r; the r newer ones join at every edge
        self._features = FeatureColumns(weights.front_end, WINDOW_FRAMES - refresh_frames)
        front = weights.front_end
        self._cnn = CnnStream(
            weights.cnn,
            front.n_feature_bins,
            lookahead_frames + 1,
            (tuple(front.harmonic_shifts), front.n_bins),
        )
        self.reset()

    @property
    def lookahead_samples(self) -> int:
        """Minimum audio after a published frame's centre [samples]."""
        return lookahead_samples_for_frames(self.lookahead_frames)

    @property
    def consumed_samples(self) -> int:
        """Samples consumed so far."""
        return self._consumed

    def reset(self) -> None:
        """Forget all audio; the next sample pushed is sample 0."""
        with one_blas_thread():
            self._reset()

    def _reset(self) -> None:
        self._cqt.reset()
        self._features.reset()
        self._cnn.reset()
        silence = self._features.silence()
        for _ in range(PRE_ROLL_FRAMES):
            self._cnn.push(silence, edge=False)
        self._consumed = 0
        self._next_edge = 0  # edge E: the audio reaches 256 E + 68
        self._flushed = False

    def warm_up(self) -> None:
        """Run every stage once on silence in a scratch engine (this one's state untouched)."""
        scratch = IncrementalEngine(self._weights, self.lookahead_frames, self.refresh_frames)
        scratch.push(np.zeros(FRAME_HOP_SAMPLES * (self.lookahead_frames + 2), dtype=np.float32))

    def share_gil(self, promptly: bool) -> None:
        """Yield the processor between CNN layers (every ``YIELD_EVERY_S``) only if another
        Python thread needs the GIL promptly (the default: yield); the yields cost about 8 %."""
        self._cnn.yield_every_s = YIELD_EVERY_S if promptly else None

    def _next_edge_sample(self) -> int:
        return self._edge_sample(self._next_edge)

    def _edge_sample(self, edge: int) -> int:
        return lookahead_samples_for_frames(edge)

    def push(self, block: npt.NDArray[np.float32]) -> list[Frame]:
        """Consume ``block`` (mono float32 at 22050 Hz); return newly publishable frames."""
        with one_blas_thread():  # (numpy's BLAS on more threads stalls on a busy machine)
            return self._push(block)

    def _push(self, block: npt.NDArray[np.float32]) -> list[Frame]:
        if self._flushed:
            raise RuntimeError("the stream has ended (flush); reset() before pushing more audio")
        samples = np.asarray(block, dtype=np.float32).reshape(-1)
        frames: list[Frame] = []
        for piece, at_edge in cut_at_boundaries(samples, lambda: self._consumed, self._next_edge_sample):
            self._cqt.push(piece)
            self._consumed += piece.shape[0]
            if at_edge:
                frame = self._at_edge(self._consumed)
                if frame is not None:
                    frames.append(frame)
        return frames

    def _at_edge(self, emitted_sample: int) -> Frame | None:
        """The audio reached edge E: column E - refresh becomes final, the newer ones are
        recomputed, and frame E - lookahead is published."""
        edge = self._next_edge
        self._next_edge += 1
        final = edge - self.refresh_frames
        log_columns = self._cqt.columns(np.arange(final, edge + 1))
        features, newer_features = self._features.push(log_columns[0], log_columns[1:])
        columns = self._cnn.push(features, newer_features)
        assert columns is not None
        t = edge - self.lookahead_frames
        if t < 0:
            return None
        return Frame(
            index=t,
            centre_sample=FRAME_HOP_SAMPLES * t,
            emitted_sample=emitted_sample,
            note=columns.note[0],
            onset=columns.onset[0],
            contour=columns.contour[0],
            preview_note=columns.note[1:],
            preview_onset=columns.onset[1:],
        )

    def flush(self) -> list[Frame]:
        """Publish the frames whose centres lie inside the audio, padding the future with zeros.

        The stream then ends: ``push`` needs a ``reset`` first; ``flush`` again returns nothing.
        """
        with one_blas_thread():
            return self._flush()

    def _flush(self) -> list[Frame]:
        end_sample = self._consumed
        n_frames = math.ceil(end_sample / FRAME_HOP_SAMPLES)
        frames: list[Frame] = []
        self._flushed = True
        while self._next_edge - self.lookahead_frames < n_frames:
            edge_sample = self._edge_sample(self._next_edge)
            self._cqt.push(np.zeros(edge_sample - self._consumed, dtype=np.float32))
            self._consumed = edge_sample
            frame = self._at_edge(end_sample)
            if frame is not None and frame.index < n_frames:
                frames.append(end_preview_at(frame, n_frames))
        self._consumed = end_sample
        return frames
