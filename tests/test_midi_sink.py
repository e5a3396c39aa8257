"""The MIDI sink: failing ports, lost note-offs, recordings, and nothing after close."""

from __future__ import annotations

from pathlib import Path

import pytest

from livepitch.errors import OutputError
from livepitch.event_files import events_to_midi
from livepitch.events import NoteOff, NoteOn
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
