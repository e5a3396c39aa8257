"""The live daemon end to end through a real JACK server: note-on latency, CPU and memory.

    python benchmarks/bench_live_jack.py [--minutes 10] [--repeats 3] [--skip-long] [--jack-realtime]
        [--port-max N]
        [--json PATH] [--keep DIR]

Everything runs on jackd's dummy backend (no sound card needed), each phase on its own named
server (``jackd -n lpb<pid><phase> -r -d dummy -r 48000 -p 512``; ``--port-max N`` adds ``-p N``
before ``-d``; with ``--jack-realtime``,
``-R -P 70`` instead of ``-r``; other servers are left alone). livepitch runs as
``python -m livepitch --host-api JACK --midi-api jack --channel 1 --quiet`` with default
settings, and a harness process plays a WAV into its capture port and
records its MIDI with the JACK frame each message arrived in — the same clock as the audio it
plays. The harness is ``tests/jack_harness.py``, which logs the frame every block went out
in: when it misses a cycle (an xrun), the rest of the file goes out a period later than
``start_frame + i``; the tables give the latency on the logged timeline and, for comparison,
on the nominal one.

1. Test signal: harmonic tones (``tests.synth``) with exact onsets, 40 single notes (MIDI
   40-84) and 4 chords over ~38 s at 48 kHz.
2. Latency, idle. End-to-end latency of a note = its note-on's arrival frame minus the frame
   the harness played its onset in (from its block log), / 48000. Each true note is matched to the first unmatched
   note-on of the same pitch arriving within [onset - 30 ms, onset + 400 ms]; other note-ons
   are extras. Algorithmic latency of the same note = ``emitted_s`` - onset of its note-on in
   ``livepitch transcribe WAV --stream --events-csv`` (the engine on the same WAV with a
   virtual clock: model lookahead, hop, tracker probation). Overhead = end-to-end -
   algorithmic, per note (capture period, ring, worker poll, inference time, MIDI delivery at
   the next period, and the hop phase, which differs between a file run and a live run).
   The daemon's own events CSV gives a second view: its clock starts at its first captured
   sample; the offset to the harness clock is estimated as the median over notes of
   (file ``time_s`` - live ``time_s``), which puts live ``emitted_s`` on the harness clock:
   live engine delay = aligned ``emitted_s`` - onset, pipeline overhead = arrival - aligned
   ``emitted_s`` (no hop-phase term; a constant error of a few ms from the estimate).
3. Latency, loaded: the same with a CPU burner (``python -c "while True: pass"``) running.
   Each condition runs ``--repeats`` sessions (3), idle and loaded alternating; the table shows
   every session and the notes of all sessions pooled (the targets use the pooled numbers).
4. Baseline: the harness against a do-nothing JACK client with livepitch's port names (xruns
   this machine produces without livepitch), and jackd's log of which client was late at
   each xrun, per session. In-process: how much audio the soxr stream resampler holds back
   and how long a model window takes, block by block as the daemon's worker runs them.
5. Long run (``--minutes``): a WAV cycling through the test signal and real recordings
   (guitar, voice, piano from the shared data, resampled to 48 kHz with soxr), 16-bit, played
   once; livepitch's VmRSS (and RssAnon, RssFile, RssShmem: JACK's shared memory) and CPU
   time sampled from /proc every 10 s; its session line
   (CPU, peak RSS, overflows, drops) parsed at exit; end-to-end latency per test-signal cycle.

Prints markdown for ``docs/benchmarks.md`` on stdout, progress on stderr; exit 0, or 2 when
jackd is missing.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

import numpy as np
import numpy.typing as npt
import soundfile
import soxr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.synth

from datasets import data_dir

from tests.synth import sequence

REPO = Path(__file__).resolve().parents[1]
RATE_HZ = 48000
PERIOD_FRAMES = 512
JACK_REALTIME = False
"""Whether jackd runs realtime (``--jack-realtime``)."""
JACK_RT_PRIORITY = 70
EARLY_S = 0.030
LATE_S = 0.400
OVERHEAD_BUDGET_MS = 25.0
RSS_TARGET_MB = 150.0
PORT_MAX_ARGV: list[str] = []
"""jackd's ``-p PORTS`` (``--port-max``), if given."""
SAMPLE_EVERY_S = 10.0
SESSION_RE = re.compile(
    r"session: (?P<wall_s>[\d.]+) s, (?P<notes>\d+) notes, (?P<overflows>\d+) overflows, "
    r"(?P<drops>\d+) drops, (?P<recoveries>\d+) recoveries, CPU (?P<cpu_s>[\d.]+) s "
    r"\((?P<cpu_pct>\d+)% of one core\), peak RSS (?P<peak_rss_mb>\d+) MB"
    r"(?:.*?; (?P<device_overflows>\d+) input overflows flagged by the audio system)?"
)
REAL_RECORDINGS = (
    "guitar_guitarset/00_BN1-129-Eb_comp_mic.wav",
    "voice_vocadito/vocadito_1.wav",
    "piano_madmom/stereo_sample.wav",
)

Note = tuple[float, int]
"""(seconds, MIDI pitch): a true onset, or a note-on's arrival / emission time."""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# test signal and matching


def signal_notes(seed: int = 4) -> list[tuple[float, float, int]]:
    """(onset_s, duration_s, pitch): 40 single notes over MIDI 40-84 and 4 chords, gaps >= 0.3 s."""
    rng = np.random.default_rng(seed)
    singles = [int(p) for p in rng.permutation(np.arange(40, 85))[:40]]
    chords = [(43, 47, 50), (55, 59, 62, 67), (60, 64, 67), (69, 72, 76)]
    notes: list[tuple[float, float, int]] = []
    t = 0.5
    for i, pitch in enumerate(singles):
        onset = round(t + float(rng.uniform(0.0, 0.05)), 4)
        notes.append((onset, 0.45, pitch))
        t += 0.8
        if i % 10 == 9:
            notes.extend((round(t, 4), 0.6, p) for p in chords[i // 10])
            t += 1.1
    return notes


def synth_signal() -> tuple[npt.NDArray[np.float32], list[Note]]:
    notes = signal_notes()
    total_s = max(onset + duration for onset, duration, _ in notes) + 1.0
    audio = sequence([(o, d, float(p)) for o, d, p in notes], total_s, rate_hz=RATE_HZ)
    return audio, sorted((onset, pitch) for onset, _, pitch in notes)


def match(truth: Sequence[Note], ons: Sequence[Note]) -> tuple[list[int | None], list[int]]:
    """For each true note the index of its note-on in ``ons`` (or None); the unmatched note-ons.

    A true note takes the first not yet taken note-on of its pitch within
    [onset - EARLY_S, onset + LATE_S]; true notes are taken in onset order.
    """
    order = sorted(range(len(ons)), key=lambda j: ons[j][0])
    taken: set[int] = set()
    found: list[int | None] = []
    for onset, pitch in truth:
        hit = None
        for j in order:
            t, p = ons[j]
            if j in taken or p != pitch or t < onset - EARLY_S:
                continue
            if t > onset + LATE_S:
                break
            hit = j
            break
        if hit is not None:
            taken.add(hit)
        found.append(hit)
    return found, [j for j in order if j not in taken]


def pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


# ---------------------------------------------------------------------------------------------
# processes


@dataclass
class Session:
    """livepitch's session line at exit."""

    wall_s: float
    notes: int
    overflows: int
    """Blocks livepitch's ring could not take (audio livepitch lost)."""
    drops: int
    recoveries: int
    cpu_s: float
    cpu_pct: float
    peak_rss_mb: float
    device_overflows: int = 0
    """Callbacks PortAudio flagged as input overflows: its JACK backend flags the callback after
    any xrun of the server, whoever was late (counted in ``overflows`` before the daemon told
    them apart)."""


def parse_session(log_text: str) -> Session | None:
    found = SESSION_RE.search(log_text)
    if found is None:
        return None
    g = found.groupdict()
    wall_s, cpu_s = float(g["wall_s"]), float(g["cpu_s"])
    return Session(
        wall_s=wall_s,
        notes=int(g["notes"]),
        overflows=int(g["overflows"]),
        drops=int(g["drops"]),
        recoveries=int(g["recoveries"]),
        cpu_s=cpu_s,
        cpu_pct=100.0 * cpu_s / max(wall_s, 1e-9),
        peak_rss_mb=float(g["peak_rss_mb"]),
        device_overflows=int(g["device_overflows"] or 0),
    )


def stop_process(process: subprocess.Popen[Any], timeout_s: float = 15.0) -> int:
    """SIGTERM, wait; SIGKILL if it will not go. Only ever our own child."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        log(f"pid {process.pid} ignored SIGTERM for {timeout_s:.0f} s: killing it")
        process.kill()
        return process.wait()


class Children:
    """Every process this benchmark starts; ``stop_all`` stops the ones still running, newest first."""

    def __init__(self) -> None:
        self._running: list[tuple[str, subprocess.Popen[Any]]] = []

    def start(self, name: str, argv: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
        process: subprocess.Popen[Any] = subprocess.Popen(argv, **kwargs)
        self._running.append((name, process))
        log(f"started {name} (pid {process.pid})")
        return process

    def stop(self, process: subprocess.Popen[Any], timeout_s: float = 15.0) -> int:
        code = stop_process(process, timeout_s)
        self._running = [(n, p) for n, p in self._running if p is not process]
        return code

    def stop_all(self) -> None:
        for name, process in reversed(self._running):
            if process.poll() is None:
                log(f"stopping {name} (pid {process.pid})")
            stop_process(process)
        self._running = []


def jackd_scheduling_argv() -> list[str]:
    """``-r`` (no realtime, as in CI) or, with ``--jack-realtime``, ``-R -P 70`` (SCHED_FIFO
    for jackd and, through it, every client's process thread: how musicians run JACK)."""
    return ["-R", "-P", str(JACK_RT_PRIORITY)] if JACK_REALTIME else ["-r"]


def rtmidi_libjack() -> str:
    """Which libjack python-rtmidi links: the system's (one copy of JACK's shared memory in the
    daemon) or one bundled in its wheel (PortAudio's system libjack maps it a second time)."""
    try:
        import rtmidi
    except ImportError:
        return "python-rtmidi not installed"
    try:
        linked = subprocess.run(["ldd", rtmidi._rtmidi.__file__], capture_output=True, text=True).stdout
    except OSError as err:
        return f"unknown ({err})"
    line = next((item.strip() for item in linked.splitlines() if "libjack" in item), "no libjack")
    return f"`{line.split(' (')[0]}`"


def start_jackd(children: Children, name: str, log_file: IO[str]) -> subprocess.Popen[Any]:
    argv = ["jackd", "-n", name, *jackd_scheduling_argv(), *PORT_MAX_ARGV, "-d", "dummy", "-r", str(RATE_HZ)]
    argv += ["-p", str(PERIOD_FRAMES)]
    process = children.start(f"jackd {name}", argv, stdout=log_file, stderr=subprocess.STDOUT)
    subprocess.run(["jack_wait", "-s", name, "-w", "-t", "10"], check=True, capture_output=True)
    return process


@dataclass
class JackLog:
    """What jackd logged about xruns: which clients were not finished in time, how often."""

    late_clients: dict[str, int]
    driver_late: int
    """``JackTimedDriver::Process XRun``: the server's own cycle started late."""


def read_jack_log(path: Path) -> JackLog:
    text = path.read_text(errors="replace")
    return JackLog(
        late_clients=dict(Counter(re.findall(r"client = (\S+) was not finished", text))),
        driver_late=len(re.findall(r"JackTimedDriver::Process XRun", text)),
    )


NULL_CLIENT = """
import signal, sys, threading
import jack
client = jack.Client("PortAudio", no_start_server=True, servername=sys.argv[1])
client.inports.register("in_0")
midi = client.midi_outports.register("BasicPitch Out")
client.set_process_callback(lambda frames: midi.clear_buffer())
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
client.activate()
stop.wait()
client.deactivate()
client.close()
"""
"""A JACK client with livepitch's port names that does nothing: the machine's own xruns."""


LIVEPITCH_FLAGS: list[str] = []
"""Extra flags for every livepitch the benchmark starts (``--livepitch-flags``)."""


def start_livepitch(
    children: Children, server: str, events_csv: Path, log_file: IO[str]
) -> subprocess.Popen[Any]:
    env = dict(os.environ, JACK_DEFAULT_SERVER=server, JACK_NO_START_SERVER="1")
    argv = [
        sys.executable, "-m", "livepitch", "--host-api", "JACK", "--midi-api", "jack", "--channel", "1",
        "--quiet", "--events-csv", str(events_csv), *LIVEPITCH_FLAGS,
    ]  # fmt: skip
    return children.start(
        "livepitch", argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=log_file, text=True
    )


def run_harness(
    children: Children, server: str, wav: Path, report: Path, duration_s: float, on_playing: Any = None
) -> dict[str, Any]:
    argv = [
        sys.executable, str(REPO / "tests" / "jack_harness.py"), "--server", server, "--wav", str(wav),
        "--capture", "PortAudio.*in_0", "--midi", "BasicPitch Out", "--report", str(report),
        "--listen-s", "1.0", "--wait-ports-s", "60",
    ]  # fmt: skip
    harness = children.start(
        "harness", argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert harness.stdout is not None and harness.stderr is not None
    line = harness.stdout.readline()
    if line.strip() != "playing":
        harness.wait(30)
        raise RuntimeError(f"the harness did not start playing: {line!r} {harness.stderr.read()}")
    if on_playing is not None:
        on_playing()
    code = harness.wait(duration_s + 90.0)
    children.stop(harness)
    if code != 0:
        raise RuntimeError(f"the harness failed ({code}): {harness.stderr.read()}")
    result: dict[str, Any] = json.loads(report.read_text())
    return result


def played_s(report: dict[str, Any], onsets_s: Sequence[float]) -> list[float]:
    """When each file time went out, in s after ``start_frame``, from the harness's block log."""
    blocks = np.asarray(report["blocks"], dtype=np.int64).reshape(-1, 2)
    rate = int(report["rate"])
    positions = np.round(np.asarray(onsets_s, dtype=np.float64) * rate).astype(np.int64)
    index = np.clip(np.searchsorted(blocks[:, 1], positions, side="right") - 1, 0, blocks.shape[0] - 1)
    frames = blocks[index, 0] + (positions - blocks[index, 1])
    return [float(v) for v in (frames - int(report["start_frame"])) / rate]


@dataclass
class Sample:
    """One look at a process in /proc: memory in MB, CPU time (utime + stime) in seconds."""

    t_s: float
    rss_mb: float
    anon_mb: float
    file_mb: float
    shmem_mb: float
    hwm_mb: float
    """VmHWM: the peak RSS so far (what the session line's peak RSS reports)."""
    jack_maps: int
    """How many mappings of JACK's shared memory (/dev/shm/jack-*) the process has."""
    cpu_s: float

    @property
    def private_mb(self) -> float:
        """RSS without shared memory (JACK's segments): the process's own anonymous + file pages."""
        return self.anon_mb + self.file_mb


class Sampler:
    """A thread sampling a process's VmRSS (and its parts) and CPU time from /proc."""

    def __init__(self, pid: int, every_s: float) -> None:
        self.pid = pid
        self.every_s = every_s
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._t0 = 0.0

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()

    def sample(self) -> None:
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
            stat = Path(f"/proc/{self.pid}/stat").read_text()
        except OSError:
            return
        kb = {
            line.split(":")[0]: int(line.split()[1])
            for line in status.splitlines()
            if line.startswith(("VmRSS:", "RssAnon:", "RssFile:", "RssShmem:", "VmHWM:"))
        }
        try:
            maps = Path(f"/proc/{self.pid}/maps").read_text()
        except OSError:
            maps = ""
        big_jack_maps = 0
        for line in maps.splitlines():
            if "/dev/shm/jack-" in line:
                low, high = line.split()[0].split("-")
                big_jack_maps += int(high, 16) - int(low, 16) > 1 << 20
        fields = stat.rsplit(")", 1)[1].split()
        cpu_s = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        self.samples.append(
            Sample(
                t_s=time.monotonic() - self._t0,
                rss_mb=kb.get("VmRSS", 0) / 1024.0,
                anon_mb=kb.get("RssAnon", 0) / 1024.0,
                file_mb=kb.get("RssFile", 0) / 1024.0,
                shmem_mb=kb.get("RssShmem", 0) / 1024.0,
                hwm_mb=kb.get("VmHWM", 0) / 1024.0,
                jack_maps=big_jack_maps,
                cpu_s=cpu_s,
            )
        )

    def _run(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self.every_s):
                return


def machine_busy() -> tuple[float, float, float]:
    """(busy, steal, total) jiffies of all CPUs from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    idle = values[3] + values[4]
    return float(sum(values) - idle), float(values[7]), float(sum(values))


@contextmanager
def busy_fraction(into: dict[str, float]) -> Iterator[None]:
    """Puts into ``into`` how busy all CPUs were meanwhile (% of all cores; steal included and apart)."""
    busy0, steal0, total0 = machine_busy()
    try:
        yield
    finally:
        busy1, steal1, total1 = machine_busy()
        total = max(total1 - total0, 1.0)
        into["machine_busy_pct"] = 100.0 * (busy1 - busy0) / total
        into["steal_pct"] = 100.0 * (steal1 - steal0) / total


# ---------------------------------------------------------------------------------------------
# event files


def note_ons_from_report(report: dict[str, Any]) -> list[Note]:
    """Arrival (s after playback started, on the JACK clock) and pitch of every note-on."""
    start, rate = int(report["start_frame"]), int(report["rate"])
    ons = []
    for frame, data in report["midi"]:
        if len(data) >= 3 and data[0] & 0xF0 == 0x90 and data[2] > 0:
            ons.append(((int(frame) - start) / rate, int(data[1])))
    return ons


def note_ons_from_csv(path: Path) -> list[tuple[float, float, int]]:
    """(time_s, emitted_s, pitch) of every note_on row of an events CSV, in file order."""
    with open(path, newline="", encoding="utf-8") as handle:
        return [
            (float(row["time_s"]), float(row["emitted_s"]), int(row["pitch"]))
            for row in csv.DictReader(handle)
            if row["kind"] == "note_on"
        ]


def file_mode_latency(wav: Path, truth: Sequence[Note], work: Path) -> tuple[list[float | None], int]:
    """Per true note, ``emitted_s`` - onset in ``transcribe --stream`` (None if unmatched); extras."""
    events = work / "file_events.csv"
    subprocess.run(
        [
            sys.executable, "-m", "livepitch", "transcribe", str(wav), "--stream", "--events-csv", str(events),
            "-o", str(work / "file.mid"), "-q", *LIVEPITCH_FLAGS,
        ],
        check=True, cwd=REPO,
    )  # fmt: skip
    rows = note_ons_from_csv(events)
    found, extra = match(truth, [(emitted, pitch) for _, emitted, pitch in rows])
    latencies = [
        None if j is None else rows[j][1] - onset for j, (onset, _) in zip(found, truth, strict=True)
    ]
    return latencies, len(extra)


def file_mode_onsets(work: Path, truth: Sequence[Note]) -> list[float | None]:
    """The file run's ``time_s`` (engine's onset estimate) of each true note's note-on."""
    rows = note_ons_from_csv(work / "file_events.csv")
    found, _ = match(truth, [(emitted, pitch) for _, emitted, pitch in rows])
    return [None if j is None else rows[j][0] for j in found]


# ---------------------------------------------------------------------------------------------
# the latency runs


@dataclass
class LatencyRun:
    label: str
    notes: int
    matched: int
    missed: int
    extra: int
    e2e_ms: list[float]
    algorithmic_ms: list[float]
    overhead_ms: list[float]
    xruns: int
    jack: JackLog
    session: Session | None
    machine: dict[str, float]
    samples: list[Sample]
    burner_cpu_pct: float | None = None
    clock_offset_s: float | None = None
    live_engine_ms: list[float] = field(default_factory=list)
    live_overhead_ms: list[float] = field(default_factory=list)
    missed_notes: list[Note] = field(default_factory=list)
    extra_notes: list[Note] = field(default_factory=list)
    nominal_e2e_ms: list[float] = field(default_factory=list)
    """End-to-end latency as tests/jack_harness.py's timeline would give it (onset at start_frame + i)."""
    harness_missed_cycles: int = 0
    harness_slip_ms: float = 0.0
    """How late the last onsets went out against that timeline, because of missed cycles."""


@dataclass
class Played:
    """One session: jackd, livepitch (or the null client), the harness playing a WAV."""

    report: dict[str, Any]
    jack: JackLog
    machine: dict[str, float]
    log_text: str = ""
    samples: list[Sample] = field(default_factory=list)
    burner_cpu_pct: float | None = None


def play(
    phase: str, wav: Path, work: Path, client: str, loaded: bool = False, every_s: float = 5.0
) -> Played:
    """Start a fresh named jackd, ``client`` ("livepitch" or "null"), maybe a CPU burner; play ``wav``."""
    children = Children()
    server = f"lpb{os.getpid()}{phase}"
    jack_log, log_path = work / f"{phase}.jackd.log", work / f"{phase}.livepitch.log"
    machine: dict[str, float] = {}
    burner_cpu: float | None = None
    try:
        with (
            open(jack_log, "w", encoding="utf-8") as jack_file,
            open(log_path, "w", encoding="utf-8") as log_file,
            busy_fraction(machine),
        ):
            start_jackd(children, server, jack_file)
            burner, burner_t0 = None, time.monotonic()
            if loaded:
                burner = children.start("CPU burner", [sys.executable, "-c", "while True: pass"])
            if client == "livepitch":
                process = start_livepitch(children, server, work / f"{phase}.events.csv", log_file)
            else:
                process = children.start("null client", [sys.executable, "-c", NULL_CLIENT, server])
            sampler = Sampler(process.pid, every_s)
            duration_s = soundfile.info(str(wav)).duration
            report = run_harness(children, server, wav, work / f"{phase}.json", duration_s, sampler.start)
            sampler.stop()
            code = children.stop(process)
            if burner is not None:
                burner_cpu = 100.0 * process_cpu_s(burner.pid) / (time.monotonic() - burner_t0)
                children.stop(burner)
        if code != 0:
            raise RuntimeError(f"{client} exited {code}: {log_path.read_text()}")
    finally:
        children.stop_all()
    return Played(report, read_jack_log(jack_log), machine, log_path.read_text(), sampler.samples, burner_cpu)


def process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def latency_run(
    label: str,
    phase: str,
    wav: Path,
    truth: Sequence[Note],
    file_algo: Sequence[float | None],
    file_onsets: Sequence[float | None],
    work: Path,
    loaded: bool,
) -> LatencyRun:
    played = play(phase, wav, work, "livepitch", loaded)
    session = parse_session(played.log_text)
    if session is None:
        log(f"no session line in livepitch's log:\n{played.log_text}")
    arrivals = note_ons_from_report(played.report)
    played_at = played_s(played.report, [onset for onset, _ in truth])
    found, extra = match([(t, pitch) for t, (_, pitch) in zip(played_at, truth, strict=True)], arrivals)
    e2e, algo, overhead, nominal = [], [], [], []
    for j, (onset, _), t, a in zip(found, truth, played_at, file_algo, strict=True):
        if j is None or a is None:
            continue
        e2e.append(1000.0 * (arrivals[j][0] - t))
        nominal.append(1000.0 * (arrivals[j][0] - onset))
        algo.append(1000.0 * a)
        overhead.append(e2e[-1] - algo[-1])
    result = LatencyRun(
        label=label,
        notes=len(truth),
        matched=sum(j is not None for j in found),
        missed=sum(j is None for j in found),
        extra=len(extra),
        e2e_ms=e2e,
        algorithmic_ms=algo,
        overhead_ms=overhead,
        xruns=int(played.report["xruns"]),
        jack=played.jack,
        session=session,
        machine=played.machine,
        samples=played.samples,
        burner_cpu_pct=played.burner_cpu_pct,
        missed_notes=[note for j, note in zip(found, truth, strict=True) if j is None],
        extra_notes=[arrivals[j] for j in extra],
        nominal_e2e_ms=nominal,
        harness_missed_cycles=int(played.report["missed_cycles"]),
        harness_slip_ms=max(1000.0 * (t - onset) for t, (onset, _) in zip(played_at, truth, strict=True)),
    )
    # the daemon's own events CSV, on its own clock, aligned through the onset estimates
    live_rows = note_ons_from_csv(work / f"{phase}.events.csv")
    if [p for _, _, p in live_rows] != [p for _, p in arrivals]:
        log(f"{label}: the live events CSV and the MIDI received differ; no clock alignment")
        return result
    # (when the onset went out, when the note-on arrived, live time_s, live emitted_s, file bias)
    pairs = [
        (t, arrivals[j][0], live_rows[j][0], live_rows[j][1], file_time - onset)
        for j, (onset, _), t, file_time in zip(found, truth, played_at, file_onsets, strict=True)
        if j is not None and file_time is not None
    ]
    if pairs:
        offset = float(np.median([t + bias - live_time for t, _, live_time, _, bias in pairs]))
        result.clock_offset_s = offset
        result.live_engine_ms = [1000.0 * (emitted + offset - t) for t, _, _, emitted, _ in pairs]
        result.live_overhead_ms = [
            1000.0 * (arrival - emitted - offset) for _, arrival, _, emitted, _ in pairs
        ]
    return result


def pool(runs: Sequence[LatencyRun], label: str) -> LatencyRun:
    """Several sessions of one condition as one: notes, latencies and counters together."""
    sessions = [r.session for r in runs if r.session is not None]
    session = None
    if sessions:
        wall_s, cpu_s = sum(s.wall_s for s in sessions), sum(s.cpu_s for s in sessions)
        session = Session(
            wall_s=wall_s,
            notes=sum(s.notes for s in sessions),
            overflows=sum(s.overflows for s in sessions),
            drops=sum(s.drops for s in sessions),
            recoveries=sum(s.recoveries for s in sessions),
            cpu_s=cpu_s,
            cpu_pct=100.0 * cpu_s / max(wall_s, 1e-9),
            peak_rss_mb=max(s.peak_rss_mb for s in sessions),
            device_overflows=sum(s.device_overflows for s in sessions),
        )
    late: Counter[str] = Counter()
    for r in runs:
        late.update(r.jack.late_clients)
    return LatencyRun(
        label=label,
        notes=sum(r.notes for r in runs),
        matched=sum(r.matched for r in runs),
        missed=sum(r.missed for r in runs),
        extra=sum(r.extra for r in runs),
        e2e_ms=[v for r in runs for v in r.e2e_ms],
        algorithmic_ms=[v for r in runs for v in r.algorithmic_ms],
        overhead_ms=[v for r in runs for v in r.overhead_ms],
        xruns=sum(r.xruns for r in runs),
        jack=JackLog(dict(late), sum(r.jack.driver_late for r in runs)),
        session=session,
        machine={
            key: float(np.mean([r.machine.get(key, float("nan")) for r in runs]))
            for key in ("machine_busy_pct", "steal_pct")
        },
        samples=[],
        live_engine_ms=[v for r in runs for v in r.live_engine_ms],
        live_overhead_ms=[v for r in runs for v in r.live_overhead_ms],
        nominal_e2e_ms=[v for r in runs for v in r.nominal_e2e_ms],
        harness_missed_cycles=sum(r.harness_missed_cycles for r in runs),
        harness_slip_ms=max(r.harness_slip_ms for r in runs),
    )


@dataclass
class Baseline:
    xruns: int
    jack: JackLog
    machine: dict[str, float]
    harness_missed_cycles: int


def baseline_run(wav: Path, work: Path) -> Baseline:
    """The harness against a client that does nothing: xruns this machine makes without livepitch."""
    played = play("n", wav, work, "null")
    return Baseline(
        int(played.report["xruns"]), played.jack, played.machine, int(played.report["missed_cycles"])
    )


# ---------------------------------------------------------------------------------------------
# where the overhead goes, measured in this process


@dataclass
class Components:
    quality: str
    """The daemon's default live resampler quality (``audio.resample_quality``)."""
    resampler_lag_ms: dict[str, tuple[float, float, float]]
    """Per soxr quality: min, mean, max over 256-frame blocks of the audio the stream holds back
    (48 kHz -> 22050 Hz); higher qualities return audio in bursts and hold it back meanwhile."""
    window_ms: tuple[float, float, float]
    """median, p95, max wall time of a block that ran a model window (feed: model + tracker)."""
    windows: int


def components_main(argv: Sequence[str]) -> int:
    """``bench_live_jack.py components OUT.json``: ``measure_components`` in a child process (whose
    model and buffers then never count in the benchmark process's peak RSS, see ``long_wav_main``)."""
    synth, _ = synth_signal()
    Path(argv[0]).write_text(json.dumps(asdict(measure_components(synth, list(argv[1:])))))
    return 0


def run_components(work: Path) -> Components:
    out = work / "components.json"
    subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "components", str(out), *LIVEPITCH_FLAGS], check=True
    )
    raw = json.loads(out.read_text())
    return Components(
        quality=str(raw["quality"]),
        resampler_lag_ms={q: (v[0], v[1], v[2]) for q, v in raw["resampler_lag_ms"].items()},
        window_ms=(raw["window_ms"][0], raw["window_ms"][1], raw["window_ms"][2]),
        windows=int(raw["windows"]),
    )


def measure_components(
    synth: npt.NDArray[np.float32], flags: Sequence[str] = (), block_frames: int = 256
) -> Components:
    """The live path's worker steps on the test signal, block by block, as the daemon runs them
    (with the daemon's settings for ``flags``)."""
    from livepitch.cli_options import build_parser
    from livepitch.cli_settings import daemon_settings_from_args
    from livepitch.engine import build_engine
    from livepitch.geometry import MODEL_RATE_HZ
    from livepitch.model_file import resolve_model_path
    from livepitch.onnx_model import BasicPitchModel
    from livepitch.resample_stream import DeviceToModel

    settings = daemon_settings_from_args(build_parser().parse_args(["run", *flags]))
    quality = str(getattr(settings.audio, "resample_quality", "HQ"))
    lags: dict[str, tuple[float, float, float]] = {}
    for q in ("QQ", "LQ", "HQ"):
        converter = DeviceToModel(RATE_HZ, 1, 0, q)
        consumed = produced = 0
        held: list[float] = []
        for start in range(0, synth.shape[0] - block_frames, block_frames):
            produced += converter.convert(synth[start : start + block_frames].reshape(-1, 1)).shape[0]
            consumed += block_frames
            if start >= RATE_HZ // 2:
                held.append(1000.0 * (consumed * MODEL_RATE_HZ / RATE_HZ - produced) / MODEL_RATE_HZ)
        lags[q] = (min(held), float(np.mean(held)), max(held))
    model = BasicPitchModel(
        resolve_model_path(settings.model.path), threads=settings.model.threads or 1, spin=False
    )
    engine = build_engine(model, settings)
    converter = DeviceToModel(RATE_HZ, 1, 0, quality)
    window_ms = []
    windows_before = 0
    for start in range(0, synth.shape[0] - block_frames, block_frames):
        block = synth[start : start + block_frames].reshape(-1, 1)
        t0 = time.perf_counter()
        engine.feed(converter.convert(block))
        elapsed_ms = 1000.0 * (time.perf_counter() - t0)
        # a model run: a window (window engine), or any published frame (incremental engine)
        windows = int(getattr(engine.frames, "windows_run", engine.frames.consumed_samples // 256))
        if windows > windows_before:
            window_ms.append(elapsed_ms)
        windows_before = windows
    return Components(
        quality=quality,
        resampler_lag_ms=lags,
        window_ms=(pct(window_ms, 50), pct(window_ms, 95), max(window_ms, default=float("nan"))),
        windows=len(window_ms),
    )


# ---------------------------------------------------------------------------------------------
# the long run


def real_segments() -> list[tuple[str, npt.NDArray[np.float32]]]:
    segments = []
    for relative in REAL_RECORDINGS:
        path = data_dir() / relative
        if not path.exists():
            log(f"{path} missing: the long run uses what is there")
            continue
        audio, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
        mono = audio.mean(axis=1).astype(np.float32)
        resampled = np.asarray(soxr.resample(mono, rate, RATE_HZ, quality="HQ"), dtype=np.float32)
        segments.append((relative, resampled))
    return segments


def long_signal(
    synth: npt.NDArray[np.float32], truth: Sequence[Note], seconds: float
) -> tuple[npt.NDArray[np.float32], list[list[Note]], list[str]]:
    """Test signal, a real recording, test signal, the next recording, ... cut to ``seconds``.

    Returns the audio, the true notes of each complete test-signal cycle (on the long file's
    clock) and the names of the segments in order.
    """
    gap = np.zeros(RATE_HZ // 2, dtype=np.float32)
    reals = real_segments()
    parts: list[npt.NDArray[np.float32]] = []
    cycles: list[list[Note]] = []
    names: list[str] = []
    position, k = 0, 0
    target = round(seconds * RATE_HZ)
    while position < target:
        start_s = position / RATE_HZ
        if start_s + synth.shape[0] / RATE_HZ <= seconds:
            cycles.append([(start_s + onset, pitch) for onset, pitch in truth])
        parts.extend([synth, gap])
        names.append("test signal")
        position += synth.shape[0] + gap.shape[0]
        if reals and position < target:
            name, audio = reals[k % len(reals)]
            k += 1
            parts.extend([audio, gap])
            names.append(name)
            position += audio.shape[0] + gap.shape[0]
    audio = np.concatenate(parts)[:target]
    peak = float(np.max(np.abs(audio)))
    if peak > 0.99:
        audio = audio * (0.99 / peak)
    return audio.astype(np.float32), cycles, names


@dataclass
class LongRun:
    minutes: float
    audio_s: float
    segments: list[str]
    session: Session | None
    xruns: int
    jack: JackLog
    machine: dict[str, float]
    samples: list[Sample]
    cycles: list[dict[str, float]]
    harness_missed_cycles: int


def long_wav_main(argv: Sequence[str]) -> int:
    """``bench_live_jack.py long-wav SECONDS WAV META.json``: write the long run's file and its notes.

    A child process does it so that the benchmark process never holds the long audio: on Linux
    a process's ``ru_maxrss`` (the session line's peak RSS) starts at the peak RSS of the
    process that spawned it (vfork + exec keep it), so a big parent inflates livepitch's figure.
    """
    seconds, wav, meta = float(argv[0]), Path(argv[1]), Path(argv[2])
    synth, truth = synth_signal()
    audio, cycles, names = long_signal(synth, truth, seconds)
    soundfile.write(str(wav), audio, RATE_HZ, subtype="PCM_16")
    meta.write_text(json.dumps({"audio_s": audio.shape[0] / RATE_HZ, "cycles": cycles, "names": names}))
    return 0


def long_run(minutes: float, work: Path) -> LongRun:
    wav, meta_path = work / "long.wav", work / "long_meta.json"
    subprocess.run(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "long-wav",
            str(minutes * 60.0),
            str(wav),
            str(meta_path),
        ],
        check=True,
    )
    meta = json.loads(meta_path.read_text())
    cycles: list[list[Note]] = [[(float(t), int(p)) for t, p in cycle] for cycle in meta["cycles"]]
    names: list[str] = meta["names"]
    log(f"long run: {meta['audio_s']:.0f} s of audio, {len(cycles)} test-signal cycles")
    played = play("l", wav, work, "livepitch", every_s=SAMPLE_EVERY_S)
    arrivals = note_ons_from_report(played.report)
    per_cycle = []
    for i, cycle in enumerate(cycles):
        played_at = played_s(played.report, [onset for onset, _ in cycle])
        found, _ = match([(t, pitch) for t, (_, pitch) in zip(played_at, cycle, strict=True)], arrivals)
        e2e = [1000.0 * (arrivals[j][0] - t) for j, t in zip(found, played_at, strict=True) if j is not None]
        per_cycle.append(
            {
                "cycle": float(i + 1),
                "start_s": cycle[0][0],
                "matched": float(len(e2e)),
                "notes": float(len(cycle)),
                "p50_ms": pct(e2e, 50),
                "p95_ms": pct(e2e, 95),
                "slip_ms": 1000.0 * (played_at[-1] - cycle[-1][0]),
            }
        )
    return LongRun(
        minutes=minutes,
        audio_s=float(meta["audio_s"]),
        segments=names,
        session=parse_session(played.log_text),
        xruns=int(played.report["xruns"]),
        jack=played.jack,
        machine=played.machine,
        samples=played.samples,
        cycles=per_cycle,
        harness_missed_cycles=int(played.report["missed_cycles"]),
    )


# ---------------------------------------------------------------------------------------------
# output


def fmt(value: float | None, digits: int = 0) -> str:
    if value is None or value != value:
        return "n/a"
    return f"{value:.{digits}f}"


def p50_p95(values: Sequence[float]) -> str:
    return f"{fmt(pct(values, 50))} / {fmt(pct(values, 95))}"


def late_text(jack: JackLog) -> str:
    late = ", ".join(f"{name} {count}" for name, count in sorted(jack.late_clients.items())) or "none"
    return f"{late}; server cycle late {jack.driver_late}"


def machine_text(machine: dict[str, float]) -> str:
    return f"{fmt(machine.get('machine_busy_pct'))} ({fmt(machine.get('steal_pct'), 1)} steal)"


def machine_lines() -> list[str]:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    jackd_version = subprocess.run(["jackd", "--version"], capture_output=True, text=True).stdout
    jack_line = next((line for line in jackd_version.splitlines() if "version" in line), "jackd")
    others = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout.splitlines()
    other_servers = [line for line in others if line.startswith("jackd ") and "lpb" not in line]
    load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    import onnxruntime

    return [
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- machine: {os.cpu_count()} cores (`nproc`), {model}, Linux {platform.release()}; "
        f"load average at start {load}; other JACK servers running: {len(other_servers)}",
        f"- Python {platform.python_version()}, onnxruntime {onnxruntime.__version__}, {jack_line.strip()}",
        f"- JACK: jackd2 dummy backend, "
        f"{'realtime (`-R -P 70`, SCHED_FIFO)' if JACK_REALTIME else 'no-realtime (`-r`)'}, {RATE_HZ} Hz, period {PERIOD_FRAMES} frames "
        f"= {1000.0 * PERIOD_FRAMES / RATE_HZ:.2f} ms, port table "
        f"{'2048 ports (the default)' if not PORT_MAX_ARGV else PORT_MAX_ARGV[1] + ' ports (`-p`)'}",
        f"- python-rtmidi's libjack: {rtmidi_libjack()}",
        "- livepitch: `python -m livepitch --host-api JACK --midi-api jack --channel 1 --quiet "
        f"--events-csv FILE{' ' + ' '.join(LIVEPITCH_FLAGS) if LIVEPITCH_FLAGS else ''}`, all other settings "
        "default (lookahead 70 ms = 72.7 ms, incremental engine at refresh 7 unless the flags say otherwise, "
        "block 256 frames, one onnxruntime thread)",
    ]


def latency_table(runs: Sequence[LatencyRun]) -> str:
    rows = [
        "| run | matched / missed / extra | end-to-end p50 / p95 ms | algorithmic p50 / p95 ms "
        "| overhead p50 / p95 ms | xruns | overflows (ring) | flagged by PortAudio | drops "
        "| daemon CPU % of one core | machine busy % "
        "| harness slip max ms (end-to-end p50 / p95 on the nominal timeline) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in runs:
        s = run.session
        rows.append(
            f"| {run.label} | {run.matched} / {run.missed} / {run.extra} of {run.notes} | {p50_p95(run.e2e_ms)} "
            f"| {p50_p95(run.algorithmic_ms)} | {p50_p95(run.overhead_ms)} | {run.xruns} "
            f"| {s.overflows if s else 'n/a'} | {s.device_overflows if s else 'n/a'} "
            f"| {s.drops if s else 'n/a'} | {fmt(s.cpu_pct if s else None)} "
            f"| {machine_text(run.machine)} | {fmt(run.harness_slip_ms)} ({p50_p95(run.nominal_e2e_ms)}) |"
        )
    return "\n".join(rows)


def live_clock_table(runs: Sequence[LatencyRun]) -> str:
    rows = [
        "| run | clock offset (harness - live engine, median) | live engine delay p50 / p95 ms "
        "| pipeline overhead p50 / p95 / max ms |",
        "|---|---|---|---|",
    ]
    for run in runs:
        offset = "n/a" if run.clock_offset_s is None else f"{1000.0 * run.clock_offset_s:.1f} ms"
        maximum = fmt(max(run.live_overhead_ms)) if run.live_overhead_ms else "n/a"
        rows.append(
            f"| {run.label} | {offset} | {p50_p95(run.live_engine_ms)} "
            f"| {p50_p95(run.live_overhead_ms)} / {maximum} |"
        )
    return "\n".join(rows)


def xrun_table(runs: Sequence[LatencyRun], baseline: Baseline | None, long: LongRun | None) -> str:
    rows = [
        "| run | xruns (harness) | clients jackd logged as late (xruns) | cycles the harness missed "
        "| machine busy % |",
        "|---|---|---|---|---|",
    ]
    if baseline is not None:
        rows.append(
            f"| null client (no livepitch) | {baseline.xruns} | {late_text(baseline.jack)} "
            f"| {baseline.harness_missed_cycles} | {machine_text(baseline.machine)} |"
        )
    for run in runs:
        rows.append(
            f"| {run.label} | {run.xruns} | {late_text(run.jack)} | {run.harness_missed_cycles} "
            f"| {machine_text(run.machine)} |"
        )
    if long is not None:
        rows.append(
            f"| {long.minutes:g}-minute run | {long.xruns} | {late_text(long.jack)} "
            f"| {long.harness_missed_cycles} | {machine_text(long.machine)} |"
        )
    return "\n".join(rows)


def memory_cells(samples: Sequence[Sample]) -> tuple[str, str, str]:
    """VmRSS, RSS without shared memory, shared memory: start / end / max MB each."""

    def cell(values: list[float]) -> str:
        if not values:
            return "n/a"
        return f"{values[0]:.0f} / {values[-1]:.0f} / {max(values):.0f}"

    return (
        cell([s.rss_mb for s in samples]),
        cell([s.private_mb for s in samples]),
        cell([s.shmem_mb for s in samples]),
    )


def long_tables(run: LongRun) -> str:
    s = run.session
    cpu_intervals = [
        100.0 * (b.cpu_s - a.cpu_s) / (b.t_s - a.t_s)
        for a, b in zip(run.samples, run.samples[1:], strict=False)
        if b.t_s - a.t_s > 1.0
    ]
    rss, private, shmem = memory_cells(run.samples)
    hwm = [x.hwm_mb for x in run.samples]
    jumps = [b.t_s for a, b in zip(run.samples, run.samples[1:], strict=False) if b.hwm_mb > a.hwm_mb + 20.0]
    maps = [x.jack_maps for x in run.samples]
    lines = [
        f"Audio: {run.audio_s:.0f} s of 16-bit mono at 48 kHz, segments in order (0.5 s of silence "
        f"between them): {', '.join(run.segments)}. livepitch sampled from /proc every "
        f"{SAMPLE_EVERY_S:.0f} s ({len(run.samples)} samples).\n",
        "| duration (session) | CPU % of one core (session) | CPU % per interval median / max "
        "| peak RSS (session) | VmRSS start / end / max MB | RSS without shared memory start / end / max MB "
        "| shared memory (JACK) MB | overflows (ring) | flagged by PortAudio | drops | xruns |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {fmt(s.wall_s if s else None, 1)} s | {fmt(s.cpu_pct if s else None, 1)} "
        f"| {fmt(pct(cpu_intervals, 50), 1)} / {fmt(max(cpu_intervals, default=float('nan')), 1)} "
        f"| {fmt(s.peak_rss_mb if s else None)} MB | {rss} | {private} | {shmem} "
        f"| {s.overflows if s else 'n/a'} | {s.device_overflows if s else 'n/a'} "
        f"| {s.drops if s else 'n/a'} | {run.xruns} |",
        "",
        f"VmHWM (the peak RSS so far) in the samples: first {fmt(hwm[0] if hwm else None)} MB, last "
        f"{fmt(hwm[-1] if hwm else None)} MB, jumps of > 20 MB at "
        f"{', '.join(f'{t:.0f} s' for t in jumps) or 'none'}; mappings of JACK's shared memory: "
        f"{min(maps, default=0)}-{max(maps, default=0)}.",
        "",
        "End-to-end note-on latency of each test-signal cycle in the long file:\n",
        "| cycle | starts at s | matched | p50 / p95 ms | harness behind the file's timeline at its end ms |",
        "|---|---|---|---|---|",
    ]
    for c in run.cycles:
        lines.append(
            f"| {int(c['cycle'])} | {c['start_s']:.0f} | {int(c['matched'])} of {int(c['notes'])} "
            f"| {fmt(c['p50_ms'])} / {fmt(c['p95_ms'])} | {fmt(c['slip_ms'])} |"
        )
    return "\n".join(lines)


def target_table(runs: Sequence[LatencyRun], baseline: Baseline | None, long: LongRun | None) -> str:
    rows = ["| target | result | met? |", "|---|---|---|"]
    for run in runs:
        e2e95, algo95 = pct(run.e2e_ms, 95), pct(run.algorithmic_ms, 95)
        ok = e2e95 <= algo95 + OVERHEAD_BUDGET_MS
        rows.append(
            f"| {run.label.strip('*')}: end-to-end p95 ≤ algorithmic p95 + {OVERHEAD_BUDGET_MS:.0f} ms "
            f"| {fmt(e2e95)} ms vs {fmt(algo95)} + {OVERHEAD_BUDGET_MS:.0f} = {fmt(algo95 + OVERHEAD_BUDGET_MS)} ms "
            f"(overhead p95 {fmt(pct(run.overhead_ms, 95))} ms) | {'yes' if ok else 'no'} |"
        )
    idle = runs[0].session if runs else None
    if idle is not None:
        null = (
            "" if baseline is None else f"; a do-nothing client got {baseline.xruns} xruns on the same setup"
        )
        rows.append(
            f"| zero overflows when idle | {idle.overflows} overflows of livepitch's ring, {idle.drops} drops; "
            f"PortAudio flagged {idle.device_overflows} callbacks after {runs[0].xruns} xruns of the server "
            f"(idle latency run){null} | {'yes' if idle.overflows == 0 else 'no'} (ring) |"
        )
    if long is not None and long.session is not None:
        peak = long.session.peak_rss_mb
        private = max((s.private_mb for s in long.samples), default=float("nan"))
        shmem = max((s.shmem_mb for s in long.samples), default=float("nan"))
        rows.append(
            f"| RSS ≤ {RSS_TARGET_MB:.0f} MB ({long.minutes:g}-minute run) | peak RSS {peak:.0f} MB, of which "
            f"{shmem:.0f} MB JACK shared memory; without it at most {private:.0f} MB "
            f"| {'yes' if peak <= RSS_TARGET_MB else 'no'} ({'yes' if private <= RSS_TARGET_MB else 'no'} "
            "without JACK's shared memory) |"
        )
    return "\n".join(rows)


# ---------------------------------------------------------------------------------------------
# main


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the long run (10)")
    parser.add_argument("--repeats", type=int, default=3, help="sessions per latency condition (3)")
    parser.add_argument("--skip-long", action="store_true", help="no long run")
    parser.add_argument("--skip-latency", action="store_true", help="no latency runs")
    parser.add_argument("--skip-baseline", action="store_true", help="no do-nothing-client xrun baseline")
    parser.add_argument("--json", type=Path, help="also save the raw numbers here")
    parser.add_argument("--keep", type=Path, help="keep the WAVs, logs and reports in this directory")
    parser.add_argument(
        "--livepitch-flags",
        default="",
        metavar="FLAGS",
        help='extra flags for the daemon and transcribe --stream, e.g. "--engine incremental"',
    )
    parser.add_argument(
        "--period-frames", type=int, default=PERIOD_FRAMES, help=f"JACK period at 48 kHz ({PERIOD_FRAMES})"
    )
    parser.add_argument(
        "--port-max",
        type=int,
        help="jackd's port table size (-p before -d; jackd's default 2048): every JACK client "
        "mlocks the table's shared memory, about 38 MB + 33 kB a port",
    )
    parser.add_argument(
        "--jack-realtime",
        action="store_true",
        help="run jackd realtime (-R -P 70) instead of -r: needs SCHED_FIFO (root or an rtprio limit)",
    )
    return parser.parse_args(argv)


def _raise_exit(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    LIVEPITCH_FLAGS[:] = shlex.split(args.livepitch_flags)
    global JACK_REALTIME, PERIOD_FRAMES
    JACK_REALTIME = args.jack_realtime
    PERIOD_FRAMES = args.period_frames
    PORT_MAX_ARGV[:] = [] if args.port_max is None else ["-p", str(args.port_max)]
    for tool in ("jackd", "jack_wait"):
        if shutil.which(tool) is None:
            print(f"{tool} not found: install jackd2 (see .ci/setup-env.sh)", file=sys.stderr)
            return 2
    signal.signal(signal.SIGTERM, _raise_exit)  # stop the children on the way out
    with tempfile.TemporaryDirectory(prefix="livepitch-jack-bench-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        synth, truth = synth_signal()
        wav = work / "notes.wav"
        soundfile.write(str(wav), synth, RATE_HZ, subtype="FLOAT")
        n_chords = len(truth) - 40
        print(
            f"## Live daemon through JACK (issue 4){', livepitch ' + args.livepitch_flags if args.livepitch_flags else ''}\n"
        )
        print("\n".join(machine_lines()))
        print(
            f"- test signal: {len(truth)} harmonic tones (`tests.synth`) with exact onsets, 40 single "
            f"notes (MIDI {min(p for _, p in truth)}-{max(p for _, p in truth)}) and {n_chords} chord notes "
            f"in 4 chords, {synth.shape[0] / RATE_HZ:.1f} s, 48 kHz float32",
            flush=True,
        )
        results: dict[str, Any] = {"truth": truth}
        runs: list[LatencyRun] = []
        pooled: list[LatencyRun] = []
        baseline: Baseline | None = None
        if not args.skip_baseline:
            log("baseline: the harness against a do-nothing client")
            baseline = baseline_run(wav, work)
            results["baseline"] = asdict(baseline)
        if not args.skip_latency:
            log("file mode (transcribe --stream) on the test signal")
            file_algo, file_extra = file_mode_latency(wav, truth, work)
            file_onsets = file_mode_onsets(work, truth)
            algo_all = [1000.0 * a for a in file_algo if a is not None]
            results["file_mode"] = {"algorithmic_s": file_algo, "extra": file_extra}
            for k in range(1, args.repeats + 1):  # alternating, so machine noise falls on both
                for label, phase, loaded in (("idle", "i", False), ("other core loaded", "b", True)):
                    log(f"latency run: {label} #{k}")
                    run = latency_run(
                        f"{label} #{k}", f"{phase}{k}", wav, truth, file_algo, file_onsets, work, loaded
                    )
                    runs.append(run)
                    log(f"{run.label}: e2e p50/p95 {p50_p95(run.e2e_ms)} ms, {run.xruns} xruns")
            pooled = [
                pool(
                    [r for r in runs if r.label.startswith(label)],
                    f"**{label}, {args.repeats} sessions pooled**",
                )
                for label in ("idle", "other core loaded")
            ]
            print(
                f"\n### Note-on latency\n\nFile mode (`livepitch transcribe WAV --stream --events-csv`, "
                f"defaults): {len(algo_all)} of {len(truth)} notes matched, {file_extra} extra note-ons, "
                f"algorithmic latency p50 / p95 {p50_p95(algo_all)} ms. Percentiles: numpy, linear.\n"
            )
            print(latency_table([*runs, *pooled]))
            print(
                "\nThe daemon's own events CSV, put on the harness clock (see the script's docstring); "
                "pipeline overhead = MIDI arrival - the engine's emission:\n"
            )
            print(live_clock_table([*runs, *pooled]), flush=True)
            for run in runs:
                if run.burner_cpu_pct is not None:
                    print(f"\nCPU burner during {run.label}: {run.burner_cpu_pct:.0f} % of one core.")
                if run.missed_notes:
                    shown = ", ".join(f"{p} at {t:.2f} s" for t, p in run.missed_notes)
                    print(f"\n{run.label}: missed {shown}")
                if run.extra_notes:
                    shown = ", ".join(f"{p} at {t:.2f} s" for t, p in run.extra_notes)
                    print(f"\n{run.label}: extra note-ons: {shown}")
            results["latency_runs"] = [asdict(run) for run in runs]
            log("components: resampler and model window, in this process")
            components = run_components(work)
            window = components.window_ms
            held = "; ".join(
                f"{q} {lo:.1f} / {mean:.1f} / {hi:.1f}"
                for q, (lo, mean, hi) in components.resampler_lag_ms.items()
            )
            print(
                f"\nIn-process, block by block as the worker runs them (256-frame blocks): audio the soxr stream "
                f"(48 kHz -> 22050 Hz) holds back, min / mean / max ms: {held} (the daemon's default: "
                f"{components.quality}); a block that runs a model window takes {window[0]:.1f} ms (p95 "
                f"{window[1]:.1f}, max {window[2]:.1f}) over {components.windows} windows.",
                flush=True,
            )
            results["components"] = asdict(components)
        long: LongRun | None = None
        if not args.skip_long:
            log(f"long run: {args.minutes:g} minutes")
            long = long_run(args.minutes, work)
            print(f"\n### {args.minutes:g}-minute run\n")
            print(long_tables(long))
            results["long_run"] = asdict(long)
        print("\n### Xruns\n")
        print(xrun_table(runs, baseline, long))
        print("\n### Targets\n")
        print(target_table(pooled, baseline, long))
        own_peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        print(
            f"\nThe benchmark process's own peak RSS: {own_peak_mb:.0f} MB (a child's `ru_maxrss` starts "
            "there, so the session line's peak RSS is at least this).",
            flush=True,
        )
        results["benchmark_peak_rss_mb"] = own_peak_mb
        if args.json is not None:
            args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    modes = {"long-wav": long_wav_main, "components": components_main}
    if sys.argv[1:2] and sys.argv[1] in modes:
        sys.exit(modes[sys.argv[1]](sys.argv[2:]))
    sys.exit(main())
