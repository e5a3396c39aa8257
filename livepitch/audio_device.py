"""Microphone capture with sounddevice (PortAudio): the only module that imports sounddevice.

``DeviceSource`` opens an input stream whose callback (PortAudio's audio thread) copies each
block into the capture ring and counts input overflows — nothing else. The callback is the C
function of ``livepitch.native_capture`` where it was built, so it never waits for Python's GIL;
otherwise a Python function that does the same.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from livepitch import abort_restart, jack_patch, native_capture
from livepitch.errors import AudioWedgedError, DeviceError, first_line
from livepitch.native_output import quiet_native_stderr
from livepitch.ring_buffer import COUNTER_DELIVERED, COUNTER_DEVICE_OVERFLOWS, AudioRing

with quiet_native_stderr(), abort_restart.restarting_on_abort():  # (PortAudio starts here)
    import sounddevice

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InputDevice:
    """An input device as PortAudio lists it."""

    index: int
    name: str
    host_api: str
    max_input_channels: int
    default_rate_hz: int


def list_input_devices() -> list[InputDevice]:
    """Every device with input channels, with its host API (audio system)."""
    try:
        devices = sounddevice.query_devices()
        host_apis = sounddevice.query_hostapis()
    except sounddevice.PortAudioError as err:
        raise DeviceError(f"cannot list audio devices: {first_line(err)}") from err
    found = []
    for index, device in enumerate(devices):
        if int(device["max_input_channels"]) > 0:
            found.append(
                InputDevice(
                    index=index,
                    name=str(device["name"]),
                    host_api=str(host_apis[int(device["hostapi"])]["name"]),
                    max_input_channels=int(device["max_input_channels"]),
                    default_rate_hz=int(device["default_samplerate"]),
                )
            )
    return found


def find_input_device(wanted: str | None, host_api: str | None) -> InputDevice:
    """The device named by index or name substring (within ``host_api`` if given), or the default.

    Raises ``DeviceError`` naming what exists when nothing matches.
    """
    devices = list_input_devices()
    if host_api is not None:
        devices = [d for d in devices if host_api.lower() in d.host_api.lower()]
        if not devices:
            apis = sorted({d.host_api for d in list_input_devices()}) or ["none"]
            hint = "; is the JACK server running?" if "jack" in host_api.lower() else ""
            raise DeviceError(
                f"no audio input in an audio system matching {host_api!r} (have: {', '.join(apis)}{hint})"
            )
    if not devices:
        raise DeviceError("no audio input devices found (is a sound card, PipeWire or JACK available?)")
    if wanted is None:
        default_index = _default_input_index()
        for device in devices:
            if device.index == default_index:
                return device
        return devices[0]
    if wanted.strip().isdigit():
        for device in devices:
            if device.index == int(wanted):
                return device
        raise DeviceError(f"no audio input device with index {wanted} (see: livepitch devices)")
    matches = [d for d in devices if wanted.lower() in d.name.lower()]
    if not matches:
        names = ", ".join(f"{d.index}: {d.name}" for d in devices)
        raise DeviceError(f"no audio input device matching {wanted!r} (have: {names})")
    return matches[0]


def _default_input_index() -> int:
    default = sounddevice.default.device
    try:
        return int(default[0])
    except (TypeError, IndexError, ValueError):
        return -1


def reinitialise_portaudio() -> None:
    """Make PortAudio look for devices again (after an audio server restarted)."""
    try:
        with quiet_native_stderr(), abort_restart.restarting_on_abort():
            sounddevice._terminate()
            _initialize_portaudio()
    except sounddevice.PortAudioError as err:
        raise DeviceError(f"cannot restart the audio system: {first_line(err)}") from err


def _initialize_portaudio() -> None:
    """``sounddevice._initialize`` without its own swap of stderr for /dev/null (inside a quiet
    call, what PortAudio prints, an assert before it aborts, goes to the quiet call's memory
    file, for the restarted livepitch to log); that where this sounddevice lacks the parts."""
    lib, check = getattr(sounddevice, "_lib", None), getattr(sounddevice, "_check", None)
    if lib is None or check is None or not isinstance(getattr(sounddevice, "_initialized", None), int):
        sounddevice._initialize()
        return
    check(lib.Pa_Initialize(), "Error initializing PortAudio")
    sounddevice._initialized += 1


def terminate_portaudio() -> None:
    """End PortAudio now, as sounddevice would at exit (then nothing is left to end)."""
    with quiet_native_stderr():
        while sounddevice._initialized:
            sounddevice._terminate()


OPEN_TIMEOUT_S = 10.0
"""Longest wait for PortAudio to open and start a stream [s] (normally well under a second)."""

STOP_TIMEOUT_S = 1.0


class DeviceSource:
    """An input device delivering into the capture ring via PortAudio's callback thread."""

    def __init__(
        self,
        wanted: str | None,
        host_api: str | None,
        rate_hz: int | None,
        block_frames: int,
        channels: int | None = None,
        callback: str = "c",
    ) -> None:
        """``callback``: "c" for livepitch's C function where it was built, "python" for the Python one."""
        self.device = find_input_device(wanted, host_api)
        self.callback = callback
        self.rate_hz = rate_hz or self.device.default_rate_hz
        if channels is not None and channels > self.device.max_input_channels:
            raise DeviceError(
                f"input channel {channels} does not exist: {self.device.name} has {self.device.max_input_channels}"
            )
        self.channels = channels or min(self.device.max_input_channels, 2)
        self.block_frames = block_frames
        self.description = (
            f"{self.device.name} [{self.device.host_api}] ({self.rate_hz} Hz, {self.channels} ch)"
        )
        self._overflows = 0  # Python callback only; the native one counts in the ring
        self._delivered = 0
        self._error: str | None = None
        self._stream: sounddevice._StreamBase | None = None
        self._ring: AudioRing | None = None
        self._native: native_capture.NativeCallback | None = None
        self._stopping = False
        self._jack = "jack" in self.device.host_api.lower()
        self._jack_ports: list[str] = []  # the capture ports this stream registered
        self.wedged = False
        """True when PortAudio would not let go of the stream (see ``stop``)."""

    @property
    def overflows(self) -> int:
        """Input overflows PortAudio reported (counted in the callback)."""
        return self._counted(COUNTER_DEVICE_OVERFLOWS, self._overflows)

    @property
    def native_callback(self) -> bool:
        """True while the stream runs livepitch's C callback (no GIL) rather than Python's."""
        return self._native is not None

    @property
    def frames_delivered(self) -> int:
        return self._counted(COUNTER_DELIVERED, self._delivered)

    def _counted(self, slot: int, python_count: int) -> int:
        """A count the C callback keeps in the ring's ``slot``, or the Python callback's own."""
        native = self._native
        return python_count if native is None else int(native.ring.counters[slot])

    @property
    def finished(self) -> bool:
        return False

    @property
    def error(self) -> str | None:
        return self._error

    @property
    def callback_needs_gil(self) -> bool:
        return not self.native_callback

    def start(self, ring: AudioRing) -> None:
        """Open and start the stream; ``DeviceError`` if PortAudio refuses."""
        self._ring = ring
        options: dict[str, Any] = {
            "device": self.device.index,
            "channels": self.channels,
            "samplerate": self.rate_hz,
            "blocksize": self.block_frames,
            "dtype": "float32",
            "finished_callback": self._finished,
        }
        inputs_before = None
        if self._jack:  # (a reload's carry listed them as its stream closed)
            inputs_before = jack_patch.carried_inputs()
            if inputs_before is None:
                inputs_before = jack_patch.audio_inputs()
        native: native_capture.NativeCallback | None = None
        why_python = "asked for (callback = python)"
        if self.callback == "c":
            if native_capture.available():
                native = native_capture.NativeCallback(ring)
            else:
                why_python = native_capture.unavailable_reason()

        def open_and_start() -> tuple[sounddevice._StreamBase, native_capture.NativeCallback | None, str]:
            chosen, why = native, why_python
            try:
                stream: sounddevice._StreamBase | None = None
                if chosen is not None:
                    try:
                        # sounddevice's stream base class takes a C function pointer as its
                        # callback (its docstring says so), with the user data as a cffi void pointer.
                        stream = sounddevice._StreamBase(
                            "input",
                            callback=sounddevice._ffi.cast("PaStreamCallback *", chosen.callback_address),
                            userdata=sounddevice._ffi.cast("void *", chosen.user_data_address),
                            **options,
                        )
                    except (AttributeError, TypeError) as err:  # a sounddevice without that form
                        chosen = None
                        why = f"this sounddevice does not take a C callback: {first_line(err)}"
                if stream is None:
                    stream = sounddevice.InputStream(callback=self._callback, **options)
                try:
                    stream.start()
                except sounddevice.PortAudioError as err:
                    self._close(stream, chosen)  # a server that just died may hang PortAudio
                    if self.wedged:
                        raise AudioWedgedError(
                            f"cannot open {self.description}: {self._why(err)}, "
                            "and the audio system did not release the stream"
                        ) from err
                    raise
            except (sounddevice.PortAudioError, ValueError) as err:
                raise DeviceError(f"cannot open {self.description}: {self._why(err)}") from err
            return stream, chosen, why

        stream, native, why_python = self._within_timeout(open_and_start, native)
        self._stream, self._native = stream, native
        if self._jack:  # other programs' connections to the last stream's ports, made again
            listing = jack_patch.list_ports()
            self._jack_ports = jack_patch.registered_between(inputs_before, listing)
            jack_patch.restore(self._jack_ports, listing)
        if native is not None:
            log.info("audio callback: C (never waits for the worker's Python)")
        else:
            log.info("audio callback: Python (%s)", why_python)

    def _why(self, err: Exception) -> str:
        """PortAudio's reason, without sounddevice's own class names (``Error opening
        _StreamBase: ``); a rate the device refuses names the one it runs at."""
        reason = re.sub(r"^Error opening \w+: ", "", first_line(err))
        if "Invalid sample rate" in reason and self.rate_hz != self.device.default_rate_hz:
            reason += f"; {self.device.name} runs at {self.device.default_rate_hz} Hz"
        return reason

    def _within_timeout(
        self,
        open_and_start: Callable[
            [], tuple[sounddevice._StreamBase, native_capture.NativeCallback | None, str]
        ],
        native: native_capture.NativeCallback | None,
    ) -> tuple[sounddevice._StreamBase, native_capture.NativeCallback | None, str]:
        """Open and start the stream on a helper thread, waiting ``OPEN_TIMEOUT_S`` at most: a
        JACK server dying meanwhile can keep PortAudio waiting for good (seen in
        ``Pa_StartStream``), where no signal would reach the main thread. A stream that did not
        open in time is given up (``wedged``, ``AudioWedgedError``): only a new process can
        reset PortAudio then."""
        outcome: list[tuple[sounddevice._StreamBase, native_capture.NativeCallback | None, str]] = []
        failure: list[Exception] = []

        def run() -> None:
            try:
                outcome.append(open_and_start())
            except Exception as err:  # handed to the main thread
                failure.append(err)

        if not self._finished_within(run, "portaudio-open", OPEN_TIMEOUT_S, native):
            raise AudioWedgedError(
                f"cannot open {self.description}: the audio system did not answer in {OPEN_TIMEOUT_S:g} s"
            )
        if failure:
            raise failure[0]
        return outcome[0]

    def _finished_within(
        self,
        work: Callable[[], None],
        name: str,
        timeout_s: float,
        native: native_capture.NativeCallback | None,
    ) -> bool:
        """Run ``work`` (a PortAudio call that a dying server can hang) on a helper thread and
        wait ``timeout_s`` for it; if it has not finished, give up on the stream: ``wedged``,
        with the C callback's ring kept for good (PortAudio may still call it). False then."""

        def armed_work() -> None:  # a server dying meanwhile can fail one of PortAudio's asserts
            with abort_restart.restarting_on_abort():
                work()

        helper = threading.Thread(target=armed_work, name=name, daemon=True)
        helper.start()
        helper.join(timeout_s)
        if not helper.is_alive():
            return True
        self.wedged = True
        if native is not None:
            native.keep_forever()
        return False

    def _callback(self, indata: Any, frames: int, time: Any, status: sounddevice.CallbackFlags) -> None:
        """PortAudio's audio thread: copy into the ring, count overflows, return."""
        if status.input_overflow:
            self._overflows += 1
        ring = self._ring
        if ring is not None:
            ring.write(indata)
        self._delivered += frames

    def _finished(self) -> None:
        """PortAudio's thread, when the stream ends: remember it if nobody asked for it."""
        if not self._stopping:
            self._error = "the audio stream stopped (device lost?)"

    def stop(self, reopening: bool = False) -> None:
        """Stop and close the stream; if PortAudio hangs (its server died), give up on it.

        ``reopening`` (a reload opening the input again), on JACK: the sources connected to
        its capture ports are remembered first, for the next stream (``livepitch.jack_patch``).

        PortAudio's JACK backend waits for a process callback that a dead server never runs,
        so stopping happens on a helper thread; after ``STOP_TIMEOUT_S`` the stream is
        abandoned and ``wedged`` set: this process can no longer reset PortAudio.
        """
        self._stopping = True
        stream, self._stream = self._stream, None
        if stream is not None:
            if reopening and self._jack_ports and self._error is None:  # for the next stream
                jack_patch.carry(self._jack_ports)
            self._close(stream, self._native)

    def _close(self, stream: Any, native: native_capture.NativeCallback | None) -> None:
        """Abort and close ``stream`` on a helper thread; after ``STOP_TIMEOUT_S`` give up on
        it (``wedged``), keeping the C callback's ring alive for good, as PortAudio may still
        call it (this process's interpreter may end some other way than ``os._exit``)."""

        def close() -> None:
            try:
                stream.abort(ignore_errors=True)
                stream.close(ignore_errors=True)
            except sounddevice.PortAudioError:
                pass

        self._finished_within(close, "portaudio-close", STOP_TIMEOUT_S, native)
