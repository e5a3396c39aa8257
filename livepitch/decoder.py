"""Offline note decoding: Basic Pitch's polyphonic note creation, re-implemented.

This reproduces upstream's ``output_to_notes_polyphonic`` step by step, with the same
parameters and defaults, so that its notes can be compared one to one:

1. onsets and frames outside the pitch range are zeroed;
2. inferred onsets: the rise of the note posterior over one and two frames (the smaller of
   the two, floored at 0, the first two frames 0), scaled so its maximum equals the onset
   posterior's maximum over the clip, merged with the onsets by element-wise maximum;
3. onset peaks: strict local maxima in time at or above the onset threshold;
4. going backwards in time, each peak extends while fewer than ``energy_tolerance_frames``
   consecutive frames are below the frame threshold; notes no longer than the minimum
   length are dropped; a kept note clears its own and the two neighbouring bins;
5. the melodia trick: the strongest remaining frame above the frame threshold grows both
   ways by the same rule, until nothing above the threshold is left.

Two upstream defects are fixed (see ``docs/decoder.md``):

* note times come from each frame's true centre (``Posteriors.frame_centre_samples``), not
  ``frame / 86`` with a per-window correction;
* pitch bends are measured around contour bin ``3 (p - 21) + 1``, where an in-tune note
  peaks, so an in-tune note bends 0 (upstream centres on ``3 (p - 21)`` and reports in-tune
  notes 1/3 semitone sharp, upstream issue 87); the peak is refined to a fraction of a bin
  by parabolic interpolation instead of whole 1/3-semitone steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from livepitch.geometry import (
    CONTOUR_BINS_PER_SEMITONE,
    FRAME_HOP_SAMPLES,
    LOWEST_MIDI_PITCH,
    MODEL_RATE_HZ,
    N_CONTOUR_BINS,
    N_PITCHES,
    contour_bin_of_pitch,
)
from livepitch.notes import Note
from livepitch.posteriors import Posteriors

BEND_SEARCH_BINS = 25
"""Contour bins searched each side of a note's bin for its bend (upstream's tolerance)."""

BEND_WEIGHT_STD_BINS = 5.0
"""Standard deviation of the Gaussian weighting of the bend search [contour bins]."""


def ms_to_frames(duration_ms: float) -> int:
    """Round a duration in milliseconds to whole frames (upstream's conversion)."""
    return round(duration_ms / 1000.0 * MODEL_RATE_HZ / FRAME_HOP_SAMPLES)


def hz_to_midi(frequency_hz: float) -> float:
    """Fractional MIDI pitch of ``frequency_hz`` (A4 = 440 Hz = 69)."""
    return 69.0 + 12.0 * math.log2(frequency_hz / 440.0)


@dataclass(frozen=True)
class DecoderParams:
    """Parameters of the offline decoder, with upstream's defaults.

    ``min_note_frames``: a note must last more than this many frames (127.70 ms -> 11).
    ``min_hz``/``max_hz``: pitch bins below ``round(midi(min_hz)) - 21`` and from
    ``round(midi(max_hz)) - 21`` on are ignored, exactly as upstream.
    """

    onset_threshold: float = 0.5
    frame_threshold: float = 0.3
    min_note_frames: int = 11
    energy_tolerance_frames: int = 11
    infer_onsets: bool = True
    melodia_trick: bool = True
    min_hz: float | None = None
    max_hz: float | None = None
    estimate_bends: bool = True


def pitch_bin_range(min_hz: float | None, max_hz: float | None) -> tuple[int, int]:
    """The half-open range of note bins ``[first, stop)`` kept by the frequency limits."""
    first = 0 if min_hz is None else round(hz_to_midi(min_hz) - LOWEST_MIDI_PITCH)
    stop = N_PITCHES if max_hz is None else round(hz_to_midi(max_hz) - LOWEST_MIDI_PITCH)
    # limits outside the model's range keep everything or nothing, never a negative index
    return min(max(first, 0), N_PITCHES), min(max(stop, 0), N_PITCHES)


def infer_onsets(onset: npt.NDArray[np.float32], note: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Merge the onset posterior with onsets inferred from rises of the note posterior."""
    previous_1 = np.zeros_like(note)
    previous_1[1:] = note[:-1]
    previous_2 = np.zeros_like(note)
    previous_2[2:] = note[:-2]
    rise = np.minimum(note - previous_1, note - previous_2)
    np.maximum(rise, 0.0, out=rise)
    rise[:2] = 0.0
    rise_max = float(rise.max()) if rise.size else 0.0
    if rise_max > 0.0:
        rise *= float(onset.max()) / rise_max
    merged: npt.NDArray[np.float32] = np.maximum(onset, rise)
    return merged


def onset_peaks(onset: npt.NDArray[np.float32], threshold: float) -> list[tuple[int, int]]:
    """``(frame, bin)`` of strict local maxima in time at or above ``threshold``.

    Ordered as upstream visits them: latest frame first, and within a frame highest bin first.
    """
    if onset.shape[0] < 3:
        return []
    middle = onset[1:-1]
    is_peak = (middle > onset[:-2]) & (middle > onset[2:]) & (middle >= threshold)
    frames, bins = np.nonzero(is_peak)
    return [(int(f) + 1, int(b)) for f, b in zip(frames[::-1], bins[::-1], strict=True)]


def _extend_forward(
    energy: npt.NDArray[np.float64], start: int, pitch_bin: int, params: DecoderParams
) -> int:
    """First frame after ``start`` of the run of sub-threshold frames that ends a note."""
    n_frames = energy.shape[0]
    column = energy[:, pitch_bin]
    frame = start + 1
    quiet = 0
    while frame < n_frames - 1 and quiet < params.energy_tolerance_frames:
        quiet = quiet + 1 if column[frame] < params.frame_threshold else 0
        frame += 1
    return frame - quiet


def _clear(energy: npt.NDArray[np.float64], frames: slice | int, pitch_bin: int) -> None:
    low = max(pitch_bin - 1, 0)
    energy[frames, low : pitch_bin + 2] = 0.0


def _melodia_note(energy: npt.NDArray[np.float64], params: DecoderParams) -> tuple[int, int, int]:
    """Grow a note both ways from the strongest remaining frame, clearing what it covers.

    Returns ``(start_frame, end_frame, bin)``.
    """
    n_frames = energy.shape[0]
    flat_index = int(np.argmax(energy))
    middle, pitch_bin = divmod(flat_index, energy.shape[1])
    energy[middle, pitch_bin] = 0.0
    threshold = params.frame_threshold
    tolerance = params.energy_tolerance_frames

    frame, quiet = middle + 1, 0
    while frame < n_frames - 1 and quiet < tolerance:
        quiet = quiet + 1 if energy[frame, pitch_bin] < threshold else 0
        _clear(energy, frame, pitch_bin)
        frame += 1
    end = frame - 1 - quiet

    frame, quiet = middle - 1, 0
    while frame > 0 and quiet < tolerance:
        quiet = quiet + 1 if energy[frame, pitch_bin] < threshold else 0
        _clear(energy, frame, pitch_bin)
        frame -= 1
    start = frame + 1 + quiet
    return start, end, pitch_bin


def decode_note_spans(
    note: npt.NDArray[np.float32], onset: npt.NDArray[np.float32], params: DecoderParams
) -> list[tuple[int, int, int, float]]:
    """Note spans ``(start_frame, end_frame, bin, amplitude)`` from note/onset posteriors."""
    n_frames = note.shape[0]
    first_bin, stop_bin = pitch_bin_range(params.min_hz, params.max_hz)
    note = note.astype(np.float32, copy=True)
    onset = onset.astype(np.float32, copy=True)
    for array in (note, onset):
        array[:, :first_bin] = 0.0
        array[:, max(stop_bin, 0) :] = 0.0
    if params.infer_onsets:
        onset = infer_onsets(onset, note)

    energy = note.astype(np.float64)
    spans: list[tuple[int, int, int, float]] = []
    for start, pitch_bin in onset_peaks(onset, params.onset_threshold):
        if start >= n_frames - 1:
            continue
        end = _extend_forward(energy, start, pitch_bin, params)
        if end - start <= params.min_note_frames:
            continue
        _clear(energy, slice(start, end), pitch_bin)
        spans.append((start, end, pitch_bin, float(np.mean(note[start:end, pitch_bin]))))

    if params.melodia_trick:
        while energy.size and float(energy.max()) > params.frame_threshold:
            start, end, pitch_bin = _melodia_note(energy, params)
            if end - start <= params.min_note_frames:
                continue
            spans.append((start, end, pitch_bin, float(np.mean(note[start:end, pitch_bin]))))
    return spans


def _bend_weights() -> npt.NDArray[np.float64]:
    offsets = np.arange(-BEND_SEARCH_BINS, BEND_SEARCH_BINS + 1, dtype=np.float64)
    return np.exp(-0.5 * (offsets / BEND_WEIGHT_STD_BINS) ** 2)


def estimate_bends(
    contour: npt.NDArray[np.float32], start_frame: int, end_frame: int, pitch: int
) -> npt.NDArray[np.float32]:
    """Per-frame deviation [semitones] of the contour peak near ``pitch`` from in tune.

    Weights the contour by a Gaussian (std 5 bins) over +-25 bins around the note's in-tune
    bin ``3 (p - 21) + 1``, takes the peak per frame and refines it by fitting a parabola
    through the peak and its two neighbours.
    """
    centre_bin = contour_bin_of_pitch(pitch)
    low = max(centre_bin - BEND_SEARCH_BINS, 0)
    high = min(centre_bin + BEND_SEARCH_BINS + 1, N_CONTOUR_BINS)
    weights = _bend_weights()[low - (centre_bin - BEND_SEARCH_BINS) : high - (centre_bin - BEND_SEARCH_BINS)]
    weighted = contour[start_frame:end_frame, low:high].astype(np.float64) * weights
    peak = np.argmax(weighted, axis=1)
    rows = np.arange(weighted.shape[0])
    inner = (peak > 0) & (peak < weighted.shape[1] - 1)
    left = weighted[rows, np.maximum(peak - 1, 0)]
    centre = weighted[rows, peak]
    right = weighted[rows, np.minimum(peak + 1, weighted.shape[1] - 1)]
    curvature = left - 2.0 * centre + right
    safe = inner & (curvature < 0.0)
    shift = np.zeros_like(centre)
    shift[safe] = 0.5 * (left[safe] - right[safe]) / curvature[safe]
    peak_bin = low + peak + np.clip(shift, -0.5, 0.5)
    bends: npt.NDArray[np.float32] = ((peak_bin - centre_bin) / CONTOUR_BINS_PER_SEMITONE).astype(np.float32)
    return bends


def decode_notes(posteriors: Posteriors, params: DecoderParams | None = None) -> list[Note]:
    """Notes from whole-recording posteriors, sorted by onset then pitch."""
    params = params or DecoderParams()
    spans = decode_note_spans(posteriors.note, posteriors.onset, params)
    centres = posteriors.frame_centre_samples
    notes = []
    for start, end, pitch_bin, amplitude in spans:
        pitch = pitch_bin + LOWEST_MIDI_PITCH
        if params.estimate_bends:
            bend_samples = centres[start:end].copy()
            bends = estimate_bends(posteriors.contour, start, end, pitch)
        else:
            bend_samples = np.zeros(0, dtype=np.int64)
            bends = np.zeros(0, dtype=np.float32)
        notes.append(
            Note(
                start_sample=int(centres[start]),
                end_sample=int(centres[end]),
                pitch=pitch,
                amplitude=amplitude,
                start_frame=start,
                end_frame=end,
                bend_samples=bend_samples,
                bend_semitones=bends,
            )
        )
    notes.sort(key=lambda n: (n.start_sample, n.pitch, n.end_sample))
    return notes
