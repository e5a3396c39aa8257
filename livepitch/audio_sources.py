"""Audio sources that fill the capture ring: the interface, and replaying a file in real time.

A source owns a producer thread (PortAudio's callback thread, or its own replay thread)
that only copies blocks into an ``AudioRing``. The daemon's main thread starts, watches and
stops sources; the worker thread only reads the ring.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt
import soundfile

from livepitch.audio_file import (
    SHORT_DECODE_TOLERANCE_FRAMES,
    check_audio_path,
    check_decoded_length,
    check_file_rate,
    native_path,
    unreadable,
    warn_if_header_overstates,
)
from livepitch.errors import AudioInputError, first_line
from livepitch.native_output import quiet_native_stderr
from livepitch.ring_buffer import AudioRing


class AudioSource(Protocol):
    """Something that writes ``channels`` channels at ``rate_hz`` into a ring."""

    rate_hz: int
    channels: int
    description: str

    @property
    def frames_delivered(self) -> int:
        """Frames handed to the ring so far (the watchdog checks that it grows)."""
        ...

    @property
    def finished(self) -> bool:
        """True when the source has no more audio (end of a file); never for a device."""
        ...

    @property
    def error(self) -> str | None:
        """Why the source stopped on its own (device lost), or None."""
        ...

    @property
    def callback_needs_gil(self) -> bool:
        """True when the producer runs Python on the audio system's thread (a Python audio
        callback), so the worker must let it have the GIL within a fraction of a block."""
        ...

    def start(self, ring: AudioRing) -> None:
        """Start delivering into ``ring``."""
        ...

    def stop(self, reopening: bool = False) -> None:
        """Stop delivering and release the device; safe to call twice. ``reopening``: the same
        input is opened again at once (a reload), so what other programs connected to it is
        worth remembering for the new stream."""
        ...


class FileReplaySource:
    """Replays an audio file into the ring at real-time pace (``speed`` 1.0), block by block.

    The live pipeline (ring, worker, resampler, engine, MIDI) runs exactly as with a
    microphone; only the producer differs. Runs its own producer thread.
    """

    def __init__(self, path: Path, block_frames: int, speed: float = 1.0) -> None:
        check_audio_path(path)
        if not path.is_file():  # a pipe or a device: it cannot be opened twice, nor read ahead
            raise AudioInputError(
                f"{path}: not a regular file (a pipe or a device); --input-file replays a file"
            )
        try:
            with quiet_native_stderr():  # libmpg123 prints what it thinks of an MP3's header
                info = soundfile.info(native_path(path))
        except (soundfile.LibsndfileError, RuntimeError, OSError, ValueError) as err:
            raise unreadable(path, err) from err
        if info.frames == 0:
            raise AudioInputError(f"{path}: the file holds no audio samples")
        check_file_rate(path, int(info.samplerate))
        warn_if_header_overstates(path, info)
        self.path = path
        self._declared_frames = int(info.frames)
        self._decoded: npt.NDArray[np.float32] | None = None
        if info.format == "MP3":
            # libsndfile (1.2.2) decodes MP3 wrongly when read in blocks: decode it whole, here
            try:
                with quiet_native_stderr():  # libmpg123 prints its resync attempts itself
                    self._decoded, _ = soundfile.read(native_path(path), dtype="float32", always_2d=True)
            except (soundfile.LibsndfileError, RuntimeError, OSError, ValueError) as err:
                raise unreadable(path, err) from err
            check_decoded_length(
                path, self._decoded.shape[0], self._declared_frames, int(info.samplerate), estimated=True
            )
            self._declared_frames = self._decoded.shape[0]
        self.rate_hz = int(info.samplerate)
        self.channels = int(info.channels)
        self.block_frames = block_frames
        self.speed = speed
        self.description = f"file {path.name} ({self.rate_hz} Hz, {self.channels} ch)"
        self._stop = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self._delivered = 0
        self._first_frame = 0
        self._error: str | None = None

    @property
    def frames_delivered(self) -> int:
        """Frames this source wrote into its ring."""
        return self._delivered

    @property
    def first_frame(self) -> int:
        """The file's frame the replay starts at (``start_at``; 0 by default)."""
        return self._first_frame

    @property
    def position_frames(self) -> int:
        """The file's frame after the last one delivered."""
        return self._first_frame + self._delivered

    def start_at(self, first_frame: int) -> None:
        """Replay from the file's frame ``first_frame`` (clipped to the file), not its start:
        a replay restarted by a reload goes on where it was. Call before ``start``."""
        assert self._thread is None, "start_at before start"
        self._first_frame = min(max(0, first_frame), self._declared_frames)

    @property
    def finished(self) -> bool:
        return self._done.is_set() and self._error is None

    @property
    def error(self) -> str | None:
        return self._error

    @property
    def callback_needs_gil(self) -> bool:
        return False  # a pacing thread: a block a little late only delays that block

    def start(self, ring: AudioRing) -> None:
        self._thread = threading.Thread(target=self._replay, args=(ring,), name="file-replay", daemon=True)
        self._thread.start()

    def stop(self, reopening: bool = False) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)

    def _blocks(self) -> Iterator[npt.NDArray[np.float32]]:
        """The file's blocks ``[frames, channels]``, read as they are needed (or cut from the
        whole decoded file)."""
        decoded = self._decoded
        if decoded is not None:  # (all of it in memory: 21 MB a minute of 44.1 kHz stereo)
            self._decoded = None  # freed once replayed
            for first in range(self._first_frame, decoded.shape[0], self.block_frames):
                yield decoded[first : first + self.block_frames]
            return
        with soundfile.SoundFile(native_path(self.path)) as audio:
            if self._first_frame:
                audio.seek(self._first_frame)
            while True:  # read until the data ends (``blocks`` would repeat its last block
                # for the frames a file cut while it plays no longer has)
                try:
                    block = audio.read(self.block_frames, dtype="float32", always_2d=True)
                except (soundfile.LibsndfileError, RuntimeError) as err:  # (a FLAC cut short, say)
                    raise AudioInputError(
                        f"{self.path}: damaged or cut short: it could not be decoded after "
                        f"{self.position_frames / self.rate_hz:.2f} s of its "
                        f"{self._declared_frames / self.rate_hz:.2f} s ({first_line(err)})"
                    ) from err
                if block.shape[0] == 0:
                    break
                yield block
        if self.position_frames < self._declared_frames - SHORT_DECODE_TOLERANCE_FRAMES:
            raise AudioInputError(
                f"{self.path}: the file ended after {self.position_frames / self.rate_hz:.2f} s of its "
                f"{self._declared_frames / self.rate_hz:.2f} s (cut or damaged while it played?)"
            )

    def _replay(self, ring: AudioRing) -> None:
        """Producer thread: read a block, wait until its real-time due date, write it."""
        started = time.monotonic()
        try:
            for block in self._blocks():
                if self._stop.is_set():
                    return
                due = started + (self._delivered + block.shape[0]) / (self.rate_hz * self.speed)
                delay = due - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    return
                ring.write(block)
                self._delivered += block.shape[0]
        except AudioInputError as err:
            self._error = str(err)
        except Exception as err:  # whatever the file does, the daemon reports it: no silent dead thread
            self._error = f"{self.path}: cannot read audio ({first_line(err)})"
        finally:
            self._done.set()
