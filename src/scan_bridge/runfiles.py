"""The one home of the files the daemon writes at run time (today: the bridge's pidfile), and the kill by pidfile.

Why this is careful: the pidfile used to be ``/tmp/scan-bridge-<run>.pid``, written through a
predictable temporary name with a call that follows symlinks (a symlink planted there overwrote
another file), and the kill by pidfile SIGKILLed any process whose command line merely contained
``scan_bridge.service`` (a ``journalctl -u scan_bridge.service`` was killed). So:

* **A private directory**: ``SCAN_BRIDGE_RUNTIME_DIR`` if set, else ``$XDG_RUNTIME_DIR/scan-bridge``,
  else ``$XDG_STATE_HOME/scan-bridge/run`` (``~/.local/state/scan-bridge/run``), else
  ``<tmp>/scan-bridge-<uid>``. It is created with mode 0700 and, whether new or found, accepted only
  if it is a real directory (not a symlink) owned by us with no access for group or others
  (:func:`private_dir`). A directory that fails the check is never used; the next candidate is.
* **No symlink is followed**: the directory is opened with ``O_NOFOLLOW`` and checked through its
  descriptor; a pidfile is written to a fresh random name created relative to that descriptor
  (``O_CREAT|O_EXCL|O_NOFOLLOW``, mode 0600) and renamed over the final name (a symlink there is
  replaced, never written through); it is read with ``O_NOFOLLOW`` and only if it is a regular
  file of ours.
* **The kill checks identity**: the pidfile records the pid, the process's start time and its exact
  command line (and the boot it belongs to). :func:`kill_recorded` sends SIGKILL only to a process
  whose start time and command line are still exactly those; a reused pid or a look-alike is left alone.
* **Stale files are cleaned**: :func:`clean_stale` removes pidfiles whose process is gone (and
  pidfiles of ours left at the old ``/tmp`` location by earlier versions); the daemon runs it at start.

Readers look in every candidate directory, so ``deploy.py stop --force`` run from a login shell
(which has ``XDG_RUNTIME_DIR``) finds the pidfile of a daemon whose worker runs without it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import signal
import stat
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

#: Environment variable naming the private directory explicitly (it is created if missing).
RUNTIME_DIR_ENV = "SCAN_BRIDGE_RUNTIME_DIR"
#: Pidfile name pattern: one per daemon run.
PIDFILE_PREFIX, PIDFILE_SUFFIX = "bridge-", ".pid"
#: Where earlier versions put pidfiles (cleaned, never written).
LEGACY_PATTERN = "scan-bridge-*.pid"
#: A pidfile is a few hundred bytes; anything larger is not ours.
MAX_PIDFILE_BYTES = 64 * 1024
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class UnsafeRunDir(Exception):
    """A candidate directory exists but is not private (a symlink, someone else's, or open to others)."""


@dataclass(frozen=True, slots=True)
class ProcessIdentity:
    """What tells one process from any other that may later carry the same pid."""

    pid: int
    start_time: float  # psutil's create_time: boot time plus the start tick, fixed for the process's life
    cmdline: tuple[str, ...]
    boot_id: str | None = None

    def to_json(self) -> str:
        return json.dumps(
            {"pid": self.pid, "start_time": self.start_time, "cmdline": list(self.cmdline), "boot_id": self.boot_id}
        )

    @classmethod
    def from_json(cls, text: str) -> ProcessIdentity:
        """Raises ValueError for anything that is not a pidfile we wrote."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not an object")
        pid, start, cmdline, boot = data.get("pid"), data.get("start_time"), data.get("cmdline"), data.get("boot_id")
        if type(pid) is not int or pid <= 1 or not isinstance(start, (int, float)):
            raise ValueError("no pid or start time")
        if not isinstance(cmdline, list) or not cmdline or not all(isinstance(part, str) for part in cmdline):
            raise ValueError("no command line")
        if boot is not None and not isinstance(boot, str):
            raise ValueError("bad boot id")
        return cls(pid, float(start), tuple(cmdline), boot)


# -- the directory ------------------------------------------------------------------------------------


def candidate_dirs(for_reading: bool = False) -> list[Path]:
    """The private directories to write to, best first (see the module docstring); ``for_reading``: every
    place a pidfile may be (the explicit directory and the defaults: a process reading may lack the
    writer's environment)."""
    explicit = os.environ.get(RUNTIME_DIR_ENV)
    if explicit and not for_reading:
        return [Path(explicit)]
    candidates = [Path(explicit)] if explicit else []
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime):
        candidates.append(Path(runtime) / "scan-bridge")
    state = os.environ.get("XDG_STATE_HOME")
    if state and os.path.isabs(state):
        candidates.append(Path(state) / "scan-bridge" / "run")
    else:
        home = os.path.expanduser("~")
        if os.path.isabs(home):
            candidates.append(Path(home) / ".local" / "state" / "scan-bridge" / "run")
    candidates.append(Path(tempfile.gettempdir()) / f"scan-bridge-{os.getuid()}")
    return candidates


def check_private(path: Path) -> None:
    """Raise :class:`UnsafeRunDir` unless ``path`` is a real directory of ours, closed to group and others."""
    _check_stat(path, os.lstat(path))


def _check_stat(path: Path, st: os.stat_result) -> None:
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise UnsafeRunDir(f"{path} is not a directory (a symlink or a file is never used)")
    if st.st_uid != os.getuid():
        raise UnsafeRunDir(f"{path} belongs to uid {st.st_uid}, not to us (uid {os.getuid()})")
    if st.st_mode & 0o077:
        raise UnsafeRunDir(f"{path} has mode {stat.S_IMODE(st.st_mode):o}; it must be 700")


def private_dir(path: Path) -> Path:
    """``path`` created (mode 0700, parents 0700 where we create them) or found, and checked; raises UnsafeRunDir/OSError."""
    try:
        check_private(path)
        return path
    except FileNotFoundError:
        pass
    missing = []
    parent = path
    while not os.path.lexists(parent):
        missing.append(parent)
        parent = parent.parent
    for directory in reversed(missing):
        try:
            os.mkdir(directory, 0o700)
        except FileExistsError:
            pass
    check_private(path)  # also when another process created it between our look and our mkdir
    return path


def runtime_dir() -> Path:
    """The first candidate directory that is (or can be made) private; raises OSError if none can."""
    problems = []
    for candidate in candidate_dirs():
        try:
            return private_dir(candidate)
        except (OSError, UnsafeRunDir) as exc:
            problems.append(f"{candidate}: {exc}")
            log.warning("not using %s for run files: %s", candidate, exc)
    raise OSError("no private directory for run files: " + "; ".join(problems))


def _existing_private_dirs() -> list[Path]:
    found: list[Path] = []
    for candidate in candidate_dirs(for_reading=True):
        if candidate in found:
            continue
        try:
            check_private(candidate)
        except (OSError, UnsafeRunDir):
            continue
        found.append(candidate)
    return found


# -- pidfiles -----------------------------------------------------------------------------------------


def pidfile_name(run_id: str) -> str:
    """``bridge-<run id>.pid``; a run id that could leave the directory is refused."""
    if not _RUN_ID.match(run_id):
        raise ValueError(f"run id {run_id!r} is not a plain name")
    return f"{PIDFILE_PREFIX}{run_id}{PIDFILE_SUFFIX}"


def pidfile_for(run_id: str) -> Path:
    """Where the daemon run ``run_id`` keeps its bridge's pidfile (the directory is created and checked)."""
    return runtime_dir() / pidfile_name(run_id)


def find_pidfile(run_id: str) -> Path | None:
    """The run's pidfile in any private candidate directory, or None."""
    name = pidfile_name(run_id)
    for directory in _existing_private_dirs():
        if os.path.lexists(directory / name):
            return directory / name
    return None


def boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def identify(pid: int, cmdline: Sequence[str] | None = None) -> ProcessIdentity:
    """The identity of running process ``pid``; ``cmdline`` as it was started (its /proc command line
    may still be the parent's for a moment between fork and exec). Raises psutil.Error if it is gone."""
    process = psutil.Process(pid)
    return ProcessIdentity(pid, process.create_time(), tuple(cmdline if cmdline is not None else process.cmdline()), boot_id())


class _PrivateDir:
    """An open directory, checked private through its descriptor: every file operation below is
    relative to it (``dir_fd``), so renaming or replacing the path after the check changes nothing."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            _check_stat(path, os.fstat(self.fd))
        except BaseException:
            os.close(self.fd)
            raise

    def __enter__(self) -> _PrivateDir:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


def write_pidfile(path: Path, identity: ProcessIdentity) -> None:
    """Write ``identity`` to ``path`` atomically; the directory must be private, no symlink is followed.

    A fresh random name is created with ``O_CREAT|O_EXCL|O_NOFOLLOW`` (mode 0600) and renamed over
    ``path``: a symlink at ``path`` is replaced, never written through.
    """
    with _PrivateDir(path.parent) as directory:
        tmp = f".pid-{secrets.token_hex(8)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=directory.fd)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(identity.to_json() + "\n")
            os.replace(tmp, path.name, src_dir_fd=directory.fd, dst_dir_fd=directory.fd)
        except BaseException:
            try:
                os.unlink(tmp, dir_fd=directory.fd)
            except OSError:
                pass
            raise


def _read_at(directory: _PrivateDir, name: str) -> ProcessIdentity:
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=directory.fd)
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
            raise ValueError(f"{directory.path / name} is not a regular file of ours")
        data = f.read(MAX_PIDFILE_BYTES + 1)
    if len(data) > MAX_PIDFILE_BYTES:
        raise ValueError(f"{directory.path / name} is too large for a pidfile")
    return ProcessIdentity.from_json(data.decode("utf-8"))


def read_pidfile(path: Path) -> ProcessIdentity:
    """The identity in ``path``; raises OSError (a symlink: ELOOP), UnsafeRunDir or ValueError for anything not ours."""
    with _PrivateDir(path.parent) as directory:
        return _read_at(directory, path.name)


def remove_pidfile(path: Path, pid: int) -> None:
    """Remove ``path`` if it still names ``pid`` (a newer child may have replaced it); silent otherwise."""
    try:
        with _PrivateDir(path.parent) as directory:
            if _read_at(directory, path.name).pid == pid:
                os.unlink(path.name, dir_fd=directory.fd)
    except (OSError, ValueError, UnsafeRunDir):
        pass


def is_same_process(identity: ProcessIdentity) -> bool:
    """True only if the process now at ``identity.pid`` is the very one recorded: same boot, start time, command."""
    if identity.boot_id is not None and boot_id() not in (None, identity.boot_id):
        return False
    try:
        process = psutil.Process(identity.pid)
        with process.oneshot():
            if abs(process.create_time() - identity.start_time) > 1e-3:
                return False
            if process.status() == psutil.STATUS_ZOMBIE:
                return False
            return tuple(process.cmdline()) == identity.cmdline
    except psutil.Error:
        return False


def kill_recorded(path: Path, sig: int = signal.SIGKILL) -> int | None:
    """Send ``sig`` to the process ``path`` records if it is still that process; the pid signalled, or None.

    The pidfile is removed afterwards either way (a file naming a gone process is stale).
    """
    try:
        identity = read_pidfile(path)
    except (OSError, ValueError, UnsafeRunDir) as exc:
        log.warning("not killing by pidfile %s: %s", path, exc)
        return None
    killed = None
    if is_same_process(identity):
        try:
            os.kill(identity.pid, sig)
            killed = identity.pid
        except ProcessLookupError:
            pass
    else:
        log.info("pidfile %s names pid %d, which is no longer that bridge: not signalled", path, identity.pid)
    try:
        os.unlink(path)
    except OSError:
        pass
    return killed


def kill_bridge_by_pidfile(run_id: str) -> int | None:
    """SIGKILL the bridge of daemon run ``run_id`` if it is still that very process; the pid killed, or None."""
    try:
        path = find_pidfile(run_id)
    except ValueError:
        return None
    return None if path is None else kill_recorded(path)


def clean_stale(directories: Sequence[Path] | None = None, legacy_dir: Path | None = None) -> list[Path]:
    """Remove pidfiles whose process is gone (or is another process now), and our legacy ``/tmp`` pidfiles; the paths removed.

    Pidfiles of running bridges stay: another daemon (another run) may own them.
    """
    removed = []
    for directory in directories if directories is not None else _existing_private_dirs():
        try:
            entries = list(os.scandir(directory))
        except OSError:
            continue
        for entry in entries:
            stale_tmp = entry.name.startswith(".pid-") and entry.name.endswith(".tmp") and _older_than(entry, 60.0)
            if not stale_tmp and not (entry.name.startswith(PIDFILE_PREFIX) and entry.name.endswith(PIDFILE_SUFFIX)):
                continue
            path = Path(entry.path)
            if not stale_tmp:
                try:
                    if is_same_process(read_pidfile(path)):
                        continue
                except (OSError, ValueError, UnsafeRunDir):
                    pass  # unreadable, a symlink, not ours: not a live pidfile
            try:
                os.unlink(path)
                removed.append(path)
            except OSError:
                pass
    legacy = legacy_dir if legacy_dir is not None else Path(tempfile.gettempdir())
    for path in legacy.glob(LEGACY_PATTERN):
        try:
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid() or st.st_size > MAX_PIDFILE_BYTES:
                continue  # only our own plain files are touched (unlink never follows a symlink anyway)
            if _legacy_pid_alive(path):
                continue  # an older daemon still running: its hooks need the file
            os.unlink(path)
            removed.append(path)
        except OSError:
            continue
    return removed


def _older_than(entry: os.DirEntry[str], seconds: float) -> bool:
    try:
        return time.time() - entry.stat(follow_symlinks=False).st_mtime > seconds
    except OSError:
        return False


def _legacy_pid_alive(path: Path) -> bool:
    """An old-style pidfile (just a pid) whose process still runs."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as f:
            pid = int(f.read(32).strip())
    except (OSError, ValueError):
        return False
    return pid > 1 and psutil.pid_exists(pid)
