"""Shared fixtures: the model (loaded once), the shared data folder, generated audio."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("LIVEPITCH_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """``../shared/data`` beside the repository (the recordings and reference outputs)."""
    if not DATA_DIR.is_dir():
        pytest.skip(f"shared data not found at {DATA_DIR}")
    return DATA_DIR


@pytest.fixture(scope="session")
def model():  # type: ignore[no-untyped-def]
    """The installed Basic Pitch model behind onnxruntime, loaded once per session."""
    from livepitch.model_file import resolve_model_path
    from livepitch.onnx_model import BasicPitchModel

    return BasicPitchModel(resolve_model_path(), threads=1)
