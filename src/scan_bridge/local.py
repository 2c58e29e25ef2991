"""The whole thing on one machine, in one command: ``scripts/run-local``.

Starts what is not configured already (a Prefect server on 127.0.0.1:4200 unless
``PREFECT_API_URL``, a Hazelcast member on 127.0.0.1:5701 unless ``SCAN_BRIDGE_HAZELCAST_MEMBERS``,
the simulated scanner unless ``SCAN_BRIDGE_WATCH_DIR``), creates the deployment, starts a worker,
runs the daemon, says where to look, and on Ctrl+C stops everything it started, in reverse order:
the daemon run first (through the API, so the bridge goes with it), then the worker, the scanner,
the member and the server. All its state (logs, scans, the Prefect database, the member's config)
lives in ``.state/`` in the checkout.

Children run in their own sessions, so a Ctrl+C in the terminal reaches this process alone and the
teardown happens in order; each also carries a parent-death signal, so a SIGKILLed launcher does
not leave them behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import httpx

from . import names
from .child_stop import stop_child
from .control import POOL, project_dir
from .parent_death import die_with_parent
from .worker_launcher import prefect_worker_argv

# Fixed by the README's promise (the UI at localhost:4200); overridable for tests that run beside one.
PREFECT_PORT = int(os.environ.get("SCAN_BRIDGE_LOCAL_PREFECT_PORT", "4200"))
HAZELCAST_PORT = int(os.environ.get("SCAN_BRIDGE_LOCAL_HAZELCAST_PORT", "5701"))


def _die_with_parent(parent: int) -> None:
    """preexec_fn: SIGTERM (a clean stop) when the launcher dies, in a session of its own."""
    die_with_parent(parent, signal.SIGTERM, exit_code=0)
    os.setsid()


class Launcher:
    def __init__(self, state: Path) -> None:
        self.state = state
        self.logs = state / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ)
        self.env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
        self.children: list[tuple[str, subprocess.Popen[bytes], IO[bytes]]] = []
        self.cluster = None
        self.own_server = False
        self.stop = threading.Event()

    def say(self, text: str) -> None:
        print(f"[run-local] {text}", flush=True)

    def spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{name}.log", "ab")
        proc = subprocess.Popen(
            argv, env=self.env, cwd=project_dir(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            preexec_fn=lambda parent=os.getpid(): _die_with_parent(parent),
        )
        self.children.append((name, proc, log))
        return proc

    def wait_until(self, what: str, check, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if self.stop.is_set():
                raise KeyboardInterrupt
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} not ready after {timeout:g} s; see {self.logs}")
            time.sleep(0.3)

    # -- the pieces --------------------------------------------------------------------------------

    def prefect(self) -> None:
        if "PREFECT_API_URL" in self.env:
            self.say(f"Prefect server: using {self.env['PREFECT_API_URL']}")
            return
        url = f"http://127.0.0.1:{PREFECT_PORT}/api"
        if _healthy(url):
            raise RuntimeError(f"something already answers on {url}; stop it, or set PREFECT_API_URL to use it")
        self.env["PREFECT_HOME"] = str(self.state / "prefect")
        self.env["PREFECT_API_URL"] = url
        # One heartbeat event per health check; the silence alerts need only the latest ones (docs/alerts.md).
        self.env.setdefault("PREFECT_SERVER_SERVICES_DB_VACUUM_EVENT_RETENTION_OVERRIDES", json.dumps({
            names.event(names.HEARTBEAT_EVENT): 86400, names.event(names.STANDBY_HEARTBEAT_EVENT): 86400,
            "prefect.flow-run.heartbeat": 604800}))
        self.spawn("prefect-server", [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(PREFECT_PORT)])
        # SQLite in .state/prefect unless the operator names a database (PostgreSQL for months of running).
        database = "PostgreSQL/other, from PREFECT_API_DATABASE_CONNECTION_URL" if self.env.get(
            "PREFECT_API_DATABASE_CONNECTION_URL") else f"SQLite in {self.state / 'prefect'}"
        self.say(f"Prefect server: starting on {url}, database {database} (log: {self.logs / 'prefect-server.log'})")
        self.wait_until("Prefect server", lambda: _healthy(url), 90)
        self.own_server = True

    def hazelcast(self) -> None:
        if "SCAN_BRIDGE_HAZELCAST_MEMBERS" in self.env:
            self.say(f"Hazelcast: using {self.env['SCAN_BRIDGE_HAZELCAST_MEMBERS']}")
            return
        from .localcluster import LocalCluster

        self.say(f"Hazelcast: starting a member on 127.0.0.1:{HAZELCAST_PORT}")
        self.cluster = LocalCluster("dev", [HAZELCAST_PORT], self.state / "hazelcast", heap="1g")
        self.cluster.start()
        self.env["SCAN_BRIDGE_HAZELCAST_MEMBERS"] = f"127.0.0.1:{HAZELCAST_PORT}"
        self.env["SCAN_BRIDGE_HAZELCAST_CLUSTER_NAME"] = "dev"

    def scanner(self) -> None:
        if "SCAN_BRIDGE_WATCH_DIR" in self.env:
            self.say(f"Scanner: watching {self.env['SCAN_BRIDGE_WATCH_DIR']} (no simulator)")
            return
        scans = self.state / "scans"
        scans.mkdir(parents=True, exist_ok=True)
        self.env["SCAN_BRIDGE_WATCH_DIR"] = str(scans)
        self.spawn("scanner", [sys.executable, "-m", "scan_bridge.simulate", "--out", str(scans), "--rate", "2", "--assets", "400"])
        self.say(f"Scanner: simulated, 2 scans/s of 400 assets into {scans}")

    def deploy(self) -> None:
        self._deploy_py("create")
        if self.own_server:
            self._deploy_py("stop", "--force")  # runs left RUNNING by an earlier launcher that was killed
        self.spawn("worker", prefect_worker_argv(POOL, "run-local"))
        self.say(f"Worker: started on {POOL} (log: {self.logs / 'worker.log'})")
        self._deploy_py("run")

    def _deploy_py(self, *args: str) -> None:
        result = subprocess.run(
            [sys.executable, str(project_dir() / "deploy.py"), *args], env=self.env, capture_output=True, text=True
        )
        for line in (result.stdout + result.stderr).strip().splitlines():
            self.say(f"deploy.py {args[0]}: {line}")
        if result.returncode != 0 and args[0] != "stop":
            raise RuntimeError(f"deploy.py {' '.join(args)} failed (exit {result.returncode})")

    # -- run and tear down -------------------------------------------------------------------------

    def run(self) -> int:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: self.stop.set())
        try:
            self.prefect()
            self.hazelcast()
            self.scanner()
            self.deploy()
            ui = self.env["PREFECT_API_URL"].removesuffix("/api")
            self.say("Running. Look here:")
            self.say(f"  Prefect UI : {ui}  (Runs -> scan-bridge-daemon; artifact 'scan-bridge-health')")
            self.say("  Status     : .venv/bin/python deploy.py status   (with PREFECT_API_URL=" + self.env["PREFECT_API_URL"] + ")")
            self.say(f"  Logs       : {self.logs}")
            self.say("Ctrl+C stops everything this started.")
            while not self.stop.wait(1.0):
                for name, proc, _ in self.children:
                    if proc.poll() is not None:
                        self.say(f"{name} exited with {proc.returncode}; stopping (see {self.logs / (name + '.log')})")
                        self.stop.set()
            return 0
        except KeyboardInterrupt:
            return 0
        except Exception as exc:
            self.say(f"error: {exc}")
            return 1
        finally:
            self.teardown()

    def teardown(self) -> None:
        self.say("Stopping ...")
        if any(name == "worker" for name, proc, _ in self.children if proc.poll() is None):
            self._deploy_py("stop", "--timeout", "30")
        for name, proc, log in reversed(self.children):
            stop_child(proc, 20, kill_wait_s=None, sig=signal.SIGINT if name == "worker" else signal.SIGTERM)
            log.close()
        if self.cluster is not None:
            self.cluster.stop()
        self.say("Stopped; nothing left running.")


def _healthy(url: str) -> bool:
    try:
        return httpx.get(url.rstrip("/") + "/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def main() -> int:
    state = Path(os.environ.get("SCAN_BRIDGE_LOCAL_STATE_DIR") or project_dir() / ".state")
    return Launcher(state).run()


if __name__ == "__main__":
    sys.exit(main())
