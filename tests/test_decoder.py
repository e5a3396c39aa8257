"""The offline decoder on hand-made posteriors: spans, limits, bends, silence."""

from __future__ import annotations

import warnings

import numpy as np

from livepitch.decoder import DecoderParams, decode_note_spans, decode_notes, estimate_bends, pitch_bin_range
from livepitch.geometry import contour_bin_of_pitch
from livepitch.posteriors import Posteriors


def _posteriors(n_frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return (
        np.zeros((n_frames, 88), np.float32),
        np.zeros((n_frames, 88), np.float32),
        np.zeros((n_frames, 264), np.float32),
    )


def _wrap(note: np.ndarray, onset: np.ndarray, contour: np.ndarray) -> Posteriors:
    return Posteriors(note, onset, contour, 256 * np.arange(note.shape[0], dtype=np.int64))


def test_one_onset_and_sustain_make_one_note_with_exact_frames() -> None:
    note, onset, _contour = _posteriors(100)
    note[10:40, 39] = 0.8  # MIDI 60
    onset[9:12, 39] = [0.3, 0.9, 0.3]
    spans = decode_note_spans(note, onset, DecoderParams(melodia_trick=False, infer_onsets=False))
    assert [(s, e, b) for s, e, b, _ in spans] == [(10, 40, 39)]
    assert abs(spans[0][3] - 0.8) < 1e-6


def test_a_note_of_exactly_the_minimum_length_is_dropped_and_one_frame_more_is_kept() -> None:
    for length, expected in ((11, 0), (12, 1)):
        note, onset, _ = _posteriors(60)
        note[10 : 10 + length, 39] = 0.8
        onset[9:12, 39] = [0.3, 0.9, 0.3]
        spans = decode_note_spans(note, onset, DecoderParams(melodia_trick=False, infer_onsets=False))
        assert len(spans) == expected


def test_melodia_trick_finds_a_note_without_onset() -> None:
    note, onset, _ = _posteriors(100)
    note[20:60, 50] = 0.7
    with_melodia = decode_note_spans(note, onset, DecoderParams(infer_onsets=False))
    # upstream's melodia notes end on their last loud frame, one frame before onset-grown notes
    assert [(s, e, b) for s, e, b, _ in with_melodia] == [(20, 59, 50)]
    without = decode_note_spans(note, onset, DecoderParams(infer_onsets=False, melodia_trick=False))
    assert without == []


def test_frequency_limits_follow_upstream_rounding() -> None:
    # upstream: bins below round(midi(min_hz)) - 21 and from round(midi(max_hz)) - 21 on are zeroed
    assert pitch_bin_range(330.0, 1567.0) == (64 - 21, 91 - 21)
    note, onset, _ = _posteriors(60)
    for pitch_bin in (42, 43, 69, 70):
        note[10:30, pitch_bin] = 0.8
        onset[9:12, pitch_bin] = [0.3, 0.9, 0.3]
    spans = decode_note_spans(note, onset, DecoderParams(min_hz=330.0, max_hz=1567.0, melodia_trick=False))
    assert sorted(b for _, _, b, _ in spans) == [43, 69]


def test_silence_gives_no_notes_and_no_numpy_warnings() -> None:
    note, onset, contour = _posteriors(500)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise"):
            assert decode_notes(_wrap(note, onset, contour)) == []


def test_in_tune_contour_peak_bends_zero_and_a_third_semitone_up_bends_a_third() -> None:
    _, _, contour = _posteriors(10)
    pitch = 60
    centre = contour_bin_of_pitch(pitch)
    contour[:5, centre - 1 : centre + 2] = [0.3, 0.9, 0.3]
    contour[5:, centre : centre + 3] = [0.3, 0.9, 0.3]
    bends = estimate_bends(contour, 0, 10, pitch)
    np.testing.assert_allclose(bends[:5], 0.0, atol=1e-6)
    np.testing.assert_allclose(bends[5:], 1 / 3, atol=0.02)


def test_bends_are_interpolated_between_contour_bins() -> None:
    _, _, contour = _posteriors(1)
    pitch = 60
    centre = contour_bin_of_pitch(pitch)
    contour[0, centre : centre + 2] = [0.8, 0.8]  # peak halfway between two bins
    contour[0, centre - 1] = 0.2
    contour[0, centre + 2] = 0.2
    bend = float(estimate_bends(contour, 0, 1, pitch)[0])
    assert 0.1 < bend < 0.2  # about half a bin (1/6 semitone), pulled slightly by the weighting
