"""File events for new scans, from watchdog, watching only where new scans can appear.

Two choices here:
- inotify sees nothing that another machine writes to a CIFS/NFS mount, so ``auto`` picks the
  polling observer on network file systems (from ``/proc/mounts``) and inotify elsewhere.
- watchdog's polling observer snapshots the whole watched tree on every poll (a ``stat`` per file),
  so ``polling`` uses :class:`~scan_bridge.folder_poller.FolderPoller`, which lists a folder only
  when its own mtime changed; and even inotify adds a watch per folder at start. Scanners leave years of date folders behind, so we watch the
  top folder alone (to see new date folders appear) plus the ``recent_dirs`` newest sub-folders,
  and follow new ones as they appear. The cost is that of the new files, not of the history.

Events are not decisions: the watcher only reports paths; the bridge's loop decides what they mean.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch

from .discovery import is_scan_path, newest_subdirs
from .folder_poller import FolderPoller

NETWORK_FILESYSTEMS = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs", "9p", "afs", "ceph", "glusterfs", "fuse.glusterfs", "lustre"}
)
RETIRE_AFTER_S = 600.0
_EVENTS = [DirCreatedEvent, DirMovedEvent, FileClosedEvent, FileCreatedEvent, FileModifiedEvent, FileMovedEvent]


@dataclass(frozen=True, slots=True)
class FileSeen:
    """Something happened to a file that may be a scan: try it."""

    path: Path


@dataclass(frozen=True, slots=True)
class DirSeen:
    """A new folder appeared at the top of the watched tree (a new date folder): follow it."""

    path: Path


def filesystem_type(path: Path) -> str:
    """The type of the file system holding ``path``, from the longest matching ``/proc/mounts`` entry."""
    best, kind = "", "unknown"
    target = os.path.realpath(path)
    try:
        with open("/proc/mounts", encoding="utf-8") as mounts:
            for line in mounts:
                parts = line.split()
                if len(parts) < 3:
                    continue
                mount_point = parts[1].replace("\\040", " ")
                inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
                if inside and len(mount_point) >= len(best):
                    best, kind = mount_point, parts[2]
    except OSError:
        pass
    return kind


def resolve_observer_kind(kind: str, root: Path) -> str:
    """``native`` or ``polling``: what ``auto`` means for this directory."""
    if kind != "auto":
        return kind
    return "polling" if filesystem_type(root) in NETWORK_FILESYSTEMS else "native"


class _Handler(FileSystemEventHandler):
    def __init__(self, root: Path, emit: Callable[[FileSeen | DirSeen], None]) -> None:
        self._root = str(root)
        self._emit = emit

    def on_any_event(self, event: FileSystemEvent) -> None:
        path = os.fsdecode(event.dest_path if isinstance(event, (FileMovedEvent, DirMovedEvent)) else event.src_path)
        if event.is_directory:
            if isinstance(event, (DirCreatedEvent, DirMovedEvent)) and os.path.dirname(path) == self._root:
                self._emit(DirSeen(Path(path)))
        elif is_scan_path(path):
            self._emit(FileSeen(Path(path)))


class ScanWatcher:
    """Watches ``root`` and its newest sub-folders; reports :class:`FileSeen` and :class:`DirSeen`."""

    def __init__(
        self,
        root: Path,
        emit: Callable[[FileSeen | DirSeen], None],
        *,
        kind: str = "auto",
        poll_interval_s: float = 1.0,
        recent_dirs: int = 2,
    ) -> None:
        self.root = root
        self.kind = resolve_observer_kind(kind, root)
        self._recent_dirs = recent_dirs
        self._handler = _Handler(root, emit)
        self._observer: BaseObserver | FolderPoller = (
            FolderPoller(poll_interval_s) if self.kind == "polling" else Observer()
        )
        self._followed: dict[Path, ObservedWatch | int] = {}
        self._retiring: dict[Path, float] = {}

    def start(self) -> None:
        self._observer.schedule(self._handler, str(self.root), recursive=False, event_filter=_EVENTS)
        for directory in reversed(newest_subdirs(self.root, self._recent_dirs)):
            self.follow(directory)
        self._observer.start()

    def follow(self, directory: Path, now: float | None = None) -> None:
        """Watch a (new) sub-folder recursively; folders pushed out of the newest ``recent_dirs`` are
        dropped ``RETIRE_AFTER_S`` later (:meth:`retire`), so that a scanner still finishing
        yesterday's last files at midnight is not missed, while yesterday's full folder is not
        polled all day (the polling observer's cost grows with the files in the folders it watches).
        """
        if directory in self._followed or not directory.is_dir():
            return
        self._followed[directory] = self._observer.schedule(
            self._handler, str(directory), recursive=True, event_filter=_EVENTS
        )
        when = (time.monotonic() if now is None else now) + RETIRE_AFTER_S
        for old in sorted(self._followed, key=lambda p: p.name)[: -self._recent_dirs]:
            self._retiring.setdefault(old, when)

    def retire(self, now: float | None = None) -> None:
        """Stop watching folders whose grace has passed; called from the bridge's loop."""
        now = time.monotonic() if now is None else now
        for old, when in list(self._retiring.items()):
            if when <= now:
                del self._retiring[old]
                watch = self._followed.pop(old, None)
                if watch is not None:
                    self._observer.unschedule(watch)

    @property
    def followed(self) -> list[Path]:
        return sorted(self._followed)

    def stop(self) -> None:
        self._observer.stop()
        self._observer.join(timeout=5)
