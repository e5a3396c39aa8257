"""The C audio callback (livepitch/_capture_native.c) fills the capture ring as AudioRing.write does."""

from __future__ import annotations

import ctypes
import logging
import shutil
import sys
import sysconfig
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from livepitch import native_capture
from livepitch.errors import DeviceError
from livepitch.ring_buffer import (
    COUNTER_DELIVERED,
    COUNTER_DEVICE_OVERFLOWS,
    COUNTER_DROPPED,
    COUNTER_OVERFLOWS,
    COUNTER_READ,
    COUNTER_WRITTEN,
    AudioRing,
)

try:
    import sounddevice

    from livepitch import audio_device
except OSError as err:  # no PortAudio library here
    pytest.skip(f"sounddevice cannot load PortAudio: {err}", allow_module_level=True)

PA_INPUT_OVERFLOW = 0x2
PA_CONTINUE = 0

_PA_STREAM_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int,
    ctypes.c_void_p,
    ctypes.c_void_p,
    ctypes.c_ulong,
    ctypes.c_void_p,
    ctypes.c_ulong,
    ctypes.c_void_p,
)


def can_compile() -> bool:
    include = Path(sysconfig.get_paths()["include"]) / "Python.h"
    return shutil.which("cc") is not None and include.exists()


def test_the_c_callback_is_built_wherever_it_can_be() -> None:
    """An install on a machine with a compiler and Python's headers has the C callback (CI does)."""
    if not can_compile():
        pytest.skip("no C compiler or Python headers here: livepitch runs its Python callback")
    assert native_capture.available()


def call(native: native_capture.NativeCallback, block: np.ndarray | None, frames: int, flags: int = 0) -> int:
    """Call the C function as PortAudio's audio thread does."""
    function = _PA_STREAM_CALLBACK(native.callback_address)
    data = None if block is None else block.ctypes.data
    return int(function(data, None, frames, None, flags, native.user_data_address))


@pytest.mark.skipif(not native_capture.available(), reason="the C callback is not built")
def test_the_c_callback_writes_wraps_and_overflows_exactly_like_the_python_ring() -> None:
    rng = np.random.default_rng(7)
    native_ring, python_ring = AudioRing(1000, 2), AudioRing(1000, 2)
    native = native_capture.NativeCallback(native_ring)
    blocks = [rng.standard_normal((frames, 2)).astype(np.float32) for frames in (300, 512, 256, 100, 700, 64)]
    # write, read some, write past the end (wrap), fill up (overflow), read, write again
    plan: list[tuple[str, int | None]] = [
        ("write", 0),
        ("write", 1),
        ("read", 600),
        ("write", 2),
        ("write", 3),
        ("write", 4),
        ("read", 250),
    ]
    plan += [("write", 5), ("read", None)]
    outputs: list[tuple[np.ndarray, np.ndarray]] = []
    for action, argument in plan:
        if action == "write":
            assert argument is not None
            block = np.ascontiguousarray(blocks[argument])
            before_s = time.monotonic()
            assert call(native, block, block.shape[0]) == PA_CONTINUE
            python_ring.write(block)
            after_s = time.monotonic()
            for ring in (native_ring, python_ring):  # what dates a lost device's last audio
                called_s = ring.last_callback_monotonic_s
                assert called_s is not None and before_s <= called_s <= after_s
        else:
            outputs.append((native_ring.read(argument), python_ring.read(argument)))
        np.testing.assert_array_equal(
            native_ring.counters[[COUNTER_WRITTEN, COUNTER_READ, COUNTER_OVERFLOWS, COUNTER_DROPPED]],
            python_ring.counters[[COUNTER_WRITTEN, COUNTER_READ, COUNTER_OVERFLOWS, COUNTER_DROPPED]],
        )
    for from_c, from_python in outputs:
        np.testing.assert_array_equal(from_c, from_python)
    assert native_ring.overflows == 1 and native_ring.dropped_frames == 700  # the 700-frame block did not fit
    assert native_ring.counters[COUNTER_WRITTEN] == 300 + 512 + 256 + 100 + 64
    assert native_ring.counters[COUNTER_DELIVERED] == sum(b.shape[0] for b in blocks)
    # the 256-frame block wrapped (812 + 256 > 1000); the last block follows it, in order
    np.testing.assert_array_equal(outputs[-1][0][-64:], blocks[5])


@pytest.mark.skipif(not native_capture.available(), reason="the C callback is not built")
def test_the_c_callback_counts_device_overflows_and_survives_a_block_without_input() -> None:
    ring = AudioRing(4096, 1)
    native = native_capture.NativeCallback(ring)
    block = np.arange(256, dtype=np.float32)
    assert call(native, block, 256, PA_INPUT_OVERFLOW) == PA_CONTINUE
    assert call(native, None, 256) == PA_CONTINUE  # PortAudio may pass no input while it sets up
    assert call(native, block, 256) == PA_CONTINUE
    assert ring.counters[COUNTER_DEVICE_OVERFLOWS] == 1
    assert ring.counters[COUNTER_DELIVERED] == 768
    assert ring.available_frames == 512 and ring.overflows == 0
    np.testing.assert_array_equal(ring.read()[:, 0], np.concatenate([block, block]))


@pytest.mark.skipif(not native_capture.available(), reason="the C callback is not built")
def test_a_c_callback_built_from_another_version_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """An editable install keeps its old binary until it is rebuilt: its ring layout may differ."""
    monkeypatch.setattr(native_capture, "ABI_VERSION", native_capture.ABI_VERSION + 1)
    assert not native_capture.available()
    with pytest.raises(RuntimeError, match="another version"):
        native_capture.NativeCallback(AudioRing(1024, 1))


class FakeStream:
    """Stands in for a sounddevice stream: records calls; ``start`` may fail, it or ``abort`` hang."""

    def __init__(
        self, fail_start: bool = False, hang_abort: bool = False, hang_start: bool = False, **options: Any
    ) -> None:
        self.options = options
        self.fail_start = fail_start
        self.hang_abort = hang_abort
        self.hang_start = hang_start
        self.calls: list[str] = []
        self.release = threading.Event()

    def start(self) -> None:
        self.calls.append("start")
        if self.hang_start:
            self.release.wait(10.0)
        if self.fail_start:
            raise sounddevice.PortAudioError("Unanticipated host error")

    def abort(self, ignore_errors: bool = True) -> None:
        self.calls.append("abort")
        if self.hang_abort:
            self.release.wait(10.0)

    def close(self, ignore_errors: bool = True) -> None:
        self.calls.append("close")


@pytest.fixture
def fake_portaudio(monkeypatch: pytest.MonkeyPatch) -> dict[str, FakeStream]:
    """A DeviceSource on a made-up JACK device whose streams are FakeStreams (by kind)."""
    device = audio_device.InputDevice(3, "system", "JACK Audio Connection Kit", 2, 48000)
    monkeypatch.setattr(audio_device, "find_input_device", lambda wanted, host_api: device)
    made: dict[str, FakeStream] = {}

    def input_stream(callback: object, **options: Any) -> FakeStream:
        made["python"] = FakeStream(**options)
        return made["python"]

    monkeypatch.setattr(sounddevice, "InputStream", input_stream)
    monkeypatch.setattr(audio_device, "STOP_TIMEOUT_S", 0.2)
    return made


def fake_native_streams(monkeypatch: pytest.MonkeyPatch, **behaviour: bool) -> list[FakeStream]:
    """Make sounddevice's stream base class (the C callback's) build FakeStreams; the list of them."""
    made: list[FakeStream] = []

    def stream_base(kind: str, callback: object, userdata: object, **options: Any) -> FakeStream:
        made.append(FakeStream(**behaviour, **options))
        return made[-1]

    monkeypatch.setattr(sounddevice, "_StreamBase", stream_base)
    return made


@pytest.mark.skipif(not native_capture.available(), reason="the C callback is not built")
def test_a_sounddevice_that_refuses_a_c_callback_gets_the_python_one(
    fake_portaudio: dict[str, FakeStream], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(*args: object, **options: object) -> FakeStream:
        raise TypeError("callback must be callable")

    monkeypatch.setattr(sounddevice, "_StreamBase", refuse)
    source = audio_device.DeviceSource(None, "JACK", None, 256, 1)
    with caplog.at_level(logging.INFO, logger="livepitch"):
        source.start(AudioRing(4096, 1))
    assert not source.native_callback
    assert fake_portaudio["python"].calls == ["start"]
    assert "audio callback: Python (this sounddevice does not take a C callback" in caplog.text
    source.stop()
    assert fake_portaudio["python"].calls == ["start", "abort", "close"]


@pytest.mark.skipif(not native_capture.available(), reason="the C callback is not built")
def test_a_stream_that_fails_to_start_is_closed_and_not_taken_for_native(
    fake_portaudio: dict[str, FakeStream], monkeypatch: pytest.MonkeyPatch
) -> None:
    made = fake_native_streams(monkeypatch, fail_start=True)
    source = audio_device.DeviceSource(None, "JACK", None, 256, 1)
    with pytest.raises(DeviceError, match="cannot open system"):
        source.start(AudioRing(4096, 1))
    assert made[0].calls == ["start", "abort", "close"]
    assert not source.native_callback and not source.wedged


def test_a_stream_that_never_starts_is_given_up_and_the_caller_told(
    fake_portaudio: dict[str, FakeStream], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A JACK server dying as the stream started kept PortAudio's start waiting for good, and
    the main thread with it (SIGTERM never handled): after ``OPEN_TIMEOUT_S`` the source gives
    up on the stream, wedged, so the daemon restarts the process."""
    from livepitch.errors import AudioWedgedError

    monkeypatch.setattr(audio_device, "OPEN_TIMEOUT_S", 0.3)
    made: list[FakeStream] = []

    def input_stream(callback: object, **options: Any) -> FakeStream:
        made.append(FakeStream(hang_start=True, **options))
        return made[-1]

    monkeypatch.setattr(sounddevice, "InputStream", input_stream)
    source = audio_device.DeviceSource(None, "JACK", None, 256, 1, callback="python")
    began = time.monotonic()
    with pytest.raises(AudioWedgedError, match=r"did not answer in 0\.3 s"):
        source.start(AudioRing(4096, 1))
    assert time.monotonic() - began < 2.0
    assert source.wedged and made[0].calls == ["start"]
    made[0].release.set()


@pytest.mark.skipif(not native_capture.available(), reason="the C callback is not built")
def test_a_stream_portaudio_will_not_close_keeps_its_ring_for_good(
    fake_portaudio: dict[str, FakeStream], monkeypatch: pytest.MonkeyPatch
) -> None:
    """PortAudio may still call the C callback of a stream it would not close: its ring is
    never freed, though the source that owned it goes."""
    made = fake_native_streams(monkeypatch, hang_abort=True)
    source = audio_device.DeviceSource(None, "JACK", None, 256, 1)
    source.start(AudioRing(4096, 1))
    assert source.native_callback
    native = source._native
    references_before = sys.getrefcount(native)
    source.stop()
    assert source.wedged
    assert sys.getrefcount(native) == references_before + 1  # one reference nobody will drop
    made[0].release.set()
