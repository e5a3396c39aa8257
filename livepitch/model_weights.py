"""The Basic Pitch graph's constants as numpy arrays, for the incremental engine (numpy only).

``livepitch.model_graph.read_incremental_weights`` fills these from ``nmp.onnx`` at load time;
nothing derived from the weights is ever written to disk.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float32]


@dataclass(frozen=True)
class FrontEndWeights:
    """The CQT front end: octave cascade, kernels, log scaling, batch norm, harmonic stacking."""

    kernels: Array
    """``[2 * bins_per_octave, taps]``: real and imaginary CQT kernels, the same at every octave."""
    lowpass: Array
    """``[taps]``: the anti-alias filter applied before each halving of the rate."""
    lowpass_pad_samples: int
    """Zeros the graph pads each side before the stride-2 lowpass (127)."""
    kernel_pad_samples: int
    """Samples the graph reflect-pads each side of every octave's signal (128)."""
    column_strides: tuple[int, ...]
    """Stride of each octave's kernel in that octave's samples, top octave first (256 ... 1)."""
    octave_lengths: tuple[int, ...]
    """Length of each octave's signal inside one 43844-sample window, top octave first."""
    n_bins: int
    """CQT bins kept (309): the top ``n_bins`` of the octaves stacked low to high."""
    bin_scale: Array
    """``[n_bins]``: factor on each bin's real and imaginary parts before the power."""
    log_floor: float
    """Added to the power before ``10 log10`` (1e-10)."""
    batch_norm_scale: float
    batch_norm_offset: float
    harmonic_shifts: tuple[int, ...]
    """Bin shift of each feature channel (-36, 0, 36, 57, 72, 84, 93, 101)."""
    n_feature_bins: int
    """Bins of the CNN's input (264)."""

    @property
    def bins_per_octave(self) -> int:
        return int(self.kernels.shape[0] // 2)

    @property
    def n_octaves(self) -> int:
        return len(self.column_strides)


@dataclass(frozen=True)
class ConvWeights:
    """One 2-D convolution over (time, frequency), channels first: ``weight[out, in, kt, kf]``."""

    weight: Array
    bias: Array
    pad_bins: int
    """Zero padding on each side of the frequency axis."""
    stride_bins: int
    """Stride along frequency (time stride is always 1, time padding 'same')."""


@dataclass(frozen=True)
class CnnWeights:
    """Basic Pitch's CNN after the harmonic stack.

    contour = sigmoid(contour_2(relu(contour_1(features))));
    note = sigmoid(note_2(relu(note_1(contour))));
    onset = sigmoid(onset_2(concat(note, relu(onset_1(features))))).
    """

    contour_1: ConvWeights
    contour_2: ConvWeights
    note_1: ConvWeights
    note_2: ConvWeights
    onset_1: ConvWeights
    onset_2: ConvWeights


@dataclass(frozen=True)
class IncrementalWeights:
    """Everything the incremental engine computes with."""

    front_end: FrontEndWeights
    cnn: CnnWeights
