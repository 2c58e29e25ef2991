"""Which files on disk are scans, and which are the newest, without walking years of history.

A scanner writing every 5 s leaves ~17,000 files a day in folders that nobody cleans up, named as
it likes (``2026-03-24/``, ``2026/03/24/``, none at all) and beside folders that are not dates
(``logs/``, ``archive/``, ``quarantine/``). Start-up reconciliation, the periodic rescan and the
health check only ever need the *newest* files, and they must agree on what "newest" means: the
file's modification time, the scan number in its name only breaking ties. Never a folder's name.

Two facts keep that cheap:

* A folder's own mtime changes exactly when a name is created, removed or renamed in it, so a file
  was created no later than its folder's mtime (an in-place writer may touch the file up to
  ``MTIME_SLACK_S`` later). Merging folders by their mtime, newest first, yields the newest files
  while listing only the folders that can hold them: a year of old folders costs one ``stat`` each.
* Walking the folders (not the files) is what finds nested trees. A directory with ``st_nlink == 2``
  has no sub-folders on the usual Linux file systems (find's leaf optimisation), so a 17,000-file
  leaf is only ``stat``-ed; a folder's list of sub-folders is cached against its mtime, so a repeated
  walk (rescan every 60 s, health probe every 30 s) is one ``stat`` per folder.

:class:`FolderTree` is that walk; :func:`iter_newest` / :func:`newest_files` the merge; the
watchers (``watcher.py``, ``folder_poller.py``) use the same walk to decide where to look.

Scan *file* paths are plain ``str`` here and everywhere on the bridge's way from a file event to a
push (watcher, discovery, service, scanfile, read_guard, the daemon's look at the disk); only
folders may be ``pathlib.Path``. ``Path`` interns every part of every path it parses
(``sys.intern``, pathlib.py:71 in Python 3.11), so every file name alive sat in the interpreter's
one table of interned strings, which churned with each file and doubled once in an hour's run: the
bridge's +0.9 MB step of RSS at minute 45-50 (issue 17, docs/performance.md).
``tests/test_interning.py`` keeps file names out of that table.
"""

from __future__ import annotations

import heapq
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from itertools import chain
from dataclasses import dataclass

SCAN_SUFFIXES = (".arrow", ".arrows")
_SCAN_NUMBER_IN_NAME = re.compile(r"scan_(\d+)")

MTIME_SLACK_S = 60.0
"""How much later than its folder's mtime a file's own mtime may be (an in-place writer finishing a
file it created earlier; the bridge rejects a file still incomplete after 30 s by default)."""

COARSE_MTIME_S = 2.0
"""A folder modified this recently is re-listed on the next walk: file systems with a coarse mtime
(1 s on some CIFS servers) can hide a second change within the same tick."""

NETWORK_FILESYSTEMS = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "fuse.sshfs", "9p", "afs", "ceph", "glusterfs", "fuse.glusterfs", "lustre"}
)
NLINK_UNRELIABLE = frozenset({"cifs", "smb3", "smbfs", "9p", "vboxsf", "ncpfs"})
"""File systems that report ``st_nlink == 2`` for a directory whatever it holds (the CIFS client
fakes it when the server does not count links), so a folder there is always listed. Types starting
with ``fuse`` are treated the same. Elsewhere a directory's nlink is 2 + its sub-folders, or 1
(btrfs, overlayfs on merged folders) when not counted, which is listed anyway."""

PROC_MOUNTS = "/proc/mounts"
_TREES_KEPT = 8


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


def is_followed_folder(name: str) -> bool:
    """Hidden folders (``.staging/``) are a writer's scratch space, not where scans are published."""
    return not name.startswith(".")


def filesystem_type(path: str | os.PathLike[str], mount_table: str | None = None) -> str:
    """The type of the file system holding ``path``: the longest matching mount point.

    ``mount_table`` is the text of a ``/proc/mounts``-style table (tests inject one); by default
    ``/proc/mounts`` is read. ``unknown`` when nothing matches or the table cannot be read.
    """
    if mount_table is None:
        try:
            with open(PROC_MOUNTS, encoding="utf-8") as mounts:
                mount_table = mounts.read()
        except OSError:
            return "unknown"
    best, kind = "", "unknown"
    target = os.path.realpath(path)
    for line in mount_table.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        mount_point = parts[1].replace("\\040", " ")
        inside = target == mount_point or target.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) >= len(best):
            best, kind = mount_point, parts[2]
    return kind


def nlink_is_reliable(fs_type: str) -> bool:
    """Whether ``st_nlink == 2`` proves that a directory on ``fs_type`` has no sub-folders."""
    return fs_type not in NLINK_UNRELIABLE and not fs_type.startswith("fuse")


@dataclass(frozen=True, slots=True)
class UnreadableFolder:
    """A folder a listing could not read (``reason``: ``PermissionError: Permission denied``), and its mtime."""

    path: str
    mtime_ns: int
    reason: str


def _scan_entries(path: str, errors: list[str] | None = None) -> Iterator[os.DirEntry[str]]:
    """The scan files of one folder, streamed (never all held at once); an unreadable folder has none
    (and its reason goes to ``errors``; a folder gone meanwhile is simply empty)."""
    try:
        with os.scandir(path) as it:
            for entry in it:
                try:
                    if is_scan_path(entry.name) and entry.is_file(follow_symlinks=False):
                        yield entry
                except OSError:
                    continue
    except FileNotFoundError:
        return
    except OSError as exc:
        if errors is not None:
            errors.append(f"{type(exc).__name__}: {exc.strerror or exc}")
        return


def list_folder(path: str) -> tuple[list[os.DirEntry[str]], list[str]]:
    """(scan files, followed sub-folder names) of one folder; an unreadable folder is empty."""
    files: list[os.DirEntry[str]] = []
    dirs: list[str] = []
    try:
        with os.scandir(path) as it:
            for entry in it:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if is_followed_folder(entry.name):
                            dirs.append(entry.name)
                    elif is_scan_path(entry.name) and entry.is_file(follow_symlinks=False):
                        files.append(entry)
                except OSError:
                    continue
    except OSError:
        pass
    return files, dirs


@dataclass(frozen=True, slots=True)
class Folder:
    """A folder under the watched root and its own modification time (when a name in it last changed)."""

    path: str
    mtime_ns: int


class FolderTree:
    """Every (non-hidden, non-symlinked) folder under ``root``, re-listed only where something changed.

    Thread-safe: the health check probes from a worker thread.
    """

    def __init__(self, root: str | os.PathLike[str], *, trust_nlink: bool | None = None,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.root = os.fspath(root)
        self.trust_nlink = nlink_is_reliable(filesystem_type(self.root)) if trust_nlink is None else trust_nlink
        self._wall_clock = wall_clock
        self._subdirs: dict[str, tuple[int, tuple[str, ...]]] = {}
        self._lock = threading.Lock()
        self.listed = 0  # folders listed by the walks so far (what the cache and the leaf test save)

    def folders(self, visit: Callable[[str], None] | None = None) -> list[Folder]:
        """Walk the folders top-down; ``visit(path)`` runs before a folder is looked into.

        The native watcher adds its inotify watch in ``visit``: a sub-folder created after that is
        reported by the watch, one created before is found by the walk, so none falls in between.
        """
        with self._lock:
            out: list[Folder] = []
            seen: dict[str, tuple[int, tuple[str, ...]]] = {}
            stack = [self.root]
            now_ns = int(self._wall_clock() * 1e9)
            coarse_ns = int(COARSE_MTIME_S * 1e9)
            while stack:
                path = stack.pop()
                if visit is not None:
                    visit(path)
                try:
                    st = os.stat(path, follow_symlinks=path == self.root)
                except OSError:
                    continue
                if path != self.root and not _is_dir(st.st_mode):
                    continue
                out.append(Folder(path, st.st_mtime_ns))
                if self.trust_nlink and st.st_nlink == 2:
                    continue  # a leaf: no sub-folders, however many files
                cached = self._subdirs.get(path)
                if cached is not None and cached[0] == st.st_mtime_ns:
                    children = cached[1]
                else:
                    _, names = list_folder(path)
                    self.listed += 1
                    children = tuple(sorted(names))
                if now_ns - st.st_mtime_ns >= coarse_ns:
                    seen[path] = (st.st_mtime_ns, children)
                stack.extend(os.path.join(path, name) for name in reversed(children))
            self._subdirs = seen
            return out


def _is_dir(mode: int) -> bool:
    return (mode & 0o170000) == 0o040000


_trees: OrderedDict[str, FolderTree] = OrderedDict()
_trees_lock = threading.Lock()


def tree_for(root: str | os.PathLike[str]) -> FolderTree:
    """A long-lived :class:`FolderTree` per root, so that repeated looks reuse its cache."""
    key = os.path.realpath(root)
    with _trees_lock:
        tree = _trees.get(key)
        if tree is None:
            tree = _trees[key] = FolderTree(key)
            while len(_trees) > _TREES_KEPT:
                _trees.popitem(last=False)
        _trees.move_to_end(key)
        return tree


def _sort_key(entry: os.DirEntry[str]) -> tuple[int, int, str] | None:
    try:
        mtime_ns = entry.stat(follow_symlinks=False).st_mtime_ns
    except OSError:
        return None
    number = scan_number_from_name(entry.name)
    return (-mtime_ns, -(number if number is not None else -1), entry.path)


def newest_first(paths: Iterable[str]) -> list[str]:
    """``paths`` in the order :func:`iter_newest` gives files (mtime, then scan number), newest first;
    paths that cannot be ``stat``-ed (gone) last. For a set of files already in hand (a burst of events)."""

    def key(path: str) -> tuple[int, int, str]:
        try:
            mtime_ns = os.stat(path, follow_symlinks=False).st_mtime_ns
        except OSError:
            return (1, 0, path)
        number = scan_number_from_name(path)
        return (-mtime_ns, -(number if number is not None else -1), path)

    return sorted(paths, key=key)


def iter_newest(root: str | os.PathLike[str], *, tree: FolderTree | None = None) -> Iterator[str]:
    """Scan files anywhere under ``root``, newest first (mtime, then scan number), listed lazily.

    A folder is listed only once every file already found is older than what the folder can hold
    (its mtime + ``MTIME_SLACK_S``), so a caller that stops after N files has listed only the folders
    that can hold those N, however many lie behind them. ``tree`` defaults to the shared
    :func:`tree_for` cache; pass a fresh :class:`FolderTree` to walk without one.
    """
    tree = tree_for(root) if tree is None else tree
    folders = sorted(tree.folders(), key=lambda f: f.mtime_ns, reverse=True)
    slack_ns = int(MTIME_SLACK_S * 1e9)
    heap: list[tuple[int, int, str]] = []
    index = 0
    while True:
        while index < len(folders) and (not heap or folders[index].mtime_ns + slack_ns >= -heap[0][0]):
            files, _ = list_folder(folders[index].path)
            for entry in files:
                key = _sort_key(entry)
                if key is not None:
                    heapq.heappush(heap, key)
            index += 1
        if not heap:
            return
        yield heapq.heappop(heap)[2]


def newest_files(root: str | os.PathLike[str], limit: int, *, tree: FolderTree | None = None,
                 unreadable: list[UnreadableFolder] | None = None) -> list[str]:
    """The ``limit`` newest scan files anywhere under ``root``, newest first: :func:`iter_newest` cut
    at ``limit``, in memory bounded by ``limit``, not by the folder.

    Every look at the disk (the health check every 30 s, the rescan every minute, the reconcile)
    goes through here, and today's folder holds up to 432,000 files at 5 scans/s. Holding each
    entry with its ``stat`` to sort them peaked at ~1 KB a file, and the processes kept their peak
    (the allocator does not give such memory back): the daemon and the bridge grew ~18 MB an hour
    (issue 17). So each folder is streamed through a min-heap of the ``limit`` newest keys.

    A folder that could hold some of the ``limit`` newest but cannot be listed is appended to
    ``unreadable``: the list is then incomplete, and a caller that must not miss a scan (the
    reconcile) looks again later.

    Paths are ``str``, as :func:`iter_newest`'s and :func:`newest_first`'s (see the module's docstring).
    """
    if limit <= 0:
        return []
    tree = tree_for(root) if tree is None else tree
    folders = sorted(tree.folders(), key=lambda f: f.mtime_ns, reverse=True)
    slack_ns = int(MTIME_SLACK_S * 1e9)
    kept: list[tuple[int, int, str]] = []  # the newest so far, as iter_newest orders them: (-mtime, -number, path)
    for folder in folders:
        if len(kept) == limit and folder.mtime_ns + slack_ns < -kept[-1][0]:
            break  # nothing in this folder (or any older one) can be newer than what is kept
        errors: list[str] = []
        keys = (key for key in map(_sort_key, _scan_entries(folder.path, errors)) if key is not None)
        kept = heapq.nsmallest(limit, chain(kept, keys))  # streams the folder: O(limit) memory
        if errors and unreadable is not None:
            unreadable.append(UnreadableFolder(folder.path, folder.mtime_ns, errors[0]))
    return [key[2] for key in kept]
