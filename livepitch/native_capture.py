"""The native audio callback: livepitch/_capture_native.c, handed a capture ring by address.

PortAudio calls the C function on its audio thread for every device block; it copies the block
into the ring and counts overflows exactly as ``AudioRing.write`` does, without Python's GIL,
so the worker's numpy work can never make the callback late. The extension is optional
(setup.py): ``available()`` says whether it was built, and without it the daemon uses its
Python callback. This module only computes addresses; ``livepitch.audio_device`` gives them to
PortAudio.
"""

from __future__ import annotations

import ctypes
import importlib
from types import ModuleType

from livepitch.ring_buffer import COUNTER_SLOTS, AudioRing

_native: ModuleType | None
try:
    _native = importlib.import_module("livepitch._capture_native")
except ImportError:  # not compiled here (no C compiler at install time)
    _native = None


class _CaptureRing(ctypes.Structure):
    """The C side's view of an ``AudioRing`` (``CaptureRing`` in _capture_native.c)."""

    _fields_ = (
        ("frames", ctypes.c_void_p),
        ("counters", ctypes.c_void_p),
        ("capacity_frames", ctypes.c_int64),
        ("channels", ctypes.c_int64),
    )


ABI_VERSION = 3
"""The version of livepitch/_capture_native.c this module speaks (its ``ABI_VERSION``)."""


def available() -> bool:
    """True when the C callback was built with this install, from this version of its source."""
    return (
        _native is not None
        and getattr(_native, "ABI_VERSION", None) == ABI_VERSION
        and int(_native.COUNTER_SLOTS) == COUNTER_SLOTS
        and int(_native.RING_STRUCT_BYTES) == ctypes.sizeof(_CaptureRing)
    )


def discard_message_address() -> int | None:
    """The address of a C function ``void (const char *)`` that prints nothing, or None where
    the extension was not built (or is older)."""
    address = getattr(_native, "discard_message_address", None)
    return None if address is None else int(address())


class Disconnections(ctypes.Structure):
    """The ring ``record_disconnection`` in _capture_native.c fills: port id pairs, and how many
    were recorded ever (the C writer's release store; read by the count)."""

    _fields_ = (
        ("ports", (ctypes.c_uint32 * 2) * 256),
        ("recorded", ctypes.c_uint64),
        ("server_stopped", ctypes.c_uint32),
    )


def disconnection_recorder() -> int | None:
    """The address of a C ``JackPortConnectCallback`` that records each disconnection into the
    ``Disconnections`` given as its argument, or None where the extension was not built (or is
    older)."""
    address = getattr(_native, "disconnection_recorder_address", None)
    if (
        address is None
        or getattr(_native, "DISCONNECTION_SLOTS", None) != len(Disconnections().ports)
        or getattr(_native, "DISCONNECTIONS_STRUCT_BYTES", None) != ctypes.sizeof(Disconnections)
    ):
        return None
    return int(address())


def shutdown_recorder() -> int | None:
    """The address of a C ``JackShutdownCallback`` that sets ``server_stopped`` in the
    ``Disconnections`` given as its argument, or None where it was not built (or is older)."""
    if disconnection_recorder() is None:
        return None
    address = getattr(_native, "shutdown_recorder_address", None)
    return None if address is None else int(address())


def unavailable_reason() -> str:
    """Why ``available()`` is False, for one log line."""
    if _native is None:
        return "livepitch's C callback was not built with this install"
    return "livepitch's C callback was built from another version: reinstall livepitch"


class NativeCallback:
    """The C callback's address and the user-data pointer that points it at ``ring``.

    Holds ``ring`` (and so its arrays) for as long as PortAudio may call the function: keep
    this object until the stream is closed.
    """

    def __init__(self, ring: AudioRing) -> None:
        if _native is None or not available():
            raise RuntimeError(unavailable_reason())
        for array in (ring.frames, ring.counters):
            if not array.flags.c_contiguous or not array.flags.writeable:
                raise ValueError("the ring's arrays must be contiguous and writeable")
        self.ring = ring
        self._view = _CaptureRing(
            ring.frames.ctypes.data, ring.counters.ctypes.data, ring.capacity_frames, ring.channels
        )
        self.callback_address: int = int(_native.callback_address())
        """Address of the ``PaStreamCallback``."""
        self.user_data_address: int = ctypes.addressof(self._view)
        """The ``void *userData`` PortAudio passes it."""
        ring.fence = _native.fence

    def keep_forever(self) -> None:
        """Never free this ring: for a stream PortAudio would not close, which may still call back."""
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(self))
