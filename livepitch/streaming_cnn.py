"""Basic Pitch's CNN computed one time column at a time (numpy only).

Each convolution is evaluated by *scattering*: when an input column arrives, one matrix product
gives its contribution to every output column its kernel touches (``kt`` of them); those of
the last ``kt - 1`` final inputs are kept, and an output column is the sum of the ``kt``
contributions it receives, final once its last input has arrived. Each layer therefore costs
its per-frame multiply-adds, about 2.2 M for the whole CNN.

**The edge.** A layer with a time kernel of ``2p + 1`` finalises output column ``c - p`` when
input ``c`` arrives. Columns after that, up to the newest input, are *provisional*: computed
as if every later input column were zero, which is the graph's own 'same' padding at a
window's last frame. Provisional columns are recomputed at each edge from the kept
contributions plus the provisional inputs', never stored. So ``CnnStream.push`` returns, for
the newest ``depth`` columns, what the full graph would give on a window ending at the newest
feature column — the window engine's contract — at a fraction of its cost.

**Other threads.** A frame is a few milliseconds of short numpy calls, each releasing the GIL
and taking it back before a thread woken by the release can run, so a Python audio callback
(``--audio-callback python``, or where the C one was not built) waiting for the GIL could
wait for most of a frame (measured beside the default engine: p99
3.8 ms, up to 7). So between layers ``CnnStream`` yields the processor (``time.sleep(0)``)
whenever ``yield_every_s`` (by default ``YIELD_EVERY_S``) has passed since it last did,
bounding that wait. The yields cost about 8 % of the engine's CPU, so the daemon turns them
off (``None``) when its audio callback is the C one, which never waits for the GIL.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass

import numpy as np

from livepitch.model_weights import Array, CnnWeights, ConvWeights

YIELD_EVERY_S = 0.001
"""Longest stretch of CNN work between two yields of the processor [s]."""


def _relu(x: Array) -> Array:
    return np.maximum(x, 0.0)


def _sigmoid(x: Array) -> Array:
    return np.asarray(1.0 / (1.0 + np.exp(-x)), dtype=np.float32)


class _ConvShape:
    """A 'same' convolution's geometry: taps, padding and stride along frequency, channels."""

    def __init__(self, conv: ConvWeights) -> None:
        out_channels, in_channels, kernel_time, kernel_bins = conv.weight.shape
        self.radius = int(kernel_time - 1) // 2
        self._kernel_time = kernel_time
        self._kernel_bins = kernel_bins
        self._pad = conv.pad_bins
        self._stride = conv.stride_bins
        self._out_channels = out_channels
        self._in_channels = in_channels
        self._bias = conv.bias.astype(np.float32)

    def _bins_out(self, bins_in: int) -> int:
        return int((bins_in + 2 * self._pad - self._kernel_bins) // self._stride + 1)


class ScatterConv(_ConvShape):
    """One 'same' convolution over (time, frequency) on columns ``[bins_in, channels_in]``.

    ``step(inputs)`` takes final input column c followed by ``n`` provisional ones (``[1 + n,
    bins_in, in]``) and returns output columns ``c - p .. c + n`` (pre-activation, ``[1 + p +
    n, bins_out, out]``): the first final, the rest provisional (later inputs taken as zero).
    One matrix product gives every input's contribution to the ``kt`` output columns its kernel
    touches; the contributions of the last ``2p`` final inputs are kept, and each output column
    is the sum along a diagonal of (input, tap), read through a strided view.
    """

    def __init__(self, conv: ConvWeights) -> None:
        super().__init__(conv)
        kernel_time, kernel_bins = self._kernel_time, self._kernel_bins
        # rows ordered (frequency tap, input channel) like a patch; columns (time tap, output channel)
        self._matrix = np.ascontiguousarray(
            conv.weight.transpose(3, 1, 2, 0).reshape(
                kernel_bins * self._in_channels, kernel_time * self._out_channels
            )
        )
        self._history: Array | None = None
        self._buffers: dict[int, tuple[Array, Array, Array]] = {}
        self._diagonals: dict[int, tuple[Array, Array, Array, Array]] = {}

    def reset(self, bins_in: int) -> None:
        """Start with no inputs (every earlier contribution zero)."""
        self._bins_in = bins_in
        self.bins_out = self._bins_out(bins_in)
        self._history = np.zeros(
            (2 * self.radius, self.bins_out, self._kernel_time, self._out_channels), dtype=np.float32
        )
        self._buffers = {}
        self._diagonals = {}

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

    def _contributions(self, columns: Array, out: Array) -> None:
        """``[n, bins_in, in]`` -> ``out`` ``[n * bins_out, kernel_time * out]``: tap j of input
        q reaches output q + p - j."""
        n = columns.shape[0]
        padded, view, patches = self._patch_buffers(n)
        padded[:, self._pad : self._pad + self._bins_in] = columns
        np.copyto(patches, view)
        np.matmul(patches.reshape(n * self.bins_out, -1), self._matrix, out=out)

    def _diagonal_buffers(self, n: int) -> tuple[Array, Array, Array, Array]:
        """For ``n`` provisional inputs: the contributions of inputs c - 2p .. c + n + p (the
        last p zero) ``[3p + 1 + n, bins_out, kt, out]``, the rows the product fills, the
        diagonal view ``[1 + p + n, kt, bins_out, out]`` (output k, tap j: input k + j) and
        the outputs."""
        buffers = self._diagonals.get(n)
        if buffers is None:
            p, kt = self.radius, self._kernel_time
            count = 1 + p + n
            held = np.zeros((3 * p + 1 + n, self.bins_out, kt, self._out_channels), dtype=np.float32)
            rows = held[2 * p : 2 * p + 1 + n].reshape((1 + n) * self.bins_out, kt * self._out_channels)
            s_input, s_bin, s_tap, s_out = held.strides
            diagonals = np.lib.stride_tricks.as_strided(
                held,
                (count, kt, self.bins_out, self._out_channels),
                (s_input, s_input + s_tap, s_bin, s_out),
                writeable=False,
            )
            outputs = np.empty((count, self.bins_out, self._out_channels), dtype=np.float32)
            buffers = self._diagonals[n] = (held, rows, diagonals, outputs)
        return buffers

    def step(self, inputs: Array, provisional: bool = True) -> Array:
        """Consume final input column c and the provisional ones after it (``inputs``, ``[1 + n,
        bins_in, in]``); return output columns c - p .. c + n (``[1 + p + n, bins_out, out]``,
        pre-activation), or only the final one c - p (``[1, ...]``) if not ``provisional``.

        Returns a buffer that the next call with the same ``n`` overwrites."""
        history = self._history
        assert history is not None, "reset first"
        n = inputs.shape[0] - 1
        held, rows, diagonals, outputs = self._diagonal_buffers(n)
        p = self.radius
        held[: 2 * p] = history
        self._contributions(inputs, rows)
        history[...] = held[1 : 2 * p + 1]  # the last 2p final inputs: c - 2p + 1 .. c
        count = outputs.shape[0] if provisional else 1
        result: Array = outputs[:count]
        np.add(diagonals[:count, 0], self._bias, out=result)
        for tap in range(1, self._kernel_time):
            result += diagonals[:count, tap]
        return result


class GatherConv(_ConvShape):
    """A 'same' convolution with ``ScatterConv.step``'s contract, each output column gathered
    from the inputs its kernel reads (one product with every time and frequency tap as a row).

    It keeps the last ``2p`` final inputs instead of their contributions, so where a column's
    patch is narrow and the outputs many (note_1: 1 input channel, 7 x 7 taps, 32 outputs) it
    reads 49 values per output bin where scattering would write and then sum 7 x 32
    contributions per input bin: 0.14 ms a frame against 0.26 (docs/incremental-engine.md).
    """

    def __init__(self, conv: ConvWeights) -> None:
        super().__init__(conv)
        # rows ordered (time tap, frequency tap, input channel), like a patch; columns the outputs
        rows = self._kernel_time * self._kernel_bins * self._in_channels
        self._matrix = np.ascontiguousarray(
            conv.weight.transpose(2, 3, 1, 0).reshape(rows, self._out_channels)
        )
        self._history: Array | None = None
        self._buffers: dict[int, tuple[Array, Array, Array, Array]] = {}

    def reset(self, bins_in: int) -> None:
        """Start with no inputs (every earlier input zero)."""
        self._bins_in = bins_in
        self.bins_out = self._bins_out(bins_in)
        self._history = np.zeros(
            (2 * self.radius, bins_in + 2 * self._pad, self._in_channels), dtype=np.float32
        )
        self._buffers = {}

    def _step_buffers(self, n: int) -> tuple[Array, Array, Array, Array]:
        """For ``n`` provisional inputs: the zero-padded inputs c - 2p .. c + n + p (the last p
        zero) ``[3p + 1 + n, padded bins, in]``, the patch view ``[1 + p + n, bins_out, kt, kf
        * in]`` (output k, tap j: input k + j), the patches and the outputs."""
        buffers = self._buffers.get(n)
        if buffers is None:
            p = self.radius
            count = 1 + p + n
            padded = np.zeros(
                (3 * p + 1 + n, self._bins_in + 2 * self._pad, self._in_channels), dtype=np.float32
            )
            s_input, s_bin, s_channel = padded.strides
            width = self._kernel_bins * self._in_channels
            view = np.lib.stride_tricks.as_strided(
                padded,
                (count, self.bins_out, self._kernel_time, width),
                (s_input, self._stride * s_bin, s_input, s_channel),
                writeable=False,
            )
            patches = np.empty((count, self.bins_out, self._kernel_time, width), dtype=np.float32)
            outputs = np.empty((count, self.bins_out, self._out_channels), dtype=np.float32)
            buffers = self._buffers[n] = (padded, view, patches, outputs)
        return buffers

    def step(self, inputs: Array, provisional: bool = True) -> Array:
        """As ``ScatterConv.step``: final input c and ``n`` provisional ones in, output columns
        c - p .. c + n (or only c - p) out, pre-activation, in a buffer the next call reuses."""
        history = self._history
        assert history is not None, "reset first"
        n = inputs.shape[0] - 1
        p, pad = self.radius, self._pad
        padded, view, patches, outputs = self._step_buffers(n)
        padded[: 2 * p] = history
        padded[2 * p : 2 * p + 1 + n, pad : pad + self._bins_in] = inputs
        history[...] = padded[1 : 2 * p + 1]  # the last 2p final inputs: c - 2p + 1 .. c
        count = outputs.shape[0] if provisional else 1
        np.copyto(patches[:count], view[:count])
        result: Array = outputs[:count]
        rows = count * self.bins_out
        np.matmul(patches[:count].reshape(rows, -1), self._matrix, out=result.reshape(rows, -1))
        result += self._bias
        return result


class HarmonicConv(ScatterConv):
    """A ``ScatterConv`` for a 'same', stride-1 convolution over harmonic-stacked features.

    Channel h of a feature column holds the normalised CQT column ``y`` shifted by
    ``shifts[h]`` bins (``y[g + shifts[h]]`` at bin g, zero outside ``y``). For an output bin
    whose kernel lies inside the features, the channels' taps that read the same bin of ``y``
    add up, so one composite kernel over ``y`` (for contour_1: 176 taps instead of 8 x 39 =
    312) gives the same sums; the ``pad`` bins at either edge, where the features' own zero
    padding cuts the kernel, still use the patches. ``y`` is read back from the features (the
    unshifted channel, and the most shifted one above it), so callers pass features as before.

    The composite kernel is applied to blocks of ``BLOCK_BINS`` output bins at once: one row
    of ``y`` per block (``BLOCK_BINS + width - 1`` bins) times a banded matrix holding the
    kernel once per output bin of the block. That copies ``y`` once instead of once per tap
    (the patches' 176), for 4 % more multiply-adds on zeros: 0.12 ms a frame instead of 0.21.
    """

    BLOCK_BINS = 8

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
        # banded: row u of a block's y, column (i, k): the composite's tap u - i for output bin i
        block, columns = self.BLOCK_BINS, kernel_time * out_channels
        banded = np.zeros((block + width - 1, block, columns), dtype=np.float32)
        for i in range(block):
            banded[i : i + width, i] = self._composite
        self._banded = banded.reshape(block + width - 1, block * columns)

    def reset(self, bins_in: int) -> None:
        super().reset(bins_in)
        if bins_in + self._top_shift < self._n_bins:
            raise ValueError("the features do not hold every bin of the column")
        self._interior = bins_in - 2 * self._pad  # output bins computed with the composite kernel
        self._y_buffers: dict[int, tuple[Array, Array, Array]] = {}

    def _y_view(self, n: int) -> tuple[Array, Array, Array]:
        """Zero-padded ``y`` ``[n, ...]`` (index 0 is y bin ``pad + first_offset``), its blocks
        ``[n, blocks, BLOCK_BINS + width - 1]`` (a strided view) and the blocks' products
        ``[n * blocks, BLOCK_BINS * kt * out]``."""
        buffers = self._y_buffers.get(n)
        if buffers is None:
            block = self.BLOCK_BINS
            n_blocks = -(-self._interior // block)
            span = block + self._width - 1
            padded = np.zeros((n, (n_blocks - 1) * block + span), dtype=np.float32)
            item = padded.itemsize
            blocks = np.ndarray(
                (n, n_blocks, span),
                np.float32,
                buffer=padded,
                strides=(padded.strides[0], block * item, item),
            )
            products = np.empty((n * n_blocks, self._banded.shape[1]), dtype=np.float32)
            buffers = self._y_buffers[n] = (padded, blocks, products)
        return buffers

    def _contributions(self, columns: Array, out: Array) -> None:
        n = columns.shape[0]
        pad, bins_in = self._pad, self._bins_in
        padded_y, blocks, products = self._y_view(n)
        start = -(pad + self._first_offset)  # where y bin 0 sits in padded_y
        padded_y[:, start : start + bins_in] = columns[:, :, self._unshifted]
        above = self._n_bins - bins_in  # y bins past the features' range, from the top channel
        padded_y[:, start + bins_in : start + self._n_bins] = columns[
            :, bins_in - self._top_shift : bins_in - self._top_shift + above, self._top
        ]
        by_column = out.reshape(n, self.bins_out, -1)
        np.matmul(blocks.reshape(-1, blocks.shape[2]), self._banded, out=products)
        by_column[:, pad : pad + self._interior] = products.reshape(n, -1, by_column.shape[2])[
            :, : self._interior
        ]
        if pad == 0:
            return
        padded, view, _ = self._patch_buffers(n)
        padded[:, pad : pad + bins_in] = columns
        edges = np.concatenate([view[:, :pad], view[:, bins_in - pad :]], axis=1)  # [n, 2 pad, width]
        edge_sums = (edges.reshape(n * 2 * pad, -1) @ self._matrix).reshape(n, 2 * pad, -1)
        by_column[:, :pad] = edge_sums[:, :pad]
        by_column[:, pad + self._interior :] = edge_sums[:, pad:]


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
        self._note_1: ScatterConv | GatherConv = GatherConv(weights.note_1)  # either gives the same columns
        self._note_2 = ScatterConv(weights.note_2)
        self._onset_1 = ScatterConv(weights.onset_1)
        self._onset_2 = ScatterConv(weights.onset_2)
        self._bins = n_feature_bins
        self.yield_every_s: float | None = YIELD_EVERY_S
        """Longest stretch of work between two yields of the processor [s]; None: never yield."""
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
        self._onset_final: deque[Array] = deque(maxlen=history)
        self._pending_onset_1: deque[Array] = deque()  # waiting for the note column it pairs with

    def push(self, features: Array, newer: Array | None = None, edge: bool = True) -> CnnColumns | None:
        """Consume final feature column c (``[264, 8]``) and the provisional columns after it
        (``newer``, ``[n, 264, 8]``, recomputed every time); return the posteriors of the newest
        ``depth`` columns, up to c + n (``None`` when ``edge`` is false: warming up with history)."""
        if edge and newer is not None and newer.shape[0]:
            inputs = np.concatenate([features[None], newer])
        else:
            inputs = features[None]
        # each layer returns its final column first, then (at an edge) the provisional ones
        self._let_others_run()
        c1 = _relu(self._contour_1.step(inputs, edge))
        self._let_others_run()
        contour = _sigmoid(self._contour_2.step(c1, edge))
        self._let_others_run()
        n1 = _relu(self._note_1.step(contour, edge))
        self._let_others_run()
        note = _sigmoid(self._note_2.step(n1, edge))
        self._let_others_run()
        o1 = _relu(self._onset_1.step(inputs, edge))
        self._contour_final.append(contour[0])
        self._note_final.append(note[0])
        # onset_1 is final 2 columns behind the features, note 9: pair them by column
        pending = self._pending_onset_1
        pending.append(o1[0])
        while len(pending) > self._pending_lag():
            pending.popleft()
        # at an edge, note's provisional columns pair with onset_1's final ones where the
        # pending queue holds them, and its provisional ones after
        onset_1 = np.concatenate([np.stack(pending), o1[1:]]) if edge else pending[0][None]
        self._let_others_run()
        onset = _sigmoid(self._onset_2.step(np.concatenate([note, onset_1], axis=2), edge))
        self._onset_final.append(onset[0])
        if not edge:
            return None
        depth = self.depth
        return CnnColumns(
            note=_newest(self._note_final, note[1:], depth)[..., 0],
            onset=_newest(self._onset_final, onset[1:], depth)[..., 0],
            contour=_newest(self._contour_final, contour[1:], depth)[..., 0],
        )

    def _let_others_run(self) -> None:
        """Yield the processor if ``yield_every_s`` passed since the last yield: releasing the
        GIL for a moment lets a thread waiting for it (a Python audio callback's) run."""
        every_s = self.yield_every_s
        if every_s is None:
            return
        now = time.perf_counter()
        if now - self._yielded_at >= every_s:
            time.sleep(0)
            self._yielded_at = time.perf_counter()

    def _pending_lag(self) -> int:
        """Columns between the newest final onset_1 column and the newest final note column, plus one."""
        note_lag = self._contour_1.radius + self._contour_2.radius + self._note_1.radius + self._note_2.radius
        return note_lag - self._onset_1.radius + 1


def _newest(final: deque[Array], tail: Array, depth: int) -> Array:
    """The newest ``depth`` columns of final history followed by the provisional tail."""
    need = depth - tail.shape[0]
    if need <= 0:
        return tail[-depth:]
    history = list(final)[-need:]
    return np.concatenate([np.stack(history), tail]) if history else tail
