"""Carrying JACK connections across a reopened input, with JACK's tools stood in for."""

from __future__ import annotations

from pathlib import Path

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


@pytest.fixture(autouse=True)
def nothing_carried(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with nothing remembered from an earlier carry."""
    monkeypatch.setattr(jack_patch, "_carried", None)
    monkeypatch.setattr(jack_patch, "_inputs_then", None)


@pytest.fixture
def tools(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    """Every tool run; ``jack_lsp`` answers ``LISTING``, the others succeed."""
    runs: list[tuple[str, ...]] = []

    def run(*command: str) -> str | None:
        runs.append(command)
        return LISTING if command[0] == "jack_lsp" else ""

    monkeypatch.setattr(jack_patch, "_run_tool", run)
    monkeypatch.setattr(jack_patch, "_run_tools", lambda commands: [run(*command) for command in commands])
    return runs


def test_the_listing_gives_audio_inputs_and_their_sources(tools: list[tuple[str, ...]]) -> None:
    assert jack_patch.audio_inputs() == {"PortAudio:in_0", "PortAudio:in_1", "PortAudio:in_10"}
    assert jack_patch.registered_between({"PortAudio:in_0"}) == ["PortAudio:in_1", "PortAudio:in_10"]


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


def test_ports_another_program_registered_meanwhile_are_not_taken_for_ours(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Between the two listings PortAudio registered in_1 and in_10, and another program's
    client an input of its own: only PortAudio's are this stream's."""
    before = {"PortAudio:in_0"}
    listing = LISTING + "recorder:in_left\n\tproperties: input,\n\t32 bit float mono audio\n"
    monkeypatch.setattr(jack_patch, "_run_tool", lambda *command: listing)
    assert jack_patch.registered_between(before) == ["PortAudio:in_1", "PortAudio:in_10"]


def test_a_port_whose_sources_all_went_away_keeps_portaudios_own(tools: list[tuple[str, ...]]) -> None:
    """Disconnecting system:capture_1 would leave the new port with no input at all."""
    jack_patch.patch_again(["PortAudio:in_1"], [["quit:out"]])
    assert tools[1:] == []


def test_remembered_sources_wait_for_the_next_stream_only_a_while(
    tools: list[tuple[str, ...]], monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr("livepitch.jack_patch.time.monotonic", lambda: now[0])
    jack_patch.carry(["PortAudio:in_0"])
    now[0] += jack_patch.CARRIED_FOR_S + 1.0  # the next stream opened after a server restart
    jack_patch.restore(["PortAudio:in_1"])
    assert [run[0] for run in tools] == ["jack_lsp"]  # read at the carry, nothing done after
    jack_patch.carry(["PortAudio:in_0"])
    now[0] += 1.0  # a reload's reopening
    jack_patch.restore(["PortAudio:in_1"])
    assert tools[2:] == [  # in_0 had the system capture and the player: in_1 gets the player too
        ("jack_lsp", "-c", "-p", "-t"),
        ("jack_connect", "player:out", "PortAudio:in_1"),
    ]


def test_a_reloads_carry_lists_the_other_inputs_for_the_next_stream(
    tools: list[tuple[str, ...]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The next stream's open needs the inputs there were before it: the carry's listing
    gives them (not the closing stream's own), once, so no second listing delays the
    reopening (an open that failed leaves the next one to list them itself)."""
    now = [1000.0]
    monkeypatch.setattr("livepitch.jack_patch.time.monotonic", lambda: now[0])
    assert jack_patch.carried_inputs() is None
    jack_patch.carry(["PortAudio:in_0"])
    assert jack_patch.carried_inputs() == {"PortAudio:in_1", "PortAudio:in_10"}
    assert jack_patch.carried_inputs() is None  # used once
    jack_patch.carry(["PortAudio:in_0"])
    now[0] += jack_patch.CARRIED_FOR_S
    assert jack_patch.carried_inputs() is None  # too old: the next stream lists them itself


def test_a_given_listing_is_not_listed_again(tools: list[tuple[str, ...]]) -> None:
    listing = jack_patch.list_ports()
    assert jack_patch.registered_between({"PortAudio:in_0", "PortAudio:in_10"}, listing) == ["PortAudio:in_1"]
    jack_patch.patch_again(["PortAudio:in_1"], [["player:out"]], listing)
    assert tools == [
        ("jack_lsp", "-c", "-p", "-t"),
        ("jack_disconnect", "system:capture_1", "PortAudio:in_1"),
        ("jack_connect", "player:out", "PortAudio:in_1"),
    ]


def test_the_tools_run_side_by_side(tmp_path: Path) -> None:
    """The first waits for a file the second makes: one after the other, the first would
    time out (None)."""
    made = tmp_path / "made"
    waits = ("sh", "-c", f"while [ ! -e {made} ]; do sleep 0.01; done; echo waited")
    makes = ("sh", "-c", f"touch {made}; echo made")
    fails = ("sh", "-c", "exit 3")
    missing = ("/nonexistent/jack_connect", "a", "b")
    assert jack_patch._run_tools([waits, makes, fails, missing]) == ["waited\n", "made\n", None, None]
