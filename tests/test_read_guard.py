"""The reading marker on its own (tests/test_bad_files.py runs it inside a real bridge that segfaults)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scan_bridge.read_guard import ReadGuard, guard_dir


def watched_file(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A watched folder holding one 10-byte file ``name``: (the folder, the file)."""
    watch = tmp_path / "scans"
    watch.mkdir()
    path = watch / name
    path.write_bytes(b"x" * 10)
    return watch, path


def dies_reading(guard: ReadGuard, path: Path) -> None:
    """The process dies while reading ``path``: its marker stays set (it never gets to end() or close())."""
    guard.begin(path)
    os.close(guard._fd)


def test_a_marker_left_set_names_the_crashed_file_once_and_it_stays_skipped(tmp_path: Path) -> None:
    watch, bad = watched_file(tmp_path, "scan_000004.arrow")
    guard = ReadGuard(tmp_path / "state", watch)
    assert guard.recover() == []
    guard.begin(watch / "scan_000003.arrow")
    guard.end()
    dies_reading(guard, bad)
    once = ReadGuard(tmp_path / "state", watch)
    assert once.recover() == []  # one death may be a kill -9 mid-read: read it once more
    assert [c.path for c in once.suspects] == [str(bad)]
    assert once.crashed() == []
    dies_reading(once, bad)  # ... and again
    again = ReadGuard(tmp_path / "state", watch)
    (crashed,) = again.recover()
    assert crashed.path == str(bad) and crashed.deaths == 2
    assert [c.path for c in again.crashed()] == [str(bad)]
    again.close()
    third = ReadGuard(tmp_path / "state", watch)
    assert third.recover() == []  # reported once
    assert [c.path for c in third.crashed()] == [str(bad)]  # still skipped
    os.utime(bad, ns=(1, 1))  # rewritten under the same name: read again
    assert third.crashed() == []


def test_a_file_read_to_the_end_after_one_death_is_forgiven(tmp_path: Path) -> None:
    watch, good = watched_file(tmp_path, "scan_000007.arrow")
    guard = ReadGuard(tmp_path / "state", watch)
    guard.recover()
    dies_reading(guard, good)  # killed (kill -9, OOM) while reading a good scan
    after = ReadGuard(tmp_path / "state", watch)
    assert after.recover() == [] and [c.path for c in after.suspects] == [str(good)]
    after.begin(good)
    after.end()
    after.forgive(good)  # read to the end: the death was not the file's
    dies_reading(after, good)  # a second, unrelated kill -9 mid-read of the same file
    third = ReadGuard(tmp_path / "state", watch)
    assert third.recover() == []  # still only one strike: read again, never skipped
    assert third.crashed() == []


def test_the_state_folder_is_private_and_per_watched_folder(tmp_path: Path) -> None:
    a = ReadGuard(tmp_path / "state", tmp_path / "a")
    b = ReadGuard(tmp_path / "state", tmp_path / "b")
    assert a.dir != b.dir and a.dir.parent == b.dir.parent
    assert a.dir.stat().st_mode & 0o777 == 0o700
    assert (a.dir / f"reading-{os.getpid()}").stat().st_mode & 0o777 == 0o600


def test_a_live_bridges_marker_is_not_a_crash_and_a_dead_ones_is(tmp_path: Path) -> None:
    import subprocess
    import sys

    watch = tmp_path / "scans"
    watch.mkdir()
    (watch / "being_read_now.arrow").write_bytes(b"x")
    (watch / "crashed.arrow").write_bytes(b"y")
    folder = guard_dir(tmp_path / "state", watch)
    folder.mkdir(parents=True, mode=0o700)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        (folder / f"reading-{live.pid}").write_bytes(os.fsencode(watch / "being_read_now.arrow"))
        (folder / f"reading-{dead.pid}").write_bytes(os.fsencode(watch / "crashed.arrow"))
        guard = ReadGuard(tmp_path / "state", watch)
        assert guard.recover() == []  # a first death is a strike, not yet a verdict
        (suspect,) = guard.suspects
        assert suspect.path == str(watch / "crashed.arrow")
        assert (folder / f"reading-{live.pid}").exists()
        assert not (folder / f"reading-{dead.pid}").exists()
        guard.close()
        assert not (folder / f"reading-{os.getpid()}").exists()  # a normal exit leaves no marker
    finally:
        live.kill()
        live.wait()


def test_a_symlink_in_place_of_the_state_folder_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = guard_dir(tmp_path / "state", tmp_path / "scans")
    target.parent.mkdir(parents=True)
    target.symlink_to(elsewhere)
    with pytest.raises(OSError, match="not a directory"):
        ReadGuard(tmp_path / "state", tmp_path / "scans")
