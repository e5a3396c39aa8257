"""Saving in a forked child: the result, the error, and a save that never ends."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from livepitch.background_save import BackgroundSave
from livepitch.errors import OutputError

pytestmark = pytest.mark.skipif(not BackgroundSave.available(), reason="no fork on this platform")


def test_a_child_writes_and_is_reaped_with_its_label(tmp_path: Path) -> None:
    target = tmp_path / "saved.txt"
    save = BackgroundSave()

    def write() -> None:
        target.write_text("take")

    save.start(write, label=7)
    assert save.busy
    done = save.poll(wait_s=10.0)
    assert done is not None and done.label == 7 and done.error is None and done.cpu_s >= 0.0
    assert target.read_text() == "take" and not save.busy
    assert save.poll() is None  # nothing more to reap


def test_what_the_child_raises_is_the_saves_error() -> None:
    def fail() -> None:
        raise OutputError("cannot write /full/disk/take.mid: No space left on device")

    save = BackgroundSave()
    save.start(fail, label=1)
    done = save.poll(wait_s=10.0)
    assert done is not None and done.error == "cannot write /full/disk/take.mid: No space left on device"


def test_a_save_that_does_not_end_is_not_waited_for_forever() -> None:
    save = BackgroundSave()
    save.start(lambda: time.sleep(60), label=1)
    assert save.poll() is None and save.busy  # still running: the tick goes on
    started_s = time.monotonic()
    done = save.poll(wait_s=0.2)
    assert time.monotonic() - started_s < 5.0
    assert done is not None and done.error is not None and "did not finish within 0.2 s" in done.error
    assert not save.busy
