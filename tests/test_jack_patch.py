"""Carrying JACK connections across a reopened input, with JACK's tools stood in for."""

from __future__ import annotations

import pytest

from livepitch import jack_patch

LISTING = """system:capture_1
   PortAudio:in_0
\tproperties: output,physical,terminal,
\t32 bit float mono audio
player:out
   PortAudio:in_0
\tproperties: output,
\t32 bit float mono audio
PortAudio:in_0
   system:capture_1
   player:out
\tproperties: input,
\t32 bit float mono audio
PortAudio:in_1
   system:capture_1
\tproperties: input,
\t32 bit float mono audio
PortAudio:in_10
\tproperties: input,
\t32 bit float mono audio
livepitch:BasicPitch Out
\tproperties: output,
\t8 bit raw midi
synth:midi_in
\tproperties: input,
\t8 bit raw midi
"""


@pytest.fixture
def tools(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """Every tool run; ``jack_lsp`` answers ``LISTING``, the others succeed."""
    runs: list[tuple[str, ...]] = []

    def run(*command: str) -> str | None:
        runs.append(command)
        return LISTING if command[0] == "jack_lsp" else ""

    monkeypatch.setattr(jack_patch, "_run_tool", run)
    return runs


def test_the_listing_gives_audio_inputs_and_their_sources(tools: list[tuple[str, ...]]) -> None:
    assert jack_patch.audio_inputs() == {"PortAudio:in_0", "PortAudio:in_1", "PortAudio:in_10"}
    assert jack_patch.registered_between({"PortAudio:in_0"}) == ["PortAudio:in_1", "PortAudio:in_10"]
    assert jack_patch.sources_of(["PortAudio:in_0", "gone:in"]) == [["system:capture_1", "player:out"], []]


def test_a_new_port_gets_the_old_ones_sources_and_no_other(tools: list[tuple[str, ...]]) -> None:
    """in_1 had PortAudio's system:capture_1; the old port had only the player (the system
    capture undone) and a program since gone."""
    jack_patch.patch_again(["PortAudio:in_1"], [["player:out", "quit:out"]])
    assert tools[1:] == [
        ("jack_disconnect", "system:capture_1", "PortAudio:in_1"),
        ("jack_connect", "player:out", "PortAudio:in_1"),
    ]  # quit:out no longer exists: not tried


def test_without_the_tools_or_a_server_nothing_is_carried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jack_patch, "_run_tool", lambda *command: None)
    assert jack_patch.audio_inputs() is None
    assert jack_patch.registered_between(set()) == []
    jack_patch.carry(["PortAudio:in_0"])
    jack_patch.restore(["PortAudio:in_1"])  # nothing remembered, nothing done, no error


def test_a_missing_tool_is_no_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert jack_patch.list_ports() is None
