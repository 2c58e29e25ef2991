"""The processes a chaos run starts and watches: the daemon, and a sweep for everything the run owns.

Every process of a run carries ``SCAN_BRIDGE_CHAOS_RUN=<run id>`` in its environment (set in the
harness's own environment, so members, the Prefect server, the daemon and its bridges all inherit
it): that is how the harness counts bridges and proves at the end that nothing is left behind,
whatever became of the process that started it. The daemon's log is tailed for its verdicts.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from ..bridge_process import spawn_dying_with_us
from ..child_stop import stop_child

#: The capabilities that let root read whatever the permission bits say (``capabilities(7)``).
DAC_CAPABILITIES = {"dac_override": 1, "dac_read_search": 2}


def unprivileged(argv: list[str]) -> list[str]:
    """``argv`` run without root's power to read unreadable folders, so ``unreadable-folder`` bites.

    As root, mode 000 stops nobody: the daemon (and the bridge it starts) are run through util-linux's
    ``setpriv`` with ``CAP_DAC_OVERRIDE`` and ``CAP_DAC_READ_SEARCH`` dropped from the bounding set,
    which every child inherits; otherwise the permission bits apply as they are. The harness itself
    (the scanner, the referee) keeps its rights.
    """
    if os.geteuid() != 0:
        return argv
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise RuntimeError("running as root without setpriv (util-linux): the daemon cannot be run without "
                           "CAP_DAC_OVERRIDE, so an unreadable folder cannot be simulated; install util-linux")
    return [setpriv, "--bounding-set", ",".join(f"-{name}" for name in DAC_CAPABILITIES), "--", *argv]


def reads_anything(pid: int) -> bool:
    """True when process ``pid`` holds a capability that reads past the permission bits."""
    try:
        with open(f"/proc/{pid}/status") as status:
            line = next(line for line in status if line.startswith("CapEff:"))
    except (OSError, StopIteration):
        return False
    effective = int(line.split()[1], 16)
    return any(effective & (1 << bit) for bit in DAC_CAPABILITIES.values())

RUN_VARIABLE = "SCAN_BRIDGE_CHAOS_RUN"
BRIDGE_MODULE = "scan_bridge.service"

_HEALTH = re.compile(r"Health: ([A-Z]+)(?: \(([a-z ]+)\))?")
_STARTED = re.compile(r"Bridge started \(pid (\d+)\)")
_RESTARTING = re.compile(r"Restarting the bridge in [0-9.]+s: (.*)")


@dataclass(slots=True)
class Verdict:
    at: float
    status: str  # healthy, warning, stale, error, missing, down
    cause: str | None
    daemon: int  # which daemon incarnation


@dataclass(slots=True)
class BridgeStart:
    at: float
    pid: int
    daemon: int
    first: bool  # the first bridge of its daemon: a start, not a restart


class Daemon:
    """``python -m scan_bridge.daemon_flow`` incarnations, one at a time, their output appended to one log."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.incarnation = 0
        self.pids: list[int] = []
        self.verdicts: list[Verdict] = []
        self.starts: list[BridgeStart] = []
        self.restart_reasons: list[tuple[float, str]] = []
        self._offset = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._tail = threading.Thread(target=self._tail_loop, name="daemon-log", daemon=True)
        self._tail.start()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> int:
        with self._lock:
            self._read()  # lines of the previous incarnation belong to it
            self.incarnation += 1
            with open(self.log_path, "ab") as log:
                log.write(f"--- chaos: daemon incarnation {self.incarnation} starting\n".encode())
                # Forked with a parent-death signal: a harness killed outright takes the daemon (and so its bridge) along.
                self.proc = spawn_dying_with_us(
                    unprivileged([sys.executable, "-m", "scan_bridge.daemon_flow"]),
                    env=self.env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            self.pids.append(self.proc.pid)
            return self.proc.pid

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)

    def stop(self, timeout: float = 60) -> int | None:
        """SIGTERM (the daemon stops its bridge and exits 0), SIGKILL after ``timeout``."""
        if self.proc is None:
            return None
        return stop_child(self.proc, timeout)

    def close(self) -> None:
        self._stop.set()
        self._tail.join(5)
        with self._lock:
            self._read()

    # -- the log ------------------------------------------------------------------------------------

    def _tail_loop(self) -> None:
        while not self._stop.wait(0.25):
            with self._lock:
                self._read()

    def _read(self) -> None:
        try:
            with open(self.log_path, "rb") as log:
                log.seek(self._offset)
                data = log.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n")
        if end < 0:
            return
        self._offset += end + 1
        now = time.time()
        for raw in data[: end + 1].decode("utf-8", "replace").splitlines():
            if "[Bridge]" in raw:
                continue
            if match := _HEALTH.search(raw):
                self.verdicts.append(Verdict(now, match.group(1).lower(), match.group(2), self.incarnation))
            elif match := _STARTED.search(raw):
                first = not any(s.daemon == self.incarnation for s in self.starts)
                self.starts.append(BridgeStart(now, int(match.group(1)), self.incarnation, first))
            elif match := _RESTARTING.search(raw):
                self.restart_reasons.append((now, match.group(1).strip()))

    def tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])


def _carries(proc: psutil.Process, run_id: str) -> bool:
    try:
        return proc.environ().get(RUN_VARIABLE) == run_id and proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.Error, OSError):
        return False


def bridges(run_id: str) -> list[psutil.Process]:
    """This run's live bridge processes (a SIGSTOPped one counts: it is still a bridge)."""
    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if any(BRIDGE_MODULE in part for part in cmdline) and _carries(proc, run_id):
            found.append(proc)
    return found


def run_processes(run_id: str) -> list[psutil.Process]:
    """Every live process carrying this run's id, except this one."""
    me = os.getpid()
    return [proc for proc in psutil.process_iter(["pid"]) if proc.pid != me and _carries(proc, run_id)]


def still_alive(pids: dict[int, float]) -> list[int]:
    """Which of ``pids`` (pid -> create time) still run as the same process (a reused pid does not count)."""
    alive = []
    for pid, created in pids.items():
        try:
            proc = psutil.Process(pid)
            if abs(proc.create_time() - created) < 1.0 and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.Error:
            continue
    return alive


def create_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def wait_stopped(pid: int, timeout: float = 5.0) -> None:
    """Until every thread of ``pid`` is stopped (state T), so nothing slips through after SIGSTOP."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            states = [
                (task / "stat").read_text().rsplit(")", 1)[1].split()[0] for task in Path(f"/proc/{pid}/task").iterdir()
            ]
        except OSError:
            return
        if all(state in ("T", "t") for state in states):
            return
        time.sleep(0.01)


class WorkerDaemon(Daemon):
    """The daemon as production runs it: a deployment on a process work pool, run by a real
    ``prefect worker``. Each incarnation is a flow run of that deployment (an operator's
    ``deploy.py run``); the daemon's output reaches the worker's, which goes to the same log.

    The flow-run process is found by its environment (``PREFECT__FLOW_RUN_ID``, set by the worker,
    and this run's mark), as ``deploy.py stop --force`` finds it.
    """

    POOL = "chaos-pool"
    DEPLOYMENT = "chaos-daemon"

    def __init__(self, env: dict[str, str], log_path: Path, run_id: str) -> None:
        super().__init__(env, log_path)
        self.run_id = run_id
        self.worker: subprocess.Popen[bytes] | None = None
        self.flow_run_id: str | None = None
        self._pid: int | None = None
        self._deployment_id: Any = None

    def setup(self) -> None:
        """The work pool, the deployment (from the installed module, no source to pull), the worker."""
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.actions import WorkPoolCreate

        with get_client(sync_client=True) as client:
            client.create_work_pool(WorkPoolCreate(name=self.POOL, type="process"), overwrite=True)
            flow_id = client.create_flow_from_name("scan-bridge-daemon")
            self._deployment_id = client.create_deployment(
                flow_id, self.DEPLOYMENT, work_pool_name=self.POOL,
                entrypoint="scan_bridge.daemon_flow:scan_bridge_daemon_flow",
                pull_steps=[{"prefect.deployments.steps.set_working_directory": {"directory": str(self.log_path.parent)}}],
            )
        with open(self.log_path, "ab") as log:
            self.worker = spawn_dying_with_us(
                unprivileged([sys.executable, "-m", "prefect", "worker", "start", "--pool", self.POOL, "--type", "process"]),
                env=self.env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )
        self.pids.append(self.worker.pid)

    @property
    def pid(self) -> int | None:
        return self._pid

    def alive(self) -> bool:
        return self._pid is not None and bool(still_alive({self._pid: create_time(self._pid) or 0.0}))

    def start(self, timeout: float = 180) -> int:
        from prefect.client.orchestration import get_client

        with self._lock:
            self._read()
            self.incarnation += 1
        with get_client(sync_client=True) as client:
            run = client.create_flow_run_from_deployment(self._deployment_id)
        self.flow_run_id = str(run.id)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc in run_processes(self.run_id):
                try:
                    if proc.environ().get("PREFECT__FLOW_RUN_ID") == self.flow_run_id and not any(
                        BRIDGE_MODULE in part for part in proc.cmdline()
                    ):
                        self._pid = proc.pid
                        self.pids.append(proc.pid)
                        return proc.pid
                except psutil.Error:
                    continue
            if self.worker is not None and self.worker.poll() is not None:
                raise RuntimeError(f"the worker exited ({self.worker.returncode}):\n{self.tail()}")
            time.sleep(0.2)
        raise RuntimeError(f"the worker did not start flow run {self.flow_run_id} within {timeout:g} s:\n{self.tail()}")

    def kill(self) -> None:
        if self._pid is not None:
            try:
                os.kill(self._pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + 30
            while self.alive() and time.monotonic() < deadline:
                time.sleep(0.1)

    def stop(self, timeout: float = 60) -> int | None:
        """SIGTERM the flow run (the daemon stops its bridge), then the worker; SIGKILL what overruns."""
        for pid in [self._pid, self.worker.pid if self.worker is not None else None]:
            if pid is None:
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            deadline = time.monotonic() + timeout
            while still_alive({pid: create_time(pid) or 0.0}) and time.monotonic() < deadline:
                time.sleep(0.2)
            if still_alive({pid: create_time(pid) or 0.0}):
                os.kill(pid, signal.SIGKILL)
        if self.worker is not None:
            try:
                self.worker.wait(30)
            except subprocess.TimeoutExpired:
                self.worker.kill()
            return self.worker.returncode
        return None
