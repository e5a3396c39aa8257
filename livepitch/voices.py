"""From note intents to MIDI events: channels, bend gating and bend thinning.

Runs on the worker thread right after the tracker. ``mpe``: each note on the lower-zone
member channel free longest (2-16 in MIDI numbering), its bends on that channel. ``single``:
channel 1; bends only while exactly one note sounds (a second note recentres the wheel first).
``none``: channel 1, no bends. A bend is sent only when it differs by more than
``bend_threshold_cents`` from what the channel's wheel last received.
"""

from __future__ import annotations

from livepitch.events import Event, NoteOff, NoteOn, PitchBend
from livepitch.midi_protocol import MPE_MEMBER_CHANNELS, bend_to_pitchwheel, pitchwheel_to_cents
from livepitch.settings import BendMode
from livepitch.tracker import Intent, NoteBend, NoteEnd, NoteStart


class VoiceAllocator:
    """Turns tracker intents into ``NoteOn``/``NoteOff``/``PitchBend`` events."""

    def __init__(self, bends: BendMode, bend_range_semitones: int, bend_threshold_cents: float) -> None:
        self.bends = bends
        self.bend_range_semitones = bend_range_semitones
        self.bend_threshold_cents = bend_threshold_cents
        self.reset()

    def reset(self) -> None:
        """Forget channel state (wheels are assumed centred, as after a MIDI reset)."""
        self._channel_of: dict[int, int] = {}
        self._pitch_of: dict[int, int] = {}
        self._wheel: dict[int, int] = {}
        self._free_since = {
            channel: i - len(MPE_MEMBER_CHANNELS) for i, channel in enumerate(MPE_MEMBER_CHANNELS)
        }

    def rebase_clock(self, samples: int) -> None:
        """The engine's clock went back by ``samples`` (it restarted at 0): times kept move too."""
        self._free_since = {channel: at - samples for channel, at in self._free_since.items()}

    @property
    def sounding(self) -> list[tuple[int, int]]:
        """``(channel, pitch)`` of every sounding note."""
        return [(self._channel_of[n], self._pitch_of[n]) for n in self._channel_of]

    @property
    def used_channels(self) -> list[int]:
        """Channels this allocator may use."""
        return list(MPE_MEMBER_CHANNELS) if self.bends is BendMode.MPE else [0]

    def handle(self, intents: list[Intent]) -> list[Event]:
        """Events for ``intents``, in order."""
        events: list[Event] = []
        for intent in intents:
            if isinstance(intent, NoteStart):
                self._start(intent, events)
            elif isinstance(intent, NoteEnd):
                self._end(intent, events)
            else:
                self._bend(intent, events)
        return events

    def _start(self, intent: NoteStart, events: list[Event]) -> None:
        if self.bends is BendMode.MPE:
            channel = min(self._free_since, key=lambda c: self._free_since[c]) if self._free_since else None
            if channel is None:
                raise RuntimeError("more notes than MPE member channels; limit max_polyphony to 15")
            del self._free_since[channel]
            self._send_bend(channel, intent.pitch, intent.bend_semitones, intent, events, force=True)
        else:
            channel = 0
            if self.bends is BendMode.SINGLE:
                if self._channel_of:  # a second note: the shared wheel goes back to centre
                    self._send_bend(channel, intent.pitch, 0.0, intent, events)
                else:
                    self._send_bend(channel, intent.pitch, intent.bend_semitones, intent, events)
        self._channel_of[intent.note_id] = channel
        self._pitch_of[intent.note_id] = intent.pitch
        events.append(
            NoteOn(intent.time_sample, intent.emitted_sample, channel, intent.pitch, intent.velocity)
        )

    def _end(self, intent: NoteEnd, events: list[Event]) -> None:
        channel = self._channel_of.pop(intent.note_id)
        del self._pitch_of[intent.note_id]
        events.append(NoteOff(intent.time_sample, intent.emitted_sample, channel, intent.pitch))
        if self.bends is BendMode.MPE:
            self._free_since[channel] = intent.time_sample

    def _bend(self, intent: NoteBend, events: list[Event]) -> None:
        if self.bends is BendMode.NONE or intent.note_id not in self._channel_of:
            return
        if self.bends is BendMode.SINGLE and len(self._channel_of) != 1:
            return
        self._send_bend(self._channel_of[intent.note_id], intent.pitch, intent.bend_semitones, intent, events)

    def _send_bend(
        self,
        channel: int,
        pitch: int,
        semitones: float,
        intent: NoteStart | NoteBend,
        events: list[Event],
        force: bool = False,
    ) -> None:
        if self.bends is BendMode.NONE:
            return
        value = bend_to_pitchwheel(semitones, self.bend_range_semitones)
        known = self._wheel.get(channel)
        if value == (known if force else (known or 0)):
            return
        cents = pitchwheel_to_cents(value, self.bend_range_semitones)
        moved_cents = abs(cents - pitchwheel_to_cents(known or 0, self.bend_range_semitones))
        if not force and semitones != 0.0 and moved_cents <= self.bend_threshold_cents:
            return
        self._wheel[channel] = value
        events.append(PitchBend(intent.time_sample, intent.emitted_sample, channel, pitch, value, cents))
