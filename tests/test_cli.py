"""The command line as a user meets it: outputs, one-line errors, exit codes, no tracebacks."""

from __future__ import annotations

import csv
import os
import resource
import struct
import subprocess
import sys
import threading
from pathlib import Path

import mido
import numpy as np
import pytest
import soundfile

from tests.synth import sequence

EVENTS = [(0.3, 0.5, 60), (1.0, 0.5, 67)]


def run_cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "livepitch", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int, fragment: str) -> None:
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert fragment in lines[0]


@pytest.fixture(scope="module")
def two_tones(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("audio") / "44100Hz_two_tones.wav"
    soundfile.write(path, sequence(EVENTS, 1.8, rate_hz=44100), 44100)
    return path


def test_transcribe_writes_midi_and_sorted_csv(two_tones: Path, tmp_path: Path) -> None:
    result = run_cli("transcribe", two_tones, "-o", tmp_path / "out", "--csv", tmp_path / "notes.csv")
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    # the file's length, not the model's frames' (1.81 s)
    assert result.stdout.strip().endswith(": 2 notes in 1.80 s of audio"), result.stdout
    midi = mido.MidiFile(tmp_path / "out.mid")
    assert [m.note for m in midi if m.type == "note_on"] == [60, 67]
    with open(tmp_path / "notes.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0])[:4] == ["onset_s", "offset_s", "pitch", "velocity"]
    assert [int(r["pitch"]) for r in rows] == [60, 67]
    assert all(1 <= int(r["velocity"]) <= 127 for r in rows)
    onsets = [float(r["onset_s"]) for r in rows]
    assert onsets == sorted(onsets) and abs(onsets[0] - 0.3) < 0.03


def test_several_inputs_write_one_file_each_into_a_directory(two_tones: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.flac"
    soundfile.write(other, sequence([(0.2, 0.5, 55)], 1.0), 22050)
    result = run_cli("transcribe", two_tones, other, "-o", tmp_path / "midi", "--bends", "mpe")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "midi").iterdir()) == ["44100Hz_two_tones.mid", "other.mid"]
    # a file's name for several inputs is refused, not made a directory of that name
    refused = run_cli("transcribe", two_tones, other, "-o", tmp_path / "both.mid")
    assert_one_line_error(refused, 2, "names a file, and several inputs need an output directory")
    assert not (tmp_path / "both.mid").exists()


def test_one_note_is_one_note_in_the_summary(two_tones: Path, tmp_path: Path) -> None:
    one = tmp_path / "one.wav"
    soundfile.write(one, sequence([(0.2, 0.5, 55)], 1.0), 22050)
    result = run_cli("transcribe", one, "-o", tmp_path / "one.mid")
    assert result.returncode == 0 and ": 1 note in " in result.stdout, result.stdout


def test_silence_gives_zero_notes_exit_0_and_no_warnings(tmp_path: Path) -> None:
    silence = tmp_path / "silence.wav"
    soundfile.write(silence, np.zeros(22050 * 2, np.float32), 22050)
    result = run_cli("transcribe", silence, "-o", tmp_path / "s.mid", "--csv", tmp_path / "s.csv")
    assert result.returncode == 0 and result.stderr == ""
    assert "0 notes" in result.stdout
    assert not [m for m in mido.MidiFile(tmp_path / "s.mid") if m.type == "note_on"]
    assert (tmp_path / "s.csv").read_text().strip().count("\n") == 0  # header only


def test_a_batch_job_reads_json_on_both_outputs_with_log_json(two_tones: Path, tmp_path: Path) -> None:
    """``transcribe --log-json`` was refused (an unknown flag), so a batch job read text."""
    import json

    missing = tmp_path / "nope.wav"
    result = run_cli("transcribe", two_tones, missing, "-o", tmp_path / "out", "--log-json")
    assert result.returncode == 3
    done, failed = [json.loads(line) for line in result.stdout.splitlines()]
    assert done == {
        "input": str(two_tones),
        "midi": str(tmp_path / "out" / "44100Hz_two_tones.mid"),
        "notes": 2,
        "audio_s": 1.8,
    }
    assert failed == {
        "input": str(missing),
        "midi": str(tmp_path / "out" / "nope.mid"),
        "error": f"{missing}: no such file",
        "exit_code": 3,
    }
    (error,) = [json.loads(line) for line in result.stderr.splitlines()]
    assert error["level"] == "error" and error["message"] == f"{missing}: no such file"
    gone = tmp_path / "gone.wav"  # a second failure is reported too
    both = run_cli("transcribe", missing, gone, "-o", tmp_path / "out2", "--log-json")
    assert both.returncode == 3
    assert [json.loads(line)["input"] for line in both.stdout.splitlines()] == [str(missing), str(gone)]
    assert len(both.stderr.splitlines()) == 2
    streamed = run_cli("transcribe", "--stream", two_tones, "-o", tmp_path / "s.mid", "--log-json", "-q")
    assert streamed.returncode == 0 and streamed.stderr == ""
    summary = json.loads(streamed.stdout)
    assert (summary["notes"], summary["midi"]) == (2, str(tmp_path / "s.mid"))
    assert 0 < summary["delay_p50_ms"] <= summary["delay_p95_ms"] < 150


def test_missing_file(tmp_path: Path) -> None:
    assert_one_line_error(
        run_cli("transcribe", tmp_path / "nope.wav", "-o", tmp_path / "x.mid"), 3, "no such file"
    )


def test_inputs_of_one_name_are_refused_before_their_directory_is_made(
    two_tones: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / two_tones.name).write_bytes(two_tones.read_bytes())
    result = run_cli("transcribe", two_tones, other / two_tones.name, "-o", f"{tmp_path / 'out'}/")
    assert_one_line_error(result, 2, "two inputs have the same name; their outputs in")
    assert not (tmp_path / "out").exists()


def test_corrupt_file(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF1234WAVEfmt garbage" * 10)
    result = run_cli("transcribe", corrupt, "-o", tmp_path / "x.mid")
    assert_one_line_error(result, 3, f"{corrupt}: cannot read audio (")
    assert "b'" not in result.stderr and "Error opening" not in result.stderr  # (soundfile's wrapping)
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    assert_one_line_error(
        run_cli("transcribe", empty, "-o", tmp_path / "x.mid"), 3, f"{empty}: the file is empty"
    )


def test_zero_length_audio(tmp_path: Path) -> None:
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros(0, np.float32), 22050)
    assert_one_line_error(run_cli("transcribe", empty, "-o", tmp_path / "x.mid"), 3, "no audio samples")


def test_nan_and_inf_samples(tmp_path: Path) -> None:
    bad = tmp_path / "inf.wav"
    audio = np.zeros(22050, np.float32)
    audio[100], audio[200] = np.nan, np.inf
    soundfile.write(bad, audio, 22050, subtype="FLOAT")
    assert_one_line_error(
        run_cli("transcribe", bad, "-o", tmp_path / "x.mid"), 3, "2 samples are NaN or infinite"
    )


def test_unwritable_output(two_tones: Path, tmp_path: Path) -> None:
    result = run_cli("transcribe", two_tones, "-o", tmp_path / "no" / "such" / "dir.mid")
    assert_one_line_error(result, 5, "does not exist")
    (tmp_path / "a_file").write_text("")
    result = run_cli("transcribe", two_tones, "-o", tmp_path / "a_file" / "x.mid")
    assert_one_line_error(result, 5, "a_file is a file, not a directory")


@pytest.mark.parametrize(
    ("option", "value", "fragment"),
    [
        ("--onset-threshold", "1.5", "--onset-threshold (decoder.onset_threshold) = 1.5"),
        ("--frame-threshold", "0", "--frame-threshold (decoder.frame_threshold) = 0.0"),
        ("--min-note-ms", "-5", "--min-note-ms (decoder.min_note_ms) = -5.0"),
        ("--max-hz", "20000", "--max-hz (decoder.max_hz) = 20000.0"),
        ("--threads", "-1", "--threads (model.threads) = -1"),
        ("--bend-range", "0", "--bend-range (midi.bend_range_semitones) = 0"),
        ("--bends", "wobbly", "invalid choice"),
        ("--onset-threshold", "high", "invalid float value"),
    ],
)
def test_out_of_range_option(two_tones: Path, tmp_path: Path, option: str, value: str, fragment: str) -> None:
    result = run_cli("transcribe", two_tones, "-o", tmp_path / "x.mid", option, value)
    assert_one_line_error(result, 2, fragment)
    assert not (tmp_path / "x.mid").exists()


def test_min_hz_above_max_hz(two_tones: Path, tmp_path: Path) -> None:
    result = run_cli("transcribe", two_tones, "--min-hz", "800", "--max-hz", "200")
    assert_one_line_error(
        result,
        2,
        "decoder: min_hz (800.0) must be below max_hz (200.0) (min_hz from --min-hz, max_hz from --max-hz)",
    )


def test_incompatible_model_file(two_tones: Path, tmp_path: Path) -> None:
    fake = tmp_path / "fake.onnx"
    fake.write_bytes(b"not a model")
    assert_one_line_error(run_cli("transcribe", two_tones, "--model", fake), 4, "cannot load model")
    assert_one_line_error(run_cli("transcribe", two_tones, "--model", tmp_path), 4, "is a directory")


def test_missing_model_names_the_install_command(two_tones: Path, tmp_path: Path) -> None:
    code = (
        "import importlib.util, sys;"
        "real = importlib.util.find_spec;"
        "importlib.util.find_spec = lambda n, *a: None if n == 'basic_pitch' else real(n, *a);"
        "from livepitch.cli import main;"
        f"sys.exit(main(['transcribe', {str(two_tones)!r}, '-o', {str(tmp_path / 'x.mid')!r}]))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert_one_line_error(result, 4, 'pip install --no-deps "basic-pitch==0.4.0"')


def test_version_and_module_entry_point() -> None:
    result = run_cli("--version")
    assert result.returncode == 0 and result.stdout.startswith("livepitch ")


def test_stream_mode_writes_events_notes_and_midi(two_tones: Path, tmp_path: Path) -> None:
    result = run_cli(
        "transcribe", two_tones, "--stream", "--lookahead-ms", "50", "--hop-frames", "2", "--bends", "mpe",
        "-o", tmp_path / "live.mid", "--csv", tmp_path / "notes.csv", "--events-csv", tmp_path / "events.csv",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    with open(tmp_path / "events.csv", newline="") as handle:
        events = list(csv.DictReader(handle))
    assert list(events[0]) == ["kind", "time_s", "emitted_s", "pitch", "velocity", "channel", "bend_cents"]
    ons = [e for e in events if e["kind"] == "note_on" and int(e["velocity"]) >= 80]
    assert [int(e["pitch"]) for e in ons] == [60, 67]
    assert all(2 <= int(e["channel"]) <= 16 for e in events)
    emitted = [float(e["emitted_s"]) for e in events]
    assert emitted == sorted(emitted)
    for on in ons:
        assert 0 < float(on["emitted_s"]) - float(on["time_s"]) < 0.12
    with open(tmp_path / "notes.csv", newline="") as handle:
        assert 60 in [int(r["pitch"]) for r in csv.DictReader(handle)]
    midi = mido.MidiFile(tmp_path / "live.mid")
    assert [m.note for m in midi if m.type == "note_on" and m.velocity >= 80] == [60, 67]


def test_stream_mode_runs_the_incremental_engine(two_tones: Path, tmp_path: Path) -> None:
    result = run_cli(
        "transcribe", two_tones, "--stream", "--engine", "incremental", "--lookahead-ms", "50",
        "--cqt-refresh-frames", "5", "-o", tmp_path / "live.mid", "--events-csv", tmp_path / "events.csv",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    with open(tmp_path / "events.csv", newline="") as handle:
        events = list(csv.DictReader(handle))
    ons = [e for e in events if e["kind"] == "note_on" and int(e["velocity"]) >= 80]
    assert [int(e["pitch"]) for e in ons] == [60, 67]
    for on in ons:  # 61 ms of lookahead at a hop of one frame, one frame of confirmation
        assert 0 < float(on["emitted_s"]) - float(on["time_s"]) < 0.1


def test_stream_rejects_an_unknown_engine_and_an_out_of_range_refresh(
    two_tones: Path, tmp_path: Path
) -> None:
    result = run_cli("transcribe", two_tones, "--stream", "--engine", "fast", "-o", tmp_path / "x.mid")
    assert result.returncode == 2 and "invalid choice: 'fast'" in result.stderr
    result = run_cli(
        "transcribe", two_tones, "--stream", "--cqt-refresh-frames", "41", "-o", tmp_path / "x.mid"
    )
    assert_one_line_error(result, 2, "--cqt-refresh-frames (stream.cqt_refresh_frames) = 41")


def test_stream_only_options_need_stream(two_tones: Path, tmp_path: Path) -> None:
    result = run_cli("transcribe", two_tones, "--events-csv", tmp_path / "e.csv")
    assert_one_line_error(result, 2, "--events-csv needs --stream")


def test_stream_rejects_an_out_of_range_hop(two_tones: Path, tmp_path: Path) -> None:
    result = run_cli("transcribe", two_tones, "--stream", "--hop-frames", "0", "-o", tmp_path / "x.mid")
    assert_one_line_error(result, 2, "--hop-frames (stream.hop_frames) = 0")


def test_stream_names_only_the_offline_options_given(two_tones: Path, tmp_path: Path) -> None:
    result = run_cli("transcribe", two_tones, "--stream", "--windowing", "compat", "-o", tmp_path / "x.mid")
    assert_one_line_error(result, 2, "--windowing: for the offline decoder, not --stream")
    assert "--no-melodia" not in result.stderr


def test_stream_rejects_mpe_with_more_than_15_voices(two_tones: Path, tmp_path: Path) -> None:
    result = run_cli("transcribe", two_tones, "--stream", "--bends", "mpe", "--max-polyphony", "20")
    assert_one_line_error(result, 2, "at most 15 with mpe")


def test_the_run_help_states_every_default_the_settings_have() -> None:
    from pydantic import BaseModel

    from livepitch.cli_options import build_parser
    from livepitch.settings import AudioSettings, MidiSettings, PortSettings, StreamSettings, TrackerSettings

    commands = next(a for a in build_parser()._actions if a.dest == "command")
    run = commands.choices["run"]  # type: ignore[index]
    helps = {option: action.help or "" for action in run._actions for option in action.option_strings}
    expected: dict[str, tuple[type[BaseModel], str]] = {
        "--lookahead-ms": (StreamSettings, "lookahead_ms"),
        "--engine": (StreamSettings, "engine"),
        "--hop-frames": (StreamSettings, "hop_frames"),
        "--cqt-refresh-frames": (StreamSettings, "cqt_refresh_frames"),
        "--release-ms": (TrackerSettings, "release_ms"),
        "--max-polyphony": (TrackerSettings, "max_polyphony"),
        "--probation-ms": (TrackerSettings, "probation_ms"),
        "--gate-dbfs": (TrackerSettings, "gate_dbfs"),
        "--bend-threshold-cents": (TrackerSettings, "bend_threshold_cents"),
        "--bend-smoothing-ms": (TrackerSettings, "bend_smoothing_ms"),
        "--onset-threshold": (TrackerSettings, "onset_threshold"),
        "--frame-threshold": (TrackerSettings, "frame_threshold"),
        "--block-frames": (AudioSettings, "block_frames"),
        "--ring-ms": (AudioSettings, "ring_ms"),
        "--max-backlog-ms": (AudioSettings, "max_backlog_ms"),
        "--bends": (MidiSettings, "bends"),
        "--midi-api": (PortSettings, "midi_api"),
    }
    for option, (model, field) in expected.items():
        value = model.model_fields[field].default
        value = getattr(value, "value", value)
        shown = f"{value:g}" if isinstance(value, float) else str(value)
        assert f"({shown}" in helps[option], (option, shown, helps[option])


def test_ctrl_c_while_the_command_starts_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from livepitch import cli

    def interrupted() -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_parser", interrupted)
    assert cli.main(["--version"]) == cli.EXIT_INTERRUPTED
    assert capsys.readouterr().err == "livepitch: interrupted\n"


INTERRUPTED_WHILE_LOADING = """
import sys
from livepitch import launch


class Interrupted:  # a Ctrl-C arriving while Python imports livepitch.cli
    def find_spec(self, name, path=None, target=None):
        if name == "livepitch.cli":
            raise KeyboardInterrupt


sys.meta_path.insert(0, Interrupted())
sys.exit(launch.main())
"""


def test_ctrl_c_while_the_command_loads_is_one_line_too() -> None:
    from importlib.metadata import entry_points

    (command,) = entry_points(group="console_scripts", name="livepitch")
    assert command.value == "livepitch.launch:main"  # the ``livepitch`` command starts there
    result = subprocess.run(
        [sys.executable, "-c", INTERRUPTED_WHILE_LOADING],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stderr) == (130, "livepitch: interrupted\n")


def test_a_restart_to_reconnect_hands_the_new_process_no_descriptor_but_0_1_and_2(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """libjack's sockets are inheritable: the new process kept the old one's JACK clients
    alive as zombies, and a live server stopped answering the new process's clients."""
    from livepitch import self_restart
    from livepitch.errors import DeviceError
    from livepitch.self_restart import SessionClock

    read_end, write_end = os.pipe()
    os.set_inheritable(read_end, True)
    inheritable_at_exec: list[tuple[bool, bool]] = []

    def execve(*_: object) -> None:
        inheritable_at_exec.append((os.get_inheritable(read_end), os.get_inheritable(2)))
        raise OSError("exec refused")

    monkeypatch.setattr(os, "execve", execve)
    try:
        with pytest.raises(DeviceError):
            self_restart.restart_self(1, SessionClock(0, 0.0, 0.0))
    finally:
        os.close(read_end)
        os.close(write_end)
    assert inheritable_at_exec == [(False, True)]


def test_a_restart_to_reconnect_holds_stop_and_reload_signals_for_the_new_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Between ``execve`` and the new process's handlers (its imports, tens of ms), SIGTERM
    would kill it and SIGHUP end it: the restart blocks both, the mask survives the exec, and
    the new process unblocks them once it notes them, so one sent meanwhile is acted on."""
    import signal

    from livepitch import self_restart
    from livepitch.errors import DeviceError
    from livepitch.self_restart import SessionClock

    held = {signal.SIGTERM, signal.SIGHUP}
    masks: list[set[int]] = []

    def execve(*_: object) -> None:
        masks.append(set(signal.pthread_sigmask(signal.SIG_BLOCK, [])))
        raise OSError("exec refused")

    monkeypatch.setattr(os, "execve", execve)
    with pytest.raises(DeviceError, match="cannot restart livepitch"):
        self_restart.restart_self(1, SessionClock(0, 0.0, 0.0))
    assert held <= masks[0]  # blocked at the exec
    assert not held & set(signal.pthread_sigmask(signal.SIG_BLOCK, []))  # and again not, as it failed
    self_restart.restart_self(1, SessionClock(0, 0.0, 0.0), stop_requested=lambda: True)
    assert len(masks) == 1  # a stop asked by then: no restart, the signals unblocked
    assert not held & set(signal.pthread_sigmask(signal.SIG_BLOCK, []))

    handlers = {signum: signal.getsignal(signum) for signum in held}
    # the new process, resumed, or started afresh after PortAudio aborted the old one before
    # it played (its SIGTERM stayed blocked: a stop never reached it)
    for variable in (self_restart.RESUME_VARIABLE, self_restart.ABORTS_VARIABLE):
        try:  # started with them blocked, one SIGHUP already pending
            signal.pthread_sigmask(signal.SIG_BLOCK, held)
            signal.pthread_kill(
                threading.main_thread().ident or 0, signal.SIGHUP
            )  # (pytest runs other threads)
            monkeypatch.setenv(variable, "1")
            early = self_restart.remember_early_signals()
            assert early == [signal.SIGHUP]
            assert not held & set(signal.pthread_sigmask(signal.SIG_BLOCK, []))
        finally:
            monkeypatch.delenv(variable)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, held)
            for signum, handler in handlers.items():
                signal.signal(signum, handler)


def test_outputs_that_would_overwrite_each_other_or_an_input_are_refused(
    two_tones: Path, tmp_path: Path
) -> None:
    same = tmp_path / "same.csv"
    assert_one_line_error(
        run_cli(
            "transcribe", two_tones, "--stream", "-o", tmp_path / "o.mid", "--csv", same, "--events-csv", same
        ),
        2,
        f"--events-csv {same} (for {two_tones}) is also --csv for {two_tones}: it would be overwritten",
    )
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    twins = [tmp_path / "a" / "x.wav", tmp_path / "b" / "x.wav"]
    for twin in twins:
        twin.write_bytes(two_tones.read_bytes())
    assert_one_line_error(
        run_cli("transcribe", *twins, cwd=tmp_path), 2, f"(for {twins[1]}) is also -o for {twins[0]}"
    )
    assert not same.exists()


def test_an_output_naming_the_model_or_the_preset_is_refused(two_tones: Path, tmp_path: Path) -> None:
    """The model and the configuration are read, not written: a slip of the shell's completion
    must not replace them with MIDI or CSV."""
    model, config = tmp_path / "m.onnx", tmp_path / "voice.toml"
    model.write_bytes(b"the user's model")
    config.write_text("[tracker]\nmin_hz = 60.0\n")
    refused = [
        (("--model", model, "--csv", model), f"--csv {model} (for {two_tones}) is also the --model file"),
        (
            ("--stream", "--config", config, "-o", config),
            f"-o {config} (for {two_tones}) is also the --config file",
        ),
        (("--stream", "--model", model, "--events-csv", model), "is also the --model file"),
    ]
    for flags, fragment in refused:
        assert_one_line_error(
            run_cli("transcribe", two_tones, *flags), 2, fragment + ": it would be overwritten"
        )
    assert model.read_bytes() == b"the user's model"
    assert config.read_text() == "[tracker]\nmin_hz = 60.0\n"


@pytest.mark.parametrize(
    "command",
    [
        ("config",),
        ("devices",),
        ("transcribe", "{wav}", "-o", "{out}"),
        ("transcribe", "{wav}", "-o", "{out}", "--log-json"),
    ],
)
def test_a_full_standard_output_gets_one_line(
    two_tones: Path, tmp_path: Path, command: tuple[str, ...]
) -> None:
    """``livepitch config > my.toml`` on a full disk: one line and exit 5, as for any output."""
    argv = [part.format(wav=two_tones, out=tmp_path / "x.mid") for part in command]
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [sys.executable, "-m", "livepitch", *argv],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    assert_one_line_error(result, 5, "cannot write standard output: No space left on device")


def test_a_mistyped_command_is_named_as_one() -> None:
    """The run command is implied when no command is given, so a typo was 'unrecognized
    arguments: transcibe take.wav'."""
    assert_one_line_error(
        run_cli("transcibe", "take.wav"),
        2,
        "unknown command 'transcibe' (commands: config, devices, run, transcribe); did you mean 'transcribe'?",
    )
    assert_one_line_error(run_cli("--port", "X", "extra"), 2, "unrecognized arguments: extra")


def test_posteriors_that_cannot_be_written_get_one_line(two_tones: Path, tmp_path: Path) -> None:
    full = tmp_path / "full.npz"
    full.symlink_to("/dev/full")  # a disk with no space left
    result = run_cli("transcribe", two_tones, "-o", tmp_path / "x.mid", "--posteriors", full)
    assert_one_line_error(result, 5, f"cannot write {full}")


def test_a_config_file_saved_with_a_byte_order_mark_reads(tmp_path: Path) -> None:
    config = tmp_path / "notepad.toml"
    config.write_bytes(b"\xef\xbb\xbf[tracker]\nmax_hz = 900.0\n")
    result = run_cli("config", "--config", config)
    assert result.returncode == 0, result.stderr
    assert "max_hz = 900.0" in result.stdout


def test_an_output_written_with_a_trailing_separator_is_a_directory(two_tones: Path, tmp_path: Path) -> None:
    result = run_cli(
        "transcribe", two_tones, "-o", f"{tmp_path / 'midi'}/", "--csv", f"{tmp_path / 'notes'}/"
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "midi" / "44100Hz_two_tones.mid").is_file()
    assert (tmp_path / "notes" / "44100Hz_two_tones.csv").is_file()
    assert not (tmp_path / "midi.mid").exists()


def test_an_output_that_is_a_symlink_loop_gets_one_line(two_tones: Path, tmp_path: Path) -> None:
    (tmp_path / "a.mid").symlink_to(tmp_path / "b.mid")
    (tmp_path / "b.mid").symlink_to(tmp_path / "a.mid")
    assert_one_line_error(run_cli("transcribe", two_tones, "-o", tmp_path / "a.mid"), 5, "a.mid")
    assert_one_line_error(run_cli("transcribe", tmp_path / "a.mid"), 3, "a symbolic link to no file")


def test_a_reader_that_closes_standard_output_ends_the_command_quietly(
    two_tones: Path, tmp_path: Path
) -> None:
    """``livepitch devices | head -1``: exit 141 as for SIGPIPE, no traceback. (The reader is
    gone before livepitch writes: with ``head`` the outcome depended on whether livepitch's one
    write came before or after ``head`` had read its byte and left.)"""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "livepitch", "devices"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)
    assert result.returncode == 141, result.stderr
    assert "Traceback" not in result.stderr and "BrokenPipe" not in result.stderr


def test_a_run_started_without_a_standard_error_still_works(two_tones: Path, tmp_path: Path) -> None:
    shell = (
        f"{sys.executable} -m livepitch --input-file {two_tones} --quiet --record {tmp_path / 'r.mid'} 2>&-"
    )
    result = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stdout
    assert [m.note for m in mido.MidiFile(tmp_path / "r.mid") if m.type == "note_on" and m.velocity] == [
        60,
        67,
    ]


@pytest.mark.parametrize(
    ("flag", "code", "fragment"),
    [("input", 3, "File name too long"), ("-o", 5, "cannot write"), ("--csv", 5, "cannot write"),
     ("--model", 4, "model file")],
)  # fmt: skip
def test_a_path_the_system_cannot_look_at_is_one_line(
    two_tones: Path, tmp_path: Path, flag: str, code: int, fragment: str
) -> None:
    """A name longer than the file system takes (or a directory that may not be searched)
    fails ``stat`` with something other than "no such file": one line, the right exit code."""
    too_long = tmp_path / ("c" * 300 + ".wav")
    args: list[str | Path] = (
        ["transcribe", too_long] if flag == "input" else ["transcribe", two_tones, flag, too_long]
    )
    result = run_cli(*args)
    assert_one_line_error(result, code, fragment)
    assert "File name too long" in result.stderr


def test_a_model_that_is_a_pipe_is_refused_before_it_is_read(two_tones: Path, tmp_path: Path) -> None:
    pipe = tmp_path / "nmp.onnx"
    os.mkfifo(pipe)  # reading it would wait for a writer forever
    result = run_cli("transcribe", two_tones, "-o", tmp_path / "out.mid", "--model", pipe)
    assert_one_line_error(result, 4, "is not a regular file")


def test_a_wav_streamed_through_a_pipe_without_a_length_is_read_block_by_block(tmp_path: Path) -> None:
    """``ffmpeg -f wav -`` declares no length (sizes 0xFFFFFFFF): read whole, that asked for
    2^31 frames (8 GiB), which a memory limit (a service's) refuses."""
    pcm = (sequence([(0.2, 0.5, 60)], 1.0) * 32767).astype("<i2").tobytes()
    fmt = struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 1, 22050, 44100, 2, 16)
    header = b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE" + fmt + b"data" + struct.pack("<I", 0xFFFFFFFF)
    out = tmp_path / "piped.mid"

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    result = subprocess.run(
        [sys.executable, "-m", "livepitch", "transcribe", "/dev/stdin", "-o", str(out)],
        input=header + pcm,
        capture_output=True,
        timeout=120,
        check=False,
        preexec_fn=limit_memory,
    )
    assert result.returncode == 0, result.stderr.decode()
    assert [m.note for m in mido.MidiFile(out) if m.type == "note_on"] == [60]


def test_a_home_that_cannot_be_written_adds_nothing_to_stderr(two_tones: Path, tmp_path: Path) -> None:
    """onnxruntime warns in colour at import when it cannot keep its telemetry id in HOME."""
    home = tmp_path / "home"
    home.write_text("a file, not a directory")
    result = subprocess.run(
        [sys.executable, "-m", "livepitch", "transcribe", str(two_tones), "-o", str(tmp_path / "out.mid")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=dict(os.environ, HOME=str(home)),
    )
    assert result.returncode == 0 and result.stderr == "", result.stderr


def test_an_output_is_written_as_named_and_only_a_name_without_a_suffix_gets_one(
    two_tones: Path, tmp_path: Path
) -> None:
    """``-o take.txt`` wrote take.txt.mid (and ``--csv x.mid`` x.mid.csv) without a word."""
    result = run_cli(
        "transcribe", two_tones, "-o", tmp_path / "take.txt", "--csv", tmp_path / "notes", "--quiet"
    )
    assert result.returncode == 0, result.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["notes.csv", "take.txt"]
    assert (tmp_path / "take.txt").read_bytes().startswith(b"MThd")


def test_an_output_that_is_a_pipe_is_written_as_named(two_tones: Path, tmp_path: Path) -> None:
    """``-o /dev/null`` or a pipe takes the MIDI as it is named: no ``.mid`` is added (that
    made a file /dev/null.mid)."""
    pipe = tmp_path / "to_reader"
    os.mkfifo(pipe)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(pipe.read_bytes()), daemon=True)
    reader.start()
    result = run_cli("transcribe", two_tones, "-o", pipe)
    reader.join(30)
    assert result.returncode == 0, result.stderr
    assert received and received[0].startswith(b"MThd")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["to_reader"]


def test_an_output_the_system_refuses_is_named_as_given_not_by_its_temporary_file(two_tones: Path) -> None:
    result = run_cli("transcribe", two_tones, "-o", "/proc/livepitch-take.mid")
    assert_one_line_error(result, 5, "cannot write /proc/livepitch-take.mid: ")
    assert ".livepitch-" not in result.stderr


@pytest.mark.parametrize("output", ["", "-"])
def test_an_empty_or_dash_output_is_refused(two_tones: Path, output: str, tmp_path: Path) -> None:
    """'' would write into the current directory as '.mid'; '-' would write a file named '-.mid'."""
    result = run_cli("transcribe", two_tones, "-o", output, cwd=tmp_path)
    assert_one_line_error(result, 2, "argument -o/--output")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["run", "config", "devices", "transcribe"])
def test_verbose_goes_before_or_after_the_command(command: str) -> None:
    """``livepitch --input-file x -v`` was refused: -v worked only before the command."""
    from livepitch.cli_options import build_parser

    parser = build_parser()
    words = [command, "take.wav"] if command == "transcribe" else [command]
    assert parser.parse_args(["-v", *words]).verbose
    assert parser.parse_args([*words, "-v"]).verbose
    assert not parser.parse_args(words).verbose


def test_stream_takes_a_configuration_files_live_settings_and_flags_win(
    two_tones: Path, tmp_path: Path
) -> None:
    """A preset tuned for the daemon transcribes a file the same way (its [tracker], [stream],
    [midi], [model]); the file's other sections are checked, not used."""
    config = tmp_path / "low.toml"
    config.write_text('[tracker]\nmax_hz = 300.0\n[audio]\ninput = "some microphone"\n')

    def pitches(*flags: str | Path) -> list[int]:
        out = tmp_path / "x.mid"
        result = run_cli("transcribe", two_tones, "--stream", "--config", config, "-o", out, *flags)
        assert result.returncode == 0, result.stderr
        return [m.note for m in mido.MidiFile(out) if m.type == "note_on" and m.velocity > 0]

    assert pitches() == [60]  # 67 (392 Hz) is above the file's max_hz
    assert pitches("--max-hz", "1000") == [60, 67]
    config.write_text("[tracker]\nmax_polyphony = 100\n")
    result = run_cli("transcribe", two_tones, "--stream", "--config", config, "-o", tmp_path / "x.mid")
    assert_one_line_error(result, 2, f"{config}: tracker.max_polyphony = 100: Input should be")
    result = run_cli("transcribe", two_tones, "--config", config, "-o", tmp_path / "x.mid")
    assert_one_line_error(result, 2, "--config needs --stream")
