"""livepitch inside a program: print the notes sounding each time they change.

The live daemon runs in this process (``livepitch.api.LiveSession``) and hands its events to a
callback instead of (or besides) a MIDI port; the program keeps the set of sounding notes and
prints it, with the time, whenever it changes:

    python examples/live_chords.py                       # the default microphone
    python examples/live_chords.py --input-file take.wav # a recording, replayed in real time
    python examples/live_chords.py --midi                # also play to the "BasicPitch Out" port

Ctrl-C or SIGTERM stops it: the session releases the notes sounding, and their note-offs reach
the callback like any other event, so the last line printed is silence.
"""

from __future__ import annotations

import argparse
import queue
import signal
import sys
import threading
from types import FrameType

from livepitch.api import DaemonSettings, Event, LivepitchError, LiveSession, NoteOff, NoteOn
from livepitch.status import note_name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--input-file", help="replay this recording in real time instead of the microphone")
    parser.add_argument("--midi", action="store_true", help="also send MIDI to the virtual port")
    args = parser.parse_args(argv)
    settings = DaemonSettings.model_validate(
        {"audio": {"input_file": args.input_file}, "ui": {"quiet": True}}
    )
    batches: queue.Queue[list[Event] | None] = queue.Queue()
    session = LiveSession(batches.put, settings, midi=args.midi)  # on_events runs on the worker thread

    def stop(_signum: int, _frame: FrameType | None) -> None:
        session.stop()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    failure: list[LivepitchError] = []

    def run() -> None:
        try:
            session.run()
        except LivepitchError as err:
            failure.append(err)
        finally:
            batches.put(None)  # the session is over

    runner = threading.Thread(target=run, name="livepitch session")
    runner.start()
    sounding: set[int] = set()
    while (batch := batches.get()) is not None:  # printing here keeps the worker thread short
        before = set(sounding)
        for event in batch:
            if isinstance(event, NoteOn):
                sounding.add(event.pitch)
            elif isinstance(event, NoteOff):
                sounding.discard(event.pitch)
        if sounding != before:
            names = " ".join(note_name(pitch) for pitch in sorted(sounding)) or "-"
            print(f"{batch[-1].time_s:8.2f} s  {names}", flush=True)
    runner.join()
    if failure:
        print(f"live_chords: {failure[0]}", file=sys.stderr)
        return failure[0].exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
