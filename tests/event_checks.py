"""Invariants every event stream must satisfy, shared by the engine and tracker tests."""

from __future__ import annotations

from collections.abc import Sequence

from livepitch.events import Event, NoteOff, NoteOn, PitchBend


def check_event_stream(events: Sequence[Event], finished: bool = True) -> None:
    """Assert the stream's invariants.

    Events come in emission order; no event is dated after its emission; every note-on has
    exactly one later note-off on its channel and pitch (once the stream is ``finished``);
    a pitch is never started twice on one channel without a note-off between; a bend only
    moves a channel whose note sounds, or pre-positions the wheel for the note-on that follows
    it on that channel.
    """
    sounding: set[tuple[int, int]] = set()
    previous_emitted = 0
    for index, event in enumerate(events):
        assert event.emitted_sample >= previous_emitted, f"event {index} emitted out of order"
        previous_emitted = event.emitted_sample
        assert event.time_sample <= event.emitted_sample, f"event {index} dated after its emission"
        key = (event.channel, event.pitch)
        if isinstance(event, NoteOn):
            assert key not in sounding, f"event {index}: note-on for a sounding {key}"
            sounding.add(key)
        elif isinstance(event, NoteOff):
            assert key in sounding, f"event {index}: note-off for a silent {key}"
            sounding.discard(key)
        else:
            assert isinstance(event, PitchBend)
            following = next((e for e in events[index + 1 :] if e.channel == event.channel), None)
            prepositions = isinstance(following, NoteOn) and following.pitch == event.pitch
            on_channel = any(channel == event.channel for channel, _ in sounding)
            assert on_channel or prepositions, f"event {index}: bend on channel {event.channel} with no note"
    if finished:
        assert sounding == set(), f"notes left sounding: {sorted(sounding)}"


def note_ons(events: Sequence[Event]) -> list[NoteOn]:
    """The note-on events."""
    return [e for e in events if isinstance(e, NoteOn)]
