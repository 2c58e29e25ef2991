"""What the scanner has written: the newest scan files on disk, for the freshness check.

Compared with what Hazelcast holds, they tell a stuck bridge (a newer, complete file it did not
push) from a silent scanner (nothing newer on disk). Files are read through the bridge's own reader
(:mod:`.scanfile`), so the check and the bridge never disagree on what a file holds.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, tzinfo
from pathlib import Path

from .discovery import UnreadableFolder, newest_files
from .document import DEFAULT_MAX_FILE_BYTES
from .health_classify import DiskFile
from .ordering import ScanId, is_newer
from .scanfile import ScanFileError, read_scan, scan_number_of_file

__all__ = ["COMPLETE_COMPARED", "probe_disk", "scan_id_of_file", "scan_number_of_file"]


def scan_id_of_file(path: str | os.PathLike[str], zone: tzinfo = UTC) -> ScanId | None:
    """The scan's number and time (read with the scanner's ``zone``) through the bridge's own reader; None if not a valid scan (yet).

    An ambiguous local time (the repeated autumn hour) is read as its first occurrence: the check
    compares with a tolerance of its own (the grace), and the bridge settles such times by number.
    """
    try:
        record = read_scan(path, DEFAULT_MAX_FILE_BYTES, zone=zone)
    except ScanFileError:
        return None
    return record.scan_id


#: How many complete files (newest by modification time first) the check reads to find the newest
#: *scan* among them: a late, older file copied in last must not hide a newer scan written just before.
COMPLETE_COMPARED = 5
#: How many of the newest files the probe may look at to find complete ones. It must cover every file
#: younger than the grace: 20 did not at 5 scans/s (50 files in a 10 s grace), so no complete file was
#: found and a bridge that did not push was called "scanner silent" (chaos harness, issue 10). Files
#: younger than the grace are only stat'ed, and the listing is bounded by this many paths in memory.
DISK_LOOK_AT = 2000


def probe_disk(
    root: Path, grace_s: float, now: float | None = None, look_at: int = DISK_LOOK_AT, zone: tzinfo = UTC,
    unreadable: list[UnreadableFolder] | None = None,
) -> tuple[DiskFile | None, DiskFile | None]:
    """(newest scan file, newest *complete* scan) under ``root``.

    The first is the file modified last (complete or not: what the scanner is doing). The second is
    the newest scan by :mod:`scan_bridge.ordering` (the scanner's time, with the scanner's ``zone``)
    among the first :data:`COMPLETE_COMPARED` complete files, newest modified first. Complete means
    unmodified for ``grace_s``: a file still being written keeps a fresh mtime. We look past the
    newest file because a scanner writing every few seconds always has a file younger than the
    grace; ``look_at`` bounds how far (the listing is newest-first and lazy, see discovery).
    Folders that could not be listed go to ``unreadable`` (:func:`hidden_by`).
    """
    now = time.time() if now is None else now
    newest: DiskFile | None = None
    complete_files: list[DiskFile] = []
    for path in newest_files(root, look_at, unreadable=unreadable):
        try:
            mtime = os.stat(path).st_mtime  # paths are str: a Path per file interns its name (discovery)
        except OSError:
            continue
        complete = now - mtime >= grace_s
        scan = scan_id_of_file(path, zone) if complete else None  # a file still being written is not read
        number = scan.scan_number if scan is not None else scan_number_of_file(path)
        entry = DiskFile(path=path, scan_number=number, mtime=mtime, timestamp=scan.timestamp if scan else None)
        if newest is None:
            newest = entry
        if complete:
            complete_files.append(entry)
            if len(complete_files) >= COMPLETE_COMPARED:
                break
    best: DiskFile | None = complete_files[0] if complete_files else None
    for entry in complete_files:
        scan = entry.scan_id
        if scan is not None and (best is None or best.scan_id is None or is_newer(scan, best.scan_id)):
            best = entry
    return newest, best


def hidden_by(unreadable: list[UnreadableFolder], newest: DiskFile | None) -> UnreadableFolder | None:
    """The unreadable folder that may hold scans newer than the newest one seen, if any.

    Such a folder makes "nothing newer on disk" unproven; an old one (last changed before the newest
    scan seen) hides nothing that matters to freshness.
    """
    for folder in unreadable:
        if newest is None or folder.mtime_ns / 1e9 >= newest.mtime:
            return folder
    return None
