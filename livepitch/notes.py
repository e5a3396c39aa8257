"""Notes as values: what the offline decoder produces and the file writers consume."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from livepitch.geometry import HIGHEST_MIDI_PITCH, LOWEST_MIDI_PITCH, MODEL_RATE_HZ


def amplitude_to_velocity(amplitude: float) -> int:
    """Map a posterior amplitude in [0, 1] to a MIDI velocity 1-127 (``round(127 * a)``)."""
    return int(min(127, max(1, round(127.0 * amplitude))))


@dataclass(frozen=True)
class Note:
    """One transcribed note.

    Times are model-rate sample indices of frame centres: the note sounds from
    ``start_sample`` to ``end_sample``. ``bend_samples[i]`` / ``bend_semitones[i]`` give the
    pitch deviation from ``pitch`` at each frame of the note (empty when bends were not
    estimated). ``amplitude`` is the mean note posterior over the note, in [0, 1].
    """

    start_sample: int
    end_sample: int
    pitch: int
    amplitude: float
    start_frame: int = -1
    end_frame: int = -1
    bend_samples: npt.NDArray[np.int64] = field(
        default_factory=lambda: np.zeros(0, dtype=np.int64), compare=False, repr=False
    )
    bend_semitones: npt.NDArray[np.float32] = field(
        default_factory=lambda: np.zeros(0, dtype=np.float32), compare=False, repr=False
    )

    def __post_init__(self) -> None:
        if not LOWEST_MIDI_PITCH <= self.pitch <= HIGHEST_MIDI_PITCH:
            raise ValueError(f"pitch {self.pitch} outside the model's range")
        if self.end_sample <= self.start_sample:
            raise ValueError("a note must end after it starts")
        if self.bend_samples.shape != self.bend_semitones.shape:
            raise ValueError("bend_samples and bend_semitones differ in length")

    @property
    def start_s(self) -> float:
        """Onset [s]."""
        return self.start_sample / MODEL_RATE_HZ

    @property
    def end_s(self) -> float:
        """Offset [s]."""
        return self.end_sample / MODEL_RATE_HZ

    @property
    def velocity(self) -> int:
        """MIDI velocity 1-127 from the amplitude."""
        return amplitude_to_velocity(self.amplitude)

    @property
    def has_bends(self) -> bool:
        """Whether per-frame bends were estimated for this note."""
        return bool(self.bend_semitones.shape[0] > 0)
