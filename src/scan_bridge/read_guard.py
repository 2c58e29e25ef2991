"""Surviving a file that crashes the reader in native code (SIGSEGV, SIGABRT): never crash-loop on it.

Python cannot catch a segfault in pyarrow. So before reading a file the bridge writes its path into
a small *marker* file, and clears the marker when the read returns (whatever it returned). A bridge
that finds the marker set at start knows its predecessor died while reading that file. That alone
does not make the file guilty: a ``kill -9`` (the daemon restarting a bridge it took for stuck, the
OOM killer, a container restart) can land in the middle of reading a good scan, and skipping it
would lose a scan for good. So a death is a *strike*: the file is read once more, and only a file
that :data:`DEATHS_TO_SKIP` (2) bridges died reading is added to the list of files that crashed a
reader, reported once as rejected, and skipped from then on, by this bridge and every later one
watching the same folder. A file read successfully after a strike is forgiven. The cost of a real
crasher is two bridge restarts instead of one, never a crash loop. The scanner's folder is never
written to.

Where: ``<state_dir>/reader-<hash of the watch dir>/`` (``state_dir`` defaults to
``$XDG_STATE_HOME/scan-bridge`` or ``~/.local/state/scan-bridge``), a private directory (mode
0700, owned by us, not a symlink), with ``reading-<pid>`` (the marker) and ``crashed.jsonl`` (one
JSON object per file that crashed a reader: path, size, mtime_ns). The hash keeps two bridges on
two folders apart; the pid keeps two bridges on one folder apart (a marker whose process is alive
is not a crash; one whose process is gone, or that carries our own pid, as after a container
restart, is a predecessor's).

Cost: the marker is one file kept open; setting it is one ``pwrite`` and one ``ftruncate``,
clearing it one ``ftruncate`` (a few microseconds against ~0.5 ms to read a scan). No ``fsync``:
the marker must outlive the *process*, which the page cache guarantees; after a power cut the file
is simply read again (and marked again).

A crashed file is skipped only while it is the same file (same size and modification time): a
file rewritten under the same name is read again. The list keeps the newest :data:`MAX_REMEMBERED`
entries and drops entries whose file is gone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MARKER_NAME = "reading"
CRASHED_NAME = "crashed.jsonl"
MAX_REMEMBERED = 1000
DEATHS_TO_SKIP = 2  # one death may be a kill -9 that happened to land mid-read; two on the same file is the file
_OPEN_FLAGS = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


@dataclass(frozen=True, slots=True)
class CrashedFile:
    """A file that a reader died on, identified by path, size and modification time (``path`` a
    ``str``, as every scan file's path in the bridge: see :mod:`.discovery`'s docstring)."""

    path: str
    size: int
    mtime_ns: int
    deaths: int = DEATHS_TO_SKIP

    @property
    def skipped(self) -> bool:
        """Enough bridges died reading it: it is the file, not bad luck."""
        return self.deaths >= DEATHS_TO_SKIP

    def same_file(self, other: CrashedFile) -> bool:
        return (self.path, self.size, self.mtime_ns) == (other.path, other.size, other.mtime_ns)

    def still_there(self) -> bool:
        """True while the same file (same size and mtime) is at ``path``."""
        try:
            info = os.stat(self.path, follow_symlinks=False)
        except OSError:
            return False
        return info.st_size == self.size and info.st_mtime_ns == self.mtime_ns

    def to_json(self) -> str:
        return json.dumps(
            {"path": self.path, "size": self.size, "mtime_ns": self.mtime_ns, "deaths": self.deaths}
        )

    @classmethod
    def from_json(cls, line: str) -> CrashedFile:
        value = json.loads(line)
        if not isinstance(value["path"], str):
            raise TypeError(f"path is {type(value['path']).__name__}, not a string")
        return cls(value["path"], int(value["size"]), int(value["mtime_ns"]), int(value.get("deaths", DEATHS_TO_SKIP)))


def guard_dir(state_dir: Path, watch_dir: Path) -> Path:
    """The private folder for one watched folder: ``<state_dir>/reader-<sha256(watch dir)[:16]>``."""
    digest = hashlib.sha256(os.fsencode(os.path.abspath(watch_dir))).hexdigest()[:16]
    return Path(state_dir) / f"reader-{digest}"


def make_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) mode 0700; refuse a symlink or a folder someone else owns."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise OSError(f"{path} is not a directory (a symlink or a file is in the way)")
    if info.st_uid != os.getuid():
        raise OSError(f"{path} belongs to uid {info.st_uid}, not to us")
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


class ReadGuard:
    """The marker around each read, and the list of files that crashed a reader.

    Use :meth:`recover` once at start (before any read), :meth:`crashed` for the files to skip, and
    :meth:`begin` / :meth:`end` around every read.
    """

    def __init__(self, state_dir: Path, watch_dir: Path) -> None:
        self.dir = make_private_dir(guard_dir(state_dir, watch_dir))
        self._crashed_path = self.dir / CRASHED_NAME
        self._found = self._take_dead_markers()  # before ours exists: a marker with our pid is a predecessor's
        self._fd = os.open(self.dir / f"{MARKER_NAME}-{os.getpid()}", _OPEN_FLAGS | os.O_TRUNC, 0o600)
        self._warned = False
        self.suspects: list[CrashedFile] = []

    def _take_dead_markers(self) -> list[bytes]:
        """The paths in markers of processes that are gone (their files removed); a live bridge's marker is left alone."""
        found = []
        for marker in self.dir.glob(f"{MARKER_NAME}-*"):
            pid = marker.name.rpartition("-")[2]
            if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
                continue  # another bridge on the same folder, reading right now
            try:
                fd = os.open(marker, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
                try:
                    raw = os.read(fd, 1 << 16)
                finally:
                    os.close(fd)
                marker.unlink()
            except OSError:
                continue
            if raw:
                found.append(raw)
        return found

    def recover(self) -> list[CrashedFile]:
        """Files that previous bridges died reading, now for the :data:`DEATHS_TO_SKIP`-th time: skipped
        for good from now on (returned once, to be reported). Files with fewer deaths are in
        :attr:`suspects`: read once more."""
        self.suspects: list[CrashedFile] = []
        if not self._found:
            return []
        remembered = [c for c in self._load() if c.still_there()]
        confirmed = []
        for raw in self._found:
            path = os.fsdecode(raw)
            try:
                info = os.stat(path, follow_symlinks=False)
                death = CrashedFile(path, info.st_size, info.st_mtime_ns, 1)
            except OSError:  # gone since: nothing to read again, nothing to skip
                continue
            before = next((c for c in remembered if c.same_file(death)), None)
            if before is not None:
                if before.skipped:
                    continue  # already skipped (a marker from a bridge that read it anyway)
                remembered.remove(before)
                death = CrashedFile(path, death.size, death.mtime_ns, before.deaths + 1)
            remembered = [c for c in remembered if c.path != path]
            remembered.append(death)
            (confirmed if death.skipped else self.suspects).append(death)
        self._found = []
        self._save(remembered[-MAX_REMEMBERED:])
        return confirmed

    def crashed(self) -> list[CrashedFile]:
        """Files that crashed a reader often enough and are still there, unchanged: skip them."""
        return [c for c in self._load() if c.skipped and c.still_there()]

    def forgive(self, path: str | os.PathLike[str]) -> None:
        """``path`` was read to the end after a bridge died reading it: that death was not the file's."""
        path = os.fspath(path)
        remaining = [c for c in self._load() if c.path != path]
        self._save(remaining)
        self.suspects = [c for c in self.suspects if c.path != path]

    def begin(self, path: str | os.PathLike[str]) -> None:
        """Mark ``path`` as being read (before reading it).

        A marker that cannot be written (the state folder's disk full) must not stop the bridge:
        the read goes ahead unguarded, and that is logged once.
        """
        raw = os.fsencode(path)
        try:
            os.pwrite(self._fd, raw, 0)
            os.ftruncate(self._fd, len(raw))
        except OSError as exc:
            self._failed(exc)

    def end(self) -> None:
        """The read returned: clear the marker."""
        try:
            os.ftruncate(self._fd, 0)
        except OSError as exc:
            self._failed(exc)

    def _failed(self, exc: OSError) -> None:
        if not self._warned:
            self._warned = True
            log.warning("Cannot write the reading marker in %s (%s); reading on without it", self.dir, exc.strerror or exc)

    def close(self) -> None:
        """Stop guarding: a bridge that exits normally leaves no marker."""
        os.close(self._fd)
        try:
            os.unlink(self.dir / f"{MARKER_NAME}-{os.getpid()}")
        except OSError:
            pass


    def _load(self) -> list[CrashedFile]:
        try:
            text = self._crashed_path.read_text(encoding="utf-8", errors="surrogateescape")
        except FileNotFoundError:
            return []
        out = []
        for line in text.splitlines():
            try:
                out.append(CrashedFile.from_json(line))
            except (ValueError, KeyError, TypeError):
                continue  # a torn line from a crash while saving: ignore it
        return out

    def _save(self, entries: list[CrashedFile]) -> None:
        temp = self.dir / f".{CRASHED_NAME}.{os.getpid()}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as handle:
            handle.write("".join(entry.to_json() + "\n" for entry in entries))
        os.replace(temp, self._crashed_path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive, and not a bridge of ours to judge
        return True
    return True
