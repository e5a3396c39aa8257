"""The live daemon: audio source -> ring -> worker (engine) -> MIDI sink, watched by the main thread.

Threads: the audio source's producer (PortAudio callback or file replay) writes the ring; the
worker turns it into MIDI; the main thread (this module) starts and stops them, shows the
status line, handles signals (SIGINT/SIGTERM stop, SIGHUP reloads the config file), notices a
lost device (an error, or no audio for a while) and reopens it with backoff. Every path that
stops the worker releases the sounding notes first.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import logging
import resource
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import numpy.typing as npt

from livepitch.audio_sources import AudioSource, FileReplaySource
from livepitch.engine import StreamingEngine, build_engine
from livepitch.errors import (
    AudioInputError,
    AudioWedgedError,
    ConfigError,
    DeviceError,
    LivepitchError,
    MidiPortError,
    first_line,
)
from livepitch.events import Event, NoteOff, NoteOn
from livepitch.factories import Factories, default_factories
from livepitch.geometry import FRAME_HOP_SAMPLES, MODEL_RATE_HZ
from livepitch.midi_sink import MidiSink, Port, check_writable
from livepitch.resample_stream import DeviceToModel
from livepitch.ring_buffer import AudioRing
from livepitch.self_restart import SessionClock
from livepitch.settings import DaemonSettings, MidiApi
from livepitch.status import StatusLine, StatusSnapshot, format_status, note_name
from livepitch.wake_flag import WakeFlag
from livepitch.window_engine import WindowFramesModel
from livepitch.worker import Worker

log = logging.getLogger("livepitch")

RETRY_DELAYS_S = (0.5, 1.0, 2.0, 5.0)
GIL_SWITCH_INTERVAL_S = 0.0005
RESUME_OVERLAP_FRAMES = 4
"""Frames (46 ms) of a replay, or of a kept stream's audio, played again after a reload,
before where the old engine stopped publishing: an onset there needs frames before it to
rise from."""
MIN_CHUNK_FRAMES = 64
"""The worker reads at least this many device frames at once."""
RELOAD_POLL_S = 0.05
"""How often a wait for devices to return looks for a SIGHUP [s]."""

STALL_S = 1.5
STALL_BLOCKS = 3
"""No audio for ``STALL_S``, or for this many device blocks if longer, from a device that
should be running means it is gone."""


class Daemon:
    """Runs until stopped; ``run`` returns the process exit code."""

    def __init__(
        self,
        settings: DaemonSettings,
        factories: Factories | None = None,
        reload: Callable[[], DaemonSettings] | None = None,
        status_line: StatusLine | None = None,
        restart_process: Callable[[SessionClock], None] | None = None,
        resumed: int = 0,
        clock: SessionClock | None = None,
        abort_restart: Callable[[SessionClock | None, bool], None] | None = None,
        on_events: Callable[[list[Event]], None] | None = None,
    ) -> None:
        """``on_events`` is given every batch of events once the MIDI sink has sent it (on the
        worker thread; the notes a stop, fault or reload releases, on the main thread).
        ``restart_process`` replaces the process with a new livepitch (to reconnect), given
        the session's clock; a restarted one gets it back as ``clock``. ``abort_restart`` is
        told, before each call that may reach the audio system, the session's clock and
        whether audio has flowed in this process: what PortAudio aborting the process during
        that call should execute instead (``livepitch.abort_restart``); None for the clock
        once stopping (an abort then ends the process)."""
        self.settings = settings
        self._on_events = on_events
        self._restart_process = restart_process
        self._abort_restart = abort_restart
        self.resumed = resumed
        """How many times this daemon was restarted to reconnect (0: a fresh start)."""
        self.factories = factories or default_factories()
        self._reload_settings = reload
        self.status_line = status_line or StatusLine()
        # set by signal handlers, which may run while the main thread waits on them
        self._stop = WakeFlag()
        self._reload_requested = WakeFlag()
        self._model: WindowFramesModel | None = None
        self.audio_wedged = False
        """An audio stream would not close (PortAudio waiting on a dead server): the process
        must not wait for PortAudio at exit either."""
        self.engine: StreamingEngine | None = None
        self.sink: MidiSink | None = None
        self.source: AudioSource | None = None
        self.worker: Worker | None = None
        self._ring: AudioRing | None = None
        self._printed: collections.deque[str] = collections.deque(maxlen=1000)
        self._last_delivered = 0
        self._last_progress = time.monotonic()
        self._stall_s = STALL_S
        self.recoveries = 0
        self.totals = {"drops": 0, "overflows": 0, "device_overflows": 0, "notes": 0, "audio_frames": 0}
        """Session counts: ``overflows`` are blocks livepitch's ring could not take (audio it
        lost); ``device_overflows`` callbacks the audio system flagged (PortAudio's JACK
        backend flags the callback after any xrun of the server, whoever was late)."""
        self._fallback: tuple[DaemonSettings, WindowFramesModel | None] | None = None
        """While a configuration adopted during a wait for the devices is untried: the last
        one that worked, and its model."""
        self._started: tuple[float, float] | None = None
        """(monotonic, process CPU) time when audio first started flowing."""
        self._shut_down = False
        self._exiting = False
        """``run`` is ending (stopped, failed, or the input ended): an abort now ends the process."""
        self._resume: _ReplayResume | None = None
        """Where the replay a reload restarts goes on (None: not a replay resumed)."""
        self._input_stopped: tuple[float, float] | None = None
        """When the last audio stream stopped (monotonic s), and the audio it left unread [s]."""
        self._source_clock_start = 0
        """The session's time when the current source started [samples at 22050 Hz]."""
        self._held_samples = 0
        """Audio the last stopped worker's resampler held back, that no engine read [samples
        at 22050 Hz]: the next start's clock goes on past it."""
        self._carried_clock: int | None = None
        """The session's time a restarted process goes on from (``clock``) until audio flows."""
        self._handover: _Handover | None = None
        """What a reload that kept the stream hands the next worker (None: nothing)."""
        if clock is not None:
            self._carried_clock = clock.time_samples
            self._input_stopped = (clock.stopped_monotonic_s, clock.unread_s)

    # -- control from other threads / signal handlers -----------------------------------
    def request_stop(self, *_: Any) -> None:
        """Ask the main loop to stop (signal handler, or another thread)."""
        self._stop.set()

    def stop_requested(self) -> bool:
        """Whether a stop was asked (any thread)."""
        return self._stop.is_set()

    def request_reload(self, *_: Any) -> None:
        """Ask the main loop to reload the configuration (SIGHUP)."""
        self._reload_requested.set()

    def install_signal_handlers(self) -> None:
        """SIGINT/SIGTERM stop, SIGHUP reloads (main thread only)."""
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, self._on_hangup)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stop.set()

    def _on_hangup(self, signum: int, frame: FrameType | None) -> None:
        self._reload_requested.set()

    # -- lifecycle ----------------------------------------------------------------------
    def run(self) -> int:
        """Start everything, loop until stopped or the input file ends, release, close."""
        # Python threads beside the worker (the Python audio callback, where the C one is not
        # built or not wanted; the main thread's signals and status line) need the GIL within
        # a fraction of an audio period, not after the default 5 ms while the worker runs.
        sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        try:
            self._model = self.factories.model(self.settings)
            self._ready_abort_restart()  # (the first source loads PortAudio, which may abort)
            if self.resumed:
                if not self._start_when_devices_return():
                    return 0
            else:
                source = self.factories.source(self.settings)  # an unknown device fails here, first
                self._check_channel(source)
                self._check_blocks(source)
                self._open_sink()
                self._start_pipeline(source)
            return self._loop()
        finally:
            self._exiting = True
            try:
                self._shutdown()
            finally:
                self._stop.close()
                self._reload_requested.close()

    def _start_when_devices_return(self) -> bool:
        """After a restart to reconnect: open MIDI and audio, retrying with backoff; False if stopped."""
        attempt = 0
        while not self._stop.is_set():
            try:
                if attempt:  # PortAudio may have looked for devices as the server went down
                    self._reinitialise_audio_system()
                if self.sink is None:
                    self._open_sink()
                self._start_pipeline(self.factories.source(self.settings))
                self._fallback = None
                log.info("audio input back (restart %d)", self.resumed)
                return True
            except AudioWedgedError:
                self._restart_to_reconnect()
                return False
            except (DeviceError, MidiPortError, ConfigError, AudioInputError) as err:
                if isinstance(err, (ConfigError, AudioInputError)):
                    self._fall_back(err)  # a configuration reloaded meanwhile: back to the last good one
                delay = RETRY_DELAYS_S[min(attempt, len(RETRY_DELAYS_S) - 1)]
                attempt += 1
                level = logging.INFO if attempt <= len(RETRY_DELAYS_S) else logging.DEBUG
                log.log(level, "devices not back yet (%s); next try in %.1f s", err, delay)
                if not self._wait_to_retry(delay):
                    return False
        return False

    def _open_sink(self) -> None:
        settings = self.settings
        for path in (settings.port.record, settings.port.events_csv):  # before a port appears
            if path is not None:
                check_writable(path)
        port: Port | None
        reopen: Callable[[], Port] | None = lambda: self.factories.port(self.settings)  # noqa: E731
        try:
            port = self.factories.port(settings)
            log.info("MIDI out: %s", getattr(port, "shown_name", port.name))
        except MidiPortError as err:
            if settings.audio.input_file is None:
                raise
            kept = [
                what
                for what, wanted in (
                    ("printed", settings.ui.print_notes),
                    ("recorded", settings.port.record is not None),
                    ("logged", settings.port.events_csv is not None),
                    ("handed to the program", self._on_events is not None),
                )
                if wanted
            ]
            where = (
                f"notes are {' and '.join(kept)} only"
                if kept
                else "the notes go nowhere (see --print-notes, --record)"
            )
            log.warning("no MIDI output (%s); %s", err, where)
            port, reopen = None, None
        try:
            self.sink = MidiSink(
                port,
                settings.midi.bends,
                settings.midi.effective_bend_range_semitones,
                reopen=reopen,
                record_path=settings.port.record,
                events_csv=settings.port.events_csv,
                append_events=self.resumed > 0,
                started=False,
                save_every_s=settings.port.save_every_s if settings.port.record is not None else None,
            )
        except BaseException:  # an unwritable recording: the port (and its JACK watch) closes
            if port is not None:
                port.close()
            raise

    def _check_channel(self, source: AudioSource, settings: DaemonSettings | None = None) -> None:
        channel = (settings or self.settings).audio.channel
        if channel is not None and channel > source.channels:
            problem = AudioInputError if isinstance(source, FileReplaySource) else DeviceError
            raise problem(
                f"channel {channel} (--channel, audio.channel): {source.description} has "
                + ("1 channel" if source.channels == 1 else f"{source.channels} channels")
            )

    def _start_pipeline(
        self, source: AudioSource, running: bool = False, engine: StreamingEngine | None = None
    ) -> None:
        """A fresh converter, engine (unless given, built and warmed up) and worker for
        ``source``, started; a fresh ring too, unless the source is ``running`` (kept by a
        reload: the new worker reads its ring on from where the last one stopped)."""
        assert self._model is not None and self.sink is not None
        self._ready_abort_restart()
        if self.audio_wedged and not running and not isinstance(source, FileReplaySource):
            # opening a stream beside the one PortAudio never released crashed in libjack
            raise AudioWedgedError("the audio system did not release a stream: no new one opens here")
        settings = self.settings
        self._check_blocks(source)
        if running:
            assert self._ring is not None and source is self.source
            ring = self._ring
        else:
            ring = AudioRing(max(1, int(settings.audio.ring_ms / 1000.0 * source.rate_hz)), source.channels)
        self._check_channel(source)
        channel = None if settings.audio.channel is None else settings.audio.channel - 1
        converter = DeviceToModel(source.rate_hz, source.channels, channel, settings.audio.resample_quality)
        if engine is None:
            engine = self._ready_engine(self._model, settings)
        handover, self._handover = (self._handover, None) if running else (None, None)
        self.worker = Worker(
            ring,
            converter,
            engine,
            self.sink,
            max_backlog_frames=int(settings.audio.max_backlog_ms / 1000.0 * source.rate_hz),
            chunk_frames=max(MIN_CHUNK_FRAMES, settings.audio.block_frames),
            on_events=self._events_handler(settings),
            preroll=None if handover is None else handover.audio,
        )
        self._ring = ring
        if not running:
            try:
                source.start(ring)
            except AudioWedgedError:
                self.audio_wedged = True
                raise
        engine.frames.share_gil(source.callback_needs_gil)  # C callback: no yields, 8 % less CPU
        continuing = True  # the session's stream goes on: a note sounding then is not struck again
        if self._resume is not None:  # a replay resumed by a reload: times go on from there
            self.sink.time_offset_samples = self._resume.time_offset_samples
        elif handover is not None:  # a kept stream: the new engine starts with the old one's held audio
            self.sink.time_offset_samples = handover.time_offset_samples
        elif self.engine is not None or self._carried_clock is not None:  # a restart (of the process)
            self.sink.time_offset_samples = self._clock_after_last_sample() + self._input_gap_samples(
                source, running
            )
        else:
            continuing = False
        engine.tracker.onset_at_first_frame = not continuing
        self._held_samples, self._carried_clock = 0, None
        self.engine = engine
        if not running:
            self._source_clock_start = self.sink.time_offset_samples
        self.source = source
        if self._started is None:  # the session starts when audio first flows, not on a failed open
            self.sink.begin()  # its outputs too: a failed start leaves an earlier take alone
            self._started = (time.monotonic(), time.process_time())
        self.worker.start()
        self._last_delivered = source.frames_delivered
        self._last_progress = time.monotonic()
        self._stall_s = max(STALL_S, STALL_BLOCKS * settings.audio.block_frames / source.rate_hz)
        log.info("audio in: %s%s", source.description, " (kept open)" if running else "")

    def handover_clock(self, lost: bool = False) -> SessionClock:
        """The session's clock for a new process, as of now (main thread): the time after the
        last sample any engine read, plus the input's time since that no engine will read
        (a running stream's backlog in its ring; a stopped or ``lost`` one's time away, from
        when it stopped or last delivered, with what it left unread), stopped now."""
        now = time.monotonic()
        source, ring = self.source, self._ring
        if source is not None and not isinstance(source, FileReplaySource):  # running, or just lost
            stopped_s = self._stopped_delivering_s(ring) if lost else now
            unread_s = ring.available_frames / source.rate_hz if ring is not None else 0.0
        else:
            stopped_s, unread_s = self._input_stopped or (now, 0.0)
        away_samples = max(0, round((now - stopped_s + unread_s) * MODEL_RATE_HZ))
        return SessionClock(self._clock_after_last_sample() + away_samples, now, 0.0)

    @property
    def audio_flowed(self) -> bool:
        """Whether an input delivered audio in this process."""
        source = self.source
        return self.totals["audio_frames"] > 0 or (source is not None and source.frames_delivered > 0)

    def _clock_after_last_sample(self) -> int:
        """The session's time just after the last sample an engine read (or its resampler
        held), or the clock a restarted process was handed [samples at 22050 Hz]."""
        if self._carried_clock is not None:
            return self._carried_clock
        offset = self.sink.time_offset_samples if self.sink is not None else 0
        return offset + self._held_samples + (self.engine.consumed_samples if self.engine else 0)

    def _input_gap_samples(self, source: AudioSource, running: bool) -> int:
        """The time a live input was away (since the last stream stopped, or a lost one last
        delivered, with the audio it held that no engine read) [samples at 22050 Hz]: recorded
        times after a recovery or a reopening reload stay on the performance's clock (a loss
        dated by the ring's last callback). 0 for a kept stream or a replay."""
        if running or self._input_stopped is None or isinstance(source, FileReplaySource):
            return 0
        stopped_at, unread_s = self._input_stopped
        return max(0, round((time.monotonic() - stopped_at + unread_s) * MODEL_RATE_HZ))

    @staticmethod
    def _ready_engine(model: WindowFramesModel, settings: DaemonSettings) -> StreamingEngine:
        """An engine for ``settings``, warmed up: a model that cannot run fails here, on the
        main thread."""
        engine = build_engine(model, settings)
        engine.warm_up()
        return engine

    def _check_blocks(self, source: AudioSource, settings: DaemonSettings | None = None) -> None:
        """The backlog limit must hold two blocks (else every block looks like falling behind),
        and the ring the backlog plus a block (else it overflows before the worker skips). A
        block is what the worker reads at once: ``block_frames``, at least ``MIN_CHUNK_FRAMES``."""
        audio = (settings or self.settings).audio
        block_ms = 1000.0 * max(MIN_CHUNK_FRAMES, audio.block_frames) / source.rate_hz
        block = f"block_frames = {audio.block_frames} ({block_ms:.0f} ms at the input's {source.rate_hz} Hz)"
        if audio.max_backlog_ms < 2.0 * block_ms:
            raise ConfigError(
                f"audio.max_backlog_ms = {audio.max_backlog_ms:g} must be at least two blocks of {block}: "
                "raise it or lower block_frames"
            )
        if audio.ring_ms < audio.max_backlog_ms + block_ms:
            raise ConfigError(
                f"audio.ring_ms = {audio.ring_ms:g} must hold max_backlog_ms ({audio.max_backlog_ms:g}) plus a "
                f"block of {block}: raise it or lower block_frames"
            )

    def _account(self, worker: Worker | None, source: AudioSource | None, ring: AudioRing | None) -> None:
        """Add a stopped pipeline's counters to the session totals: the worker's, and those of
        the source and its ring once they stop (a reload may keep them for the next worker)."""
        if worker is not None:
            self.totals["drops"] += worker.stats.drops
            self.totals["notes"] += worker.stats.notes_started
        if ring is not None:
            self.totals["overflows"] += ring.overflows
        if source is not None:
            self.totals["device_overflows"] += int(getattr(source, "overflows", 0))
            self.totals["audio_frames"] += source.frames_delivered

    def _log_session(self) -> None:
        """One line at exit: what the session did and cost (CPU counted from the first start)."""
        if self._started is None:  # (a start that failed ends with its own error line)
            return
        usage = resource.getrusage(resource.RUSAGE_SELF)
        shared_mb = _status_mb("RssShmem") or 0.0
        # VmHWM, not ru_maxrss: a child's ru_maxrss starts at its parent's peak
        peak_mb = _status_mb("VmHWM") or usage.ru_maxrss / 1024.0
        wall_s = time.monotonic() - self._started[0]
        children = resource.getrusage(resource.RUSAGE_CHILDREN)  # (the recording's saves)
        cpu_s = time.process_time() - self._started[1] + children.ru_utime + children.ru_stime
        log.info(
            "session: %.1f s, %d note%s, %d overflows, %d drops, %d recoveries, CPU %.1f s (%.0f%% of one core), "
            "peak RSS %.0f MB (of which %.0f MB shared memory, e.g. JACK's buffers); %d input overflows "
            "flagged by the audio system (with JACK: xruns)",
            wall_s,
            self.totals["notes"],
            "" if self.totals["notes"] == 1 else "s",
            self.totals["overflows"],
            self.totals["drops"],
            self.recoveries,
            cpu_s,
            100.0 * cpu_s / max(wall_s, 1e-9),
            peak_mb,
            shared_mb,
            self.totals["device_overflows"],
        )

    def _stop_pipeline(
        self, reason: str, keep_source: bool = False, lost: bool = False, reopening: bool = False
    ) -> bool:
        """Stop the worker, release every sounding note, stop the source (main thread). The
        notes go out before the source closes: PortAudio may wait a second there for a JACK
        server that died, or abort the process (``livepitch.abort_restart``).

        With ``keep_source`` the source goes on filling its ring for the next worker, unless
        the worker did not stop (it could still read the ring); True if the source was kept.
        ``lost``: the source had stopped delivering (its audio ended when it last made progress).
        ``reopening``: a reload opens the input again at once (the source remembers who was
        connected to it, for the new stream).
        """
        self._ready_abort_restart(lost)
        worker, source, ring = self.worker, self.source, self._ring
        self.worker = None
        if worker is not None:
            worker.stop()  # it finishes its chunk; the source may go on filling the ring meanwhile
        stopped = worker is None or not worker.alive  # (else the ring and the resampler are its)
        keep_source = keep_source and stopped
        if keep_source:
            source = ring = None  # still running: counted when it stops
        else:
            self.source, self._ring = None, None
        released = self._release_notes(worker)
        if source is not None:
            self._save_before_audio_call(source)
            source.stop(reopening)
            if getattr(source, "wedged", False):
                self.audio_wedged = True
        self._handover = None
        if worker is not None and stopped:
            self._handover = self._held_back(worker) if keep_source else None
            if self._handover is None:
                self._held_samples += worker.converter.reset()
        if source is not None:
            unread_frames = 0
            if ring is not None:  # what it held and what it refused when full: never read either
                unread_frames = ring.available_frames + (ring.take_dropped_frames() if stopped else 0)
            unread_s = unread_frames / source.rate_hz
            self._input_stopped = (self._stopped_delivering_s(ring) if lost else time.monotonic(), unread_s)
        self._account(worker, source, ring)
        log.debug("pipeline stopped: %s", reason)
        if released and self._on_events is not None:  # the input stopped first, whatever this does
            try:
                self._to_program(released)
            except Exception as err:  # the embedding program's: the stop goes on
                log.error("on_events failed on the released notes: %s", first_line(err))
        return keep_source

    def _release_notes(self, worker: Worker | None) -> list[Event]:
        """End every sounding note: the engine's (its worker stopped), else the MIDI port's;
        return the note-offs, for the embedding program."""
        events: list[Event] = []
        try:
            if self.engine is not None and (worker is None or not worker.alive):
                events = self.engine.release_all()
            elif worker is not None and worker.alive:  # (one that never started has nothing to end)
                log.error("the worker did not stop; releasing the notes the MIDI port knows of")
                if self.sink is not None and self.engine is not None:  # as events: on_events gets them too
                    now = self.engine.consumed_samples
                    events = [NoteOff(now, now, channel, pitch) for channel, pitch in self.sink.sounding]
        except Exception as err:  # a broken engine must not keep the notes on
            log.error("cannot end the engine's notes (%s); releasing the notes the MIDI port knows of", err)
        finally:
            if self.sink is not None:
                self.sink.release_all(events)
        return events

    def _held_back(self, worker: Worker) -> _Handover | None:
        """The audio a stopped worker's engine held back for its lookahead, which the next
        engine on the same stream gets first: from ``RESUME_OVERLAP_FRAMES`` before the end of
        its last published frame (an onset needs frames before it to rise from), then what the
        resampler held. None without an engine (the clock then goes on as after any stop)."""
        if self.engine is None or self.sink is None:
            return None
        consumed = self.engine.consumed_samples
        start = _judged_again_from(self.engine)
        tail = worker.recent.newest(consumed - start)
        audio = np.concatenate([tail, worker.converter.flush()])
        return _Handover(audio, self.sink.time_offset_samples + consumed - tail.shape[0])

    def _shutdown(self) -> None:
        """Stop, release, log the session, write the outputs and close the port; once (a
        restart to reconnect shuts down before ``run`` does)."""
        if self._shut_down:
            return
        self._shut_down = True
        try:
            self._stop_pipeline("shutdown")
            self._log_session()
            self.status_line.clear()
            self._flush_printed()
        finally:  # the recording is written and the port closed whatever failed before
            if self.sink is not None:
                sink, self.sink = self.sink, None
                sink.close()

    def _loop(self) -> int:
        tick_s = 0.1
        while not self._stop.is_set():
            if self._reload_requested.is_set():
                self._reload_requested.clear()
                self._reload()
            worker, source = self.worker, self.source
            if worker is not None and worker.error is not None:
                raise _worker_failed(worker.error) from worker.error
            if (
                source is not None
                and source.finished
                and self._ring is not None
                and self._ring.available_frames == 0
            ):
                self._finish_file()
                return 0
            if source is not None and source.error is not None and self.settings.audio.input_file is not None:
                raise AudioInputError(source.error)  # a broken file does not come back
            if source is not None and self._lost(source):
                if (
                    self.settings.audio.input_file is not None
                ):  # a file that stalls is not a device to wait for
                    raise AudioInputError(f"{source.description}: no audio arrived for a while")
                self._recover(source.error or "no audio arrived for a while")
            if self.sink is not None:
                self.sink.poll()  # a failed port holding notes is reopened even over silence
                self.sink.checkpoint()  # the events log to disk; the recording so far, now and then
            self._flush_printed()
            self._show_status()
            self._stop.wait(tick_s)
        log.info("stopping")
        return 0

    def _stopped_delivering_s(self, ring: AudioRing | None) -> float:
        """When a lost input last delivered (``time.monotonic()``): its ring's last callback,
        or where the callback leaves no time, the main loop's tick that last saw progress."""
        at_s = ring.last_callback_monotonic_s if ring is not None else None
        return at_s if at_s is not None and at_s <= time.monotonic() else self._last_progress

    def _lost(self, source: AudioSource) -> bool:
        if source.error is not None:
            return True
        delivered = source.frames_delivered
        now = time.monotonic()
        if delivered != self._last_delivered or source.finished:
            self._last_delivered, self._last_progress = delivered, now
            return False
        return now - self._last_progress > self._stall_s

    def _finish_file(self) -> None:
        """The replayed file ended: process the rest, publish the last frames, end the notes."""
        worker = self.worker
        assert worker is not None and self.engine is not None and self.sink is not None
        worker.stop()
        try:  # the worker's last steps, on this thread: a failure is reported as the worker's
            worker.process_available(last=True)
            worker.deliver(self.engine.finish())  # printed and counted like every other note
        except LivepitchError:
            raise
        except Exception as err:
            raise _worker_failed(err) from err
        self._stop_pipeline("end of input file")

    def _recover(self, reason: str) -> None:
        """Release the notes, then reopen the audio source (and a JACK MIDI port) with backoff."""
        log.warning("audio input lost (%s): notes released, retrying", reason)
        self._stop_pipeline(reason, lost=True)
        if self.audio_wedged:  # this stream, or one a reload closed, was never released
            self._restart_to_reconnect()
            return
        attempt = 0
        while not self._stop.is_set():
            delay = RETRY_DELAYS_S[min(attempt, len(RETRY_DELAYS_S) - 1)]
            attempt += 1
            if self.sink is not None:
                self.sink.poll()
            if not self._wait_to_retry(delay):
                return
            try:
                self._reinitialise_audio_system()
                source = self.factories.source(self.settings)
                if self.sink is not None and self._midi_is_jack():
                    self.sink.reconnect()
                self._start_pipeline(source)
            except AudioWedgedError:  # a stream opened as the server went down was never released
                self._restart_to_reconnect()
                return
            except (DeviceError, MidiPortError) as err:
                # the first tries say so; an outage that lasts goes on at debug level (every 5 s)
                level = logging.INFO if attempt <= len(RETRY_DELAYS_S) else logging.DEBUG
                log.log(level, "audio input still unavailable (%s); next try in %.1f s", err, delay)
                continue
            except (ConfigError, AudioInputError) as err:
                self._fall_back(err)  # a configuration reloaded meanwhile: back to the last good one
                continue
            self._fallback = None
            self.recoveries += 1
            log.info("audio input back after %d tries", attempt)
            return

    def _ready_abort_restart(self, lost: bool = False) -> None:
        """Before a call that may reach PortAudio (main thread): hand ``abort_restart`` the
        session's clock as of now (``lost``: the running input stopped delivering), for a
        restart if PortAudio aborts the process during it; None once stopping."""
        if self._abort_restart is None:
            return
        ending = self._stop.is_set() or self._exiting  # an abort must not start it again
        self._abort_restart(None if ending else self.handover_clock(lost), self.audio_flowed)

    def _save_before_audio_call(self, source: AudioSource | None = None) -> None:
        """Before a PortAudio call that may abort this process into a restart (main thread):
        the events log and the recording to disk, which that would lose (the note-offs just
        sent with them). Not once stopping (an abort then ends the process anyway, and the
        stop writes them) or for a replay."""
        if (
            self._abort_restart is None
            or self._stop.is_set()
            or self._exiting
            or self.sink is None
            or isinstance(source, FileReplaySource)
        ):
            return
        self.sink.save_now()

    def _restart_to_reconnect(self) -> None:
        """PortAudio holds a stream it will never release (``audio_wedged``): only a new process
        can reset it. Shut down (notes released, outputs written) and replace this process with
        a fresh livepitch; without that means, ``DeviceError``. Returns if asked to stop."""
        if self._restart_process is None:
            raise DeviceError("the audio system did not release the lost stream; restart livepitch")
        if self._stop.is_set():  # a stop asked meanwhile: nothing to reconnect for
            return
        log.warning("the audio system will not release a stream: restarting livepitch to reconnect")
        clock = self.handover_clock()
        self._shutdown()
        if self._stop.is_set():  # asked while shutting down: the new process would not know
            return
        self._restart_process(clock)

    def _wait_to_retry(self, delay_s: float) -> bool:
        """Wait ``delay_s`` before the next try to open the devices (main thread). A SIGHUP
        meanwhile adopts the new configuration and ends the wait, so a device named by the
        new configuration is tried at once. False if asked to stop."""
        deadline = time.monotonic() + delay_s
        while not self._stop.is_set():
            if self._reload_requested.is_set():
                self._reload_requested.clear()
                self._reload_while_down()
                return True
            left_s = deadline - time.monotonic()
            if left_s <= 0:
                return True
            self._stop.wait(min(left_s, RELOAD_POLL_S))
        return False

    def _read_reloaded(self) -> tuple[DaemonSettings, WindowFramesModel | None]:
        """The configuration file read again, and the model it needs: the running one, or for
        a new model or the other engine (the incremental engine's model has no onnxruntime
        session) one loaded and checked now. ``LivepitchError`` if either fails."""
        assert self._reload_settings is not None
        old = self.settings
        new = self._reload_settings()
        # the recording and the events log go on in the files they started in (after a restart
        # to reconnect, renamed ones): a reload never points them elsewhere
        new = new.model_copy(
            update={
                "port": new.port.model_copy(
                    update={"record": old.port.record, "events_csv": old.port.events_csv}
                )
            }
        )
        reuse = new.model == old.model and new.stream.engine == old.stream.engine
        return new, self._model if reuse else self.factories.model(new)

    def _adopt(self, settings: DaemonSettings, model: WindowFramesModel | None) -> None:
        """Make ``settings`` and ``model`` the current ones; a changed port takes effect through
        the sink's reopening, a changed bend mode or range on the open port."""
        changed = _midi_output_of(settings) != _midi_output_of(self.settings)
        new_port = _midi_output_of(settings)[:3] != _midi_output_of(self.settings)[:3]
        self.settings, self._model = settings, model
        if self.sink is not None:
            self.sink.set_save_interval(settings.port.save_every_s)
        if changed and self.sink is not None:
            self.sink.switch_port(settings.midi.bends, settings.midi.effective_bend_range_semitones, new_port)

    def _fall_back(self, err: LivepitchError) -> None:
        """A configuration adopted while waiting for the devices failed with them (``err``): go
        back to the last one that worked. Without one, ``err`` ends the daemon, as it would
        have at start."""
        if self._fallback is None:
            raise err
        self._adopt(*self._fallback)
        self._fallback = None
        log.error("the reloaded configuration failed (%s); back to the previous one", err)

    def _reload_while_down(self) -> None:
        """SIGHUP while no pipeline runs (waiting for devices): read the configuration again
        and keep it for the next try; a bad file or model leaves the previous one in place."""
        if self._reload_settings is None:
            log.info("SIGHUP: no configuration file to reload")
            return
        old = self.settings
        try:
            new, model = self._read_reloaded()
        except LivepitchError as err:
            log.error("configuration not reloaded: %s", err)
            return
        if self._fallback is None:  # the last configuration that worked, kept until one works again
            self._fallback = (old, self._model)
        self._adopt(new, model)
        log.info("configuration reloaded while waiting for the devices: trying them now")

    def _reinitialise_audio_system(self) -> None:
        """Make PortAudio look for devices again; never once it holds a stream it would not
        release (``Pa_Terminate`` would wait for it forever): ``AudioWedgedError``."""
        if self.audio_wedged:
            raise AudioWedgedError("the audio system did not release a stream")
        self._ready_abort_restart()
        if self.settings.audio.input_file is None:
            from livepitch.audio_device import reinitialise_portaudio

            self._save_before_audio_call()
            reinitialise_portaudio()

    def _midi_is_jack(self) -> bool:
        """Whether the MIDI port lives in JACK (whose server going away took the port with it)."""
        return self.sink is not None and self.sink.last_api is MidiApi.JACK

    def _reload(self) -> None:
        """SIGHUP: read the config again and restart the pipeline with it (notes released first).

        The new model and audio source are built before the old pipeline stops, so a bad file,
        device or model leaves the daemon running as it was. A new MIDI port or bend mode takes
        effect through the sink's reopening (retried with backoff if it fails); the recording
        and the events log go on in the files they started in.
        """
        if self._reload_settings is None:
            log.info("SIGHUP: no configuration file to reload")
            return
        old = self.settings
        self._resume = None
        running = self.source
        try:  # all of it before the running pipeline stops (a kept stream fills its ring meanwhile)
            new, model = self._read_reloaded()
            keep = running is not None and self._keeps_input(running, new)
            source = running if keep and running is not None else self.factories.source(new)
            self._check_blocks(source, new)
            self._check_channel(source, new)
            engine = self._ready_engine(model, new) if model is not None else None
        except LivepitchError as err:
            log.error("configuration not reloaded: %s", err)
            return
        if keep and not self._stop_pipeline("reload", keep_source=True, reopening=True):
            log.warning("the worker did not stop: the audio input is opened again")
            keep = False
            try:
                source = self.factories.source(new)
            except (DeviceError, MidiPortError) as lost:
                self._adopt(new, model)
                self._recover(first_line(lost))
                return
        elif not keep:
            self._stop_pipeline("reload", reopening=True)
        if self.audio_wedged:  # the old stream was never released: only a new process opens one
            self._restart_to_reconnect()
            return
        resume = self._replay_position(running)
        old_model = self._model
        self._adopt(new, model)
        try:
            self._start_pipeline(
                source if keep else self._resumed(source, resume), running=keep, engine=engine
            )
        except LivepitchError as err:
            log.error("the reloaded configuration failed (%s); back to the previous one", err)
            self._adopt(old, old_model)  # and the port and bend mode the engine will use again
            try:
                again = source if keep else self._resumed(self.factories.source(old), resume)
                self._start_pipeline(again, running=keep)
            except (DeviceError, MidiPortError) as lost:  # the device went too: wait for it
                self._recover(first_line(lost))
            return
        log.info("configuration reloaded")

    def _keeps_input(self, source: AudioSource, new: DaemonSettings) -> bool:
        """Whether a reload to ``new`` keeps the running audio stream open: a live input whose
        settings it leaves alone (reopened, a JACK capture port would get a new name and lose
        its connections). A replay restarts where it was, as it does for any reload."""
        return (
            new.audio.input_file is None
            and self.settings.audio.input_file is None
            and source.error is None
            and _audio_input_of(new) == _audio_input_of(self.settings)
        )

    def _replay_position(self, source: AudioSource | None) -> _ReplayResume | None:
        """Where a stopped file replay goes on: ``RESUME_OVERLAP_FRAMES`` before the end of the
        last frame its engine published (the audio after it, held for its lookahead, was never
        judged; an onset needs frames before it to rise from). The session's clock went on from
        where the replay started by the file's audio, fed or lost to a drop."""
        if not isinstance(source, FileReplaySource) or self.engine is None or self.sink is None:
            return None
        model_samples = _judged_again_from(self.engine)
        offset = self.sink.time_offset_samples + model_samples
        played_samples = offset - self._source_clock_start
        first_frame = source.first_frame + round(played_samples * source.rate_hz / MODEL_RATE_HZ)
        return _ReplayResume(source.path, first_frame, offset)

    def _resumed(self, source: AudioSource, resume: _ReplayResume | None) -> AudioSource:
        """``source``, set to go on from ``resume`` if it replays the same file (a reload does
        not start a replay again from its beginning)."""
        if (
            resume is None
            or not isinstance(source, FileReplaySource)
            or not _same_file(source.path, resume.path)
        ):
            return source
        source.start_at(resume.first_frame)
        self._resume = resume
        if source.first_frame < resume.first_frame:
            log.warning("%s is now shorter than where the replay was: it ends", source.path)
        else:
            log.info("replay goes on at %.2f s", source.first_frame / source.rate_hz)
        return source

    def _to_program(self, events: list[Event]) -> None:
        """Hand ``events`` to the embedding program's ``on_events`` on the session's clock (as
        recorded and logged: after a drop, a recovery or a reload the engine's clock starts
        again at 0, the session's goes on)."""
        assert self._on_events is not None
        offset = self.sink.time_offset_samples if self.sink is not None else 0
        if offset:
            events = [
                dataclasses.replace(
                    event,
                    time_sample=event.time_sample + offset,
                    emitted_sample=event.emitted_sample + offset,
                )
                for event in events
            ]
        self._on_events(events)

    def _events_handler(self, settings: DaemonSettings) -> Callable[[list[Event]], None] | None:
        """What the worker hands its events to: the note printer, the embedding program's
        ``on_events``, both, or nothing."""
        handlers: list[Callable[[list[Event]], None]] = (
            [self._note_printer] if settings.ui.print_notes else []
        )
        if self._on_events is not None:
            handlers.append(self._to_program)
        if len(handlers) < 2:
            return handlers[0] if handlers else None

        def both(events: list[Event]) -> None:
            for handler in handlers:
                handler(events)

        return both

    # -- output for a person ------------------------------------------------------------
    def _note_printer(self, events: list[Event]) -> None:
        """Worker thread: queue a line per note-on for the main thread to print, timed on the
        session's clock (as recorded: after a restart or a reload it goes on)."""
        offset = self.sink.time_offset_samples if self.sink is not None else 0
        as_json = self.settings.ui.log_json
        for event in events:
            if isinstance(event, NoteOn):
                delay_ms = 1000.0 * (event.emitted_sample - event.time_sample) / MODEL_RATE_HZ
                at_s = (event.time_sample + offset) / MODEL_RATE_HZ
                if as_json:  # a service's output is read as JSON lines
                    self._printed.append(
                        json.dumps(
                            {
                                "note_on_s": round(at_s, 3),
                                "name": note_name(event.pitch),
                                "pitch": event.pitch,
                                "velocity": event.velocity,
                                "channel": event.channel + 1,
                                "sent_after_ms": round(delay_ms, 1),
                            }
                        )
                    )
                    continue
                self._printed.append(
                    f"{at_s:8.3f} s  {note_name(event.pitch):4s} ({event.pitch:3d})"
                    f"  velocity {event.velocity:3d}  channel {event.channel + 1:2d}  sent after {delay_ms:3.0f} ms"
                )

    def _flush_printed(self) -> None:
        if not self._printed:
            return
        self.status_line.clear()
        while self._printed:
            print(self._printed.popleft(), flush=True)

    def _show_status(self) -> None:
        if self.settings.ui.quiet or not self.status_line.enabled:
            return
        worker, sink, source, engine = self.worker, self.sink, self.source, self.engine
        if worker is None or sink is None or source is None or engine is None:
            return
        lookahead_ms = 1000.0 * engine.frames.lookahead_samples / MODEL_RATE_HZ
        worst_ms = lookahead_ms + 1000.0 * FRAME_HOP_SAMPLES * engine.frames.hop_frames / MODEL_RATE_HZ
        ring_overflows = self.totals["overflows"] + (self._ring.overflows if self._ring is not None else 0)
        device_overflows = self.totals["device_overflows"] + int(getattr(source, "overflows", 0))
        self.status_line.show(
            format_status(
                StatusSnapshot(
                    level_dbfs=worker.stats.level_dbfs,
                    sounding=list(worker.stats.sounding_pitches),
                    cpu_load=worker.stats.cpu_load,
                    lookahead_ms=lookahead_ms,
                    worst_delay_ms=worst_ms,
                    overflows=ring_overflows,
                    drops=self.totals["drops"] + worker.stats.drops,
                    device_overflows=device_overflows,
                    port=sink.port_name if sink.has_midi else "no MIDI",
                    gate_dbfs=engine.tracker.params.gate_dbfs,
                ),
                width=self.status_line.columns - 1,
            )
        )


@dataclass(frozen=True)
class _ReplayResume:
    """Where a replay restarted by a reload goes on: the file's frame, and the session's time
    there [samples at 22050 Hz] (where recorded and printed times go on)."""

    path: Path
    first_frame: int
    time_offset_samples: int


def _judged_again_from(engine: StreamingEngine) -> int:
    """Where the engine after a reload starts reading a stopped engine's audio:
    ``RESUME_OVERLAP_FRAMES`` before the end of its last published frame [samples at 22050 Hz,
    the stopped engine's clock]."""
    return max(0, engine.published_end_sample - RESUME_OVERLAP_FRAMES * FRAME_HOP_SAMPLES)


@dataclass(frozen=True)
class _Handover:
    """Audio a stopped engine held back for its lookahead (from ``RESUME_OVERLAP_FRAMES``
    before the end of its last published frame, then what its resampler held), for the engine
    that goes on reading the same stream; and the session's time where it starts [samples at
    22050 Hz]."""

    audio: npt.NDArray[np.float32]
    time_offset_samples: int


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:
        return False


def _worker_failed(err: BaseException) -> LivepitchError:
    """The one error line for a failure in the worker's steps (its thread, or the last ones of
    a replay on the main thread)."""
    return LivepitchError(f"the worker failed: {first_line(err)}")


def _audio_input_of(settings: DaemonSettings) -> tuple[object, ...]:
    """What decides the audio stream and its ring (a reload changing none of it keeps them)."""
    audio = settings.audio
    return (
        audio.input_file,
        audio.input,
        audio.host_api,
        audio.sample_rate_hz,
        audio.channel,
        audio.block_frames,
        audio.callback,
        audio.ring_ms,
    )


def _midi_output_of(settings: DaemonSettings) -> tuple[object, ...]:
    """What decides the MIDI port (the first three: a change needs it reopened) and its setup."""
    return (settings.port.port, settings.port.midi_api, settings.port.connect, settings.midi)


def _status_mb(field: str) -> float | None:
    """A memory figure of this process from Linux's /proc/self/status [MB], if there is one."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None
