"""MIDI output ports with python-rtmidi: the only module that imports rtmidi.

A virtual output port other programs connect to (ALSA, JACK, CoreMIDI), or a connection to
an existing port (``connect``; the only way on Windows, e.g. to a loopMIDI port).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from dataclasses import dataclass, field

import rtmidi

from livepitch import jack_patch
from livepitch.errors import MidiMessageLost, MidiPortError, first_line
from livepitch.jack_watch import JackServerWatch
from livepitch.native_output import quiet_native_stderr
from livepitch.settings import MidiApi

log = logging.getLogger("livepitch.midi")

_API_CODES = {
    MidiApi.ALSA: rtmidi.API_LINUX_ALSA,
    MidiApi.JACK: rtmidi.API_UNIX_JACK,
    MidiApi.COREMIDI: rtmidi.API_MACOSX_CORE,
    MidiApi.WINDOWS: rtmidi.API_WINDOWS_MM,
}
CLIENT_NAME = "livepitch"
_ABANDONED: list[rtmidi.MidiOut] = []
"""rtmidi clients whose JACK server went away, kept until the process exits: closing one then
waits out libjack's socket timeouts (up to a second) holding Python's GIL, and the worker
fell behind the audio meanwhile."""
JACK_DRAIN_S = 0.2
"""Longer than any JACK period in use (8192 frames at 44.1 kHz is 0.19 s)."""


def platform_default_api() -> MidiApi:
    """The MIDI system this platform normally uses."""
    if sys.platform == "darwin":
        return MidiApi.COREMIDI
    if sys.platform.startswith("win"):
        return MidiApi.WINDOWS
    return MidiApi.ALSA


def compiled_apis() -> list[MidiApi]:
    """MIDI systems this python-rtmidi build supports."""
    codes = set(rtmidi.get_compiled_api())
    return [api for api, code in _API_CODES.items() if code in codes]


ALSA_SEQUENCER = "/dev/snd/seq"


def _midi_out(api: MidiApi) -> rtmidi.MidiOut:
    if api not in compiled_apis():
        raise MidiPortError(f"this python-rtmidi build has no {api.value} support")
    if api is MidiApi.ALSA and not os.path.exists(ALSA_SEQUENCER):
        raise MidiPortError(
            f"ALSA MIDI needs the sequencer device {ALSA_SEQUENCER}, which this machine lacks"
        )
    try:
        with quiet_native_stderr():
            return rtmidi.MidiOut(_API_CODES[api], name=CLIENT_NAME)
    except rtmidi.RtMidiError as err:
        hint = " (is the JACK server running?)" if api is MidiApi.JACK and "running" not in str(err) else ""
        raise MidiPortError(f"cannot use {api.value} MIDI: {first_line(err)}{hint}") from err


def list_output_ports() -> dict[str, list[str] | str]:
    """Output ports per MIDI system that can be opened now, or why the system is unavailable."""
    ports: dict[str, list[str] | str] = {}
    for api in compiled_apis():
        if api is MidiApi.ALSA and not os.path.exists(ALSA_SEQUENCER):
            ports[api.value] = f"unavailable (no sequencer device {ALSA_SEQUENCER})"
            continue
        try:
            with quiet_native_stderr():
                midi_out = rtmidi.MidiOut(_API_CODES[api], name=f"{CLIENT_NAME}-list")
        except rtmidi.RtMidiError as err:
            ports[api.value] = f"unavailable ({first_line(err)})"
            continue
        try:
            ports[api.value] = list(midi_out.get_ports())
        finally:
            midi_out.delete()
    return ports


@dataclass
class MidiOutput:
    """An open MIDI output; ``send`` takes raw MIDI bytes. Owned by one thread at a time."""

    api: MidiApi
    name: str
    _midi_out: rtmidi.MidiOut | None
    connected: bool = False
    """A connection to another program's port (``--connect``), not a virtual port of ours."""
    _watch: JackServerWatch | None = None
    own_port: str | None = None
    """The name of our own port that connects to ``name`` (``--connect``)."""
    _full_name: str | None = None  # our virtual JACK port's "client:port" name, once found
    _errors: list[str] = field(default_factory=list)
    _warned: set[str] = field(default_factory=set)

    def note_error(self, _kind: int, message: str, _data: object = None) -> None:
        """python-rtmidi's error callback once the port is open (it runs in the thread that
        called into rtmidi): kept for ``send`` to report. Without it, a failed send on ALSA is
        only a Python warning printed to stderr, and the note is lost unseen."""
        self._errors.append(message)

    def _take_error(self) -> str | None:
        if not self._errors:
            return None
        message = self._errors[-1]
        self._errors.clear()
        return message

    @property
    def shown_name(self) -> str:
        """The port's name as other programs see it (a JACK port: ``client:port``, the client
        ``livepitch-01`` when another livepitch runs), where it is known."""
        return self._full_name or self.name

    @property
    def virtual(self) -> bool:
        """A virtual port of ours, which listeners connect to (and reconnect to) when they like."""
        return not self.connected

    def lost(self) -> str | None:
        """Why the port no longer reaches anyone, or None: its JACK server stopped (sends then
        fail silently), or the port it connected to went away (a synth restarted)."""
        if self._watch is not None and self._watch.stopped:
            return "the JACK server stopped"
        if self.connected and self._midi_out is not None:
            try:
                present = self.name in self._midi_out.get_ports()
            except rtmidi.RtMidiError:
                present = False
            self._errors.clear()  # what listing the ports warned of is not about this port
            if not present:
                return f"MIDI port {self.name!r} went away"
            if not self._still_connected():
                return f"MIDI port {self.name!r} was registered again (its program restarted)"
        return None

    def listeners(self) -> frozenset[str] | None:
        """The ports connected to our virtual JACK port, or None where that cannot be told
        (other APIs, ``--connect``, no libjack, or our port not found by its name alone)."""
        client = self._live_watch_client()
        if self.api is not MidiApi.JACK or self.connected or client is None or self._midi_out is None:
            return None
        try:
            bay = jack_patch.patchbay_on(client)
            if self._full_name is None:
                ours = _our_jack_port(self.name)
                outputs = bay.ports(jack_patch.MIDI_PORT_TYPE, jack_patch.JACK_PORT_IS_OUTPUT)
                found = [port for port in outputs if ours.fullmatch(port)]
                if len(found) != 1:  # none, or another livepitch's port of the same name
                    return None
                self._full_name = found[0]
            return frozenset(bay.sources(self._full_name))
        except OSError:
            return None

    def listeners_left(self) -> frozenset[str]:
        """The ports disconnected from our virtual JACK port since the last call (told by
        libjack as it happens: one that left and came back between two looks at ``listeners``
        is among them); empty where that cannot be told."""
        watch, ours = self._watch, self._full_name
        disconnected = watch.take_disconnections() if watch is not None else []
        if ours is None or self.connected:
            return frozenset()
        return frozenset(b if a == ours else a for a, b in disconnected if ours in (a, b))

    def _still_connected(self) -> bool:
        """On JACK, whether the port ``--connect`` named still has our port among its sources:
        a program that registers its port again within a check (``PORT_CHECK_S``) keeps the
        name but not the connection. True where it cannot be told (other APIs, no libjack)."""
        client = self._live_watch_client()
        if self.api is not MidiApi.JACK or client is None or self.own_port is None:
            return True
        try:
            sources = jack_patch.patchbay_on(client).sources(self.name)
        except OSError:
            return True
        ours = _our_jack_port(self.own_port)
        return any(ours.fullmatch(source) for source in sources)

    def _live_watch_client(self) -> int | None:
        """The JACK watch's client handle while its server runs (queries go through it)."""
        watch = self._watch
        return None if watch is None or watch.stopped else watch.client

    def send(self, message: list[int]) -> None:
        """Send one MIDI message; ``MidiPortError`` if the port is gone."""
        if self._midi_out is None:
            raise MidiPortError(f"MIDI port {self.name!r} is closed")
        try:
            self._midi_out.send_message(message)
        except (rtmidi.RtMidiError, ValueError) as err:
            raise MidiPortError(f"cannot send to MIDI port {self.name!r}: {first_line(err)}") from err
        problem = self._take_error()
        if problem is None:
            return
        if self.connected:  # reopening reconnects to the synth's port
            raise MidiPortError(f"cannot send to MIDI port {self.name!r}: {problem}")
        # a virtual port reopened would lose every connection made to it: only the message is lost
        if problem not in self._warned:
            self._warned.add(problem)
            log.warning("MIDI port %r: %s (a message was lost; said once)", self.name, problem)
        raise MidiMessageLost(f"MIDI port {self.name!r} lost a message: {problem}")

    def close(self) -> None:
        """Close the port; safe to call twice.

        JACK delivers messages at the start of its next period, so a JACK port waits
        ``JACK_DRAIN_S`` before closing: the last note-offs reach the listeners. A port whose
        JACK server stopped is not closed at all (``_ABANDONED``).
        """
        midi_out, self._midi_out = self._midi_out, None
        watch, self._watch = self._watch, None
        server_gone = watch is not None and watch.stopped
        if watch is not None:
            watch.close()
        if midi_out is not None and server_gone:
            _ABANDONED.append(midi_out)
            return
        if midi_out is not None:
            if self.api is MidiApi.JACK:
                time.sleep(JACK_DRAIN_S)
            try:
                midi_out.close_port()
            finally:
                midi_out.delete()


def _our_jack_port(port_name: str) -> re.Pattern[str]:
    """The full JACK name of our rtmidi port ``port_name`` (its client ``livepitch``, or
    ``livepitch-NN`` when JACK renamed a second one)."""
    return re.compile(rf"{re.escape(CLIENT_NAME)}(-\d+)?:{re.escape(port_name)}")


def _jack_ports_named(watch: JackServerWatch | None, port_name: str) -> set[str] | None:
    """The full names of the JACK MIDI outputs a livepitch client registered as ``port_name``
    (None without a watch on the server)."""
    client = None if watch is None or watch.stopped else watch.client
    if client is None:
        return None
    try:
        outputs = jack_patch.patchbay_on(client).ports(
            jack_patch.MIDI_PORT_TYPE, jack_patch.JACK_PORT_IS_OUTPUT
        )
    except OSError:
        return None
    ours = _our_jack_port(port_name)
    return {port for port in outputs if ours.fullmatch(port)}


def _reporting_errors(output: MidiOutput) -> MidiOutput:
    """Route the open port's rtmidi errors and warnings to ``output`` (only now: while a port
    opens, python-rtmidi's own handler turns its errors into exceptions)."""
    if output._midi_out is not None:
        output._midi_out.set_error_callback(output.note_error)
    return output


def _jack_watch(api: MidiApi) -> JackServerWatch | None:
    """A watch on the JACK server a JACK port lives in (None for other APIs, or if libjack
    cannot be loaded here: the port is then only noticed lost when a send fails)."""
    if api is not MidiApi.JACK:
        return None
    try:
        return JackServerWatch(f"{CLIENT_NAME}-watch")
    except OSError as err:
        log.debug("JACK server not watched: %s", err)
        return None


def open_output(port_name: str, api: MidiApi, connect: str | None) -> MidiOutput:
    """Open the virtual port ``port_name`` (or connect to an existing port matching ``connect``).

    ``auto`` takes the platform's own MIDI system and falls back to JACK when ALSA's sequencer
    is missing (machines without /dev/snd/seq, e.g. containers running JACK).
    """
    if api is MidiApi.AUTO:
        preferred = platform_default_api()
        try:
            return open_output(port_name, preferred, connect)
        except MidiPortError as err:
            if preferred is not MidiApi.ALSA or MidiApi.JACK not in compiled_apis():
                raise
            try:
                output = open_output(port_name, MidiApi.JACK, connect)
            except MidiPortError as jack_err:  # one message for both
                raise MidiPortError(f"{err}; and {jack_err}") from jack_err
            log.info("ALSA MIDI unavailable (%s); using JACK", err)
            return output
    midi_out = _midi_out(api)
    try:
        if connect is not None:
            ports = list(midi_out.get_ports())
            matches = [i for i, name in enumerate(ports) if connect.lower() in name.lower()]
            if not matches:
                have = ", ".join(ports) or "none"
                raise MidiPortError(f"no {api.value} MIDI port matching {connect!r} (have: {have})")
            midi_out.open_port(matches[0], name=port_name)
            return _reporting_errors(
                MidiOutput(
                    api,
                    ports[matches[0]],
                    midi_out,
                    connected=True,
                    _watch=_jack_watch(api),
                    own_port=port_name,
                )
            )
        if api is MidiApi.WINDOWS:
            raise MidiPortError(
                "Windows MIDI has no virtual ports: create one with loopMIDI and pass --connect NAME"
            )
        watch = _jack_watch(api)
        before = _jack_ports_named(watch, port_name)
        midi_out.open_virtual_port(port_name)
        output = MidiOutput(api, port_name, midi_out, _watch=watch)
        after = _jack_ports_named(watch, port_name)
        if before is not None and after is not None and len(after - before) == 1:
            (output._full_name,) = after - before  # ours: livepitch-01:... if another runs
        return _reporting_errors(output)
    except rtmidi.RtMidiError as err:
        midi_out.delete()
        raise MidiPortError(f"cannot open {api.value} MIDI port {port_name!r}: {first_line(err)}") from err
    except MidiPortError:
        midi_out.delete()
        raise
