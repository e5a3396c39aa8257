"""The MIDI sink: failing ports, lost note-offs, recordings, and nothing after close."""

from __future__ import annotations

import io
from pathlib import Path

import mido
import pytest

from livepitch.errors import MidiPortError, OutputError
from livepitch.event_files import events_to_midi
from livepitch.events import NoteOff, NoteOn, PitchBend
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
    sink.send([NoteOn(10, 30, 0, 64, 100)])
    assert [(m.type, m.note) for m in spare.messages] == [("note_off", 60), ("note_on", 64)]
    sink.release_all()
    assert sounding_after(broken.messages + spare.messages) == set()


def test_a_port_that_fails_again_while_reopening_is_no_crash() -> None:
    broken = RecordingPort("first", fail_after=0)
    also_broken = RecordingPort("second", fail_after=0)
    sink = MidiSink(None, BendMode.MPE, 48, reopen=lambda: also_broken)
    sink._port = broken
    sink.send([NoteOn(0, 10, 1, 60, 100)])  # fails, then the MPE setup fails on the reopened port
    assert sink.port_name is None and sink.sounding == []


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
    ports: list[RecordingPort] = []

    def reopen() -> RecordingPort:
        if not ports:
            ports.append(spare)
            raise MidiPortError("the MIDI system is restarting")
        return spare

    sink = MidiSink(None, BendMode.SINGLE, 2, reopen=reopen)
    sink._port = broken
    sink.send([PitchBend(0, 10, 0, 64, 1471, 36.0), NoteOn(0, 10, 0, 64, 100)])
    sink.send([NoteOff(9, 20, 0, 64)])  # the port fails here
    sink.release_all()  # the reopen fails too: note and wheel left on the synth
    sink.reconnect()
    sink.send([NoteOn(50, 60, 0, 67, 100)])  # a new session's in-tune note, no bend of its own
    sent = [
        (m.type, getattr(m, "pitch", getattr(m, "note", None)))
        for m in spare.messages
        if m.type != "control_change"
    ]
    assert sent == [("note_off", 64), ("pitchwheel", 0), ("note_on", 67)]
