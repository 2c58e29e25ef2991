"""The polling observer for network mounts: new names anywhere in the tree are reported; unchanged
folders are not listed, cold ones only stat-ed."""

from __future__ import annotations

import os
import time
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler

from scan_bridge import folder_poller
from scan_bridge.discovery import MTIME_SLACK_S
from scan_bridge.folder_poller import COLD_POLL_S, FULL_RELIST_S, HOT_S, SETTLE_S, FolderPoller


class Recorder(FileSystemEventHandler):
    def __init__(self) -> None:
        self.events: list[tuple[str, bool]] = []

    def on_any_event(self, event: FileSystemEvent) -> None:
        self.events.append((os.fsdecode(event.src_path), event.is_directory))


def make(tmp_path: Path, recursive: bool = True) -> tuple[FolderPoller, Recorder, list[float]]:
    now = [0.0]
    poller = FolderPoller(1.0, clock=lambda: now[0])
    recorder = Recorder()
    poller.schedule(recorder, str(tmp_path), recursive=recursive)
    return poller, recorder, now


def test_reports_new_names_once_and_not_what_was_there(tmp_path: Path) -> None:
    (tmp_path / "old.arrow").write_bytes(b"x")
    poller, recorder, now = make(tmp_path)
    (tmp_path / "new.arrow").write_bytes(b"x")
    now[0] += 1
    poller.poll_once()
    now[0] += 1
    poller.poll_once()
    assert recorder.events == [(str(tmp_path / "new.arrow"), False)]


def test_a_change_hidden_by_a_coarse_mtime_is_still_found(tmp_path: Path) -> None:
    poller, recorder, now = make(tmp_path)
    stamp = os.stat(tmp_path).st_mtime_ns
    (tmp_path / "a.arrow").write_bytes(b"x")
    os.utime(tmp_path, ns=(stamp, stamp + 1))  # the folder's mtime moved once ...
    now[0] += 1
    poller.poll_once()
    (tmp_path / "b.arrow").write_bytes(b"x")
    os.utime(tmp_path, ns=(stamp, stamp + 1))  # ... and not again (a 1 s mtime on a CIFS server)
    now[0] += 1
    poller.poll_once()
    assert [name for name, _ in recorder.events] == [str(tmp_path / "a.arrow"), str(tmp_path / "b.arrow")]


def test_new_sub_folders_and_their_files_are_reported(tmp_path: Path) -> None:
    poller, recorder, now = make(tmp_path)
    day = tmp_path / "2026-03-24"
    day.mkdir()
    (day / "scan_1.arrow").write_bytes(b"x")
    now[0] += 1
    poller.poll_once()
    assert recorder.events == [(str(day), True), (str(day / "scan_1.arrow"), False)]


def test_an_unchanged_folder_is_not_listed_between_full_relists(tmp_path: Path, monkeypatch) -> None:
    for i in range(2000):
        (tmp_path / f"scan_{i}.arrow").write_bytes(b"")
    poller, recorder, now = make(tmp_path)
    listed: list[str] = []
    real_scandir = os.scandir
    monkeypatch.setattr(folder_poller.os, "scandir", lambda p: (listed.append(p), real_scandir(p))[1])
    now[0] += SETTLE_S + 1
    for _ in range(10):
        now[0] += 1
        poller.poll_once()
    assert listed == [], "an idle folder costs one stat per poll, not a listing"
    now[0] += FULL_RELIST_S
    poller.poll_once()
    assert listed == [str(tmp_path)], "the safety-net relisting"
    assert recorder.events == []


def make_year(tmp_path: Path, days: int = 60) -> None:
    """Old date folders (mtimes long past, as a real history has) of a few files each."""
    old = time.time() - 10 * HOT_S
    for day in range(days):
        folder = tmp_path / f"2025-{day:03d}"
        folder.mkdir()
        for i in range(3):
            (folder / f"scan_{day * 3 + i:06d}_000000.arrow").write_bytes(b"x")
        os.utime(folder, (old, old))


def test_cold_folders_cost_a_stat_not_a_listing_and_keep_no_names(tmp_path: Path, monkeypatch) -> None:
    make_year(tmp_path)
    poller, recorder, now = make(tmp_path)
    assert poller.folder_count == 61
    listed_at_start = poller.listed
    assert listed_at_start <= 1, "only the top folder (modified just now) is listed at start"
    for _ in range(5):
        now[0] += FULL_RELIST_S
        poller.poll_once()
    assert poller.listed - listed_at_start <= 5, "cold folders are not relisted; only the (hot) top folder is"
    watch = next(iter(poller._watches.values()))
    assert all(state.names is None for path, state in watch.folders.items() if path != str(tmp_path))
    assert recorder.events == []


def test_a_new_scan_in_a_cold_folder_is_reported_alone(tmp_path: Path) -> None:
    make_year(tmp_path)
    # The old files were created just now (a test cannot set ctime back); so the folder's last change
    # is put after them instead, and the poller's wall clock far ahead, so that every folder is cold.
    future = time.time() + 2 * MTIME_SLACK_S
    os.utime(tmp_path / "2025-010", (future, future))
    now = [0.0]
    poller = FolderPoller(1.0, clock=lambda: now[0], wall_clock=lambda: future + 10 * HOT_S)
    recorder = Recorder()
    poller.schedule(recorder, str(tmp_path), recursive=True)
    late = tmp_path / "2025-010" / "scan_999999_000000.arrow"
    late.write_bytes(b"x")
    os.utime(late, (future + 1, future + 1))  # written after the folder's last change
    now[0] += 1
    poller.poll_once()
    assert recorder.events == [(str(late), False)], "the new file, not the folder's old ones"
    (tmp_path / "2025-010" / "scan_999998_000000.arrow").write_bytes(b"x")  # the folder is hot now
    now[0] += 1
    poller.poll_once()
    assert recorder.events[-1] == (str(tmp_path / "2025-010" / "scan_999998_000000.arrow"), False)
    assert len(recorder.events) == 2


def test_a_hot_folder_goes_cold_after_a_quiet_while(tmp_path: Path) -> None:
    poller, recorder, now = make(tmp_path)
    (tmp_path / "scan_1.arrow").write_bytes(b"x")
    now[0] += 1
    poller.poll_once()
    watch = next(iter(poller._watches.values()))
    assert watch.folders[str(tmp_path)].names is not None
    now[0] += HOT_S + 1
    poller.poll_once()
    assert watch.folders[str(tmp_path)].names is None, "names dropped"
    (tmp_path / "scan_2.arrow").write_bytes(b"x")
    now[0] += 1
    poller.poll_once()
    assert recorder.events[0] == (str(tmp_path / "scan_1.arrow"), False)
    # A cold folder reports what changed since its previous mtime minus the slack: scan_1 again
    # (written within the slack; the bridge ignores a file it has finished), and the new scan_2.
    assert set(recorder.events[1:]) == {(str(tmp_path / "scan_1.arrow"), False), (str(tmp_path / "scan_2.arrow"), False)}


def test_nested_folders_created_at_any_depth_are_reported_with_their_files(tmp_path: Path) -> None:
    make_year(tmp_path, days=3)
    poller, recorder, now = make(tmp_path)
    deep = tmp_path / "2025-001" / "sub" / "deeper"
    deep.mkdir(parents=True)
    (deep / "scan_1.arrow").write_bytes(b"x")
    now[0] += 1
    poller.poll_once()
    # (the folder's old files were created just now too: reported again as changed lately, filtered here)
    assert [e for e in recorder.events if "scan_0000" not in e[0]] == [
        (str(tmp_path / "2025-001" / "sub"), True),
        (str(deep), True),
        (str(deep / "scan_1.arrow"), False),
    ]
    (deep / "scan_2.arrow").write_bytes(b"x")
    now[0] += 1
    poller.poll_once()
    assert recorder.events[-1] == (str(deep / "scan_2.arrow"), False)


def test_a_cold_day_folder_is_looked_at_every_cold_poll_only_but_the_top_every_poll(tmp_path: Path) -> None:
    make_year(tmp_path, days=3)
    poller, recorder, now = make(tmp_path)
    now[0] += 1
    poller.poll_once()  # every folder's first look
    late = tmp_path / "2025-001" / "scan_999999_000000.arrow"
    late.write_bytes(b"x")
    new_day = tmp_path / "2025-999"
    new_day.mkdir()
    now[0] += 1
    poller.poll_once()
    assert [e for e in recorder.events if "scan_0000" not in e[0]] == [(str(new_day), True)], "a new day at once"
    now[0] += COLD_POLL_S
    poller.poll_once()
    assert (str(late), False) in recorder.events, "a late scan in a quiet old folder within COLD_POLL_S"


pytestmark = __import__("pytest").mark.unit  # pure: see pyproject.toml markers
