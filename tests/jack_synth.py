"""A stand-in synth for the JACK tests: a MIDI input port that records what reaches it.

    python tests/jack_synth.py --server NAME --out messages.jsonl [--gap-s 0.3]

Registers ``synth:midi_in`` and writes one JSON line per message (``{"port": n, "midi":
[bytes]}``, n counting the port's registrations from 1), after printing ``ready``. On SIGUSR1
it unregisters the port and registers it again ``--gap-s`` later (a synth restarting its
input); SIGTERM ends it.
"""

from __future__ import annotations

import argparse
import json
import queue
import signal
import sys
import threading

import jack


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--server", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--gap-s", type=float, default=0.3)
    args = parser.parse_args()

    client = jack.Client("synth", no_start_server=True, servername=args.server)
    received: queue.Queue[tuple[int, list[int]]] = queue.Queue()
    current: dict[str, jack.MidiPort | None] = {"port": client.midi_inports.register("midi_in")}
    registration = [1]
    stop, bounce = threading.Event(), threading.Event()

    def process(frames: int) -> None:  # JACK's thread
        port = current["port"]
        if port is not None:
            for _offset, data in port.incoming_midi_events():
                received.put((registration[0], list(bytes(data))))

    client.set_process_callback(process)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGUSR1, lambda *_: bounce.set())
    with open(args.out, "w", buffering=1) as out, client:
        print("ready", flush=True)
        while not stop.wait(0.02):
            if bounce.is_set():
                bounce.clear()
                port, current["port"] = current["port"], None
                if port is not None:
                    port.unregister()
                stop.wait(args.gap_s)
                registration[0] += 1
                current["port"] = client.midi_inports.register("midi_in")
            while not received.empty():
                number, midi = received.get()
                out.write(json.dumps({"port": number, "midi": midi}) + "\n")
        while not received.empty():
            number, midi = received.get()
            out.write(json.dumps({"port": number, "midi": midi}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
