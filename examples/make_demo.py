"""Synthesise the demo recording: a short tune with chords, a sung-like vibrato and a glide.

Usage: ``python examples/make_demo.py OUT.wav``. Deterministic; 44.1 kHz mono, 12 s.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile

RATE_HZ = 44100


def _tone(pitch_track: npt.NDArray[np.float64], decay_s: float) -> npt.NDArray[np.float64]:
    """A plucked-ish harmonic tone following ``pitch_track`` (MIDI, one value a sample)."""
    frequency_hz = 440.0 * 2.0 ** ((pitch_track - 69.0) / 12.0)
    phase = 2.0 * np.pi * np.cumsum(frequency_hz) / RATE_HZ
    wave = sum(np.sin(k * phase) / k**2 for k in range(1, 7))
    t = np.arange(len(pitch_track)) / RATE_HZ
    envelope = np.exp(-t / decay_s)
    attack, release = int(0.008 * RATE_HZ), int(0.04 * RATE_HZ)
    envelope[:attack] *= np.linspace(0.0, 1.0, attack)
    envelope[-release:] *= np.linspace(1.0, 0.0, release)
    return np.asarray(wave * envelope / np.max(np.abs(wave)), dtype=np.float64)


def demo_audio() -> npt.NDArray[np.float32]:
    """The demo: a C-major tune over held chords, then a vibrato note and an upward glide."""
    audio = np.zeros(12 * RATE_HZ)

    def add(
        onset_s: float,
        duration_s: float,
        pitch: float,
        gain: float,
        decay_s: float = 2.0,
        vibrato_semitones: float = 0.0,
        glide_to: float | None = None,
    ) -> None:
        n = int(duration_s * RATE_HZ)
        t = np.arange(n) / RATE_HZ
        track = np.full(n, pitch) if glide_to is None else np.linspace(pitch, glide_to, n)
        track = track + vibrato_semitones * np.sin(2 * np.pi * 5.5 * t) * np.clip(t / 0.4, 0, 1)
        start = int(onset_s * RATE_HZ)
        audio[start : start + n] += gain * _tone(track, decay_s)

    melody = [(0.5, 60), (1.0, 62), (1.5, 64), (2.0, 65), (2.5, 67), (3.0, 69), (3.5, 71), (4.0, 72)]
    for onset_s, pitch in melody:
        add(onset_s, 0.45, pitch, 0.25, decay_s=0.8)
    for onset_s, chord in [(4.8, (48, 55, 64)), (5.8, (53, 57, 60)), (6.8, (55, 59, 62))]:
        for pitch in chord:
            add(onset_s, 0.9, pitch, 0.15, decay_s=1.5)
    add(8.0, 1.6, 67, 0.3, decay_s=10.0, vibrato_semitones=0.35)
    add(10.0, 1.4, 60, 0.3, decay_s=10.0, glide_to=64)
    normalised: npt.NDArray[np.float32] = (audio / np.max(np.abs(audio)) * 0.5).astype(np.float32)
    return normalised


def main() -> int:
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        print("usage: python examples/make_demo.py OUT.wav", file=sys.stderr)
        return 0 if sys.argv[1:] in (["-h"], ["--help"]) else 2
    out = Path(sys.argv[1])
    out.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(out, demo_audio(), RATE_HZ)
    print(f"wrote {out} (12 s demo recording)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
