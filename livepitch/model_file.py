"""Locate the Basic Pitch ONNX weights without importing ``basic_pitch``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from livepitch.errors import ModelError
from livepitch.paths import is_directory, is_regular_file, stat_or_none

BASIC_PITCH_VERSION = "0.4.0"
INSTALL_COMMAND = f'pip install --no-deps "basic-pitch=={BASIC_PITCH_VERSION}"'
"""The one command that installs the weights (plain ``pip install basic-pitch`` pulls TensorFlow)."""

_RELATIVE_MODEL_PATH = Path("saved_models") / "icassp_2022" / "nmp.onnx"


def installed_model_path() -> Path | None:
    """Path of ``nmp.onnx`` inside an installed ``basic-pitch`` distribution, or None.

    Uses the import machinery's spec only, so ``basic_pitch/__init__`` (which logs about
    missing backends) never runs.
    """
    try:
        spec = importlib.util.find_spec("basic_pitch")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / _RELATIVE_MODEL_PATH
        if candidate.is_file():
            return candidate
    return None


def resolve_model_path(override: str | Path | None = None) -> Path:
    """The model file to load: ``override`` if given, else the installed one.

    Raises ``ModelError`` naming the exact install command when nothing is found.
    """
    if override is not None:
        path = Path(override)
        status = stat_or_none(path, lambda message: ModelError(f"model file {message}"))
        if status is None:
            raise ModelError(f"model file {path} does not exist")
        if is_directory(status):
            raise ModelError(f"model file {path} is a directory: give the nmp.onnx file in it")
        if not is_regular_file(status):
            raise ModelError(f"model file {path} is not a regular file (a device or a pipe)")
        return path
    installed = installed_model_path()
    if installed is None:
        raise ModelError(
            "the Basic Pitch model (nmp.onnx) is not installed; install it with: " + INSTALL_COMMAND
        )
    return installed
