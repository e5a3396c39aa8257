"""Configuration files (TOML): reading with precedence, and writing the effective settings.

Precedence: defaults < ``--config FILE`` < command-line flags. A file has one table per
settings group (``[stream]``, ``[tracker]``, ``[midi]``, ``[port]``, ``[audio]``,
``[model]``, ``[ui]``); ``config/default.toml`` documents every field.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import typing
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from livepitch.errors import ConfigError, first_line

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


DEFAULT_CONFIG_HEADER = """\
# livepitch configuration: every setting with its default (below this header, this file is
# what `livepitch config` prints with no flags). Pass a file with `livepitch --config FILE`;
# flags override it; SIGHUP reloads it. Presets beside this file set what they tune.
"""


def default_config_text() -> str:
    """The text of ``config/default.toml``: the header and every default setting, documented."""
    from livepitch.settings import DaemonSettings

    return DEFAULT_CONFIG_HEADER + "\n" + settings_to_toml(DaemonSettings())


MAX_CONFIG_CHARS = 1_000_000
"""Longest configuration file read (config/default.toml is about 4000 characters)."""


def read_config_file(path: Path) -> dict[str, Any]:
    """The tables of a TOML file; ``ConfigError`` for a missing or malformed one."""
    try:
        with open(path, encoding="utf-8-sig") as handle:  # -sig: a BOM (Windows editors) is no error
            text = handle.read(MAX_CONFIG_CHARS + 1)  # a pipe from a shell reads; /dev/zero ends
        if len(text) > MAX_CONFIG_CHARS:
            raise ConfigError(f"{path}: over {MAX_CONFIG_CHARS} characters, not a configuration file")
        tables: dict[str, Any] = tomllib.loads(text)
        return tables
    except FileNotFoundError as err:
        raise ConfigError(f"config file {path} does not exist") from err
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not valid TOML ({first_line(err)})") from err
    except OSError as err:
        raise ConfigError(f"cannot read config file {path}: {first_line(err)}") from err


_TOML_KINDS: dict[type, tuple[tuple[type, ...], str]] = {
    bool: ((bool,), "true or false"),
    int: ((int,), "a whole number, without quotes"),
    float: ((int, float), "a number, without quotes"),
}
"""For a setting of this type: the TOML values it takes, and how to say so."""


def check_value_types(tables: dict[str, Any], model_type: type[BaseModel], path: Path | str) -> None:
    """``ConfigError`` for a number or switch written as something else (``"256"``, ``"yes"``,
    ``true`` for a count): pydantic would quietly convert those, or judge ``true`` as the
    number 1. Unknown tables and fields are left to the settings' own validation."""
    for table_name, table in tables.items():
        group = getattr(model_type.model_fields.get(table_name), "annotation", None)
        if not (isinstance(table, dict) and isinstance(group, type) and issubclass(group, BaseModel)):
            continue
        for name, value in table.items():
            field = group.model_fields.get(name)
            if field is None:
                continue
            base = next((t for t in _TOML_KINDS if field.annotation in (t, t | None)), None)
            if base is None:
                continue
            allowed, wanted = _TOML_KINDS[base]
            if isinstance(value, bool) != (base is bool) or not isinstance(value, allowed):
                raise ConfigError(f"{path}: {table_name}.{name} = {_toml_value(value)}: must be {wanted}")


def _names_a_file(annotation: Any) -> bool:
    """Whether a field of this type holds a file name (``Path``, possibly annotated or optional)."""
    if annotation is Path:
        return True
    return any(_names_a_file(inner) for inner in typing.get_args(annotation))


def files_relative_to(tables: dict[str, Any], model_type: type[BaseModel], path: Path) -> dict[str, Any]:
    """``tables`` with every file name in them made to mean what the file at ``path`` says:
    ``~`` is the home directory, and a relative name is relative to the file's directory (a
    service started elsewhere finds the same files; for a configuration that is not a file,
    such as a pipe, the current directory)."""
    try:
        directory = path.parent if stat.S_ISREG(os.stat(path).st_mode) else Path.cwd()
    except OSError:  # (gone since it was read)
        directory = path.parent
    resolved: dict[str, Any] = {}
    for table_name, table in tables.items():
        group = getattr(model_type.model_fields.get(table_name), "annotation", None)
        if not (isinstance(table, dict) and isinstance(group, type) and issubclass(group, BaseModel)):
            resolved[table_name] = table
            continue
        resolved[table_name] = dict(table)
        for name, value in table.items():
            field = group.model_fields.get(name)
            if field is None or not isinstance(value, str) or not value.strip():
                continue  # (an empty name is refused by the settings themselves)
            if _names_a_file(field.annotation):
                try:
                    named = Path(value).expanduser()
                except RuntimeError:  # ~user of no user: the settings say so
                    continue
                resolved[table_name][name] = str(named if named.is_absolute() else directory / named)
    return resolved


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``override`` laid over it, table by table."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return _toml_value(value.value)
    if isinstance(value, (int, float)):
        return repr(value)
    # TOML's basic strings escape as JSON's do, but DEL too
    return json.dumps(str(value), ensure_ascii=False).replace("\x7f", "\\u007f")


def _utf8(text: str) -> bool:
    """Whether ``text`` is valid Unicode (a file name that is not UTF-8 holds surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def settings_to_toml(settings: BaseModel, documented: bool = True) -> str:
    """TOML text of ``settings``: a table per group, each field with its description.

    Fields without a value (None) are written commented out, so the file stays valid. File
    names are absolute: a file's relative names are read relative to its own directory, and
    the text may be saved anywhere.
    """
    lines: list[str] = []
    for group_name, _group_field in type(settings).model_fields.items():
        group = getattr(settings, group_name)
        if not isinstance(group, BaseModel):
            continue
        if lines:
            lines.append("")
        if documented and group.__doc__:
            lines.append(f"# {group.__doc__.strip().splitlines()[0]}")
        lines.append(f"[{group_name}]")
        for name, field in type(group).model_fields.items():
            value = getattr(group, name)
            if isinstance(value, Path):  # read back from anywhere: names are relative to the file
                value = value.absolute()
            if documented and field.description:
                lines.append(f"# {field.description}")
            if value is None:
                lines.append(f"# {name} =")
            elif isinstance(value, (str, Path)) and not _utf8(str(value)):
                text = os.fsencode(value).decode("utf-8", "backslashreplace")
                shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)
                lines.append(f'# {name} = "{shown}"  (not UTF-8, which TOML cannot hold: give it as a flag)')
            else:
                lines.append(f"{name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"
