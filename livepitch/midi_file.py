"""Write notes to a Standard MIDI File with mido, with bends as the settings say."""

from __future__ import annotations

import dataclasses
import itertools
from collections import defaultdict
from pathlib import Path

import mido

from livepitch.errors import unwritable
from livepitch.geometry import MODEL_RATE_HZ
from livepitch.midi_protocol import (
    MPE_MEMBER_CHANNELS,
    bend_range_messages,
    bend_to_pitchwheel,
    mpe_zone_messages,
    mpe_zone_off_messages,
)
from livepitch.notes import Note
from livepitch.output_files import replaced_whole
from livepitch.settings import BendMode

TICKS_PER_BEAT = 480
TEMPO_US_PER_BEAT = 500_000
"""120 beats per minute, as upstream writes."""

_ORDER_NOTE_OFF, _ORDER_BEND_BEFORE_ON, _ORDER_NOTE_ON, _ORDER_BEND = range(4)


def samples_to_ticks(sample: int) -> int:
    """Model-rate sample index to MIDI ticks at 120 bpm and 480 ticks per beat."""
    ticks_per_s = TICKS_PER_BEAT * 1_000_000 / TEMPO_US_PER_BEAT
    return round(sample * ticks_per_s / MODEL_RATE_HZ)


def assign_mpe_channels(notes: list[Note]) -> list[int]:
    """A member channel per note (same order as ``notes``) so that overlapping notes differ.

    Each note takes the member channel that has been free longest, so a note's release on a
    synth is not bent by the next note. With more than 15 notes at once, the note shares the
    channel whose current note ends first (``notes_to_midi`` then bends neither).
    """
    free_since = {channel: i - len(MPE_MEMBER_CHANNELS) for i, channel in enumerate(MPE_MEMBER_CHANNELS)}
    busy_until: dict[int, int] = {}
    channels = [0] * len(notes)
    for index in sorted(range(len(notes)), key=lambda i: notes[i].start_sample):
        note = notes[index]
        for channel, end in list(busy_until.items()):
            if end <= note.start_sample:
                del busy_until[channel]
                free_since[channel] = end
        if free_since:
            channel = min(free_since, key=lambda c: free_since[c])
            del free_since[channel]
        else:
            channel = min(busy_until, key=lambda c: busy_until[c])
        busy_until[channel] = max(busy_until.get(channel, 0), note.end_sample)
        channels[index] = channel
    return channels


def _overlaps_another(notes: list[Note]) -> list[bool]:
    order = sorted(range(len(notes)), key=lambda i: notes[i].start_sample)
    overlapping = [False] * len(notes)
    latest_end, latest_index = -1, -1
    for index in order:
        note = notes[index]
        if note.start_sample < latest_end:
            overlapping[index] = True
            overlapping[latest_index] = True
        if note.end_sample > latest_end:
            latest_end, latest_index = note.end_sample, index
    return overlapping


def _shares_its_channel(notes: list[Note], channels: list[int]) -> list[bool]:
    """Whether each note overlaps another note on its channel."""
    by_channel: dict[int, list[int]] = defaultdict(list)
    for index, channel in enumerate(channels):
        by_channel[channel].append(index)
    sharing = [False] * len(notes)
    for indices in by_channel.values():
        for index, overlapping in zip(indices, _overlaps_another([notes[i] for i in indices]), strict=True):
            sharing[index] = overlapping
    return sharing


def _end_repeated_pitches(notes: list[Note], channels: list[int]) -> list[Note]:
    """End a note where the next note of the same pitch on its channel starts."""
    by_key: dict[tuple[int, int], list[int]] = defaultdict(list)
    for index, note in enumerate(notes):
        by_key[(channels[index], note.pitch)].append(index)
    trimmed = list(notes)
    for indices in by_key.values():
        indices.sort(key=lambda i: notes[i].start_sample)
        for current, following in itertools.pairwise(indices):
            if notes[current].end_sample > notes[following].start_sample:
                trimmed[current] = dataclasses.replace(
                    notes[current],
                    end_sample=max(notes[following].start_sample, notes[current].start_sample + 1),
                )
    return trimmed


def setup_messages(
    bends: BendMode, bend_range_semitones: int, leaving_mpe: bool = False
) -> list[mido.Message]:
    """What a file or port sends first: the MPE zone, or the bend range on channel 1, or nothing;
    ``leaving_mpe`` (a switch from MPE to another mode) ends the zone first."""
    ending = mpe_zone_off_messages() if leaving_mpe and bends is not BendMode.MPE else []
    if bends is BendMode.MPE:
        return mpe_zone_messages(bend_range_semitones)
    if bends is BendMode.SINGLE:
        return ending + bend_range_messages(0, bend_range_semitones)
    return ending


def notes_to_midi(notes: list[Note], bends: BendMode, bend_range_semitones: int) -> mido.MidiFile:
    """A type-0 MIDI file holding ``notes`` with bends in the ``bends`` mode.

    ``single``: channel 1; bends only for notes that overlap no other note (one channel has
    one pitch wheel); the wheel returns to centre when a bent note ends. ``mpe``: lower zone,
    one member channel per sounding note, each note's bends on its own channel (beyond 15 notes
    at once a note shares a channel, and the notes sharing one play unbent).
    """
    if bends is BendMode.MPE:
        channels = assign_mpe_channels(notes)
        sharing = _shares_its_channel(notes, channels)  # (more than 15 at once: one wheel, two notes)
        with_bends = [note.has_bends and not sharing[i] for i, note in enumerate(notes)]
    else:
        channels = [0] * len(notes)
        overlapping = _overlaps_another(notes)
        with_bends = [
            bends is BendMode.SINGLE and note.has_bends and not overlapping[i] for i, note in enumerate(notes)
        ]
    notes = _end_repeated_pitches(notes, channels)

    timed: list[tuple[int, int, int, mido.Message]] = []
    for index, note in enumerate(notes):
        channel = channels[index]
        if with_bends[index]:
            last_value: int | None = None
            for sample, semitones in zip(
                note.bend_samples.tolist(), note.bend_semitones.tolist(), strict=True
            ):
                if sample >= note.end_sample:
                    break
                value = bend_to_pitchwheel(semitones, bend_range_semitones)
                if value == last_value:
                    continue
                order = _ORDER_BEND_BEFORE_ON if last_value is None else _ORDER_BEND
                sample = max(sample, note.start_sample)
                timed.append((sample, order, index, mido.Message("pitchwheel", channel=channel, pitch=value)))
                last_value = value
            if bends is BendMode.SINGLE and last_value not in (None, 0):
                reset = mido.Message("pitchwheel", channel=channel, pitch=0)
                timed.append((note.end_sample, _ORDER_NOTE_OFF, index, reset))
        elif bends is BendMode.MPE:
            centre = mido.Message("pitchwheel", channel=channel, pitch=0)
            timed.append((note.start_sample, _ORDER_BEND_BEFORE_ON, index, centre))
        on = mido.Message("note_on", channel=channel, note=note.pitch, velocity=note.velocity)
        off = mido.Message("note_off", channel=channel, note=note.pitch, velocity=0)
        timed.append((note.start_sample, _ORDER_NOTE_ON, index, on))
        timed.append((note.end_sample, _ORDER_NOTE_OFF, index, off))
    timed.sort(key=lambda item: (samples_to_ticks(item[0]), item[1], item[2]))

    return timed_messages_to_midi(
        [(sample, message) for sample, _, _, message in timed], bends, bend_range_semitones
    )


def timed_messages_to_midi(
    timed: list[tuple[int, mido.Message]], bends: BendMode, bend_range_semitones: int, in_ticks: bool = False
) -> mido.MidiFile:
    """A type-0 file at 120 bpm: the setup messages, then ``(time, message)`` pairs in order.

    Times are model-rate samples, or MIDI ticks with ``in_ticks``.
    """
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("set_tempo", tempo=TEMPO_US_PER_BEAT, time=0))
    track.extend(setup_messages(bends, bend_range_semitones))
    previous_tick = 0
    for time, message in timed:
        tick = time if in_ticks else samples_to_ticks(time)
        track.append(message.copy(time=tick - previous_tick))
        previous_tick = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    midi = mido.MidiFile(type=0, ticks_per_beat=TICKS_PER_BEAT)
    midi.tracks.append(track)
    return midi


def write_midi_file(path: str | Path, notes: list[Note], bends: BendMode, bend_range_semitones: int) -> None:
    """Write ``notes`` to ``path``; an unwritable path raises ``OutputError``."""
    midi = notes_to_midi(notes, bends, bend_range_semitones)
    try:
        with replaced_whole(path) as written:
            midi.save(str(written))
    except OSError as err:
        raise unwritable(path, err) from err
