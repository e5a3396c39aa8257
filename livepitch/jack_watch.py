"""Noticing that the JACK server went away under a MIDI port (libjack through ctypes).

python-rtmidi's JACK client does not say when its server stops: sends go on without error
into a port that no longer exists, and a restarted server never gets the port back. A second,
idle JACK client registered with ``jack_on_shutdown`` is told; ``JackServerWatch.stopped``
reads that flag. libjack calls the callback on its own thread; it only sets an event. The same
client records every disconnection (``take_disconnections``), so a listener that leaves our
port and comes back between two of the MIDI sink's looks is still known to have left. That
recorder is C (livepitch.native_capture), and so is the shutdown callback where it was built:
a Python callback on libjack's threads deadlocked the process when ``jack_client_close``
cancelled the thread while it held the GIL (the shutdown one too, once, as the server died
while the port closed).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import threading

from livepitch import native_capture

log = logging.getLogger("livepitch")

_ABANDONED: list[object] = []
"""Clients of servers that went away, never closed (see ``JackServerWatch.close``)."""

JACK_NO_START_SERVER = 0x01
"""``JackNoStartServer``: never start a server to watch it."""

_SHUTDOWN_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


class JackServerWatch:
    """An idle JACK client whose only job is to learn that the server shut down."""

    def __init__(self, client_name: str) -> None:
        """``OSError`` if libjack cannot be loaded or no server runs."""
        self._lib = libjack()
        self._stopped = threading.Event()
        self._callback = _SHUTDOWN_CALLBACK(lambda _arg: self._stopped.set())  # kept: libjack holds it
        self._disconnections = native_capture.Disconnections()  # kept: libjack writes into it
        self._disconnections_taken = 0
        self._client: int | None = None
        status = ctypes.c_int(0)
        client = self._lib.jack_client_open(client_name.encode(), JACK_NO_START_SERVER, ctypes.byref(status))
        if not client:
            raise OSError(f"no JACK server to watch (status 0x{status.value:x})")
        self._client = client
        on_shutdown = native_capture.shutdown_recorder()  # C where built: see the module's doc
        if on_shutdown is not None:
            self._lib.jack_on_shutdown(
                client, ctypes.c_void_p(on_shutdown), ctypes.byref(self._disconnections)
            )
        else:
            self._lib.jack_on_shutdown(client, ctypes.cast(self._callback, ctypes.c_void_p), None)
        recorder = native_capture.disconnection_recorder()
        self.records_disconnections = recorder is not None
        """Whether ``take_disconnections`` can tell (the C extension was built)."""
        if recorder is not None:
            self._lib.jack_set_port_connect_callback(
                client, ctypes.c_void_p(recorder), ctypes.byref(self._disconnections)
            )
        if self._lib.jack_activate(client) != 0:
            self.close()
            raise OSError("cannot activate the JACK watch client")

    @property
    def client(self) -> int | None:
        """The libjack client handle (None once closed), for queries on the same client."""
        return self._client

    def take_disconnections(self) -> list[tuple[str, str]]:
        """The (source, destination) port names disconnected since the last call, oldest first
        (main thread). Beyond the ring's slots the oldest are lost; a pair whose port is gone
        by now (its program left for good) is left out, and JACK may give a gone port's id to a
        new one."""
        client = self._client
        recorded = self._disconnections.recorded  # (written after its slot, by one writer)
        slots = len(self._disconnections.ports)
        first = max(self._disconnections_taken, recorded - slots)
        self._disconnections_taken = recorded
        if client is None or self.stopped:
            return []
        taken = []
        for count in range(first, recorded):
            port_a, port_b = self._disconnections.ports[count % slots]
            names = [self._port_name(client, port_id) for port_id in (port_a, port_b)]
            if names[0] is not None and names[1] is not None:
                taken.append((names[0], names[1]))
        return taken

    def _port_name(self, client: int, port_id: int) -> str | None:
        port = self._lib.jack_port_by_id(client, port_id)
        name = self._lib.jack_port_name(port) if port else None
        return name.decode(errors="replace") if name else None

    @property
    def stopped(self) -> bool:
        """Whether the server shut down since the watch started."""
        return self._stopped.is_set() or bool(self._disconnections.server_stopped)

    def close(self) -> None:
        """Leave the server; safe to call twice. A client whose server went away is not closed
        but kept for good (``_ABANDONED``, with its callback): closing it while another thread
        was still inside libjack for the same dead server (PortAudio giving up on its stream)
        crashed the process in ``jack_client_close``."""
        client, self._client = self._client, None
        if client is None:
            return
        if self.stopped:
            _ABANDONED.append((client, self._callback, self._disconnections))
            return
        self._lib.jack_client_close(client)


@functools.cache
def quiet_libjack_messages() -> bool:
    """Send libjack's own messages nowhere (a server that goes away makes it print a dozen
    lines, "JackClientSocket::Read time out" and the like; livepitch says in one line what
    happened). ``LIVEPITCH_AUDIO_DEBUG=1`` keeps them. True if they are silenced: needs
    libjack and livepitch's C extension (a Python function could not run on libjack's
    realtime thread)."""
    from livepitch.native_capture import discard_message_address
    from livepitch.native_output import native_output_wanted

    if native_output_wanted():
        return False

    address = discard_message_address()
    if address is None:
        return False
    try:
        lib = libjack()
    except OSError:
        return False
    lib.jack_set_error_function(ctypes.c_void_p(address))
    lib.jack_set_info_function(ctypes.c_void_p(address))
    return True


@functools.cache
def libjack() -> ctypes.CDLL:
    """libjack, loaded once (``find_library`` runs ``ldconfig``)."""
    path = ctypes.util.find_library("jack")
    if path is None:
        raise OSError("libjack not found")
    lib = ctypes.CDLL(path)
    lib.jack_client_open.restype = ctypes.c_void_p
    lib.jack_client_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
    lib.jack_on_shutdown.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    lib.jack_set_port_connect_callback.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    lib.jack_port_by_id.restype = ctypes.c_void_p
    lib.jack_port_by_id.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.jack_port_name.restype = ctypes.c_char_p
    lib.jack_port_name.argtypes = [ctypes.c_void_p]
    lib.jack_activate.argtypes = [ctypes.c_void_p]
    lib.jack_client_close.argtypes = [ctypes.c_void_p]
    lib.jack_set_error_function.argtypes = [ctypes.c_void_p]
    lib.jack_set_info_function.argtypes = [ctypes.c_void_p]
    return lib
