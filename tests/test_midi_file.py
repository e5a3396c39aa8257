"""MIDI files: RPN bend range, bend values, MPE zone and channel allocation, single-channel rules."""

from __future__ import annotations

from pathlib import Path

import mido
import numpy as np
import pytest

from livepitch.errors import OutputError
from livepitch.events import PitchBend
from livepitch.midi_file import assign_mpe_channels, notes_to_midi, samples_to_ticks, write_midi_file
from livepitch.midi_protocol import bend_to_pitchwheel
from livepitch.notes import Note
from livepitch.settings import BendMode


def _note(start_s: float, end_s: float, pitch: int, bend: float | None = None) -> Note:
    start, end = round(start_s * 22050), round(end_s * 22050)
    if bend is None:
        return Note(start, end, pitch, 0.5)
    frames = np.arange(start, end, 256, dtype=np.int64)
    return Note(
        start, end, pitch, 0.5, bend_samples=frames, bend_semitones=np.full(len(frames), bend, np.float32)
    )


def _messages(midi: mido.MidiFile) -> list[tuple[int, mido.Message]]:
    tick, out = 0, []
    for message in midi.tracks[0]:
        tick += message.time
        if not message.is_meta:
            out.append((tick, message))
    return out


def _rpn0(messages: list[tuple[int, mido.Message]], channel: int) -> int | None:
    ccs = [(m.control, m.value) for _, m in messages if m.type == "control_change" and m.channel == channel]
    for i in range(len(ccs) - 2):
        if ccs[i] == (101, 0) and ccs[i + 1] == (100, 0) and ccs[i + 2][0] == 6:
            assert (101, 127) in ccs[i + 3 :] and (100, 127) in ccs[i + 3 :], "RPN null must follow"
            return int(ccs[i + 2][1])
    return None


def test_pitchwheel_conversion_is_centred_and_clipped() -> None:
    assert bend_to_pitchwheel(0.0, 2) == 0
    assert bend_to_pitchwheel(1.0, 2) == 4096
    assert bend_to_pitchwheel(-2.0, 2) == -8192
    assert bend_to_pitchwheel(5.0, 2) == 8191
    assert bend_to_pitchwheel(1.0, 48) == round(8192 / 48)


def test_single_mode_announces_range_and_bends_only_notes_that_overlap_nothing() -> None:
    notes = [_note(0.0, 0.5, 60, bend=0.25), _note(1.0, 2.0, 64, bend=0.5), _note(1.5, 2.5, 67, bend=-0.5)]
    messages = _messages(notes_to_midi(notes, BendMode.SINGLE, 2))
    assert _rpn0(messages, 0) == 2
    bends = [(t, m.pitch) for t, m in messages if m.type == "pitchwheel"]
    assert bends == [(0, 1024), (samples_to_ticks(round(0.5 * 22050)), 0)]
    assert {m.channel for _, m in messages} == {0}
    on_ticks = [t for t, m in messages if m.type == "note_on"]
    assert on_ticks == [0, 960, 1440]


def test_bend_precedes_note_on_at_the_same_tick() -> None:
    messages = _messages(notes_to_midi([_note(0.3, 0.6, 60, bend=0.1)], BendMode.SINGLE, 2))
    kinds = [m.type for _, m in messages if m.type in ("pitchwheel", "note_on")]
    assert kinds[:2] == ["pitchwheel", "note_on"]


def test_mpe_mode_configures_the_zone_and_puts_overlapping_notes_on_member_channels() -> None:
    notes = [_note(0.0, 1.0, 60, bend=0.5), _note(0.2, 1.0, 64, bend=-0.25), _note(1.5, 2.0, 67, bend=0.0)]
    messages = _messages(notes_to_midi(notes, BendMode.MPE, 48))
    ccs = [(m.channel, m.control, m.value) for _, m in messages if m.type == "control_change"]
    assert ccs[:3] == [(0, 101, 0), (0, 100, 6), (0, 6, 15)]  # MPE configuration: 15 members
    for channel in range(1, 16):
        assert _rpn0(messages, channel) == 48
    ons = [(m.channel, m.note) for _, m in messages if m.type == "note_on"]
    assert len({c for c, _ in ons[:2]}) == 2 and all(1 <= c <= 15 for c, _ in ons)
    wheel = {(m.channel, m.pitch) for _, m in messages if m.type == "pitchwheel"}
    assert (ons[0][0], bend_to_pitchwheel(0.5, 48)) in wheel
    assert (ons[1][0], bend_to_pitchwheel(-0.25, 48)) in wheel


def test_the_mpe_zone_sets_the_manager_channels_bend_range_to_2() -> None:
    """Channel 1, the zone's manager, may hold another range from a session in single mode
    (--bend-range 12): a bend on it moves the whole zone, so it goes back to MPE's +-2."""
    messages = _messages(notes_to_midi([_note(0.0, 0.5, 60)], BendMode.MPE, 48))
    assert _rpn0(messages, 0) == 2


def test_mpe_channels_rotate_to_the_longest_free_and_share_only_beyond_fifteen() -> None:
    sequential = [_note(i * 0.1, i * 0.1 + 0.05, 60) for i in range(3)]
    assert assign_mpe_channels(sequential) == [1, 2, 3]
    crowd = [_note(0.0, 1.0 + i * 0.01, 40 + i) for i in range(16)]
    channels = assign_mpe_channels(crowd)
    assert sorted(set(channels[:15])) == list(range(1, 16))
    assert channels[15] == channels[0]  # shares the channel whose note ends first


def test_notes_sharing_an_mpe_channel_beyond_fifteen_play_unbent() -> None:
    """One wheel cannot bend two notes apart: the 16th note and the one whose channel it shares
    get a centred wheel and no bends; the other 14 keep theirs."""
    crowd = [_note(0.0, 1.0 + i * 0.01, 40 + i, bend=0.3) for i in range(16)]
    messages = _messages(notes_to_midi(crowd, BendMode.MPE, 48))
    shared = assign_mpe_channels(crowd)[15]
    wheels: dict[int, set[int]] = {}
    for _, message in messages:
        if message.type == "pitchwheel":
            wheels.setdefault(message.channel, set()).add(message.pitch)
    assert wheels[shared] == {0}
    assert all(
        values == {bend_to_pitchwheel(0.3, 48)} for channel, values in wheels.items() if channel != shared
    )
    assert len(wheels) == 15


def test_repeated_pitch_on_one_channel_is_ended_before_it_restarts() -> None:
    notes = [_note(0.0, 1.0, 60), _note(0.5, 1.5, 60)]
    messages = _messages(notes_to_midi(notes, BendMode.NONE, 2))
    events = [(t, m.type) for t, m in messages if m.type in ("note_on", "note_off")]
    assert events == [(0, "note_on"), (480, "note_off"), (480, "note_on"), (1440, "note_off")]


def test_every_note_on_has_a_note_off_after_a_round_trip(tmp_path: Path) -> None:
    notes = [_note(i * 0.05, i * 0.05 + 0.3, 50 + (i % 7), bend=0.1 * (i % 3)) for i in range(40)]
    for mode in BendMode:
        path = tmp_path / f"{mode.value}.mid"
        write_midi_file(path, notes, mode, 48 if mode is BendMode.MPE else 2)
        sounding: set[tuple[int, int]] = set()
        for message in mido.MidiFile(path):
            if message.type == "note_on" and message.velocity > 0:
                assert (message.channel, message.note) not in sounding
                sounding.add((message.channel, message.note))
            elif message.type == "note_off":
                sounding.discard((message.channel, message.note))
        assert sounding == set()


def test_unwritable_path_raises_output_error(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="cannot write"):
        write_midi_file(tmp_path / "missing" / "x.mid", [_note(0, 1, 60)], BendMode.NONE, 2)


def test_a_recorded_note_starts_from_the_wheel_it_was_sent_with() -> None:
    from livepitch.event_files import events_to_midi
    from livepitch.tracker import NoteBend, NoteEnd, NoteStart
    from livepitch.voices import VoiceAllocator

    def wheel_under(midi: mido.MidiFile, pitch: int) -> int:
        wheel = 0
        for message in midi.tracks[0]:
            if message.type == "pitchwheel":
                wheel = message.pitch
            elif message.type == "note_on" and message.note == pitch:
                return int(wheel)
        raise AssertionError(f"no note {pitch}")

    # a bend measured in the release frames, sent before the back-dated note-off: the next
    # in-tune note gets no bend of its own, and plays at the wheel the release left
    voices = VoiceAllocator(BendMode.SINGLE, 2, 5.0)
    events = voices.handle([NoteStart(1, 60, 100, 0.0, 0, 2000)])
    events += voices.handle([NoteBend(1, 60, 0.20, 4000, 6000)])
    events += voices.handle([NoteBend(1, 60, 0.03, 9000, 11000)])
    events += voices.handle([NoteEnd(1, 60, 8800, 11500)])
    events += voices.handle([NoteStart(2, 64, 100, 0.06, 20000, 22000)])
    live = [e.value for e in events if isinstance(e, PitchBend)][-1]
    assert wheel_under(events_to_midi(events, BendMode.SINGLE, 2), 64) == live

    # a note-on dated back to its onset sorts before bends sent earlier for the held note
    voices = VoiceAllocator(BendMode.SINGLE, 2, 5.0)
    events = voices.handle([NoteStart(1, 60, 100, 0.0, 0, 512)])
    events += voices.handle([NoteBend(1, 60, 0.20, 9984, 10496)])
    events += voices.handle([NoteBend(1, 60, 0.35, 10240, 10752)])
    events += voices.handle([NoteStart(2, 67, 80, 0.0, 9728, 11008)])
    last_wheel = [
        m.pitch for m in events_to_midi(events, BendMode.SINGLE, 2).tracks[0] if m.type == "pitchwheel"
    ][-1]
    assert last_wheel == [e.value for e in events if isinstance(e, PitchBend)][-1] == 0
