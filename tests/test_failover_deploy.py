"""Failover from deploy.py (issue 12), end to end: a Prefect server, two "machines" (each a worker on
its own work queue, started with ``deploy.py start --machine``, with its own state folder), the
per-machine deployments of ``deploy.py create --machine``, a member and a scanner.

Machine a runs its daemon (active), machine b its own (standby); ``deploy.py status`` lists both and
names the active one; then machine a's whole tree (worker, flow run, bridge) is SIGKILLed and
machine b's daemon, in its own Prefect run, takes over: fresh data from b within the bound, no scan
missing. Slow (a Prefect server and two flow runs): extended.
"""

from __future__ import annotations

import json
import signal
import sys
import time
from datetime import datetime
from pathlib import Path

import psutil
import pytest

from scan_bridge import names
from scan_bridge.health_status import HealthStatus

from .conftest import ClusterInfo
from .e2e_support import ROOT, PrefectServer, Proc, base_env, deploy_py, describe, descendants, run_id_from
from .support import View, unique_maps, wait_for
from .test_end_to_end import FAST

pytestmark = pytest.mark.extended

TAKEOVER_BOUND_S = 20.0  # lease 3 s + a look + a bridge start, on a loaded 2-core machine


def _host(view: View) -> str | None:
    latest = view.latest() or {}
    return latest.get("bridge", {}).get("host")


def test_failover_from_deploy_py(hazelcast_cluster: ClusterInfo, tmp_path: Path) -> None:
    from scan_bridge.discovery import scan_number_from_name

    logs, scans = tmp_path / "logs", tmp_path / "scans"
    logs.mkdir()
    scans.mkdir()
    server = PrefectServer(tmp_path / "prefect-home", logs)
    env = base_env(
        PREFECT_HOME=str(server.home), PREFECT_API_URL=server.url, SCAN_BRIDGE_WATCH_DIR=str(scans),
        SCAN_BRIDGE_LEASE_S="3", SCAN_BRIDGE_LEASE_RENEW_S="0.5",
        **hazelcast_cluster.env(), **unique_maps(), **FAST,
    )
    scanner = Proc("scanner", [sys.executable, "-m", "scan_bridge.simulate", "--out", str(scans), "--rate", "5",
                               "--assets", "50"], base_env(), logs)
    view = View(env)
    workers: dict[str, Proc] = {}
    try:
        server.wait_ready(90)
        created = deploy_py(env, "create", "--machine", "machine-a", "--machine", "machine-b")
        assert created.returncode == 0, describe(created)
        deployments = {d["name"]: d for d in server.post("/deployments/filter", {})}
        assert set(deployments) == {"scan-bridge-daemon", "scan-bridge-daemon-machine-a", "scan-bridge-daemon-machine-b"}
        b_deployment = deployments["scan-bridge-daemon-machine-b"]
        assert b_deployment["work_queue_name"] == "machine-b", b_deployment
        assert b_deployment["job_variables"]["env"]["SCAN_BRIDGE_MACHINE_NAME"] == "machine-b"
        assert b_deployment["global_concurrency_limit"]["limit"] == 1, b_deployment

        for machine in ("machine-a", "machine-b"):  # each machine: its own worker and its own state folder
            machine_env = {**env, "XDG_STATE_HOME": str(tmp_path / f"{machine}-state")}
            workers[machine] = Proc(f"worker-{machine}", [sys.executable, str(ROOT / "deploy.py"), "start",
                                                          "--machine", machine], machine_env, logs)
        started_a = deploy_py(env, "run", "--machine", "machine-a")
        assert started_a.returncode == 0, describe(started_a)
        run_a = run_id_from(started_a.stdout)
        wait_for(lambda: _host(view) == "machine-a", 120, "machine a's bridge writing")
        started_b = deploy_py(env, "run", "--machine", "machine-b")
        assert started_b.returncode == 0, describe(started_b)
        run_b = run_id_from(started_b.stdout)
        wait_for(lambda: any("Standing by as machine 'machine-b'" in m for m in server.run_logs(run_b)), 120,
                 "machine b standing by", interval=1)

        status = wait_for(lambda: (r := deploy_py(env, "status")) and "Failover" in r.stdout and r, 60, "status", interval=1)
        assert "Machine       : machine-a (work queue machine-a): RUNNING" in status.stdout, describe(status)
        assert "Machine       : machine-b (work queue machine-b): RUNNING" in status.stdout, describe(status)
        assert "Failover      : machine-a active since" in status.stdout, describe(status)

        # Machine a is lost: its worker, its flow run and its bridge, all SIGKILLed at once.
        tree = [workers["machine-a"].pid, *descendants(workers["machine-a"].pid)]
        lost_at = time.monotonic()
        for pid in tree:
            try:
                psutil.Process(pid).send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        wait_for(lambda: _host(view) == "machine-b", TAKEOVER_BOUND_S + 30, "machine b's bridge writing", interval=0.05)
        took = time.monotonic() - lost_at
        print(f"deploy.py failover: {took:.2f} s from SIGKILL of machine a to data written by machine b")
        assert took <= TAKEOVER_BOUND_S, f"took {took:.1f} s"
        # The run's log reaches the API in batches: poll for the line, do not read it once.
        wait_for(lambda: any("Took over as the active machine 'machine-b'" in m for m in server.run_logs(run_b)), 30,
                 "machine b's takeover line in its run's logs", interval=1)
        assert server.run_state(run_b)[0] == "RUNNING"
        # Its checks said its role in the event's name (alerts by role, docs/high-availability.md): standby
        # heartbeats while it stood by, then, after the takeover, the active's.
        resource = names.DAEMON_RESOURCE_PREFIX + names.machine_deployment("machine-b")

        def beats(event: str) -> list[dict]:
            found = server.post("/events/filter", {"filter": {"event": {"name": [names.event(event)]},
                                                              "resource": {"id": [resource]}}, "limit": 50})
            return found["events"]

        active = wait_for(lambda: beats(names.HEARTBEAT_EVENT), 30, "machine b's heartbeat as the active", interval=1)
        standby = beats(names.STANDBY_HEARTBEAT_EVENT)
        assert standby and {e["payload"]["role"] for e in standby} == {"standby"}, standby
        assert {e["payload"]["role"] for e in active} == {"active"}, active
        occurred = lambda events: [datetime.fromisoformat(e["occurred"]) for e in events]  # noqa: E731
        assert max(occurred(standby)) < min(occurred(active)), "standby heartbeats only before the takeover"
        # Its state events say its role, which the alerts about the data match: as a standby (its first
        # check, alerting nobody), then, from its first check after the takeover, as the active (its state
        # again, changed or not: state_events.state_event).
        def states() -> list[dict]:
            found = server.post("/events/filter", {"filter": {"event": {"name": [names.event(s.event_name) for s in HealthStatus]},
                                                              "resource": {"id": [resource]}}, "limit": 50})
            return found["events"]

        as_active = wait_for(lambda: [e for e in states() if e["resource"].get(names.ROLE_LABEL) == "active"], 30,
                             "machine b's state event as the active", interval=1)
        as_standby = [e for e in states() if e["resource"].get(names.ROLE_LABEL) == "standby"]
        assert as_standby and max(occurred(as_standby)) < min(occurred(as_active)), (as_standby, as_active)

        scanner.stop(signal.SIGTERM, timeout=10)
        on_disk = {scan_number_from_name(p) for p in scans.rglob("*.arrow")}
        wait_for(lambda: view.history_keys() >= on_disk, 60, "every scan on disk in history")
        hosts = {json.dumps([d["bridge"]["host"], d["bridge"]["epoch"]]) for d in view.scans()}
        assert hosts == {json.dumps(["machine-a", 1]), json.dumps(["machine-b", 2])}, hosts
        del run_a
    finally:
        stopped = deploy_py(env, "stop", "--machine", "machine-b", timeout=60)
        print(describe(stopped))
        for worker in workers.values():
            print(worker.tail(4000))
            worker.stop(signal.SIGINT, timeout=60)
        if scanner.alive():
            scanner.stop(signal.SIGTERM, timeout=10)
        view.destroy_maps()
        view.close()
        server.stop()
