"""Where the watcher looks: every folder under the root, whatever it is called, with either observer;
and what happens at the inotify limits and on a queue overflow."""

from __future__ import annotations

import errno
import logging
import queue
import shutil
from pathlib import Path

import pytest
from watchdog.observers.inotify_c import InotifyConstants, InotifyEvent, InotifyFD

from scan_bridge.watcher import DirSeen, FileSeen, Overflow, ScanWatcher, resolve_observer_kind

from .support import wait_for

MOUNTS = """\
/dev/vda / ext4 rw,relatime 0 0
server:/export {nfs} nfs4 rw,relatime 0 0
//nas/share {cifs} cifs rw 0 0
"""


class Seen:
    """What the watcher emitted, collected from its threads."""

    def __init__(self) -> None:
        self.queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self.items: list[object] = []

    def __call__(self, item: object) -> None:
        self.queue.put(item)

    def all(self) -> list[object]:
        while not self.queue.empty():
            self.items.append(self.queue.get())
        return self.items

    def files(self) -> set[Path]:
        """Files reported, directly or through a folder the bridge would list."""
        out: set[Path] = set()
        for item in self.all():
            if isinstance(item, FileSeen):
                out.add(Path(item.path))  # a str on the hot path (issue 17)
            elif isinstance(item, DirSeen):
                out.update(p for p in item.path.rglob("*.arrow"))
        return out


def tree(root: Path) -> None:
    for name in ("2026-03-23", "2026-03-24", "logs", "archive", "zzz", "2026/03/24"):
        (root / name).mkdir(parents=True)
    (root / "logs" / "bridge.log").write_text("x")


@pytest.fixture(params=["native", "polling"])
def kind(request) -> str:
    return request.param


def test_new_scans_anywhere_are_seen_whatever_the_folders_are_called(tmp_path: Path, kind: str) -> None:
    root = tmp_path / "scans"
    tree(root)
    seen = Seen()
    watcher = ScanWatcher(root, seen, kind=kind, poll_interval_s=0.05)
    watcher.start()
    try:
        assert watcher.folders == 9  # the root, 5 top folders, 2026/03/24
        expected = {
            root / "2026-03-24" / "scan_000001_000000.arrow",  # today's date folder, beside logs/ and zzz/
            root / "2026" / "03" / "24" / "scan_000002_000000.arrow",  # nested
            root / "scan_000003_000000.arrow",  # flat
        }
        for path in expected:
            path.write_bytes(b"x")
        wait_for(lambda: expected <= seen.files(), 10, "scans in the date, nested and top folders")
        (root / "tmp").mkdir()  # a non-date folder created mid-run retires nothing
        (root / "2026-03-25" / "deep").mkdir(parents=True)  # midnight: a new date folder, with a sub-folder
        later = {root / "2026-03-24" / "scan_000004_000000.arrow", root / "2026-03-25" / "deep" / "scan_000005_000000.arrow"}
        for path in later:
            path.write_bytes(b"x")
        wait_for(lambda: later <= seen.files(), 10, "scans after a new folder appeared")
        outside = tmp_path / "outside" / "2026-03-26"
        outside.mkdir(parents=True)
        (outside / "scan_000006_000000.arrow").write_bytes(b"x")
        shutil.move(str(outside), str(root / "2026-03-26"))  # moved in, full
        moved = root / "2026-03-26" / "scan_000006_000000.arrow"
        wait_for(lambda: moved in seen.files(), 10, "the files of a folder moved in")
        (root / "2026-03-26" / "scan_000007_000000.arrow").write_bytes(b"x")
        wait_for(lambda: root / "2026-03-26" / "scan_000007_000000.arrow" in seen.files(), 10, "a new scan in the moved-in folder")
        (root / "2026-03-26").rename(root / "renamed")
        (root / "renamed" / "scan_000008_000000.arrow").write_bytes(b"x")
        wait_for(lambda: root / "renamed" / "scan_000008_000000.arrow" in seen.files(), 10, "a new scan in a renamed folder")
        assert not any(isinstance(item, Overflow) for item in seen.all())
    finally:
        watcher.stop()


class LimitedInotify(InotifyFD):
    """A real inotify instance that refuses watches after ``limit`` of them, as the kernel does at
    ``fs.inotify.max_user_watches`` (the real limit is a machine-wide sysctl; not changed in tests)."""

    limit = 3

    def add_callback(self, path, mask, callback, id_):  # type: ignore[no-untyped-def]
        if len(self._watch_for_wd) >= self.limit:
            raise OSError(errno.ENOSPC, "inotify watch limit reached")
        return super().add_callback(path, mask, callback, id_)


def test_watch_limit_at_start_falls_back_to_polling_with_one_clear_line(tmp_path: Path, caplog) -> None:
    tree(tmp_path)
    seen = Seen()
    watcher = ScanWatcher(tmp_path, seen, kind="native", poll_interval_s=0.05, inotify_fd=LimitedInotify)
    with caplog.at_level(logging.ERROR, logger="scan_bridge.watcher"):
        watcher.start()
    try:
        assert watcher.kind == "polling"
        [line] = [r.getMessage() for r in caplog.records]
        assert "fs.inotify.max_user_watches" in line and "sysctl -w fs.inotify.max_user_watches=" in line
        assert "polling" in line and str(tmp_path) in line
        target = tmp_path / "2026-03-24" / "scan_000001_000000.arrow"
        target.write_bytes(b"x")
        wait_for(lambda: target in seen.files(), 10, "a scan seen by the fallback poller")
    finally:
        watcher.stop()


def test_watch_limit_for_a_new_folder_falls_back_and_reconciles(tmp_path: Path, caplog) -> None:
    (tmp_path / "2026-03-24").mkdir()
    seen = Seen()
    watcher = ScanWatcher(tmp_path, seen, kind="native", poll_interval_s=0.05, inotify_fd=LimitedInotify)
    with caplog.at_level(logging.ERROR, logger="scan_bridge.watcher"):
        watcher.start()
        try:
            assert watcher.kind == "native" and watcher.folders == 2
            (tmp_path / "a").mkdir()  # the third watch: still fine
            (tmp_path / "b").mkdir()  # the fourth: refused
            wait_for(lambda: watcher.kind == "polling", 10, "the switch to polling")
            wait_for(lambda: any(isinstance(i, Overflow) for i in seen.all()), 10, "a reconcile for the gap")
            target = tmp_path / "b" / "scan_000001_000000.arrow"
            target.write_bytes(b"x")
            wait_for(lambda: target in seen.files(), 10, "a scan in the folder inotify could not watch")
        finally:
            watcher.stop()
    assert sum("max_user_watches" in r.getMessage() for r in caplog.records) == 1


def test_instance_limit_falls_back_to_polling(tmp_path: Path, caplog) -> None:
    def no_instance() -> InotifyFD:
        raise OSError(errno.EMFILE, "inotify instance limit reached")

    watcher = ScanWatcher(tmp_path, Seen(), kind="native", inotify_fd=no_instance)
    with caplog.at_level(logging.ERROR, logger="scan_bridge.watcher"):
        watcher.start()
    watcher.stop()
    assert watcher.kind == "polling"
    assert "fs.inotify.max_user_instances" in caplog.records[0].getMessage()


def test_a_queue_overflow_asks_for_a_reconcile_and_keeps_watching(tmp_path: Path) -> None:
    fds: list[InotifyFD] = []

    def fd() -> InotifyFD:
        fds.append(InotifyFD())
        return fds[-1]

    seen = Seen()
    watcher = ScanWatcher(tmp_path, seen, kind="native", inotify_fd=fd)
    watcher.start()
    try:
        (tmp_path / "lost").mkdir()  # as if its creation event was among the lost ones
        fds[0].handle_event(InotifyEvent(-1, InotifyConstants.IN_Q_OVERFLOW, 0, b""))  # what the kernel sends
        assert Overflow("inotify event queue overflowed") in seen.all()
        target = tmp_path / "lost" / "scan_000001_000000.arrow"
        target.write_bytes(b"x")
        wait_for(lambda: target in seen.files(), 10, "a scan in a folder created during the overflow")
    finally:
        watcher.stop()


def test_auto_observer_is_native_on_a_local_disk(tmp_path: Path) -> None:
    assert resolve_observer_kind("auto", tmp_path) == "native"
    assert resolve_observer_kind("polling", tmp_path) == "polling"


@pytest.mark.parametrize("fs", ["nfs", "cifs"])
def test_auto_observer_polls_a_network_file_system(tmp_path: Path, fs: str) -> None:
    mounts = MOUNTS.format(nfs=tmp_path / "nfs", cifs=tmp_path / "cifs")
    assert resolve_observer_kind("auto", tmp_path / fs / "2026-03-24", mounts) == "polling"
    assert resolve_observer_kind("auto", tmp_path, mounts) == "native"
    watcher = ScanWatcher(tmp_path / fs, Seen(), kind="auto", mount_table=mounts)
    assert watcher.kind == "polling"
