"""The bridge as a child process: start it, hear everything it says, notice its end, stop it, leave no orphan.

Modelled on honcho's manager: each child's readers push typed messages (:class:`Started`,
:class:`Line`, :class:`Exited`) onto *one* queue, so the supervisor is a single loop over one
``queue.get`` and never polls. What shaped the details:

* **Pipes are drained continuously**, by one reader thread per stream. A child whose 64 KB pipe
  nobody reads blocks on its next write and looks "stuck" to every health check.
* **The exit is noticed at once**: a waiter thread blocks in ``wait()`` (which also reaps the
  child, so no zombie lingers) and pushes :class:`Exited` only after both readers reached EOF, so
  ``Exited`` always comes after the child's last lines. A grandchild that keeps the pipes open
  delays it by at most ``drain_timeout_s``.
* **No orphans.** The child is in our process group (a Prefect process worker cancels a flow run
  with SIGTERM to the group, and the child goes with it), we stop it ourselves with SIGTERM then
  SIGKILL, and it gets ``PR_SET_PDEATHSIG=SIGKILL`` for the case where we are SIGKILLed. Linux fires
  that signal when the *thread* that forked the child exits, not the process; so every child is
  forked by the long-lived :class:`Spawner` thread, never by whichever short-lived thread asked.
* **A pidfile** (optional) lets a separate process (Prefect's ``on_cancellation``/``on_crashed``
  hooks run in one, with none of our objects) kill the child by pid. It records the child's start
  time and exact argv beside the pid, so that the kill can check it is still that process
  (:mod:`runfiles` writes, reads and checks it).

Signals and the clock go through :class:`ProcessOps`, so a test can watch or fake them.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import queue
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import IO, Any, Literal

import psutil

from . import runfiles
from .parent_death import die_with_parent

log = logging.getLogger(__name__)

__all__ = [
    "BridgeProcess",
    "Exited",
    "Line",
    "Message",
    "ProcessOps",
    "Spawner",
    "Started",
    "default_spawner",
    "spawn_dying_with_us",
]

StreamName = Literal["stdout", "stderr"]

#: Longest line delivered as one message; a longer run without newline arrives in pieces (never blocks).
MAX_LINE_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Started:
    """The child exists: its pid, and what was run."""

    pid: int
    argv: tuple[str, ...]
    started_at: datetime


@dataclass(frozen=True, slots=True)
class Line:
    """One line of the child's output, newline stripped, undecodable bytes replaced (U+FFFD)."""

    stream: StreamName
    text: str
    pid: int


@dataclass(frozen=True, slots=True)
class Exited:
    """The child is gone and reaped; ``returncode`` is negative for a signal (Popen's convention)."""

    pid: int
    returncode: int


Message = Started | Line | Exited


class ProcessOps:
    """The clock and the signals, behind one small object so tests can observe or replace them."""

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps."""
        return time.monotonic()

    def send_signal(self, proc: subprocess.Popen[bytes], sig: int) -> None:
        """Signal the child unless it is already reaped (Popen checks; a reaped pid may be reused)."""
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            pass


# --------------------------------------------------------------------------------------------------
# Parent-death signal and the spawner thread

def _die_with_parent(parent_pid: int) -> None:
    """preexec_fn, run in the child: SIGKILL me when the forking thread dies; exit now if it already has."""
    die_with_parent(parent_pid)


class Spawner:
    """A daemon thread that forks every child, so the parent-death signal is tied to a thread that
    lives as long as this process (see the module docstring).

    ``close()`` ends the thread, which SIGKILLs every child it started that still runs: call it
    only when they are all gone, or not at all (the thread is a daemon and ends with the process).
    """

    def __init__(self, name: str = "bridge-spawner") -> None:
        self._requests: queue.Queue[tuple[Sequence[str], dict[str, Any], concurrent.futures.Future[Any]] | None] = (
            queue.Queue()
        )
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        """True while the spawner thread runs."""
        return self._thread.is_alive()

    def spawn(self, argv: Sequence[str], **popen_kwargs: Any) -> subprocess.Popen[bytes]:
        """``subprocess.Popen(argv, **popen_kwargs)``, executed in the spawner thread; raises what Popen raises."""
        if threading.current_thread() is self._thread:
            return subprocess.Popen(list(argv), **popen_kwargs)
        if not self.alive:
            raise RuntimeError("spawner thread is not running")
        future: concurrent.futures.Future[subprocess.Popen[bytes]] = concurrent.futures.Future()
        self._requests.put((argv, popen_kwargs, future))
        return future.result()

    def close(self) -> None:
        """End the spawner thread (see the class docstring about its children)."""
        if self.alive:
            self._requests.put(None)
            self._thread.join()

    def _run(self) -> None:
        while True:
            request = self._requests.get()
            if request is None:
                return
            argv, kwargs, future = request
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(subprocess.Popen(list(argv), **kwargs))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller; the thread must not die
                future.set_exception(exc)


_default_spawner: Spawner | None = None
_default_spawner_pid: int | None = None
_default_lock = threading.Lock()


def default_spawner() -> Spawner:
    """The process-wide spawner, started on first use (and again in a forked child process)."""
    global _default_spawner, _default_spawner_pid
    with _default_lock:
        if _default_spawner is None or _default_spawner_pid != os.getpid() or not _default_spawner.alive:
            _default_spawner = Spawner()
            _default_spawner_pid = os.getpid()
        return _default_spawner


def spawn_dying_with_us(argv: Sequence[str], **popen_kwargs: Any) -> subprocess.Popen[bytes]:
    """``subprocess.Popen(argv, **popen_kwargs)`` for a child that must not outlive this process.

    Forked by the process-wide spawner thread with ``PR_SET_PDEATHSIG=SIGKILL`` (see the module
    docstring): the one place that ties a child's life to ours; the bridge and the standalone
    daemon's own Prefect server (:mod:`scan_bridge.prefect_server`) both start through it.
    """
    spawner = popen_kwargs.pop("spawner", None) or default_spawner()
    return spawner.spawn(argv, preexec_fn=partial(_die_with_parent, os.getpid()), **popen_kwargs)


# --------------------------------------------------------------------------------------------------
# The child


def _write_pidfile(path: Path, pid: int, argv: Sequence[str]) -> None:
    """Record the child's identity (pid, start time, exact argv) in ``path``, in a private directory.

    The directory is created mode 0700 if missing and refused if it is not private; the file is
    written without following symlinks (see :mod:`runfiles`).
    """
    runfiles.private_dir(path.parent)
    runfiles.write_pidfile(path, runfiles.identify(pid, argv))


class BridgeProcess:
    """One run of a child process; a restart is a new ``BridgeProcess`` on the same ``events`` queue.

    Messages carry the pid, so a consumer tells a late line of the previous child from the current one.
    ``env`` is the child's whole environment (as with Popen; default: ours). With ``unbuffered`` (the
    default) ``PYTHONUNBUFFERED=1`` is added unless set, so a Python child's lines arrive as written,
    not in 8 KB blocks once its stdout is a pipe.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        events: queue.Queue[Message] | None = None,
        pidfile: str | os.PathLike[str] | None = None,
        keep_lines: int = 50,
        unbuffered: bool = True,
        drain_timeout_s: float = 2.0,
        spawner: Spawner | None = None,
        ops: ProcessOps | None = None,
    ) -> None:
        if not argv:
            raise ValueError("argv must name a program")
        self.argv: tuple[str, ...] = tuple(str(part) for part in argv)
        self.events: queue.Queue[Message] = events if events is not None else queue.Queue()
        self.pidfile = Path(pidfile) if pidfile is not None else None
        self._env = dict(os.environ if env is None else env)
        if unbuffered:
            self._env.setdefault("PYTHONUNBUFFERED", "1")
        self._cwd = cwd
        self._drain_timeout_s = drain_timeout_s
        self._spawner = spawner
        self._ops = ops or ProcessOps()
        self._tail: deque[Line] = deque(maxlen=keep_lines)
        self._tail_lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._reaped = threading.Event()
        self._exited = threading.Event()
        self.started_at: datetime | None = None
        self.started_monotonic: float | None = None
        self.exited_monotonic: float | None = None
        self.returncode: int | None = None

    # -- start -------------------------------------------------------------------------------------

    def start(self) -> int:
        """Start the child (forked by the spawner thread) and its reader and waiter threads; its pid.

        Raises what Popen raises (e.g. FileNotFoundError for a missing program).
        """
        if self._proc is not None:
            raise RuntimeError("a BridgeProcess starts once; make a new one to restart")
        proc = spawn_dying_with_us(
            self.argv,
            spawner=self._spawner,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self._env,
            cwd=self._cwd,
            close_fds=True,
        )
        self._proc = proc
        self.started_at = datetime.now(UTC)
        self.started_monotonic = self._ops.monotonic()
        if self.pidfile is not None:
            try:
                _write_pidfile(self.pidfile, proc.pid, self.argv)
            except (OSError, runfiles.UnsafeRunDir, psutil.Error):
                log.warning("cannot write pidfile %s", self.pidfile, exc_info=True)
        self.events.put(Started(proc.pid, self.argv, self.started_at))
        assert proc.stdout is not None and proc.stderr is not None
        readers = [
            threading.Thread(
                target=self._read, args=(pipe, name, proc.pid), name=f"bridge-{proc.pid}-{name}", daemon=True
            )
            for pipe, name in ((proc.stdout, "stdout"), (proc.stderr, "stderr"))
        ]
        for reader in readers:
            reader.start()
        threading.Thread(target=self._wait, args=(proc, readers), name=f"bridge-{proc.pid}-waiter", daemon=True).start()
        return proc.pid

    def _read(self, pipe: IO[bytes], stream: StreamName, pid: int) -> None:
        """Forward lines until EOF; nothing inside one line's handling can end the loop."""
        try:
            while True:
                try:
                    raw = pipe.readline(MAX_LINE_BYTES)
                except (OSError, ValueError):  # pipe closed under us
                    return
                if not raw:
                    return
                try:
                    line = Line(stream, raw.decode("utf-8", errors="replace").rstrip("\r\n"), pid)
                    with self._tail_lock:
                        self._tail.append(line)
                    self.events.put(line)
                except Exception:  # noqa: BLE001 - keep draining: a stalled pipe would stall the child
                    pass
        finally:
            try:
                pipe.close()
            except OSError:
                pass

    def _wait(self, proc: subprocess.Popen[bytes], readers: list[threading.Thread]) -> None:
        returncode = proc.wait()  # reaps at once: no zombie
        self.exited_monotonic = self._ops.monotonic()
        self.returncode = returncode
        self._reaped.set()
        for reader in readers:  # the last lines go out before Exited
            reader.join(self._drain_timeout_s)
        if self.pidfile is not None:
            runfiles.remove_pidfile(self.pidfile, proc.pid)
        self.events.put(Exited(proc.pid, returncode))
        self._exited.set()

    # -- state -------------------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The child's pid (None before start)."""
        return self._proc.pid if self._proc is not None else None

    def is_running(self) -> bool:
        """True from start until the child is reaped."""
        return self._proc is not None and not self._reaped.is_set()

    def uptime_s(self) -> float | None:
        """Seconds since start (until the exit, once exited)."""
        if self.started_monotonic is None:
            return None
        end = self.exited_monotonic if self.exited_monotonic is not None else self._ops.monotonic()
        return end - self.started_monotonic

    def last_lines(self) -> list[Line]:
        """The last ``keep_lines`` lines of output, both streams, in arrival order."""
        with self._tail_lock:
            return list(self._tail)

    # -- stop --------------------------------------------------------------------------------------

    def wait(self, timeout: float | None = None) -> int | None:
        """The return code once the child is reaped, or None if ``timeout`` passes first."""
        if self._proc is None:
            return None
        self._reaped.wait(timeout)
        return self.returncode

    def wait_exited_message(self, timeout: float | None = None) -> bool:
        """True once :class:`Exited` has been queued (after the last lines)."""
        return self._exited.wait(timeout)

    def kill(self) -> None:
        """SIGKILL the child (no-op once reaped)."""
        if self._proc is not None and not self._reaped.is_set():
            self._ops.send_signal(self._proc, signal.SIGKILL)

    def stop(self, grace_s: float, kill_wait_s: float = 5.0) -> int | None:
        """SIGTERM, up to ``grace_s`` for the child to exit, then SIGKILL; the return code.

        None only if the child survives SIGKILL for ``kill_wait_s`` (uninterruptible sleep on a dead
        mount): then it is the kernel's to finish, and the waiter still reports it when it goes.
        """
        if self._proc is None:
            return None
        if not self._reaped.is_set():
            self._ops.send_signal(self._proc, signal.SIGTERM)
            if not self._reaped.wait(grace_s):
                log.warning("pid %s ignored SIGTERM for %.1fs; sending SIGKILL", self._proc.pid, grace_s)
                self._ops.send_signal(self._proc, signal.SIGKILL)
                self._reaped.wait(kill_wait_s)
        return self.returncode

    def __repr__(self) -> str:
        state = (
            "not started" if self._proc is None else ("running" if self.is_running() else f"exited {self.returncode}")
        )
        return f"BridgeProcess(pid={self.pid}, {state}, argv={list(self.argv)!r})"
