"""MIDI conventions livepitch follows, as mido messages: RPNs, bend range, the MPE zone.

Channels are 0-based here (mido's numbering): channel 0 is MIDI channel 1.
"""

from __future__ import annotations

import mido

MPE_MANAGER_CHANNEL = 0
"""Lower-zone manager channel (MIDI channel 1)."""

MPE_MEMBER_CHANNELS = tuple(range(1, 16))
"""Lower-zone member channels (MIDI channels 2-16)."""

PITCHWHEEL_MIN = -8192
PITCHWHEEL_MAX = 8191

_CC_RPN_MSB = 101
_CC_RPN_LSB = 100
_CC_DATA_ENTRY_MSB = 6
_CC_DATA_ENTRY_LSB = 38
_RPN_PITCH_BEND_SENSITIVITY = (0, 0)
_RPN_MPE_CONFIGURATION = (0, 6)
_RPN_NULL = (127, 127)


def _cc(channel: int, control: int, value: int) -> mido.Message:
    return mido.Message("control_change", channel=channel, control=control, value=value)


def rpn_messages(
    channel: int, rpn: tuple[int, int], data_msb: int, data_lsb: int | None = None
) -> list[mido.Message]:
    """Set registered parameter ``rpn`` (MSB, LSB) on ``channel``, then deselect it (RPN null)."""
    messages = [
        _cc(channel, _CC_RPN_MSB, rpn[0]),
        _cc(channel, _CC_RPN_LSB, rpn[1]),
        _cc(channel, _CC_DATA_ENTRY_MSB, data_msb),
    ]
    if data_lsb is not None:
        messages.append(_cc(channel, _CC_DATA_ENTRY_LSB, data_lsb))
    messages += [_cc(channel, _CC_RPN_MSB, _RPN_NULL[0]), _cc(channel, _CC_RPN_LSB, _RPN_NULL[1])]
    return messages


def bend_range_messages(channel: int, semitones: int) -> list[mido.Message]:
    """RPN 0 (pitch-bend sensitivity): +-``semitones`` and 0 cents on ``channel``."""
    return rpn_messages(channel, _RPN_PITCH_BEND_SENSITIVITY, semitones, 0)


def mpe_zone_off_messages() -> list[mido.Message]:
    """An MPE Configuration Message with no member channels: the lower zone ends (leaving MPE)."""
    return rpn_messages(MPE_MANAGER_CHANNEL, _RPN_MPE_CONFIGURATION, 0)


def mpe_zone_messages(member_bend_range_semitones: int) -> list[mido.Message]:
    """Configure an MPE lower zone with 15 member channels and announce their bend range.

    The MPE Configuration Message (RPN 6 on the manager channel) comes first, since it resets
    the members' bend range to 48; RPN 0 then sets it on every member channel, and the
    manager keeps the MIDI default of +-2.
    """
    messages = rpn_messages(MPE_MANAGER_CHANNEL, _RPN_MPE_CONFIGURATION, len(MPE_MEMBER_CHANNELS))
    messages += bend_range_messages(MPE_MANAGER_CHANNEL, 2)
    for channel in MPE_MEMBER_CHANNELS:
        messages += bend_range_messages(channel, member_bend_range_semitones)
    return messages


def bend_to_pitchwheel(semitones: float, range_semitones: int) -> int:
    """Pitch-wheel value (-8192..8191) for a bend of ``semitones`` at +-``range_semitones``."""
    value = round(semitones / range_semitones * 8192.0)
    return int(min(PITCHWHEEL_MAX, max(PITCHWHEEL_MIN, value)))


def pitchwheel_to_cents(value: int, range_semitones: int) -> float:
    """Bend in cents of a pitch-wheel value at +-``range_semitones``."""
    return value / 8192.0 * range_semitones * 100.0
