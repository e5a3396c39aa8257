"""Saving in a forked child: the result, the error, and a save that never ends."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from livepitch.background_save import Announce, BackgroundSave
from livepitch.errors import OutputError

pytestmark = pytest.mark.skipif(not BackgroundSave.available(), reason="no fork on this platform")


def test_a_child_writes_and_is_reaped_with_its_label(tmp_path: Path) -> None:
    target = tmp_path / "saved.txt"
    save = BackgroundSave()

    def write(announce: Announce) -> None:
        target.write_text("take")

    save.start(write, label=7)
    assert save.busy
    done = save.poll(wait_s=10.0)
    assert (
        done is not None
        and done.label == 7
        and not done.cancelled
        and done.error is None
        and done.cpu_s >= 0.0
    )
    assert target.read_text() == "take" and not save.busy
    assert save.poll() is None  # nothing more to reap


def test_what_the_child_raises_is_the_saves_error() -> None:
    def fail(announce: Announce) -> None:
        raise OutputError("cannot write /full/disk/take.mid: No space left on device")

    save = BackgroundSave()
    save.start(fail, label=1)
    done = save.poll(wait_s=10.0)
    assert done is not None and done.error == "cannot write /full/disk/take.mid: No space left on device"


def test_a_save_a_stop_ends_leaves_no_temporary_file(tmp_path: Path) -> None:
    """A stop writes the whole take itself: a save still running is ended, and the temporary
    file it announced is removed (a SIGKILL skips the child's own clean-up)."""
    temporary = tmp_path / ".livepitch-x.mid"

    def write(announce: Announce) -> None:
        temporary.write_bytes(b"MThd")
        announce(temporary)
        time.sleep(60)

    save = BackgroundSave()
    save.start(write, label=1)
    deadline = time.monotonic() + 10.0
    while not temporary.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert save.poll() is None and save.busy  # still running: the tick goes on
    started_s = time.monotonic()
    done = save.poll(wait_s=0.2, end=True)
    assert time.monotonic() - started_s < 5.0
    assert done is not None and done.cancelled and not save.busy
    assert not temporary.exists()


def test_a_refused_fork_starts_nothing_and_leaks_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse() -> int:
        raise OSError(12, "Cannot allocate memory")

    before = len(os.listdir("/proc/self/fd"))
    monkeypatch.setattr(os, "fork", refuse)
    save = BackgroundSave()
    assert not save.start(lambda announce: None, label=1) and not save.busy
    assert len(os.listdir("/proc/self/fd")) == before
