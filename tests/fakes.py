"""Fakes for the live path: an audio source that can overflow, vanish and return; a recording port."""

from __future__ import annotations

import threading
import time

import mido
import numpy as np
import numpy.typing as npt

from livepitch.errors import MidiPortError
from livepitch.ring_buffer import AudioRing


class FakeSource:
    """Delivers ``audio`` (``[frames, channels]``) into the ring in blocks on its own thread.

    ``speed`` is the pace relative to real time (large: as fast as the worker keeps up).
    ``vanish_after_s``: stop delivering at that point of the audio and report an error (a lost
    device); with ``drained_before_vanishing``, only once the worker has read everything
    delivered (so a loaded machine loses no audio the test counts on). ``burst_frames``: deliver
    that much at once at the start (to overflow the ring).
    """

    def __init__(
        self,
        audio: npt.NDArray[np.float32],
        rate_hz: int,
        block_frames: int = 256,
        speed: float = 5.0,
        vanish_after_s: float | None = None,
        burst_frames: int = 0,
        finish: bool = True,
        drained_before_vanishing: bool = False,
    ) -> None:
        self.audio = audio if audio.ndim == 2 else audio[:, None]
        self.rate_hz = rate_hz
        self.channels = self.audio.shape[1]
        self.block_frames = block_frames
        self.speed = speed
        self.vanish_after_s = vanish_after_s
        self.burst_frames = burst_frames
        self.finish = finish
        self.drained_before_vanishing = drained_before_vanishing
        self.description = f"fake ({rate_hz} Hz, {self.channels} ch)"
        self.overflows = 0
        self._delivered = 0
        self._error: str | None = None
        self._done = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def frames_delivered(self) -> int:
        return self._delivered

    @property
    def finished(self) -> bool:
        return self.finish and self._done.is_set() and self._error is None

    @property
    def error(self) -> str | None:
        return self._error

    @property
    def callback_needs_gil(self) -> bool:
        return False

    def start(self, ring: AudioRing) -> None:
        self._thread = threading.Thread(target=self._deliver, args=(ring,), daemon=True)
        self._thread.start()

    def stop(self, reopening: bool = False) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)

    def _deliver(self, ring: AudioRing) -> None:
        started = time.monotonic()
        position = 0
        if self.burst_frames:
            if not ring.write(self.audio[: self.burst_frames]):
                self.overflows += 1
            position = self.burst_frames
        while position < self.audio.shape[0] and not self._stop.is_set():
            if self.vanish_after_s is not None and position >= self.vanish_after_s * self.rate_hz:
                while self.drained_before_vanishing and ring.available_frames and not self._stop.is_set():
                    time.sleep(0.005)
                self._error = "fake device unplugged"
                return
            block = self.audio[position : position + self.block_frames]
            due = started + (position + block.shape[0]) / (self.rate_hz * self.speed)
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            ring.write(block)
            position += block.shape[0]
            self._delivered = position
        if not self.finish:
            self._stop.wait()
        self._done.set()


class RecordingPort:
    """A MIDI port that keeps every message; ``fail_after`` messages it raises (port gone)."""

    api = None

    def __init__(self, name: str = "fake port", fail_after: int | None = None) -> None:
        self.name = name
        self.fail_after = fail_after
        self.messages: list[mido.Message] = []
        self.closed = False

    def send(self, message: list[int]) -> None:
        if self.fail_after is not None and len(self.messages) >= self.fail_after:
            raise MidiPortError(f"{self.name} vanished")
        self.messages.append(mido.Message.from_bytes(message))

    def close(self) -> None:
        self.closed = True


def sounding_after(messages: list[mido.Message]) -> set[tuple[int, int]]:
    """(channel, note) pairs still on at the end of a message stream (All Notes Off ends a channel)."""
    sounding: set[tuple[int, int]] = set()
    for message in messages:
        if message.type == "note_on" and message.velocity > 0:
            sounding.add((message.channel, message.note))
        elif message.type == "note_off" or (message.type == "note_on" and message.velocity == 0):
            sounding.discard((message.channel, message.note))
        elif message.type == "control_change" and message.control == 123:
            sounding = {(c, n) for c, n in sounding if c != message.channel}
    return sounding
