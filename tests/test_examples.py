"""The examples do what their docs say: the demo recording and the accompanist."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import soundfile

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples"))

from accompany import Accompanist, PortFollower, third_below  # noqa: E402


class Out:
    def __init__(self) -> None:
        self.sent: list[list[int]] = []

    def send_message(self, message: list[int]) -> None:
        self.sent.append(list(message))


def test_harmony_is_the_diatonic_third_below() -> None:
    assert [third_below(p, 0) for p in (60, 62, 64, 65, 67, 69, 71)] == [57, 59, 60, 62, 64, 65, 67]
    assert third_below(66, 2) == 62  # F# in D major -> D
    assert third_below(61, 0) == 58  # chromatic: a minor third


def test_the_accompanist_answers_and_releases_everything() -> None:
    out = Out()
    accompanist = Accompanist(out, tonic=0, bass_octaves=1)
    accompanist.on_message(([0x91, 64, 100], 0.0))  # performer E4 on channel 2
    accompanist.on_message(([0x92, 67, 90], 0.0))
    assert [0x90, 60, 75] in out.sent  # C4 under E4
    assert [0x91, 52, 66] in out.sent  # bass E3 under the lowest note
    accompanist.on_message(([0x81, 64, 0], 0.0))
    assert [0x80, 60, 0] in out.sent
    assert [0x81, 52, 0] in out.sent and [0x91, 55, 42] in out.sent  # bass follows to G3
    accompanist.on_message(([0xB2, 123, 0], 0.0))  # livepitch's All Notes Off
    sounding: set[tuple[int, int]] = set()
    for status, data1, data2 in out.sent:
        if status & 0xF0 == 0x90 and data2 > 0:
            sounding.add((status & 0x0F, data1))
        elif status & 0xF0 == 0x80:
            sounding.discard((status & 0x0F, data1))
    assert sounding == set()


class Inputs:
    """A MIDI input that sees ``ports`` (changed by the test) and records what it opens."""

    def __init__(self, ports: list[str]) -> None:
        self.ports = ports
        self.opened: list[str] = []
        self.closes = 0
        self.callback: object = None

    def get_ports(self) -> list[str]:
        return list(self.ports)

    def set_callback(self, callback: object) -> None:
        self.callback = callback

    def open_port(self, index: int) -> None:
        assert self.callback is not None, "python-rtmidi's close_port cancelled the callback: set it again"
        self.opened.append(self.ports[index])

    def close_port(self) -> None:
        self.closes += 1
        self.callback = None


def test_the_accompanist_ends_its_notes_when_livepitch_goes_and_listens_again_when_it_returns() -> None:
    """A restarted livepitch (systemd, or its own restart to reconnect the audio) opens a new
    port: the old connection hears nothing, and the harmony would hang."""
    out = Out()
    accompanist = Accompanist(out, tonic=0, bass_octaves=1)
    inputs = Inputs(["livepitch:BasicPitch Out", "accompany:livepitch Accompaniment"])
    follow = PortFollower(
        inputs, accompanist, "livepitch", "livepitch:BasicPitch Out", own="livepitch Accompaniment"
    )
    accompanist.on_message(([0x91, 64, 100], 0.0))
    follow.check()
    assert inputs.closes == 0 and accompanist.held
    inputs.ports = ["accompany:livepitch Accompaniment"]  # livepitch stopped
    follow.check()
    assert inputs.closes == 1 and not accompanist.held and accompanist.bass is None
    assert [0x80, 60, 0] in out.sent and [0x81, 52, 0] in out.sent
    follow.check()  # still gone (its own port matches "livepitch" too, and is never taken)
    assert inputs.closes == 1 and inputs.opened == []
    inputs.ports = ["accompany:livepitch Accompaniment", "livepitch:BasicPitch Out"]  # back
    follow.check()
    assert inputs.opened == ["livepitch:BasicPitch Out"] and follow.listening == "livepitch:BasicPitch Out"
    assert inputs.callback == accompanist.on_message


def test_the_demo_recording_is_made(tmp_path: Path) -> None:
    out = tmp_path / "demo.wav"
    result = subprocess.run([sys.executable, str(REPO / "examples" / "make_demo.py"), str(out)], check=False)
    assert result.returncode == 0
    info = soundfile.info(str(out))
    assert info.samplerate == 44100 and abs(info.duration - 12.0) < 0.01


def test_the_embedding_example_prints_each_change_of_the_notes_sounding(tmp_path: Path) -> None:
    """examples/live_chords.py runs the live daemon in its own process through the API: a
    melody then a chord, replayed in real time, printed as it changes, ending in silence."""
    from tests.synth import sequence

    wav = tmp_path / "melody_and_chord.wav"
    chord = [(1.0, 0.8, 60), (1.0, 0.8, 64), (1.0, 0.8, 67)]
    soundfile.write(wav, sequence([(0.2, 0.5, 72), *chord], 2.2), 22050)
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "live_chords.py"), "--input-file", str(wav)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = [line.split(maxsplit=2) for line in result.stdout.splitlines()]
    times_s, names = [float(at) for at, _, _ in lines], [names for _, _, names in lines]
    assert names[:3] == ["C5", "-", "C4 E4 G4"] and names[-1] == "-", result.stdout
    assert abs(times_s[0] - 0.2) < 0.05 and abs(times_s[2] - 1.0) < 0.05 and times_s[-1] < 2.2
