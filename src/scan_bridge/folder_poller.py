"""A polling observer whose idle cost does not grow with the files in a folder.

watchdog's ``PollingObserver`` snapshots every watched tree on every poll: it lists each folder and
``stat``s every file. A scanner writing every 5 s leaves 17,280 files in a day's folder, and
polling that once a second cost the bridge ~16 % of a core here (docs/performance.md), more on the
network mounts for which polling exists at all, where each ``stat`` is a round trip.

The bridge only needs to learn that a *name* appeared (it decides completeness from the file's
content, and retries an incomplete file by itself), and a folder's own modification time changes
whenever a name is created, removed or renamed in it. So each poll ``stat``s each watched folder,
and lists one only when its mtime changed, for ``SETTLE_S`` after a change (file systems with a
coarse mtime, such as 1 s on some CIFS servers, can hide a second change within the same tick),
and every ``FULL_RELIST_S`` as a safety net. It reports created names as watchdog events to the same
handler as the native observer, so everything downstream is shared.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from itertools import count

from watchdog.events import DirCreatedEvent, FileCreatedEvent, FileSystemEventHandler

SETTLE_S = 3.0
FULL_RELIST_S = 30.0


@dataclass(slots=True)
class _Folder:
    mtime_ns: int = -1
    names: set[str] = field(default_factory=set)
    dirs: set[str] = field(default_factory=set)
    changed_at: float = 0.0
    listed_at: float = 0.0


@dataclass(slots=True)
class _Watch:
    handler: FileSystemEventHandler
    root: str
    recursive: bool
    folders: dict[str, _Folder] = field(default_factory=dict)


class FolderPoller:
    """The subset of watchdog's observer API the watcher uses: schedule, unschedule, start, stop, join."""

    def __init__(self, interval_s: float = 1.0, clock: object = time.monotonic) -> None:
        self.interval_s = interval_s
        self._clock = clock
        self._watches: dict[int, _Watch] = {}
        self._ids = count()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="folder-poller", daemon=True)

    def schedule(self, handler: FileSystemEventHandler, path: str, *, recursive: bool = False, **_: object) -> int:
        """Watch ``path``; names already there are known, not reported (as with watchdog's snapshot)."""
        watch = _Watch(handler, path, recursive)
        self._scan(watch, path, report=False)
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
        for watch in watches:
            for folder in list(watch.folders):
                self._scan(watch, folder, report=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.poll_once()
            except Exception:  # a vanished mount must not end polling for good
                continue

    def _scan(self, watch: _Watch, path: str, *, report: bool) -> None:
        now = self._clock()  # type: ignore[operator]
        state = watch.folders.setdefault(path, _Folder())
        try:
            mtime_ns = os.stat(path).st_mtime_ns
        except OSError:
            watch.folders.pop(path, None)  # gone; its parent's listing finds it again if it returns
            return
        if mtime_ns != state.mtime_ns:
            state.mtime_ns = mtime_ns
            state.changed_at = now
        elif now - state.changed_at >= SETTLE_S and now - state.listed_at < FULL_RELIST_S:
            return
        state.listed_at = now
        names: set[str] = set()
        dirs: set[str] = set()
        try:
            with os.scandir(path) as entries:
                for entry in entries:
                    names.add(entry.name)
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            dirs.add(entry.name)
                    except OSError:
                        pass
        except OSError:
            return
        for name in sorted(names - state.names):
            full = os.path.join(path, name)
            if name in dirs:
                if report:
                    watch.handler.on_any_event(DirCreatedEvent(full))
                if watch.recursive:
                    self._scan(watch, full, report=report)
            elif report:
                watch.handler.on_any_event(FileCreatedEvent(full))
        for gone in state.dirs - dirs:
            watch.folders.pop(os.path.join(path, gone), None)
        state.names, state.dirs = names, dirs
