"""Configuration: the documented defaults file, presets, precedence and one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from livepitch.config_file import default_config_text, read_config_file
from livepitch.settings import DaemonSettings

CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"


def livepitch(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "livepitch", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_default_toml_documents_every_field_with_its_default() -> None:
    assert (CONFIG_DIR / "default.toml").read_text() == default_config_text()
    tables = read_config_file(CONFIG_DIR / "default.toml")
    assert DaemonSettings.model_validate(tables) == DaemonSettings()
    text = (CONFIG_DIR / "default.toml").read_text()
    for group_name, group in DaemonSettings().model_dump().items():
        assert f"[{group_name}]" in text
        for field in group:
            assert f"{field} =" in text, field


@pytest.mark.parametrize("preset", ["voice", "guitar", "piano", "bass"])
def test_presets_load_and_differ_from_the_defaults(preset: str) -> None:
    settings = DaemonSettings.model_validate(read_config_file(CONFIG_DIR / f"{preset}.toml"))
    assert settings != DaemonSettings()


def test_flags_override_the_file_which_overrides_defaults(tmp_path: Path) -> None:
    config = tmp_path / "mine.toml"
    config.write_text('[stream]\nlookahead_ms = 100.0\nhop_frames = 4\n[midi]\nbends = "mpe"\n')
    result = livepitch("config", "--config", config, "--hop-frames", "2")
    assert result.returncode == 0, result.stderr
    assert "lookahead_ms = 100.0" in result.stdout
    assert "hop_frames = 2" in result.stdout
    assert 'bends = "mpe"' in result.stdout
    assert "release_ms = 35.0" in result.stdout


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        (
            "[tracker]\nonset_threshold = 3\n",
            "tracker.onset_threshold = 3: Input should be less than or equal to 1",
        ),
        ("[tracker]\nonset_treshold = 0.4\n", "unknown setting 'tracker.onset_treshold' (allowed here: "),
        ("[audoi]\ninput = 1\n", "allowed here: model, stream, tracker, midi, port, audio, ui"),
        ('[midi]\nbends = "wobble"\n', "midi.bends = 'wobble': Input should be 'none', 'single' or 'mpe'"),
        ("[stream\nlookahead_ms = 1\n", "not valid TOML"),
        # numbers and switches as written, not converted: "256" is text, true is no count
        (
            '[audio]\nblock_frames = "256"\n',
            'audio.block_frames = "256": must be a whole number, without quotes',
        ),
        ("[audio]\nblock_frames = true\n", "audio.block_frames = true: must be a whole number"),
        ("[audio]\nblock_frames = 256.5\n", "audio.block_frames = 256.5: must be a whole number"),
        ('[stream]\nlookahead_ms = "70"\n', 'stream.lookahead_ms = "70": must be a number, without quotes'),
        ('[ui]\nquiet = "yes"\n', 'ui.quiet = "yes": must be true or false'),
        ("[ui]\nquiet = 1\n", "ui.quiet = 1: must be true or false"),
        ('[audio]\nresample_quality = "XQ"\n', "audio.resample_quality = 'XQ': allowed: QQ, LQ, MQ, HQ, VHQ"),
    ],
)
def test_a_bad_file_gets_one_line_naming_field_value_and_what_is_allowed(
    tmp_path: Path, content: str, fragment: str
) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(content)
    result = livepitch("config", "--config", config)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert fragment in result.stderr


def test_a_missing_config_file(tmp_path: Path) -> None:
    result = livepitch("--config", tmp_path / "nope.toml")
    assert result.returncode == 2 and "does not exist" in result.stderr


def test_a_device_index_in_a_file_and_odd_characters_read_back(tmp_path: Path) -> None:
    config = tmp_path / "device.toml"
    config.write_text("[audio]\ninput = 3\n")
    shown = livepitch("config", "--config", config, "--connect", 'a\tb "quoted" \x7f')
    assert shown.returncode == 0, shown.stderr
    again = tmp_path / "again.toml"
    again.write_text(shown.stdout)
    result = livepitch("config", "--config", again)
    assert result.returncode == 0, result.stderr
    assert 'input = "3"' in result.stdout and 'connect = "a\\tb \\"quoted\\" \\u007f"' in result.stdout


def test_a_file_name_that_is_not_utf8_is_shown_but_not_written_as_toml(tmp_path: Path) -> None:
    record = str(tmp_path) + "/take\udcff.mid"  # the byte 0xff in a file name, as Python holds it
    shown = livepitch("config", "--record", record)
    assert shown.returncode == 0, shown.stderr
    assert '# record = "' + str(tmp_path) + '/take\\xff.mid"  (not UTF-8' in shown.stdout
    again = tmp_path / "again.toml"
    again.write_text(shown.stdout)  # what `livepitch config > file` saves reads back
    assert livepitch("config", "--config", again).returncode == 0


def test_the_bass_preset_keeps_e1_to_g4_as_its_comment_says() -> None:
    from livepitch.decoder import pitch_bin_range
    from livepitch.geometry import LOWEST_MIDI_PITCH

    tracker = DaemonSettings.model_validate(read_config_file(CONFIG_DIR / "bass.toml")).tracker
    first, stop = pitch_bin_range(tracker.min_hz, tracker.max_hz)
    assert first + LOWEST_MIDI_PITCH <= 28  # E1
    assert stop + LOWEST_MIDI_PITCH - 1 == 67  # G4 is the highest kept; G#4 is not


def test_a_command_after_the_options_gets_a_hint_not_a_puzzle() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "livepitch", "--config", str(CONFIG_DIR / "bass.toml"), "config"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "the command comes first, its options after it: livepitch config ..." in result.stderr


def test_an_endless_config_file_is_refused_not_read_forever() -> None:
    result = livepitch("config", "--config", "/dev/zero")
    assert result.returncode == 2 and "not a configuration file" in result.stderr


def test_a_config_given_through_a_pipe_reads(tmp_path: Path) -> None:
    shell = f"{sys.executable} -m livepitch config --config <(printf '[tracker]\\nonset_threshold = 0.6\\n')"
    result = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "\nonset_threshold = 0.6\n" in result.stdout


def test_a_lookahead_with_no_future_audio_is_refused() -> None:
    """With no audio after a frame, the model's onset posteriors never peak: no note at all."""
    from livepitch.errors import ConfigError
    from livepitch.settings import build_settings

    with pytest.raises(ConfigError, match=r"stream.lookahead_ms = 3.0: .*greater than or equal to 5"):
        build_settings(DaemonSettings, {"stream": {"lookahead_ms": 3.0}})
    assert build_settings(DaemonSettings, {"stream": {"lookahead_ms": 12.0}}).stream.lookahead_ms == 12.0


@pytest.mark.parametrize(
    ("group", "values", "message"),
    [
        ("port", {"events_csv": "a\x00b.csv"}, "port.events_csv: a file name cannot hold a NUL character"),
        ("audio", {"input_file": "take\x00.wav"}, "audio.input_file: a file name cannot hold a NUL"),
        ("port", {"port": "Basic\nPitch"}, "port.port: a port name takes printable characters only"),
        ("port", {"port": "  "}, "port.port: a port name needs a visible character"),
        ("port", {"port": "é" * 32}, "port.port: a port name can take 63 bytes of UTF-8 at most"),
        ("audio", {"input": ""}, "audio.input: a device needs an index or a visible part of its name"),
        ("audio", {"input": " "}, "audio.input: a device needs an index or a visible part of its name"),
        ("port", {"port": "Basic\u00a0Pitch"}, "port.port: a port name takes printable characters only"),
    ],
)
def test_names_the_system_would_refuse_or_cut_are_refused_naming_the_setting(
    group: str, values: dict[str, str], message: str
) -> None:
    from livepitch.errors import ConfigError
    from livepitch.settings import build_settings

    with pytest.raises(ConfigError) as caught:
        build_settings(DaemonSettings, {group: values})
    assert str(caught.value).startswith(message)


def test_the_printed_configuration_reads_back_the_same_from_another_directory(tmp_path: Path) -> None:
    """``livepitch config --config sub/mine.toml > sub/saved.toml``: a file's relative names
    are read relative to the file, so the printed ones are absolute (they were relative to the
    current directory, and read back as sub/sub/...)."""
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "mine.toml").write_text('[audio]\ninput_file = "take.wav"\n[port]\nrecord = "out.mid"\n')
    shown = subprocess.run(
        [sys.executable, "-m", "livepitch", "config", "--config", "sub/mine.toml", "--events-csv", "ev.csv"],
        capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    (sub / "saved.toml").write_text(shown.stdout)
    again = livepitch("config", "--config", sub / "saved.toml")
    assert again.returncode == 0, again.stderr
    assert again.stdout == shown.stdout
    for name, where in (
        ("input_file", sub / "take.wav"),
        ("record", sub / "out.mid"),
        ("events_csv", tmp_path / "ev.csv"),
    ):
        assert f'{name} = "{where}"' in shown.stdout, shown.stdout


def test_more_voices_than_mpe_member_channels_are_refused() -> None:
    """MPE has 15 member channels: a 16th note at once would find none, and the worker would
    fail in the middle of the performance."""
    from livepitch.errors import ConfigError
    from livepitch.settings import build_settings

    mpe = {"midi": {"bends": "mpe"}}
    with pytest.raises(ConfigError, match=r"max_polyphony \(16\) must be at most 15 with mpe"):
        build_settings(DaemonSettings, {**mpe, "tracker": {"max_polyphony": 16}})
    assert (
        build_settings(DaemonSettings, {**mpe, "tracker": {"max_polyphony": 15}}).tracker.max_polyphony == 15
    )


def test_a_polyphony_of_0_is_refused() -> None:
    """No voice at all would play no note, with nothing saying why."""
    from livepitch.errors import ConfigError
    from livepitch.settings import build_settings

    with pytest.raises(
        ConfigError, match=r"tracker\.max_polyphony = 0: Input should be greater than or equal to 1"
    ):
        build_settings(DaemonSettings, {"tracker": {"max_polyphony": 0}})


def test_a_backlog_limit_as_long_as_the_ring_is_refused() -> None:
    """The worker skips ahead once it is behind by more than the backlog limit: with a limit as
    long as the ring it never is, and the ring overflows instead, losing blocks as they come."""
    from livepitch.errors import ConfigError
    from livepitch.settings import build_settings

    with pytest.raises(ConfigError, match=r"max_backlog_ms \(500.0\) must be below ring_ms \(500.0\)"):
        build_settings(DaemonSettings, {"audio": {"ring_ms": 500.0, "max_backlog_ms": 500.0}})


def test_the_window_engine_refuses_a_lookahead_and_hop_that_reach_its_windows_start() -> None:
    """At 1950 ms (168 frames) and a hop of 3 the window engine published frames 1-3 of its
    window, whose receptive field reaches the zeros before it: held notes re-struck every 90 ms.
    The incremental engine has no such window."""
    from livepitch.errors import ConfigError
    from livepitch.settings import build_settings

    with pytest.raises(ConfigError, match=r"a lookahead of at most 1849 ms"):
        build_settings(DaemonSettings, {"stream": {"engine": "window", "lookahead_ms": 1950.0}})
    with pytest.raises(ConfigError, match=r"hop_frames \(100\).*at most 722 ms"):
        build_settings(
            DaemonSettings, {"stream": {"engine": "window", "lookahead_ms": 800.0, "hop_frames": 100}}
        )
    assert build_settings(DaemonSettings, {"stream": {"engine": "window", "lookahead_ms": 1849.0}})
    assert build_settings(DaemonSettings, {"stream": {"engine": "incremental", "lookahead_ms": 1950.0}})


def test_a_followed_bend_stays_inside_the_bend_range_announced() -> None:
    """The wheel cannot go past the range announced: a note bent further is re-pitched, half a
    semitone before the end of the range, or the synth would play it flat of the voice."""
    from livepitch.settings import BendMode, MidiSettings

    assert MidiSettings(bends=BendMode.SINGLE).max_followed_bend_semitones == 1.5
    assert MidiSettings(bends=BendMode.MPE).max_followed_bend_semitones == 47.5
    assert MidiSettings(bends=BendMode.MPE, bend_range_semitones=12).max_followed_bend_semitones == 11.5


def test_mpe_announces_mpes_own_bend_range_of_48_unless_set() -> None:
    """The MPE zone's setup sets the member channels to +-48: a synth that ignores the RPN 0
    after it keeps 48, and would bend every note by another amount than livepitch meant."""
    from livepitch.settings import BendMode, MidiSettings

    assert MidiSettings(bends=BendMode.MPE).effective_bend_range_semitones == 48
    assert MidiSettings(bends=BendMode.SINGLE).effective_bend_range_semitones == 2
