"""JACK connections: those of livepitch's capture ports, carried across a reopening, and
queries on a long-lived client of ours (who listens to our MIDI port).

PortAudio registers new capture ports whenever the input stream is opened again (``in_1``
after ``in_0``), and the connections other programs made to the old ones go with them. So a
``DeviceSource`` on JACK notes which ports its stream registered (the audio input ports that
appeared while it opened), reads their connections when it closes the stream on purpose, and
gives the next stream's ports the same sources, port by port: connecting what the old port
had and disconnecting what PortAudio connected on its own that the old port did not have.

That carrying runs JACK's own tools (``jack_lsp``, ``jack_connect``, ``jack_disconnect``) as
child processes, never a client in this process: JACK clients opened and closed here while
the server died made libjack crash this process (a segmentation fault in a later
``jack_client_close``; found by a soak that killed the server during reloads). It runs on the
main thread and never raises: without the tools or a server there is nothing to carry.

``Patchbay`` answers queries on a client this process keeps open anyway (the MIDI port's
``JackServerWatch``), through libjack and ctypes; it opens and closes nothing.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import re
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from livepitch.jack_watch import libjack

log = logging.getLogger("livepitch")

JACK_PORT_IS_INPUT = 0x1
JACK_PORT_IS_OUTPUT = 0x2
AUDIO_PORT_TYPE = b"32 bit float mono audio"
MIDI_PORT_TYPE = b"8 bit raw midi"
TOOL_TIMEOUT_S = 3.0
"""Longest wait for one of JACK's tools (a dying server can keep them waiting)."""


class Patchbay:
    """Port queries on an open JACK client of this process (libjack through ctypes)."""

    def __init__(self, lib: ctypes.CDLL, client: int) -> None:
        self._lib = lib
        self._client = client

    def ports(self, port_type: bytes, flags: int) -> list[str]:
        """Full names of the ports of ``port_type`` with ``flags`` (``JACK_PORT_IS_*``)."""
        return self._names(self._lib.jack_get_ports(self._client, None, port_type, flags))

    def sources(self, port: str) -> list[str]:
        """The ports connected to ``port`` (empty if it does not exist)."""
        handle = self._lib.jack_port_by_name(self._client, port.encode())
        if not handle:
            return []
        return self._names(self._lib.jack_port_get_all_connections(self._client, handle))

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


@dataclass
class PortInfo:
    """One port as ``jack_lsp -c -p -t`` shows it."""

    is_input: bool = False
    port_type: str = ""
    peers: list[str] = field(default_factory=list)


def _run_tool(*command: str) -> str | None:
    """Run one of JACK's tools on this process's server; its output, or None if it is missing,
    failed or took too long (logged at debug level)."""
    return _run_tools([command])[0]


def _run_tools(commands: Sequence[tuple[str, ...]]) -> list[str | None]:
    """Run JACK's tools side by side (each opens and closes a client: about 40 ms); each
    one's output, or None as for ``_run_tool``. All within ``TOOL_TIMEOUT_S``."""
    environment = dict(os.environ, JACK_NO_START_SERVER="1")
    children: list[subprocess.Popen[str] | None] = []
    for command in commands:
        try:
            children.append(
                subprocess.Popen(
                    command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment
                )
            )
        except OSError as err:
            log.debug("JACK: %s: %s", command[0], err)
            children.append(None)
    deadline = time.monotonic() + TOOL_TIMEOUT_S
    outputs: list[str | None] = []
    for command, child in zip(commands, children, strict=True):
        if child is None:
            outputs.append(None)
            continue
        try:
            stdout, stderr = child.communicate(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
            log.debug("JACK: %s: no answer within %.0f s", command[0], TOOL_TIMEOUT_S)
            outputs.append(None)
            continue
        if child.returncode != 0:
            log.debug("JACK: %s: exit %d: %s", " ".join(command), child.returncode, stderr.strip()[:200])
            outputs.append(None)
            continue
        outputs.append(stdout)
    return outputs


def list_ports() -> dict[str, PortInfo] | None:
    """Every port of the server with its direction, type and peers, or None without the tool
    or a server."""
    listing = _run_tool("jack_lsp", "-c", "-p", "-t")
    if listing is None:
        return None
    ports: dict[str, PortInfo] = {}
    current: PortInfo | None = None
    for line in listing.splitlines():
        if line.startswith("\tproperties:") and current is not None:
            current.is_input = "input" in [word.strip() for word in line.split(":", 1)[1].split(",")]
        elif line.startswith("\t") and current is not None:
            current.port_type = line.strip()
        elif line.startswith("   ") and current is not None:
            current.peers.append(line.strip())
        elif line.strip():
            current = ports[line] = PortInfo()
    return ports


def audio_inputs(listing: dict[str, PortInfo] | None = None) -> set[str] | None:
    """Every audio input port of the server (in ``listing``, else listed now), or None without
    one (or the tool)."""
    ports = list_ports() if listing is None else listing
    if ports is None:
        return None
    audio = AUDIO_PORT_TYPE.decode()
    return {name for name, info in ports.items() if info.is_input and info.port_type == audio}


def registered_between(before: set[str] | None, listing: dict[str, PortInfo] | None = None) -> list[str]:
    """The audio input ports PortAudio's client registered since ``before`` (``audio_inputs()``
    then) as of ``listing`` (else listed now), in their order (``in_2`` before ``in_10``);
    empty if either listing failed or if another program's client registered inputs
    meanwhile too and none is PortAudio's."""
    after = audio_inputs(listing)
    if before is None or after is None:
        return []
    by_client: dict[str, list[str]] = {}
    for port in after - before:
        by_client.setdefault(port.split(":", 1)[0], []).append(port)
    clients = list(by_client)
    if len(clients) > 1:
        clients = [client for client in clients if client.startswith("PortAudio")]
    if len(clients) != 1:
        log.debug("JACK: cannot tell this stream's capture ports among %s", sorted(by_client))
        return []
    return sorted(by_client[clients[0]], key=_natural_order)


def patch_again(
    ports: list[str], sources: list[list[str]], listing: dict[str, PortInfo] | None = None
) -> None:
    """Give port i the sources ``sources[i]`` and no other (ports beyond the list keep
    PortAudio's own); a wanted source that no longer exists is skipped (logged), and a port
    none of whose wanted sources exists keeps PortAudio's (rather than no input at all).
    ``listing``: the server's ports as just listed (else listed now). The connections and
    disconnections are made side by side: audio from the wanted sources is lost until then."""
    listing = list_ports() if listing is None else listing
    if listing is None:
        return
    changes: list[tuple[str, str, str]] = []  # (tool, source, port)
    for port, wanted in zip(ports, sources, strict=False):
        present = listing[port].peers if port in listing else []
        if wanted and not any(source in listing for source in wanted):  # keep PortAudio's then
            log.info("JACK: %s keeps its own sources: %s went away", port, ", ".join(wanted))
            continue
        changes += [("jack_disconnect", source, port) for source in present if source not in wanted]
        for source in wanted:
            if source in present:
                continue
            if source in listing:
                changes.append(("jack_connect", source, port))
            else:
                log.info("JACK: could not connect %s to %s again (gone?)", source, port)
    for (tool, source, port), output in zip(changes, _run_tools(changes), strict=True):
        if tool == "jack_disconnect" and output is None:
            log.info("JACK: could not disconnect %s from %s", source, port)
        elif tool == "jack_connect":
            if output is None:
                log.info("JACK: could not connect %s to %s again (gone?)", source, port)
            else:
                log.info("JACK: connected %s to %s again", source, port)


CARRIED_FOR_S = 10.0
"""How long remembered sources wait for the next stream: a reload reopens within a second or
two; a stream opened later (after a server restart) starts with PortAudio's own."""

_carried: tuple[float, list[list[str]]] | None = None  # (when, each port's sources)
_inputs_then: tuple[float, set[str]] | None = None  # (when, the server's other audio inputs)


def carry(ports: list[str]) -> None:
    """Remember the sources of ``ports`` (a stream about to close for a reload) for the next
    stream of this process (``restore``), and the server's other audio inputs
    (``carried_inputs``)."""
    global _carried, _inputs_then
    listing = list_ports() if ports else None
    if listing is None:
        _carried = _inputs_then = None
        return
    now = time.monotonic()
    _carried = (now, [listing[port].peers if port in listing else [] for port in ports])
    _inputs_then = (now, (audio_inputs(listing) or set()) - set(ports))


def carried_inputs() -> set[str] | None:
    """The audio inputs other than the closed stream's as ``carry`` listed them, once (the
    next stream's open needs no listing of its own before it), or None."""
    global _inputs_then
    inputs, _inputs_then = _inputs_then, None
    if inputs is None or time.monotonic() - inputs[0] >= CARRIED_FOR_S:
        return None
    return inputs[1]


def restore(ports: list[str], listing: dict[str, PortInfo] | None = None) -> None:
    """Give a new stream's ``ports`` the sources ``carry`` remembered, once, if that was
    less than ``CARRIED_FOR_S`` ago (``listing``: the server's ports as just listed)."""
    global _carried
    carried, _carried = _carried, None
    if carried is not None and ports and time.monotonic() - carried[0] < CARRIED_FOR_S:
        patch_again(ports, carried[1], listing)


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
    lib.jack_free.argtypes = [ctypes.c_void_p]
    return lib
