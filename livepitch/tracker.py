"""The causal note tracker: frames in, note starts/ends/bends out, with bounded lookahead.

Runs on the worker thread, one frame at a time. Besides the published frames it reads the
engine's preview (the frames after the newest published one, computed with less lookahead)
to confirm onset peaks and settle probation sooner; a decision that needs published data waits
for it. Decisions, in the order they are taken each frame:

* **Onset strength.** The onset posterior, merged (element-wise maximum) with onsets inferred
  from rises of the note posterior — the smaller of its 1- and 2-frame rises, as upstream —
  scaled by a running ratio of the onset and rise maxima (decaying slowly towards a prior)
  instead of upstream's clip-wide maxima.
* **Onsets.** A bin whose strength at frame t-1 is a strict local maximum at or above the onset
  threshold is an onset at t-1, confirmed at frame t (one frame of lookahead). It starts a note
  if the note posterior supports it (at or above the frame threshold at t-1 or t). With
  ``confirm_with_preview`` (the default) the engine's preview of frame t+1 (less lookahead
  than a published frame) confirms a peak at t as soon as t is published, so the note-on goes
  out up to a hop sooner; a peak the preview missed is still confirmed at t+1, and what the
  preview's values turned down (support, probation) is judged again on the published frame.
* **Probation instead of a minimum length.** An onset whose note posterior is at least
  ``instant_support`` plays at once. A weaker one (where most spurious notes are: noise,
  overtones) must keep its note posterior above the frame threshold for ``probation_ms``: the
  frames after the onset, published or previewed. The preview usually settles that at once;
  otherwise the note-on waits until the published frames since the onset plus the preview
  after the newest of them cover ``probation_ms`` (a published frame below the threshold drops
  it) — dated at the onset, so only those notes pay the delay. A weak onset whose posterior
  dips below the threshold the frame after it (or in probation) is kept for its ramp frames:
  if the posterior reaches the threshold within them, it waits in probation again (a low
  chord's posteriors dip after their onsets peak at some alignments of the frame grid). A
  weak onset at the 2nd, 3rd or 4th harmonic of a sounding note is the model echoing that
  note's overtone, not a note, unless its note posterior reaches ``OVERTONE_SHARE`` of the
  note's energy.
* **Noise gate.** No note starts unless the input itself was loud enough near its onset: the
  level (``livepitch.input_level``) of some frame from the onset to the deciding one, each
  covering a few blocks before it and the audio after it up to its publication, reaches
  ``gate_dbfs``. The model normalises every window by its loudest bin, so with nobody playing
  it reads room noise and hiss as notes; the gate keeps those out. It never ends a note.
* **Velocity** is decided at the note-on: ``round(127 * a)`` with ``a`` the larger of the note
  posterior at t-1 and t and the onset posterior at t-1 scaled by ``ONSET_VELOCITY_WEIGHT``,
  clipped to 1..127 (see ``onset_velocity``). Inferred onsets decide *when*, never how loud.
* **Held notes are not re-triggered** by vibrato, scoops or slides. A sounding note's energy is
  the note posterior at its own bin or at a free bin within a semitone of where its pitch is
  now, and an onset within a semitone of the note only re-triggers when that energy dipped in
  the last ``DIP_FRAMES`` frames up to the onset (fell below ``retrigger_dip`` times an earlier
  value in that span, or below the frame threshold) or the onset posterior itself (not an inferred onset) peaks at least at
  ``retrigger_onset``: a genuine re-articulation. While the note slides (its tracked pitch
  moved steadily, ``GLIDE_FRAMES``), an onset just ahead of the tracked pitch is the slide
  reaching that pitch, whatever its energy did, unless the note went quiet (see below) or the
  onset posterior peaks at ``retrigger_onset``.
  Within ``attack_ms`` of a note's start an onset at its pitch is the same attack (bowed,
  blown and sung attacks peak more than once) unless the note went quiet in between (fell
  below the frame threshold, and below ``retrigger_dip`` times its peak, after sounding: a
  weak note wavering at the threshold has not gone quiet); and never sooner than
  ``min_note_ms`` after its start (a note ended after two frames and struck again stutters).
* **The note follows its pitch.** Its pitch is tracked on the contour posterior (sub-bin,
  parabolic interpolation) and reported as a smoothed bend, so a vibrato or a glide is one
  note with bends. The note is re-pitched (ended, and a new note started at the nearest
  pitch, dated from when the move began) only after a *jump*: the tracked pitch, near the
  note within ``JUMP_MS`` before, has stayed at least ``repitch_semitones`` away for
  ``repitch_ms`` while moving less than ``SETTLE_SEMITONES`` (a legato step; a vibrato
  returns, a glide keeps moving and never jumped) — or when it has stayed outside the bend
  range the MIDI output can express (``max_bend_semitones``) for ``repitch_ms``.
* **Note-off** when the energy has stayed below the frame threshold for ``release_ms``, dated at
  the first quiet frame — but never less than ``min_note_ms`` after the note-on. A minimum
  length cannot be enforced without delaying every note-on, so short notes are sent short;
  the onset gate above is what keeps spurious blips out (measured in docs/benchmarks.md).
* **Polyphony.** At most ``max_polyphony`` notes. At the limit, a new note replaces the sounding
  note with the least energy (the oldest among equals) if it is stronger than that note and
  that note started earlier; otherwise the new note is not played, so a note is never cut
  in the frame it started. Pitches outside ``min_hz``..``max_hz`` are ignored.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np
import numpy.typing as npt

from livepitch.decoder import pitch_bin_range
from livepitch.frames import Frame
from livepitch.geometry import (
    CONTOUR_BINS_PER_SEMITONE,
    FRAME_HOP_SAMPLES,
    LOWEST_MIDI_PITCH,
    MODEL_RATE_HZ,
    N_CONTOUR_BINS,
    N_PITCHES,
    contour_bin_of_pitch,
)

FRAME_MS = 1000.0 * FRAME_HOP_SAMPLES / MODEL_RATE_HZ
GATE_OFF_DBFS = -120.0
"""A ``gate_dbfs`` this low turns the noise gate off [dBFS]."""
ONSET_VELOCITY_WEIGHT = 0.8
"""How much the onset peak counts towards the velocity relative to the note posterior."""

BEND_SEARCH_BINS = 6
"""Contour bins searched each side of a note's tracked pitch every frame (2 semitones)."""

BEND_WEIGHT_STD_BINS = 3.0
"""Gaussian weighting of that search, centred on the tracked pitch [contour bins]."""

CONTOUR_FLOOR = 0.05
"""Below this contour peak the tracked pitch holds its last value."""

SETTLE_SEMITONES = 0.3
"""A tracked pitch that moved less than this over ``repitch_ms`` has settled."""

DIP_FRAMES = 16
"""Frames (186 ms) up to an onset in which a re-articulation's dip must show."""

GLIDE_FRAMES = 6
"""Frames (70 ms) over which a held note's tracked pitch must have moved steadily to be gliding."""

GLIDE_MIN_SEMITONES = 0.15
"""How far a gliding note's tracked pitch moved over its steady run, at least."""

GLIDE_SPAN_FRAMES = 12
"""Frames (140 ms) a steady run is traced back to measure how far a slide moved."""

RAMP_FRAMES = 2
"""Frames after a fresh onset (no note sounding within a semitone) in which the note
posterior may still be rising to the threshold: a clean sine's takes two frames to pass 0.3
after its onset peaks (0.20, 0.29, 0.49), which Basic Pitch's own decoder tolerates (it
walks on over weak frames). Such an onset waits in probation instead of being dropped."""

LOW_RAMP_FRAMES = 4
"""``RAMP_FRAMES`` for notes below ``LOW_RAMP_BELOW_PITCH``: the CQT's low octaves reach
further in time (docs/incremental-engine.md), and a low note's posterior rises more slowly
after its onset peaks (a synthetic F2: 0.18, 0.18, 0.22, 0.24, 0.31)."""

LOW_RAMP_BELOW_PITCH = 48
"""MIDI pitch (C3, 131 Hz) below which a rising posterior gets ``LOW_RAMP_FRAMES``."""


GLIDE_MAX_STEP_SEMITONES = 0.25
"""Most a gliding pitch moves in one frame (21 semitones a second; a legato step moves faster)."""

GLIDE_AHEAD_SEMITONES = 1.0
GLIDE_BEHIND_SEMITONES = 0.3
"""An onset counts as the slide reaching it from this far behind the tracked pitch to this far
ahead of it, in the slide's direction [semitones]."""

GLIDE_JITTER_SEMITONES = 0.03
"""A gliding pitch may step back this much in a frame (the contour peak's jitter)."""

JUMP_MS = 60.0
"""A move to a new pitch counts as a jump (legato step) when it took at most this long."""

LEVEL_DECAY_PER_FRAME = 0.5 ** (1.0 / (30.0 * 1000.0 / FRAME_MS))
"""Running maxima for inferred-onset scaling halve their excess in 30 s."""

ONSET_LEVEL_PRIOR = 0.9
RISE_LEVEL_PRIOR = 0.45
"""Starting values of the running maxima (typical clip-wide maxima on real recordings)."""

OVERTONE_INTERVALS = (12, 19, 24)
"""Intervals [semitones] of a note's 2nd, 3rd and 4th harmonics above it."""

OVERTONE_SHARE = 0.5
"""A weak onset at an overtone of a sounding note is that note's harmonic unless its note
posterior reaches this share of the note's energy."""

GATE_MEMORY_FRAMES = 4
"""Frames whose input level the gate remembers (an onset is judged at most a frame after it)."""


@dataclass(frozen=True)
class TrackerParams:
    """The tracker's parameters (validated by ``livepitch.settings.TrackerSettings``)."""

    onset_threshold: float = 0.5
    frame_threshold: float = 0.3
    infer_onsets: bool = False
    release_ms: float = 35.0
    min_note_ms: float = 35.0
    retrigger_dip: float = 0.7
    retrigger_onset: float = 0.8
    attack_ms: float = 50.0
    gate_dbfs: float = -48.0
    instant_support: float = 0.5
    probation_ms: float = 40.0
    confirm_with_preview: bool = True
    repitch_semitones: float = 0.6
    repitch_ms: float = 80.0
    max_polyphony: int = 15
    min_hz: float | None = None
    max_hz: float | None = None
    bend_smoothing_ms: float = 15.0
    max_bend_semitones: float = math.inf


@dataclass(frozen=True, slots=True)
class NoteStart:
    """A note starts at ``time_sample``; ``note_id`` identifies it until its ``NoteEnd``."""

    note_id: int
    pitch: int
    velocity: int
    bend_semitones: float
    time_sample: int
    emitted_sample: int


@dataclass(frozen=True, slots=True)
class NoteEnd:
    """Note ``note_id`` ends at ``time_sample``."""

    note_id: int
    pitch: int
    time_sample: int
    emitted_sample: int


@dataclass(frozen=True, slots=True)
class NoteBend:
    """Note ``note_id`` is ``bend_semitones`` away from its pitch at ``time_sample``."""

    note_id: int
    pitch: int
    bend_semitones: float
    time_sample: int
    emitted_sample: int


Intent = NoteStart | NoteEnd | NoteBend


@dataclass
class _Pending:
    """An onset whose note posterior was weak: it becomes a note if it holds for a while."""

    pitch: int
    onset_sample: int
    onset_frame: int
    peak: float
    support: float
    restrike: bool = False
    """It re-attacked a note at its own pitch (never an overtone's echo)."""
    ramped: bool = False
    """It entered probation with its note posterior still rising below the threshold."""


@dataclass
class _Voice:
    note_id: int
    pitch: int
    start_sample: int
    level: float
    tracked_bin: float
    bend_semitones: float
    quiet_frames: int = 0
    first_quiet_sample: int = 0
    energy: float = 0.0
    recent_energy: list[float] = field(default_factory=list)
    recent_bends: list[float] = field(default_factory=list)
    recent_samples: list[int] = field(default_factory=list)
    attacked: bool = True
    """Started by an onset (False: re-pitched after a legato move, with no attack of its own)."""


def _went_quiet(energies: list[float], threshold: float, ratio: float) -> bool:
    """Whether the energy, once at or above ``threshold``, later fell below it and below
    ``ratio`` times its highest value so far (a gap, not a weak note wavering at the threshold)."""
    highest = 0.0
    for energy in energies:
        if energy < threshold and energy < ratio * highest:
            return True
        if energy >= threshold:
            highest = max(highest, energy)
    return False


def _glide_direction(bends: list[float]) -> float:
    """+1 or -1 if the tracked pitch (``bends``, semitones from the note, one per frame) is
    moving steadily up or down: each step over the last ``GLIDE_FRAMES`` small and none back
    by more than the tracking's jitter, and at least ``GLIDE_MIN_SEMITONES`` moved since then,
    or since the start of the run of frames before them (at most ``GLIDE_SPAN_FRAMES`` in
    all) that each moved forward: a slide or a scoop on its way (the tracked pitch slows near
    a bin's centre, so a slow slide needs the longer span); else 0."""
    recent = bends[-GLIDE_FRAMES:]
    if len(recent) < GLIDE_FRAMES or recent[-1] == recent[0]:
        return 0.0
    direction = math.copysign(1.0, recent[-1] - recent[0])

    def steady(a: float, b: float) -> bool:
        return -GLIDE_JITTER_SEMITONES <= direction * (b - a) <= GLIDE_MAX_STEP_SEMITONES

    if not all(steady(a, b) for a, b in pairwise(recent)):
        return 0.0
    span = bends[-GLIDE_SPAN_FRAMES:]
    first = len(span) - GLIDE_FRAMES
    while first > 0 and 0.0 < direction * (span[first] - span[first - 1]) <= GLIDE_MAX_STEP_SEMITONES:
        first -= 1  # further back only while it moved forward every frame
    return direction if direction * (span[-1] - span[first]) >= GLIDE_MIN_SEMITONES else 0.0


def _fell(energies: list[float], ratio: float) -> bool:
    """Whether the energy fell below ``ratio`` times an earlier value in ``energies`` (a dip)."""
    highest = 0.0
    for energy in energies:
        if energy < ratio * highest:
            return True
        highest = max(highest, energy)
    return False


def _tracked_pitch(voice: _Voice) -> float:
    """Where the note's pitch is now, from its contour tracking [fractional MIDI]."""
    return LOWEST_MIDI_PITCH + (voice.tracked_bin - 1.0) / CONTOUR_BINS_PER_SEMITONE


def _ramp_frames(pitch_bin: int) -> int:
    """Frames after an onset in which the note posterior at ``pitch_bin`` may still be rising."""
    return LOW_RAMP_FRAMES if pitch_bin + LOWEST_MIDI_PITCH < LOW_RAMP_BELOW_PITCH else RAMP_FRAMES


def onset_velocity(onset_peak: float, note_level: float) -> int:
    """MIDI velocity decided at a note-on from the onset peak and the note posterior.

    ``round(127 * max(note_level, ONSET_VELOCITY_WEIGHT * onset_peak))`` clipped to 1..127:
    the note posterior carries loudness once the note sounds; the onset peak lifts notes
    whose note posterior is still rising at the onset.
    """
    amplitude = max(note_level, ONSET_VELOCITY_WEIGHT * onset_peak)
    return int(min(127, max(1, round(127.0 * amplitude))))


def _rise(
    note: npt.NDArray[np.float32], prev_1: npt.NDArray[np.float32], prev_2: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
    """The smaller of the note posterior's 1- and 2-frame rises, at least 0 (as upstream)."""
    rise: npt.NDArray[np.float32] = np.minimum(note - prev_1, note - prev_2)
    np.maximum(rise, 0.0, out=rise)
    return rise


class NoteTracker:
    """Incremental note tracker; call ``process`` once per frame, in order, then ``finish``."""

    def __init__(self, params: TrackerParams | None = None) -> None:
        self.params = params or TrackerParams()
        p = self.params
        first, stop = pitch_bin_range(p.min_hz, p.max_hz)
        self._in_range = np.zeros(N_PITCHES, dtype=bool)
        self._in_range[first:stop] = True
        self._release_frames = max(1, math.ceil(p.release_ms / FRAME_MS - 1e-9))
        self._min_note_samples = round(p.min_note_ms * MODEL_RATE_HZ / 1000.0)
        self._attack_samples = round(p.attack_ms * MODEL_RATE_HZ / 1000.0)
        self._repitch_frames = max(1, math.ceil(p.repitch_ms / FRAME_MS - 1e-9))
        self._probation_frames = max(0, math.ceil(p.probation_ms / FRAME_MS - 1e-9))
        self._jump_frames = max(1, math.ceil(JUMP_MS / FRAME_MS - 1e-9))
        self._bend_alpha = 1.0 - math.exp(-FRAME_MS / max(p.bend_smoothing_ms, 1e-6))
        offsets = np.arange(-BEND_SEARCH_BINS, BEND_SEARCH_BINS + 1, dtype=np.float64)
        self._search_offsets = offsets.astype(np.int64)
        self._search_std = BEND_WEIGHT_STD_BINS
        self.onset_at_first_frame = True
        """Whether an onset may peak at frame 0 (a stream's start: the engines see silence before
        it). False where the stream continues another (the daemon's pipeline after a reload or a
        device's return): a note sounding across the gap is not struck again."""
        self.reset()

    def reset(self) -> None:
        """Forget all state (sounding notes are dropped silently: end them first)."""
        self._voices: dict[int, _Voice] = {}
        self._pending: dict[int, _Pending] = {}
        self._next_id = 0
        self._frames_seen = 0
        self._ended_at: dict[int, int] = {}  # pitch -> when its last note ended [samples]
        self._note_history = np.zeros((3, N_PITCHES), dtype=np.float32)  # t-1, t-2, t-3
        self._strength_history = np.zeros((2, N_PITCHES), dtype=np.float32)  # t-1, t-2
        self._strength_now = np.zeros(N_PITCHES, dtype=np.float32)  # this frame's, while it is processed
        self._onset_prev = np.zeros(N_PITCHES, dtype=np.float32)
        self._onset_level = ONSET_LEVEL_PRIOR
        self._rise_level = RISE_LEVEL_PRIOR
        self._last_centre = 0
        self._recent_levels_db: deque[tuple[int, float]] = deque(maxlen=GATE_MEMORY_FRAMES)
        self._dipped: dict[int, tuple[int, float]] = {}
        """pitch -> (onset frame, onset peak) of a weak onset dropped on a dip, for its ramp frames."""

    @property
    def sounding(self) -> dict[int, int]:
        """``note_id -> pitch`` of the notes sounding now."""
        return {v.note_id: v.pitch for v in self._voices.values()}

    # -- per frame --------------------------------------------------------------------
    def process(self, frame: Frame, level_db: float = 0.0) -> list[Intent]:
        """Consume the next frame and the input's level for it (``FrameLevels.level_db``,
        [dBFS]; the default passes any gate); return what changed (ends first, then starts,
        then bends)."""
        p = self.params
        self._recent_levels_db.append((frame.index, level_db))
        note = np.where(self._in_range, frame.note, 0.0).astype(np.float32)
        onset = np.where(self._in_range, frame.onset, 0.0).astype(np.float32)
        strength = self._onset_strength(note, onset)
        self._strength_now = strength

        intents: list[Intent] = []
        # an onset may peak at frame 0: the engines see silence before the stream, as the graph
        # does, so a sample trimmed to its attack plays (it replayed as silence when a peak
        # needed a published frame before it); a stream that starts inside a sound plays that
        # sound too (one extra note at the start of the guitar recording)
        if self._frames_seen >= (1 if self.onset_at_first_frame else 2):
            candidate = self._strength_history[0]
            peaks = (
                (candidate > self._strength_history[1])
                & (candidate > strength)
                & (candidate >= p.onset_threshold)
            )
            onset_bins = np.flatnonzero(peaks)
        else:
            onset_bins = np.zeros(0, dtype=np.int64)

        early_bins = self._peaks_confirmed_by_preview(frame, note, strength)

        self._update_voices(frame, note, intents)
        self._revive_dipped(frame, note)
        self._update_pending(frame, note, intents)
        for pitch_bin in onset_bins.tolist():
            support = max(float(self._note_history[0][pitch_bin]), float(note[pitch_bin]))
            peak = float(self._onset_prev[pitch_bin])
            self._consider_onset(pitch_bin, frame, note, peak, support, intents, 1)
        for pitch_bin in early_bins.tolist():
            support = max(float(note[pitch_bin]), float(frame.preview_note[0, pitch_bin]))
            peak = float(onset[pitch_bin])
            self._consider_onset(pitch_bin, frame, note, peak, support, intents, 0)
        self._track_pitches(frame, intents)

        self._note_history[2] = self._note_history[1]
        self._note_history[1] = self._note_history[0]
        self._note_history[0] = note
        self._strength_history[1] = self._strength_history[0]
        self._strength_history[0] = strength
        self._onset_prev = onset
        self._frames_seen += 1
        self._last_centre = frame.centre_sample
        return intents

    def finish(self, end_sample: int, emitted_sample: int) -> list[Intent]:
        """End every sounding note at ``end_sample`` (end of stream, stop or fault)."""
        intents: list[Intent] = []
        self._pending.clear()
        self._dipped.clear()
        for voice in sorted(self._voices.values(), key=lambda v: v.note_id):
            time_sample = min(max(end_sample, voice.start_sample), emitted_sample)
            self._ended_at[voice.pitch] = time_sample  # a drop goes on: the next note starts after
            intents.append(NoteEnd(voice.note_id, voice.pitch, time_sample, emitted_sample))
        self._voices.clear()
        return intents

    # -- steps ---------------------------------------------------------------------------
    def _onset_strength(
        self, note: npt.NDArray[np.float32], onset: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.float32]:
        if not self.params.infer_onsets:
            return onset
        if self._frames_seen < 2:
            rise = np.zeros_like(note)
        else:
            rise = _rise(note, self._note_history[0], self._note_history[1])
        self._onset_level = max(
            ONSET_LEVEL_PRIOR + (self._onset_level - ONSET_LEVEL_PRIOR) * LEVEL_DECAY_PER_FRAME,
            float(onset.max()),
        )
        self._rise_level = max(
            RISE_LEVEL_PRIOR + (self._rise_level - RISE_LEVEL_PRIOR) * LEVEL_DECAY_PER_FRAME,
            float(rise.max()),
        )
        return self._merge(onset, rise)

    def _merge(
        self, onset: npt.NDArray[np.float32], rise: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.float32]:
        """Onset posterior merged with the rise scaled by the running maxima."""
        scaled = rise * np.float32(self._onset_level / self._rise_level)
        merged: npt.NDArray[np.float32] = np.maximum(onset, scaled)
        return merged

    def _peaks_confirmed_by_preview(
        self, frame: Frame, note: npt.NDArray[np.float32], strength: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.int64]:
        """Bins whose onset strength peaks at this frame, confirmed by the preview's next frame.

        The next frame has less lookahead than a published one (at a hop of one frame, one
        frame less; inside a window-engine hop it is the next published row itself), so the
        peak keeps the configured lookahead while its note-on goes out sooner. A peak the
        preview does not confirm is still found when the next frame is published.
        """
        p = self.params
        previewed = min(frame.preview_onset.shape[0], frame.preview_note.shape[0])
        if (
            not p.confirm_with_preview
            or previewed == 0
            or self._frames_seen < (0 if self.onset_at_first_frame else 1)
        ):
            return np.zeros(0, dtype=np.int64)
        next_onset = np.where(self._in_range, frame.preview_onset[0], 0.0).astype(np.float32)
        if p.infer_onsets:
            next_note = np.where(self._in_range, frame.preview_note[0], 0.0).astype(np.float32)
            next_strength = self._merge(next_onset, _rise(next_note, note, self._note_history[0]))
        else:
            next_strength = next_onset
        peaks = (
            (strength > self._strength_history[0])
            & (strength > next_strength)
            & (strength >= p.onset_threshold)
        )
        return np.flatnonzero(peaks)

    def _owned_bins(self) -> set[int]:
        return {v.pitch - LOWEST_MIDI_PITCH for v in self._voices.values()}

    def _energy(self, voice: _Voice, note: npt.NDArray[np.float32], owned: set[int]) -> float:
        """Note posterior at the note's own bin, or at a free bin within a semitone of its pitch now."""
        own = voice.pitch - LOWEST_MIDI_PITCH
        energy = float(note[own])
        now = round(_tracked_pitch(voice)) - LOWEST_MIDI_PITCH
        for pitch_bin in (now - 1, now, now + 1, own - 1, own + 1):
            if 0 <= pitch_bin < N_PITCHES and pitch_bin != own and pitch_bin not in owned:
                energy = max(energy, float(note[pitch_bin]))
        return energy

    def _update_voices(self, frame: Frame, note: npt.NDArray[np.float32], intents: list[Intent]) -> None:
        p = self.params
        owned = self._owned_bins()
        for voice in list(self._voices.values()):
            voice.energy = self._energy(voice, note, owned)
            voice.recent_energy.append(voice.energy)
            if len(voice.recent_energy) > DIP_FRAMES:
                del voice.recent_energy[0]
            voice.level = max(voice.energy, voice.level * 0.97)
            if voice.energy < p.frame_threshold:
                if voice.quiet_frames == 0:
                    voice.first_quiet_sample = frame.centre_sample
                voice.quiet_frames += 1
            else:
                voice.quiet_frames = 0
            old_enough = frame.centre_sample - voice.start_sample >= self._min_note_samples
            if voice.quiet_frames >= self._release_frames and old_enough:
                end = max(voice.first_quiet_sample, voice.start_sample + self._min_note_samples)
                self._end(voice, end, frame.emitted_sample, intents)

    def _update_pending(self, frame: Frame, note: npt.NDArray[np.float32], intents: list[Intent]) -> None:
        """Start weak onsets whose note posterior held for ``probation_ms``; drop those that fell."""
        for pitch, pending in list(self._pending.items()):
            pitch_bin = pitch - LOWEST_MIDI_PITCH
            held = self._probation_held(frame, note, pitch_bin, pending.onset_frame)
            if held is False or pitch in {v.pitch for v in self._voices.values()}:
                del self._pending[pitch]
                if held is False and not pending.restrike:  # it may rise again within its ramp frames
                    self._dipped[pitch] = (pending.onset_frame, pending.peak)
                continue
            if pending.ramped and (self._holder_near(pitch) is not None or self._harmonic_of_a_note(pitch)):
                del self._pending[pitch]  # a neighbour or its fundamental started meanwhile
                continue
            pending.support = max(pending.support, float(note[pitch_bin]))
            if held:
                del self._pending[pitch]
                if not pending.restrike and self._overtone_of_louder(pitch, pending.support):
                    continue
                velocity = onset_velocity(pending.peak, pending.support)
                self._admit(pitch, velocity, pending.onset_sample, frame, intents, pending.support)

    def _revive_dipped(self, frame: Frame, note: npt.NDArray[np.float32]) -> None:
        """A dropped weak onset whose note posterior reaches the threshold within its ramp
        frames after all (it dipped after the onset peak) waits in probation."""
        for pitch, (onset_frame, peak) in list(self._dipped.items()):
            pitch_bin = pitch - LOWEST_MIDI_PITCH
            if frame.index > onset_frame + _ramp_frames(pitch_bin):
                del self._dipped[pitch]
                continue
            level = float(note[pitch_bin])
            if level < self.params.frame_threshold:
                continue
            del self._dipped[pitch]
            if (
                pitch in self._pending
                or self._holder_near(pitch) is not None
                or self._harmonic_of_a_note(pitch)
                or self._ended_at.get(pitch, -1) >= FRAME_HOP_SAMPLES * onset_frame  # played since
            ):
                continue
            self._pending[pitch] = _Pending(
                pitch, FRAME_HOP_SAMPLES * onset_frame, onset_frame, peak, level, False, True
            )

    def _consider_onset(
        self,
        pitch_bin: int,
        frame: Frame,
        note: npt.NDArray[np.float32],
        peak: float,
        support: float,
        intents: list[Intent],
        frames_ago: int,
    ) -> None:
        """An onset confirmed at ``pitch_bin``, ``frames_ago`` (0: confirmed by the preview, 1:
        by this frame) frames before this one; ``peak`` is the onset posterior (not inferred)
        there, ``support`` the larger note posterior of the onset frame and the one after it.

        An onset the preview confirmed comes again with the next published frame (if it is
        still a peak there), so a decision on preview values that the published frame may
        overturn (too little support, probation) is taken again then. The noise gate is judged
        here once: a weak onset waits in probation only if the gate opened for it.
        """
        p = self.params
        onset_frame = frame.index - frames_ago
        # a posterior still rising after the onset may pass the threshold a frame later: it
        # waits in probation (whose published frames decide) rather than being dropped
        ramping = (
            frames_ago == 1
            and self._probation_frames > 0
            and self._rising(note, pitch_bin)
            and self._holder_near(pitch_bin + LOWEST_MIDI_PITCH) is None
            and not self._harmonic_of_a_note(pitch_bin + LOWEST_MIDI_PITCH)
        )
        if not self._gate_open(onset_frame):
            return
        if support < p.frame_threshold and not ramping:
            if frames_ago == 1 and self._probation_frames > 0:
                self._dipped[pitch_bin + LOWEST_MIDI_PITCH] = (onset_frame, peak)
            return
        onset_sample = FRAME_HOP_SAMPLES * onset_frame
        pitch = pitch_bin + LOWEST_MIDI_PITCH
        holder = self._holder_near(pitch)
        restrike = holder is not None and holder.pitch == pitch
        if holder is not None and (
            holder.start_sample >= onset_sample
            or (holder.pitch == pitch and onset_sample - holder.start_sample <= FRAME_HOP_SAMPLES)
        ):
            # a note started by this onset or a later one; or at this pitch a frame before: the
            # same attack (the preview, with less lookahead, can confirm a rising onset early)
            return
        if holder is not None:
            # the holder's energy (which follows its pitch) over the last frames up to now
            # up to the onset frame (t-1): a drop after the onset is the note ending, not a re-attack
            before_onset = (
                holder.recent_energy[: len(holder.recent_energy) - frames_ago] or holder.recent_energy
            )
            in_attack = (
                holder.attacked
                and holder.pitch == pitch
                and onset_sample - holder.start_sample <= self._attack_samples
            )
            went_quiet = _went_quiet(before_onset, p.frame_threshold, p.retrigger_dip)
            if in_attack and not went_quiet:
                return  # the same attack, its onset posterior peaking again
            # a slide reaching the next pitch: the onset posterior fires there and the energy
            # wavers as it moves between bins; the note goes on, bending (a pitch the slide
            # left behind, or one further ahead, is another note)
            direction = _glide_direction(holder.recent_bends)
            ahead = direction * (pitch - _tracked_pitch(holder))
            reached = direction != 0.0 and -GLIDE_BEHIND_SEMITONES <= ahead <= GLIDE_AHEAD_SEMITONES
            if reached and pitch != holder.pitch and not went_quiet and peak < p.retrigger_onset:
                return
            dipped = _fell(before_onset, p.retrigger_dip) or min(before_onset) < p.frame_threshold
            if not dipped and peak < p.retrigger_onset:
                return  # the held note moves or wavers: vibrato, scoop, slide
            if restrike and onset_sample - holder.start_sample < self._min_note_samples:
                return  # a note is not struck again before min_note_ms: the same attack
            self._end(holder, max(onset_sample, holder.start_sample), frame.emitted_sample, intents)
        if pitch in {v.pitch for v in self._voices.values()}:
            return
        weak = support < p.instant_support and self._probation_frames > 0
        if weak:
            held = self._probation_held(frame, note, pitch_bin, onset_frame)
            if held is False:
                if frames_ago == 1 and not restrike:  # it may rise again within its ramp frames
                    self._dipped[pitch] = (onset_frame, peak)
                return
            if held is None:
                if pitch not in self._pending:
                    ramped = support < p.frame_threshold
                    self._pending[pitch] = _Pending(
                        pitch, onset_sample, onset_frame, peak, support, restrike, ramped
                    )
                return
        self._pending.pop(pitch, None)
        if weak and not restrike and self._overtone_of_louder(pitch, support):
            return
        self._admit(pitch, onset_velocity(peak, support), onset_sample, frame, intents, support)

    def _overtone_of_louder(self, pitch: int, support: float) -> bool:
        """Whether ``pitch`` is a low harmonic of a sounding note whose energy is more than
        ``support / OVERTONE_SHARE``: the model's echo of that note's overtone."""
        return any(
            pitch - voice.pitch in OVERTONE_INTERVALS and support < OVERTONE_SHARE * voice.energy
            for voice in self._voices.values()
        )

    def _gate_open(self, onset_frame: int) -> bool:
        """Whether the input's level of a frame from ``onset_frame`` on reached ``gate_dbfs``."""
        gate = self.params.gate_dbfs
        if gate <= GATE_OFF_DBFS:  # the documented "off": even a quieter input plays
            return True
        return any(level >= gate for index, level in self._recent_levels_db if index >= onset_frame)

    def _probation_held(
        self, frame: Frame, note: npt.NDArray[np.float32], pitch_bin: int, onset_frame: int
    ) -> bool | None:
        """Whether the note posterior at ``pitch_bin`` holds over the probation frames after
        ``onset_frame``: True once this frame and its preview cover them all, False if this
        (published) frame, one of them, fell below the threshold, None while undecided.

        The preview has less lookahead, so it may admit a note early but never rejects one:
        where it dips, the note waits for the published frames.
        """
        if frame.index > onset_frame and float(note[pitch_bin]) < self.params.frame_threshold:
            ramping = frame.index <= onset_frame + _ramp_frames(pitch_bin) and self._rising(note, pitch_bin)
            if not ramping:
                return False
        return (
            frame.index + self._preview_run(frame, pitch_bin) >= onset_frame + self._probation_frames or None
        )

    def _harmonic_of_a_note(self, pitch: int) -> bool:
        """Whether ``pitch`` is a low harmonic (``OVERTONE_INTERVALS``) of a sounding note, an
        onset in probation (other than its own), or an onset peaking in this frame or the one
        before (an overtone's onset can come a frame before its fundamental's), or an octave
        below a sounding note or an onset in probation: a slowly rising posterior there belongs
        to that note. An octave below an onset peaking now is not excluded: a chord's
        fundamental and its 2nd harmonic peak together."""
        threshold = self.params.onset_threshold
        attacking = np.maximum(self._strength_history[0], self._strength_now) >= threshold
        held = [v.pitch for v in self._voices.values()] + [q for q in self._pending if q != pitch]
        others = held + (np.flatnonzero(attacking) + LOWEST_MIDI_PITCH).tolist()
        return any(pitch - other in OVERTONE_INTERVALS for other in others) or any(
            other - pitch == 12 for other in held
        )

    def _rising(self, note: npt.NDArray[np.float32], pitch_bin: int) -> bool:
        """Whether the note posterior at ``pitch_bin`` rose into this (published) frame: an
        attack still ramping up. (The preview cannot tell: with less lookahead it lags the rise.)"""
        return float(self._note_history[0][pitch_bin]) < float(note[pitch_bin])

    def _preview_run(self, frame: Frame, pitch_bin: int) -> int:
        """How many of the frame's first preview frames (at most the probation length) have the
        note posterior at ``pitch_bin`` at or above the frame threshold, without a gap."""
        values = frame.preview_note[: self._probation_frames, pitch_bin]
        below = np.flatnonzero(values < self.params.frame_threshold)
        return int(below[0]) if below.size else int(values.shape[0])

    def _admit(
        self,
        pitch: int,
        velocity: int,
        onset_sample: int,
        frame: Frame,
        intents: list[Intent],
        support: float,
    ) -> None:
        """Start a note; at the polyphony limit it replaces the weakest older note, if stronger."""
        if len(self._voices) >= self.params.max_polyphony:
            older = [v for v in self._voices.values() if v.start_sample < onset_sample]
            victim = min(older, key=lambda v: (v.energy, v.note_id)) if older else None
            if victim is None or victim.energy >= support:
                return  # every sounding note is as strong, or started with this one: skip it
            self._end(victim, onset_sample, frame.emitted_sample, intents)
        self._start(pitch, velocity, onset_sample, frame, intents, support)

    def _holder_near(self, pitch: int) -> _Voice | None:
        """The sounding note whose pitch is, or has moved to, within a semitone of ``pitch``."""
        best: _Voice | None = None
        best_distance = 1.5
        for voice in self._voices.values():
            distance = min(abs(voice.pitch - pitch), abs(_tracked_pitch(voice) - pitch))
            if distance <= 1.0 and distance < best_distance:
                best, best_distance = voice, distance
        return best

    def _start(
        self,
        pitch: int,
        velocity: int,
        onset_sample: int,
        frame: Frame,
        intents: list[Intent],
        support: float,
    ) -> None:
        onset_sample = self._after_its_last_end(pitch, onset_sample)
        centre_bin = float(contour_bin_of_pitch(pitch))
        tracked = self._peak_near(frame.contour, centre_bin)
        bend = 0.0 if tracked is None else (tracked - centre_bin) / CONTOUR_BINS_PER_SEMITONE
        voice = _Voice(
            note_id=self._next_id,
            pitch=pitch,
            start_sample=onset_sample,
            level=support,
            tracked_bin=centre_bin if tracked is None else tracked,
            bend_semitones=bend,
            energy=support,
            recent_energy=[support],
        )
        self._next_id += 1
        self._voices[voice.note_id] = voice
        intents.append(NoteStart(voice.note_id, pitch, velocity, bend, onset_sample, frame.emitted_sample))

    def _after_its_last_end(self, pitch: int, start_sample: int) -> int:
        """A note dated back (its onset, a pitch move) starts no earlier than the last note of
        its pitch ended: the two never overlap in time, on one channel or in a file."""
        return max(start_sample, self._ended_at.get(pitch, start_sample))

    def _end(self, voice: _Voice, time_sample: int, emitted_sample: int, intents: list[Intent]) -> None:
        self._ended_at[voice.pitch] = time_sample
        del self._voices[voice.note_id]
        intents.append(NoteEnd(voice.note_id, voice.pitch, time_sample, emitted_sample))

    def _peak_near(self, contour: npt.NDArray[np.float32], around_bin: float) -> float | None:
        """Sub-bin contour peak within ``BEND_SEARCH_BINS`` of ``around_bin``, or None if weak."""
        centre = round(around_bin)
        bins = centre + self._search_offsets
        valid = (bins >= 0) & (bins < N_CONTOUR_BINS)
        bins = bins[valid]
        values = contour[bins].astype(np.float64)
        if values.size == 0 or float(values.max()) < CONTOUR_FLOOR:
            return None
        weighted = values * np.exp(-0.5 * ((bins - around_bin) / self._search_std) ** 2)
        k = int(np.argmax(weighted))
        shift = 0.0
        if 0 < k < weighted.size - 1:
            left, mid, right = weighted[k - 1], weighted[k], weighted[k + 1]
            curvature = left - 2.0 * mid + right
            if curvature < 0.0:
                shift = float(np.clip(0.5 * (left - right) / curvature, -0.5, 0.5))
        return float(bins[k]) + shift

    def _track_pitches(self, frame: Frame, intents: list[Intent]) -> None:
        started = {i.note_id for i in intents if isinstance(i, NoteStart)}
        for voice in list(self._voices.values()):
            if voice.note_id in started:
                continue
            tracked = self._peak_near(frame.contour, voice.tracked_bin)
            if tracked is None:
                continue
            voice.tracked_bin = tracked
            raw = (tracked - contour_bin_of_pitch(voice.pitch)) / CONTOUR_BINS_PER_SEMITONE
            voice.bend_semitones += self._bend_alpha * (raw - voice.bend_semitones)
            voice.recent_bends.append(raw)
            voice.recent_samples.append(frame.centre_sample)
            if len(voice.recent_bends) > max(self._repitch_frames + self._jump_frames, GLIDE_SPAN_FRAMES):
                del voice.recent_bends[0], voice.recent_samples[0]
            if self._should_repitch(voice, raw) and self._repitch(voice, raw, frame, intents):
                continue
            if voice.quiet_frames:  # it may be ending, at its first quiet frame: no bend after its end
                continue
            intents.append(
                NoteBend(
                    voice.note_id,
                    voice.pitch,
                    voice.bend_semitones,
                    frame.centre_sample,
                    frame.emitted_sample,
                )
            )

    def _should_repitch(self, voice: _Voice, raw_bend: float) -> bool:
        n = self._repitch_frames
        recent = voice.recent_bends[-n:]
        if len(recent) < n:
            return False
        limit = self.params.max_bend_semitones
        if all(abs(b) > limit for b in recent):
            return True
        threshold = self.params.repitch_semitones
        same_side = all(b >= threshold for b in recent) or all(b <= -threshold for b in recent)
        if not same_side or max(recent) - min(recent) >= SETTLE_SEMITONES:
            return False
        before = voice.recent_bends[-(n + self._jump_frames) : -n]
        return any(abs(b) < threshold / 2 for b in before)

    def _repitch(self, voice: _Voice, raw_bend: float, frame: Frame, intents: list[Intent]) -> bool:
        """Move a note whose pitch has settled elsewhere to the nearest pitch; True if moved."""
        new_pitch = voice.pitch + round(raw_bend)
        if new_pitch == voice.pitch or not LOWEST_MIDI_PITCH <= new_pitch < LOWEST_MIDI_PITCH + N_PITCHES:
            return False
        since = max(voice.recent_samples[-self._repitch_frames], voice.start_sample + 1)
        velocity = onset_velocity(0.0, voice.level)
        self._end(voice, since, frame.emitted_sample, intents)
        if new_pitch in {v.pitch for v in self._voices.values()}:
            return True  # another note already sounds there
        if not self._in_range[new_pitch - LOWEST_MIDI_PITCH]:
            return True
        since = self._after_its_last_end(new_pitch, since)
        moved = _Voice(
            note_id=self._next_id,
            pitch=new_pitch,
            start_sample=since,
            level=voice.level,
            tracked_bin=voice.tracked_bin,
            bend_semitones=(voice.tracked_bin - contour_bin_of_pitch(new_pitch)) / CONTOUR_BINS_PER_SEMITONE,
            energy=voice.energy,
            attacked=False,
        )
        self._next_id += 1
        self._voices[moved.note_id] = moved
        intents.append(
            NoteStart(moved.note_id, new_pitch, velocity, moved.bend_semitones, since, frame.emitted_sample)
        )
        return True
