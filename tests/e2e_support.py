"""Helpers for the end-to-end tests: real Prefect server, worker, flow, bridge and member processes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

import httpx
import psutil

from scan_bridge.localcluster import free_port

from . import prefect_support
from .prefect_support import clean_env
from .support import wait_for

ROOT = Path(__file__).resolve().parent.parent
DEPLOY_PY = ROOT / "deploy.py"
RUN_ID = re.compile(r"\(([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\)")
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}

def closed_port() -> int:
    """A loopback port nothing listens on (bound and released: good enough for a refusal)."""
    return free_port()


#: An end-to-end environment inherits nothing of the developer's Prefect or scan-bridge settings:
#: each test says where its server, member and scans are (one scrubber for all tests: prefect_support's).
base_env = clean_env


def deploy_py(
    env: Mapping[str, str], *args: str, timeout: float = 120, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    """``python deploy.py ARGS`` as an operator runs it (from the checkout unless ``cwd``; PWD set as a shell does)."""
    return subprocess.run(
        [sys.executable, str(DEPLOY_PY), *args],
        env={**env, "PWD": str(cwd)},
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def describe(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"


class Proc:
    """A long-running child in its own session, its output in a log file; stopped by signal, then killed."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], log_dir: Path, cwd: Path = ROOT) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        self._log: IO[bytes] = open(self.log_path, "ab")
        self.popen = subprocess.Popen(
            argv,
            env=dict(env),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tail(self, chars: int = 4000) -> str:
        return f"--- {self.name} log ({self.log_path}) tail\n{self.log_text()[-chars:]}"

    def send(self, signum: int) -> None:
        if self.alive():
            self.popen.send_signal(signum)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Signal, wait, then SIGKILL the whole session (a leftover child must not outlive the test)."""
        try:
            self.send(signum)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
            kill_session(self.pid)
            self.popen.wait(10)
        finally:
            self._log.close()
        return self.popen.returncode


def kill_session(sid: int) -> None:
    """SIGKILL every process still in session ``sid`` (the ones we started there, and what they forked)."""
    for proc in psutil.process_iter(["pid"]):
        try:
            if os.getsid(proc.pid) == sid and proc.pid != os.getpid():
                proc.kill()
        except (OSError, psutil.Error):
            pass


class PrefectServer(prefect_support.PrefectServer):
    """The tests' Prefect server (:class:`prefect_support.PrefectServer`), launched at once, with the
    API reads the end-to-end tests make the way the UI does."""

    def __init__(self, home: Path, log_dir: Path, port: int | None = None) -> None:
        super().__init__(home, log_dir / "prefect-server.log", port)
        self.launch()

    def tail(self, chars: int = 4000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            text = ""
        return f"--- prefect-server log ({self.log_path}) tail\n{text[-chars:]}"

    # -- the API, read the way the UI does ---------------------------------------------------------

    def get(self, path: str) -> Any:
        response = httpx.get(self.url + path, timeout=10)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: Mapping[str, Any]) -> Any:
        response = httpx.post(self.url + path, json=dict(body), timeout=10)
        response.raise_for_status()
        return response.json()

    def run_state(self, run_id: str) -> tuple[str, str | None, str | None]:
        """(state type, state name, state message) of a flow run."""
        run = self.get(f"/flow_runs/{run_id}")
        state = run.get("state") or {}
        return run.get("state_type") or "?", state.get("name"), state.get("message")

    def wait_state(self, run_id: str, states: Iterable[str], timeout: float) -> str:
        wanted = set(states)
        return wait_for(
            lambda: (s := self.run_state(run_id)[0]) in wanted and s, timeout, f"flow run {run_id} in {sorted(wanted)}",
            interval=0.3,
        )

    def run_logs(self, run_id: str) -> list[str]:
        """Every log line of a flow run, oldest first (the API serves at most 200 per page)."""
        messages: list[str] = []
        while True:
            page = self.post(
                "/logs/filter",
                {"logs": {"flow_run_id": {"any_": [run_id]}}, "sort": "TIMESTAMP_ASC", "limit": 200,
                 "offset": len(messages)},
            )
            messages += [entry["message"] for entry in page]
            if len(page) < 200:
                return messages


def run_id_from(output: str) -> str:
    match = RUN_ID.search(output)
    assert match, f"no flow run id in: {output!r}"
    return match.group(1)


def _environ(proc: psutil.Process) -> dict[str, str]:
    try:
        return proc.environ()
    except (psutil.Error, OSError):
        return {}


def _cmdline(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except (psutil.Error, OSError):
        return []


def gone_or_zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def bridges_for(watch_dir: Path) -> list[psutil.Process]:
    """Live ``scan_bridge.service`` processes whose SCAN_BRIDGE_WATCH_DIR is ``watch_dir``."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        cmd = _cmdline(proc)
        if not any("scan_bridge.service" in part for part in cmd):
            continue
        if gone_or_zombie(proc.pid):
            continue
        if _environ(proc).get("SCAN_BRIDGE_WATCH_DIR") == str(watch_dir):
            found.append(proc)
    return found


def mentioning(needles: Iterable[str]) -> dict[int, tuple[float, str]]:
    """Processes (other than us) whose command line or environment mentions any of ``needles``.

    Returned as {pid: (create_time, command line)}, so a later check does not mistake a reused pid.
    """
    needles = [n for n in needles if n]
    me = os.getpid()
    found: dict[int, tuple[float, str]] = {}
    for proc in psutil.process_iter(["pid"]):
        if proc.pid == me:
            continue
        cmd = " ".join(_cmdline(proc))
        env = " ".join(f"{k}={v}" for k, v in _environ(proc).items())
        if any(n in cmd or n in env for n in needles):
            try:
                found[proc.pid] = (proc.create_time(), cmd[:2000])
            except psutil.Error:
                pass
    return found


def descendants(pid: int) -> dict[int, tuple[float, str]]:
    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return {}
    found = {}
    for child in children:
        try:
            found[child.pid] = (child.create_time(), " ".join(_cmdline(child))[:2000])
        except psutil.Error:
            pass
    return found


def still_running(seen: Mapping[int, tuple[float, str]]) -> dict[int, str]:
    """Which of ``seen`` still run (same pid and start time, not a zombie)."""
    left = {}
    for pid, (created, cmd) in seen.items():
        try:
            proc = psutil.Process(pid)
            if abs(proc.create_time() - created) < 0.01 and proc.status() != psutil.STATUS_ZOMBIE:
                left[pid] = cmd
        except psutil.Error:
            pass
    return left
