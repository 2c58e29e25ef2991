"""File events for new scans anywhere under the watched directory, with either observer.

Every folder under the root is watched, whatever it is called and however deep (``2026-03-24/``,
``2026/03/24/``, ``logs/``, a flat folder): where a new scan can appear is decided by what changes
on disk, never by the order of names. Folders created, renamed or moved in while running are
followed; a :class:`DirSeen` tells the bridge to list one, for the files that landed in it before
its watch did.

* ``native``: one inotify instance (watchdog's :class:`~watchdog.observers.inotify_c.InotifyFD`,
  one reader thread) with one non-recursive watch per folder, added by the folder walk of
  :class:`~scan_bridge.discovery.FolderTree`. Not watchdog's recursive ``InotifyEmitter``: at start
  (and after every queue overflow) it ``os.walk``-s every *file* of the tree (a year of a scanner's
  history is millions of names), it silently skips a sub-folder whose watch fails at the
  ``fs.inotify.max_user_watches`` limit, and it tells no handler that its queue overflowed.
  Here a failed watch and an overflow are reported: at the watch or instance limit the watcher
  logs one line naming the limit and the ``sysctl`` that raises it and falls back to polling; an
  overflow makes the bridge reconcile from disk (:class:`Overflow`).
* ``polling``: :class:`~scan_bridge.folder_poller.FolderPoller` over the same tree (a ``stat`` per
  folder per poll; see there). ``auto`` picks it on network file systems, where inotify sees
  nothing another machine writes.

Events are not decisions: the watcher only reports paths; the bridge's loop decides what they mean.
"""

from __future__ import annotations

import errno
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import DirCreatedEvent, FileSystemEvent, FileSystemEventHandler
from watchdog.observers.inotify_c import InotifyConstants, InotifyEvent, InotifyFD

from .discovery import NETWORK_FILESYSTEMS, FolderTree, filesystem_type, is_followed_folder, is_scan_path
from .folder_poller import FolderPoller
from .logs import fields

log = logging.getLogger("scan_bridge.watcher")

INOTIFY_SYSCTL = "/proc/sys/fs/inotify"
_MASK = (
    InotifyConstants.IN_CREATE
    | InotifyConstants.IN_MOVED_TO
    | InotifyConstants.IN_MOVED_FROM
    | InotifyConstants.IN_CLOSE_WRITE
    | InotifyConstants.IN_MODIFY
    | InotifyConstants.IN_DELETE_SELF
    | InotifyConstants.IN_ONLYDIR
    | InotifyConstants.IN_DONT_FOLLOW
)


@dataclass(frozen=True, slots=True)
class FileSeen:
    """Something happened to a file that may be a scan: try it.

    ``path`` is a ``str``, never a ``pathlib.Path``: one is made per file event, and a ``Path``
    interns every part of its path (see :mod:`.discovery`'s docstring; issue 17).
    """

    path: str


@dataclass(frozen=True, slots=True)
class DirSeen:
    """A folder appeared (created, renamed or moved in, at any depth): list it for files that landed before its watch."""

    path: Path


@dataclass(frozen=True, slots=True)
class Overflow:
    """File events may have been lost (inotify queue overflow, a switch of observer): reconcile from disk."""

    reason: str


WatchEvent = FileSeen | DirSeen | Overflow


class WatchLimitReached(OSError):
    """inotify refused a watch or an instance: the per-user limit (a sysctl) is exhausted."""


def resolve_observer_kind(kind: str, root: Path, mount_table: str | None = None) -> str:
    """``native`` or ``polling``: what ``auto`` means for this directory (``mount_table``: see filesystem_type)."""
    if kind != "auto":
        return kind
    return "polling" if filesystem_type(root, mount_table) in NETWORK_FILESYSTEMS else "native"


def limit_message(exc: OSError, root: Path, watched: int) -> str:
    """The one line logged at an inotify limit: which limit, its value, how to raise it, what happens now."""
    name = "max_user_instances" if exc.errno == errno.EMFILE else "max_user_watches"
    try:
        with open(os.path.join(INOTIFY_SYSCTL, name), encoding="ascii") as current:
            value = int(current.read().strip())
    except (OSError, ValueError):
        value = None
    wanted = max((value or 8192) * 2, watched * 4, 65536) if name == "max_user_watches" else max((value or 128) * 2, 256)
    return (
        f"inotify limit fs.inotify.{name} reached ({value if value is not None else 'unknown'}) "
        f"with {watched} folders watched under {root}; falling back to the polling observer. "
        f"Raise it: sysctl -w fs.inotify.{name}={wanted} (and in /etc/sysctl.d/ to keep it)"
    )


class InotifyTree:
    """One non-recursive inotify watch per folder under ``root``, folders followed as they come and go."""

    def __init__(
        self,
        root: Path,
        emit: Callable[[WatchEvent], None],
        on_limit: Callable[[OSError, int], None],
        inotify_fd: Callable[[], InotifyFD] = InotifyFD,
    ) -> None:
        self.root = str(root)
        self._emit = emit
        self._on_limit = on_limit
        self._make_fd = inotify_fd
        self._fd: InotifyFD | None = None
        self._wd_path: dict[int, str] = {}
        self._path_wd: dict[str, int] = {}
        self._lock = threading.RLock()
        self._trust_nlink: bool | None = None
        self._failed = False

    @property
    def watched(self) -> int:
        return len(self._path_wd)

    def start(self) -> None:
        """Create the inotify instance and watch every folder; raises WatchLimitReached at a limit."""
        try:
            self._fd = self._make_fd()
        except OSError as exc:
            raise WatchLimitReached(exc.errno, str(exc)) from exc
        self._fd.start()
        tree = FolderTree(self.root)
        self._trust_nlink = tree.trust_nlink
        tree.folders(visit=self._add_watch)

    def stop(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            fd.stop()
            if fd is not threading.current_thread():
                fd.join(5)

    def _add_watch(self, path: str) -> None:
        """Called for each folder before it is looked into; raises WatchLimitReached at the limit."""
        with self._lock:
            if path in self._path_wd or self._fd is None:
                return
            try:
                wd = self._fd.add_callback(os.fsencode(path), _MASK, self, id(self))  # type: ignore[arg-type]
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EMFILE):
                    raise WatchLimitReached(exc.errno, str(exc)) from exc
                return  # the folder vanished or is unreadable: nothing to watch there
            if wd == -1:  # watchdog returns the failed descriptor for EACCES: an unreadable folder
                return
            old = self._wd_path.get(wd)
            if old is not None:  # the same folder under a new name (inotify returns its existing watch)
                self._path_wd.pop(old, None)
            self._wd_path[wd] = path
            self._path_wd[path] = wd

    def _add_tree(self, path: str) -> bool:
        try:
            FolderTree(path, trust_nlink=self._trust_nlink).folders(visit=self._add_watch)
        except WatchLimitReached as exc:
            self._fail(exc)
            return False
        return True

    def _drop_tree(self, path: str) -> None:
        """A folder moved away (or out of the tree): forget its watches; its new name, if inside, is added anew."""
        prefix = path + os.sep
        with self._lock:
            gone = [(p, wd) for p, wd in self._path_wd.items() if p == path or p.startswith(prefix)]
            for p, wd in gone:
                del self._path_wd[p]
                self._wd_path.pop(wd, None)
            fd = self._fd
        if fd is not None and gone:
            fd.remove_callbacks([(wd, id(self)) for _, wd in gone])  # type: ignore[misc]

    def _fail(self, exc: OSError) -> None:
        with self._lock:
            if self._failed:
                return
            self._failed = True
        self._on_limit(exc, self.watched)

    # -- watchdog's WatchCallback protocol (called from the InotifyFD thread) ---------------------

    def on_event(self, event: InotifyEvent) -> None:
        try:
            self._on_event(event)
        except Exception:  # an exception here would end watchdog's reader thread: blind for good
            log.exception("Could not handle an inotify event (%r); asking for a reconcile", event)
            self._emit(Overflow("an inotify event could not be handled"))

    def _on_event(self, event: InotifyEvent) -> None:
        with self._lock:
            folder = self._wd_path.get(event.wd)
        if folder is None or not event.name:
            return
        name = os.fsdecode(event.name)
        path = os.path.join(folder, name)
        if event.mask & InotifyConstants.IN_ISDIR:
            if not is_followed_folder(name):
                return
            if event.is_create or event.is_moved_to:
                if self._add_tree(path):
                    self._emit(DirSeen(Path(path)))
            elif event.is_moved_from:
                self._drop_tree(path)
        elif is_scan_path(name) and (event.is_create or event.is_moved_to or event.is_close_write or event.is_modify):
            self._emit(FileSeen(path))

    def on_watch_deleted(self, wd: int) -> None:
        with self._lock:
            path = self._wd_path.pop(wd, None)
            if path is not None and self._path_wd.get(path) == wd:
                del self._path_wd[path]

    def on_queue_overflow(self) -> None:
        """Events were lost: watch any folder created meanwhile, then have the bridge reconcile."""
        if self._add_tree(self.root):
            self._emit(Overflow("inotify event queue overflowed"))


class _Handler(FileSystemEventHandler):
    """Turns the polling observer's watchdog events into our messages."""

    def __init__(self, emit: Callable[[WatchEvent], None]) -> None:
        self._emit = emit

    def on_any_event(self, event: FileSystemEvent) -> None:
        path = os.fsdecode(event.src_path)
        if isinstance(event, DirCreatedEvent):
            self._emit(DirSeen(Path(path)))
        elif not event.is_directory and is_scan_path(path):
            self._emit(FileSeen(path))


class ScanWatcher:
    """Watches every folder under ``root``; reports :class:`FileSeen`, :class:`DirSeen` and :class:`Overflow`."""

    def __init__(
        self,
        root: Path,
        emit: Callable[[WatchEvent], None],
        *,
        kind: str = "auto",
        poll_interval_s: float = 1.0,
        mount_table: str | None = None,
        inotify_fd: Callable[[], InotifyFD] = InotifyFD,
    ) -> None:
        self.root = root
        self.kind = resolve_observer_kind(kind, root, mount_table)
        self._emit = emit
        self._poll_interval_s = poll_interval_s
        self._inotify_fd = inotify_fd
        self._native: InotifyTree | None = None
        self._poller: FolderPoller | None = None
        self._lock = threading.Lock()
        self._stopped = False
        self.fallback_reason: str | None = None

    @property
    def folders(self) -> int:
        """How many folders are watched now."""
        if self._native is not None:
            return self._native.watched
        return self._poller.folder_count if self._poller is not None else 0

    def start(self) -> None:
        if self.kind == "native":
            native = InotifyTree(self.root, self._emit, self._limit_hit_later, self._inotify_fd)
            try:
                native.start()
            except WatchLimitReached as exc:
                native.stop()
                self._fall_back(exc, native.watched, report_gap=False)
                return
            self._native = native
            return
        self._start_poller()

    def _start_poller(self) -> None:
        poller = FolderPoller(self._poll_interval_s)
        poller.schedule(_Handler(self._emit), str(self.root), recursive=True)
        poller.start()
        self._poller = poller

    def _limit_hit_later(self, exc: OSError, watched: int) -> None:
        # Called from the inotify thread, which cannot stop itself: switch from a thread of its own.
        threading.Thread(target=self._fall_back, args=(exc, watched), name="watcher-fallback", daemon=True).start()

    def _fall_back(self, exc: OSError, watched: int, report_gap: bool = True) -> None:
        message = limit_message(exc, self.root, watched)
        log.error(message, extra=fields(limit=str(exc), watched=watched))
        with self._lock:
            if self._stopped:
                return
            native, self._native = self._native, None
            if native is not None:
                native.stop()
            self.kind = "polling"
            self.fallback_reason = message
            self._start_poller()
        if report_gap:  # events between the failed watch and the poller's first look are on disk only
            self._emit(Overflow("switched to the polling observer at the inotify limit"))

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            if self._native is not None:
                self._native.stop()
            if self._poller is not None:
                self._poller.stop()
                self._poller.join(timeout=5)
