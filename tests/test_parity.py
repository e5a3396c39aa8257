"""Parity with upstream Basic Pitch's reference outputs (read from ../shared/data)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from livepitch.audio_file import read_audio
from livepitch.decoder import DecoderParams, decode_note_spans, decode_notes
from livepitch.geometry import FRAME_HOP_SAMPLES
from livepitch.offline import compute_posteriors
from livepitch.posteriors import Posteriors
from livepitch.windowing import Windowing, plan_windows

FRAME_S = FRAME_HOP_SAMPLES / 22050


def _reference_posteriors(data_dir: Path) -> dict[str, np.ndarray]:
    path = data_dir / "reference_basic_pitch" / "vocadito_10_model_output.npz"
    result: dict[str, np.ndarray] = np.load(path, allow_pickle=True)["arr_0"].item()
    return result


def test_compat_posteriors_match_upstream_within_1e4(data_dir: Path, model: Any) -> None:
    audio = read_audio(data_dir / "reference_basic_pitch" / "vocadito_10.wav")
    ours = compute_posteriors(audio, model, Windowing.COMPAT)
    reference = _reference_posteriors(data_dir)
    assert ours.n_frames == 787
    for name in ("note", "onset", "contour"):
        deviation = float(np.abs(getattr(ours, name) - reference[name]).max())
        assert deviation <= 1e-4, f"{name} differs by {deviation}"


def test_decoder_reproduces_upstream_notes_on_reference_posteriors(data_dir: Path) -> None:
    reference = _reference_posteriors(data_dir)
    plan = plan_windows(200607, Windowing.COMPAT)
    posteriors = Posteriors(
        reference["note"], reference["onset"], reference["contour"], plan.frame_centre_samples
    )
    notes = decode_notes(posteriors)
    events = np.load(data_dir / "reference_basic_pitch" / "vocadito_10_note_events.npz", allow_pickle=True)[
        "arr_0"
    ]
    expected = sorted((float(e[0]), float(e[1]), int(e[2]), float(e[3])) for e in events)
    assert len(notes) == len(expected) == 28
    for note, (start_s, end_s, pitch, amplitude) in zip(notes, expected, strict=True):
        assert note.pitch == pitch
        assert abs(note.start_s - start_s) < FRAME_S
        assert abs(note.end_s - end_s) < FRAME_S
        assert abs(note.amplitude - amplitude) <= 0.01


def _neuralnote_cases() -> list[int]:
    return list(range(10))


@pytest.mark.parametrize("case", _neuralnote_cases())
def test_decoder_reproduces_neuralnote_reference_notes(data_dir: Path, case: int) -> None:
    folder = data_dir / "reference_neuralnote"
    note = np.loadtxt(folder / "notes.csv", dtype=np.float32).reshape(-1, 88)
    onset = np.loadtxt(folder / "onsets.csv", dtype=np.float32).reshape(-1, 88)
    params_in = json.loads((folder / "note_events.input.json").read_text())[case]
    expected_out = json.loads((folder / "note_events.output.json").read_text())[case]
    params = DecoderParams(
        onset_threshold=params_in["onsetThreshold"],
        frame_threshold=params_in["frameThreshold"],
        min_note_frames=params_in["minNoteLength"],
        energy_tolerance_frames=params_in["energyThreshold"],
        infer_onsets=params_in["inferOnsets"],
        melodia_trick=params_in["melodiaTrick"],
        min_hz=params_in.get("minFrequency"),
        max_hz=params_in.get("maxFrequency"),
    )
    spans = decode_note_spans(note, onset, params)
    ours = sorted((start, end, pitch_bin + 21, amplitude) for start, end, pitch_bin, amplitude in spans)
    expected = sorted((e["startFrame"], e["endFrame"], e["pitch"], e["amplitude"]) for e in expected_out)
    assert [o[:3] for o in ours] == [e[:3] for e in expected]
    np.testing.assert_allclose([o[3] for o in ours], [e[3] for e in expected], atol=1e-5)
