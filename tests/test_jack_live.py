"""End to end through a real JACK server (jackd's dummy backend): audio in, MIDI out.

livepitch runs as its own process with PortAudio's JACK host API and a JACK MIDI port; a
separate harness process plays a recording into its capture port and records the MIDI it
sends, on the same JACK clock. Needs ``jackd`` (``.ci/setup-env.sh`` installs jackd2); in CI
a missing jackd fails these tests instead of skipping them.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import mido
import numpy as np
import pytest
import soundfile

from livepitch import abort_restart, native_capture
from tests.synth import sequence, vibrato

RATE_HZ = 48000
PERIOD_FRAMES = 512
REPO = Path(__file__).resolve().parents[1]


def start_jackd(name: str) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        ["jackd", "-n", name, "-r", "-d", "dummy", "-r", str(RATE_HZ), "-p", str(PERIOD_FRAMES)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    subprocess.run(["jack_wait", "-s", name, "-w", "-t", "10"], check=True, capture_output=True)
    return process


def stop_process(process: subprocess.Popen[Any], timeout_s: float = 10.0) -> int:
    """SIGTERM, then SIGKILL after ``timeout_s`` (the exit code is then -9: it hung)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def require_jackd() -> None:
    """Skip without jackd, except in CI, where it is an error (.ci/setup-env.sh installs it)."""
    if shutil.which("jackd") is None:
        if os.environ.get("CI"):
            pytest.fail("jackd is not installed (.ci/setup-env.sh installs jackd2)")
        pytest.skip("jackd is not installed")


@pytest.fixture(scope="module")
def jack_server() -> Iterator[str]:
    require_jackd()
    name = f"lp{os.getpid()}"
    process = start_jackd(name)
    yield name
    stop_process(process)


def start_livepitch(server: str, tmp_path: Path, *flags: str) -> subprocess.Popen[str]:
    env = dict(os.environ, JACK_DEFAULT_SERVER=server, JACK_NO_START_SERVER="1")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "livepitch",
            "--host-api",
            "JACK",
            "--midi-api",
            "jack",
            "--channel",
            "1",
            "--quiet",
            *flags,
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=open(tmp_path / "livepitch.log", "w"),
        text=True,
    )


def start_harness(server: str, wav: Path, report: Path, listen_s: float = 2.0) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable, str(REPO / "tests" / "jack_harness.py"), "--server", server, "--wav", str(wav),
            "--capture", "PortAudio.*in_0", "--midi", "BasicPitch Out", "--report", str(report),
            "--listen-s", str(listen_s),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def wait_playing(harness: subprocess.Popen[str]) -> None:
    assert harness.stdout is not None
    line = harness.stdout.readline()
    assert line.strip() == "playing", f"harness said {line!r}"


def read_report(report: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(report.read_text())
    return result


def play_and_stop(
    livepitch: subprocess.Popen[str],
    harness: subprocess.Popen[str],
    tmp_path: Path,
    during: Callable[[float], None] = lambda playing_at: None,
    others: tuple[subprocess.Popen[str], ...] = (),
) -> str:
    """Once the harness plays, call ``during`` (with the monotonic time it started); when it
    has finished, stop livepitch and ``others``. livepitch's log (its exit 0 asserted)."""
    try:
        wait_playing(harness)
        during(time.monotonic())
        assert harness.wait(60) == 0
        code = stop_process(livepitch)
    finally:
        stop_process(livepitch)
        for other in others:
            stop_process(other)
    log = (tmp_path / "livepitch.log").read_text()
    assert code == 0, log
    return log


def played_s(report: dict[str, Any], file_s: float) -> float:
    """When the sample at ``file_s`` of the WAV went out, in s after ``start_frame``."""
    position = round(file_s * report["rate"])
    frame, start = max(((f, p) for f, p in report["blocks"] if p <= position), key=lambda block: block[1])
    return float(frame + position - start - report["start_frame"]) / float(report["rate"])


def note_events(report: dict[str, Any]) -> list[tuple[float, str, int, int, int]]:
    """(seconds after playback start, kind, channel 1-16, data1, data2) of each message."""
    out = []
    for frame, data in report["midi"]:
        status = data[0]
        kind = {0x90: "on", 0x80: "off", 0xE0: "bend", 0xB0: "cc"}.get(status & 0xF0, "other")
        if kind == "on" and data[2] == 0:
            kind = "off"
        out.append(
            ((frame - report["start_frame"]) / report["rate"], kind, (status & 0x0F) + 1, data[1], data[2])
        )
    return out


def still_sounding(events: list[tuple[float, str, int, int, int]]) -> set[tuple[int, int]]:
    sounding: set[tuple[int, int]] = set()
    for _, kind, channel, data1, _data2 in events:
        if kind == "on":
            sounding.add((channel, data1))
        elif kind == "off":
            sounding.discard((channel, data1))
        elif kind == "cc" and data1 == 123:
            sounding = {(c, n) for c, n in sounding if c != channel}
    return sounding


def held_notes(
    events: list[tuple[float, str, int, int, int]], min_s: float = 0.15
) -> list[tuple[float, int, int]]:
    """(arrival s, channel, note) of notes that sounded at least ``min_s`` (real notes, not blips).

    The live schedule starts wherever capture starts, so windows fall differently from a file
    run and an attack can flash a short ghost note; the notes played are the held ones.
    """
    started: dict[tuple[int, int], float] = {}
    held = []
    for t, kind, channel, note, _velocity in events:
        if kind == "on":
            started[(channel, note)] = t
        elif kind == "off" and (channel, note) in started:
            onset = started.pop((channel, note))
            if t - onset >= min_s:
                held.append((onset, channel, note))
    return sorted(held)


def write_wav(path: Path, audio: np.ndarray) -> Path:
    soundfile.write(path, audio, RATE_HZ, subtype="FLOAT")
    return path


@pytest.mark.parametrize("callback", ["c", "python"])
def test_notes_and_mpe_bends_arrive_and_sigterm_releases_everything(
    jack_server: str, tmp_path: Path, callback: str
) -> None:
    melody = sequence([(0.5, 0.5, 60), (1.1, 0.5, 64), (1.7, 0.5, 67)], 2.4, rate_hz=RATE_HZ)
    wav = write_wav(tmp_path / "melody.wav", np.concatenate([melody, vibrato(69, 1.5, 0.5, rate_hz=RATE_HZ)]))
    livepitch = start_livepitch(jack_server, tmp_path, "--bends", "mpe", "--audio-callback", callback)
    harness = start_harness(jack_server, wav, tmp_path / "report.json", listen_s=1.0)
    try:
        wait_playing(harness)
        assert harness.wait(60) == 0
    finally:
        code = stop_process(livepitch)
    log = (tmp_path / "livepitch.log").read_text()
    assert code == 0, log
    # PortAudio's thread ran the C callback wherever it was built (it never waits for the GIL),
    # and the Python one when asked
    native = callback == "c" and native_capture.available()
    assert ("audio callback: C" in log) == native, log
    assert ("audio callback: Python" in log) == (not native), log
    report = read_report(tmp_path / "report.json")
    events = note_events(report)
    ons = held_notes(events)
    assert [note for _, _, note in ons] == [60, 64, 67, 69]
    # arrival after the onset as the harness really played it (its block log counts cycles it
    # missed); generous, since latency is measured by the benchmark
    for (t, _, _), onset_s in zip(ons, (0.5, 1.1, 1.7, 2.4), strict=True):
        played = played_s(report, onset_s)
        assert played - 0.03 <= t <= played + 0.4
    assert all(2 <= channel <= 16 for _, channel, _ in ons)
    # the harness connected after the port opened and its setup went out: it came again
    # before the first note (the MPE zone of 15 members, the members' range of 48 semitones)
    first_on = next(i for i, event in enumerate(events) if event[1] == "on")
    setup = [(channel, data1, data2) for _, kind, channel, data1, data2 in events[:first_on] if kind == "cc"]
    assert (1, 6, 15) in setup and (2, 6, 48) in setup and (16, 6, 48) in setup
    vibrato_channel = ons[-1][1]
    bends = [
        value
        for t, kind, channel, value, _ in events
        if kind == "bend" and channel == vibrato_channel and t > 2.4
    ]
    assert len(bends) >= 5
    assert still_sounding(events) == set()


def test_sigterm_mid_chord_sends_note_offs_and_all_notes_off(jack_server: str, tmp_path: Path) -> None:
    chord = sequence([(0.3, 4.0, 60), (0.3, 4.0, 64), (0.3, 4.0, 67)], 4.5, rate_hz=RATE_HZ)
    wav = write_wav(tmp_path / "chord.wav", chord)
    livepitch = start_livepitch(jack_server, tmp_path, "--bends", "mpe")
    harness = start_harness(jack_server, wav, tmp_path / "report.json", listen_s=0.5)
    try:
        wait_playing(harness)
        time.sleep(2.0)  # the chord sounds from 0.3 to 4.3 s (the harness's clock starts earlier)
        code = stop_process(livepitch)
        assert harness.wait(60) == 0
    finally:
        stop_process(livepitch)
    assert code == 0, (tmp_path / "livepitch.log").read_text()
    events = note_events(read_report(tmp_path / "report.json"))
    # the SIGTERM's release: note-offs, then All Notes Off, at one moment of the harness's clock
    stopped_at = min(t for t, kind, c, n, v in events if kind == "cc" and n == 123)
    assert 1.5 < stopped_at < 4.0, events
    sounding_before = still_sounding([e for e in events if e[0] < stopped_at])
    assert {n for _, n in sounding_before} >= {60, 64, 67}
    offs = {(c, n) for t, kind, c, n, v in events if kind == "off" and t >= stopped_at}
    assert sounding_before <= offs
    all_notes_off = {c for t, kind, c, n, v in events if kind == "cc" and n == 123}
    assert {c for c, _ in sounding_before} <= all_notes_off
    assert still_sounding(events) == set()


MELODY = [(0.5, 0.5, 60), (1.5, 0.5, 64), (3.0, 0.5, 67), (4.0, 0.5, 62)]
"""A reload comes between the second and third note: reopening the input takes 0.3 s idle
(PortAudio's open and JACK's tools), more on a loaded machine, and audio played meanwhile is
not heard."""


def jack_sources(server: str) -> dict[str, set[str]]:
    """livepitch's (PortAudio's) capture ports, each with the ports connected to it."""
    listing = subprocess.run(["jack_lsp", "-s", server, "-c"], capture_output=True, text=True).stdout
    ports: dict[str, set[str]] = {}
    current: str | None = None
    for line in listing.splitlines():
        if not line.startswith(" "):
            current = line if line.startswith("PortAudio") and ":in_" in line else None
            if current is not None:
                ports[current] = set()
        elif current is not None:
            ports[current].add(line.strip())
    return ports


def reload_during_melody(
    server: str,
    tmp_path: Path,
    first: str,
    second: str,
    *flags: str,
    before: Callable[[], None] = lambda: None,
) -> tuple[dict[str, set[str]], list[tuple[float, str, int, int, int]], str]:
    """Play ``MELODY`` into livepitch run with config ``first``; once it plays, call ``before``;
    after the second note rewrite the config to ``second`` and send SIGHUP. Returns the capture
    ports' sources once livepitch logs the reload, the MIDI the harness read, and livepitch's
    log (exit 0)."""
    config = tmp_path / "live.toml"
    config.write_text(first)
    wav = write_wav(tmp_path / "melody.wav", sequence(MELODY, 5.0, rate_hz=RATE_HZ))
    livepitch = start_livepitch(server, tmp_path, "--config", str(config), *flags)
    harness = start_harness(server, wav, tmp_path / "report.json", listen_s=1.0)
    sources: list[dict[str, set[str]]] = []

    def reload(playing_at: float) -> None:
        before()
        time.sleep(max(0.0, playing_at + 2.1 - time.monotonic()))  # after the second note, before the third
        config.write_text(second)
        livepitch.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 5.0  # (the new port's sources are set before the line)
        while "configuration reloaded" not in (tmp_path / "livepitch.log").read_text():
            assert time.monotonic() < deadline, "no reload logged within 5 s"
            time.sleep(0.02)
        sources.append(jack_sources(server))

    log = play_and_stop(livepitch, harness, tmp_path, reload)
    assert "configuration reloaded" in log, log
    return sources[0], note_events(read_report(tmp_path / "report.json")), log


def test_a_reload_keeps_the_capture_port_and_its_connections(jack_server: str, tmp_path: Path) -> None:
    """SIGHUP with the audio settings as they were: the stream stays open, so the capture port
    keeps its name and the harness's connection to it."""
    record = tmp_path / "take.mid"  # saved every second by a forked child of a JACK client
    sources, events, log = reload_during_melody(
        jack_server, tmp_path, "[tracker]\ngate_dbfs = -48.0\n", "[tracker]\ngate_dbfs = -50.0\n",
        "--bends", "none", "--record", str(record), "--save-every-s", "1",
    )  # fmt: skip
    assert "(kept open)" in log, log
    assert sources == {"PortAudio:in_0": {"system:capture_1", "lp-harness:out"}}, sources
    # the last two after it (once each: on a loaded machine a harness that misses cycles can
    # cut a note in two)
    assert list(dict.fromkeys(note for _, _, note in held_notes(events))) == [60, 64, 67, 62]
    assert still_sounding(events) == set()
    recorded = [m.note for m in mido.MidiFile(record) if m.type == "note_on" and m.velocity > 0]
    assert list(dict.fromkeys(recorded)) == [60, 64, 67, 62]


def test_a_reload_that_reopens_the_input_connects_the_same_sources_to_the_new_port(
    jack_server: str, tmp_path: Path
) -> None:
    """SIGHUP with another block size reopens the stream and PortAudio registers a new capture
    port (``in_1``): livepitch gives it the old port's sources — the harness's output, and not
    system:capture_1, which PortAudio connects on its own and which was undone here — so the
    notes played after the reload still arrive."""
    seen: list[dict[str, set[str]]] = []

    def undo_the_system_capture() -> None:
        seen.append(jack_sources(jack_server))
        subprocess.run(
            ["jack_disconnect", "-s", jack_server, "system:capture_1", "PortAudio:in_0"], check=True
        )

    sources, events, log = reload_during_melody(
        jack_server, tmp_path, "[audio]\nblock_frames = 512\n[tracker]\ngate_dbfs = -48.0\n",
        "[audio]\nblock_frames = 1024\n[tracker]\ngate_dbfs = -48.0\n", "--bends", "none",
        before=undo_the_system_capture,
    )  # fmt: skip
    assert seen == [{"PortAudio:in_0": {"system:capture_1", "lp-harness:out"}}], seen
    assert sources == {"PortAudio:in_1": {"lp-harness:out"}}, (sources, log)
    assert list(dict.fromkeys(note for _, _, note in held_notes(events))) == [60, 64, 67, 62]
    assert still_sounding(events) == set()


def start_synth(server: str, messages: Path, *flags: str) -> subprocess.Popen[str]:
    """tests/jack_synth.py on ``server``, writing what reaches it to ``messages``; once ready."""
    synth = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "tests" / "jack_synth.py"),
            "--server",
            server,
            "--out",
            str(messages),
            *flags,
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert synth.stdout is not None and synth.stdout.readline().strip() == "ready"
    return synth


def test_a_connect_target_registered_again_within_a_second_is_connected_again(
    jack_server: str, tmp_path: Path
) -> None:
    """``--connect synth``: the synth registers its input port again 20 ms after dropping it
    (between two of livepitch's checks, so the name never looked gone); livepitch notices that
    its connection went with the old port, connects again and the later notes reach the synth."""
    messages = tmp_path / "synth.jsonl"
    synth = start_synth(jack_server, messages, "--gap-s", "0.02")
    notes = [(0.5, 0.5, 60), (1.5, 0.5, 64), (3.5, 0.5, 67), (4.5, 0.5, 62)]
    wav = write_wav(tmp_path / "melody.wav", sequence(notes, 5.5, rate_hz=RATE_HZ))
    livepitch = start_livepitch(jack_server, tmp_path, "--connect", "synth", "--bends", "none")
    harness = start_harness(jack_server, wav, tmp_path / "report.json", listen_s=1.0)

    def bounce(playing_at: float) -> None:
        time.sleep(1.2)  # after the first note
        synth.send_signal(signal.SIGUSR1)

    log = play_and_stop(livepitch, harness, tmp_path, bounce, others=(synth,))
    lines = [json.loads(line) for line in messages.read_text().splitlines()]
    ons = [(m["port"], m["midi"][1]) for m in lines if m["midi"][0] & 0xF0 == 0x90 and m["midi"][2] > 0]
    assert [note for port, note in ons if port == 2][-2:] == [67, 62], (ons, log)
    # (found by the new check; once in about fifty runs the check falls in the 20 ms gap and
    # finds the port gone instead, as before)
    assert "registered again" in log or "went away" in log, log
    sounding: set[int] = set()  # at the re-registered port: every note it got was ended
    for m in (m for m in lines if m["port"] == 2):
        status, data1, data2 = m["midi"][0] & 0xF0, m["midi"][1], m["midi"][2]
        if status == 0x90 and data2 > 0:
            sounding.add(data1)
        elif status == 0x80 or status == 0x90 or (status == 0xB0 and data1 == 123):
            sounding = set() if status == 0xB0 else sounding - {data1}
    assert sounding == set()


def play_a_long_note(server: str, tmp_path: Path) -> tuple[subprocess.Popen[str], subprocess.Popen[str]]:
    """livepitch (no bends) and the harness playing 60 from 0.5 to 2.0 s, then 64 at 4.5 s."""
    notes = [(0.5, 1.5, 60), (4.5, 0.5, 64)]
    wav = write_wav(tmp_path / "long.wav", sequence(notes, 5.5, rate_hz=RATE_HZ))
    livepitch = start_livepitch(server, tmp_path, "--bends", "none")
    return livepitch, start_harness(server, wav, tmp_path / "report.json", listen_s=1.0)


def test_a_listener_that_left_mid_note_gets_the_missed_note_off_when_it_connects_again(
    jack_server: str, tmp_path: Path
) -> None:
    """The harness's MIDI input is disconnected from livepitch's port while a note sounds and
    connected again after that note ended: within a check (a second) it gets the note-off it
    missed, long before the next note (it used to hold the note until the same pitch came back)."""
    livepitch, harness = play_a_long_note(jack_server, tmp_path)
    ports = ("livepitch:BasicPitch Out", "lp-harness:midi_in")
    reconnected: list[float] = []

    def away_and_back(playing_at: float) -> None:
        time.sleep(1.2)  # 60 sounds
        subprocess.run(["jack_disconnect", "-s", jack_server, *ports], check=True)
        time.sleep(max(0.0, playing_at + 2.8 - time.monotonic()))  # 60 ended meanwhile
        reconnected.append(time.monotonic() - playing_at)
        subprocess.run(["jack_connect", "-s", jack_server, *ports], check=True)

    log = play_and_stop(livepitch, harness, tmp_path, away_and_back)
    (reconnected_s,) = reconnected
    events = note_events(read_report(tmp_path / "report.json"))
    assert [(kind, note) for _, kind, _, note, _ in events if kind == "on"] == [("on", 60), ("on", 64)], (
        events
    )
    (next_on_s,) = [t for t, kind, _, note, _ in events if kind == "on" and note == 64]
    offs_s = [t for t, kind, _, note, _ in events if kind == "off" and note == 60]
    assert offs_s and reconnected_s - 0.1 < offs_s[0] < next_on_s, (offs_s, reconnected_s, next_on_s, log)
    assert "back: ending any note it kept" in log, log


def test_a_listener_away_for_less_than_a_check_gets_the_note_off_it_missed(
    jack_server: str, tmp_path: Path
) -> None:
    """The harness's MIDI input is disconnected just before a note-off and connected again as
    soon as a second listener (the stand-in synth) has it: away about 0.2 s, so livepitch's
    looks at its listeners, a second apart, mostly see it connected both times. JACK's own
    word that it left is what sends it the note-off again."""
    messages = tmp_path / "synth.jsonl"
    synth = start_synth(jack_server, messages)
    livepitch, harness = play_a_long_note(jack_server, tmp_path)
    ports = ("livepitch:BasicPitch Out", "lp-harness:midi_in")
    reconnected: list[float] = []

    def synth_has_the_note_off() -> bool:
        for line in messages.read_text().splitlines():
            status, note, velocity = json.loads(line)["midi"][:3]
            if note == 60 and (status & 0xF0 == 0x80 or (status & 0xF0 == 0x90 and velocity == 0)):
                return True
        return False

    def away_around_the_note_off(playing_at: float) -> None:
        subprocess.run(
            ["jack_connect", "-s", jack_server, "livepitch:BasicPitch Out", "synth:midi_in"], check=True
        )
        time.sleep(max(0.0, playing_at + 1.95 - time.monotonic()))  # 60 ends at 2.0 s
        subprocess.run(["jack_disconnect", "-s", jack_server, *ports], check=True)
        deadline = time.monotonic() + 5.0
        while not synth_has_the_note_off() and time.monotonic() < deadline:
            time.sleep(0.005)
        subprocess.run(["jack_connect", "-s", jack_server, *ports], check=True)
        reconnected.append(time.monotonic() - playing_at)

    log = play_and_stop(livepitch, harness, tmp_path, away_around_the_note_off, others=(synth,))
    (reconnected_s,) = reconnected
    assert reconnected_s < 2.6, reconnected_s  # the synth got the note-off, and soon
    events = note_events(read_report(tmp_path / "report.json"))
    (next_on_s,) = [t for t, kind, _, note, _ in events if kind == "on" and note == 64]
    offs_s = [t for t, kind, _, note, _ in events if kind == "off" and note == 60]
    assert offs_s and reconnected_s - 0.1 < offs_s[0] < reconnected_s + 1.3 < next_on_s, (
        offs_s,
        reconnected_s,
        log,
    )
    assert "back: ending any note it kept" in log, log


WATCH_CHURN = """
import sys, threading, time
import jack
from livepitch import jack_watch

server, rounds = sys.argv[1], int(sys.argv[2])
done = threading.Event()
churner = jack.Client("churn", no_start_server=True, servername=server)
churner.activate()

def churn():  # connection changes all the time: libjack's notifications to every client
    while not done.is_set():
        churner.connect("system:capture_1", "system:playback_1")
        churner.disconnect("system:capture_1", "system:playback_1")

def busy():  # Python holding the GIL, as the worker does
    while not done.is_set():
        sum(range(1000))

threads = [threading.Thread(target=work, daemon=True) for work in (churn, busy)]
for thread in threads:
    thread.start()
disconnections = opened = 0
for _ in range(rounds):
    try:  # (the flooded server sometimes refuses a client: the daemon goes on unwatched then)
        watch = jack_watch.JackServerWatch("livepitch-watch")
    except OSError:
        continue
    opened += 1
    time.sleep(0.01)
    disconnections += len(watch.take_disconnections())
    watch.close()
done.set()
print("done", opened, disconnections, watch.records_disconnections, flush=True)
"""


def run_on_server(server: str, script: str, *args: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    """Run a Python ``script`` (with ``args``) as a JACK client of ``server``."""
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        cwd=REPO,
        env=dict(os.environ, JACK_DEFAULT_SERVER=server, JACK_NO_START_SERVER="1"),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


TWO_PORTS = """
from livepitch.midi_port import open_output
from livepitch.settings import MidiApi
first = open_output("BasicPitch Out", MidiApi.JACK, None)
second = open_output("BasicPitch Out", MidiApi.JACK, None)
print(first.shown_name)
print(second.shown_name)
second.close()
first.close()
"""


def test_a_second_livepitchs_port_is_shown_with_the_client_name_jack_gave_it(jack_server: str) -> None:
    """JACK renames a second client ``livepitch-01``: the log must say which port to connect
    to, not the name the first one has too."""
    done = run_on_server(jack_server, TWO_PORTS, timeout_s=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["livepitch:BasicPitch Out", "livepitch-01:BasicPitch Out"]


def test_the_midi_ports_jack_watch_closes_while_connections_change_all_the_time(jack_server: str) -> None:
    """The watch records disconnections on libjack's notification thread, which
    ``jack_client_close`` cancels at any instruction: a Python callback there, cancelled while
    it held the GIL, left the process waiting for the GIL for good (in tens of closes)."""
    done = run_on_server(jack_server, WATCH_CHURN, jack_server, "150", timeout_s=120)
    assert done.returncode == 0, done.stderr
    word, opened, disconnections, recorded = done.stdout.split()
    assert word == "done" and int(opened) > 100, done.stdout
    if native_capture.disconnection_recorder() is not None:
        assert recorded == "True" and int(disconnections) > 0  # it heard the churn


def test_the_jack_watch_hears_its_server_stop_through_the_c_recorder(tmp_path: Path) -> None:
    """The watch's shutdown callback is C where built (a Python one, cancelled inside by
    ``jack_client_close`` as the server died, once left the process waiting for the GIL)."""
    require_jackd()
    name = f"lpw{os.getpid()}"
    server = start_jackd(name)
    script = (
        "import time\n"
        "from livepitch import jack_watch, native_capture\n"
        "watch = jack_watch.JackServerWatch('livepitch-watch')\n"
        "print('watching', native_capture.shutdown_recorder() is not None, flush=True)\n"
        "deadline = time.monotonic() + 20\n"
        "while not watch.stopped and time.monotonic() < deadline:\n"
        "    time.sleep(0.01)\n"
        "print('stopped', watch.stopped, flush=True)\n"
        "watch.close()\n"
    )
    watcher = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=REPO,
        env=dict(os.environ, JACK_DEFAULT_SERVER=name, JACK_NO_START_SERVER="1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert watcher.stdout is not None
        first = watcher.stdout.readline().split()
        stop_process(server)
        rest, _ = watcher.communicate(timeout=30)
    finally:
        stop_process(watcher)
        stop_process(server)
    assert first[0] == "watching" and rest.split() == ["stopped", "True"], (first, rest)
    if native_capture.disconnection_recorder() is not None:
        assert first[1] == "True"


def restart_under_livepitch(server: subprocess.Popen[bytes], name: str) -> subprocess.Popen[bytes]:
    """Let livepitch run for 3 s, then stop the JACK server ``name`` and start it again."""
    time.sleep(3.0)
    stop_process(server)
    time.sleep(1.0)
    return start_jackd(name)


def test_livepitch_recovers_after_the_jack_server_restarts(tmp_path: Path) -> None:
    require_jackd()
    name = f"lpr{os.getpid()}"
    server = start_jackd(name)
    livepitch = start_livepitch(name, tmp_path)
    try:
        server = restart_under_livepitch(server, name)
        wav = write_wav(
            tmp_path / "melody.wav", sequence([(0.5, 0.5, 62), (1.2, 0.5, 69)], 2.2, rate_hz=RATE_HZ)
        )
        harness = start_harness(name, wav, tmp_path / "report.json", listen_s=1.0)
        wait_playing(harness)
        assert harness.wait(60) == 0
        code = stop_process(livepitch)
    finally:
        stop_process(livepitch)
        stop_process(server)
    log = (tmp_path / "livepitch.log").read_text()
    assert code == 0, log
    assert "audio input lost" in log and "audio input back" in log
    events = note_events(read_report(tmp_path / "report.json"))
    assert [note for _, _, note in held_notes(events)] == [62, 69]
    assert still_sounding(events) == set()


def waiting_on_jack(pid: int, timeout_s: float = 60.0) -> None:
    """Until ``pid``'s main thread waits for a reply on a socket (the JACK server's, here)."""
    deadline = time.monotonic() + timeout_s
    wchan = Path(f"/proc/{pid}/task/{pid}/wchan")
    while time.monotonic() < deadline:
        if wchan.read_text().strip() == "0":  # the kernel does not say here: a generous wait
            time.sleep(8.0)
            return
        if "unix_stream_read" in wchan.read_text():
            time.sleep(0.3)
            return
        time.sleep(0.05)
    raise AssertionError(f"livepitch never waited on the JACK server ({wchan.read_text()!r})")


@pytest.mark.skipif(not abort_restart.available(), reason="livepitch._abort_restart not built")
def test_an_abort_inside_portaudio_starts_livepitch_again_and_it_plays(tmp_path: Path) -> None:
    """PortAudio aborts the process when an assert fails as the JACK server dies under it. Here
    the abort comes while PortAudio starts up against a server that does not answer (stopped
    with SIGSTOP): livepitch is executed again (afresh: it had not played yet), inherits none
    of the old process's JACK sockets (they kept its clients as zombies and the server stopped
    answering) and has its stop signal unblocked, and once the server runs again it plays the
    melody under its usual port name and stops cleanly."""
    require_jackd()
    name = f"lpa{os.getpid()}"
    server = start_jackd(name)
    server.send_signal(signal.SIGSTOP)
    livepitch = start_livepitch(name, tmp_path, "--bends", "none")
    try:
        waiting_on_jack(livepitch.pid)
        livepitch.send_signal(signal.SIGABRT)
        time.sleep(1.0)
        server.send_signal(signal.SIGCONT)
        assert livepitch.poll() is None, (tmp_path / "livepitch.log").read_text()
        wav = write_wav(
            tmp_path / "melody.wav", sequence([(0.5, 0.5, 62), (1.2, 0.5, 69)], 2.2, rate_hz=RATE_HZ)
        )
        harness = start_harness(name, wav, tmp_path / "report.json", listen_s=1.0)
        log = play_and_stop(livepitch, harness, tmp_path)
    finally:
        server.send_signal(signal.SIGCONT)
        stop_process(livepitch)
        stop_process(server)
    # (one that had not played yet starts afresh, as it was started)
    restarted = log.index("restarted: PortAudio aborted livepitch")
    assert "audio in:" in log[restarted:] and "(restart" not in log, log
    events = note_events(read_report(tmp_path / "report.json"))
    assert [note for _, _, note in held_notes(events)] == [62, 69]
    assert still_sounding(events) == set()


def test_a_replays_jack_midi_port_comes_back_after_the_server_restarts(tmp_path: Path) -> None:
    """With a file for audio nothing else notices that JACK went away: sends into the dead
    port raise nothing. The port is found lost and opened again on the new server."""
    require_jackd()
    name = f"lpm{os.getpid()}"
    server = start_jackd(name)
    notes = [(0.5 + i, 0.5, 60 + i % 12) for i in range(20)]
    wav = write_wav(tmp_path / "long.wav", sequence(notes, 21.0, rate_hz=RATE_HZ))
    livepitch = start_livepitch(name, tmp_path, "--input-file", str(wav))
    try:
        server = restart_under_livepitch(server, name)
        deadline = time.monotonic() + 20.0
        ports = ""
        while "livepitch:BasicPitch Out" not in ports and time.monotonic() < deadline:
            time.sleep(0.5)
            ports = subprocess.run(["jack_lsp", "-s", name], capture_output=True, text=True).stdout
        code = stop_process(livepitch)
    finally:
        stop_process(livepitch)
        stop_process(server)
    log = (tmp_path / "livepitch.log").read_text()
    assert code == 0, log
    assert "the JACK server stopped" in log and "open again" in log, log
    assert "livepitch:BasicPitch Out" in ports
    # the replay went on undisturbed: closing the dead port's client had held the GIL for a
    # second (drops), and libjack's own messages are not let through
    assert "behind the audio" not in log, log
    if native_capture.available():
        assert all(line.startswith("livepitch: ") for line in log.splitlines()), log


def test_portaudio_ending_after_libjack_freed_its_client_exits_with_the_code(tmp_path: Path) -> None:
    """Once libjack has seen its server die, the next client opened in the process (here one
    for MIDI, failing) frees every client still open, PortAudio's among them; PortAudio's end
    at exit then faulted in jack_deactivate, and livepitch, about to exit 7, died by SIGSEGV
    (race soak passes 6 and 7). It exits with its code."""
    require_jackd()
    from livepitch import abort_restart

    if not abort_restart.available():
        pytest.skip("livepitch._abort_restart not built")
    name = f"lpf{os.getpid()}"
    server = start_jackd(name)
    script = textwrap.dedent(
        f"""
        import ctypes, ctypes.util, sys, time
        from livepitch import audio_device, cli
        print([d.host_api for d in audio_device.list_input_devices()], flush=True)  # PortAudio's client
        sys.stdin.readline()  # the server is gone
        time.sleep(1.0)  # (libjack notices)
        lib = ctypes.CDLL(ctypes.util.find_library("jack"))
        lib.jack_client_open.restype = ctypes.c_void_p
        lib.jack_client_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p]
        status = ctypes.c_int()
        print(lib.jack_client_open(b"midi", 1 | 4, ctypes.byref(status), {name.encode()!r}), flush=True)
        cli._end_audio_system(7)
        print("not reached")
        """
    )
    env = dict(os.environ, JACK_DEFAULT_SERVER=name, JACK_NO_START_SERVER="1")
    child = subprocess.Popen(
        [sys.executable, "-c", script],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        assert "JACK" in child.stdout.readline()
        stop_process(server)
        child.stdin.write("\n")
        child.stdin.flush()
        code = child.wait(30)
    finally:
        stop_process(child)
        stop_process(server)
    assert child.stdout.read().split() == ["None"]  # the MIDI client's open failed
    assert code == 7


def test_a_rate_the_jack_server_does_not_run_at_names_the_one_it_does(
    jack_server: str, tmp_path: Path
) -> None:
    livepitch = start_livepitch(jack_server, tmp_path, "--sample-rate", "12345")
    try:
        code = livepitch.wait(60)
    finally:
        stop_process(livepitch)
    log = (tmp_path / "livepitch.log").read_text()
    assert code == 6, log
    error = log.splitlines()[-1]
    assert error.startswith("livepitch: error: cannot open system") and "_StreamBase" not in error, log
    assert error.endswith(f"Invalid sample rate [PaErrorCode -9997]; system runs at {RATE_HZ} Hz"), log
