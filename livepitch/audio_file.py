"""Read any audio file soundfile can open as mono float32 at the model rate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile
import soxr

from livepitch.errors import AudioInputError, first_line
from livepitch.geometry import MODEL_RATE_HZ


def downmix_to_mono(samples: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
    """Average the channels of a ``[n_samples, n_channels]`` (or 1-D) array into float32 mono."""
    if samples.ndim == 1:
        mono: npt.NDArray[np.float32] = np.asarray(samples, dtype=np.float32)
    else:
        mono = samples.mean(axis=1, dtype=np.float64).astype(np.float32)
    return mono


def resample_to_model_rate(mono: npt.NDArray[np.float32], source_rate_hz: int) -> npt.NDArray[np.float32]:
    """Resample mono audio from ``source_rate_hz`` to ``MODEL_RATE_HZ`` with soxr (HQ)."""
    if source_rate_hz == MODEL_RATE_HZ:
        return mono
    resampled = soxr.resample(mono, source_rate_hz, MODEL_RATE_HZ, quality="HQ")
    return np.ascontiguousarray(resampled, dtype=np.float32)


def check_finite(samples: npt.NDArray[np.float32], what: str) -> None:
    """Raise ``AudioInputError`` if ``samples`` holds NaN or infinite values."""
    if not np.isfinite(samples).all():
        bad = int(np.count_nonzero(~np.isfinite(samples)))
        raise AudioInputError(f"{what}: {bad} samples are NaN or infinite")


def read_audio_frames(path: str | Path) -> tuple[npt.NDArray[np.float32], int]:
    """Read ``path`` as it is: float32 ``[frames, channels]`` and its sample rate [Hz].

    Raises ``AudioInputError`` for a missing, unreadable or corrupt file, a file with no
    samples, or NaN/Inf samples (float formats can hold them).
    """
    path = Path(path)
    if not path.exists():
        raise AudioInputError(f"{path}: no such file")
    if path.is_dir():
        raise AudioInputError(f"{path}: is a directory, not an audio file")
    try:
        data, source_rate_hz = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (soundfile.LibsndfileError, RuntimeError, OSError, ValueError) as err:
        raise AudioInputError(f"{path}: cannot read audio ({first_line(err)})") from err
    if data.shape[0] == 0:
        raise AudioInputError(f"{path}: the file holds no audio samples")
    check_finite(data, str(path))
    return data, int(source_rate_hz)


def read_audio(path: str | Path) -> npt.NDArray[np.float32]:
    """Read ``path`` and return its audio as mono float32 at ``MODEL_RATE_HZ`` (soxr HQ).

    Raises ``AudioInputError`` as ``read_audio_frames`` does.
    """
    data, source_rate_hz = read_audio_frames(path)
    return resample_to_model_rate(downmix_to_mono(data), source_rate_hz)
