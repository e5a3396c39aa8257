"""Test audio the project makes itself: harmonic tones, chords, glides, vibrato, silence."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from livepitch.geometry import MODEL_RATE_HZ


def midi_to_hz(pitch: float) -> float:
    """Frequency of a (fractional) MIDI pitch, A4 = 440 Hz."""
    return float(440.0 * 2.0 ** ((pitch - 69.0) / 12.0))


def _envelope(
    n_samples: int, rate_hz: int, attack_s: float = 0.01, release_s: float = 0.03
) -> npt.NDArray[np.float64]:
    env = np.ones(n_samples)
    attack = min(n_samples, int(attack_s * rate_hz))
    release = min(n_samples, int(release_s * rate_hz))
    env[:attack] = np.linspace(0.0, 1.0, attack, endpoint=False)
    if release:
        env[n_samples - release :] *= np.linspace(1.0, 0.0, release)
    return env


def harmonic_tone_from_pitch_track(
    pitch_track: npt.NDArray[np.float64],
    rate_hz: int = MODEL_RATE_HZ,
    n_harmonics: int = 6,
    amplitude: float = 0.2,
) -> npt.NDArray[np.float64]:
    """A harmonic tone whose fundamental follows ``pitch_track`` (MIDI, one value a sample)."""
    frequency_hz = 440.0 * 2.0 ** ((pitch_track - 69.0) / 12.0)
    phase = 2.0 * np.pi * np.cumsum(frequency_hz) / rate_hz
    tone = np.zeros_like(phase)
    for k in range(1, n_harmonics + 1):
        tone += np.sin(k * phase) / k**2
    return amplitude * tone * _envelope(len(tone), rate_hz) / np.max(np.abs(tone) + 1e-12)


def tone(
    pitch: float, duration_s: float, rate_hz: int = MODEL_RATE_HZ, amplitude: float = 0.2
) -> npt.NDArray[np.float64]:
    """A steady harmonic tone at MIDI ``pitch``."""
    n_samples = round(duration_s * rate_hz)
    return harmonic_tone_from_pitch_track(np.full(n_samples, float(pitch)), rate_hz, amplitude=amplitude)


def sequence(
    events: Sequence[tuple[float, float, float]], total_s: float, rate_hz: int = MODEL_RATE_HZ
) -> npt.NDArray[np.float32]:
    """Mix tones given as ``(onset_s, duration_s, midi_pitch)`` into ``total_s`` seconds of audio."""
    audio = np.zeros(round(total_s * rate_hz))
    for onset_s, duration_s, pitch in events:
        start = round(onset_s * rate_hz)
        note = tone(pitch, duration_s, rate_hz)
        audio[start : start + len(note)] += note[: len(audio) - start]
    return audio.astype(np.float32)


def vibrato(
    pitch: float,
    duration_s: float,
    depth_semitones: float,
    rate_hz_vibrato: float = 5.5,
    rate_hz: int = MODEL_RATE_HZ,
) -> npt.NDArray[np.float32]:
    """A tone at ``pitch`` with sinusoidal vibrato of +-``depth_semitones``."""
    t = np.arange(round(duration_s * rate_hz)) / rate_hz
    track = pitch + depth_semitones * np.sin(2 * np.pi * rate_hz_vibrato * t)
    return harmonic_tone_from_pitch_track(track, rate_hz).astype(np.float32)


def glide(
    start_pitch: float, end_pitch: float, duration_s: float, rate_hz: int = MODEL_RATE_HZ
) -> npt.NDArray[np.float32]:
    """A tone gliding linearly in pitch from ``start_pitch`` to ``end_pitch``."""
    track = np.linspace(start_pitch, end_pitch, round(duration_s * rate_hz))
    return harmonic_tone_from_pitch_track(track, rate_hz).astype(np.float32)
