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
import os
import re
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import hazelcast
import psutil
import pytest
from hazelcast.core import HazelcastJsonValue
from prefect.client.orchestration import SyncPrefectClient
from prefect.states import Cancelled, Cancelling, Running

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
from .test_health_check import heartbeat_doc, latest_doc

# Short intervals for the daemon (the flow reads them from the worker's environment when its
# parameters are empty) and a worker that polls often, so the whole module stays within minutes.
FAST = {
    "SCAN_BRIDGE_HEALTH_INTERVAL_S": "2",
    "SCAN_BRIDGE_SUMMARY_INTERVAL_S": "2",
    "SCAN_BRIDGE_HEARTBEAT_INTERVAL_S": "1",
    "SCAN_BRIDGE_STOP_GRACE_S": "3",
    "PREFECT_WORKER_QUERY_SECONDS": "2",
    # A worker counts as offline 3 heartbeats after its last one: 6 s instead of 90 s.
    "PREFECT_WORKER_HEARTBEAT_SECONDS": "2",
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

    def start_worker(self) -> Proc:
        self.worker = Proc(
            "worker", [sys.executable, str(ROOT / "deploy.py"), "start", "--name", "e2e-worker"], self.env, self.logs
        )
        return self.worker

    def stop_leftover_worker(self) -> None:
        """A test that failed half-way left its worker: it, its flow runs and their bridges go, so that
        the next test starts from no worker (one failure must not fail the tests after it)."""
        if self.worker is None:
            return
        under = descendants(self.worker.pid)
        self.worker.stop(signal.SIGINT, timeout=60)
        self.worker = None
        for pid in still_running(under):
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()

    def diagnostics(self) -> str:
        parts = [self.server.tail(3000), self.scanner.tail(1000)]
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
        stack.stop_leftover_worker()
        scanner.stop(signal.SIGTERM, timeout=10)
        server.stop()
        for bridge in bridges_for(scans):  # never leave one behind, whatever failed above
            bridge.kill()


@pytest.fixture(autouse=True)
def _no_worker_after_a_test(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    stack = request.node.funcargs.get("stack")  # only tests that use the stack (never starts one)
    if isinstance(stack, Stack):
        stack.stop_leftover_worker()


def test_deployment_lifecycle(stack: Stack) -> None:
    env, server = stack.env, stack.server

    # -- create, twice: the second finds the pool and updates the same deployment ----------------
    first = deploy_py(env, "create", cwd=stack.root)  # from elsewhere: the checkout is still recorded
    assert first.returncode == 0, describe(first)
    assert "work pool dolphin-daemon-pool: created\n" in first.stdout, describe(first)
    second = deploy_py(env, "create")
    assert second.returncode == 0, describe(second)
    assert "work pool dolphin-daemon-pool: exists\n" in second.stdout, describe(second)
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
    run_id = run_id_from(started.stdout)
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
    # The hour in progress shows a block once the artifact holds a check that read a data age (the
    # daemon's first checks may predate the first scan pushed: "?" until the next artifact update).
    hour_in_progress = re.compile(r"^Last 24 h     : \S*[▁▂▃▄▅▆▇█]·?  ", re.M)
    seen: list[subprocess.CompletedProcess[str]] = []

    def all_well() -> subprocess.CompletedProcess[str] | bool:
        seen.append(r := deploy_py(env, "status"))
        return r.returncode == 0 and bool(hour_in_progress.search(r.stdout)) and r

    try:
        status = wait_for(all_well, 90, "deploy.py status exit 0 with a block for the hour in progress", interval=1)
    except AssertionError as exc:  # say what status last printed, and what the daemon was doing
        last = describe(seen[-1]) if seen else "(status never ran)"
        raise AssertionError(f"{exc}\n{last}\n{stack.diagnostics()}") from None
    run_name = server.get(f"/flow_runs/{run_id}")["name"]
    assert f"{run_name} RUNNING" in status.stdout, describe(status)
    assert "Health        : HEALTHY" in status.stdout, describe(status)
    assert "1 worker(s) online" in status.stdout, describe(status)
    assert "Alerts        : none set up (`python deploy.py alerts" in status.stdout, describe(status)
    # The last 24 hours as one line of blocks, read from the daemon's artifact: its checks so far are on it.
    assert re.search(r"^Last 24 h     : [▁▂▃▄▅▆▇█·?]{24}  worst data age per hour", status.stdout, re.M), describe(status)
    # The hour in progress has the daemon's checks (or, just past an hour's end, the hour before it).
    assert hour_in_progress.search(status.stdout), describe(status)

    # -- a second run: cancelled by the deployment's concurrency limit, no second bridge ---------
    bridges = bridges_for(stack.scans)
    assert len(bridges) == 1, [b.cmdline() for b in bridges]
    bridge_pid = bridges[0].pid
    flow_pid = bridges[0].ppid()
    assert flow_pid in descendants(worker.pid), "the bridge is not a descendant of our worker"

    again = deploy_py(env, "run")
    assert again.returncode == 0, describe(again)
    second_id = run_id_from(again.stdout)
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
    assert worker.stop(signal.SIGINT, timeout=60) == 0, worker.tail()
    stack.worker = None
    assert still_running(children) == {}
    if "ending it with SIGABRT" in worker.log_text():  # ended in time, but Prefect's own stop hung
        warnings.warn(f"the Prefect worker needed deploy.py start's SIGABRT to stop; its stacks:\n{worker.tail(20000)}")


def test_status_without_server_names_the_address(stack: Stack) -> None:
    port = closed_port()
    env = {**stack.env, "PREFECT_API_URL": f"http://127.0.0.1:{port}/api"}
    result = deploy_py(env, "status")
    output = (result.stdout + result.stderr).strip()
    assert result.returncode == 1, describe(result)  # README: status exits 1 if anything is wrong
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


# -- deploy.py promises for runs that went wrong -------------------------------------------------------


def ensure_deployment(stack: Stack) -> None:
    """The deployment the lifecycle test creates, for a test run on its own."""
    if not stack.server.post("/deployments/filter", {}):
        created = deploy_py(stack.env, "create")
        assert created.returncode == 0, describe(created)


def prefect_worker_pid(launcher: Proc) -> int:
    """The ``prefect worker start`` process under ``deploy.py start`` (the worker proper)."""

    def find() -> int | None:
        for pid, (_, cmd) in descendants(launcher.pid).items():
            if "worker start" in cmd and "deploy.py" not in cmd:
                return pid
        return None

    return wait_for(find, 30, "the prefect worker process under deploy.py start", interval=0.2)


@pytest.mark.extended  # ~40 s (two runs, a killed worker): CI only, see pyproject.toml
def test_stop_force_after_the_worker_died_leaves_no_bridge(stack: Stack) -> None:
    """docs/operations.md: a run whose worker died stays RUNNING; status says so; stop --force ends it."""
    env, server = stack.env, stack.server
    ensure_deployment(stack)
    launcher = stack.start_worker()
    flow_pid = bridge_pid = None
    try:
        started = deploy_py(env, "run")
        assert started.returncode == 0, describe(started)
        run_id = run_id_from(started.stdout)
        server.wait_state(run_id, {"RUNNING"}, 90)
        bridge = wait_for(lambda: (b := bridges_for(stack.scans)) and len(b) == 1 and b[0], 90, "the run's bridge")
        bridge_pid, flow_pid = bridge.pid, bridge.ppid()

        os.kill(prefect_worker_pid(launcher), signal.SIGKILL)
        wait_for(lambda: not launcher.alive(), 30, "deploy.py start to end with its worker")
        # The daemon goes on without its worker, and nothing tells the API.
        assert not gone_or_zombie(flow_pid) and not gone_or_zombie(bridge_pid)
        assert server.run_state(run_id)[0] == "RUNNING"

        status = wait_for(lambda: (r := deploy_py(env, "status")) and "0 worker(s) online" in r.stdout and r,
                          60, "deploy.py status to see no worker online", interval=1)
        assert status.returncode == 1, describe(status)
        assert "  ! no worker online: `python deploy.py start`" in status.stdout, describe(status)
        assert "  ! run RUNNING but no worker online" in status.stdout, describe(status)

        forced = deploy_py(env, "stop", "--force")
        assert forced.returncode == 0, describe(forced)
        assert "forced to CANCELLED" in forced.stdout, describe(forced)
        wait_for(lambda: gone_or_zombie(flow_pid), 30, f"the orphaned daemon (flow process {flow_pid}) to be gone")
        wait_for(lambda: gone_or_zombie(bridge_pid), 10, f"bridge {bridge_pid} to be gone")
        assert bridges_for(stack.scans) == [], "no bridge, and no daemon left to start another"
        state, _name, message = server.run_state(run_id)
        assert state == "CANCELLED", (state, message)
        assert message == "forced by deploy.py stop --force", message

        # The concurrency slot is free again: the next run starts a bridge.
        stack.worker = None
        launcher.stop(signal.SIGINT, timeout=60)
        again_worker = stack.start_worker()
        again = deploy_py(env, "run")
        assert again.returncode == 0, describe(again)
        again_id = run_id_from(again.stdout)
        server.wait_state(again_id, {"RUNNING"}, 90)
        wait_for(lambda: len(bridges_for(stack.scans)) == 1, 90, "the next run's bridge")
        stopped = deploy_py(env, "stop")
        assert stopped.returncode == 0, describe(stopped)
        assert server.run_state(again_id)[0] == "CANCELLED"
        assert again_worker.stop(signal.SIGINT, timeout=60) == 0, again_worker.tail()
        stack.worker = None
    finally:
        for pid in (flow_pid, bridge_pid):
            if pid is not None and not gone_or_zombie(pid):
                with contextlib.suppress(psutil.Error):
                    psutil.Process(pid).kill()


@pytest.mark.extended  # ~16 s (waits for the worker of an earlier test to count as offline): CI only
def test_status_names_a_run_stuck_in_cancelling(stack: Stack) -> None:
    """A run set to CANCELLING with no worker to act stays there; status names it, stop --force ends it."""
    env, server = stack.env, stack.server
    ensure_deployment(stack)
    assert stack.worker is None, "no worker may run for this test"
    with SyncPrefectClient(server.url) as client:
        deployment = client.read_deployment_by_name("scan-bridge-daemon/scan-bridge-daemon")
        run = client.create_flow_run_from_deployment(deployment.id)
        try:
            client.set_flow_run_state(run.id, Running(), force=True)
            # A CANCELLING that began five minutes ago (status calls one older than a minute stuck).
            stuck_since = Cancelling(message="test: worker gone", timestamp=datetime.now(UTC) - timedelta(minutes=5))
            client.set_flow_run_state(run.id, stuck_since, force=True)
            assert server.run_state(str(run.id))[0] == "CANCELLING"

            # A worker stopped by an earlier test counts as online until 3 heartbeats (6 s) have passed.
            status = wait_for(lambda: (r := deploy_py(env, "status")) and "0 worker(s) online" in r.stdout and r,
                              60, "deploy.py status to see no worker online", interval=1)
            assert status.returncode == 1, describe(status)
            assert f"{run.name} CANCELLING since" in status.stdout, describe(status)
            assert "  ! run stuck in CANCELLING (its worker is gone?): `python deploy.py stop --force`" in status.stdout, (
                describe(status))

            forced = deploy_py(env, "stop", "--force")
            assert forced.returncode == 0, describe(forced)
            assert f"{run.name}: forced to CANCELLED" in forced.stdout, describe(forced)
            assert server.run_state(str(run.id))[0] == "CANCELLED"
        finally:
            if server.run_state(str(run.id))[0] not in TERMINAL:  # never leave the slot held for later tests
                client.set_flow_run_state(run.id, Cancelled(message="test cleanup"), force=True)


def test_health_exit_codes_follow_the_data(stack: Stack, hazelcast_cluster, tmp_path: Path) -> None:
    """README: deploy.py health exits 0 healthy, 1 warning, 2 stale/missing/down; thresholds from SCAN_BRIDGE_*."""
    maps = unique_maps()
    empty = tmp_path / "no-scans"
    empty.mkdir()
    env = {**stack.env, **maps, "SCAN_BRIDGE_WATCH_DIR": str(empty)}
    writer = hazelcast.HazelcastClient(**hazelcast_cluster.client_config())
    try:
        features = writer.get_map(maps["SCAN_BRIDGE_FEATURES_MAP"]).blocking()

        def put(age_s: float) -> None:
            features.set("latest_eigen_scan", HazelcastJsonValue(json.dumps(latest_doc(7, age_s))))
            features.set("scan_bridge_heartbeat", HazelcastJsonValue(json.dumps(heartbeat_doc(0))))

        missing = deploy_py(env, "health")
        assert missing.returncode == 2, describe(missing)
        assert missing.stdout.startswith("MISSING: "), describe(missing)

        put(45)  # defaults: warning from 30 s, stale after 60 s
        warning = deploy_py(env, "health")
        assert warning.returncode == 1, describe(warning)
        assert warning.stdout.startswith("WARNING: "), describe(warning)
        as_json = deploy_py(env, "health", "--json")
        assert as_json.returncode == 1, describe(as_json)
        report = json.loads(as_json.stdout)
        assert report["status"] == "warning" and report["scan_number"] == 7, report
        assert report["message"].startswith("WARNING: ") and report["checked_at"], report

        # The same data under a lower stale threshold (SCAN_BRIDGE_STALE_AFTER_S) is stale.
        stricter = deploy_py({**env, "SCAN_BRIDGE_WARN_AFTER_S": "10", "SCAN_BRIDGE_STALE_AFTER_S": "20"}, "health")
        assert stricter.returncode == 2, describe(stricter)
        assert stricter.stdout.startswith("STALE (scanner silent): "), describe(stricter)

        put(600)
        stale = deploy_py(env, "health")
        assert stale.returncode == 2, describe(stale)
        assert stale.stdout.startswith("STALE (scanner silent): "), describe(stale)
        assert stale.stdout.lower().count("stale") == 1, describe(stale)  # issue 15: the status once

        put(0)
        healthy = deploy_py(env, "health")
        assert healthy.returncode == 0, describe(healthy)
        assert healthy.stdout.startswith("HEALTHY: "), describe(healthy)
    finally:
        writer.shutdown()


@pytest.mark.extended  # ~1-3 min (a run, a server restart, a stop): CI only, see pyproject.toml
def test_cancel_after_a_server_outage_stops_the_daemon_and_its_bridge(stack: Stack) -> None:
    """Issue 13 (Prefect 3.9: cancellation observers recover from websocket outages). The Prefect
    server restarts under a running daemon: its worker's and its flow's connections break and come
    back; the daemon and its bridge go on; then ``deploy.py stop`` still ends the run CANCELLED, with
    its bridge, as it does without an outage."""
    env = stack.env
    ensure_deployment(stack)
    worker = stack.start_worker()
    started = deploy_py(env, "run")
    assert started.returncode == 0, describe(started)
    run_id = run_id_from(started.stdout)
    stack.server.wait_state(run_id, {"RUNNING"}, 90)
    bridge = wait_for(lambda: (b := bridges_for(stack.scans)) and len(b) == 1 and b[0], 90, "the run's bridge")

    old = stack.server
    old.stop()
    assert bridge.is_running(), "the bridge does not depend on the Prefect server"
    stack.server = PrefectServer(old.home, stack.logs, port=old.port)  # the same database and address
    stack.server.wait_ready(90)
    assert stack.server.run_state(run_id)[0] == "RUNNING" and bridge.is_running()

    stopped = deploy_py(env, "stop", timeout=180)
    assert stopped.returncode == 0, f"{describe(stopped)}\n{stack.diagnostics()}"
    assert stack.server.run_state(run_id)[0] == "CANCELLED", stack.server.run_state(run_id)
    wait_for(lambda: gone_or_zombie(bridge.pid), 30, f"bridge {bridge.pid} to be gone")
    assert bridges_for(stack.scans) == []
    assert worker.stop(signal.SIGINT, timeout=60) == 0, worker.tail()
    stack.worker = None
