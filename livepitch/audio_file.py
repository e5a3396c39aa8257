"""Read any audio file soundfile can open as mono float32 at the model rate."""

from __future__ import annotations

import contextlib
import logging
import os
import re
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile
import soxr

from livepitch.errors import AudioInputError, first_line
from livepitch.geometry import MODEL_RATE_HZ
from livepitch.native_output import quiet_native_stderr
from livepitch.paths import is_directory, stat_or_none
from livepitch.resample_stream import MAX_DEVICE_RATE_HZ, MIN_DEVICE_RATE_HZ
from livepitch.samples import MAX_SAMPLE_MAGNITUDE

MIN_FILE_RATE_HZ = MIN_DEVICE_RATE_HZ
"""Files at a lower sample rate are refused: they cannot hold most of the model's range (a
4 kHz file stops at 2 kHz, near B6), and such a rate is a damaged header more often than audio."""

SHORT_DECODE_TOLERANCE_FRAMES = 4096
"""How many frames fewer than it declares a file may decode before it counts as damaged."""


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


def check_samples(samples: npt.NDArray[np.float32], what: str) -> None:
    """Raise ``AudioInputError`` if ``samples`` holds NaN or infinite values, or values
    beyond ``MAX_SAMPLE_MAGNITUDE``."""
    if not np.isfinite(samples).all():
        bad = int(np.count_nonzero(~np.isfinite(samples)))
        raise AudioInputError(f"{what}: {bad} samples are NaN or infinite")
    if samples.size and float(np.abs(samples).max()) > MAX_SAMPLE_MAGNITUDE:
        bad = int(np.count_nonzero(np.abs(samples) > MAX_SAMPLE_MAGNITUDE))
        raise AudioInputError(
            f"{what}: {bad} samples lie beyond ±{MAX_SAMPLE_MAGNITUDE:g} (full scale is 1.0): not audio"
        )


def native_path(path: Path) -> bytes:
    """``path`` as the bytes the system knows it by (libsndfile takes any file name that way)."""
    return os.fsencode(path)


def check_audio_path(path: Path) -> None:
    """``AudioInputError`` for a path that is missing, a directory, or not to be looked at."""
    status = stat_or_none(path, AudioInputError)
    if status is None:
        if os.path.islink(path):
            raise AudioInputError(f"{path}: a symbolic link to no file (missing, or a loop)")
        raise AudioInputError(f"{path}: no such file")
    if is_directory(status):
        raise AudioInputError(f"{path}: is a directory, not an audio file")


def unreadable(path: Path, err: Exception) -> AudioInputError:
    """The one message for a file libsndfile could not open or read."""
    if os.path.exists(path) and not os.access(path, os.R_OK):
        return AudioInputError(f"{path}: cannot read audio (permission denied)")
    with contextlib.suppress(OSError):
        if os.path.isfile(path) and os.path.getsize(path) == 0:
            return AudioInputError(f"{path}: the file is empty")
    # libsndfile's own words, without soundfile's "Error opening <the name as bytes>: "
    reason = str(getattr(err, "error_string", "") or first_line(err)).rstrip(".")
    return AudioInputError(f"{path}: cannot read audio ({reason})")


def check_file_rate(path: Path, rate_hz: int) -> None:
    """``AudioInputError`` for a file whose sample rate is below ``MIN_FILE_RATE_HZ`` or above
    ``MAX_DEVICE_RATE_HZ`` (a damaged header, more often than audio)."""
    if rate_hz < MIN_FILE_RATE_HZ:
        raise AudioInputError(
            f"{path}: its sample rate is {rate_hz} Hz, below the {MIN_FILE_RATE_HZ} Hz an audio file needs here"
        )
    if rate_hz > MAX_DEVICE_RATE_HZ:
        raise AudioInputError(
            f"{path}: its sample rate is {rate_hz} Hz, above the {MAX_DEVICE_RATE_HZ} Hz read here"
        )


_DATA_CHUNK_CUT = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
"""libsndfile's log line for a WAV/AIFF data chunk whose declared size the file does not hold."""

UNKNOWN_LENGTH_BYTES = 1 << 31
"""A declared data size at least this is a recorder's placeholder for "still recording"."""


def warn_if_header_overstates(path: Path, info: soundfile._SoundFileInfo) -> None:
    """Log a warning when the file's header declares more audio than the file holds (a
    recording cut short: libsndfile reads what is there, which is all there is to read)."""
    match = _DATA_CHUNK_CUT.search(getattr(info, "extra_info", "") or "")
    if match is None or info.frames == 0:
        return
    declared, held = int(match.group(1)), int(match.group(2))
    if not held < declared < UNKNOWN_LENGTH_BYTES:
        return
    held_s = info.frames / info.samplerate
    logging.getLogger("livepitch").warning(
        "%s: cut short? its header declares %.2f s, the file holds %.2f s; reading what it holds",
        path,
        held_s * declared / held,
        held_s,
    )


def check_decoded_length(
    path: Path, decoded_frames: int, declared_frames: int, rate_hz: int, estimated: bool = False
) -> None:
    """``AudioInputError`` if a file decoded to fewer frames than it declares (damaged or cut).

    ``estimated``: the count is the decoder's guess (an MP3 without a VBR header guesses from
    its first frame's bitrate), so a shortfall is only logged as a warning."""
    if decoded_frames < declared_frames - SHORT_DECODE_TOLERANCE_FRAMES:
        message = (
            f"{path}: damaged or cut short: only {decoded_frames / rate_hz:.2f} s of its "
            f"{declared_frames / rate_hz:.2f} s could be decoded"
        )
        if not estimated:
            raise AudioInputError(message)
        logging.getLogger("livepitch").warning("%s (an estimate for this format: going on)", message)


def read_audio_frames(path: str | Path) -> tuple[npt.NDArray[np.float32], int]:
    """Read ``path`` as it is: float32 ``[frames, channels]`` and its sample rate [Hz].

    Raises ``AudioInputError`` for a missing, unreadable, corrupt or damaged file, a file with
    no samples, or samples that are not audio (NaN, infinite, or absurdly large).
    """
    path = Path(path)
    check_audio_path(path)
    try:
        with quiet_native_stderr():  # libmpg123 prints its resync attempts itself
            info = soundfile.info(native_path(path)) if path.is_file() else None
    except (soundfile.LibsndfileError, RuntimeError, OSError, ValueError) as err:
        raise unreadable(path, err) from err
    if info is not None:
        check_file_rate(path, int(info.samplerate))  # before decoding all of it
        warn_if_header_overstates(path, info)
    try:
        with quiet_native_stderr():
            if info is not None:
                data, source_rate_hz = soundfile.read(native_path(path), dtype="float32", always_2d=True)
            else:
                data, source_rate_hz = _read_stream(path)
    except (soundfile.LibsndfileError, RuntimeError, OSError, ValueError) as err:
        raise unreadable(path, err) from err
    except MemoryError as err:
        raise AudioInputError(f"{path}: too long to read into memory ({first_line(err)})") from err
    if data.shape[0] == 0:
        raise AudioInputError(f"{path}: the file holds no audio samples")
    check_file_rate(path, int(source_rate_hz))
    if info is not None:
        estimated = info.format == "MP3"
        check_decoded_length(path, data.shape[0], info.frames, int(source_rate_hz), estimated)
    check_samples(data, str(path))
    return data, int(source_rate_hz)


STREAM_BLOCK_FRAMES = 1 << 16
"""Frames read at a time from a pipe or a device [frames]."""


def _read_stream(path: Path) -> tuple[npt.NDArray[np.float32], int]:
    """Read a pipe or a device block by block: a WAV streamed through a pipe (``ffmpeg -f wav
    -``) declares no length, which reading whole takes as 2^31 frames to allocate."""
    blocks: list[npt.NDArray[np.float32]] = []
    with soundfile.SoundFile(native_path(path)) as stream:
        while True:
            block = stream.read(STREAM_BLOCK_FRAMES, dtype="float32", always_2d=True)
            if block.shape[0] == 0:
                break
            blocks.append(block)
        rate_hz, channels = int(stream.samplerate), int(stream.channels)
    if not blocks:
        return np.zeros((0, channels), dtype=np.float32), rate_hz
    return np.concatenate(blocks), rate_hz


def read_audio(path: str | Path) -> npt.NDArray[np.float32]:
    """Read ``path`` and return its audio as mono float32 at ``MODEL_RATE_HZ`` (soxr HQ).

    Raises ``AudioInputError`` as ``read_audio_frames`` does.
    """
    data, source_rate_hz = read_audio_frames(path)
    return resample_to_model_rate(downmix_to_mono(data), source_rate_hz)
