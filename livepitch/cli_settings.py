"""Settings from the command line: defaults < a configuration file < flags, each error naming
the flag or the file that gave the value."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from livepitch.errors import ConfigError

if TYPE_CHECKING:
    from pydantic import BaseModel


def daemon_values_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the flags set, as nested tables (unset flags are left out)."""
    groups = {
        "audio": {
            "input": args.input,
            "host_api": args.host_api,
            "channel": args.channel,
            "sample_rate_hz": args.sample_rate,
            "block_frames": args.block_frames,
            "callback": args.audio_callback,
            "input_file": args.input_file,
            "ring_ms": args.ring_ms,
            "max_backlog_ms": args.max_backlog_ms,
        },
        "port": {
            "port": args.port,
            "midi_api": args.midi_api,
            "connect": args.connect,
            "record": args.record,
            "events_csv": args.events_csv,
            "save_every_s": args.save_every_s,
        },
        "midi": {"bends": args.bends, "bend_range_semitones": args.bend_range},
        "stream": {
            "engine": args.engine,
            "lookahead_ms": args.lookahead_ms,
            "hop_frames": args.hop_frames,
            "cqt_refresh_frames": args.cqt_refresh_frames,
        },
        "tracker": {
            "onset_threshold": args.onset_threshold,
            "frame_threshold": args.frame_threshold,
            "infer_onsets": args.infer_onsets,
            "release_ms": args.release_ms,
            "min_note_ms": args.min_note_ms,
            "probation_ms": args.probation_ms,
            "gate_dbfs": args.gate_dbfs,
            "confirm_with_preview": args.confirm_with_preview,
            "max_polyphony": args.max_polyphony,
            "min_hz": args.min_hz,
            "max_hz": args.max_hz,
            "bend_threshold_cents": args.bend_threshold_cents,
            "bend_smoothing_ms": args.bend_smoothing_ms,
        },
        "model": {"path": args.model, "threads": args.threads},
        "ui": {
            "quiet": args.quiet,
            "print_notes": args.print_notes,
            "log_json": args.log_json,
            "log_level": args.log_level,
        },
    }
    return {name: values for name, group in groups.items() if (values := _drop_none(group))}


def daemon_settings_from_args(args: argparse.Namespace, tables: dict[str, Any] | None = None) -> Any:
    """Effective ``DaemonSettings``: defaults < ``--config`` file < flags. ``tables``: the
    file's, already read (else it is read here: a reload reads it again)."""
    from livepitch.settings import DaemonSettings

    values = config_tables(args.config, tables) if args.config is not None else {}
    settings = settings_from(
        DaemonSettings, args.config, values, daemon_values_from_args(args), _naming_the_flag
    )
    if args.config is not None:
        _outputs_spare_the_config(settings, Path(args.config))
    return settings


def settings_from(
    model_type: type[BaseModel],
    config: Path | None,
    from_file: dict[str, Any],
    overrides: dict[str, Any],
    naming: Callable[[Any], ConfigError] | None = None,
) -> Any:
    """``model_type`` from a configuration file's tables, then ``overrides`` over them. A bad
    value the file set and no override did is named with the file; one an override gave, by
    ``naming`` (the flag), or as it is."""
    from livepitch.config_file import merge
    from livepitch.settings import SettingError, build_settings

    try:
        return build_settings(model_type, merge(from_file, overrides))
    except SettingError as err:
        sources = {"flag": naming is not None, "file": config}
        where = _where_each_came_from(err, model_type, from_file, overrides, sources)
        if where:  # a check across a group's settings
            raise ConfigError(f"{err} ({where})") from err
        if config is not None and given(from_file, err.location) and not given(overrides, err.location):
            raise ConfigError(f"{config}: {err}") from err
        raise (naming(err) if naming is not None else err) from err


_FLAGS_NAMED_OTHERWISE = {
    "sample_rate_hz": "--sample-rate",
    "callback": "--audio-callback",
    "bend_range_semitones": "--bend-range",
    "path": "--model",
    "melodia": "--no-melodia",
}
"""Settings whose flag is not ``--`` and the field's name with hyphens."""


def _where_each_came_from(
    err: Any,
    model_type: type[BaseModel],
    from_file: dict[str, Any],
    overrides: dict[str, Any],
    sources: dict[str, Any],
) -> str:
    """``min_hz from c.toml, max_hz from --max-hz``: where each setting named by ``err``, a
    failed check across a group's settings, came from; "" for any other error. An override
    is a flag's where ``sources["flag"]``, else the caller's arguments; ``sources["file"]``
    is the configuration file, or None."""
    if len(err.location) != 1 or err.location[0] not in model_type.model_fields:
        return ""  # (not a check across a group's settings)
    group = err.location[0]
    fields = getattr(model_type.model_fields[group].annotation, "model_fields", {})
    named = [field for field in re.findall(r"[a-z][a-z0-9_]*", str(err)) if field in fields]
    parts = []
    for field in dict.fromkeys(named):
        if given(overrides, (group, field)):
            source = _flag_of(field) if sources["flag"] else "the arguments"
        elif sources["file"] is not None and given(from_file, (group, field)):
            source = str(sources["file"])
        else:
            source = "the default"
        parts.append(f"{field} from {source}")
    return ", ".join(parts)


def _flag_of(field: str) -> str:
    """The command-line flag that sets ``field``."""
    return _FLAGS_NAMED_OTHERWISE.get(field, "--" + field.replace("_", "-"))


def _naming_the_flag(err: Any) -> ConfigError:
    """A ``SettingError`` about a value a flag gave, its line starting with that flag
    (``--lookahead-ms (stream.lookahead_ms) = 2.0: ...``): the user typed the flag."""
    field = err.location[-1] if err.location else ""
    dotted = ".".join(err.location)
    text = str(err)
    if not field or not (text.startswith(dotted + " ") or text.startswith(dotted + ":")):
        return err  # type: ignore[no-any-return]
    flag = _flag_of(field)
    return type(err)(f"{flag} ({dotted}){text[len(dotted) :]}", err.location)  # type: ignore[no-any-return]


def config_tables(config: Path, tables: dict[str, Any] | None = None) -> dict[str, Any]:
    """A daemon configuration file's tables (``tables``: already read), their value types
    checked, file names made relative to the file's directory."""
    from livepitch.config_file import check_value_types, files_relative_to, read_config_file
    from livepitch.settings import DaemonSettings

    values = read_config_file(config) if tables is None else tables
    check_value_types(values, DaemonSettings, config)
    return files_relative_to(values, DaemonSettings, config)


def given(tables: dict[str, Any], location: tuple[str, ...]) -> bool:
    """Whether ``tables`` set the setting at ``location`` (or, for a group, any of its fields)."""
    value: Any = tables
    for part in location:
        if not isinstance(value, dict) or part not in value:
            return False
        value = value[part]
    return True


def _outputs_spare_the_config(settings: Any, config: Path) -> None:
    """``--record`` and ``--events-csv`` must not name the configuration file (it would be
    truncated at the start, and a reload would then read an empty configuration)."""
    from livepitch.settings import resolved_path

    for flag, path in (("--record", settings.port.record), ("--events-csv", settings.port.events_csv)):
        if path is not None and resolved_path(path) == resolved_path(config):
            raise ConfigError(f"{flag} {path} is also the --config file: it would be overwritten")


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def transcribe_settings_from_args(args: argparse.Namespace) -> Any:
    """Validated ``TranscribeSettings`` from parsed arguments (unset flags keep defaults)."""
    from livepitch.settings import TranscribeSettings

    values: dict[str, Any] = {
        "decoder": _drop_none(
            {
                "onset_threshold": args.onset_threshold,
                "frame_threshold": args.frame_threshold,
                "min_note_ms": args.min_note_ms,
                "min_hz": args.min_hz,
                "max_hz": args.max_hz,
                "melodia": False if args.no_melodia else None,
                "infer_onsets": args.infer_onsets,
            }
        ),
        "midi": _drop_none({"bends": args.bends, "bend_range_semitones": args.bend_range}),
        "model": _drop_none({"path": args.model, "threads": args.threads}),
    }
    if args.windowing is not None:
        values["windowing"] = args.windowing
    return settings_from(TranscribeSettings, None, {}, values, _naming_the_flag)  # (every value a flag's)


def live_settings_from_args(args: argparse.Namespace) -> Any:
    """Validated ``LiveSettings`` from parsed arguments (unset flags keep defaults)."""
    from livepitch.settings import LiveSettings

    tracker = _drop_none(
        {
            "onset_threshold": args.onset_threshold,
            "frame_threshold": args.frame_threshold,
            "min_note_ms": args.min_note_ms,
            "min_hz": args.min_hz,
            "max_hz": args.max_hz,
            "infer_onsets": args.infer_onsets,
            "release_ms": args.release_ms,
            "max_polyphony": args.max_polyphony,
            "bend_threshold_cents": args.bend_threshold_cents,
            "probation_ms": args.probation_ms,
            "gate_dbfs": args.gate_dbfs,
            "confirm_with_preview": args.confirm_with_preview,
            "bend_smoothing_ms": args.bend_smoothing_ms,
        }
    )
    values: dict[str, Any] = {
        "tracker": tracker,
        "stream": _drop_none(
            {
                "engine": args.engine,
                "lookahead_ms": args.lookahead_ms,
                "hop_frames": args.hop_frames,
                "cqt_refresh_frames": args.cqt_refresh_frames,
                "block_samples": args.block_samples,
            }
        ),
        "midi": _drop_none({"bends": args.bends, "bend_range_semitones": args.bend_range}),
        "model": _drop_none({"path": args.model, "threads": args.threads}),
    }
    flags = {group: fields for group, fields in values.items() if fields}
    from_file = live_tables_of(args.config, flags, _naming_the_flag) if args.config is not None else {}
    return settings_from(LiveSettings, args.config, from_file, flags, _naming_the_flag)


def live_tables_of(
    config: Path, overrides: dict[str, Any], naming: Callable[[Any], ConfigError] | None = None
) -> dict[str, Any]:
    """The groups of a daemon configuration file the live engine uses (model, stream, tracker,
    midi: a preset's), the whole file checked as the daemon would check it with ``overrides``
    over it (``naming``: as ``settings_from``'s)."""
    from livepitch.settings import DaemonSettings

    tables = config_tables(config)
    settings_from(DaemonSettings, config, tables, overrides, naming)
    return {group: tables[group] for group in LIVE_GROUPS if group in tables}


LIVE_GROUPS = ("model", "stream", "tracker", "midi")
"""A configuration file's sections that ``transcribe --stream --config`` takes."""
