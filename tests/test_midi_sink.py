"""The MIDI sink: failing ports, lost note-offs, recordings, and nothing after close."""

from __future__ import annotations

import io
import os
import threading
import time
from pathlib import Path
from typing import Any

import mido
import pytest

from livepitch.errors import MidiMessageLost, MidiPortError, OutputError
from livepitch.event_files import BendSwitch, events_to_midi, events_to_notes, write_events_midi
from livepitch.events import Event, NoteOff, NoteOn, PitchBend
from livepitch.midi_sink import MidiSink
from livepitch.settings import BendMode
from tests.fakes import RecordingPort, sounding_after


def test_a_note_off_lost_with_the_port_is_sent_on_the_new_port() -> None:
    broken = RecordingPort("first", fail_after=1)  # takes the note-on, then fails
    spare = RecordingPort("second")
    sink = MidiSink(broken, BendMode.NONE, 2, reopen=lambda: spare)
    sink.send([NoteOn(0, 10, 0, 60, 100)])
    sink.send([NoteOff(5, 20, 0, 60)])  # lost: the port just failed
    assert sink.sounding == [(0, 60)]
    sink._retry_at = 0.0  # the backoff has passed
    sink.send([NoteOn(10, 30, 0, 62, 100)])  # the worker's sends never open a port (it takes a while)
    assert spare.messages == [] and not broken.closed
    sink.poll()  # the main thread's tick closes the failed port and opens the new one
    assert broken.closed
    sink.send([NoteOn(10, 30, 0, 64, 100)])
    assert [(m.type, m.note) for m in spare.messages] == [("note_off", 60), ("note_on", 64)]
    sink.release_all()
    assert sounding_after(broken.messages + spare.messages) == set()


def test_a_port_that_fails_again_while_reopening_is_no_crash() -> None:
    broken = RecordingPort("first", fail_after=0)
    also_broken = RecordingPort("second", fail_after=0)
    sink = MidiSink(None, BendMode.MPE, 48, reopen=lambda: also_broken)
    sink._port = broken
    sink.send([NoteOn(0, 10, 1, 60, 100)])  # fails
    sink._retry_at = 0.0
    sink.poll()  # the MPE setup fails on the reopened port
    assert sink.port_name is None and sink.sounding == [] and sink.send_errors == 2


def test_nothing_is_sent_after_close() -> None:
    port = RecordingPort()
    sink = MidiSink(port, BendMode.NONE, 2)
    sink.close()
    sink.send([NoteOn(0, 10, 0, 60, 100)])
    sink.release_all()
    assert port.messages == [] and port.closed


def test_an_unwritable_recording_fails_at_the_start(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="does not exist"):
        MidiSink(RecordingPort(), BendMode.NONE, 2, record_path=tmp_path / "missing" / "x.mid")


def test_a_zero_length_note_survives_in_a_file() -> None:
    midi = events_to_midi([NoteOn(1000, 2000, 0, 60, 90), NoteOff(1000, 2000, 0, 60)], BendMode.NONE, 2)
    messages = [m for m in midi.tracks[0] if not m.is_meta]
    assert [(m.type, m.time) for m in messages] == [("note_on", 44), ("note_off", 1)]


def test_a_zero_length_note_is_a_note_of_one_sample_in_the_notes_list() -> None:
    """A note ended where it started (a release at its onset) still lasts a sample: a note of
    no length is refused, and ``transcribe --stream --csv`` would fail on it."""
    (note,) = events_to_notes([NoteOn(100, 100, 0, 60, 90), NoteOff(100, 100, 0, 60)])
    assert (note.start_sample, note.end_sample, note.pitch) == (100, 101, 60)


def test_a_release_sends_a_note_off_for_each_sounding_note_not_only_all_notes_off() -> None:
    """Many synths ignore All Notes Off (or hold the notes it ends under a sustain pedal): the
    notes the engine did not end (its worker hung) get a note-off of their own."""
    port = RecordingPort()
    sink = MidiSink(port, BendMode.NONE, 2)
    sink.send([NoteOn(0, 10, 0, 60, 100), NoteOn(0, 10, 0, 64, 100)])
    sink.release_all()
    offs = [(m.channel, m.note) for m in port.messages if m.type == "note_off"]
    assert offs == [(0, 60), (0, 64)]


def test_all_notes_off_goes_once_per_channel_until_that_channel_plays_again_or_the_port_is_new() -> None:
    """A replay's end and the shutdown after it both release: the synth heard All Notes Off
    the first time. A note since, or a reopened port (maybe another synth), needs it again."""
    first, spare = RecordingPort("first", fail_after=3), RecordingPort("second")
    sink = MidiSink(first, BendMode.NONE, 2, reopen=lambda: spare)

    def all_notes_off(port: RecordingPort) -> int:
        return sum(1 for m in port.messages if m.type == "control_change" and m.control == 123)

    sink.send([NoteOn(0, 10, 0, 60, 100), NoteOff(5, 20, 0, 60)])
    sink.release_all()
    sink.release_all()
    assert all_notes_off(first) == 1
    sink.send([PitchBend(30, 40, 1, 64, 1471, 36.0)])  # the port fails on a message to channel 2
    sink.release_all()  # (reopens it at once)
    sink.release_all()
    assert sorted(m.channel for m in spare.messages if m.type == "control_change" and m.control == 123) == [
        0,
        1,
    ]
    sink.send([NoteOn(50, 60, 0, 62, 100)])
    sink.release_all()
    assert all_notes_off(spare) == 3 and sounding_after(first.messages + spare.messages) == set()


def test_release_centres_every_wheel_left_bent() -> None:
    port = RecordingPort()
    sink = MidiSink(port, BendMode.SINGLE, 2)
    sink.send([PitchBend(0, 10, 0, 64, 1471, 36.0), NoteOn(0, 10, 0, 64, 100), NoteOff(50, 60, 0, 64)])
    sink.release_all()
    wheels = [m.pitch for m in port.messages if m.type == "pitchwheel"]
    assert wheels == [1471, 0]  # the next session's first in-tune note needs no bend of its own
    sink.release_all()
    assert [m.pitch for m in port.messages if m.type == "pitchwheel"] == [1471, 0]  # centred once


def test_a_stop_during_the_port_backoff_still_releases_on_a_reopened_port() -> None:
    broken = RecordingPort("first", fail_after=2)  # takes two note-ons, then fails
    spare = RecordingPort("second")
    sink = MidiSink(broken, BendMode.NONE, 2, reopen=lambda: spare)
    sink.send([NoteOn(0, 10, 0, 67, 100), NoteOn(0, 10, 0, 72, 100), NoteOn(5, 20, 0, 76, 100)])
    assert sink.port_name is None and sink.sounding == [(0, 67), (0, 72)]
    sink.release_all()  # at once, well inside the backoff
    assert sounding_after(broken.messages + spare.messages) == set()
    assert sink.sounding == []


def test_a_recording_path_that_is_a_directory_fails_at_the_start(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="is a directory"):
        MidiSink(RecordingPort(), BendMode.NONE, 2, record_path=tmp_path)


def test_a_failing_events_log_does_not_lose_the_recording(tmp_path: Path) -> None:
    record = tmp_path / "session.mid"
    sink = MidiSink(RecordingPort(), BendMode.NONE, 2, record_path=record, events_csv=tmp_path / "events.csv")
    sink.send([NoteOn(0, 10, 0, 60, 100), NoteOff(2205, 2215, 0, 60)])

    class FullDisk(io.StringIO):
        def close(self) -> None:
            raise OSError(28, "No space left on device")

    sink._csv = FullDisk()
    with pytest.raises(OutputError, match="events log"):
        sink.close()
    assert [m.type for m in mido.MidiFile(record).tracks[0] if not m.is_meta] == ["note_on", "note_off"]


def test_a_wheel_release_could_not_centre_is_centred_on_the_reopened_port() -> None:
    broken = RecordingPort("first", fail_after=2)  # takes the bend and the note-on, then fails
    spare = RecordingPort("second")
    restarting = [True]

    def reopen() -> RecordingPort:
        if restarting[0]:
            raise MidiPortError("the MIDI system is restarting")
        return spare

    sink = MidiSink(None, BendMode.SINGLE, 2, reopen=reopen)
    sink._port = broken
    sink.send([PitchBend(0, 10, 0, 64, 1471, 36.0), NoteOn(0, 10, 0, 64, 100)])
    sink.send([NoteOff(9, 20, 0, 64)])  # the port fails here
    sink.release_all()  # every reopen fails too: note and wheel left on the synth
    restarting[0] = False
    sink.reconnect()
    sink.send([NoteOn(50, 60, 0, 67, 100)])  # a new session's in-tune note, no bend of its own
    sent = [
        (m.type, getattr(m, "pitch", getattr(m, "note", None)))
        for m in spare.messages
        if m.type != "control_change"
    ]
    assert sent == [("note_off", 64), ("pitchwheel", 0), ("note_on", 67)]


class _FullDisk(io.StringIO):
    """An events log on a disk that filled up: every write fails."""

    def write(self, text: str) -> int:
        raise OSError(28, "No space left on device")


def test_an_events_log_that_fails_during_the_stop_leaves_no_note_sounding(tmp_path: Path) -> None:
    port = RecordingPort()
    record = tmp_path / "session.mid"
    sink = MidiSink(port, BendMode.MPE, 48, record_path=record, events_csv=tmp_path / "events.csv")
    sink.send([NoteOn(0, 10, 1, 60, 100), NoteOn(0, 10, 2, 64, 100), NoteOn(0, 10, 3, 67, 100)])
    sink._csv = _FullDisk()
    sink.release_all([NoteOff(100, 110, 1, 60), NoteOff(100, 110, 2, 64), NoteOff(100, 110, 3, 67)])
    assert sounding_after(port.messages) == set() and sink.sounding == []
    with pytest.raises(OutputError, match=r"events\.csv is incomplete"):  # the cause was logged
        sink.close()
    assert port.closed
    notes = [(m.type, m.note) for m in mido.MidiFile(record).tracks[0] if m.type.startswith("note")]
    assert notes.count(("note_off", 67)) == 1


def test_the_recording_ends_the_notes_and_centres_the_wheels_a_release_ends(tmp_path: Path) -> None:
    record = tmp_path / "session.mid"
    sink = MidiSink(RecordingPort(), BendMode.SINGLE, 2, record_path=record)
    sink.send([NoteOn(0, 10, 0, 60, 100), PitchBend(2000, 2100, 0, 60, 1638, 40.0)])
    sink.release_all()  # no note-off from the engine (its worker hung): the sink ends the note
    sink.send([NoteOn(9000, 9100, 0, 67, 100), NoteOff(12000, 12100, 0, 67)])  # in tune: no bend sent
    sink.close()
    wheel_at_67 = None
    wheel = 0
    for message in mido.MidiFile(record).tracks[0]:
        if message.type == "pitchwheel":
            wheel = message.pitch
        elif message.type == "note_on" and message.note == 67:
            wheel_at_67 = wheel
    assert wheel_at_67 == 0  # as the synth heard it: the release centred the wheel
    written = _written(mido.MidiFile(record))
    off_60 = next(tick for tick, kind, note in written if kind == "note_off" and note == 60)
    on_67 = next(tick for tick, kind, note in written if kind == "note_on" and note == 67)
    assert off_60 <= on_67  # ended at the release, not left on under 67 to the file's end


def test_a_reopened_port_that_fails_its_setup_keeps_backing_off() -> None:
    opened: list[RecordingPort] = []

    def reopen() -> RecordingPort:
        opened.append(RecordingPort(f"p{len(opened)}", fail_after=0))  # opens, fails its first send
        return opened[-1]

    sink = MidiSink(None, BendMode.SINGLE, 2, reopen=reopen)
    delays = []
    for _ in range(4):
        sink._retry_at = 0.0
        sink.poll()
        delays.append(sink._failures)
    assert delays == [1, 2, 3, 4]


def test_a_reload_that_changes_the_bend_range_keeps_each_bends_range_in_the_recording(tmp_path: Path) -> None:
    record = tmp_path / "session.mid"
    sink = MidiSink(RecordingPort(), BendMode.MPE, 48, reopen=RecordingPort, record_path=record)
    sink.send([NoteOn(0, 10, 1, 60, 100), PitchBend(100, 110, 1, 60, 171, 100.2), NoteOff(5000, 5010, 1, 60)])
    sink.release_all()
    sink.switch_port(BendMode.MPE, 24)
    sink.time_offset_samples = 6000
    sink.send([PitchBend(0, 10, 1, 62, 341, 100.0), NoteOn(0, 10, 1, 62, 100), NoteOff(5000, 5010, 1, 62)])
    sink.close()
    ranges: dict[int, int] = {}
    parameter: dict[int, tuple[int, int]] = {}
    bent_semitones = []
    for message in mido.MidiFile(record).tracks[0]:
        if message.type == "control_change" and message.control in (101, 100):
            high, low = parameter.get(message.channel, (127, 127))
            parameter[message.channel] = (
                (message.value, low) if message.control == 101 else (high, message.value)
            )
        elif (
            message.type == "control_change"
            and message.control == 6
            and parameter.get(message.channel) == (0, 0)
        ):
            ranges[message.channel] = message.value
        elif message.type == "pitchwheel" and message.pitch:
            bent_semitones.append(round(message.pitch / 8192 * ranges[message.channel], 2))
    assert bent_semitones == [1.0, 1.0]  # each bend read at the range in force when it was sent


def test_leaving_mpe_by_reload_ends_the_zone_on_the_synth_and_in_the_recording(tmp_path: Path) -> None:
    record = tmp_path / "session.mid"
    ports = [RecordingPort("mpe"), RecordingPort("plain")]
    sink = MidiSink(ports[0], BendMode.MPE, 48, reopen=lambda: ports[1], record_path=record)
    sink.send([NoteOn(0, 10, 1, 60, 100), NoteOff(5000, 5010, 1, 60)])
    sink.release_all()
    sink.switch_port(BendMode.NONE, 2)
    sink.time_offset_samples = 6000
    sink.send([NoteOn(0, 10, 0, 62, 100), NoteOff(5000, 5010, 0, 62)])
    sink.close()

    def zone_sizes(messages: list[mido.Message]) -> list[int]:
        sizes, selected = [], (127, 127)
        for m in messages:
            if m.type == "control_change" and m.control in (101, 100):
                selected = (m.value, selected[1]) if m.control == 101 else (selected[0], m.value)
            elif m.type == "control_change" and m.control == 6 and m.channel == 0 and selected == (0, 6):
                sizes.append(m.value)
        return sizes

    assert zone_sizes(ports[1].messages) == [0]  # the zone ends before the plain notes
    assert zone_sizes(list(mido.MidiFile(record).tracks[0])) == [15, 0]


def test_a_recording_through_a_dangling_symlink_keeps_the_link(tmp_path: Path) -> None:
    link = tmp_path / "latest.mid"
    link.symlink_to(tmp_path / "take-1.mid")
    sink = MidiSink(RecordingPort(), BendMode.NONE, 2, record_path=link)
    assert link.is_symlink()
    sink.send([NoteOn(0, 10, 0, 60, 100), NoteOff(2205, 2215, 0, 60)])
    sink.close()
    assert link.is_symlink() and [
        m.type for m in mido.MidiFile(tmp_path / "take-1.mid").tracks[0] if not m.is_meta
    ] == [
        "note_on",
        "note_off",
    ]


def test_a_port_that_fails_on_a_release_is_reopened_at_once_for_the_rest_of_it() -> None:
    broken = RecordingPort("first", fail_after=1)  # takes the note-on, fails on the release's note-off
    spare = RecordingPort("second")
    sink = MidiSink(broken, BendMode.NONE, 2, reopen=lambda: spare)
    sink.send([NoteOn(0, 10, 0, 60, 100)])
    sink.release_all([NoteOff(100, 110, 0, 60)])
    assert sounding_after(broken.messages + spare.messages) == set() and sink.sounding == []


def test_a_port_left_holding_notes_is_reopened_by_the_poll_over_silence() -> None:
    broken = RecordingPort("first", fail_after=1)
    spare = RecordingPort("second")
    opened: list[RecordingPort] = []

    def reopen() -> RecordingPort:
        opened.append(spare)
        if len(opened) < 4:  # still away during the release's tries
            raise MidiPortError("the MIDI system is restarting")
        return spare

    sink = MidiSink(broken, BendMode.NONE, 2, reopen=reopen)
    sink.send([NoteOn(0, 10, 0, 60, 100)])
    sink.release_all([NoteOff(100, 110, 0, 60)])
    assert sink.sounding == [(0, 60)]
    while not spare.messages:  # the daemon's main loop polls every tick; no event comes
        sink._retry_at = 0.0
        sink.poll()
    assert sounding_after(broken.messages + spare.messages) == set() and sink.sounding == []


def test_a_reload_that_changes_only_the_bend_mode_keeps_the_port_and_sends_its_setup_again() -> None:
    """A synth connected to the port stays connected: the zone ends on the same port."""
    port, spare = RecordingPort("kept"), RecordingPort("new")
    sink = MidiSink(port, BendMode.MPE, 48, reopen=lambda: spare)
    sink.send([NoteOn(0, 10, 1, 60, 100), NoteOff(5000, 5010, 1, 60)])
    sink.release_all()
    before = len(port.messages)
    sink.switch_port(BendMode.SINGLE, 2, new_port=False)
    sink.send([NoteOn(0, 10, 0, 62, 100), NoteOff(5000, 5010, 0, 62)])
    assert not port.closed and not spare.messages
    after = port.messages[before:]
    assert [m.type for m in after[-2:]] == ["note_on", "note_off"] and after[-2].note == 62
    zone_end = [(m.control, m.value) for m in after[:3] if m.type == "control_change"]
    assert zone_end == [(101, 0), (100, 6), (6, 0)]  # the MPE zone's size set to 0


class _LosablePort(RecordingPort):
    """A port that can go away without its sends failing (a JACK server stopped, a synth quit)."""

    gone: str | None = None

    def lost(self) -> str | None:
        return self.gone


def test_a_port_found_lost_is_dropped_and_reopened_by_poll_not_by_the_workers_sends() -> None:
    first, second = _LosablePort("first"), _LosablePort("second")
    opened: list[str] = []

    def reopen() -> _LosablePort:
        opened.append(threading.current_thread().name)
        return second

    sink = MidiSink(first, BendMode.SINGLE, 2, reopen=reopen)
    sink.poll()  # asks the port: fine
    first.gone = "the JACK server stopped"
    sink.send([NoteOn(0, 10, 0, 60, 100)])  # a send into a port that no longer exists: no error
    sink._next_check = 0.0
    sink.poll()  # finds it lost: dropped, reopened on this thread at the next poll
    assert first.closed and sink.port_name is None and sink.send_errors == 1
    worker = threading.Thread(target=lambda: sink.send([NoteOn(100, 110, 0, 62, 100)]), name="worker")
    worker.start()
    worker.join()
    assert opened == []  # the worker's send does not try: opening takes a while
    sink.poll()
    assert opened == ["MainThread"] and sink.port_name == "second"
    sink.send([NoteOn(200, 210, 0, 64, 100)])
    notes = [(m.type, m.note) for m in second.messages if m.type in ("note_on", "note_off")]
    assert notes == [("note_off", 60), ("note_on", 64)]  # what the lost port held is ended, then on


class _WatchedPort(RecordingPort):
    """A virtual port that says who listens (a JACK port's connections)."""

    virtual = True

    def __init__(self) -> None:
        super().__init__("BasicPitch Out")
        self.connected_to: frozenset[str] = frozenset({"synth:midi_in"})

        self.left: frozenset[str] = frozenset()

    def listeners(self) -> frozenset[str]:
        return self.connected_to

    def listeners_left(self) -> frozenset[str]:
        left, self.left = self.left, frozenset()
        return left


def test_a_listener_that_connects_gets_the_note_offs_it_may_have_missed() -> None:
    """A synth disconnected mid-note misses its note-off; when it connects again, the next
    check sends a note-off for every note played that is not sounding (not the sounding
    one); nothing when no one new came, and only the setup for a listener new to the port."""
    port = _WatchedPort()
    sink = MidiSink(port, BendMode.SINGLE, 2)
    sink.poll()  # the first check: synth:midi_in listens
    sink.send([NoteOn(0, 10, 0, 60, 100), NoteOn(0, 10, 0, 64, 100)])
    port.connected_to = frozenset()  # the synth leaves, holding 60 and 64
    sink._next_check = 0.0
    sink.poll()
    sink.send([NoteOff(100, 110, 0, 60), NoteOn(100, 110, 0, 67, 100)])
    before = len(port.messages)
    sink._next_check = 0.0
    sink.poll()  # nobody new
    assert len(port.messages) == before
    port.connected_to = frozenset({"synth:midi_in"})
    sink._next_check = 0.0
    sink.poll()
    assert [(m.type, m.note) for m in port.messages[before:]] == [("note_off", 60)]  # 64 and 67 sound
    sink.send([NoteOff(200, 210, 0, 64), NoteOff(200, 210, 0, 67)])
    port.connected_to = frozenset({"recorder:in"})  # the synth leaves; a recorder new to the port comes
    before = len(port.messages)
    sink._next_check = 0.0
    sink.poll()  # it never got a note-on from the port: the setup only (nothing sounds), no note-offs
    sent = port.messages[before:]
    assert sent and not [m for m in sent if m.type == "note_off"]
    assert any(m.type == "control_change" and m.control == 101 for m in sent)  # RPN: the bend range
    port.connected_to = frozenset({"recorder:in", "synth:midi_in"})  # the synth back
    before = len(port.messages)
    sink._next_check = 0.0
    sink.poll()
    offs = [(m.type, m.note) for m in port.messages[before:] if m.type == "note_off"]
    assert offs == [("note_off", 60), ("note_off", 64), ("note_off", 67)]


def test_a_listener_that_left_and_came_back_between_two_checks_gets_the_missed_note_offs() -> None:
    """Each check sees the synth connected, but JACK told that it left meanwhile (and it missed
    60's note-off then): the check sends that note-off again, not the sounding 64's."""
    port = _WatchedPort()
    sink = MidiSink(port, BendMode.SINGLE, 2)
    sink.poll()
    sink.send([NoteOn(0, 10, 0, 60, 100), NoteOn(0, 10, 0, 64, 100)])
    sink.send([NoteOff(100, 110, 0, 60)])  # while it was away
    port.left = frozenset({"synth:midi_in", "recorder:in"})  # the recorder left for good
    before = len(port.messages)
    sink._next_check = 0.0
    sink.poll()
    assert [(m.type, m.note) for m in port.messages[before:] if m.type != "control_change"] == [
        ("note_off", 60)
    ]
    before = len(port.messages)
    sink._next_check = 0.0
    sink.poll()  # nobody left or came since
    assert port.messages[before:] == []


def test_a_stop_right_after_poll_found_the_port_lost_ends_the_notes_on_the_reopened_port() -> None:
    first, second = _LosablePort("first"), _LosablePort("second")
    sink = MidiSink(first, BendMode.NONE, 2, reopen=lambda: second)
    sink.send([NoteOn(0, 10, 0, 60, 100)])
    first.gone = "MIDI port 'synth' went away"
    sink._next_check = 0.0
    sink.poll()  # dropped; the next poll would reopen it, but a stop comes first
    sink.release_all([NoteOff(100, 110, 0, 60)])
    sink.close()
    assert ("note_off", 60) in [(m.type, getattr(m, "note", None)) for m in second.messages]
    assert sounding_after(first.messages + second.messages) == set() and sink.sounding == []


def test_a_reopened_port_ends_the_old_modes_notes_before_the_new_modes_setup() -> None:
    first, spare = RecordingPort("first"), RecordingPort("second")
    up = [False]

    def reopen() -> RecordingPort:
        if not up[0]:
            raise MidiPortError("still away")
        return spare

    sink = MidiSink(first, BendMode.MPE, 48, reopen=reopen)
    first.fail_after = len(first.messages) + 1  # takes the note-on, then fails
    sink.send([NoteOn(0, 10, 1, 60, 100)])
    sink.release_all([NoteOff(100, 110, 1, 60)])  # a reload's release: the port is down
    assert sink.sounding == [(1, 60)]
    up[0] = True
    sink.switch_port(BendMode.SINGLE, 2, new_port=False)
    first_message = spare.messages[0]
    assert (first_message.type, first_message.channel, first_message.note) == ("note_off", 1, 60)
    zone_end = [(m.control, m.value) for m in spare.messages[1:4] if m.type == "control_change"]
    assert zone_end == [(101, 0), (100, 6), (6, 0)]  # then the MPE zone ends


def test_a_note_on_sent_after_its_keys_note_off_but_dated_before_it_is_not_cut_in_a_file() -> None:
    """A release ends a note at 11000 and the same key starts again, dated back to 10752 (a
    recording across a drop or a resumed replay): the file plays both notes whole, in the order
    they were sent."""
    events: list[Event] = [
        NoteOn(2048, 3000, 0, 60, 100),
        NoteOff(11000, 11264, 0, 60),
        NoteOn(10752, 12000, 0, 60, 90),
        NoteOff(30000, 30500, 0, 60),
    ]
    midi = events_to_midi(events, BendMode.NONE, 2)
    tick, spans, started = 0, list[tuple[int, int]](), dict[int, int]()
    for message in midi.tracks[0]:
        tick += message.time
        if message.type == "note_on":
            started[message.note] = tick
        elif message.type == "note_off":
            spans.append((started.pop(message.note), tick))
    first, second = spans
    assert first[1] == second[0]  # the second starts where the first ended
    assert second[1] - second[0] > 400  # and lasts to 30000 samples, not a few ticks


def test_a_release_without_the_engines_note_offs_still_ends_every_note_in_the_events_log(
    tmp_path: Path,
) -> None:
    """A worker that did not stop gives the release no note-offs: the sink ends the notes on
    the port, in the recording and in the events log."""
    log_path, record = tmp_path / "events.csv", tmp_path / "take.mid"
    port = RecordingPort()
    sink = MidiSink(port, BendMode.MPE, 48, record_path=record, events_csv=log_path)
    sink.send([NoteOn(1000, 2000, 1, 60, 100), NoteOn(1500, 2500, 2, 64, 90), NoteOff(3000, 3100, 2, 64)])
    sink.release_all([])
    sink.close()
    rows = [line.split(",") for line in log_path.read_text().splitlines()[1:]]
    assert [(r[0], r[3], r[5]) for r in rows] == [
        ("note_on", "60", "2"),
        ("note_on", "64", "3"),
        ("note_off", "64", "3"),
        ("note_off", "60", "2"),
    ]
    assert sounding_after(port.messages) == set()
    assert sounding_after(list(mido.MidiFile(record).tracks[0])) == set()


class _Clock:
    """``time.monotonic`` for the sink, moved by hand."""

    def __init__(self) -> None:
        self.now_s = 100.0

    def monotonic(self) -> float:
        return self.now_s


class _VirtualPort(RecordingPort):
    virtual = True


def _zone_setups(messages: list[mido.Message]) -> list[int]:
    """Indices of the MPE configuration messages (RPN 6 selected on the manager channel)."""
    return [
        i
        for i in range(1, len(messages))
        if messages[i].type == messages[i - 1].type == "control_change"
        and (messages[i - 1].control, messages[i - 1].value, messages[i].control, messages[i].value)
        == (101, 0, 100, 6)
        and messages[i].channel == 0
    ]


def test_a_virtual_port_sends_its_setup_again_before_a_note_after_a_quiet_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A synth connects to the virtual port after it opened (the setup went to no one): the
    first note after a quiet second brings the zone and the bend range again, before the
    note's own bend; notes in a phrase do not."""
    clock = _Clock()
    monkeypatch.setattr("livepitch.midi_sink.time", clock)
    port = _VirtualPort()
    sink = MidiSink(port, BendMode.MPE, 48)
    assert len(_zone_setups(port.messages)) == 1
    clock.now_s += 0.5
    sink.send([PitchBend(0, 10, 1, 60, 100, 5.0), NoteOn(0, 10, 1, 60, 100)])  # 0.5 s after opening
    clock.now_s += 0.5
    sink.send([NoteOff(5000, 5010, 1, 60)])
    clock.now_s += 0.9
    sink.send([NoteOn(6000, 6010, 2, 62, 100)])  # 0.9 s after the last note ended: same phrase
    assert len(_zone_setups(port.messages)) == 1
    clock.now_s += 0.2
    sink.send([NoteOn(7000, 7010, 3, 64, 100)])  # something sounds: no setup mid-phrase
    sink.send([NoteOff(8000, 8010, 2, 62), NoteOff(8000, 8010, 3, 64)])
    clock.now_s += 1.5
    before = len(port.messages)
    sink.send([PitchBend(9000, 9010, 1, 65, -200, -10.0), NoteOn(9000, 9010, 1, 65, 100)])
    new = port.messages[before:]
    assert _zone_setups(new) == [1]
    member_ranges = [
        m.channel
        for i, m in enumerate(new)
        if m.type == "control_change" and m.control == 6 and m.value == 48
    ]
    assert member_ranges == list(range(1, 16))  # every member channel: +-48 semitones
    assert [m.type for m in new[-2:]] == ["pitchwheel", "note_on"]  # the note's bend after the setup


def test_a_virtual_port_sends_its_setup_again_in_a_phrase_that_never_pauses_a_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A synth connected in the middle of a sung phrase (no quiet second for minutes) gets the
    setup at the first gap between notes once 5 s passed since it last went out; never while
    a note sounds."""
    clock = _Clock()
    monkeypatch.setattr("livepitch.midi_sink.time", clock)
    port = _VirtualPort()
    sink = MidiSink(port, BendMode.MPE, 48)
    opened_s = clock.now_s
    setups_at: list[float] = []
    for step in range(20):  # a note every 0.5 s: 0.4 s long, then 0.1 s with nothing sounding
        before = len(_zone_setups(port.messages))
        sink.send([NoteOn(step * 100, step * 100, 1, 60 + step % 5, 100)])
        if len(_zone_setups(port.messages)) > before:
            setups_at.append(round(clock.now_s - opened_s, 3))
        clock.now_s += 0.2
        sink.send([NoteOn(step * 100 + 50, step * 100 + 50, 2, 72, 90)])  # a second voice, mid-note
        clock.now_s += 0.2
        sink.send([NoteOff(step * 100 + 80, step * 100 + 80, 1, 60 + step % 5), NoteOff(0, 0, 2, 72)])
        clock.now_s += 0.1
    assert setups_at == [5.0]  # the first note-on with nothing sounding 5 s after the port opened
    assert sounding_after(port.messages) == set()


def test_a_virtual_port_never_sends_its_setup_again_while_a_note_is_held(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A note held for 6 s, then a second voice joins: past the refresh time, but a synth may
    reset its channels on the MPE setup, cutting or detuning the held note."""
    clock = _Clock()
    monkeypatch.setattr("livepitch.midi_sink.time", clock)
    port = _VirtualPort()
    sink = MidiSink(port, BendMode.MPE, 48)
    clock.now_s += 0.5
    sink.send([NoteOn(0, 10, 1, 60, 100)])
    clock.now_s += 6.0
    before = len(port.messages)
    sink.send([NoteOn(6000, 6010, 2, 64, 100)])
    assert [m.type for m in port.messages[before:]] == ["note_on"]


def test_a_port_livepitch_connected_to_takes_its_setup_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--connect``: the connection exists when the setup goes out; no need to repeat it."""
    clock = _Clock()
    monkeypatch.setattr("livepitch.midi_sink.time", clock)
    port = RecordingPort()
    sink = MidiSink(port, BendMode.SINGLE, 12)
    setup = len(port.messages)
    clock.now_s += 10.0
    sink.send([NoteOn(0, 10, 0, 60, 100), NoteOff(5000, 5010, 0, 60)])
    assert [m.type for m in port.messages[setup:]] == ["note_on", "note_off"]


def test_a_note_dated_back_to_before_a_reloads_switch_is_written_after_the_new_setup(tmp_path: Path) -> None:
    """A reload resumes a replay a little before where it was: its first note-on can be dated
    before the bend mode switch that the reload recorded. The file stays valid."""
    events: list[Event] = [
        NoteOn(11025, 12000, 0, 60, 100),
        NoteOff(22050, 22050, 0, 60),
        NoteOn(21100, 22700, 1, 62, 100),
        NoteOff(30000, 30500, 1, 62),
    ]
    switch = BendSwitch(22050, 2, BendMode.MPE, 48)
    path = tmp_path / "take.mid"
    write_events_midi(path, events, BendMode.SINGLE, 2, [switch])
    messages = [m for m in mido.MidiFile(path).tracks[0] if not m.is_meta]
    notes = sorted((m.type, m.note) for m in messages if m.type in ("note_on", "note_off"))
    assert notes == [("note_off", 60), ("note_off", 62), ("note_on", 60), ("note_on", 62)]
    assert sounding_after(messages) == set()
    zone = next(
        i for i, m in enumerate(messages) if m.type == "control_change" and m.control == 100 and m.value == 6
    )
    second_on = next(i for i, m in enumerate(messages) if m.type == "note_on" and m.note == 62)
    assert zone < second_on  # the MPE zone is set up before the note that plays in it


class _RtMidiOutThatWarns:
    """An rtmidi ``MidiOut`` whose sends of note 61 fail as ALSA's do: through the error
    callback (a warning to python-rtmidi), not by raising."""

    def __init__(self) -> None:
        self.callback: Any = None
        self.sent: list[list[int]] = []

    def set_error_callback(self, func: Any, data: object = None) -> None:
        self.callback = func

    def send_message(self, message: list[int]) -> None:
        if message[1] == 61:
            self.callback(1, "MidiOutAlsa::sendMessage: error sending MIDI message to port.", None)
            return
        self.sent.append(message)


def test_a_send_that_rtmidi_reports_only_as_a_warning_is_a_port_error_on_a_connected_port(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """ALSA reports a failed send through the error callback (a Python warning to rtmidi): a
    port livepitch connected to is reopened (and reconnected); a virtual port is kept (its
    listeners' connections would be lost), the loss said once."""
    from livepitch.midi_port import MidiOutput, _reporting_errors
    from livepitch.settings import MidiApi

    fake = _RtMidiOutThatWarns()
    connected = _reporting_errors(MidiOutput(MidiApi.ALSA, "FLUID Synth", fake, connected=True))
    connected.send([0x90, 60, 100])
    with pytest.raises(MidiPortError, match="error sending MIDI message"):
        connected.send([0x90, 61, 100])
    connected.send([0x80, 60, 0])  # the next send is judged on its own
    assert fake.sent == [[0x90, 60, 100], [0x80, 60, 0]]

    virtual = _reporting_errors(MidiOutput(MidiApi.ALSA, "BasicPitch Out", _RtMidiOutThatWarns()))
    for _ in range(2):
        with pytest.raises(MidiMessageLost):
            virtual.send([0x90, 61, 100])
    assert caplog.text.count("error sending MIDI message") == 1


class _PortThatLosesOneNoteOff(RecordingPort):
    """A virtual port whose first note-off is lost (ALSA's queue full), the port going on."""

    lost_one = False

    def send(self, message: list[int]) -> None:
        if message[0] & 0xF0 == 0x80 and not self.lost_one:
            self.lost_one = True
            raise MidiMessageLost("lost a message")
        super().send(message)


def test_a_note_off_a_virtual_port_lost_is_sent_again_and_the_port_kept() -> None:
    port = _PortThatLosesOneNoteOff()
    sink = MidiSink(port, BendMode.NONE, 2, reopen=lambda: RecordingPort("never"))
    sink.send([NoteOn(0, 10, 0, 60, 100), NoteOff(5000, 5010, 0, 60)])
    assert sink.sounding == [(0, 60)] and sink.send_errors == 1  # the synth still holds it
    sink.poll()  # the main thread's tick
    assert sink.sounding == [] and sink.port_name == port.name and not port.closed
    assert sounding_after(port.messages) == set()


def test_a_worker_given_up_on_sends_nothing_after_the_release() -> None:
    """The worker is waiting for the sink's lock with a batch when the main thread gives up on
    it and releases: the batch must not follow the release. (``refused`` is asked only once
    the worker holds the lock: asked before, while the main thread holds it, it would have
    said no too early.)"""
    port = RecordingPort()
    sink = MidiSink(port, BendMode.NONE, 2)
    detached = [False]
    asked = threading.Event()

    def refused() -> bool:
        asked.set()
        return detached[0]

    sink.send([NoteOn(0, 10, 0, 60, 100)], refused=refused)
    asked.clear()
    with sink._lock:  # the main thread holds the sink (its release)
        worker = threading.Thread(target=lambda: sink.send([NoteOn(100, 110, 0, 64, 100)], refused=refused))
        worker.start()
        assert not asked.wait(1.0)  # the worker waits for the lock, its batch unjudged
        detached[0] = True  # the main thread's stop timed out
        sink.release_all()
    worker.join(5)
    assert asked.is_set()
    assert sounding_after(port.messages) == set() and sink.sounding == []
    assert 64 not in [m.note for m in port.messages if m.type == "note_on"]


def test_a_failed_port_is_closed_before_its_replacement_opens() -> None:
    """Two ports of one name at once would confuse whoever connects by name."""
    first = RecordingPort("BasicPitch Out")
    states: list[bool] = []

    def reopen() -> RecordingPort:
        states.append(first.closed)
        return RecordingPort("BasicPitch Out")

    sink = MidiSink(first, BendMode.NONE, 2, reopen=reopen)
    sink.send([NoteOn(0, 10, 0, 60, 100)])
    first.fail_after = len(first.messages)
    sink.release_all([NoteOff(100, 110, 0, 60)])  # fails, and the release reopens at once
    assert states == [True]


def test_an_events_log_that_cannot_be_opened_at_the_start_leaves_the_last_recording(tmp_path: Path) -> None:
    record, events = tmp_path / "take.mid", tmp_path / "take.csv"
    record.write_bytes(b"the last take")
    sink = MidiSink(RecordingPort(), BendMode.NONE, 2, record_path=record, events_csv=events, started=False)
    events.mkdir()  # it became a directory since the check
    with pytest.raises(OutputError, match=r"take\.csv"):
        sink.begin()
    sink.close()
    assert record.read_bytes() == b"the last take"


def _written(midi: mido.MidiFile) -> list[tuple[int, str, int]]:
    """(tick, type, note or wheel) of the file's channel messages other than control changes."""
    tick, out = 0, []
    for message in midi.tracks[0]:
        tick += message.time
        if message.type in ("note_on", "note_off"):
            out.append((tick, message.type, message.note))
        elif message.type == "pitchwheel":
            out.append((tick, "pitchwheel", message.pitch))
    return out


def test_a_short_note_dated_back_across_a_switch_keeps_its_length_of_a_tick_at_least() -> None:
    events: list[Event] = [
        NoteOn(11025, 12000, 0, 60, 100),
        NoteOff(22050, 22050, 0, 60),
        NoteOn(21100, 22700, 1, 64, 100),  # after the switch, dated before it
        NoteOff(21900, 22800, 1, 64),
    ]
    midi = events_to_midi(events, BendMode.SINGLE, 2, [BendSwitch(22050, 2, BendMode.MPE, 48)])
    notes = {(kind, note): tick for tick, kind, note in _written(midi) if note == 64}
    assert notes[("note_off", 64)] > notes[("note_on", 64)]


def test_a_restarted_notes_bend_is_not_written_on_the_tail_of_the_note_before() -> None:
    events: list[Event] = [
        NoteOn(0, 100, 0, 60, 100),
        NoteOff(11000, 11264, 0, 60),
        PitchBend(10752, 12000, 0, 60, 2000, 50.0),  # pre-positions the next note, dated back
        NoteOn(10752, 12000, 0, 60, 90),
        NoteOff(30000, 30500, 0, 60),
    ]
    written = _written(events_to_midi(events, BendMode.SINGLE, 2))
    old_off = next(tick for tick, kind, _ in written if kind == "note_off")
    bend = next(tick for tick, kind, value in written if kind == "pitchwheel" and value == 2000)
    assert bend >= old_off
    assert [kind for _, kind, _ in written] == ["note_on", "note_off", "pitchwheel", "note_on", "note_off"]


def test_a_note_left_open_on_the_last_tick_ends_a_tick_later() -> None:
    """No release (a recording cut short): the notes still open end at the file's end, never
    on their own note-on's tick."""
    events: list[Event] = [NoteOn(0, 10, 0, 60, 100), NoteOn(22050, 22060, 0, 64, 100)]
    written = _written(events_to_midi(events, BendMode.NONE, 2))
    on_64 = next(tick for tick, kind, note in written if kind == "note_on" and note == 64)
    offs = [tick for tick, kind, _ in written if kind == "note_off"]
    assert len(offs) == 2 and min(offs) > on_64


def test_a_long_outage_warns_once_until_the_port_is_back(caplog: pytest.LogCaptureFixture) -> None:
    """Retries go on every few seconds for as long as the port is away: one warning for the
    outage, not one per try; the next outage warns again."""
    up = [False]

    def reopen() -> RecordingPort:
        if not up[0]:
            raise MidiPortError("no JACK server")
        return RecordingPort("back")

    sink = MidiSink(None, BendMode.NONE, 2, reopen=reopen)
    with caplog.at_level("DEBUG", logger="livepitch.midi"):
        for _ in range(4):
            sink._retry_at = 0.0
            sink.poll()
        up[0] = True
        sink._retry_at = 0.0
        sink.poll()
        sink._drop_port()
        up[0] = False
        sink._retry_at = 0.0
        sink.poll()
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and "still unavailable" in r.message]
    debugs = [r for r in caplog.records if r.levelname == "DEBUG" and "still unavailable" in r.message]
    assert len(warnings) == 2 and len(debugs) == 3


def test_the_recording_so_far_is_on_disk_during_the_session(tmp_path: Path) -> None:
    """A take of hours must not live only in memory: a crash or a kill would lose all of it.
    A checkpoint writes the recording so far (a note still sounding ends where it ends) and
    puts the events log on disk; one with nothing new writes nothing."""
    record, events_csv = tmp_path / "take.mid", tmp_path / "events.csv"
    sink = MidiSink(
        RecordingPort(), BendMode.NONE, 2, record_path=record, events_csv=events_csv, save_every_s=0.0
    )
    sink.send([NoteOn(0, 10, 0, 60, 100), NoteOff(5000, 5010, 0, 60), NoteOn(6000, 6010, 0, 64, 100)])
    sink.checkpoint()
    sink.finish_save()  # (a child process writes it)
    first = mido.MidiFile(record)
    notes = [(m.type, m.note) for m in first if m.type in ("note_on", "note_off")]
    assert [n for t, n in notes if t == "note_on"] == [60, 64]
    assert len(notes) == 4  # 64, still sounding, ends with the file
    assert events_csv.read_text().count("note_on") == 2  # flushed, not waiting in a buffer
    saved_at = record.stat().st_mtime_ns
    sink.checkpoint()
    sink.finish_save()
    assert record.stat().st_mtime_ns == saved_at  # nothing new: not written again
    sink.send([NoteOff(9000, 9010, 0, 64), NoteOn(10000, 10010, 0, 67, 100)])
    deadline = time.monotonic() + 10.0  # (after a hundred times the last save's CPU time)
    while record.stat().st_mtime_ns == saved_at and time.monotonic() < deadline:
        time.sleep(0.01)
        sink.checkpoint()
        sink.finish_save()
    assert [m.note for m in mido.MidiFile(record) if m.type == "note_on"] == [60, 64, 67]
    sink.close()
    assert sounding_after(list(mido.MidiFile(record))) == set()


def test_a_recording_that_cannot_be_saved_during_the_session_is_kept_for_the_end(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "takes"
    folder.mkdir()
    record = folder / "take.mid"
    sink = MidiSink(RecordingPort(), BendMode.NONE, 2, record_path=record, save_every_s=0.0)
    folder.rmdir()  # the folder went away meanwhile (an unmounted disk, say)
    sink.send([NoteOn(0, 10, 0, 60, 100)])
    sink.checkpoint()
    sink.finish_save()
    sink.send([NoteOn(6000, 6010, 0, 64, 100)])
    time.sleep(0.1)
    sink.checkpoint()
    sink.finish_save()
    assert caplog.text.count("kept in memory") == 1  # said once
    assert "cannot write" in caplog.text and "take.mid" in caplog.text
    folder.mkdir()  # back before the end
    sink.close()
    assert [m.note for m in mido.MidiFile(record) if m.type == "note_on"] == [60, 64]


def test_a_recording_into_a_pipe_is_written_once_at_the_end(tmp_path: Path) -> None:
    """A pipe cannot be rewritten: a save during the session would send a second file down it
    (and wait for a reader)."""
    fifo = tmp_path / "take.mid"
    os.mkfifo(fifo)
    received: list[bytes] = []

    def read() -> None:  # every opening for writing is a file (the sink's own check opens it too)
        while not received or not received[-1]:
            received.append(fifo.read_bytes())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    sink = MidiSink(RecordingPort(), BendMode.NONE, 2, record_path=fifo, save_every_s=0.0)
    sink.send([NoteOn(0, 10, 0, 60, 100), NoteOff(5000, 5010, 0, 60)])
    sink.checkpoint()
    sink.finish_save()
    sink.close()
    reader.join(10)
    files = [data for data in received if data]
    assert len(files) == 1 and files[0].count(b"MThd") == 1


def test_a_shorter_save_interval_from_a_reload_counts_from_the_last_save(tmp_path: Path) -> None:
    record = tmp_path / "take.mid"
    sink = MidiSink(RecordingPort(), BendMode.NONE, 2, record_path=record, save_every_s=3600.0)
    sink.send([NoteOn(0, 10, 0, 60, 100)])
    sink.checkpoint()
    sink.finish_save()
    assert not record.exists()  # an hour to go
    sink.set_save_interval(0.05)
    time.sleep(0.1)
    sink.checkpoint()
    sink.finish_save()
    assert [m.note for m in mido.MidiFile(record) if m.type == "note_on"] == [60]
    sink.close()


def test_a_save_before_an_audio_call_writes_a_take_with_no_notes_yet(tmp_path: Path) -> None:
    """An abort in PortAudio executes livepitch again, which resumes the take: the recording
    must exist once the session has begun, even with nothing played yet (a normal stop would
    have written it), and is not written again while nothing changes."""
    record = tmp_path / "take.mid"
    sink = MidiSink(RecordingPort(), BendMode.NONE, 2, record_path=record, save_every_s=3600.0, started=False)
    sink.save_now()
    assert not record.exists()  # no audio yet: no take
    sink.begin()
    sink.save_now()
    assert [m for m in mido.MidiFile(record) if m.type == "note_on"] == []
    record.unlink()
    sink.save_now()
    assert not record.exists()  # unchanged since: not written again
    sink.send([NoteOn(0, 10, 0, 60, 100)])
    sink.save_now()
    assert [m.note for m in mido.MidiFile(record) if m.type == "note_on"] == [60]
    sink.close()


def test_a_refused_fork_saves_in_this_process_and_says_so_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """No memory for a child, or no more processes allowed (a service's TasksMax): the save
    is made here, the session goes on."""

    def refuse() -> int:
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", refuse)
    record = tmp_path / "take.mid"
    sink = MidiSink(RecordingPort(), BendMode.NONE, 2, record_path=record, save_every_s=0.0)
    sink.send([NoteOn(0, 10, 0, 60, 100)])
    sink.checkpoint()
    assert [m.note for m in mido.MidiFile(record) if m.type == "note_on"] == [60]
    sink.send([NoteOn(6000, 6010, 0, 64, 100)])
    time.sleep(0.05)
    sink.checkpoint()
    assert caplog.text.count("cannot start a process to save the recording") == 1
    sink.close()


def test_a_recording_pipe_nobody_reads_is_refused_at_the_start(tmp_path: Path) -> None:
    """Found only at the end, the whole take would be lost."""
    fifo = tmp_path / "take.mid"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(OutputError, match="a pipe that no program reads"):
        MidiSink(RecordingPort(), BendMode.NONE, 2, record_path=fifo)
    assert time.monotonic() - started < 10.0


def test_an_events_log_pipe_whose_reader_stops_reading_stops_the_log_not_the_midi(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A full pipe would block the worker in the middle of sending, with notes sounding."""
    fifo = tmp_path / "events.csv"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # there, but never reads
    try:
        port = RecordingPort()
        sink = MidiSink(port, BendMode.NONE, 2, events_csv=fifo)
        started = time.monotonic()
        with caplog.at_level("ERROR", logger="livepitch"):
            for i in range(5000):  # about 200 kB of rows: more than a pipe holds
                sink.send([NoteOn(i * 10, i * 10, 0, 60, 100), NoteOff(i * 10 + 5, i * 10 + 5, 0, 60)])
                sink.checkpoint()  # (flushes the log)
        assert time.monotonic() - started < 30.0
        assert sum(1 for m in port.messages if m.type == "note_on") == 5000  # the MIDI went on
        assert any("the events log stops here" in r.getMessage() for r in caplog.records)
        with pytest.raises(OutputError, match="incomplete"):
            sink.close()
    finally:
        os.close(reader)
