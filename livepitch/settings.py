"""Validated settings (pydantic): every command-line option is a field here.

A bad value raises ``ConfigError`` with one line naming the field, the value given and what
is allowed; the CLI prints that line and exits 2.
"""

from __future__ import annotations

import math
import re
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from livepitch.decoder import DecoderParams, ms_to_frames
from livepitch.errors import ConfigError
from livepitch.geometry import MODEL_RATE_HZ, WINDOW_FRAMES
from livepitch.tracker import GATE_OFF_DBFS, TrackerParams
from livepitch.windowing import Windowing


def _not_empty(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        raise ValueError("a file name cannot be empty")
    return value


def _no_nul_character(path: Path) -> Path:
    if "\x00" in str(path):
        raise ValueError("a file name cannot hold a NUL character")
    try:
        return path.expanduser()
    except RuntimeError as err:  # ~name of no user
        raise ValueError(f"cannot expand {str(path).split('/')[0]}: no such user") from err


FilePath = Annotated[Path, BeforeValidator(_not_empty), AfterValidator(_no_nul_character)]
"""A file named in the settings (the system takes any name but an empty one or one holding
NUL; ``~`` is the home directory)."""

MAX_PORT_NAME_BYTES = 63
"""ALSA keeps 63 bytes of a port's name (JACK more): a longer name would be cut, maybe
inside a character."""


def _port_name(name: str) -> str:
    if not name.strip():
        raise ValueError("a port name needs a visible character")
    if any(not character.isprintable() for character in name):
        raise ValueError("a port name takes printable characters only (no line break, tab or no-break space)")
    if len(name.encode("utf-8")) > MAX_PORT_NAME_BYTES:
        raise ValueError(f"a port name can take {MAX_PORT_NAME_BYTES} bytes of UTF-8 at most")
    return name


def _device_name(name: str) -> str:
    if not name.strip():
        raise ValueError("a device needs an index or a visible part of its name")
    return name


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

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

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

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

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

    @property
    def max_followed_bend_semitones(self) -> float:
        """How far a note may bend before the tracker re-pitches it (0.6 without bends)."""
        if self.bends is BendMode.NONE:
            return 0.6
        return self.effective_bend_range_semitones - 0.5


class ModelSettings(BaseModel):
    """Which model file, and how onnxruntime runs it."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    path: FilePath | None = Field(None, description="nmp.onnx to load (default: the installed basic-pitch)")
    threads: int = Field(
        0, ge=0, le=64, description="onnxruntime threads (0: automatic offline, 1 in the daemon)"
    )


class TranscribeSettings(BaseModel):
    """Everything ``livepitch transcribe`` needs besides its inputs and outputs."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    decoder: DecoderSettings = DecoderSettings()
    midi: MidiSettings = MidiSettings()
    model: ModelSettings = ModelSettings()
    windowing: Windowing = Field(Windowing.UNIFORM, description="compat | uniform")


DEFAULT_LOOKAHEAD_MS = 70.0
DEFAULT_HOP_FRAMES = 3
DEFAULT_CQT_REFRESH_FRAMES = 7
DEFAULT_GATE_DBFS = -48.0


class EngineKind(str, Enum):
    """Which frame engine runs the model (see ``livepitch.window_engine``, ``livepitch.incremental_engine``)."""

    WINDOW = "window"
    INCREMENTAL = "incremental"


class StreamSettings(BaseModel):
    """How the streaming engine runs the model (``livepitch.window_engine``, ``incremental_engine``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    engine: EngineKind = Field(
        EngineKind.INCREMENTAL,
        description="window (re-runs the 2 s window per hop) | incremental (new columns only)",
    )
    lookahead_ms: float = Field(
        DEFAULT_LOOKAHEAD_MS,
        ge=5.0,
        le=1950.0,
        description="audio after a frame before it is used [ms] (at least 5: with none, the model shows no onsets)",
    )
    hop_frames: int = Field(
        DEFAULT_HOP_FRAMES,
        ge=1,
        le=142,
        description="window engine: frames published per model run (with the lookahead's frames at most 162)",
    )
    cqt_refresh_frames: int = Field(
        DEFAULT_CQT_REFRESH_FRAMES,
        ge=0,
        le=40,
        description="incremental engine: newest CQT columns recomputed at every frame",
    )
    block_samples: int = Field(
        1024,
        ge=1,
        le=1 << 20,
        description="block size of transcribe --stream and the API's stream_file [samples]",
    )

    @model_validator(mode="after")
    def _window_keeps_its_context(self) -> StreamSettings:
        """The window engine's lookahead and hop must leave ``CONTEXT_FRAMES`` of its window
        before the frames it publishes (else they see the zeros before the window's start)."""
        from livepitch.window_engine import (
            CONTEXT_FRAMES,
            lookahead_frames_for_ms,
            lookahead_samples_for_frames,
        )

        if self.engine is not EngineKind.WINDOW:
            return self
        most_frames = WINDOW_FRAMES - CONTEXT_FRAMES - self.hop_frames
        if lookahead_frames_for_ms(self.lookahead_ms) > most_frames:
            most_ms = 1000.0 * lookahead_samples_for_frames(most_frames) / MODEL_RATE_HZ
            raise ValueError(
                f"lookahead_ms ({self.lookahead_ms}) and hop_frames ({self.hop_frames}) leave the window "
                f"engine too little of its window before the frames it publishes: at this hop, a "
                f"lookahead of at most {math.floor(most_ms)} ms"
            )
        return self


class TrackerSettings(BaseModel):
    """The causal note tracker's parameters (see ``livepitch.tracker``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    onset_threshold: float = Field(0.5, gt=0.0, le=1.0, description="onset strength needed for a note")
    frame_threshold: float = Field(0.3, gt=0.0, le=1.0, description="note posterior that keeps a note on")
    infer_onsets: bool = Field(False, description="also take onsets from sharp rises of the note posterior")
    release_ms: float = Field(35.0, ge=0.0, le=2000.0, description="quiet time before a note-off [ms]")
    min_note_ms: float = Field(
        35.0,
        ge=0.0,
        le=2000.0,
        description="no note is ended by going quiet or struck again sooner after its note-on [ms] (a pitch jump can end it sooner)",
    )
    retrigger_dip: float = Field(0.7, gt=0.0, le=1.0, description="dip (fraction of level) for a re-attack")
    retrigger_onset: float = Field(0.8, gt=0.0, le=1.01, description="onset peak that re-attacks a held note")
    attack_ms: float = Field(
        50.0,
        ge=0.0,
        le=500.0,
        description="an onset this soon after a note's start at its pitch, with no gap, is the same attack [ms]",
    )
    gate_dbfs: float = Field(
        DEFAULT_GATE_DBFS,
        ge=GATE_OFF_DBFS,
        le=0.0,
        description="no note starts unless the input's level near its onset reaches this [dBFS RMS per 11.6 ms; -120: off]",
    )
    instant_support: float = Field(
        0.5, ge=0.0, le=1.01, description="note posterior that plays an onset at once"
    )
    probation_ms: float = Field(40.0, ge=0.0, le=1000.0, description="how long a weaker onset must hold [ms]")
    confirm_with_preview: bool = Field(
        True, description="confirm an onset peak with the engine's preview of the next frame (a frame sooner)"
    )
    repitch_semitones: float = Field(0.6, ge=0.5, le=12.0, description="pitch move that can re-pitch a note")
    repitch_ms: float = Field(80.0, ge=0.0, le=2000.0, description="how long the move must last [ms]")
    max_polyphony: int = Field(15, ge=1, le=88, description="most notes at once (15 at most with mpe)")
    min_hz: float | None = Field(None, gt=0.0, le=MODEL_RATE_HZ / 2, description="ignore pitches below [Hz]")
    max_hz: float | None = Field(None, gt=0.0, le=MODEL_RATE_HZ / 2, description="ignore pitches above [Hz]")
    bend_smoothing_ms: float = Field(15.0, ge=0.0, le=1000.0, description="bend smoothing time constant [ms]")
    bend_threshold_cents: float = Field(
        5.0, ge=0.0, le=1200.0, description="send a bend when it moved more [cents]"
    )

    @model_validator(mode="after")
    def _check_range(self) -> TrackerSettings:
        if self.min_hz is not None and self.max_hz is not None and self.min_hz >= self.max_hz:
            raise ValueError(f"min_hz ({self.min_hz}) must be below max_hz ({self.max_hz})")
        return self

    def tracker_params(self, max_bend_semitones: float = math.inf) -> TrackerParams:
        """The tracker's parameters for these settings and the bend range MIDI can express."""
        return TrackerParams(
            max_bend_semitones=max_bend_semitones,
            onset_threshold=self.onset_threshold,
            frame_threshold=self.frame_threshold,
            infer_onsets=self.infer_onsets,
            release_ms=self.release_ms,
            min_note_ms=self.min_note_ms,
            retrigger_dip=self.retrigger_dip,
            retrigger_onset=self.retrigger_onset,
            attack_ms=self.attack_ms,
            gate_dbfs=self.gate_dbfs,
            instant_support=self.instant_support,
            probation_ms=self.probation_ms,
            confirm_with_preview=self.confirm_with_preview,
            repitch_semitones=self.repitch_semitones,
            repitch_ms=self.repitch_ms,
            max_polyphony=self.max_polyphony,
            min_hz=self.min_hz,
            max_hz=self.max_hz,
            bend_smoothing_ms=self.bend_smoothing_ms,
        )


class LiveSettings(BaseModel):
    """Everything the streaming engine needs: model, schedule, tracker, MIDI."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    model: ModelSettings = ModelSettings()
    stream: StreamSettings = StreamSettings()
    tracker: TrackerSettings = TrackerSettings()
    midi: MidiSettings = MidiSettings()

    @model_validator(mode="after")
    def _check_mpe_polyphony(self) -> LiveSettings:
        if self.midi.bends is BendMode.MPE and self.tracker.max_polyphony > 15:
            raise ValueError(
                f"max_polyphony ({self.tracker.max_polyphony}) must be at most 15 with mpe bends (15 member channels)"
            )
        return self


class MidiApi(str, Enum):
    """Which MIDI system the output port lives in (``auto``: the platform's own, JACK as fallback)."""

    AUTO = "auto"
    ALSA = "alsa"
    JACK = "jack"
    COREMIDI = "coremidi"
    WINDOWS = "windows"


class PortSettings(BaseModel):
    """Where the live MIDI goes, and what else records it."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    port: Annotated[str, AfterValidator(_port_name)] = Field(
        "BasicPitch Out", description="name of the virtual output port"
    )
    midi_api: MidiApi = Field(MidiApi.AUTO, description="auto | alsa | jack | coremidi | windows")
    connect: str | None = Field(
        None, min_length=1, description="send to an existing port whose name contains this"
    )
    record: FilePath | None = Field(None, description="also write the session to this MIDI file")
    events_csv: FilePath | None = Field(None, description="also log every event to this CSV file")
    save_every_s: float = Field(
        60.0,
        ge=1.0,
        le=86_400.0,
        description="write the recording so far this often [s] (a crash loses no more; a long take less often)",
    )


class AudioSettings(BaseModel):
    """Which audio comes in, and how it is buffered."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    input: Annotated[str, AfterValidator(_device_name)] | None = Field(
        None, description="input device: index or part of its name (default device)"
    )

    @field_validator("input", mode="before")
    @classmethod
    def _index_as_text(cls, value: Any) -> Any:
        """``input = 3`` in a TOML file names device 3, as ``--input 3`` does."""
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    host_api: str | None = Field(None, description="audio system (host API) to pick the device from, by name")
    channel: int | None = Field(
        None, ge=1, le=256, description="use this input channel (1-based) instead of a downmix"
    )
    sample_rate_hz: int | None = Field(
        None, ge=8000, le=384_000, description="device rate (default: the device's)"
    )
    block_frames: int = Field(256, ge=16, le=16384, description="device frames per audio callback")
    callback: str = Field(
        "c",
        pattern="^(c|python)$",
        description="audio callback: c (livepitch's C function, never waits for Python; the Python one where it was not built) | python",
    )
    input_file: FilePath | None = Field(
        None, description="replay this audio file at real-time pace instead of a device"
    )
    resample_quality: str = Field(
        "QQ",
        pattern="^(QQ|LQ|MQ|HQ|VHQ)$",
        description="soxr quality of the live resampler: QQ (no delay) .. VHQ",
    )
    ring_ms: float = Field(2000.0, ge=100.0, le=60_000.0, description="capture ring capacity [ms]")
    max_backlog_ms: float = Field(
        300.0, ge=20.0, le=30_000.0, description="skip ahead when further behind [ms]"
    )

    @model_validator(mode="after")
    def _backlog_fits_the_ring(self) -> AudioSettings:
        if self.max_backlog_ms >= self.ring_ms:
            raise ValueError(f"max_backlog_ms ({self.max_backlog_ms}) must be below ring_ms ({self.ring_ms})")
        return self


class UiSettings(BaseModel):
    """What a person at the terminal, or a service manager, sees."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    quiet: bool = Field(False, description="no status line")
    log_json: bool = Field(False, description="log JSON lines (for running as a service)")
    log_level: str = Field(
        "info", pattern="^(debug|info|warning|error)$", description="debug | info | warning | error"
    )
    print_notes: bool = Field(
        False, description="print a line for every note-on on stdout (with log_json, a JSON object)"
    )


class DaemonSettings(LiveSettings):
    """Everything ``livepitch`` (the live daemon) runs with; one TOML section per group."""

    port: PortSettings = PortSettings()
    audio: AudioSettings = AudioSettings()
    ui: UiSettings = UiSettings()

    @model_validator(mode="after")
    def _outputs_do_not_overwrite_inputs(self) -> DaemonSettings:
        """``--record`` and ``--events-csv`` must not name the replayed file, the model, or
        each other."""
        named = {"port.record": self.port.record, "port.events_csv": self.port.events_csv}
        read = {"audio.input_file": self.audio.input_file, "model.path": self.model.path}
        taken = {field: path for field, path in read.items() if path is not None}
        for field, path in named.items():
            if path is None:
                continue
            for other, used in taken.items():
                if resolved_path(path) == resolved_path(used):
                    raise ValueError(f"{field} ({path}) is also {other}: it would be overwritten")
            taken[field] = path
        return self


def resolved_path(path: Path) -> Path:
    """``path`` made absolute with its links followed, or only absolute where they loop (the
    file cannot be opened then: opening it says so)."""
    try:
        return path.resolve()
    except (RuntimeError, OSError):  # a symlink loop
        return path.absolute()


class SettingError(ConfigError):
    """A ``ConfigError`` for one setting: ``location`` is where it failed (``("stream",
    "lookahead_ms")``, or a group's for a check across its fields)."""

    def __init__(self, message: str, location: tuple[str, ...]) -> None:
        super().__init__(message)
        self.location = location


def build_settings(model_type: type[BaseModel], values: dict[str, Any]) -> Any:
    """Validate ``values`` into ``model_type``; a failure becomes one ``SettingError`` line."""
    try:
        return model_type.model_validate(values)
    except ValidationError as err:
        location = tuple(str(part) for part in err.errors()[0]["loc"])
        raise SettingError(describe_validation_error(err, model_type), location) from err


def describe_validation_error(err: ValidationError, model_type: type[BaseModel] | None = None) -> str:
    """One line naming the first bad field, the value given and what is allowed."""
    first = err.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or "settings"
    given = first.get("input")
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        allowed = _fields_at(model_type, first["loc"][:-1]) if model_type is not None else []
        return f"unknown setting {field!r}" + (f" (allowed here: {', '.join(allowed)})" if allowed else "")
    if first["type"] == "value_error":  # a check across fields: its own message says it all
        message = message.removeprefix("Value error, ")
        return message if field == "settings" else f"{field}: {message}"
    if first["type"] == "string_pattern_mismatch":  # our patterns are lists of choices
        choices = re.fullmatch(r"\^\((.*)\)\$", str(first.get("ctx", {}).get("pattern", "")))
        if choices is not None:
            message = "allowed: " + ", ".join(choices.group(1).split("|"))
    if isinstance(given, dict):
        return f"{field}: {message}"
    return f"{field} = {given!r}: {message}"


def _fields_at(model_type: type[BaseModel], path: tuple[int | str, ...]) -> list[str]:
    """The field names of the settings group at ``path`` (``()``: the top level)."""
    group: type[BaseModel] = model_type
    for part in path:
        inner = getattr(group.model_fields.get(str(part)), "annotation", None)
        if not (isinstance(inner, type) and issubclass(inner, BaseModel)):
            return []
        group = inner
    return list(group.model_fields)
