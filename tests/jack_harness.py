"""A separate JACK client process that plays a WAV file into livepitch and records its MIDI.

Run by the end-to-end tests and by ``benchmarks/bench_live_jack.py`` as
``python tests/jack_harness.py ...`` (python-rtmidi and JACK-Client in one process can
deadlock, so livepitch and the harness never share one). It connects its audio output to
livepitch's capture port and livepitch's MIDI port to its MIDI input, prints ``playing`` when
the first sample goes out, plays the file at the server's pace, keeps listening for
``--listen-s`` seconds, and writes a JSON report: ``start_frame`` (the JACK frame of the first
sample), every MIDI message with the frame it arrived in (the same clock as the audio), the
xrun count, ``blocks`` (the frame of every cycle it played and the file position played in it,
so the frame of any sample is exact even after a missed cycle) and ``missed_cycles`` (cycles
that passed without its process callback: each delays the rest of the file by one period).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import jack
import numpy as np
import soundfile


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--server", required=True)
    parser.add_argument("--wav", type=Path, required=True)
    parser.add_argument("--capture", required=True, help="regex of livepitch's audio input port")
    parser.add_argument("--midi", required=True, help="regex of livepitch's MIDI output port")
    parser.add_argument("--listen-s", type=float, default=2.0, help="listen this long after playback")
    parser.add_argument("--wait-ports-s", type=float, default=20.0)
    parser.add_argument("--report", type=Path, required=True)
    args = parser.parse_args()

    client = jack.Client("lp-harness", no_start_server=True, servername=args.server)
    server_rate = int(client.samplerate)
    audio, rate = soundfile.read(str(args.wav), dtype="float32", always_2d=True)
    if rate != server_rate:
        print(f"the WAV is {rate} Hz but the server runs at {server_rate} Hz", file=sys.stderr)
        return 2
    samples = np.ascontiguousarray(audio[:, 0])
    out = client.outports.register("out")
    midi_in = client.midi_inports.register("midi_in")
    state: dict[str, int] = {"playing": 0, "position": 0, "xruns": 0, "last_frame": -1, "missed": 0}
    blocks: list[tuple[int, int]] = []
    received: list[tuple[int, list[int]]] = []
    done = threading.Event()

    def on_xrun(delay: float) -> None:
        state["xruns"] += 1

    def process(frames: int) -> None:
        now = int(client.last_frame_time)
        if state["last_frame"] >= 0 and now - state["last_frame"] > frames:
            state["missed"] += (now - state["last_frame"]) // frames - 1
        state["last_frame"] = now
        buffer = out.get_array()
        buffer[:] = 0.0
        if state["playing"]:
            position = state["position"]
            blocks.append((now, position))
            chunk = samples[position : position + frames]
            buffer[: chunk.shape[0]] = chunk
            state["position"] = position + frames
            if position + frames >= samples.shape[0]:
                state["playing"] = 0
                done.set()
        for offset, data in midi_in.incoming_midi_events():
            received.append((now + offset, list(bytes(data))))

    client.set_xrun_callback(on_xrun)
    client.set_process_callback(process)
    client.activate()
    try:
        deadline = time.monotonic() + args.wait_ports_s
        while True:
            capture = client.get_ports(args.capture, is_audio=True, is_input=True)
            midi = client.get_ports(args.midi, is_midi=True, is_output=True)
            if capture and midi:
                break
            if time.monotonic() > deadline:
                print(f"ports not found: capture {capture}, midi {midi}", file=sys.stderr)
                return 3
            time.sleep(0.1)
        client.connect(out, capture[0])
        client.connect(midi[0], midi_in)
        time.sleep(0.5)
        state["playing"] = 1
        print("playing", flush=True)
        done.wait(samples.shape[0] / server_rate + 10.0)
        time.sleep(args.listen_s)
    finally:
        client.deactivate()
        client.close()
    report = {
        "rate": server_rate,
        "start_frame": blocks[0][0] if blocks else -1,
        "xruns": state["xruns"],
        "missed_cycles": state["missed"],
        "midi": received,
        "blocks": blocks,
    }
    args.report.write_text(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
