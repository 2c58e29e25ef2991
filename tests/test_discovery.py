"""Which files are the newest: by modification time (scan number breaks ties), never by folder name,
and without listing folders that cannot hold them. Reconcile, rescan and the health probe all use it."""

from __future__ import annotations

import os
import time
import tracemalloc
from itertools import islice
from pathlib import Path

import pytest

from scan_bridge import discovery
from scan_bridge.discovery import FolderTree, filesystem_type, iter_newest, newest_files, nlink_is_reliable
from scan_bridge.health import probe_disk
from scan_bridge.health_disk import DiskFile, hidden_by

DAY = 86400


def touch(path: Path, mtime: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        path.write_bytes(b"x")
    os.utime(path, (mtime, mtime))
    return path


def settle_folders(root: Path, mtime: float) -> None:
    """Give every folder an old mtime (as a real history has), deepest first."""
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        os.utime(folder, (mtime, mtime))
    os.utime(root, (mtime, mtime))


def test_newest_is_by_modification_time_whatever_the_folders_are_called(tmp_path: Path) -> None:
    now = time.time()
    # Names sort opposite to age: 'zzz' and 'logs' sort after the dates, '2026-03-24' is today's.
    touch(tmp_path / "zzz" / "scan_000001_000000.arrow", now - 3 * DAY)
    touch(tmp_path / "logs" / "scan_000002_000000.arrow", now - 2 * DAY)
    touch(tmp_path / "2026-03-23" / "scan_000003_000000.arrow", now - DAY)
    touch(tmp_path / "2026-03-24" / "scan_000004_000000.arrow", now - 20)
    touch(tmp_path / "2026" / "03" / "24" / "scan_000005_000000.arrow", now - 10)
    touch(tmp_path / "scan_000006_000000.arrow", now - 5)  # flat, at the top
    os.utime(tmp_path / "zzz", (now, now))  # a folder touched lately holds nothing new
    os.utime(tmp_path / "2026-03-24", (now - 20, now - 20))
    newest = newest_files(tmp_path, 10, tree=FolderTree(tmp_path))
    assert [discovery.scan_number_from_name(p) for p in newest] == [6, 5, 4, 3, 2, 1]


def test_reconcile_rescan_and_health_probe_agree_on_the_newest(tmp_path: Path) -> None:
    now = time.time()
    touch(tmp_path / "archive" / "scan_000100_000000.arrow", now - 100)
    touch(tmp_path / "2026-03-24" / "scan_000200_000000.arrow", now - 50)
    settle_folders(tmp_path, now - 200)
    os.utime(tmp_path / "archive", (now - 100, now - 100))
    os.utime(tmp_path / "2026-03-24", (now - 50, now - 50))
    newest, complete = probe_disk(tmp_path, grace_s=10, now=now)
    assert newest is not None and complete is not None
    assert newest.path == str(tmp_path / "2026-03-24" / "scan_000200_000000.arrow")
    assert newest.path == newest_files(tmp_path, 1)[0]


def test_scan_number_breaks_a_tie_of_modification_times(tmp_path: Path) -> None:
    stamp = time.time() - 100
    for number in (7, 9, 8):
        touch(tmp_path / "d" / f"scan_{number:06d}_000000.arrow", stamp)
    assert [os.path.basename(p)[5:11] for p in newest_files(tmp_path, 3, tree=FolderTree(tmp_path))] == ["000009", "000008", "000007"]


def test_a_year_of_folders_is_not_listed_to_find_the_newest(tmp_path: Path, monkeypatch) -> None:
    now = time.time()
    for day in range(60):
        touch(tmp_path / f"2026-01-{day:03d}" / f"scan_{day:06d}_000000.arrow", now - (60 - day) * DAY)
    settle_folders(tmp_path, now - 100 * DAY)
    for day in range(60):
        os.utime(tmp_path / f"2026-01-{day:03d}", (now - (60 - day) * DAY,) * 2)
    listed: list[str] = []
    real = os.scandir
    # Every listing, whichever helper makes it (newest_files streams folders through _scan_entries,
    # iter_newest and the walk use list_folder): counting one helper let newest_files list a year unseen.
    monkeypatch.setattr(discovery.os, "scandir", lambda p: (listed.append(os.fspath(p)), real(p))[1])
    newest = newest_files(tmp_path, 2, tree=FolderTree(tmp_path))
    assert [Path(p).parent.name for p in newest] == ["2026-01-059", "2026-01-058"]
    assert len(listed) <= 4, f"newest_files listed {len(listed)} of 61 folders: {listed[:4]} ..."
    listed.clear()
    assert list(islice(iter_newest(tmp_path, tree=FolderTree(tmp_path)), 2)) == newest
    assert len(listed) <= 4, f"iter_newest listed {len(listed)} of 61 folders: {listed[:4]} ..."


def test_the_folder_walk_is_one_stat_per_folder_until_something_changes(tmp_path: Path) -> None:
    for month in ("01", "02"):
        for day in ("01", "02", "03"):
            (tmp_path / "2026" / month / day).mkdir(parents=True)
            (tmp_path / "2026" / month / day / "scan_000001_000000.arrow").write_bytes(b"x")
    settle_folders(tmp_path, time.time() - 100)
    tree = FolderTree(tmp_path, trust_nlink=True)
    first = tree.folders()
    assert len(first) == 1 + 1 + 2 + 6
    assert tree.listed == 4, "leaves (nlink 2) are stat-ed, not listed"
    tree.folders()
    assert tree.listed == 4, "nothing changed: nothing listed"
    (tmp_path / "2026" / "02" / "04").mkdir()
    found = {f.path for f in tree.folders()}
    assert str(tmp_path / "2026" / "02" / "04") in found
    assert tree.listed == 5, "only the folder whose mtime changed is listed again"


def test_without_trusted_link_counts_every_folder_is_listed(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    tree = FolderTree(tmp_path, trust_nlink=False)
    assert {Path(f.path) for f in tree.folders()} == {tmp_path, tmp_path / "a", tmp_path / "a" / "b"}
    assert tree.listed == 3


MOUNTS = """\
/dev/vda / ext4 rw,relatime 0 0
server:/export /mnt/scans nfs4 rw,relatime 0 0
//nas/share /mnt/nas cifs rw 0 0
/dev/vdb /mnt/scans/local\\040disk ext4 rw 0 0
"""


@pytest.mark.parametrize(
    ("path", "expected"),
    [("/mnt/scans/2026", "nfs4"), ("/mnt/nas/x", "cifs"), ("/mnt/scans/local disk/a", "ext4"), ("/home", "ext4")],
)
def test_filesystem_type_from_an_injected_mount_table(path: str, expected: str) -> None:
    assert filesystem_type(path, MOUNTS) == expected


def test_link_counts_are_not_trusted_where_they_are_faked() -> None:
    assert nlink_is_reliable("ext4") and nlink_is_reliable("nfs4") and nlink_is_reliable("btrfs")
    assert not nlink_is_reliable("cifs") and not nlink_is_reliable("fuse.sshfs")


# -- issue 17: newest_files in memory bounded by its limit -----------------------------------------


def _touch_at(path: Path, mtime: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    os.utime(path, (mtime, mtime))


def test_newest_files_is_iter_newest_cut_at_the_limit(tmp_path: Path) -> None:
    # Three date folders, files in the top folder too, mtimes not in name order, ties broken by name,
    # hidden and temp files ignored, a nested folder inside a day.
    t = 1_700_000_000.0
    for day, count in (("2026-03-22", 5), ("2026-03-23", 7), ("2026-03-24", 4)):
        for i in range(count):
            _touch_at(tmp_path / day / f"scan_{day[-2:]}{i:04d}_120000.arrow", t + (i * 7919) % 13)
    _touch_at(tmp_path / "2026-03-24" / "scan_tie_b.arrow", t + 3)
    _touch_at(tmp_path / "2026-03-24" / "scan_tie_a.arrow", t + 3)
    _touch_at(tmp_path / "2026-03-23" / "extra" / "scan_nested.arrows", t + 100)
    _touch_at(tmp_path / "scan_top.arrow", t - 50)
    _touch_at(tmp_path / "2026-03-24" / ".scan_hidden.arrow", t + 999)
    _touch_at(tmp_path / "2026-03-24" / "scan_temp.arrow.tmp", t + 999)
    everything = list(iter_newest(tmp_path))
    assert len(everything) == 5 + 7 + 4 + 2 + 1 + 1
    for limit in range(len(everything) + 3):
        assert newest_files(tmp_path, limit) == everything[:limit], limit
    assert newest_files(tmp_path / "missing", 5) == []


def test_a_folder_that_cannot_be_listed_is_reported_and_the_others_still_count(tmp_path: Path, monkeypatch) -> None:
    now = time.time()
    touch(tmp_path / "2026-12-01" / "scan_000001_000000.arrow", now - DAY)
    touch(tmp_path / "2026-12-02" / "scan_000002_000000.arrow", now - 10)
    touch(tmp_path / "gone" / "scan_000003_000000.arrow", now - 2 * DAY)
    settle_folders(tmp_path, now - 3 * DAY)
    os.utime(tmp_path / "2026-12-01", (now - DAY, now - DAY))
    os.utime(tmp_path / "2026-12-02", (now - 10, now - 10))
    real_scandir = os.scandir

    def scandir(path):  # today's folder chmod 000 (we are root here), "gone" removed between walk and listing
        if str(path).endswith("2026-12-02"):
            raise PermissionError(13, "Permission denied", str(path))
        if str(path).endswith("gone"):
            raise FileNotFoundError(2, "No such file or directory", str(path))
        return real_scandir(path)

    tree = FolderTree(tmp_path)
    tree.folders()  # walked before the listing fails, as a long-lived tree is
    monkeypatch.setattr(discovery.os, "scandir", scandir)
    unreadable: list[discovery.UnreadableFolder] = []
    newest = newest_files(tmp_path, 10, tree=tree, unreadable=unreadable)
    assert [discovery.scan_number_from_name(p) for p in newest] == [1]
    today = tmp_path / "2026-12-02"
    assert unreadable == [discovery.UnreadableFolder(str(today), today.stat().st_mtime_ns, "PermissionError: Permission denied")]
    # The health probe: a folder newer than every scan seen hides what matters; an older one does not.
    seen = DiskFile(path="x", scan_number=1, mtime=now - DAY, timestamp=None)
    assert hidden_by(unreadable, seen) == unreadable[0] and hidden_by(unreadable, None) == unreadable[0]
    older = discovery.UnreadableFolder("old", int((now - 2 * DAY) * 1e9), "PermissionError: Permission denied")
    assert hidden_by([older], seen) is None


def test_newest_files_memory_does_not_grow_with_the_folder(tmp_path: Path) -> None:
    # A day at 5 scans/s is 432,000 files; 20,000 are enough to tell O(limit) from O(folder):
    # holding every DirEntry with its stat to sort them peaked at ~10 MB here.
    day = tmp_path / "2026-03-24"
    day.mkdir()
    for i in range(20_000):
        (day / f"scan_{i:06d}_120000.arrow").touch()
    newest_files(tmp_path, 20)  # warm up imports and caches outside the measurement
    tracemalloc.start()
    try:
        found = newest_files(tmp_path, 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(found) == 20
    assert peak < 200_000, f"newest_files(…, 20) over 20,000 files peaked at {peak / 1e6:.1f} MB"
    assert found == list(islice(iter_newest(tmp_path), 20))


pytestmark = pytest.mark.unit  # pure: see pyproject.toml markers
