"""Helpers for the daemon tests: a real Prefect server, the daemon as a real process, reading runs back.

Everything is read back through the Prefect API the way an operator's tools would: flow runs and
their states, the run's log lines, the health artifact. Processes are found by pid (psutil), never by
name, so other work on the machine is never touched.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any
from uuid import UUID

import httpx
import psutil
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    LogFilter,
    LogFilterFlowRunId,
)
from prefect.client.schemas.objects import FlowRun
from prefect.client.schemas.sorting import ArtifactSort, LogSort

from scan_bridge.localcluster import free_port
from scan_bridge.parent_death import die_with_parent

from .support import wait_for

FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}
BRIDGE_MODULE = "scan_bridge.service"

# The developer's shell must not point the daemon at another server, profile or cluster.
_SCRUB_PREFIXES = ("PREFECT_", "SCAN_BRIDGE_")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB_PREFIXES)}
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def _child_setup() -> None:
    """preexec_fn: own session (group signals reach it and its children only), Python's Ctrl+C
    handling even when the test runner was started with SIGINT ignored (``cmd &`` in a script), and
    death with the test run, so nothing outlives a crashed pytest."""
    os.setsid()
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    die_with_parent()


def _stop_group(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 20) -> int:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
    return proc.returncode


class PrefectServer:
    """``prefect server start`` on a free loopback port with its own PREFECT_HOME (SQLite inside).

    The one Prefect server of the tests (the daemon fixtures, and the end-to-end tests through
    ``e2e_support.PrefectServer``, which adds the API reads the UI makes). ``start()`` waits until it
    answers; ``launch()`` then ``wait_ready()`` let a caller start other things meanwhile.
    ``database_url`` (``PREFECT_API_DATABASE_CONNECTION_URL``) puts its database elsewhere: a
    PostgreSQL database from tests/postgres_support.py.
    """

    def __init__(self, home: Path, log_path: Path, port: int | None = None, database_url: str | None = None) -> None:
        self.home = home
        self.log_path = log_path
        self.database_url = database_url
        self.port = port or free_port()
        self.api_url = f"http://127.0.0.1:{self.port}/api"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return self.api_url

    @property
    def db_path(self) -> Path:
        """The SQLite database in its PREFECT_HOME (unused when ``database_url`` puts it elsewhere)."""
        return self.home / "prefect.db"

    def pids(self) -> list[int]:
        """The server process and its children (uvicorn), for measuring what it costs."""
        if self.proc is None:
            return []
        try:
            parent = psutil.Process(self.proc.pid)
            return [parent.pid] + [child.pid for child in parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def env(self) -> dict[str, str]:
        return clean_env(PREFECT_HOME=str(self.home), PREFECT_API_URL=self.api_url)

    def launch(self) -> PrefectServer:
        """Start the process (its own session, dies with the test run); does not wait for it."""
        self.home.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")
        env = clean_env(PREFECT_HOME=str(self.home))
        if self.database_url is not None:
            env["PREFECT_API_DATABASE_CONNECTION_URL"] = self.database_url
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(self.port)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=_child_setup,
        )
        return self

    def healthy(self) -> bool:
        """The API answers its health check; raises if the server exited."""
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"prefect server exited {self.proc.returncode}: {self.log_tail()}")
        try:
            return httpx.get(f"{self.api_url}/health", timeout=2).json() is True
        except (httpx.HTTPError, ValueError):
            return False

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while not self.healthy():
            if time.monotonic() > deadline:
                raise AssertionError(f"prefect server not healthy within {timeout} s: {self.log_tail()}")
            time.sleep(0.2)

    def start(self, timeout: float = 120) -> PrefectServer:
        self.launch()
        try:
            self.wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def client(self) -> SyncPrefectClient:
        return SyncPrefectClient(self.api_url)

    def stop(self) -> None:
        if self.proc is not None:
            _stop_group(self.proc)
        if self._log is not None:
            self._log.close()


class RunReader:
    """The daemon's flow run as the API shows it."""

    def __init__(self, client: SyncPrefectClient, flow_run_id: str) -> None:
        self.client = client
        self.id = UUID(flow_run_id)

    def flow_run(self) -> FlowRun:
        return self.client.read_flow_run(self.id)

    def state_type(self) -> str:
        run = self.flow_run()
        return run.state.type.value if run.state is not None else "NONE"

    def logs(self) -> list[str]:
        """Every log line of the run, oldest first (paged: the API returns at most 200 at a time)."""
        messages: list[str] = []
        log_filter = LogFilter(flow_run_id=LogFilterFlowRunId(any_=[self.id]))
        while True:
            page = self.client.read_logs(log_filter=log_filter, limit=200, offset=len(messages), sort=LogSort.TIMESTAMP_ASC)
            messages += [log.message for log in page]
            if len(page) < 200:
                return messages

    def wait_logged(self, fragment: str, timeout: float = 30, after: int = 0) -> int:
        """Index of the first line from ``after`` on containing ``fragment``; waits for it."""

        def find() -> int | None:
            lines = self.logs()
            return next((i for i in range(after, len(lines)) if fragment in lines[i]), None)

        found = wait_for(lambda: (lambda i: None if i is None else i + 1)(find()), timeout, f"log line {fragment!r}", 0.3)
        return found - 1

    def count(self, fragment: str) -> int:
        return sum(fragment in line for line in self.logs())

    def health_artifact(self, key: str) -> Any | None:
        """The newest version of the run's artifact ``key``."""
        artifacts = self.client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=[key]), flow_run_id=ArtifactFilterFlowRunId(any_=[self.id])
            ),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
        return artifacts[0] if artifacts else None


class DaemonRunner:
    """``python -m scan_bridge.daemon_flow`` as a real process in its own session.

    Its own run-file directory (``SCAN_BRIDGE_RUNTIME_DIR``) holds the pidfile ``bridge-<flow run id>.pid``,
    which tells the flow run id;
    every bridge pid ever seen is remembered, so the teardown can make sure none is left.
    """

    def __init__(self, env: Mapping[str, str], workdir: Path) -> None:
        self.tmpdir = workdir / "daemon-tmp"
        self.tmpdir.mkdir(parents=True, exist_ok=True)
        self.log_path = workdir / "daemon.log"
        self.rundir = workdir / "daemon-run"
        self.env = {**env, "TMPDIR": str(self.tmpdir), "SCAN_BRIDGE_RUNTIME_DIR": str(self.rundir)}
        self.proc: subprocess.Popen[bytes] | None = None
        self.flow_run_id: str | None = None
        self.seen_bridges: set[int] = set()
        self._log: IO[bytes] | None = None

    def start(self) -> DaemonRunner:
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "scan_bridge.daemon_flow"],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=_child_setup,
        )
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def bridges(self) -> list[int]:
        """Pids of the daemon's running bridge children (zombies excluded)."""
        try:
            children = psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        found = []
        for child in children:
            try:
                if BRIDGE_MODULE in " ".join(child.cmdline()) and child.status() != psutil.STATUS_ZOMBIE:
                    found.append(child.pid)
            except psutil.NoSuchProcess:
                continue
        self.seen_bridges.update(found)
        return found

    def bridge_pid(self, timeout: float = 60, other_than: int | None = None) -> int:
        """The one running bridge (a new one when ``other_than`` is given); fails after ``timeout``."""

        def one() -> int | None:
            self._check_alive()
            pids = [pid for pid in self.bridges() if pid != other_than]
            return pids[0] if len(pids) == 1 else None

        return wait_for(one, timeout, "a running bridge" + (f" other than {other_than}" if other_than else ""), 0.05)

    def wait_flow_run_id(self, timeout: float = 60) -> str:
        def from_pidfile() -> str | None:
            self._check_alive()
            for path in self.rundir.glob("bridge-*.pid"):
                return path.name.removeprefix("bridge-").removesuffix(".pid")
            return None

        if self.flow_run_id is None:
            self.flow_run_id = wait_for(from_pidfile, timeout, "the daemon's pidfile (flow run id)", 0.05)
        return self.flow_run_id

    def _check_alive(self) -> None:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.output()[-4000:]}")

    def signal(self, sig: int, group: bool = False) -> None:
        if group:
            os.killpg(self.pid, sig)
        else:
            os.kill(self.pid, sig)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"daemon still running {timeout} s later:\n{self.output()[-4000:]}") from None

    def stop(self) -> None:
        """Teardown: SIGTERM the group (then SIGKILL), and SIGKILL any bridge still running."""
        if self.proc is not None:
            _stop_group(self.proc)
        for pid in self.seen_bridges:
            kill_if_bridge(pid)
        if self._log is not None:
            self._log.close()


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone: it no longer runs)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def kill_if_bridge(pid: int) -> None:
    """SIGKILL ``pid`` if it is still one of our bridges (never a reused pid)."""
    try:
        proc = psutil.Process(pid)
        if BRIDGE_MODULE in " ".join(proc.cmdline()):
            proc.kill()
    except psutil.Error:
        pass
