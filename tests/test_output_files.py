"""Outputs are written whole or not at all: a failure keeps the previous file."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from livepitch.output_files import replaced_whole


def test_a_write_that_fails_keeps_the_previous_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    take = tmp_path / "take.mid"
    take.write_bytes(b"yesterday's take")
    with pytest.raises(OSError, match="No space"), replaced_whole(take) as written:
        written.write_bytes(b"half a")
        raise OSError(28, "No space left on device")
    assert take.read_bytes() == b"yesterday's take"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["take.mid"]


def test_a_write_that_succeeds_replaces_the_file_keeping_its_mode_and_writes_through_a_link(
    tmp_path: Path,
) -> None:
    real = tmp_path / "real.csv"
    real.write_text("old")
    real.chmod(0o640)
    link = tmp_path / "link.csv"
    link.symlink_to(real)
    with replaced_whole(link) as written:
        assert written.parent == tmp_path and written.suffix == ".csv"
        written.write_text("new")
    assert link.is_symlink() and real.read_text() == "new"
    assert stat.S_IMODE(real.stat().st_mode) == 0o640
    fresh = tmp_path / "fresh.npz"
    with replaced_whole(fresh) as written:
        written.write_text("x")
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o666 & ~_umask()


def test_what_is_not_a_regular_file_is_written_directly_never_replaced(tmp_path: Path) -> None:
    fifo = tmp_path / "events.csv"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()))
    reader.start()
    with replaced_whole(fifo) as written:
        assert written == fifo
        written.write_bytes(b"kind,time_s\n")
    reader.join(10)
    assert received == [b"kind,time_s\n"] and stat.S_ISFIFO(fifo.stat().st_mode)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_a_file_in_a_directory_that_takes_no_new_file_is_overwritten_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only directory holding a writable file (as root sees none, the refusal is faked)."""
    import tempfile

    def refused(*_args: object, **_kwargs: object) -> tuple[int, str]:
        raise PermissionError(13, "Permission denied")

    take = tmp_path / "take.csv"
    take.write_text("old")
    monkeypatch.setattr(tempfile, "mkstemp", refused)
    with replaced_whole(take) as written:
        assert written == take
        written.write_text("new")
    assert take.read_text() == "new"
    with pytest.raises(PermissionError), replaced_whole(tmp_path / "new.csv"):
        pass  # no file there to overwrite: the refusal stands


def test_a_suffix_numpy_does_not_know_keeps_the_data_in_the_named_file(tmp_path: Path) -> None:
    import numpy as np

    from livepitch.posteriors import Posteriors

    zeros = np.zeros((3, 88), np.float32)
    posteriors = Posteriors(zeros, zeros, np.zeros((3, 264), np.float32), np.arange(3) * 256)
    named = tmp_path / "out.NPZ"
    with replaced_whole(named) as written:
        posteriors.save_npz(str(written))
    assert Posteriors.load_npz(str(named)).n_frames == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.NPZ"]


def test_a_name_as_long_as_the_file_system_takes_can_be_written(tmp_path: Path) -> None:
    """The temporary name beside it must fit too (it once took the name and added ten characters)."""
    longest = tmp_path / ("a" * (os.pathconf(tmp_path, "PC_NAME_MAX") - 4) + ".mid")
    with replaced_whole(longest) as written:
        written.write_bytes(b"take")
    assert longest.read_bytes() == b"take"
    assert [p.name for p in tmp_path.iterdir()] == [longest.name]
