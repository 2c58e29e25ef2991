"""End to end, nothing mocked: Prefect server, worker, daemon flow, bridge, Hazelcast member, scanner.

Every piece is a real process started the way an operator starts it (``python deploy.py ...``,
``scripts/run-local``); the assertions look at what an operator would look at (exit codes, the
printed screens, the run's state and logs in the Prefect API) and at the process table, because
"no second bridge" and "nothing left behind" are claims about processes.

The lifecycle test runs its steps in order against one module-scoped stack; the tests after it
reuse that stack for the error screens; the last one runs ``scripts/run-local`` on its own ports.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from .e2e_support import (
    ROOT,
    TERMINAL,
    PrefectServer,
    Proc,
    base_env,
    bridges_for,
    closed_port,
    deploy_py,
    describe,
    descendants,
    free_port,
    gone_or_zombie,
    mentioning,
    run_id_from,
    still_running,
)
from .support import unique_maps, wait_for

# Short intervals for the daemon (the flow reads them from the worker's environment when its
# parameters are empty) and a worker that polls often, so the whole module stays within minutes.
FAST = {
    "SCAN_BRIDGE_HEALTH_INTERVAL_S": "2",
    "SCAN_BRIDGE_SUMMARY_INTERVAL_S": "2",
    "SCAN_BRIDGE_HEARTBEAT_INTERVAL_S": "1",
    "SCAN_BRIDGE_STOP_GRACE_S": "3",
    "PREFECT_WORKER_QUERY_SECONDS": "2",
    "PREFECT_LOGGING_TO_API_BATCH_INTERVAL": "1",
}


@dataclass
class Stack:
    root: Path
    logs: Path
    scans: Path
    server: PrefectServer
    scanner: Proc
    env: dict[str, str]
    worker: Proc | None = None
    runs: dict[str, str] = field(default_factory=dict)

    def start_worker(self) -> Proc:
        self.worker = Proc(
            "worker", [sys.executable, str(ROOT / "deploy.py"), "start", "--name", "e2e-worker"], self.env, self.logs
        )
        return self.worker

    def diagnostics(self) -> str:
        parts = [self.server.proc.tail(3000), self.scanner.tail(1000)]
        if self.worker is not None:
            parts.append(self.worker.tail(6000))
        return "\n".join(parts)


@pytest.fixture(scope="module")
def stack(hazelcast_cluster, tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    logs = root / "logs"
    scans = root / "scans"
    logs.mkdir()
    scans.mkdir()
    server = PrefectServer(root / "prefect-home", logs)
    scanner = Proc(
        "scanner",
        [sys.executable, "-m", "scan_bridge.simulate", "--out", str(scans), "--rate", "5", "--assets", "50"],
        base_env(),
        logs,
    )
    env = base_env(
        PREFECT_HOME=str(server.home),
        PREFECT_API_URL=server.url,
        SCAN_BRIDGE_WATCH_DIR=str(scans),
        **hazelcast_cluster.env(),
        **unique_maps(),
        **FAST,
    )
    stack = Stack(root, logs, scans, server, scanner, env)
    try:
        server.wait_ready(90)
        yield stack
    finally:
        if stack.worker is not None:  # a test failed half-way: the worker, its flow runs and their bridges go
            under = descendants(stack.worker.pid)
            stack.worker.stop(signal.SIGINT, timeout=30)
            for pid in still_running(under):
                with contextlib.suppress(psutil.Error):
                    psutil.Process(pid).kill()
        scanner.stop(signal.SIGTERM, timeout=10)
        server.stop()
        for bridge in bridges_for(scans):  # never leave one behind, whatever failed above
            bridge.kill()


def test_deployment_lifecycle(stack: Stack) -> None:
    env, server = stack.env, stack.server

    # -- create, twice: the second finds the pool and updates the same deployment ----------------
    first = deploy_py(env, "create", cwd=stack.root)  # from elsewhere: the checkout is still recorded
    assert first.returncode == 0, describe(first)
    assert "created" in first.stdout
    second = deploy_py(env, "create")
    assert second.returncode == 0, describe(second)
    assert "exists" in second.stdout
    deployments = server.post("/deployments/filter", {})
    assert [d["name"] for d in deployments] == ["scan-bridge-daemon"], deployments
    deployment = deployments[0]
    assert deployment["concurrency_options"]["collision_strategy"] == "CANCEL_NEW", deployment
    assert deployment["global_concurrency_limit"]["limit"] == 1, deployment
    assert deployment["pull_steps"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}
    ], deployment["pull_steps"]
    assert len(server.post("/work_pools/filter", {})) == 1

    # -- worker, run, healthy data, bridge lines in the run's logs -------------------------------
    worker = stack.start_worker()
    started = deploy_py(env, "run")
    assert started.returncode == 0, describe(started)
    run_id = stack.runs["first"] = run_id_from(started.stdout)
    assert f"/runs/flow-run/{run_id}" in started.stdout

    try:
        server.wait_state(run_id, {"RUNNING"}, 60)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {server.run_state(run_id)}\n{stack.diagnostics()}") from None
    assert worker.alive(), stack.diagnostics()

    health = wait_for(
        lambda: (r := deploy_py(env, "health")).returncode == 0 and r, 60, "deploy.py health exit 0", interval=1
    )
    assert health.stdout.startswith("HEALTHY"), describe(health)

    bridge_lines = wait_for(
        lambda: [m for m in server.run_logs(run_id) if m.startswith("[Bridge] [OK] ")],
        30,
        "[Bridge] [OK] lines in the run's logs",
        interval=1,
    )
    assert any("Caught up" in m or "Pushed" in m for m in bridge_lines), bridge_lines

    # -- status: one screen, all well --------------------------------------------------------------
    status = wait_for(
        lambda: (r := deploy_py(env, "status")).returncode == 0 and r, 60, "deploy.py status exit 0", interval=1
    )
    run_name = server.get(f"/flow_runs/{run_id}")["name"]
    assert f"{run_name} RUNNING" in status.stdout, describe(status)
    assert "Health        : HEALTHY" in status.stdout, describe(status)
    assert "1 worker(s) online" in status.stdout, describe(status)
    assert "Alerts        : none set up (`python deploy.py alerts" in status.stdout, describe(status)

    # -- a second run: cancelled by the deployment's concurrency limit, no second bridge ---------
    bridges = bridges_for(stack.scans)
    assert len(bridges) == 1, [b.cmdline() for b in bridges]
    bridge_pid = bridges[0].pid
    flow_pid = bridges[0].ppid()
    assert flow_pid in descendants(worker.pid), "the bridge is not a descendant of our worker"

    again = deploy_py(env, "run")
    assert again.returncode == 0, describe(again)
    second_id = stack.runs["second"] = run_id_from(again.stdout)
    most = 0

    def second_run_final() -> str | bool:
        nonlocal most
        most = max(most, len(bridges_for(stack.scans)))
        state = server.run_state(second_id)[0]
        return state in TERMINAL and state

    final = wait_for(second_run_final, 60, "the second run to end", interval=0.2)
    state, name, message = server.run_state(second_id)
    assert final == "CANCELLED", f"second run ended {state}/{name}: {message}\n{stack.diagnostics()}"
    assert "concurrency limit" in (message or ""), message
    assert most == 1, f"saw {most} bridges for {stack.scans} while the second run was handled"
    # The cancelled run never reached a flow process (no daemon log lines); the first run is untouched.
    history = [(s["type"], s["name"]) for s in server.get(f"/flow_run_states/?flow_run_id={second_id}")]
    print(f"second run's states: {history}; message: {message!r}")
    assert "RUNNING" not in [t for t, _ in history], history
    assert not any("daemon starting" in m for m in server.run_logs(second_id)), server.run_logs(second_id)
    assert server.run_state(run_id)[0] == "RUNNING"
    assert [b.pid for b in bridges_for(stack.scans)] == [bridge_pid]

    # -- stop: the run ends CANCELLED and the bridge goes with it ------------------------------------
    stopped = deploy_py(env, "stop")
    assert stopped.returncode == 0, describe(stopped)
    assert "stopped" in stopped.stdout, describe(stopped)
    assert server.run_state(run_id)[0] == "CANCELLED", server.run_state(run_id)
    wait_for(lambda: gone_or_zombie(bridge_pid), 20, f"bridge pid {bridge_pid} to be gone")
    wait_for(lambda: gone_or_zombie(flow_pid), 20, f"flow process pid {flow_pid} to be gone")
    assert bridges_for(stack.scans) == []
    logs = server.run_logs(run_id)
    assert any(m.startswith("Bridge stopped") for m in logs), logs[-20:]
    # A deliberate stop says so, and the "daemon silent" alert expects that event (docs/alerts.md).
    goodbye = wait_for(lambda: server.post("/events/filter", {"filter": {
        "event": {"name": ["scan-bridge.daemon-stopped"]},
        "resource": {"id": ["scan-bridge.daemon.scan-bridge-daemon"]}}})["events"], 15, "the daemon-stopped event")
    assert len(goodbye) == 1, goodbye
    status = deploy_py(env, "status")
    assert status.returncode == 1 and "CANCELLED" in status.stdout, describe(status)

    # -- the worker: Ctrl+C ends it with 0 and nothing under it -----------------------------------
    children = descendants(worker.pid)
    assert worker.stop(signal.SIGINT, timeout=30) == 0, worker.tail()
    stack.worker = None
    assert still_running(children) == {}


def test_health_json_parses(stack: Stack) -> None:
    result = deploy_py(stack.env, "health", "--json")
    assert result.returncode in (0, 1, 2), describe(result)
    report = json.loads(result.stdout)
    assert report["status"] in {"healthy", "warning", "stale", "missing", "down"}, report
    assert "message" in report and "checked_at" in report


def test_status_without_server_names_the_address(stack: Stack) -> None:
    port = closed_port()
    env = {**stack.env, "PREFECT_API_URL": f"http://127.0.0.1:{port}/api"}
    result = deploy_py(env, "status")
    output = (result.stdout + result.stderr).strip()
    assert result.returncode != 0, describe(result)
    assert "Traceback" not in output, describe(result)
    assert len(output.splitlines()) == 1, describe(result)
    assert f"127.0.0.1:{port}" in output, describe(result)


def test_health_without_cluster_exits_3(stack: Stack) -> None:
    env = {**stack.env, "SCAN_BRIDGE_HAZELCAST_MEMBERS": "127.0.0.1:1"}
    started = time.monotonic()
    result = deploy_py(env, "health", timeout=60)
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 3, describe(result)
    assert "Traceback" not in output, describe(result)
    assert len(output.splitlines()) == 1, describe(result)
    assert "127.0.0.1:1" in output, describe(result)
    assert time.monotonic() - started < 30


def test_run_local_starts_everything_and_ctrl_c_stops_it(tmp_path: Path) -> None:
    state = tmp_path / "state"
    prefect_port, hazelcast_port = free_port(), free_port()
    while hazelcast_port == prefect_port:
        hazelcast_port = free_port()
    env = base_env(
        SCAN_BRIDGE_LOCAL_PREFECT_PORT=str(prefect_port),
        SCAN_BRIDGE_LOCAL_HAZELCAST_PORT=str(hazelcast_port),
        SCAN_BRIDGE_LOCAL_STATE_DIR=str(state),
    )
    output = tmp_path / "run-local.out"
    with open(output, "wb") as out:
        launcher = subprocess.Popen(
            [str(ROOT / "scripts" / "run-local")],
            env=env,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    check_env = base_env(
        PREFECT_API_URL=f"http://127.0.0.1:{prefect_port}/api",
        SCAN_BRIDGE_HAZELCAST_MEMBERS=f"127.0.0.1:{hazelcast_port}",
        SCAN_BRIDGE_HAZELCAST_CLUSTER_NAME="dev",
    )
    needles = [str(state), f":{prefect_port}", f"127.0.0.1:{hazelcast_port}"]
    seen: dict[int, tuple[float, str]] = {}

    def healthy() -> bool:
        if launcher.poll() is not None:
            raise AssertionError(f"run-local exited early with {launcher.returncode}:\n{output.read_text()}")
        seen.update(mentioning(needles))
        seen.update(descendants(launcher.pid))
        return deploy_py(check_env, "health", timeout=60).returncode == 0

    try:
        wait_for(healthy, 180, "deploy.py health against run-local's member", interval=1)
        seen.update(mentioning(needles))
        seen.update(descendants(launcher.pid))
        commands = "\n".join(cmd for _, cmd in seen.values())
        for piece in ("prefect server start", "prefect worker start", "HazelcastMemberStarter", "scan_bridge.simulate",
                      "scan_bridge.service"):
            assert piece in commands, f"{piece!r} not among run-local's processes:\n{commands}"

        launcher.send_signal(signal.SIGINT)
        try:
            code = launcher.wait(75)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"run-local still running 75 s after SIGINT:\n{output.read_text()}") from None
        text = output.read_text()
        assert code == 0, text
        assert "deploy.py stop: stopped" in text, text  # the daemon run was cancelled through the API first
        assert "Stopped; nothing left running." in text, text
        assert "Traceback" not in text, text
        try:
            wait_for(lambda: not still_running(seen), 15, "run-local's processes to be gone", interval=0.2)
        except AssertionError:
            raise AssertionError(f"left behind by run-local: {still_running(seen)}") from None
        assert not mentioning([str(state)]), mentioning([str(state)])
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
        for pid in still_running(seen):
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()
