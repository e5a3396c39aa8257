"""The one owner of the live MIDI output: events in, bytes out, and every note released on stop.

Runs on the worker thread (``send``) and, once the worker has stopped, on the main thread
(``release_all``, ``close``). Keeps track of the sounding notes so that any stop, fault or
overload can end them, then sends All Notes Off on every channel it used. A failing port is
logged and reopened (with backoff) through ``reopen``; events in between are lost, never
stuck: the notes sounding when the port failed are released on the new port.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol, TextIO

import mido

from livepitch.errors import MidiPortError, OutputError, first_line
from livepitch.event_files import EVENTS_CSV_COLUMNS, event_to_message, write_events_midi
from livepitch.events import Event, NoteOff, NoteOn, PitchBend, event_kind
from livepitch.geometry import MODEL_RATE_HZ
from livepitch.midi_file import setup_messages
from livepitch.settings import BendMode

log = logging.getLogger("livepitch.midi")

ALL_NOTES_OFF = 123
RETRY_DELAYS_S = (0.5, 1.0, 2.0, 5.0)


class Port(Protocol):
    """A MIDI output taking raw messages (``MidiOutput``, or a recording fake in tests)."""

    name: str

    def send(self, message: list[int]) -> None: ...

    def close(self) -> None: ...


class MidiSink:
    """Sends events to a port (reopened through ``reopen`` after failures), records them too."""

    def __init__(
        self,
        port: Port | None,
        bends: BendMode,
        bend_range_semitones: int,
        reopen: Callable[[], Port] | None = None,
        record_path: Path | None = None,
        events_csv: Path | None = None,
        append_events: bool = False,
    ) -> None:
        self.bends = bends
        self.bend_range_semitones = bend_range_semitones
        self._reopen = reopen
        self._port: Port | None = None
        self.last_api: object | None = None
        """The MIDI system of the last port opened (``MidiApi``), if the port says."""
        self._retry_at = 0.0
        self._failures = 0
        self.send_errors = 0
        self._sounding: set[tuple[int, int]] = set()
        self._used_channels: set[int] = set()
        self._record_path = record_path
        self._recorded: list[Event] = []
        self._csv: TextIO | None = None
        if events_csv is not None:
            resume = append_events and events_csv.exists()
            try:
                self._csv = open(events_csv, "a" if resume else "w", encoding="utf-8", newline="")  # noqa: SIM115
            except OSError as err:
                raise OutputError(f"cannot write {events_csv}: {first_line(err)}") from err
            if not resume:
                self._csv.write(",".join(EVENTS_CSV_COLUMNS) + "\n")
        if port is not None:
            self._attach(port)

    @property
    def port_name(self) -> str | None:
        """The open port's name, or None while it is down."""
        return self._port.name if self._port is not None else None

    @property
    def sounding(self) -> list[tuple[int, int]]:
        """``(channel, pitch)`` of every sounding note."""
        return sorted(self._sounding)

    def _attach(self, port: Port) -> None:
        self._port = port
        self.last_api = getattr(port, "api", None)
        self._failures = 0
        for message in setup_messages(self.bends, self.bend_range_semitones):
            self._raw_send(message.bytes())

    def _raw_send(self, data: list[int]) -> bool:
        port = self._port
        if port is None and not self._try_reopen():
            return False
        assert self._port is not None
        try:
            self._port.send(data)
            return True
        except MidiPortError as err:
            self.send_errors += 1
            log.warning("%s; will reopen", err)
            self._drop_port()
            return False

    def _drop_port(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            with contextlib.suppress(MidiPortError, OSError):
                port.close()
        self._retry_at = time.monotonic() + RETRY_DELAYS_S[min(self._failures, len(RETRY_DELAYS_S) - 1)]
        self._failures += 1

    def _try_reopen(self) -> bool:
        if self._reopen is None or time.monotonic() < self._retry_at:
            return False
        try:
            port = self._reopen()
        except MidiPortError as err:
            log.warning("MIDI port still unavailable: %s", err)
            self._drop_port()
            return False
        log.info("MIDI port %r open again", port.name)
        stuck = sorted(self._sounding)
        self._attach(port)
        for channel, pitch in stuck:  # whatever was sounding when the port failed
            self._raw_send(mido.Message("note_off", channel=channel, note=pitch, velocity=0).bytes())
        self._sounding.clear()
        return True

    def reconnect(self) -> None:
        """Close and reopen the port now (its server restarted under it)."""
        self._drop_port()
        self._retry_at = 0.0
        self._try_reopen()

    def send(self, events: Iterable[Event]) -> None:
        """Send events in order (worker thread); log them to the CSV and the recording."""
        for event in events:
            self._used_channels.add(event.channel)
            delivered = self._raw_send(event_to_message(event).bytes())
            if isinstance(event, NoteOn) and delivered:
                self._sounding.add((event.channel, event.pitch))
            elif isinstance(event, NoteOff):
                self._sounding.discard((event.channel, event.pitch))
            if self._record_path is not None:
                self._recorded.append(event)
            if self._csv is not None:
                self._write_csv_row(event)

    def _write_csv_row(self, event: Event) -> None:
        assert self._csv is not None
        velocity = str(event.velocity) if isinstance(event, NoteOn) else ""
        cents = f"{event.cents:.1f}" if isinstance(event, PitchBend) else ""
        self._csv.write(
            f"{event_kind(event)},{event.time_sample / MODEL_RATE_HZ:.6f},{event.emitted_sample / MODEL_RATE_HZ:.6f},"
            f"{event.pitch},{velocity},{event.channel + 1},{cents}\n"
        )

    def release_all(self, events: Iterable[Event] = ()) -> None:
        """Send ``events`` (the engine's note-offs), then end anything still sounding and send
        All Notes Off on every channel used. Call with the worker stopped."""
        self.send(events)
        for channel, pitch in sorted(self._sounding):
            self._raw_send(mido.Message("note_off", channel=channel, note=pitch, velocity=0).bytes())
        self._sounding.clear()
        for channel in sorted(self._used_channels):
            self._raw_send(
                mido.Message("control_change", channel=channel, control=ALL_NOTES_OFF, value=0).bytes()
            )

    def close(self) -> None:
        """Write the recording and the CSV, close the port; safe to call twice."""
        if self._csv is not None:
            self._csv.close()
            self._csv = None
        if self._record_path is not None:
            path, self._record_path = self._record_path, None
            write_events_midi(path, self._recorded, self.bends, self.bend_range_semitones)
        port, self._port = self._port, None
        if port is not None:
            port.close()
