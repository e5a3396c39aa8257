"""Basic Pitch's CNN computed one time column at a time (numpy only).

Each convolution is evaluated by *scattering*: when an input column arrives, one matrix product
gives its contribution to every output column its kernel touches (``kt`` of them), which are
added to running sums; an output column is final once its last input has arrived. Each layer
therefore costs exactly its per-frame multiply-adds, about 2.8 M for the whole CNN.

**The edge.** A layer with a time kernel of ``2p + 1`` finalises output column ``c - p`` when
input ``c`` arrives. Columns after that, up to the newest input, are *provisional*: computed
as if every later input column were zero, which is the graph's own 'same' padding at a
window's last frame. Provisional columns are recomputed at each edge from the running sums
plus the provisional inputs' contributions, never stored. So ``CnnStream.push`` returns, for
the newest ``depth`` columns, what the full graph would give on a window ending at the newest
feature column — the window engine's contract — at a fraction of its cost.

**Other threads.** A frame is a few milliseconds of short numpy calls, each releasing the GIL
and taking it back before a thread woken by the release can run, so a live audio callback
waiting for the GIL could wait for most of a frame (measured beside the default engine: p99
3.8 ms, up to 7). So between layers ``CnnStream`` yields the processor (``time.sleep(0)``)
whenever ``YIELD_EVERY_S`` has passed since it last did, bounding that wait.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from livepitch.model_weights import Array, CnnWeights, ConvWeights

YIELD_EVERY_S = 0.001
"""Longest stretch of CNN work between two yields of the processor [s]."""


def _relu(x: Array) -> Array:
    return np.maximum(x, 0.0)


def _sigmoid(x: Array) -> Array:
    return np.asarray(1.0 / (1.0 + np.exp(-x)), dtype=np.float32)


class ScatterConv:
    """One 'same' convolution over (time, frequency) on columns ``[bins_in, channels_in]``.

    ``step(column, newer)`` takes input column c and returns output column ``c - p`` (final,
    pre-activation, ``[bins_out, channels_out]``) and, given the provisional inputs after c,
    the output columns ``c - p + 1 ..`` up to the last of them, later inputs taken as zero.
    Patches are copied out of preallocated, padded buffers through fixed strided views.
    """

    def __init__(self, conv: ConvWeights) -> None:
        out_channels, in_channels, kernel_time, kernel_bins = conv.weight.shape
        self.radius = int(kernel_time - 1) // 2
        self._kernel_time = kernel_time
        self._kernel_bins = kernel_bins
        self._pad = conv.pad_bins
        self._stride = conv.stride_bins
        self._out_channels = out_channels
        self._in_channels = in_channels
        # rows ordered (frequency tap, input channel) like a patch; columns (time tap, output channel)
        self._matrix = np.ascontiguousarray(
            conv.weight.transpose(3, 1, 2, 0).reshape(kernel_bins * in_channels, kernel_time * out_channels)
        )
        self._bias = conv.bias.astype(np.float32)
        self._sums: Array | None = None
        self._buffers: dict[int, tuple[Array, Array, Array]] = {}

    def reset(self, bins_in: int) -> None:
        """Start with no inputs (running sums of zero)."""
        self._bins_in = bins_in
        self.bins_out = (bins_in + 2 * self._pad - self._kernel_bins) // self._stride + 1
        self._sums = np.zeros((self._kernel_time, self.bins_out, self._out_channels), dtype=np.float32)
        self._buffers = {}

    def _patch_buffers(self, n: int) -> tuple[Array, Array, Array]:
        """Padded input ``[n, bins, in]``, its patch view and the patch matrix, for n columns."""
        buffers = self._buffers.get(n)
        if buffers is None:
            padded = np.zeros((n, self._bins_in + 2 * self._pad, self._in_channels), dtype=np.float32)
            item = padded.itemsize
            width = self._kernel_bins * self._in_channels
            view = np.ndarray(
                (n, self.bins_out, width),
                np.float32,
                buffer=padded,
                strides=(padded.strides[0], self._stride * self._in_channels * item, item),
            )
            patches = np.empty((n, self.bins_out, width), dtype=np.float32)
            buffers = self._buffers[n] = (padded, view, patches)
        return buffers

    def _contributions(self, columns: Array) -> Array:
        """``[n, bins_in, in]`` -> ``[n, bins_out, kernel_time, out]``: tap j reaches output c + p - j."""
        n = columns.shape[0]
        padded, view, patches = self._patch_buffers(n)
        padded[:, self._pad : self._pad + self._bins_in] = columns
        np.copyto(patches, view)
        product = patches.reshape(n * self.bins_out, -1) @ self._matrix
        contributions: Array = product.reshape(n, self.bins_out, self._kernel_time, self._out_channels)
        return contributions

    def step(self, column: Array, newer: Array | None = None) -> tuple[Array, Array | None]:
        """Consume final input column c and return final output column c - p (pre-activation);
        with ``newer`` (the provisional inputs c + 1 .., ``[n, bins_in, in]``), also the
        provisional outputs c - p + 1 .. c + n, later inputs taken as zero. One matrix product
        serves both."""
        assert self._sums is not None, "reset first"
        inputs = column[None] if newer is None else np.concatenate([column[None], newer])
        contributions = self._contributions(inputs)  # [n + 1, bins_out, kernel_time, out]
        # sums[i] holds output column c - p + i; tap j of input c lands on i = 2p - j
        sums = self._sums
        sums[:-1] = sums[1:]
        sums[-1] = 0.0
        sums += contributions[0, :, ::-1].transpose(1, 0, 2)
        final: Array = sums[0] + self._bias
        if newer is None:
            return final, None
        p, n = self.radius, newer.shape[0]
        count = p + n  # outputs c - p + 1 .. c + n; tail[i] is output c - p + 1 + i
        tail = np.zeros((count, self.bins_out, self._out_channels), dtype=np.float32)
        carried = min(count, 2 * p)
        tail[:carried] = sums[1 : 1 + carried]
        for j in range(self._kernel_time):  # tap j of input c + 1 + q lands on i = q + 2p - j
            first = 2 * p - j
            length = min(n, count - first)
            if length > 0:
                tail[first : first + length] += contributions[1 : 1 + length, :, j]
        tail += self._bias
        return final, tail


class HarmonicConv(ScatterConv):
    """A ``ScatterConv`` for a 'same', stride-1 convolution over harmonic-stacked features.

    Channel h of a feature column holds the normalised CQT column ``y`` shifted by
    ``shifts[h]`` bins (``y[g + shifts[h]]`` at bin g, zero outside ``y``). For an output bin
    whose kernel lies inside the features, the channels' taps that read the same bin of ``y``
    add up, so one composite kernel over ``y`` (for contour_1: 176 taps instead of 8 x 39 =
    312) gives the same sums; the ``pad`` bins at either edge, where the features' own zero
    padding cuts the kernel, still use the patches. ``y`` is read back from the features (the
    unshifted channel, and the most shifted one above it), so callers pass features as before.
    """

    def __init__(self, conv: ConvWeights, shifts: tuple[int, ...], n_bins: int) -> None:
        super().__init__(conv)
        if self._stride != 1 or 2 * self._pad != self._kernel_bins - 1:
            raise ValueError("a harmonic convolution needs 'same' padding and stride 1")
        out_channels, _, kernel_time, kernel_bins = conv.weight.shape
        self._n_bins = n_bins
        self._unshifted = shifts.index(0)
        self._top = int(np.argmax(shifts))
        self._top_shift = shifts[self._top]
        self._first_offset = min(shifts) - self._pad  # where the composite kernel starts, in y bins
        width = max(shifts) + kernel_bins - 1 - self._pad - self._first_offset + 1
        composite = np.zeros((width, kernel_time, out_channels), dtype=np.float64)
        for channel, shift in enumerate(shifts):
            for tap in range(kernel_bins):
                composite[shift + tap - self._pad - self._first_offset] += conv.weight[:, channel, :, tap].T
        self._composite = composite.reshape(width, kernel_time * out_channels).astype(np.float32)
        self._width = width

    def reset(self, bins_in: int) -> None:
        super().reset(bins_in)
        if bins_in + self._top_shift < self._n_bins:
            raise ValueError("the features do not hold every bin of the column")
        self._interior = bins_in - 2 * self._pad  # output bins computed with the composite kernel
        self._y_buffers: dict[int, tuple[Array, Array]] = {}

    def _y_view(self, n: int) -> tuple[Array, Array]:
        """Zero-padded ``y`` ``[n, interior + width - 1]`` (index 0 is y bin ``pad + first_offset``)
        and its strided view ``[n, interior, width]``."""
        buffers = self._y_buffers.get(n)
        if buffers is None:
            padded = np.zeros((n, self._interior + self._width - 1), dtype=np.float32)
            item = padded.itemsize
            view = np.ndarray(
                (n, self._interior, self._width),
                np.float32,
                buffer=padded,
                strides=(padded.strides[0], item, item),
            )
            buffers = self._y_buffers[n] = (padded, view)
        return buffers

    def _contributions(self, columns: Array) -> Array:
        n = columns.shape[0]
        pad, bins_in = self._pad, self._bins_in
        padded_y, y_view = self._y_view(n)
        start = -(pad + self._first_offset)  # where y bin 0 sits in padded_y
        padded_y[:, start : start + bins_in] = columns[:, :, self._unshifted]
        above = self._n_bins - bins_in  # y bins past the features' range, from the top channel
        padded_y[:, start + bins_in : start + self._n_bins] = columns[
            :, bins_in - self._top_shift : bins_in - self._top_shift + above, self._top
        ]
        interior = (y_view.reshape(n * self._interior, self._width) @ self._composite).reshape(
            n, self._interior, -1
        )
        if pad == 0:
            out = interior
        else:
            padded, view, _ = self._patch_buffers(n)
            padded[:, pad : pad + bins_in] = columns
            edges = np.concatenate([view[:, :pad], view[:, bins_in - pad :]], axis=1)  # [n, 2 pad, width]
            edge_sums = (edges.reshape(n * 2 * pad, -1) @ self._matrix).reshape(n, 2 * pad, -1)
            out = np.concatenate([edge_sums[:, :pad], interior, edge_sums[:, pad:]], axis=1)
        contributions: Array = out.reshape(n, self.bins_out, self._kernel_time, self._out_channels)
        return contributions


@dataclass(frozen=True)
class CnnColumns:
    """Posteriors of the newest columns at one edge, oldest first (the last is the edge)."""

    note: Array
    onset: Array
    contour: Array


class CnnStream:
    """The whole CNN, fed one feature column ``[264, 8]`` at a time.

    ``push`` returns the posteriors of the newest ``depth`` columns (the pushed one last), as
    the graph computes them on a window whose last frame is the pushed column.
    """

    def __init__(
        self,
        weights: CnnWeights,
        n_feature_bins: int,
        depth: int,
        harmonics: tuple[tuple[int, ...], int] | None = None,
    ) -> None:
        """``harmonics``: the features' harmonic shifts and the CQT's bin count, if the first
        contour layer may use the composite kernel (``HarmonicConv``)."""
        self.depth = depth
        self._contour_1 = (
            ScatterConv(weights.contour_1)
            if harmonics is None
            else HarmonicConv(weights.contour_1, *harmonics)
        )
        self._contour_2 = ScatterConv(weights.contour_2)
        self._note_1 = ScatterConv(weights.note_1)
        self._note_2 = ScatterConv(weights.note_2)
        self._onset_1 = ScatterConv(weights.onset_1)
        self._onset_2 = ScatterConv(weights.onset_2)
        self._bins = n_feature_bins
        self._yielded_at = 0.0
        self.reset()

    @property
    def final_lag_frames(self) -> int:
        """How far the last final onset column lags the newest feature column (10)."""
        return (
            self._contour_1.radius
            + self._contour_2.radius
            + self._note_1.radius
            + self._note_2.radius
            + self._onset_2.radius
        )

    def reset(self) -> None:
        """No columns seen."""
        self._contour_1.reset(self._bins)
        self._contour_2.reset(self._bins)
        self._note_1.reset(self._bins)
        self._note_2.reset(self._note_1.bins_out)
        self._onset_1.reset(self._bins)
        self._onset_2.reset(self._note_1.bins_out)
        history = self.depth + self.final_lag_frames + 2
        self._contour_final: deque[Array] = deque(maxlen=history)  # [264, 1] after the sigmoid
        self._note_final: deque[Array] = deque(maxlen=history)  # [88, 1]
        self._onset_1_final: deque[Array] = deque(maxlen=history)  # relu'd, [88, 32]
        self._onset_final: deque[Array] = deque(maxlen=history)
        self._pending_onset_1: deque[Array] = deque()  # waiting for the note column it pairs with

    def push(self, features: Array, newer: Array | None = None, edge: bool = True) -> CnnColumns | None:
        """Consume final feature column c (``[264, 8]``) and the provisional columns after it
        (``newer``, ``[n, 264, 8]``, recomputed every time); return the posteriors of the newest
        ``depth`` columns, up to c + n (``None`` when ``edge`` is false: warming up with history)."""
        if edge and newer is None:
            newer = np.zeros((0, self._bins, features.shape[1]), np.float32)
        tails = newer if edge else None
        self._let_others_run()
        c1, c1_tail = self._contour_1.step(features, tails)
        self._let_others_run()
        contour, contour_tail = _activate(self._contour_2.step(_relu(c1), _relu_or_none(c1_tail)), _sigmoid)
        self._let_others_run()
        n1, n1_tail = self._note_1.step(contour, contour_tail)
        self._let_others_run()
        note, note_tail = _activate(self._note_2.step(_relu(n1), _relu_or_none(n1_tail)), _sigmoid)
        self._let_others_run()
        o1, o1_tail = _activate(self._onset_1.step(features, tails), _relu)
        self._contour_final.append(contour)
        self._note_final.append(note)
        self._pending_onset_1.append(o1)
        # onset_1 is final 2 columns behind the features, note 9: pair them by column
        lag = self._pending_lag()
        while len(self._pending_onset_1) > lag:
            self._pending_onset_1.popleft()
        onset_input = np.concatenate([note, self._pending_onset_1[0]], axis=1)
        onset_tail_input = None
        if note_tail is not None and o1_tail is not None:
            # the columns after onset_2's last final one: note provisional; onset_1 final from
            # the pending queue where it is, provisional after
            onset_1_cols = np.concatenate([np.stack(list(self._pending_onset_1)[1:]), o1_tail])
            onset_tail_input = np.concatenate([note_tail, onset_1_cols], axis=2)
        self._let_others_run()
        onset, onset_tail = _activate(self._onset_2.step(onset_input, onset_tail_input), _sigmoid)
        self._onset_final.append(onset)
        if not edge:
            return None
        assert contour_tail is not None and note_tail is not None and onset_tail is not None
        depth = self.depth
        return CnnColumns(
            note=_newest(self._note_final, note_tail, depth)[..., 0],
            onset=_newest(self._onset_final, onset_tail, depth)[..., 0],
            contour=_newest(self._contour_final, contour_tail, depth)[..., 0],
        )

    def _let_others_run(self) -> None:
        """Yield the processor if ``YIELD_EVERY_S`` passed since the last yield: releasing the
        GIL for a moment lets a thread waiting for it (the audio callback's) run."""
        now = time.perf_counter()
        if now - self._yielded_at >= YIELD_EVERY_S:
            time.sleep(0)
            self._yielded_at = time.perf_counter()

    def _pending_lag(self) -> int:
        """Columns between the newest final onset_1 column and the newest final note column, plus one."""
        note_lag = self._contour_1.radius + self._contour_2.radius + self._note_1.radius + self._note_2.radius
        return note_lag - self._onset_1.radius + 1


def _relu_or_none(x: Array | None) -> Array | None:
    return None if x is None else _relu(x)


def _activate(
    outputs: tuple[Array, Array | None], activation: Callable[[Array], Array]
) -> tuple[Array, Array | None]:
    final, tail = outputs
    return activation(final), None if tail is None else activation(tail)


def _newest(final: deque[Array], tail: Array, depth: int) -> Array:
    """The newest ``depth`` columns of final history followed by the provisional tail."""
    need = depth - tail.shape[0]
    if need <= 0:
        return tail[-depth:]
    history = list(final)[-need:]
    return np.concatenate([np.stack(history), tail]) if history else tail
