"""Model posteriors over a run of frames, each frame with its exact sample position."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from livepitch.geometry import N_CONTOUR_BINS, N_PITCHES


@dataclass(frozen=True)
class WindowOutputs:
    """Posteriors of a batch of model windows.

    ``note`` and ``onset`` are ``[batch, 172, 88]``, ``contour`` is ``[batch, 172, 264]``.
    """

    note: npt.NDArray[np.float32]
    onset: npt.NDArray[np.float32]
    contour: npt.NDArray[np.float32]


@dataclass(frozen=True)
class Posteriors:
    """Sigmoid outputs of the model for ``n_frames`` frames.

    ``note`` and ``onset`` are ``[n_frames, 88]`` (bin i = MIDI 21 + i), ``contour`` is
    ``[n_frames, 264]``; ``frame_centre_samples[t]`` is the model-rate sample index (relative
    to the start of the audio) on which frame t is centred.
    """

    note: npt.NDArray[np.float32]
    onset: npt.NDArray[np.float32]
    contour: npt.NDArray[np.float32]
    frame_centre_samples: npt.NDArray[np.int64]

    def __post_init__(self) -> None:
        n_frames = self.frame_centre_samples.shape[0]
        expected = {
            "note": (n_frames, N_PITCHES),
            "onset": (n_frames, N_PITCHES),
            "contour": (n_frames, N_CONTOUR_BINS),
        }
        for name, shape in expected.items():
            actual = getattr(self, name).shape
            if actual != shape:
                raise ValueError(f"{name} posteriors have shape {actual}, expected {shape}")

    @property
    def n_frames(self) -> int:
        """Number of frames."""
        return int(self.frame_centre_samples.shape[0])

    def save_npz(self, path: str) -> None:
        """Write the posteriors and frame positions to a compressed ``.npz`` file."""
        with open(path, "wb") as handle:  # (given a name, numpy adds .npz unless it ends so)
            np.savez_compressed(
                handle,
                note=self.note,
                onset=self.onset,
                contour=self.contour,
                frame_centre_samples=self.frame_centre_samples,
            )

    @classmethod
    def load_npz(cls, path: str) -> Posteriors:
        """Read posteriors written by ``save_npz``."""
        with np.load(path) as data:
            return cls(
                note=data["note"].astype(np.float32),
                onset=data["onset"].astype(np.float32),
                contour=data["contour"].astype(np.float32),
                frame_centre_samples=data["frame_centre_samples"].astype(np.int64),
            )
