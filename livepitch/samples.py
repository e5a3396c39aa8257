"""What the engines take as audio: floating-point samples in ±1, finite, and not absurdly large."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

MAX_SAMPLE_MAGNITUDE = 1.0e4
"""Larger samples are not audio (a float file's full scale is 1.0; the model's log spectrum
overflows near 1e19): files holding them are refused, live input is clipped."""


def float_samples(block: npt.ArrayLike) -> npt.NDArray[np.floating]:
    """``block`` as an array of floating-point samples; ``TypeError`` for any other kind
    (integers, booleans, complex numbers: audio is float in ±1)."""
    samples = np.asarray(block)
    if not np.issubdtype(samples.dtype, np.floating):
        raise TypeError(
            f"audio samples must be floating point in ±1, not {samples.dtype} "
            "(scale integer PCM first, e.g. int16 / 32768)"
        )
    return samples


def mono_float32(block: npt.ArrayLike, taker: str, converter: str) -> npt.NDArray[np.float32]:
    """``block`` as mono float32 samples (shape ``(samples,)``, or ``(samples, 1)``);
    ``TypeError`` as ``float_samples``, ``ValueError`` for more channels, naming ``taker`` (the
    function that takes them) and ``converter`` (what turns other audio into mono)."""
    samples = np.asarray(float_samples(block), dtype=np.float32)
    if samples.ndim == 2 and samples.shape[1] == 1:
        samples = samples[:, 0]
    if samples.ndim != 1:
        raise ValueError(f"{taker} takes mono audio, shape (samples,), not {samples.shape}: {converter}")
    return samples


UNSCALED_PEAK = 16.0
"""A peak this far beyond full scale is integer PCM that was not scaled to ±1, more likely than
a sound 24 dB over full scale."""


def peak(block: npt.NDArray[np.floating]) -> float:
    """The block's largest magnitude (NaN if it holds one; 0 for an empty block)."""
    return float(np.abs(block).max()) if block.size else 0.0


def needs_cleaning(block: npt.NDArray[np.floating], block_peak: float | None = None) -> bool:
    """Whether ``block`` (of peak ``block_peak``, if known) holds NaN, infinite or absurd
    samples (beyond ±``MAX_SAMPLE_MAGNITUDE``)."""
    return not (peak(block) if block_peak is None else block_peak) <= MAX_SAMPLE_MAGNITUDE  # NaN too


def cleaned(block: npt.NDArray[np.floating]) -> npt.NDArray[np.floating]:
    """``block`` with NaN and infinite samples as silence and absurd ones clipped (a live input
    goes on; such samples would poison the model's state for seconds)."""
    finite = np.nan_to_num(block, nan=0.0, posinf=0.0, neginf=0.0)
    clipped: npt.NDArray[np.floating] = np.clip(finite, -MAX_SAMPLE_MAGNITUDE, MAX_SAMPLE_MAGNITUDE)
    return clipped
