"""The polling observer for network mounts: new names are reported, unchanged folders are not listed."""

from __future__ import annotations

import os
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler

from scan_bridge import folder_poller
from scan_bridge.folder_poller import FULL_RELIST_S, SETTLE_S, FolderPoller


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
