"""MIDI-level events as values: what the engine emits and every sink consumes.

Times are model-rate sample indices: ``time_sample`` is when the tracker believes the event
happened in the music (the onset, the offset, the frame a bend was measured at);
``emitted_sample`` is how much audio the engine had consumed when it emitted the event.
``emitted_sample - time_sample`` is therefore the engine's latency for that event.
Channels are 0-based (0 is MIDI channel 1).
"""

from __future__ import annotations

from dataclasses import dataclass

from livepitch.geometry import MODEL_RATE_HZ


def _check_common(time_sample: int, emitted_sample: int, channel: int) -> None:
    if not 0 <= channel <= 15:
        raise ValueError(f"channel {channel} outside 0..15")
    if time_sample < 0 or emitted_sample < 0:
        raise ValueError("time_sample and emitted_sample must be >= 0")


class _Timed:
    """``time_s`` and ``emitted_s``: an event's two sample indices in seconds."""

    __slots__ = ()
    time_sample: int
    emitted_sample: int

    @property
    def time_s(self) -> float:
        """``time_sample`` in seconds."""
        return samples_to_s(self.time_sample)

    @property
    def emitted_s(self) -> float:
        """``emitted_sample`` in seconds."""
        return samples_to_s(self.emitted_sample)


@dataclass(frozen=True, slots=True)
class NoteOn(_Timed):
    """A note starts: ``pitch`` (MIDI 0-127) at ``velocity`` (1-127) on ``channel``."""

    time_sample: int
    emitted_sample: int
    channel: int
    pitch: int
    velocity: int

    def __post_init__(self) -> None:
        _check_common(self.time_sample, self.emitted_sample, self.channel)
        if not 0 <= self.pitch <= 127:
            raise ValueError(f"pitch {self.pitch} outside 0..127")
        if not 1 <= self.velocity <= 127:
            raise ValueError(f"velocity {self.velocity} outside 1..127")


@dataclass(frozen=True, slots=True)
class NoteOff(_Timed):
    """The note ``pitch`` on ``channel`` ends."""

    time_sample: int
    emitted_sample: int
    channel: int
    pitch: int

    def __post_init__(self) -> None:
        _check_common(self.time_sample, self.emitted_sample, self.channel)
        if not 0 <= self.pitch <= 127:
            raise ValueError(f"pitch {self.pitch} outside 0..127")


@dataclass(frozen=True, slots=True)
class PitchBend(_Timed):
    """The pitch wheel of ``channel`` moves to ``value`` (-8192..8191), i.e. ``cents``.

    ``pitch`` is the note the bend belongs to (informational; MIDI bends a whole channel).
    """

    time_sample: int
    emitted_sample: int
    channel: int
    pitch: int
    value: int
    cents: float

    def __post_init__(self) -> None:
        _check_common(self.time_sample, self.emitted_sample, self.channel)
        if not -8192 <= self.value <= 8191:
            raise ValueError(f"pitch-wheel value {self.value} outside -8192..8191")


Event = NoteOn | NoteOff | PitchBend


def event_kind(event: Event) -> str:
    """``note_on``, ``note_off`` or ``pitch_bend``."""
    if isinstance(event, NoteOn):
        return "note_on"
    if isinstance(event, NoteOff):
        return "note_off"
    return "pitch_bend"


def samples_to_s(samples: int) -> float:
    """Model-rate samples to seconds."""
    return samples / MODEL_RATE_HZ
