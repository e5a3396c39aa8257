"""The Basic Pitch model's fixed geometry, in one place.

All positions in livepitch are integer sample indices at ``MODEL_RATE_HZ``; seconds appear
only at the edges (CSV, MIDI files, logs).
"""

from __future__ import annotations

MODEL_RATE_HZ = 22050
"""Sample rate the model expects [Hz]."""

FRAME_HOP_SAMPLES = 256
"""Distance between two output frames [samples at MODEL_RATE_HZ]."""

WINDOW_SAMPLES = 43844
"""Fixed input length of the ONNX graph [samples] (2 s minus one hop)."""

WINDOW_FRAMES = 172
"""Output frames per window; frame j is centred on window sample ``FRAME_HOP_SAMPLES * j``."""

EDGE_FRAMES = 15
"""Frames trimmed at each side of a window's output by offline windowing."""

KEPT_FRAMES = WINDOW_FRAMES - 2 * EDGE_FRAMES
"""Frames kept from each window by offline windowing (142)."""

LEAD_PAD_SAMPLES = EDGE_FRAMES * FRAME_HOP_SAMPLES
"""Zeros prepended before windowing so the first kept frame is centred on sample 0 (3840)."""

N_PITCHES = 88
"""Note and onset bins: bin i is MIDI pitch ``LOWEST_MIDI_PITCH + i``."""

LOWEST_MIDI_PITCH = 21
"""MIDI pitch of note bin 0 (A0, 27.5 Hz)."""

HIGHEST_MIDI_PITCH = LOWEST_MIDI_PITCH + N_PITCHES - 1
"""MIDI pitch of the highest note bin (C8, 108)."""

CONTOUR_BINS_PER_SEMITONE = 3
"""Contour resolution: bin k is MIDI ``LOWEST_MIDI_PITCH + (k - 1) / 3``."""

N_CONTOUR_BINS = N_PITCHES * CONTOUR_BINS_PER_SEMITONE
"""Contour bins (264)."""


def contour_bin_of_pitch(midi_pitch: int) -> int:
    """Contour bin where an in-tune ``midi_pitch`` peaks: ``3 * (p - 21) + 1``."""
    return CONTOUR_BINS_PER_SEMITONE * (midi_pitch - LOWEST_MIDI_PITCH) + 1


def samples_to_s(samples: int | float) -> float:
    """Convert a model-rate sample index to seconds."""
    return samples / MODEL_RATE_HZ
