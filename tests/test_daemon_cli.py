"""``livepitch`` (the daemon) as a user starts it: bad input gets one line and an exit code."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile

from tests.fakes import sounding_after
from tests.synth import sequence

REPO = Path(__file__).resolve().parents[1]


def livepitch(*args: str | Path, timeout_s: float = 120.0) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, JACK_NO_START_SERVER="1")
    env.pop("JACK_DEFAULT_SERVER", None)
    return subprocess.run(
        [sys.executable, "-m", "livepitch", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
        cwd=REPO,
        env=env,
    )


def one_line(result: subprocess.CompletedProcess[str], code: int, fragment: str) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0]


def test_an_unknown_input_device(tmp_path: Path) -> None:
    one_line(livepitch("--input", "no such microphone", "--host-api", "no such system"), 6, "no audio input")


def test_jack_asked_for_without_a_server_running_says_so() -> None:
    env = dict(os.environ, JACK_DEFAULT_SERVER=f"lp-none-{os.getpid()}", JACK_NO_START_SERVER="1")
    result = subprocess.run(
        [sys.executable, "-m", "livepitch", "--host-api", "JACK", "--quiet"],
        capture_output=True, text=True, timeout=60, check=False, env=env,
    )  # fmt: skip
    one_line(result, 6, "no audio input in an audio system matching 'JACK' (have: ")
    assert result.stderr.rstrip().endswith("; is the JACK server running?)"), result.stderr


def test_a_missing_input_file(tmp_path: Path) -> None:
    one_line(livepitch("--input-file", tmp_path / "nope.wav"), 3, "no such file")


def test_an_input_file_at_a_rate_no_audio_has(tmp_path: Path) -> None:
    one_hz = tmp_path / "one_hz.wav"
    soundfile.write(one_hz, np.zeros(50, np.float32), 1)
    one_line(livepitch("--input-file", one_hz), 3, "sample rate is 1 Hz")


def test_an_out_of_range_setting() -> None:
    one_line(livepitch("--lookahead-ms", "-5"), 2, "--lookahead-ms (stream.lookahead_ms) = -5.0")


def test_a_model_file_that_is_not_a_model_gets_one_line_with_either_engine(tmp_path: Path) -> None:
    wav = tmp_path / "tone.wav"
    soundfile.write(wav, sequence([(0.1, 0.3, 60)], 0.5), 22050)
    fake = tmp_path / "fake.onnx"
    fake.write_bytes(b"not a model")
    one_line(livepitch("--input-file", wav, "--model", fake), 4, "cannot read model")
    one_line(livepitch("--input-file", wav, "--model", fake, "--engine", "window"), 4, "cannot load model")


def test_replaying_a_file_prints_records_and_logs_even_without_a_midi_system(tmp_path: Path) -> None:
    audio = sequence([(0.2, 0.4, 60), (0.8, 0.4, 67)], 1.5)
    wav = tmp_path / "22050Hz_two_tones.wav"
    soundfile.write(wav, audio, 22050)
    result = livepitch(
        "--input-file", wav, "--midi-api", "alsa", "--print-notes", "--quiet",
        "--record", tmp_path / "session.mid", "--events-csv", tmp_path / "events.csv",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "no MIDI output" in result.stderr
    printed = [line for line in result.stdout.splitlines() if "velocity" in line]
    assert [line.split()[2] for line in printed] == ["C4", "G4"]
    assert [m.note for m in mido.MidiFile(tmp_path / "session.mid") if m.type == "note_on"] == [60, 67]
    with open(tmp_path / "events.csv", newline="") as handle:
        kinds = [row["kind"] for row in csv.DictReader(handle)]
    assert kinds.count("note_on") == kinds.count("note_off") == 2


def test_verbose_before_the_implied_run_command_logs_debug(tmp_path: Path) -> None:
    wav = tmp_path / "silence.wav"
    soundfile.write(wav, sequence([], 0.5), 22050)
    result = livepitch("-v", "--input-file", wav, "--quiet", "--midi-api", "alsa")
    assert result.returncode == 0, result.stderr
    assert "DEBUG" in result.stderr


def test_a_channel_the_input_lacks(tmp_path: Path) -> None:
    wav = tmp_path / "mono.wav"
    soundfile.write(wav, sequence([(0.1, 0.2, 60)], 0.5), 22050)
    one_line(
        livepitch("--input-file", wav, "--channel", "3", "--midi-api", "alsa", "--quiet"), 3, "has 1 channel"
    )


def test_a_config_file_that_is_not_text(tmp_path: Path) -> None:
    config = tmp_path / "binary.toml"
    config.write_bytes(b"\xff\xfe[stream]\n")
    one_line(livepitch("config", "--config", config), 2, "not valid TOML")


@pytest.mark.parametrize("flag", ["--record", "--events-csv"])
def test_an_unwritable_output_is_refused_before_the_session_and_its_port(tmp_path: Path, flag: str) -> None:
    """One line, before any MIDI port is opened (here: none, which was said first)."""
    wav = tmp_path / "mono.wav"
    soundfile.write(wav, sequence([(0.1, 0.2, 60)], 0.5), 22050)
    result = livepitch("--input-file", wav, flag, tmp_path / "no" / "x.mid", "--midi-api", "alsa", "--quiet")
    one_line(
        result, 5, f"cannot write {tmp_path / 'no' / 'x.mid'}: directory {tmp_path / 'no'} does not exist"
    )


def test_blocks_longer_than_the_backlog_limit_get_one_line(tmp_path: Path) -> None:
    wav = tmp_path / "tone.wav"
    soundfile.write(wav, sequence([(0.2, 0.4, 60)], 1.0), 22050)
    one_line(
        livepitch("--input-file", wav, "--block-frames", "16384", "--quiet"),
        2,
        "audio.max_backlog_ms = 300 must be at least two blocks of block_frames = 16384",
    )


def test_blocks_of_two_seconds_replay_to_the_end_without_a_false_device_loss(tmp_path: Path) -> None:
    wav = tmp_path / "8000Hz_two_tones.wav"
    soundfile.write(wav, sequence([(0.5, 0.8, 60), (2.5, 0.8, 67)], 4.5, rate_hz=8000), 8000)
    result = livepitch(
        "--input-file", wav, "--block-frames", "16384", "--max-backlog-ms", "5000", "--ring-ms", "10000",
        "--midi-api", "alsa", "--print-notes", "--quiet", "--record", tmp_path / "s.mid",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "lost" not in result.stderr and "behind" not in result.stderr
    notes = [
        m.note for m in mido.MidiFile(tmp_path / "s.mid").tracks[0] if m.type == "note_on" and m.velocity
    ]
    assert notes[:2] == [60, 67]  # (at 8 kHz the model also hears G4's octave)


def test_outputs_that_would_overwrite_the_replayed_file_are_refused(tmp_path: Path) -> None:
    wav = tmp_path / "take.wav"
    soundfile.write(wav, sequence([(0.1, 0.3, 60)], 0.5), 22050)
    one_line(livepitch("--input-file", wav, "--events-csv", wav), 2, "port.events_csv")
    one_line(
        livepitch("--input-file", wav, "--record", tmp_path / "x.mid", "--events-csv", tmp_path / "x.mid"),
        2,
        "port.record",
    )
    assert soundfile.info(str(wav)).frames == 11025  # untouched


def test_notes_printed_to_a_full_disk_stop_the_session_with_one_line_and_no_note_left_on(
    tmp_path: Path,
) -> None:
    """``livepitch --print-notes > notes.txt`` on a full disk: the first note cannot be printed,
    so the session ends (exit 5, as for any output), its notes released in the recording."""
    wav = tmp_path / "22050Hz_long_tone.wav"
    soundfile.write(wav, sequence([(0.2, 3.0, 60)], 3.5), 22050)
    env = dict(os.environ, JACK_NO_START_SERVER="1")
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [sys.executable, "-m", "livepitch", "--input-file", str(wav), "--midi-api", "alsa", "--print-notes",
             "--quiet", "--record", str(tmp_path / "session.mid")],
            stdout=full, stderr=subprocess.PIPE, text=True, timeout=120, check=False, cwd=REPO, env=env,
        )  # fmt: skip
    assert result.returncode == 5, result.stderr
    assert "Traceback" not in result.stderr
    assert (
        result.stderr.strip().splitlines()[-1]
        == "livepitch: error: cannot write standard output: No space left on device"
    )
    session = mido.MidiFile(tmp_path / "session.mid")
    assert [m.note for m in session if m.type == "note_on" and m.velocity] == [60]
    assert sounding_after(list(session)) == set()
    assert session.length < 1.5  # it stopped at the first note, not at the file's end


def test_a_recording_the_system_refuses_fails_before_the_session(tmp_path: Path) -> None:
    if not Path("/sys").is_dir():
        return
    wav = tmp_path / "take.wav"
    soundfile.write(wav, sequence([(0.1, 0.3, 60)], 0.5), 22050)
    result = livepitch(
        "--input-file", wav, "--record", "/sys/livepitch-test.mid", "--midi-api", "alsa", "--quiet"
    )
    assert result.returncode == 5 and "cannot write /sys/livepitch-test.mid" in result.stderr
    assert "session:" not in result.stderr  # refused before the session, not after it


def test_notes_sent_when_the_file_ends_are_printed_and_counted(tmp_path: Path) -> None:
    wav = tmp_path / "ends_on_a_note.wav"
    soundfile.write(wav, sequence([(0.2, 0.4, 60), (0.8, 0.4, 67), (1.45, 0.1, 64)], 1.5), 22050)
    events = tmp_path / "events.csv"
    result = livepitch("--input-file", wav, "--print-notes", "--quiet", "--events-csv", events)
    assert result.returncode == 0, result.stderr
    with open(events, newline="") as handle:
        sent = [int(row["pitch"]) for row in csv.DictReader(handle) if row["kind"] == "note_on"]
    printed = [line for line in result.stdout.splitlines() if "velocity" in line]
    assert sent[-1] == 64 and len(printed) == len(sent)
    assert f", {len(sent)} notes," in result.stderr


def test_an_mp3_replays_the_audio_the_file_mode_reads(tmp_path: Path) -> None:
    mp3 = tmp_path / "tune.mp3"
    soundfile.write(mp3, sequence([(0.2, 0.4, 60), (0.8, 0.4, 67), (1.4, 0.4, 64)], 2.2), 22050, format="MP3")
    live_csv, file_csv = tmp_path / "live.csv", tmp_path / "file.csv"
    result = livepitch("--input-file", mp3, "--quiet", "--midi-api", "alsa", "--events-csv", live_csv)
    assert result.returncode == 0, result.stderr
    subprocess.run(
        [sys.executable, "-m", "livepitch", "transcribe", str(mp3), "--stream", "-q", "-o", str(tmp_path / "t.mid"),
         "--events-csv", str(file_csv)],
        check=True, cwd=REPO,
    )  # fmt: skip

    def note_ons(path: Path) -> list[int]:
        with open(path, newline="") as handle:
            return [int(row["pitch"]) for row in csv.DictReader(handle) if row["kind"] == "note_on"]

    assert note_ons(live_csv) == note_ons(file_csv) == [60, 67, 64]


def test_a_corrupt_mp3_gets_one_line(tmp_path: Path) -> None:
    mp3 = tmp_path / "broken.mp3"
    soundfile.write(mp3, sequence([(0.2, 1.5, 60)], 2.0), 22050, format="MP3")
    data = bytearray(mp3.read_bytes())
    data[len(data) // 3 : len(data) // 3 + 2048] = bytes(2048)  # a stretch of the stream zeroed
    mp3.write_bytes(bytes(data))
    one_line(livepitch("--input-file", mp3, "--quiet", "--midi-api", "alsa"), 3, "cannot read audio")


def test_with_log_json_the_error_line_is_json_too(tmp_path: Path) -> None:
    import json

    result = livepitch("--input-file", tmp_path / "nope.wav", "--log-json")
    assert result.returncode == 3
    record = json.loads(result.stderr.strip())
    assert record["level"] == "error" and "no such file" in record["message"]
    bad = tmp_path / "bad.toml"
    bad.write_text("[tracker]\nmax_hz = -1\n")
    result = livepitch("--config", bad, "--log-json")  # a configuration error, before the daemon starts
    assert result.returncode == 2
    record = json.loads(result.stderr.strip())
    assert record["level"] == "error" and "max_hz" in record["message"]


def test_transcribe_stream_logs_exactly_the_events_a_replay_sends(tmp_path: Path) -> None:
    """At a rate the model does not use (44.1 kHz stereo), ``transcribe --stream`` converts the
    file as the daemon does (its streaming resampler), so the two events logs are the same bytes."""
    import numpy as np

    tune = sequence([(0.2, 0.4, 60), (0.7, 0.5, 64), (1.3, 0.5, 67)], 2.0, rate_hz=44100)
    wav = tmp_path / "tune.wav"
    soundfile.write(wav, np.stack([tune, 0.5 * tune], axis=1), 44100)
    live_csv, file_csv = tmp_path / "live.csv", tmp_path / "file.csv"
    result = livepitch(
        "--input-file", wav, "--quiet", "--midi-api", "alsa", "--bends", "mpe", "--events-csv", live_csv
    )
    assert result.returncode == 0, result.stderr
    result = livepitch(
        "transcribe",
        wav,
        "--stream",
        "-q",
        "--bends",
        "mpe",
        "-o",
        tmp_path / "t.mid",
        "--events-csv",
        file_csv,
    )
    assert result.returncode == 0, result.stderr
    assert live_csv.read_bytes() == file_csv.read_bytes()
    assert b"\r" not in file_csv.read_bytes()
    with open(file_csv, newline="") as handle:
        assert [int(r["pitch"]) for r in csv.DictReader(handle) if r["kind"] == "note_on"] == [60, 64, 67]


def test_a_replay_with_absurd_samples_clips_them_logs_once_and_plays_on(tmp_path: Path) -> None:
    audio = sequence([(0.2, 0.5, 60), (0.9, 0.5, 67)], 1.6)
    audio[8000] = 1e25  # finite: unclipped, the model's log spectrum overflows and the tracker met NaN
    wav = tmp_path / "spike.wav"
    soundfile.write(wav, audio, 22050, subtype="FLOAT")
    events = tmp_path / "events.csv"
    result = livepitch("--input-file", wav, "--quiet", "--midi-api", "alsa", "--events-csv", events)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("beyond ±10000") == 1 and "Traceback" not in result.stderr
    with open(events, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert 67 in [int(r["pitch"]) for r in rows if r["kind"] == "note_on"]
    assert sum(r["kind"] == "note_on" for r in rows) == sum(r["kind"] == "note_off" for r in rows)


def test_device_settings_a_replay_does_not_use_are_named(tmp_path: Path) -> None:
    wav = tmp_path / "short.wav"
    soundfile.write(wav, sequence([(0.1, 0.2, 60)], 0.4), 22050)
    result = livepitch(
        "--input-file", wav, "--quiet", "--midi-api", "alsa", "--sample-rate", "48000", "--input", "USB"
    )
    assert result.returncode == 0, result.stderr
    assert "audio.input, audio.sample_rate_hz not used" in result.stderr


def test_a_reload_or_stop_while_the_daemon_starts_is_noted_not_fatal() -> None:
    """``systemctl reload`` right after a start: before the daemon's own handlers, SIGHUP and
    SIGTERM are remembered (and acted on once it runs), not the default that ends the process."""
    import signal

    from livepitch.self_restart import remember_early_signals

    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        early = remember_early_signals()
        os.kill(os.getpid(), signal.SIGHUP)
        os.kill(os.getpid(), signal.SIGTERM)
        assert early == [signal.SIGHUP, signal.SIGTERM]
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


def test_an_output_that_is_the_config_or_the_model_file_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "live.toml"
    config.write_text("[stream]\nlookahead_ms = 70\n")
    wav = tmp_path / "mono.wav"
    soundfile.write(wav, sequence([(0.1, 0.2, 60)], 0.5), 22050)
    for flag in ("--record", "--events-csv"):
        result = livepitch("--config", config, "--input-file", wav, flag, config, "--quiet")
        one_line(result, 2, f"{flag} {config} is also the --config file")
    assert config.read_text() == "[stream]\nlookahead_ms = 70\n"
    model = tmp_path / "m.onnx"
    model.write_bytes(b"the user's model")
    result = livepitch("--model", model, "--input-file", wav, "--record", model, "--quiet")
    one_line(result, 2, f"port.record ({model}) is also model.path: it would be overwritten")
    assert model.read_bytes() == b"the user's model"


def test_ctrl_c_pressed_again_and_again_while_the_daemon_exits_still_exits_0(tmp_path: Path) -> None:
    """Every SIGINT after the first finds the session stopping or over: the exit code stays
    the session's (Python restores the default handlers while it exits; they are ignored)."""
    wav = tmp_path / "long.wav"
    soundfile.write(wav, sequence([(0.5, 1.0, 60)], 30.0), 22050)
    env = dict(os.environ, JACK_NO_START_SERVER="1")
    env.pop("JACK_DEFAULT_SERVER", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "livepitch", "--input-file", str(wav), "--quiet", "--log-level", "info"],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
        env=env,
    )
    assert process.stderr is not None
    for line in process.stderr:  # the handlers are in place once the replay runs
        if "audio in:" in line:
            break
    deadline = time.monotonic() + 30.0
    while process.poll() is None and time.monotonic() < deadline:
        process.send_signal(signal.SIGINT)
        time.sleep(0.003)
    process.stderr.read()
    assert process.wait(10) == 0


def test_devices_says_why_a_midi_system_is_unavailable() -> None:
    env = dict(os.environ, JACK_NO_START_SERVER="1", JACK_DEFAULT_SERVER=f"lpnone{os.getpid()}")
    result = subprocess.run(  # a JACK server name that runs nowhere
        [sys.executable, "-m", "livepitch", "devices"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    midi = result.stdout.split("MIDI output ports (by MIDI system):")[1]
    assert "jack: unavailable (" in midi
    if not Path("/dev/snd/seq").exists():
        assert "alsa: unavailable (no sequencer device /dev/snd/seq)" in midi


def test_a_usage_error_with_log_json_is_a_json_line() -> None:
    result = livepitch("--log-json", "--no-such-flag")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["level"] == "error" and "unrecognized arguments: --no-such-flag" in record["message"]


def test_a_killed_session_leaves_its_recording_so_far(tmp_path: Path) -> None:
    """SIGKILL (a service manager's last resort, the OOM killer) gives no chance to write at
    the end: the notes played until the last save are in the file, and the events log too."""
    wav = tmp_path / "long.wav"
    soundfile.write(wav, sequence([(0.5 + i, 0.5, 60 + i) for i in range(20)], 21.0), 22050)
    record, events_csv = tmp_path / "take.mid", tmp_path / "events.csv"
    env = dict(os.environ, JACK_NO_START_SERVER="1")
    env.pop("JACK_DEFAULT_SERVER", None)
    process = subprocess.Popen(
        [
            sys.executable, "-m", "livepitch", "--input-file", str(wav), "--quiet", "--midi-api", "alsa",
            "--record", str(record), "--events-csv", str(events_csv), "--save-every-s", "1",
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        cwd=REPO,
        env=env,
    )  # fmt: skip
    assert process.stderr is not None
    for line in process.stderr:
        if "audio in:" in line:
            break
    time.sleep(4.5)
    process.kill()
    process.wait(10)
    played = [m.note for m in mido.MidiFile(record) if m.type == "note_on" and m.velocity > 0]
    assert played[:3] == [60, 61, 62] and len(played) <= 5, played
    assert sounding_after(list(mido.MidiFile(record))) == set()
    with open(events_csv, newline="") as handle:
        logged = [int(row["pitch"]) for row in csv.DictReader(handle) if row["kind"] == "note_on"]
    assert logged[:3] == [60, 61, 62]


def test_named_pipes_get_the_recording_and_the_events_log(tmp_path: Path) -> None:
    """A pipe checked by opening and closing it ended its reader's input before the session
    wrote anything, and the daemon then waited for a reader forever (no signal ended it)."""
    import threading

    wav = tmp_path / "two_tones.wav"
    soundfile.write(wav, sequence([(0.2, 0.4, 60), (0.8, 0.4, 67)], 1.5), 22050)
    received: dict[str, bytes] = {}
    readers = []
    for name in ("take.mid", "events.csv"):
        os.mkfifo(tmp_path / name)

        def read(name: str = name) -> None:
            with open(tmp_path / name, "rb") as pipe:  # (waits for the writer)
                received[name] = pipe.read()

        readers.append(threading.Thread(target=read, daemon=True))
        readers[-1].start()
    result = livepitch(
        "--input-file", wav, "--midi-api", "alsa", "--quiet",
        "--record", tmp_path / "take.mid", "--events-csv", tmp_path / "events.csv", timeout_s=60.0,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    for reader in readers:
        reader.join(10.0)
    rows = list(csv.DictReader(received["events.csv"].decode().splitlines()))
    assert [int(r["pitch"]) for r in rows if r["kind"] == "note_on"] == [60, 67]
    (tmp_path / "copy.mid").write_bytes(received["take.mid"])
    messages = list(mido.MidiFile(tmp_path / "copy.mid"))
    assert [m.note for m in messages if m.type == "note_on" and m.velocity] == [60, 67]
    assert sounding_after(messages) == set()


def test_a_named_pipe_nobody_reads_gets_one_line_not_a_wait(tmp_path: Path) -> None:
    wav = tmp_path / "tone.wav"
    soundfile.write(wav, sequence([(0.2, 0.4, 60)], 0.8), 22050)
    os.mkfifo(tmp_path / "events.csv")
    result = livepitch(
        "--input-file", wav, "--midi-api", "alsa", "--events-csv", tmp_path / "events.csv", timeout_s=60.0
    )
    assert result.returncode == 5 and "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert "a pipe that no program reads" in lines[-1]
    assert not any("session:" in line for line in lines)  # (the session never began)


def test_file_names_in_a_config_file_are_relative_to_it(tmp_path: Path) -> None:
    """A service started in another directory finds the same files; an error in the file
    names the file."""
    (tmp_path / "conf").mkdir()
    wav = tmp_path / "conf" / "tone.wav"
    soundfile.write(wav, sequence([(0.2, 0.4, 60)], 0.8), 22050)
    config = tmp_path / "conf" / "live.toml"
    config.write_text('[audio]\ninput_file = "tone.wav"\n[port]\nrecord = "take.mid"\n')
    result = livepitch("config", "--config", config)
    assert result.returncode == 0, result.stderr
    assert (
        f'input_file = "{wav}"' in result.stdout
        and f'record = "{tmp_path / "conf" / "take.mid"}"' in result.stdout
    )
    config.write_text("[stream]\nlookahead_ms = nan\n")
    one_line(
        livepitch("--config", config),
        2,
        f"{config}: stream.lookahead_ms = nan: Input should be a finite number",
    )
    one_line(livepitch("--record", ""), 2, "a file name cannot be empty")


def test_a_config_file_valid_with_the_flags_is_taken_and_one_from_a_pipe_is_read_once(tmp_path: Path) -> None:
    """The file is judged with the flags laid over it (a file that is only valid with them
    is fine); an error naming a setting the file gave, and no flag, names the file."""
    config = tmp_path / "live.toml"
    config.write_text("[audio]\nmax_backlog_ms = 3000.0\n")
    result = livepitch("config", "--config", config, "--ring-ms", "5000")
    assert result.returncode == 0, result.stderr
    assert "max_backlog_ms = 3000.0" in result.stdout and "ring_ms = 5000.0" in result.stdout
    one_line(
        livepitch("config", "--config", config),
        2,
        f"audio: max_backlog_ms (3000.0) must be below ring_ms (2000.0) (max_backlog_ms from {config}, ring_ms from the default)",
    )
    config.write_text("[tracker]\nmin_hz = 500.0\n")  # one of the two from the file, one from a flag
    one_line(
        livepitch("config", "--config", config, "--max-hz", "100"),
        2,
        f"tracker: min_hz (500.0) must be below max_hz (100.0) (min_hz from {config}, max_hz from --max-hz)",
    )
    config.write_text("[tracker]\nmax_polyphony = 999\n")
    one_line(
        livepitch("config", "--config", config, "--max-polyphony", "100"),
        2,
        "--max-polyphony (tracker.max_polyphony) = 100",
    )
    # a pipe (a shell's <(...)) is read once: the daemon judges what it held
    piped = subprocess.run(
        ["bash", "-c", f"{sys.executable} -m livepitch --config <(cat {config})"],
        capture_output=True, text=True, timeout=120, check=False, cwd=REPO,
        env=dict(os.environ, JACK_NO_START_SERVER="1"),
    )  # fmt: skip
    one_line(piped, 2, "tracker.max_polyphony = 999: Input should be less than or equal to 88")
