"""Streams of events as files: the events CSV, notes recovered from events, a MIDI recording."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

import mido
import numpy as np

from livepitch.errors import OutputError, first_line
from livepitch.events import Event, NoteOff, NoteOn, PitchBend, event_kind
from livepitch.geometry import MODEL_RATE_HZ
from livepitch.midi_file import samples_to_ticks, timed_messages_to_midi
from livepitch.notes import Note
from livepitch.settings import BendMode

EVENTS_CSV_COLUMNS = ("kind", "time_s", "emitted_s", "pitch", "velocity", "channel", "bend_cents")
"""``channel`` is the MIDI channel 1-16; ``time_s`` the musical time, ``emitted_s`` when it was sent."""


def event_to_message(event: Event) -> mido.Message:
    """The MIDI message of an event."""
    if isinstance(event, NoteOn):
        return mido.Message("note_on", channel=event.channel, note=event.pitch, velocity=event.velocity)
    if isinstance(event, NoteOff):
        return mido.Message("note_off", channel=event.channel, note=event.pitch, velocity=0)
    return mido.Message("pitchwheel", channel=event.channel, pitch=event.value)


def write_events_csv(path: str | Path, events: Iterable[Event]) -> None:
    """Write one row an event, in emission order, with a header row."""
    try:
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(EVENTS_CSV_COLUMNS)
            for event in events:
                writer.writerow(
                    [
                        event_kind(event),
                        f"{event.time_sample / MODEL_RATE_HZ:.6f}",
                        f"{event.emitted_sample / MODEL_RATE_HZ:.6f}",
                        event.pitch,
                        event.velocity if isinstance(event, NoteOn) else "",
                        event.channel + 1,
                        f"{event.cents:.1f}" if isinstance(event, PitchBend) else "",
                    ]
                )
    except OSError as err:
        raise OutputError(f"cannot write {path}: {first_line(err)}") from err


def events_to_notes(events: Iterable[Event]) -> list[Note]:
    """Pair note-ons with their note-offs into ``Note``s (musical times), sorted by onset.

    A note's bends are the pitch-bend events of its channel while it sounds.
    """
    open_notes: dict[tuple[int, int], tuple[NoteOn, list[int], list[float]]] = {}
    notes: list[Note] = []
    for event in events:
        key = (event.channel, event.pitch)
        if isinstance(event, NoteOn):
            open_notes[key] = (event, [], [])
        elif isinstance(event, NoteOff) and key in open_notes:
            on, bend_samples, bend_cents = open_notes.pop(key)
            end = max(event.time_sample, on.time_sample + 1)
            notes.append(
                Note(
                    start_sample=on.time_sample,
                    end_sample=end,
                    pitch=on.pitch,
                    amplitude=on.velocity / 127.0,
                    bend_samples=np.asarray(bend_samples, dtype=np.int64),
                    bend_semitones=np.asarray(bend_cents, dtype=np.float32) / 100.0,
                )
            )
        elif isinstance(event, PitchBend):
            for (channel, _pitch), (_on, samples, cents) in open_notes.items():
                if channel == event.channel:
                    samples.append(event.time_sample)
                    cents.append(event.cents)
    notes.sort(key=lambda n: (n.start_sample, n.pitch))
    return notes


_ORDER = {"note_off": 0, "pitch_bend": 1, "note_on": 2}


def events_to_midi(events: Iterable[Event], bends: BendMode, bend_range_semitones: int) -> mido.MidiFile:
    """A type-0 MIDI file of ``events`` placed at their musical times.

    Events are ordered by time (note-offs, then bends, then note-ons at equal times). A bend
    for a note that no longer sounds on its channel at that time is left out, so a file
    replays what was heard.
    """
    ordered = sorted(
        enumerate(events),
        key=lambda item: (samples_to_ticks(item[1].time_sample), _ORDER[event_kind(item[1])], item[0]),
    )
    sounding: set[tuple[int, int]] = set()
    timed: list[tuple[int, mido.Message]] = []
    for _, event in ordered:
        if isinstance(event, NoteOn):
            sounding.add((event.channel, event.pitch))
        elif isinstance(event, NoteOff):
            sounding.discard((event.channel, event.pitch))
        elif (event.channel, event.pitch) not in sounding and not _starts_next(event, ordered):
            continue
        timed.append((event.time_sample, event_to_message(event)))
    return timed_messages_to_midi(timed, bends, bend_range_semitones)


def _starts_next(bend: PitchBend, ordered: list[tuple[int, Event]]) -> bool:
    """Whether ``bend`` is the initial bend sent just before its note's note-on."""
    return any(
        isinstance(e, NoteOn)
        and e.channel == bend.channel
        and e.pitch == bend.pitch
        and e.time_sample == bend.time_sample
        for _, e in ordered
    )


def write_events_midi(
    path: str | Path, events: Iterable[Event], bends: BendMode, bend_range_semitones: int
) -> None:
    """Write ``events`` as a MIDI file; an unwritable path raises ``OutputError``."""
    midi = events_to_midi(events, bends, bend_range_semitones)
    try:
        midi.save(str(path))
    except OSError as err:
        raise OutputError(f"cannot write {path}: {first_line(err)}") from err
