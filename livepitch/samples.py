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


def needs_cleaning(block: npt.NDArray[np.floating]) -> bool:
    """Whether ``block`` holds NaN, infinite or absurd samples (beyond ±``MAX_SAMPLE_MAGNITUDE``)."""
    return bool(block.size) and not float(np.abs(block).max()) <= MAX_SAMPLE_MAGNITUDE  # NaN fails too


def cleaned(block: npt.NDArray[np.floating]) -> npt.NDArray[np.floating]:
    """``block`` with NaN and infinite samples as silence and absurd ones clipped (a live input
    goes on; such samples would poison the model's state for seconds)."""
    finite = np.nan_to_num(block, nan=0.0, posinf=0.0, neginf=0.0)
    clipped: npt.NDArray[np.floating] = np.clip(finite, -MAX_SAMPLE_MAGNITUDE, MAX_SAMPLE_MAGNITUDE)
    return clipped
