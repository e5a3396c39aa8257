"""Annotated recordings in ``../shared/data`` and note-level scoring with mir_eval.

Every loader returns reference notes as a float64 array of shape ``[n, 3]`` with columns
``onset_s, offset_s, midi_pitch`` (the pitch may be fractional). The data directory is
``<repo>/../shared/data`` unless the environment variable ``LIVEPITCH_DATA`` names another one.
Nothing here is copied into the repository.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mir_eval
import numpy as np
import numpy.typing as npt

NoteArray = npt.NDArray[np.float64]
"""``[n, 3]``: onset [s], offset [s], MIDI pitch (fractional allowed)."""

ONSET_TOLERANCE_S = 0.05
PITCH_TOLERANCE_CENTS = 50.0
OFFSET_RATIO = 0.2
OFFSET_MIN_TOLERANCE_S = 0.05


def data_dir() -> Path:
    """The shared, read-only data directory (``LIVEPITCH_DATA`` overrides the default)."""
    override = os.environ.get("LIVEPITCH_DATA")
    if override:
        return Path(override)
    return Path(__file__).resolve().parents[1].parent / "shared" / "data"


@dataclass(frozen=True)
class Recording:
    """One audio file and its reference notes."""

    dataset: str
    name: str
    audio_path: Path
    notes: NoteArray


def _note_array(rows: list[tuple[float, float, float]]) -> NoteArray:
    notes = np.asarray(rows, dtype=np.float64).reshape(-1, 3)
    order = np.lexsort((notes[:, 2], notes[:, 0]))
    return np.ascontiguousarray(notes[order])


def hz_to_midi(hz: float) -> float:
    """Fractional MIDI pitch of a frequency (A4 = 440 Hz = 69)."""
    return 69.0 + 12.0 * math.log2(hz / 440.0)


def load_voice_vocadito(root: Path) -> list[Recording]:
    """vocadito track 1, annotator A1: rows ``onset_s, pitch_hz, duration_s``, no header."""
    folder = root / "voice_vocadito"
    rows: list[tuple[float, float, float]] = []
    with (folder / "vocadito_1_notesA1.csv").open(newline="") as handle:
        for record in csv.reader(handle):
            if not record:
                continue
            onset, hz, duration = (float(value) for value in record[:3])
            rows.append((onset, onset + duration, hz_to_midi(hz)))
    return [Recording("voice_vocadito", "vocadito_1", folder / "vocadito_1.wav", _note_array(rows))]


def load_guitar_guitarset(root: Path) -> list[Recording]:
    """GuitarSet ``00_BN1-129-Eb_comp``: every ``note_midi`` annotation (one per string)."""
    folder = root / "guitar_guitarset"
    jams = json.loads((folder / "00_BN1-129-Eb_comp.jams").read_text())
    rows: list[tuple[float, float, float]] = []
    for annotation in jams["annotations"]:
        if annotation["namespace"] != "note_midi":
            continue
        for item in annotation["data"]:
            onset = float(item["time"])
            rows.append((onset, onset + float(item["duration"]), float(item["value"])))
    audio = folder / "00_BN1-129-Eb_comp_mic.wav"
    return [Recording("guitar_guitarset", "00_BN1-129-Eb_comp_mic", audio, _note_array(rows))]


def load_piano_madmom(root: Path) -> list[Recording]:
    """madmom ``stereo_sample``: whitespace-separated ``onset_s midi duration_s velocity``."""
    folder = root / "piano_madmom"
    rows: list[tuple[float, float, float]] = []
    for line in (folder / "stereo_sample.notes").read_text().splitlines():
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        onset, pitch, duration = float(fields[0]), float(fields[1]), float(fields[2])
        rows.append((onset, onset + duration, pitch))
    return [Recording("piano_madmom", "stereo_sample", folder / "stereo_sample.wav", _note_array(rows))]


def _tinysol_pitches(folder: Path) -> dict[str, float]:
    """MIDI pitch ("Pitch ID") of each TinySOL file, keyed by file name."""
    with (folder / "TinySOL_metadata.csv").open(newline="") as handle:
        return {Path(row["Path"]).name: float(row["Pitch ID"]) for row in csv.DictReader(handle)}


# Where the TinySOL notes stop sounding. The files start at the attack (0 s) and have no offset
# annotation; these are where the 10 ms RMS envelope has fallen ~17-20 dB below its sustain
# level (contrabass: the bow leaves the string at ~3.8 s, -20 dB at 3.96 s, file 5.41 s long;
# flute: the tone stops at ~6.0 s, -20 dB at 6.09 s, file 6.18 s long). With the default
# offset tolerance (20 % of the note's length, >= 0.78 s here) the exact choice does not matter.
_TINYSOL_OFFSETS_S = {
    "Cb-ord-A2-mf-2c-N.wav": 3.9,
    "Fl-ord-C4-mf-N-T14d.wav": 6.1,
}


def load_single_notes(root: Path) -> list[Recording]:
    """TinySOL contrabass A2 and flute C4, and the good-sounds flute C4 tuned to A = 442 Hz."""
    folder = root / "single_notes"
    pitches = _tinysol_pitches(folder)
    recordings: list[Recording] = []
    for name, offset_s in _TINYSOL_OFFSETS_S.items():
        notes = _note_array([(0.0, offset_s, pitches[name])])
        recordings.append(
            Recording("single_notes", f"tinysol_{Path(name).stem}", folder / f"tinysol_{name}", notes)
        )

    sounds = json.loads((folder / "good-sounds_sounds.json").read_text())
    sound = next(iter(sounds.values()))
    rate_hz = 48_000  # the good-sounds sample indices are at the file's rate
    pitch = 12.0 * (sound["octave"] + 1) + _PITCH_CLASSES.index(sound["note"])
    pitch += 12.0 * math.log2(sound["pitch_reference"] / 440.0)
    notes = _note_array([(sound["attack"] / rate_hz, sound["offset"] / rate_hz, pitch)])
    audio = folder / "good-sounds_flute_almudena_reference_akg_0000.wav"
    recordings.append(Recording("single_notes", audio.stem, audio, notes))
    return recordings


_PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")

DATASETS: dict[str, Callable[[Path], list[Recording]]] = {
    "voice_vocadito": load_voice_vocadito,
    "guitar_guitarset": load_guitar_guitarset,
    "piano_madmom": load_piano_madmom,
    "single_notes": load_single_notes,
}
"""Every annotated dataset in the data directory (the ``reference_*`` folders hold model
outputs, not ground truth, and are not scored)."""


def load_all(root: Path | None = None) -> list[Recording]:
    """Every recording of every dataset, in ``DATASETS`` order."""
    base = data_dir() if root is None else root
    recordings: list[Recording] = []
    for loader in DATASETS.values():
        recordings.extend(loader(base))
    for recording in recordings:
        if not recording.audio_path.is_file():
            raise FileNotFoundError(recording.audio_path)
    return recordings


@dataclass(frozen=True)
class NoteCounts:
    """Reference, estimated and matched note counts; they pool across files."""

    n_ref: int
    n_est: int
    matched_onset: int
    matched_offset: int

    def __add__(self, other: NoteCounts) -> NoteCounts:
        return NoteCounts(
            self.n_ref + other.n_ref,
            self.n_est + other.n_est,
            self.matched_onset + other.matched_onset,
            self.matched_offset + other.matched_offset,
        )

    @staticmethod
    def _f1(matched: int, n_ref: int, n_est: int) -> float:
        # 2PR / (P + R) with P = matched / n_est and R = matched / n_ref, as in mir_eval.
        return 0.0 if matched == 0 else 2.0 * matched / (n_ref + n_est)

    @property
    def f1_onset(self) -> float:
        """Note F1, onset and pitch only."""
        return self._f1(self.matched_onset, self.n_ref, self.n_est)

    @property
    def f1_offset(self) -> float:
        """Note F1, onset, pitch and offset."""
        return self._f1(self.matched_offset, self.n_ref, self.n_est)


def _intervals_and_hz(notes: NoteArray) -> tuple[NoteArray, NoteArray]:
    notes = np.asarray(notes, dtype=np.float64).reshape(-1, 3)
    intervals = np.ascontiguousarray(notes[:, :2])
    hz = 440.0 * 2.0 ** ((notes[:, 2] - 69.0) / 12.0)
    return intervals, hz


def note_f1(reference: NoteArray, estimate: NoteArray, with_offsets: bool) -> float:
    """mir_eval note F1 (onset 50 ms, pitch 50 cents; offsets 20 % / >= 50 ms when asked)."""
    ref_intervals, ref_hz = _intervals_and_hz(reference)
    est_intervals, est_hz = _intervals_and_hz(estimate)
    if len(ref_hz) == 0 or len(est_hz) == 0:
        return 0.0
    _, _, f1, _ = mir_eval.transcription.precision_recall_f1_overlap(
        ref_intervals, ref_hz, est_intervals, est_hz, **_tolerances(with_offsets)
    )
    return float(f1)


def _tolerances(with_offsets: bool) -> dict[str, float | None]:
    """mir_eval's matching tolerances, onset-only or with offsets."""
    return {
        "onset_tolerance": ONSET_TOLERANCE_S,
        "pitch_tolerance": PITCH_TOLERANCE_CENTS,
        "offset_ratio": OFFSET_RATIO if with_offsets else None,
        "offset_min_tolerance": OFFSET_MIN_TOLERANCE_S,
    }


def _matched(
    ref_intervals: NoteArray,
    ref_hz: NoteArray,
    est_intervals: NoteArray,
    est_hz: NoteArray,
    with_offsets: bool,
) -> int:
    matching = mir_eval.transcription.match_notes(
        ref_intervals, ref_hz, est_intervals, est_hz, **_tolerances(with_offsets)
    )
    return len(matching)


def count_matches(reference: NoteArray, estimate: NoteArray) -> NoteCounts:
    """Match ``estimate`` against ``reference`` the way ``note_f1`` does, as poolable counts."""
    ref_intervals, ref_hz = _intervals_and_hz(reference)
    est_intervals, est_hz = _intervals_and_hz(estimate)
    if len(ref_hz) == 0 or len(est_hz) == 0:
        return NoteCounts(len(ref_hz), len(est_hz), 0, 0)
    return NoteCounts(
        n_ref=len(ref_hz),
        n_est=len(est_hz),
        matched_onset=_matched(ref_intervals, ref_hz, est_intervals, est_hz, with_offsets=False),
        matched_offset=_matched(ref_intervals, ref_hz, est_intervals, est_hz, with_offsets=True),
    )
