"""The reading marker on its own (tests/test_bad_files.py runs it inside a real bridge that segfaults)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scan_bridge.read_guard import ReadGuard, guard_dir


def test_a_marker_left_set_names_the_crashed_file_once_and_it_stays_skipped(tmp_path: Path) -> None:
    watch = tmp_path / "scans"
    watch.mkdir()
    bad = watch / "scan_000004.arrow"
    bad.write_bytes(b"x" * 10)
    guard = ReadGuard(tmp_path / "state", watch)
    assert guard.recover() is None
    guard.begin(watch / "scan_000003.arrow")
    guard.end()
    guard.begin(bad)  # ... and the process dies here
    guard.close()
    again = ReadGuard(tmp_path / "state", watch)
    crashed = again.recover()
    assert crashed is not None and crashed.path == bad
    assert [c.path for c in again.crashed()] == [bad]
    again.close()
    third = ReadGuard(tmp_path / "state", watch)
    assert third.recover() is None  # reported once
    assert [c.path for c in third.crashed()] == [bad]  # still skipped
    os.utime(bad, ns=(1, 1))  # rewritten under the same name: read again
    assert third.crashed() == []


def test_the_state_folder_is_private_and_per_watched_folder(tmp_path: Path) -> None:
    a = ReadGuard(tmp_path / "state", tmp_path / "a")
    b = ReadGuard(tmp_path / "state", tmp_path / "b")
    assert a.dir != b.dir and a.dir.parent == b.dir.parent
    assert a.dir.stat().st_mode & 0o777 == 0o700
    assert (a.dir / "reading").stat().st_mode & 0o777 == 0o600


def test_a_symlink_in_place_of_the_state_folder_is_refused(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = guard_dir(tmp_path / "state", tmp_path / "scans")
    target.parent.mkdir(parents=True)
    target.symlink_to(elsewhere)
    with pytest.raises(OSError, match="not a directory"):
        ReadGuard(tmp_path / "state", tmp_path / "scans")
