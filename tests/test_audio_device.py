"""Choosing the input device: by index, by part of its name, within an audio system, or the default."""

from __future__ import annotations

import pytest

from livepitch import audio_device
from livepitch.audio_device import InputDevice, find_input_device
from livepitch.errors import DeviceError

DEVICES = [
    InputDevice(0, "HDA Intel PCH: ALC3246 Analog (hw:0,0)", "ALSA", 2, 44100),
    InputDevice(3, "USB Audio Interface 2", "ALSA", 2, 48000),
    InputDevice(7, "system", "JACK Audio Connection Kit", 2, 48000),
    InputDevice(12, "USB Audio Interface 2", "JACK Audio Connection Kit", 1, 48000),
]


@pytest.fixture(autouse=True)
def these_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audio_device, "list_input_devices", lambda: list(DEVICES))
    monkeypatch.setattr(audio_device, "_default_input_index", lambda: 7)


def test_an_index_names_that_device_not_one_whose_name_holds_the_digits() -> None:
    """``--input 3`` is device 3, though device 0's name holds a 3 ('ALC3246')."""
    assert find_input_device("3", None).index == 3
    assert find_input_device(" 12 ", None).index == 12
    with pytest.raises(DeviceError, match="no audio input device with index 5"):
        find_input_device("5", None)


def test_a_name_matches_any_part_of_it_in_any_case_and_the_audio_system_narrows_it() -> None:
    assert find_input_device("usb audio", None).index == 3  # the first in PortAudio's order
    assert find_input_device("usb audio", "jack").index == 12
    with pytest.raises(DeviceError, match=r"no audio input device matching 'Scarlett' \(have: 0: HDA"):
        find_input_device("Scarlett", None)
    with pytest.raises(DeviceError, match=r"matching 'Core Audio' \(have: ALSA, JACK Audio Connection Kit\)"):
        find_input_device(None, "Core Audio")


def test_no_choice_is_the_default_device_within_the_audio_system_or_its_first() -> None:
    assert find_input_device(None, None).index == 7
    assert find_input_device(None, "ALSA").index == 0  # the default is JACK's: ALSA's first
