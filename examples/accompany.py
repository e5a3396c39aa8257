"""A small auto-accompaniment: listens to livepitch's port and answers on a port of its own.

Every note the performer plays gets a diatonic third below it (in the chosen major key), and
the lowest sounding note gets a bass an octave (or two) below, so a sung or played melody
comes back harmonised. Connect a synth to "livepitch Accompaniment" (and another, or the
same, to "BasicPitch Out" for the performer's own notes):

    livepitch --port "BasicPitch Out" &
    python examples/accompany.py --key D --listen "BasicPitch Out"

It waits for livepitch's port to appear (``--wait-s``), and takes JACK MIDI where Linux has no
ALSA sequencer, as livepitch does (``--jack`` forces it).

Runs until Ctrl-C or SIGTERM, then releases every note it started. If livepitch's port goes
away (livepitch stopped, or restarted by systemd or to reconnect its audio), it releases its
notes at once and listens again when the port comes back. Uses python-rtmidi's callback
thread for input and one lock around its state; the sending happens in that thread.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from types import FrameType

import rtmidi

MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
KEYS = {"C": 0, "C#": 1, "Db": 1, "D": 2, "D#": 3, "Eb": 3, "E": 4, "F": 5, "F#": 6, "Gb": 6, "G": 7,
        "G#": 8, "Ab": 8, "A": 9, "A#": 10, "Bb": 10, "B": 11}  # fmt: skip
HARMONY_CHANNEL = 0
BASS_CHANNEL = 1
PORT_CHECK_S = 0.25
"""How often the main thread checks that livepitch's port is still there [s]."""


def third_below(pitch: int, tonic: int) -> int:
    """The diatonic third below ``pitch`` in the major key on ``tonic`` (chromatic notes: a minor third)."""
    degree_pitches = sorted({(tonic + step) % 12 for step in MAJOR_SCALE})
    pitch_class = pitch % 12
    if pitch_class not in degree_pitches:
        return pitch - 3
    index = degree_pitches.index(pitch_class)
    below = degree_pitches[(index - 2) % 7]
    return pitch - ((pitch_class - below) % 12)


class Accompanist:
    """Turns incoming note-ons/offs into harmony and bass notes on the output port."""

    def __init__(self, out: rtmidi.MidiOut, tonic: int, bass_octaves: int) -> None:
        self.out = out
        self.tonic = tonic
        self.bass_octaves = bass_octaves
        self.lock = threading.Lock()
        self.held: dict[tuple[int, int], int] = {}  # (channel, pitch) of the performer -> harmony pitch
        self.bass: int | None = None

    def on_message(self, event: tuple[list[int], float], data: object = None) -> None:
        """rtmidi's input thread: one incoming message."""
        message, _delta = event
        status = message[0] & 0xF0
        channel = message[0] & 0x0F
        with self.lock:
            if status == 0x90 and len(message) == 3 and message[2] > 0:
                self._note_on(channel, message[1], message[2])
            elif status == 0x80 or (status == 0x90 and len(message) == 3 and message[2] == 0):
                self._note_off(channel, message[1])
            elif status == 0xB0 and message[1] == 123:  # All Notes Off from livepitch
                self.release_all()

    def _note_on(self, channel: int, pitch: int, velocity: int) -> None:
        harmony = third_below(pitch, self.tonic)
        if (channel, pitch) in self.held:
            self._note_off(channel, pitch)
        if 0 <= harmony <= 127:
            self.out.send_message([0x90 | HARMONY_CHANNEL, harmony, max(1, velocity * 3 // 4)])
            self.held[(channel, pitch)] = harmony
        self._update_bass(velocity)

    def _note_off(self, channel: int, pitch: int) -> None:
        harmony = self.held.pop((channel, pitch), None)
        if harmony is not None and harmony not in self.held.values():
            self.out.send_message([0x80 | HARMONY_CHANNEL, harmony, 0])
        self._update_bass(64)

    def _update_bass(self, velocity: int) -> None:
        lowest = min((pitch for _, pitch in self.held), default=None)
        wanted = None if lowest is None else max(0, lowest - 12 * self.bass_octaves)
        if wanted == self.bass:
            return
        if self.bass is not None:
            self.out.send_message([0x80 | BASS_CHANNEL, self.bass, 0])
        if wanted is not None:
            self.out.send_message([0x90 | BASS_CHANNEL, wanted, max(1, velocity * 2 // 3)])
        self.bass = wanted

    def release_all(self) -> None:
        """End every note this accompanist started (call with the lock held)."""
        for harmony in set(self.held.values()):
            self.out.send_message([0x80 | HARMONY_CHANNEL, harmony, 0])
        self.held.clear()
        if self.bass is not None:
            self.out.send_message([0x80 | BASS_CHANNEL, self.bass, 0])
            self.bass = None
        for channel in (HARMONY_CHANNEL, BASS_CHANNEL):
            self.out.send_message([0xB0 | channel, 123, 0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--listen", default="BasicPitch Out", help="part of the name of livepitch's port")
    parser.add_argument("--port", default="livepitch Accompaniment", help="name of the answering port")
    parser.add_argument("--key", default="C", choices=sorted(KEYS), help="major key of the harmony")
    parser.add_argument(
        "--bass-octaves", type=int, default=1, choices=(1, 2), help="bass this many octaves down"
    )
    parser.add_argument("--jack", action="store_true", help="use JACK MIDI instead of the platform's default")
    parser.add_argument(
        "--wait-s", type=float, default=10.0, help="how long to wait for livepitch's port to appear"
    )
    args = parser.parse_args()

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    no_alsa = sys.platform.startswith("linux") and not os.path.exists("/dev/snd/seq")
    if no_alsa and not args.jack:
        print("accompany: no ALSA sequencer here (/dev/snd/seq); using JACK MIDI", file=sys.stderr)
    api = rtmidi.API_UNIX_JACK if args.jack or no_alsa else rtmidi.API_UNSPECIFIED
    try:
        midi_in = rtmidi.MidiIn(api, name="accompany-listen")
        out = rtmidi.MidiOut(api, name="accompany")
        deadline = time.monotonic() + args.wait_s
        while True:  # livepitch may still be starting (loading the model takes a second)
            ports = midi_in.get_ports()
            matches = listenable(ports, args.listen, args.port)
            if matches or time.monotonic() >= deadline or stop.wait(0.2):
                break
        if stop.is_set():  # Ctrl-C while waiting
            return 0
        if not matches:
            print(
                f"accompany: no MIDI port matching {args.listen!r} (have: {', '.join(ports) or 'none'})",
                file=sys.stderr,
            )
            return 2
        out.open_virtual_port(args.port)
        accompanist = Accompanist(out, KEYS[args.key], args.bass_octaves)
        midi_in.set_callback(accompanist.on_message)
        midi_in.open_port(matches[0])
    except rtmidi.RtMidiError as err:
        print(f"accompany: {err}", file=sys.stderr)
        return 1

    print(f"accompany: listening to {ports[matches[0]]!r}, answering on {args.port!r} in {args.key} major")
    follow = PortFollower(midi_in, accompanist, args.listen, ports[matches[0]], own=args.port)
    while not stop.wait(PORT_CHECK_S):
        try:
            follow.check()
        except rtmidi.RtMidiError as err:  # the MIDI system itself went away: try again later
            print(f"accompany: {err}", file=sys.stderr)
    follow.close()
    with accompanist.lock:
        accompanist.release_all()
    out.close_port()
    return 0


def listenable(ports: list[str], listen: str, own: str) -> list[int]:
    """Indices of the ports whose name holds ``listen`` (any case), except the accompanist's own
    ``own`` port (listening to it would answer its own answers)."""
    return [
        i
        for i, name in enumerate(ports)
        if listen.lower() in name.lower() and own.lower() not in name.lower()
    ]


class PortFollower:
    """Keeps the input connected to livepitch's port across its restarts (main thread).

    A restarted livepitch opens a new port of the same name, which the old connection does
    not reach: when the port is gone the accompanist's notes end (the performer's did too),
    and when one matching ``listen`` is there again the input opens it.
    """

    def __init__(
        self, midi_in: rtmidi.MidiIn, accompanist: Accompanist, listen: str, listening: str, own: str
    ) -> None:
        """``own``: the name of the accompanist's own port, never listened to (a loop)."""
        self.midi_in = midi_in
        self.accompanist = accompanist
        self.listen = listen
        self.own = own
        self.listening: str | None = listening
        """The name of the port the input is open on (None: waiting for it to come back)."""

    def check(self) -> None:
        """Look at the ports once: close on a vanished port, open a returned one."""
        ports = self.midi_in.get_ports()
        if self.listening is not None and self.listening not in ports:
            self.close()
            with self.accompanist.lock:
                self.accompanist.release_all()
            print(
                "accompany: livepitch's port went away; its notes are released, waiting for it",
                file=sys.stderr,
            )
        if self.listening is None:
            matches = listenable(ports, self.listen, self.own)
            if matches:
                self.midi_in.set_callback(self.accompanist.on_message)  # (closing the port cancelled it)
                self.midi_in.open_port(matches[0])
                self.listening = ports[matches[0]]
                print(f"accompany: listening to {self.listening!r} again", file=sys.stderr)

    def close(self) -> None:
        """Close the input's connection, if open."""
        if self.listening is not None:
            self.listening = None
            self.midi_in.close_port()


if __name__ == "__main__":
    sys.exit(main())
