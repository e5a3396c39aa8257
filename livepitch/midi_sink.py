"""The one owner of the live MIDI output: events in, bytes out, and every note released on stop.

Runs on the worker thread (``send``) and, once the worker has stopped, on the main thread
(``release_all``, ``close``). Keeps track of the sounding notes so that any stop, fault or
overload can end them, then sends All Notes Off on every channel it used and centres every
pitch wheel it left bent (the next session's notes start from a centred wheel). A failing
port is logged and reopened (with backoff) through ``reopen`` by the main thread (``poll``,
``release_all``), never by the worker; events in between are lost, never stuck: the notes
sounding when the port failed are released on the new port.

The setup (the MPE zone, or the bend range) goes out when a port opens; a virtual port has
no listener then (a synth or a patchbay connects to it later, and may reconnect), so it sends
the setup again before the first note-on after a quiet second, and before a note-on with
nothing sounding every few seconds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol, TextIO

import mido

from livepitch.background_save import Announce, BackgroundSave, Saved
from livepitch.errors import MidiMessageLost, MidiPortError, OutputError, first_line, unwritable
from livepitch.event_files import (
    EVENTS_CSV_COLUMNS,
    BendSwitch,
    event_csv_row,
    event_to_message,
    write_events_midi,
)
from livepitch.events import Event, NoteOff, NoteOn, PitchBend
from livepitch.midi_file import setup_messages
from livepitch.output_files import open_pipe_end, reader_held
from livepitch.paths import cannot_write, is_directory, stat_or_none
from livepitch.settings import BendMode

log = logging.getLogger("livepitch.midi")

ALL_NOTES_OFF = 123
RETRY_DELAYS_S = (0.5, 1.0, 2.0, 5.0)
STOP_WAIT_S = 2.0
"""Longest ``close`` waits for a save in progress before ending it [s]."""
PORT_CHECK_S = 1.0
"""How often ``poll`` asks the open port whether it is lost [s]."""
SETUP_AGAIN_AFTER_S = 1.0
"""A virtual port sends its setup again before a note-on that follows at least this long with
nothing sounding [s]: a synth connected to it since the port opened never had it."""
SETUP_REFRESH_S = 5.0
"""A virtual port also sends it before a note-on with nothing sounding once this long after it
last went out [s]: a synth connected during a phrase that never pauses for a second gets it
at the next gap between notes."""


class Port(Protocol):
    """A MIDI output taking raw messages (``MidiOutput``, or a recording fake in tests)."""

    name: str

    def send(self, message: list[int]) -> None: ...

    def close(self) -> None: ...


class MidiSink:
    """Sends events to a port (reopened through ``reopen`` after failures), records them too.

    One lock serialises the worker's ``send`` and the main thread's ``release_all``/``close``;
    after ``close`` nothing is sent or reopened any more. A note counts as sounding from its
    delivered note-on until its note-off is delivered, so notes the port lost are released on
    the next port. ``time_offset_samples`` shifts recorded and logged times so that sessions
    whose engine clock restarted (after a device loss or a reload) follow each other.
    """

    def __init__(
        self,
        port: Port | None,
        bends: BendMode,
        bend_range_semitones: int,
        reopen: Callable[[], Port] | None = None,
        record_path: Path | None = None,
        events_csv: Path | None = None,
        append_events: bool = False,
        started: bool = True,
        save_every_s: float | None = None,
    ) -> None:
        """``started=False``: the session has not begun; the events log and the recording are
        written only from ``begin()`` on, so a session that fails before its audio flows
        leaves an earlier take's files as they were. ``save_every_s``: how often ``checkpoint``
        writes the recording so far (None: only at ``close``)."""
        self.bends = bends
        self.bend_range_semitones = bend_range_semitones
        self._reopen = reopen
        self._port: Port | None = None
        self.last_api: object | None = None
        """The MIDI system of the last port opened (``MidiApi``), if the port says."""
        self._lock = threading.RLock()
        self._next_check = 0.0  # when ``poll`` next asks the open port whether it is lost
        self._failed_ports: list[Port] = []  # dropped by a failed send, closed by ``poll``
        self._said_down = False  # a failed reopen was logged as a warning in this outage
        self._offs_to_resend: set[tuple[int, int]] = set()  # note-offs an open port lost
        self._closed = False
        self._retry_at = 0.0
        self._failures = 0
        self.send_errors = 0
        self.time_offset_samples = 0
        self._mpe_zone_set = False  # an MPE zone was set up on the synth (ended when leaving MPE)
        self._last_note_s = 0.0  # when the last note-on or note-off (or the setup) went out [monotonic s]
        self._last_setup_s = 0.0  # when the setup last went out [monotonic s]
        self._sounding: set[tuple[int, int]] = set()
        self._played: set[tuple[int, int]] = set()  # every (channel, pitch) a note-on went out for
        self._listeners: frozenset[str] | None = None  # a virtual JACK port's, at the last check
        self._ever_listened: set[str] = set()  # every listener any check saw
        self._used_channels: set[int] = set()
        self._quiet_channels: set[int] = set()  # All Notes Off was the last thing this port sent there
        self._bent_channels: set[int] = set()  # wheel last delivered off centre
        self._wheels: dict[int, int] = {}  # where each wheel should be (what the voices last sent)
        self._record_path = record_path
        self._record_pipe: int | None = None
        """A named pipe to record into, held open for writing until the recording is written:
        its reader is checked for at the start, and sees no end of input before the file."""
        if record_path is not None:
            check_writable(record_path)
            try:
                self._record_pipe = open_pipe_end(record_path)
            except OSError as err:
                raise unwritable(record_path, err) from err
        self._recorded: list[Event] = []
        self._switches: list[BendSwitch] = []  # bend mode or range changed by a reload
        self._first_bends = (bends, bend_range_semitones)
        self._recorded_sounding: set[tuple[int, int]] = set()  # notes the recording leaves on
        self._recorded_wheels: dict[int, tuple[int, int]] = {}  # channel -> (value, pitch) recorded
        self._csv_path = events_csv
        self._csv_error: OutputError | None = None
        self._csv_sounding: set[tuple[int, int]] = set()  # notes the events log leaves on
        self._last_logged: Event | None = None  # the last event recorded or logged (shifted)
        self._csv: TextIO | None = None
        self._append_events = append_events
        if events_csv is not None:
            check_writable(events_csv)
        self._began = False
        self.save_every_s = save_every_s
        self._next_save_s = 0.0  # (monotonic)
        self._last_save_s = 0.0
        self._saved_events = -1  # events in the last file written (-1: none written yet)
        self._save_failed = False
        self._background = BackgroundSave()
        self._fork_failed = False
        if started:
            self.begin()
        if port is not None:
            self._attach(port)

    def begin(self) -> None:
        """The session's audio flows: start the events log (the recording is written by
        ``checkpoint`` and at ``close``). Safe twice."""
        if self._began:
            return
        self._last_save_s = time.monotonic()  # (the session's start counts as the last save)
        self._next_save_s = self._last_save_s + (self.save_every_s or 0.0)
        events_csv = self._csv_path
        if events_csv is None:
            self._began = True
            return
        resume = self._append_events and os.path.exists(events_csv)
        try:
            with reader_held(events_csv):  # (a pipe: its reader is there, the open does not wait)
                self._csv = open(events_csv, "a" if resume else "w", encoding="utf-8", newline="")  # noqa: SIM115
            if stat.S_ISFIFO(os.fstat(self._csv.fileno()).st_mode):
                # a reader that stops reading fails the log, never the worker sending MIDI
                os.set_blocking(self._csv.fileno(), False)
        except OSError as err:
            raise unwritable(events_csv, err) from err
        if not resume:
            self._csv.write(",".join(EVENTS_CSV_COLUMNS) + "\n")
        self._began = True  # (a log that could not be opened leaves the last take's recording too)

    @property
    def port_name(self) -> str | None:
        """The open port's name, or None while it is down."""
        port = self._port
        return port.name if port is not None else None

    @property
    def has_midi(self) -> bool:
        """False when the session runs without any MIDI port (a replay printing and recording)."""
        return self._port is not None or self._reopen is not None

    @property
    def sounding(self) -> list[tuple[int, int]]:
        """``(channel, pitch)`` of every sounding note."""
        with self._lock:
            return sorted(self._sounding)

    def _attach(self, port: Port) -> bool:
        """Use ``port``: send the setup messages; False if it failed on the way."""
        self._port = port
        self.last_api = getattr(port, "api", None)
        leaving_mpe = self._mpe_zone_set and self.bends is not BendMode.MPE
        for message in setup_messages(self.bends, self.bend_range_semitones, leaving_mpe):
            if not self._raw_send(message.bytes()):
                return False
        self._mpe_zone_set = self.bends is BendMode.MPE  # (a synth behind --connect keeps it)
        self._failures = 0  # only a port that took its setup resets the backoff
        self._last_note_s = self._last_setup_s = time.monotonic()
        return True

    def _setup_again_if_quiet(self, events: list[Event]) -> None:
        """Before a virtual port's note-on with nothing sounding, after ``SETUP_AGAIN_AFTER_S``
        of quiet or ``SETUP_REFRESH_S`` since the setup last went out, send the setup again,
        for a synth connected since then (never while a note sounds: a synth may reset its
        channels on it)."""
        port = self._port
        if port is None or self._sounding or not getattr(port, "virtual", False):
            return
        now = time.monotonic()
        if now - self._last_note_s < SETUP_AGAIN_AFTER_S and now - self._last_setup_s < SETUP_REFRESH_S:
            return
        if not any(isinstance(event, NoteOn) for event in events):
            return
        for data in _setup_bytes(self.bends, self.bend_range_semitones):
            if not self._raw_send(list(data)):
                return
        self._last_note_s = self._last_setup_s = time.monotonic()

    def _raw_send(self, data: list[int]) -> bool:
        """Send one message on the open port; False if there is none or it failed (a failed
        port is dropped, and closed and reopened by the main thread: never by the worker)."""
        port = self._port
        if port is None:
            return False
        try:
            port.send(data)
            return True
        except MidiMessageLost:  # the port goes on; a lost note-off is sent again by ``poll``
            self.send_errors += 1
            return False
        except MidiPortError as err:
            self.send_errors += 1
            log.warning("%s; will reopen", err)
            self._drop_port(close=False)
            self._failed_ports.append(port)
            return False

    def _drop_port(self, close: bool = True) -> None:
        port, self._port = self._port, None
        if port is not None and close:
            with contextlib.suppress(MidiPortError, OSError):
                port.close()
        self._retry_at = time.monotonic() + RETRY_DELAYS_S[min(self._failures, len(RETRY_DELAYS_S) - 1)]
        self._failures += 1

    def _close_failed_ports(self) -> None:
        """Close the ports sends found failed (main thread; ``poll`` does it outside the
        lock: a JACK port waits for its last period before closing)."""
        while self._failed_ports:
            with contextlib.suppress(MidiPortError, OSError, IndexError):
                self._failed_ports.pop().close()

    def _try_reopen(self) -> bool:
        """Open a new port if it is time to try (main thread); True if one is open afterwards.

        The port is opened outside the sink's lock when the caller does not hold it (``poll``:
        the worker goes on, its events meanwhile lost with the port), inside when it does (a
        release, the worker stopped; the lock is re-entrant). A port that failed is closed
        first: two ports of one name would confuse whoever connects by name."""
        if self._closed or self._reopen is None or time.monotonic() < self._retry_at:
            return False
        self._close_failed_ports()
        try:
            port = self._reopen()
        except MidiPortError as err:
            self._say_still_down(err)
            with self._lock:
                self._drop_port()
            return False
        with self._lock:
            if self._closed or self._port is not None:  # closed, or reopened meanwhile
                with contextlib.suppress(MidiPortError, OSError):
                    port.close()
                return self._port is not None
            return self._take_reopened(port)

    def _say_still_down(self, err: MidiPortError) -> None:
        """Log a failed reopen: the first of an outage as a warning, the next ones (every 5 s
        for as long as it lasts) at debug level only."""
        if self._said_down:
            log.debug("MIDI port still unavailable: %s", err)
        else:
            self._said_down = True
            log.warning("MIDI port still unavailable: %s (retrying quietly)", err)

    def _take_reopened(self, port: Port) -> bool:
        """Use a reopened ``port``: set it up, end what the lost one left sounding, put the
        wheels back; True if it is still open afterwards."""
        log.info("MIDI port %r open again", port.name)
        self._said_down = False
        self._port = port
        self._quiet_channels.clear()  # (maybe another synth: the next release tells it too)
        self._end_sounding()  # what was sounding when the port failed, before a new mode's setup
        if self._port is not port or not self._attach(port):
            return False
        # the wheels where the voices believe them (centred after a release that could not send)
        for channel in sorted(self._bent_channels | {c for c, v in self._wheels.items() if v}):
            self._send_wheel(channel, self._wheels.get(channel, 0))
        return self._port is not None

    def _end_sounding(self) -> None:
        """Send a note-off for every note still sounding on the synth."""
        for channel, pitch in sorted(self._sounding):
            if self._raw_send(mido.Message("note_off", channel=channel, note=pitch, velocity=0).bytes()):
                self._sounding.discard((channel, pitch))

    def _send_wheel(self, channel: int, value: int) -> None:
        """Move the wheel of ``channel`` to ``value`` (remembered if delivered)."""
        if self._raw_send(mido.Message("pitchwheel", channel=channel, pitch=value).bytes()):
            self._note_wheel(channel, value)

    def _note_wheel(self, channel: int, value: int) -> None:
        """The wheel of ``channel`` was delivered at ``value``."""
        if value:
            self._bent_channels.add(channel)
        else:
            self._bent_channels.discard(channel)

    def _reopen_now_if_down(self) -> None:
        """A release tries a port that is down at once, whatever the backoff (main thread,
        the worker stopped: holding the lock while the port opens keeps no one waiting)."""
        if self._port is None:
            self._retry_at = 0.0
            self._try_reopen()

    def poll(self) -> None:
        """The main thread's tick: reopen a port that failed or was found lost once its
        backoff has passed (ending what the synth was left holding), and ask an open port
        every ``PORT_CHECK_S`` whether it is lost (its JACK server stopped, the port it
        connected to went away): sends would not say so."""
        self._close_failed_ports()
        if self._port is not None and self._offs_to_resend:
            self._resend_lost_offs()
        if self._port is not None:  # the usual case
            now = time.monotonic()
            if now >= self._next_check:
                self._next_check = now + PORT_CHECK_S
                self._drop_if_lost()
                self._welcome_listeners()
            return
        self._try_reopen()

    def _resend_lost_offs(self) -> None:
        """Send again the note-offs the open port lost (a virtual ALSA port's full queue):
        those notes still sound on the synth."""
        with self._lock:
            for key in sorted(self._offs_to_resend):
                if key not in self._sounding:  # ended since (a release, the port reopened)
                    self._offs_to_resend.discard(key)
                    continue
                channel, pitch = key
                if not self._raw_send(
                    mido.Message("note_off", channel=channel, note=pitch, velocity=0).bytes()
                ):
                    return  # lost again: the next tick tries
                self._sounding.discard(key)
                self._offs_to_resend.discard(key)

    def _drop_if_lost(self) -> None:
        lost = getattr(self._port, "lost", None)
        if lost is None:
            return
        with self._lock:
            if self._closed or self._port is None:
                return
            reason = lost()
            if reason is None:
                return
            self.send_errors += 1
            log.warning("%s: reopening the MIDI port when it can be", reason)
            gone, self._port = self._port, None
        with contextlib.suppress(MidiPortError, OSError):  # closing takes a while too: unlocked
            gone.close()

    def _welcome_listeners(self) -> None:
        """Asked every check, a virtual JACK port's listeners. One connected since the last
        check gets the setup if nothing sounds; if an earlier check had seen it, or JACK told
        that it left since (it left, maybe mid-note, and came back, still holding a note whose
        note-off it missed), first a note-off for every note played on the port that is not
        sounding. A listener new to the port never got a note-on from it: no burst of
        note-offs for it (main thread)."""
        port = self._port
        # who left, then who listens: one that leaves in between is away now, and stays
        # recorded as left for the next look
        listeners_left = getattr(port, "listeners_left", None)
        left = frozenset() if listeners_left is None else listeners_left()
        listeners = getattr(port, "listeners", None)
        current = None if listeners is None else listeners()
        with self._lock:
            if current is None or self._port is not port:
                self._listeners = None
                return
            joined = current - self._listeners if self._listeners is not None else frozenset()
            # and one that left and came back since the last look (JACK told of its leaving)
            returning = (joined & self._ever_listened) | (current & left)
            self._listeners = current
            self._ever_listened |= current
            if not joined and not returning:
                return
            if returning:
                log.info("MIDI: %s back: ending any note it kept from before", ", ".join(sorted(returning)))
                for channel, pitch in sorted(self._played - self._sounding):
                    message = mido.Message("note_off", channel=channel, note=pitch, velocity=0)
                    if not self._raw_send(message.bytes()):
                        return
            if not self._sounding:
                for data in _setup_bytes(self.bends, self.bend_range_semitones):
                    if not self._raw_send(list(data)):
                        return
                self._last_setup_s = time.monotonic()

    def reconnect(self) -> None:
        """Close and reopen the port now (its server restarted under it)."""
        with self._lock:
            self._drop_port()
            self._retry_at = 0.0
            self._try_reopen()

    def switch_port(self, bends: BendMode, bend_range_semitones: int, new_port: bool = True) -> None:
        """Take a new bend mode (a reload): on the port ``reopen`` now gives, or, unless
        ``new_port``, on the open one, whose setup is sent again (the connections a synth or a
        patchbay made to it stay)."""
        with self._lock:
            if new_port or self._port is None:
                self._drop_port()
            if (bends, bend_range_semitones) != (self.bends, self.bend_range_semitones):
                at = self._recorded[-1].time_sample if self._recorded else 0
                self._switches.append(BendSwitch(at, len(self._recorded), bends, bend_range_semitones))
            self.bends, self.bend_range_semitones = bends, bend_range_semitones
            if self._port is not None:
                self._attach(self._port)
                return
            self._retry_at = 0.0
            self._try_reopen()

    def advance_clock(self, samples: int, refused: Callable[[], bool] | None = None) -> None:
        """Move recorded and logged times on by ``samples`` (22050 Hz) from the next event on:
        the engine's clock restarted after a gap (worker thread; ``refused`` as for ``send``)."""
        with self._lock:
            if refused is None or not refused():
                self.time_offset_samples += samples

    def send(self, events: Iterable[Event], refused: Callable[[], bool] | None = None) -> None:
        """Send events in order (worker thread); log them to the CSV and the recording.

        ``refused`` is asked under the sink's lock, so a worker the main thread gave up on
        (and whose notes it then released) sends nothing more."""
        with self._lock:
            if self._closed or (refused is not None and refused()):
                return
            batch = list(events)
            self._setup_again_if_quiet(batch)
            for event in batch:
                self._used_channels.add(event.channel)
                self._quiet_channels.discard(event.channel)
                delivered = self._raw_send(event_to_message(event).bytes())
                key = (event.channel, event.pitch)
                if isinstance(event, NoteOn) and delivered:
                    self._sounding.add(key)
                    self._played.add(key)
                    self._last_note_s = time.monotonic()
                elif isinstance(event, NoteOff) and delivered:
                    self._sounding.discard(key)
                    self._last_note_s = time.monotonic()
                elif isinstance(event, NoteOff) and key in self._sounding and self._port is not None:
                    self._offs_to_resend.add(key)  # the message was lost, not the port
                elif isinstance(event, PitchBend):
                    self._wheels[event.channel] = event.value
                    if delivered:
                        self._note_wheel(event.channel, event.value)
                self._log(event)

    def _log(self, event: Event) -> None:
        if self._record_path is None and self._csv is None:
            return
        if self.time_offset_samples:
            event = dataclasses.replace(
                event,
                time_sample=event.time_sample + self.time_offset_samples,
                emitted_sample=event.emitted_sample + self.time_offset_samples,
            )
        if self._record_path is not None:
            self._recorded.append(event)
            key = (event.channel, event.pitch)
            if isinstance(event, NoteOn):
                self._recorded_sounding.add(key)
            elif isinstance(event, NoteOff):
                self._recorded_sounding.discard(key)
            elif isinstance(event, PitchBend):
                self._recorded_wheels[event.channel] = (event.value, event.pitch)
        if self._csv is not None:
            key = (event.channel, event.pitch)
            if isinstance(event, NoteOn):
                self._csv_sounding.add(key)
            elif isinstance(event, NoteOff):
                self._csv_sounding.discard(key)
            self._write_csv_row(event)
        self._last_logged = event

    def _log_release(self) -> None:
        """Record what a release ends, at the time of the last event: the notes the recording
        still has sounding and the wheels it has bent, so the file never leaves a note on and
        its next notes start from centred wheels, as the synth's do; and a note-off for each
        note the events log left on (the engine's own note-offs usually leave none; a worker
        that did not stop sends none)."""
        last = self._last_logged
        if last is None:
            return
        at = {"time_sample": last.time_sample, "emitted_sample": last.emitted_sample}
        if self._record_path is not None:
            for channel, pitch in sorted(self._recorded_sounding):
                self._recorded.append(NoteOff(channel=channel, pitch=pitch, **at))
            for channel, (value, pitch) in sorted(self._recorded_wheels.items()):
                if value:
                    self._recorded.append(PitchBend(channel=channel, pitch=pitch, value=0, cents=0.0, **at))
        self._recorded_sounding.clear()
        self._recorded_wheels.clear()
        if self._csv is not None:
            for channel, pitch in sorted(self._csv_sounding):
                self._write_csv_row(NoteOff(channel=channel, pitch=pitch, **at))
        self._csv_sounding.clear()

    def _write_csv_row(self, event: Event) -> None:
        """One row of the events log; a failing log is closed and reported at ``close``, never
        allowed to stop the MIDI (a full disk must not leave notes sounding)."""
        assert self._csv is not None
        try:
            self._csv.write(",".join(event_csv_row(event)) + "\n")
        except OSError as err:
            self._fail_csv(err)

    def _flush_csv(self) -> None:
        """The events log to disk (lock held); a failure stops the log, said once."""
        if self._csv is not None:
            try:
                self._csv.flush()
            except OSError as err:
                self._fail_csv(err)

    def _fail_csv(self, err: OSError) -> None:
        csv_file, self._csv = self._csv, None
        self._csv_error = OutputError(
            f"cannot write {self._csv_path}: {first_line(err)}; the events log stops here"
        )
        log.error("%s", self._csv_error)
        if csv_file is not None:
            with contextlib.suppress(OSError):
                csv_file.close()

    def set_save_interval(self, save_every_s: float) -> None:
        """A reload changed ``save_every_s``: a shorter interval counts from the last save."""
        if self.save_every_s is None:
            return
        self.save_every_s = save_every_s
        self._next_save_s = min(self._next_save_s, self._last_save_s + save_every_s)

    def checkpoint(self) -> None:
        """Main thread, every tick: the events log goes to disk, and every ``save_every_s``
        the recording so far is written (notes still sounding end where it ends), so a crash
        or a kill loses little of a take.

        A forked child writes it (``BackgroundSave``): a long take takes seconds of Python
        (mido: about 30 ms per 1000 events) that would hold the GIL from the worker. The next
        save waits at least a hundred times the CPU time the last one took: at most 1 % of a
        core. The worker's sends wait only for the events' copy. A recording that is not a
        regular file (a pipe) is written once, at the end."""
        self.finish_save(0.0)  # (one that ended meanwhile)
        with self._lock:
            if self._closed or not self._began:
                return
            self._flush_csv()
            now_s = time.monotonic()
            path = self._record_path
            if path is None or self.save_every_s is None or now_s < self._next_save_s:
                return
            if self._background.busy or len(self._recorded) == self._saved_events:
                return
            if _is_special_file(path):
                return
            events, switches = list(self._recorded), list(self._switches)
        self._last_save_s = now_s

        def write(announce: Announce | None = None) -> None:
            write_events_midi(path, events, *self._first_bends, switches, announce)

        if BackgroundSave.available():
            if self._background.start(write, len(events)):
                return
            if not self._fork_failed:
                log.warning("cannot start a process to save the recording: this one writes it (it may lag)")
                self._fork_failed = True
        started_s = time.thread_time()
        error = None
        try:
            write()
        except OutputError as err:
            error = str(err)
        self._saved(Saved(len(events), error, False, time.thread_time() - started_s))

    def save_now(self) -> None:
        """Main thread, before a call that may end this process without its usual exit
        (PortAudio aborting it into a restart: livepitch executes itself again): the events
        log goes to disk and the recording so far is written, here (an exec would not wait for
        a save), after any save in progress (which would land after it)."""
        self.finish_save(STOP_WAIT_S)
        with self._lock:
            if self._closed or not self._began:
                return
            self._flush_csv()
            path = self._record_path
            if path is None or len(self._recorded) == self._saved_events or _is_special_file(path):
                return
            if self._background.busy:  # (a long one still going: it would land after this one)
                return
            events, switches = list(self._recorded), list(self._switches)
        started_s = time.thread_time()
        error = None
        try:
            write_events_midi(path, events, *self._first_bends, switches)
        except OutputError as err:
            error = str(err)
        self._last_save_s = time.monotonic()
        self._saved(Saved(len(events), error, False, time.thread_time() - started_s))

    def finish_save(self, wait_s: float = 60.0, end: bool = False) -> None:
        """Wait for a save in progress to end, at most ``wait_s``; ``end``: then end it (main
        thread)."""
        finished = self._background.poll(wait_s, end)
        if finished is not None:
            self._saved(finished)

    def _saved(self, save: Saved) -> None:
        """A save ended: remember what it saved, or say once why it failed; when the next may start."""
        if save.cancelled:  # by the stop, which writes the whole take itself
            log.debug("the save of the recording so far was ended by the stop")
        elif save.error is None:
            self._saved_events = save.label
            self._save_failed = False
        elif not self._save_failed:  # (close reports it again if it still fails)
            log.warning("%s; the recording is kept in memory and written at the end", save.error)
            self._save_failed = True
        every_s = self.save_every_s if self.save_every_s is not None else 0.0
        self._next_save_s = self._last_save_s + max(every_s, 100.0 * save.cpu_s)

    def release_all(self, events: Iterable[Event] = ()) -> None:
        """Send ``events`` (the engine's note-offs), then end anything still sounding, send All
        Notes Off on every channel used since its last one and centre the wheels left bent (main thread, after
        stopping the worker). A port that is down is tried once more at once, whatever the
        backoff; what still cannot be sent is logged."""
        with self._lock:
            if self._closed:
                return
            self._reopen_now_if_down()
            self.send(events)
            self._wheels = dict.fromkeys(self._wheels, 0)  # the next voices start from centred wheels
            self._reopen_now_if_down()  # it failed on the way: one more try at once
            self._end_sounding()
            self._reopen_now_if_down()
            for channel in sorted(self._used_channels - self._quiet_channels):  # (not twice in a row)
                message = mido.Message("control_change", channel=channel, control=ALL_NOTES_OFF, value=0)
                if self._raw_send(message.bytes()):
                    self._sounding = {(c, p) for c, p in self._sounding if c != channel}
                    self._quiet_channels.add(channel)
            for channel in sorted(self._bent_channels):
                self._send_wheel(channel, 0)
            self._log_release()
            if self._sounding or self._bent_channels:
                log.warning(
                    "MIDI port down: %d note(s) left sounding and %d wheel(s) bent on the synth",
                    len(self._sounding),
                    len(self._bent_channels),
                )

    def close(self) -> None:
        """Write the recording and the CSV, close the port; nothing is sent after. Safe twice.

        Both files are finished even if one fails; the first failure is raised after."""
        with self._lock:
            self._closed = True
            failures: list[OutputError] = []
            try:
                # a save in progress must not land after the last file: a short one may end,
                # a long one is ended (the last file supersedes it)
                self.finish_save(STOP_WAIT_S, end=True)
                if self._record_path is not None and self._began:
                    path, self._record_path = self._record_path, None
                    try:
                        write_events_midi(path, self._recorded, *self._first_bends, self._switches)
                    except OutputError as err:
                        failures.append(err)
                if self._csv_error is not None:  # logged when it happened; the exit says what it left
                    failures.append(
                        OutputError(
                            f"the events log {self._csv_path} is incomplete: it stopped when writing failed"
                        )
                    )
                if self._csv is not None:
                    csv_file, self._csv = self._csv, None
                    try:
                        csv_file.close()
                    except OSError as err:
                        failures.append(OutputError(f"cannot finish the events log: {first_line(err)}"))
            finally:
                pipe, self._record_pipe = self._record_pipe, None
                if pipe is not None:  # (after the recording: its reader's input ends here)
                    os.close(pipe)
                port, self._port = self._port, None
                self._close_failed_ports()
                if port is not None:
                    port.close()
            if failures:
                raise failures[0]


@functools.cache
def _setup_bytes(bends: BendMode, bend_range_semitones: int) -> tuple[tuple[int, ...], ...]:
    """The setup's messages as bytes, built once (the MPE zone is 101 messages: building them
    took a millisecond of the worker's before a phrase's first note)."""
    return tuple(tuple(message.bytes()) for message in setup_messages(bends, bend_range_semitones))


def _is_special_file(path: Path) -> bool:
    """Whether ``path`` is there and not a regular file (a pipe, a device: written once)."""
    try:
        return not stat.S_ISREG(os.stat(path).st_mode)
    except OSError:  # not there yet (or not to be looked at: the save will say why)
        return False


def check_writable(path: Path) -> None:
    """Fail at start, not after a whole session, when a file cannot be written there. A pipe
    or a device is only checked for permission: opening a pipe and closing it would end its
    reader's input before the session wrote anything."""
    if not str(path):
        raise OutputError("an output path is empty")
    if is_directory(stat_or_none(path, cannot_write)):
        raise OutputError(f"cannot write {path}: it is a directory")
    if _is_special_file(path):
        if not os.access(path, os.W_OK):
            raise OutputError(f"cannot write {path}: permission denied")
        return
    parent = path.parent if str(path.parent) else Path(".")
    if not is_directory(stat_or_none(parent, cannot_write)):
        raise OutputError(f"cannot write {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"cannot write {path}: directory {parent} is not writable")
    existed = os.path.lexists(path)  # a dangling symlink exists too: never unlink it
    try:  # a read-only or immutable file, or a filesystem refusing it (os.access lets root pass)
        with open(path, "ab"):
            pass
    except OSError as err:
        raise unwritable(path, err) from err
    if not existed:
        path.unlink(missing_ok=True)
