"""Which files on disk are scans, and which are the newest, without walking years of history.

A scanner writing every 5 s leaves ~17,000 files a day in date folders that nobody cleans up.
Start-up reconciliation and the health check only ever need the *newest* files, so we walk the tree
newest-first and lazily: sub-folders in descending name order (date folders sort by name), files in
a folder by modification time. A caller that stops after N files has listed only the folders that
hold those N files, whatever lies behind them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from itertools import islice
from pathlib import Path

SCAN_SUFFIXES = (".arrow", ".arrows")
_SCAN_NUMBER_IN_NAME = re.compile(r"scan_(\d+)")


def is_scan_path(path: str | os.PathLike[str]) -> bool:
    """True for names a scanner's finished scan can have; temp and hidden files are not scans.

    Writers that write to a temp name and rename (``.scan.arrow.tmp`` → ``scan.arrow``) are handled
    by ignoring everything that is hidden or does not end in an Arrow suffix.
    """
    name = os.path.basename(os.fspath(path))
    if not name or name[0] in ".~" or name.endswith("~"):
        return False
    return name.lower().endswith(SCAN_SUFFIXES)


def scan_number_from_name(path: str | os.PathLike[str]) -> int | None:
    """The scan number a file name announces (``scan_004228_120000.arrow`` → 4228), if any.

    Only a hint to skip reading files Hazelcast already holds; the number inside the file is the truth.
    """
    match = _SCAN_NUMBER_IN_NAME.search(os.path.basename(os.fspath(path)))
    return int(match.group(1)) if match else None


def _entries(directory: Path) -> tuple[list[os.DirEntry[str]], list[os.DirEntry[str]]]:
    files: list[os.DirEntry[str]] = []
    dirs: list[os.DirEntry[str]] = []
    try:
        with os.scandir(directory) as it:
            for entry in it:
                if entry.name.startswith("."):
                    continue
                try:
                    if entry.is_dir(follow_symlinks=False):
                        dirs.append(entry)
                    elif entry.is_file() and is_scan_path(entry.name):
                        files.append(entry)
                except OSError:
                    continue
    except OSError:
        pass
    return files, dirs


def _mtime(entry: os.DirEntry[str]) -> float:
    try:
        return entry.stat().st_mtime
    except OSError:
        return 0.0


def iter_newest(root: Path) -> Iterator[Path]:
    """Scan files under ``root``, newest first, listing folders only as the caller asks for more.

    In each folder its own files come first (newest modification first), then its sub-folders in
    descending name order, each walked the same way.
    """
    files, dirs = _entries(root)
    files.sort(key=lambda e: (_mtime(e), e.name), reverse=True)
    for entry in files:
        yield Path(entry.path)
    dirs.sort(key=lambda e: e.name, reverse=True)
    for entry in dirs:
        yield from iter_newest(Path(entry.path))


def newest_files(root: Path, limit: int) -> list[Path]:
    """The ``limit`` newest scan files under ``root``, newest first."""
    return list(islice(iter_newest(root), limit))


def newest_subdirs(root: Path, count: int) -> list[Path]:
    """The ``count`` newest direct sub-folders (by name) of ``root``: where new scans can appear."""
    _, dirs = _entries(root)
    dirs.sort(key=lambda e: e.name, reverse=True)
    return [Path(entry.path) for entry in dirs[:count]]
