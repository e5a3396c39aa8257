"""Other programs' connections to livepitch's JACK capture ports, carried across a reopening.

PortAudio registers new capture ports whenever the input stream is opened again (``in_1``
after ``in_0``), and the connections other programs made to the old ones go with them. So a
``DeviceSource`` on JACK notes which ports its stream registered (the audio input ports that
appeared while it opened), reads their connections when it closes the stream on purpose, and
gives the next stream's ports the same sources, port by port: connecting what the old port
had and disconnecting what PortAudio connected on its own that the old port did not have.

Every call here runs on the main thread, through a short-lived client of its own (libjack
through ctypes), and never raises: without libjack or a server there is nothing to carry.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager

from livepitch.jack_watch import JACK_NO_START_SERVER, libjack

log = logging.getLogger("livepitch")

CLIENT_NAME = "livepitch-patch"
JACK_PORT_IS_INPUT = 0x1
JACK_PORT_IS_OUTPUT = 0x2
AUDIO_PORT_TYPE = b"32 bit float mono audio"
MIDI_PORT_TYPE = b"8 bit raw midi"


class Patchbay:
    """A JACK client that lists audio inputs and reads and sets a port's sources."""

    def __init__(self, lib: ctypes.CDLL, client: int) -> None:
        self._lib = lib
        self._client = client

    def audio_inputs(self) -> set[str]:
        """Full names of every audio input port of the server."""
        return set(self.ports(AUDIO_PORT_TYPE, JACK_PORT_IS_INPUT))

    def ports(self, port_type: bytes, flags: int) -> list[str]:
        """Full names of the ports of ``port_type`` with ``flags`` (``JACK_PORT_IS_*``)."""
        return self._names(self._lib.jack_get_ports(self._client, None, port_type, flags))

    def sources(self, port: str) -> list[str]:
        """The ports connected to ``port`` (empty if it does not exist)."""
        handle = self._lib.jack_port_by_name(self._client, port.encode())
        if not handle:
            return []
        return self._names(self._lib.jack_port_get_all_connections(self._client, handle))

    def set_sources(self, port: str, wanted: list[str]) -> None:
        """Connect ``wanted`` to ``port`` and disconnect every other source; a wanted port
        that no longer exists is skipped (logged)."""
        present = self.sources(port)
        for source in present:
            if source not in wanted and self._lib.jack_disconnect(
                self._client, source.encode(), port.encode()
            ):
                log.info("JACK: could not disconnect %s from %s", source, port)
        for source in wanted:
            if source in present:
                continue
            if self._lib.jack_connect(self._client, source.encode(), port.encode()) == 0:
                log.info("JACK: connected %s to %s again", source, port)
            else:
                log.info("JACK: could not connect %s to %s again (gone?)", source, port)

    def _names(self, array: int | None) -> list[str]:
        """A NULL-terminated ``const char **`` from libjack as strings; frees it."""
        if not array:
            return []
        strings = ctypes.cast(array, ctypes.POINTER(ctypes.c_char_p))
        names: list[str] = []
        index = 0
        while strings[index] is not None:
            names.append(strings[index].decode(errors="replace"))
            index += 1
        self._lib.jack_free(ctypes.c_void_p(array))
        return names


def patchbay_on(client: int) -> Patchbay:
    """A ``Patchbay`` on an open client of this process's (``OSError`` without libjack)."""
    return Patchbay(_patch_lib(), client)


@contextmanager
def patchbay() -> Iterator[Patchbay | None]:
    """A ``Patchbay`` for the block, or None without libjack or a running server."""
    try:
        lib = _patch_lib()
    except (OSError, AttributeError) as err:
        log.debug("no JACK patchbay: %s", err)
        yield None
        return
    status = ctypes.c_int(0)
    client = lib.jack_client_open(CLIENT_NAME.encode(), JACK_NO_START_SERVER, ctypes.byref(status))
    if not client:
        log.debug("no JACK patchbay: no server (status 0x%x)", status.value)
        yield None
        return
    try:
        yield Patchbay(lib, client)
    finally:
        lib.jack_client_close(client)


def audio_inputs() -> set[str] | None:
    """Every audio input port of the server, or None without one."""
    with patchbay() as bay:
        return None if bay is None else bay.audio_inputs()


def registered_between(before: set[str] | None) -> list[str]:
    """The audio input ports that appeared since ``before`` (``audio_inputs()`` then), in
    their order (``in_2`` before ``in_10``); empty if either listing failed."""
    after = audio_inputs()
    if before is None or after is None:
        return []
    return sorted(after - before, key=_natural_order)


def sources_of(ports: list[str]) -> list[list[str]] | None:
    """Each port's sources, or None without a server (the patch cannot be read)."""
    with patchbay() as bay:
        return None if bay is None else [bay.sources(port) for port in ports]


def patch_again(ports: list[str], sources: list[list[str]]) -> None:
    """Give port i the sources ``sources[i]`` (ports beyond the list keep PortAudio's own)."""
    with patchbay() as bay:
        if bay is None:
            return
        for port, wanted in zip(ports, sources, strict=False):
            bay.set_sources(port, wanted)


_carried: list[list[str]] | None = None


def carry(ports: list[str]) -> None:
    """Remember the sources of ``ports`` (a stream about to close on purpose) for the next
    stream of this process (``restore``)."""
    global _carried
    _carried = sources_of(ports) if ports else None


def restore(ports: list[str]) -> None:
    """Give a new stream's ``ports`` the sources ``carry`` remembered, once."""
    global _carried
    carried, _carried = _carried, None
    if carried is not None and ports:
        patch_again(ports, carried)


def _natural_order(name: str) -> tuple[str, int]:
    match = re.match(r"(.*?)(\d+)$", name)
    return (name, -1) if match is None else (match.group(1), int(match.group(2)))


@functools.cache
def _patch_lib() -> ctypes.CDLL:
    """libjack with the signatures this module calls."""
    lib = libjack()
    lib.jack_get_ports.restype = ctypes.c_void_p
    lib.jack_get_ports.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong]
    lib.jack_port_by_name.restype = ctypes.c_void_p
    lib.jack_port_by_name.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.jack_port_get_all_connections.restype = ctypes.c_void_p
    lib.jack_port_get_all_connections.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.jack_connect.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
    lib.jack_disconnect.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
    lib.jack_free.argtypes = [ctypes.c_void_p]
    return lib
