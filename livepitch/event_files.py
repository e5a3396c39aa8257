"""Streams of events as files: the events CSV, notes recovered from events, a MIDI recording."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import mido
import numpy as np

from livepitch.errors import unwritable
from livepitch.events import Event, NoteOff, NoteOn, PitchBend, event_kind
from livepitch.geometry import MODEL_RATE_HZ
from livepitch.midi_file import samples_to_ticks, setup_messages, timed_messages_to_midi
from livepitch.notes import Note
from livepitch.output_files import replaced_whole
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


def event_csv_row(event: Event) -> list[str]:
    """The events log's row for ``event`` (columns ``EVENTS_CSV_COLUMNS``)."""
    return [
        event_kind(event),
        f"{event.time_sample / MODEL_RATE_HZ:.6f}",
        f"{event.emitted_sample / MODEL_RATE_HZ:.6f}",
        str(event.pitch),
        str(event.velocity) if isinstance(event, NoteOn) else "",
        str(event.channel + 1),
        f"{event.cents:.1f}" if isinstance(event, PitchBend) else "",
    ]


def write_events_csv(path: str | Path, events: Iterable[Event]) -> None:
    """Write one row an event, in emission order, with a header row."""
    try:
        with replaced_whole(path) as written, open(written, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(EVENTS_CSV_COLUMNS)
            writer.writerows(event_csv_row(event) for event in events)
    except OSError as err:
        raise unwritable(path, err) from err


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


@dataclass(frozen=True)
class BendSwitch:
    """A reload changed the bend mode or range: events from ``index`` on use these."""

    time_sample: int
    index: int
    bends: BendMode
    bend_range_semitones: int


def events_to_midi(
    events: Iterable[Event],
    bends: BendMode,
    bend_range_semitones: int,
    switches: Sequence[BendSwitch] = (),
) -> mido.MidiFile:
    """A type-0 MIDI file of ``events`` (in the order they were sent) at their musical times.

    Events are ordered by time (note-offs, then bends, then note-ons at equal times, so a
    re-struck note ends before it starts again); a note-off that would fall on its own
    note-on's tick moves one tick later, and a note-on dated before the note-off its key was
    sent earlier moves to that note-off's tick, so no note is lost or cut. ``bends`` and the range are the
    session's first; each switch adds the new setup messages where it happened.

    Pitch wheels follow what was sent, not the musical order: each note-on starts from the
    wheel its channel had when it was sent (a note-on dated back to its onset moves before
    bends sent earlier), a bend that sorts after something its channel was sent later is left
    out, and so is a bend of a note that has ended (not a centring). Notes still open at the
    end end there.
    """
    listed = list(events)
    on_tick: dict[tuple[int, int], int] = {}
    off_tick: dict[tuple[int, int], int] = {}
    ticks: list[int] = []
    wheel_when_sent: dict[int, int] = {}  # note-on index -> its channel's wheel as sent
    wheels: dict[int, int] = {}
    for index, event in enumerate(listed):
        tick = samples_to_ticks(event.time_sample)
        key = (event.channel, event.pitch)
        if isinstance(event, NoteOn):
            tick = max(tick, off_tick.get(key, tick))  # never before the key's last note-off
            on_tick[key] = tick
            wheel_when_sent[index] = wheels.get(event.channel, 0)
        elif isinstance(event, NoteOff):
            if key in on_tick and tick <= on_tick[key]:
                tick = on_tick[key] + 1
            off_tick[key] = tick
        elif isinstance(event, PitchBend):
            wheels[event.channel] = event.value
            tick = max(tick, off_tick.get(key, tick))  # a new note's bend: not on the last one's tail
        ticks.append(tick)
    order = sorted(range(len(listed)), key=lambda i: (ticks[i], _ORDER[event_kind(listed[i])], i))
    starts = {(e.channel, e.pitch, ticks[i]) for i, e in enumerate(listed) if isinstance(e, NoteOn)}
    pending_switches = sorted(switches, key=lambda switch: switch.index)
    mode = bends  # the mode in force, so that leaving MPE ends the zone
    sounding: set[tuple[int, int]] = set()
    file_wheels: dict[int, int] = {}
    newest_sent: dict[int, int] = {}  # per channel: the latest-sent note-on or bend written
    written_on: dict[tuple[int, int], int] = {}  # the tick each key's last note-on is written at
    timed: list[tuple[int, mido.Message]] = []
    for i in order:
        event = listed[i]
        tick = ticks[i]
        while pending_switches and (
            pending_switches[0].index <= i or samples_to_ticks(pending_switches[0].time_sample) < tick
        ):
            switch = pending_switches.pop(0)
            switch_tick = max(samples_to_ticks(switch.time_sample), timed[-1][0] if timed else 0)
            leaving_mpe = mode is BendMode.MPE
            messages = setup_messages(switch.bends, switch.bend_range_semitones, leaving_mpe)
            timed.extend((switch_tick, m) for m in messages)
            mode = switch.bends
        if timed and tick < timed[-1][0]:
            tick = timed[-1][0]  # dated back to before a switch's setup (a resumed replay): after it
        key = (event.channel, event.pitch)
        if isinstance(event, NoteOff) and tick <= written_on.get(key, -1):
            tick = written_on[key] + 1  # that clamp put its note-on on its tick: keep the note
        if isinstance(event, NoteOn):
            written_on[key] = tick
            sent_wheel = wheel_when_sent[i]
            if file_wheels.get(event.channel, 0) != sent_wheel:
                timed.append((tick, mido.Message("pitchwheel", channel=event.channel, pitch=sent_wheel)))
                file_wheels[event.channel] = sent_wheel
            sounding.add(key)
            newest_sent[event.channel] = max(newest_sent.get(event.channel, -1), i)
        elif isinstance(event, NoteOff):
            sounding.discard(key)
        elif isinstance(event, PitchBend):
            if i < newest_sent.get(event.channel, -1):
                continue  # something this channel was sent after it is already written
            if event.value and key not in sounding and (event.channel, event.pitch, tick) not in starts:
                continue  # a bend of a note that has ended (the bend that pre-positions a note-on stays)
            file_wheels[event.channel] = event.value
            newest_sent[event.channel] = i
        timed.append((tick, event_to_message(event)))
    end_tick = timed[-1][0] if timed else 0
    if any(written_on.get(key, -1) >= end_tick for key in sounding):
        end_tick += 1  # a note still open began on the last tick: it ends a tick later, not at once
    for channel, pitch in sorted(sounding):
        timed.append((end_tick, mido.Message("note_off", channel=channel, note=pitch, velocity=0)))
    for switch in pending_switches:
        messages = setup_messages(switch.bends, switch.bend_range_semitones, mode is BendMode.MPE)
        timed.extend((end_tick, m) for m in messages)
        mode = switch.bends
    return timed_messages_to_midi(timed, bends, bend_range_semitones, in_ticks=True)


def write_events_midi(
    path: str | Path,
    events: Iterable[Event],
    bends: BendMode,
    bend_range_semitones: int,
    switches: Sequence[BendSwitch] = (),
    announce: Callable[[Path], None] | None = None,
) -> None:
    """Write ``events`` as a MIDI file; an unwritable path raises ``OutputError``.
    ``announce`` gets the temporary file first (see ``replaced_whole``)."""
    midi = events_to_midi(events, bends, bend_range_semitones, switches)
    try:
        with replaced_whole(path, announce) as written:
            midi.save(str(written))
    except OSError as err:
        raise unwritable(path, err) from err
