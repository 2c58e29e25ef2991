"""A polling observer whose idle cost is a ``stat`` per folder, whatever the folders hold.

watchdog's ``PollingObserver`` snapshots every watched tree on every poll: it lists each folder and
``stat``s every file. A scanner writing every 5 s leaves 17,280 files a day, and polling a day's
folder that way once a second cost the bridge ~16 % of a core here (docs/performance.md), more on
the network mounts for which polling exists at all, where each ``stat`` is a round trip; polling a
year of them is out of the question.

The bridge only needs to learn that a *name* appeared (it decides completeness from the file's
content, and retries an incomplete file by itself), and a folder's own modification time changes
whenever a name is created, removed or renamed in it. So each poll ``stat``s every folder of the
tree (a year of date folders is ~380) and lists one only when its mtime changed. Folders are

* **hot** (changed within ``HOT_S``): their names are kept; a change reports the new names. They are
  also listed for ``SETTLE_S`` after a change (file systems with a coarse mtime, such as 1 s on some
  CIFS servers, can hide a second change within the same tick) and every ``FULL_RELIST_S``;
* **cold** (unchanged for ``HOT_S``): only ``stat``-ed, their names dropped (memory stays that of the
  recent folders, not of years of names). When a cold folder changes, it is listed and the files
  created, renamed or modified since its previous mtime (minus ``MTIME_SLACK_S``) are reported; then
  it is hot again. A cold folder without sub-folders (last year's day folders) is ``stat``-ed every
  ``COLD_POLL_S`` only: ``stat`` costs ~7 µs here, and a year of them every second was measurably
  more than a day (docs/performance.md). The root and every folder with sub-folders are looked at
  on every poll, so a new folder (a new day, at any depth) is seen within one interval; a late scan
  written into an old, quiet day folder is seen within ``COLD_POLL_S``.

New folders at any depth are reported (a ``DirCreatedEvent``) with every file in them. Events go to
the same handler as watchdog's, so everything downstream is shared with the native observer.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import count

from watchdog.events import DirCreatedEvent, FileCreatedEvent, FileSystemEventHandler

from .discovery import MTIME_SLACK_S, Folder, FolderTree, is_followed_folder, is_scan_path

SETTLE_S = 3.0
FULL_RELIST_S = 30.0
HOT_S = 600.0
COLD_POLL_S = 10.0


@dataclass(slots=True)
class _Folder:
    mtime_ns: int
    dirs: set[str] = field(default_factory=set)
    names: set[str] | None = None  # None: cold, names not kept
    changed_at: float = 0.0
    listed_at: float = 0.0
    next_poll: float = 0.0


@dataclass(slots=True)
class _Watch:
    handler: FileSystemEventHandler
    root: str
    recursive: bool
    folders: dict[str, _Folder] = field(default_factory=dict)


class FolderPoller:
    """The subset of watchdog's observer API the watcher uses: schedule, unschedule, start, stop, join."""

    def __init__(
        self,
        interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._wall_clock = wall_clock
        self._watches: dict[int, _Watch] = {}
        self._ids = count()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="folder-poller", daemon=True)
        self.listed = 0  # folder listings so far (tests and benchmarks look at it)

    @property
    def folder_count(self) -> int:
        with self._lock:
            return sum(len(w.folders) for w in self._watches.values())

    def schedule(self, handler: FileSystemEventHandler, path: str, *, recursive: bool = False, **_: object) -> int:
        """Watch ``path`` (and every folder under it if ``recursive``); what is there now is known, not reported.

        Folders modified within ``HOT_S`` are listed now (their names kept); older ones only ``stat``-ed.
        """
        watch = _Watch(handler, path, recursive)
        now, wall_ns = self._clock(), int(self._wall_clock() * 1e9)
        hot_ns = int(HOT_S * 1e9)
        folders = FolderTree(path).folders() if recursive else [Folder(path, os.stat(path).st_mtime_ns)]
        for folder in folders:
            watch.folders[folder.path] = _Folder(folder.mtime_ns, changed_at=now - HOT_S)
        for folder in folders[1:]:
            parent = watch.folders.get(os.path.dirname(folder.path))
            if parent is not None:
                parent.dirs.add(os.path.basename(folder.path))
        for folder in folders:
            if wall_ns - folder.mtime_ns < hot_ns:
                state = watch.folders[folder.path]
                state.changed_at = now
                self._list(watch, folder.path, state, report=False)
        with self._lock:
            key = next(self._ids)
            self._watches[key] = watch
        return key

    def unschedule(self, key: int) -> None:
        with self._lock:
            self._watches.pop(key, None)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    def poll_once(self) -> None:
        """One round over every watched folder (the thread calls this every ``interval_s``)."""
        with self._lock:
            watches = list(self._watches.values())
        now = self._clock()
        for watch in watches:
            for path, state in list(watch.folders.items()):
                if state.names is None and not state.dirs and path != watch.root:
                    if now < state.next_poll:
                        continue  # a cold leaf: every COLD_POLL_S
                    state.next_poll = now + COLD_POLL_S
                if path in watch.folders:  # not dropped meanwhile with a vanished parent
                    self._poll(watch, path, now)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.poll_once()
            except Exception:  # a vanished mount must not end polling for good
                continue

    def _poll(self, watch: _Watch, path: str, now: float) -> None:
        state = watch.folders[path]
        try:
            mtime_ns = os.stat(path).st_mtime_ns
        except OSError:
            self._drop(watch, path)  # gone; its parent's listing finds it again if it returns
            return
        if mtime_ns != state.mtime_ns:
            since_ns = state.mtime_ns - int(MTIME_SLACK_S * 1e9)
            state.mtime_ns = mtime_ns
            state.changed_at = now
            self._list(watch, path, state, report=True, since_ns=since_ns)
        elif state.names is not None:
            if now - state.changed_at >= HOT_S:
                state.names = None  # cold: stat only, from now on
            elif now - state.changed_at < SETTLE_S or now - state.listed_at >= FULL_RELIST_S:
                self._list(watch, path, state, report=True)

    def _list(self, watch: _Watch, path: str, state: _Folder, *, report: bool, since_ns: int | None = None) -> None:
        """List a folder; report new files and new folders (a cold folder: files changed since ``since_ns``)."""
        self.listed += 1
        state.listed_at = self._clock()
        try:
            with os.scandir(path) as entries:
                all_entries = list(entries)
        except OSError:
            return
        files, dir_list = _split(all_entries)
        names = {entry.name for entry in all_entries}
        dirs = set(dir_list)
        if report:
            if state.names is not None:
                new_files = [e for e in files if e.name not in state.names]
            else:
                new_files = [e for e in files if since_ns is None or _changed_since(e, since_ns)]
            for entry in sorted(new_files, key=lambda e: e.name):
                watch.handler.on_any_event(FileCreatedEvent(entry.path))
        for name in sorted(dirs - state.dirs):
            if watch.recursive:
                self._add_folder(watch, os.path.join(path, name), report=report)
        for gone in state.dirs - dirs:
            self._drop(watch, os.path.join(path, gone))
        state.dirs = dirs if watch.recursive else set()
        state.names = names

    def _add_folder(self, watch: _Watch, path: str, *, report: bool) -> None:
        """A new folder (created or moved in, with whatever it holds): report it and everything in it."""
        if report:
            watch.handler.on_any_event(DirCreatedEvent(path))
        try:
            mtime_ns = os.stat(path, follow_symlinks=False).st_mtime_ns
        except OSError:
            return
        state = watch.folders[path] = _Folder(mtime_ns, changed_at=self._clock())
        self._list(watch, path, state, report=report)

    def _drop(self, watch: _Watch, path: str) -> None:
        prefix = path + os.sep
        for known in [p for p in watch.folders if p == path or p.startswith(prefix)]:
            del watch.folders[known]


def _split(entries: list[os.DirEntry[str]]) -> tuple[list[os.DirEntry[str]], list[str]]:
    files: list[os.DirEntry[str]] = []
    dirs: list[str] = []
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                if is_followed_folder(entry.name):
                    dirs.append(entry.name)
            elif is_scan_path(entry.name):
                files.append(entry)
        except OSError:
            continue
    return files, dirs


def _changed_since(entry: os.DirEntry[str], since_ns: int) -> bool:
    """Created, renamed in (ctime) or written (mtime) since ``since_ns``."""
    try:
        st = entry.stat(follow_symlinks=False)
    except OSError:
        return False
    return max(st.st_mtime_ns, st.st_ctime_ns) >= since_ns
