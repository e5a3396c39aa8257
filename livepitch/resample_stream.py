"""Device audio to model audio: channel choice or downmix, then soxr's streaming resampler.

The only place where the device rate and the model rate meet. Runs on the worker thread.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import soxr

from livepitch.geometry import MODEL_RATE_HZ
from livepitch.samples import float_samples

MIN_DEVICE_RATE_HZ = 4000
"""Lowest input rate converted (a file's lowest: ``audio_file.MIN_FILE_RATE_HZ``) [Hz]."""
MAX_DEVICE_RATE_HZ = 768_000
"""Highest input rate converted [Hz]."""


class DeviceToModel:
    """Turns ``[frames, channels]`` blocks at ``device_rate_hz`` into mono float32 at 22050 Hz.

    ``channel`` (0-based) picks one input channel; None averages them all. soxr's
    ``ResampleStream`` keeps its filter state across blocks, so the output does not depend
    on how the input was cut. Its higher qualities hold audio back: fed 256-frame blocks at
    48 kHz, HQ lags 21 ms (median; 38 ms at most), LQ 11 ms, QQ none — and the model's
    note F1 is the same with QQ (docs/benchmarks.md), so QQ is the default.
    """

    def __init__(
        self, device_rate_hz: int, channels: int, channel: int | None = None, quality: str = "QQ"
    ) -> None:
        if not MIN_DEVICE_RATE_HZ <= device_rate_hz <= MAX_DEVICE_RATE_HZ:
            raise ValueError(
                f"device rate {device_rate_hz} Hz outside {MIN_DEVICE_RATE_HZ}..{MAX_DEVICE_RATE_HZ} Hz"
            )
        if channels < 1:
            raise ValueError(f"an input needs at least one channel, not {channels}")
        if channel is not None and not 0 <= channel < channels:
            raise ValueError(f"channel {channel + 1} does not exist (the input has {channels})")
        self.device_rate_hz = device_rate_hz
        self.channels = channels
        self.channel = channel
        self.quality = quality
        self._stream: soxr.ResampleStream | None = None
        self._ended = False
        self.reset()

    def reset(self) -> int:
        """Forget the resampler's state (after a gap in the audio); return how many model-rate
        samples of the audio it was given it still held back (their time is not lost)."""
        return int(self.flush().shape[0])

    def flush(self) -> npt.NDArray[np.float32]:
        """End the audio given so far: return the model-rate samples the resampler still held
        back (the end of its filter, padded with silence), and start a fresh stream."""
        held = np.zeros(0, dtype=np.float32)
        if self._stream is not None and not self._ended:
            held = self._stream.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        self._ended = False  # (soxr takes nothing after its last input)
        if self.device_rate_hz == MODEL_RATE_HZ:
            self._stream = None
        else:
            self._stream = soxr.ResampleStream(
                self.device_rate_hz, MODEL_RATE_HZ, 1, dtype="float32", quality=self.quality
            )
        return np.asarray(held, dtype=np.float32)

    def mono(self, block: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """The block's chosen channel, or the mean of its channels; ``ValueError`` for a block
        that is not ``[frames, channels]`` with the channel count given at construction (a
        mono input may give ``[frames]``), ``TypeError`` for samples that are not floating point."""
        block = float_samples(block)
        if block.ndim == 1 and self.channels == 1:
            block = block[:, None]
        if block.ndim != 2 or block.shape[1] != self.channels:
            raise ValueError(f"blocks of shape (frames, {self.channels}) expected, not {block.shape}")
        if self.channel is not None:
            return np.ascontiguousarray(block[:, self.channel], dtype=np.float32)
        if block.shape[1] == 1:
            return np.ascontiguousarray(block[:, 0], dtype=np.float32)
        mixed: npt.NDArray[np.float32] = block.mean(axis=1, dtype=np.float32)
        return mixed

    def convert(self, block: npt.NDArray[np.float32], last: bool = False) -> npt.NDArray[np.float32]:
        """Mono model-rate samples for ``block`` (``last`` flushes the resampler's tail; then
        ``reset`` before more audio: ``RuntimeError``)."""
        if self._ended:
            raise RuntimeError("the audio has ended (convert with last=True); reset() before converting more")
        mono = self.mono(block)
        if self._stream is None:
            return mono
        out: npt.NDArray[np.float32] = self._stream.resample_chunk(mono, last=last)
        self._ended = last
        return out


def recording_to_model_rate(
    frames: npt.NDArray[np.float32], rate_hz: int, quality: str, channel: int | None = None
) -> npt.NDArray[np.float32]:
    """A whole recording (``[frames, channels]`` at ``rate_hz``) as mono 22050 Hz audio,
    converted exactly as the daemon converts a replayed file (its channel ``channel``,
    0-based, or its channels averaged; its streaming resampler at ``quality``), so a file run
    emits the events a replay would."""
    return DeviceToModel(rate_hz, frames.shape[1], channel, quality).convert(frames, last=True)
