"""Validated settings (pydantic): every command-line option is a field here.

A bad value raises ``ConfigError`` with one line naming the field, the value given and what
is allowed; the CLI prints that line and exits 2.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from livepitch.decoder import DecoderParams, ms_to_frames
from livepitch.errors import ConfigError
from livepitch.geometry import MODEL_RATE_HZ
from livepitch.windowing import Windowing


class BendMode(str, Enum):
    """How pitch bends reach MIDI.

    ``none``: no bends. ``single``: one channel, bends only on notes that overlap no other
    note. ``mpe``: MPE lower zone, every sounding note on its own member channel.
    """

    NONE = "none"
    SINGLE = "single"
    MPE = "mpe"


DEFAULT_BEND_RANGE_SEMITONES = {BendMode.NONE: 2, BendMode.SINGLE: 2, BendMode.MPE: 48}
"""Bend range announced with RPN 0 unless set: the MIDI default +-2, MPE's default +-48."""


class DecoderSettings(BaseModel):
    """Note-decoding thresholds and limits (upstream Basic Pitch's defaults)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    onset_threshold: float = Field(0.5, gt=0.0, le=1.0, description="onset posterior peak needed for a note")
    frame_threshold: float = Field(
        0.3, gt=0.0, le=1.0, description="note posterior that keeps a note sounding"
    )
    min_note_ms: float = Field(
        127.70, ge=0.0, le=10_000.0, description="notes must last longer than this [ms]"
    )
    min_hz: float | None = Field(None, gt=0.0, le=MODEL_RATE_HZ / 2, description="ignore pitches below [Hz]")
    max_hz: float | None = Field(None, gt=0.0, le=MODEL_RATE_HZ / 2, description="ignore pitches above [Hz]")
    melodia: bool = Field(True, description="melodia trick: notes grown from strong frames without an onset")
    infer_onsets: bool = Field(True, description="add onsets where the note posterior rises sharply")

    @model_validator(mode="after")
    def _check_range(self) -> DecoderSettings:
        if self.min_hz is not None and self.max_hz is not None and self.min_hz >= self.max_hz:
            raise ValueError(f"min_hz ({self.min_hz}) must be below max_hz ({self.max_hz})")
        return self

    def decoder_params(self, estimate_bends: bool = True) -> DecoderParams:
        """The decoder's parameters for these settings."""
        return DecoderParams(
            onset_threshold=self.onset_threshold,
            frame_threshold=self.frame_threshold,
            min_note_frames=ms_to_frames(self.min_note_ms),
            infer_onsets=self.infer_onsets,
            melodia_trick=self.melodia,
            min_hz=self.min_hz,
            max_hz=self.max_hz,
            estimate_bends=estimate_bends,
        )


class MidiSettings(BaseModel):
    """How notes and bends are written as MIDI."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bends: BendMode = Field(BendMode.SINGLE, description="none | single | mpe")
    bend_range_semitones: int | None = Field(
        None, ge=1, le=96, description="bend range announced by RPN 0 (default: 2, or 48 with mpe)"
    )

    @property
    def effective_bend_range_semitones(self) -> int:
        """The bend range in force."""
        if self.bend_range_semitones is not None:
            return self.bend_range_semitones
        return DEFAULT_BEND_RANGE_SEMITONES[self.bends]


class ModelSettings(BaseModel):
    """Which model file, and how onnxruntime runs it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path | None = Field(None, description="nmp.onnx to load (default: the installed basic-pitch)")
    threads: int = Field(0, ge=0, le=64, description="onnxruntime intra-op threads (0: automatic)")


class TranscribeSettings(BaseModel):
    """Everything ``livepitch transcribe`` needs besides its inputs and outputs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    decoder: DecoderSettings = DecoderSettings()
    midi: MidiSettings = MidiSettings()
    model: ModelSettings = ModelSettings()
    windowing: Windowing = Field(Windowing.UNIFORM, description="compat | uniform")


def build_settings(model_type: type[BaseModel], values: dict[str, Any]) -> Any:
    """Validate ``values`` into ``model_type``; a failure becomes one ``ConfigError`` line."""
    try:
        return model_type.model_validate(values)
    except ValidationError as err:
        raise ConfigError(describe_validation_error(err)) from err


def describe_validation_error(err: ValidationError) -> str:
    """One line naming the first bad field, the value given and what is allowed."""
    first = err.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "settings"
    given = first.get("input")
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        return f"unknown setting {field!r}"
    if isinstance(given, dict):
        return f"{field}: {message}"
    return f"{field} = {given!r}: {message}"
