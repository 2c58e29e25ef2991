"""Where the watcher looks: the newest folders only, and yesterday's for a grace period."""

from __future__ import annotations

from pathlib import Path

from scan_bridge.watcher import RETIRE_AFTER_S, FileSeen, ScanWatcher, resolve_observer_kind

from .support import wait_for


def test_follows_the_newest_folder_and_retires_the_previous_after_its_grace(tmp_path: Path) -> None:
    for day in ("2026-03-22", "2026-03-23"):
        (tmp_path / day).mkdir()
    seen: list[object] = []
    watcher = ScanWatcher(tmp_path, seen.append, kind="polling", poll_interval_s=0.05, recent_dirs=1)
    watcher.start()
    try:
        assert watcher.followed == [tmp_path / "2026-03-23"], "a year of old folders is not watched"
        (tmp_path / "2026-03-24").mkdir()
        watcher.follow(tmp_path / "2026-03-24", now=0.0)
        watcher.retire(now=RETIRE_AFTER_S - 1)
        assert watcher.followed == [tmp_path / "2026-03-23", tmp_path / "2026-03-24"], "yesterday kept for its grace"
        (tmp_path / "2026-03-23" / "scan_000001_235959.arrow").write_bytes(b"late")
        wait_for(lambda: FileSeen(tmp_path / "2026-03-23" / "scan_000001_235959.arrow") in seen, 10, "late file seen")
        watcher.retire(now=RETIRE_AFTER_S + 1)
        assert watcher.followed == [tmp_path / "2026-03-24"]
    finally:
        watcher.stop()


def test_auto_observer_is_native_on_a_local_disk(tmp_path: Path) -> None:
    assert resolve_observer_kind("auto", tmp_path) == "native"
    assert resolve_observer_kind("polling", tmp_path) == "polling"
