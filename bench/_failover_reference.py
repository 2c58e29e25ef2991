"""The reference path of the failover benchmark (issue 12): what a Prefect user has without our failover.

One real Prefect server, the scan-bridge deployment as ``python deploy.py create`` makes it (one
deployment, concurrency limit 1 with CANCEL_NEW, no failover), two workers on
``dolphin-daemon-pool`` standing for two machines (``python deploy.py start --name machine-N``, each
with its own state folder: a machine is its worker and everything the worker started), flow-run
heartbeats at the documented minimum, and two automations:

* **Crash zombie flows**, exactly as Prefect documents it ("How to detect and respond to zombie
  flows", docs.prefect.io/v3/advanced/detect-zombie-flows): after each ``prefect.flow-run.heartbeat``
  of a flow run, expect another heartbeat or a terminal state of the same run within 90 s, else
  change the run's state to CRASHED;
* **Run the daemon again after a crash**: a reactive trigger on ``prefect.flow-run.Crashed`` of a
  run of the deployment, whose action runs the deployment (``run-deployment``: "creating flow runs
  from existing deployments", Prefect's automations page). Prefect has no built-in restart of a
  crashed run (flow retries do not apply to Crashed), so this is what a user adds.

Each round SIGKILLs the whole tree of the machine whose worker runs the daemon (worker, flow run,
bridge) and measures until ``latest_eigen_scan`` holds a document pushed after the kill (the old
bridge is dead: any such document comes from another bridge; the bridge heartbeat's pid is checked to
belong to the other machine's tree). Then the lost machine's worker is started again (a machine
that came back) for the next round.

The kill is placed at a chosen phase of the heartbeat period (stratified over the rounds, see
:func:`kill_phases`): a machine is lost at any moment, and where that moment falls between two
heartbeats is what decides the detection time (90 s after the last heartbeat, so 60 to 90 s after
the loss at a 30 s frequency), so a handful of rounds should cover the period evenly rather than by
chance.

The pure parts (the automations, the phases, the statistics) are unit-tested in
``tests/test_bench_failover_reference.py``.
"""

from __future__ import annotations

import random
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from uuid import UUID

if TYPE_CHECKING:
    from prefect.events.schemas.automations import AutomationCore

#: Prefect's flow-run heartbeat frequency for the reference: ``PREFECT_FLOWS_HEARTBEAT_FREQUENCY``
#: (Prefect 3.9.1: ``flows.heartbeat_frequency``, default 180, minimum 30; the legacy name
#: ``PREFECT_RUNNER_HEARTBEAT_FREQUENCY`` is still accepted). The fastest Prefect allows; the
#: documented automation's 90 s then means three missed heartbeats.
HEARTBEAT_FREQUENCY_S = 30
HEARTBEAT_SETTING = "PREFECT_FLOWS_HEARTBEAT_FREQUENCY"
#: The documented automation's window.
ZOMBIE_WITHIN_S = 90
ZOMBIE_AUTOMATION_NAME = "Crash zombie flows"
RESTART_AUTOMATION_NAME = "Run scan-bridge-daemon again after a crash"
HEARTBEAT_EVENT = "prefect.flow-run.heartbeat"
CRASHED_EVENT = "prefect.flow-run.Crashed"


def _history_retention() -> int:
    from scan_bridge.settings import BridgeSettings

    return int(BridgeSettings.model_fields["retention"].default)


#: The bridge's default ``retention``: history keeps the newest this many scans.
HISTORY_RETENTION = _history_retention()


def zombie_automation() -> AutomationCore:
    """Prefect's documented zombie detection, field for field (docs: "How to detect and respond to zombie flows")."""
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    return AutomationCore(
        name=ZOMBIE_AUTOMATION_NAME,
        trigger=EventTrigger(
            after={HEARTBEAT_EVENT},
            expect={
                HEARTBEAT_EVENT,
                "prefect.flow-run.Completed",
                "prefect.flow-run.Failed",
                "prefect.flow-run.Cancelled",
                CRASHED_EVENT,
            },
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=ZOMBIE_WITHIN_S),
        ),
        actions=[ChangeFlowRunState(state=StateType.CRASHED, message="Flow run marked as crashed due to missing heartbeats.")],
    )


def restart_automation(deployment_id: UUID) -> AutomationCore:
    """A new run of the deployment as soon as one of its runs is Crashed (reactive, one event is enough)."""
    from prefect.events.actions import RunDeployment
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    return AutomationCore(
        name=RESTART_AUTOMATION_NAME,
        trigger=EventTrigger(
            expect={CRASHED_EVENT},
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            match_related=ResourceSpecification(
                {"prefect.resource.id": [f"prefect.deployment.{deployment_id}"], "prefect.resource.role": "deployment"}
            ),
            for_each={"prefect.resource.id"},
            posture=Posture.Reactive,
            threshold=1,
            within=timedelta(0),
        ),
        actions=[RunDeployment(source="selected", deployment_id=deployment_id, parameters=None)],
    )


def kill_phases(rounds: int, period_s: float = HEARTBEAT_FREQUENCY_S, seed: int = 12) -> list[float]:
    """Where in the heartbeat period each round's kill falls (seconds after a heartbeat), one per stratum.

    The period is cut into ``rounds`` equal slices and each round takes the middle of one, in a
    shuffled (seeded, so reproducible) order: the mean detection time over the rounds is then the
    one of a loss at a uniformly random moment, and no trend in the machine's load lines up with
    the phase.
    """
    if rounds < 1:
        return []
    phases = [(i + 0.5) * period_s / rounds for i in range(rounds)]
    random.Random(seed).shuffle(phases)
    return phases


def next_kill_time(last_heartbeat: float, phase_s: float, now: float, period_s: float = HEARTBEAT_FREQUENCY_S,
                   margin_s: float = 1.0) -> float:
    """The first time ``phase_s`` after a heartbeat (``last_heartbeat`` + whole periods) at least ``margin_s`` from ``now``."""
    when = last_heartbeat + phase_s
    while when < now + margin_s:
        when += period_s
    return when


def kept_by_history(on_disk: set[int], retention: int) -> set[int]:
    """The scans history should hold at the end: the newest ``retention`` on disk (the bridge trims older ones).

    The reference runs for half an hour at 2 scans/s, past the history's 1,000 scans: counting every
    file on disk would count the trimmed ones as missing.
    """
    return set(sorted(on_disk)[-retention:]) if retention > 0 else set()


@dataclass(frozen=True)
class Summary:
    median: float
    worst: float
    best: float
    count: int


def summarize(times: Sequence[float]) -> Summary:
    if not times:
        raise ValueError("no rounds to summarize")
    return Summary(statistics.median(times), max(times), min(times), len(times))


def ratio(reference: Sequence[float], ours: Sequence[float]) -> float:
    """How many times longer the reference path's median is than ours."""
    return summarize(reference).median / summarize(ours).median


# -- the run ----------------------------------------------------------------------------------------


@dataclass
class RoundResult:
    took_s: float
    lost: str
    took_over: str
    phase_s: float
    since_heartbeat_s: float  # from the lost run's last heartbeat to the kill
    to_crashed_s: float | None  # kill -> the old run's CRASHED state
    to_new_run_s: float | None  # kill -> the new run created (by the automation)
    to_running_s: float | None  # kill -> the new run RUNNING (a worker picked it up, the flow started)


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class ReferenceMachine:
    """One "machine" of the reference: ``python deploy.py start --name NAME`` and everything it starts."""

    def __init__(self, name: str, env: dict[str, str], logs: Path) -> None:
        self.name, self.env, self.logs = name, env, logs
        self.proc: Any = None

    def start(self) -> None:
        from tests.e2e_support import DEPLOY_PY, Proc

        self.proc = Proc(f"ref-worker-{self.name}", [sys.executable, str(DEPLOY_PY), "start", "--name", self.name],
                         self.env, self.logs)

    def pids(self) -> set[int]:
        import psutil

        try:
            parent = psutil.Process(self.proc.pid)
            return {parent.pid, *(p.pid for p in parent.children(recursive=True))}
        except psutil.NoSuchProcess:
            return set()

    def bridge_pids(self) -> set[int]:
        import psutil

        found = set()
        for pid in self.pids():
            try:
                if any("scan_bridge.service" in part for part in psutil.Process(pid).cmdline()):
                    found.add(pid)
            except psutil.Error:
                pass
        return found

    def polling(self) -> bool:
        """The worker has started and is polling its pool (its own start-up line)."""
        return self.proc is not None and "started!" in self.proc.log_text()

    def kill_tree(self) -> None:
        import psutil

        from tests.support import kill_all

        processes = []
        for pid in self.pids():
            try:
                processes.append(psutil.Process(pid))
            except psutil.NoSuchProcess:
                pass
        kill_all(processes)
        self.proc.popen.wait(10)

    def stop(self) -> None:
        if self.proc is not None:
            self.kill_tree()
            self.proc.stop(signal.SIGKILL, timeout=5)


class ReferencePath:
    """The whole reference run: server, deployment, automations, two machines, ``rounds`` losses."""

    def __init__(self, workdir: Path, hazelcast_env: dict[str, str], rate: float, assets: int,
                 log: Callable[[str], None] = print) -> None:
        self.workdir, self.rate, self.assets, self.log = workdir / "reference", rate, assets, log
        self.workdir.mkdir()
        self.hazelcast_env = hazelcast_env
        self.results: list[RoundResult] = []
        self.missing: int | None = None
        self.on_disk = 0

    def run(self, rounds: int) -> list[RoundResult]:
        from scan_bridge.discovery import scan_number_from_name
        from scan_bridge.simulate import Simulator
        from tests.e2e_support import PrefectServer, base_env, deploy_py, describe
        from tests.support import View, sample_latest, unique_maps, wait_for

        logs, scans = self.workdir / "logs", self.workdir / "scans"
        logs.mkdir()
        scans.mkdir()
        server = PrefectServer(self.workdir / "prefect-home", logs)
        env = base_env(PREFECT_HOME=str(server.home), PREFECT_API_URL=server.url, SCAN_BRIDGE_WATCH_DIR=str(scans),
                       COLUMNS="1000", **{HEARTBEAT_SETTING: str(HEARTBEAT_FREQUENCY_S)}, **self.hazelcast_env,
                       **unique_maps())
        simulator = Simulator(scans, rate=self.rate, assets=self.assets, log=lambda _line: None)
        machines = {name: ReferenceMachine(name, {**env, "XDG_STATE_HOME": str(self.workdir / f"{name}-state")}, logs)
                    for name in ("machine-0", "machine-1")}
        samples: list[tuple[float, float]] = []  # (monotonic, the bridge's pushed_at as epoch seconds)
        stop = threading.Event()
        view: Any = None
        automation_ids: list[UUID] = []
        client: Any = None
        try:
            server.wait_ready(120)
            created = deploy_py(env, "create", timeout=300)
            if created.returncode != 0:
                raise RuntimeError(f"deploy.py create failed: {describe(created)}")
            from prefect.client.orchestration import SyncPrefectClient

            from scan_bridge.names import DEPLOYMENT_FULL_NAME

            client = SyncPrefectClient(server.url)
            deployment = client.read_deployment_by_name(DEPLOYMENT_FULL_NAME)
            for automation in (zombie_automation(), restart_automation(deployment.id)):
                automation_ids.append(client.create_automation(automation))
            self.log(f"reference: server {server.url}, deployment {DEPLOYMENT_FULL_NAME} "
                     f"(concurrency {deployment.global_concurrency_limit and deployment.global_concurrency_limit.limit}), "
                     f"automations {ZOMBIE_AUTOMATION_NAME!r} and {RESTART_AUTOMATION_NAME!r}, "
                     f"{HEARTBEAT_SETTING}={HEARTBEAT_FREQUENCY_S}")
            threading.Thread(target=simulator.run, daemon=True).start()
            view = View(env)

            def record(document: dict[str, Any]) -> None:
                pushed = document.get("bridge", {}).get("pushed_at")
                if pushed:
                    samples.append((time.monotonic(), _epoch(pushed)))

            def sample() -> None:
                sample_latest(env, stop, record)

            threading.Thread(target=sample, daemon=True).start()
            for machine in machines.values():
                machine.start()
            wait_for(lambda: all(m.polling() for m in machines.values()), 120, "both reference workers polling", interval=0.5)
            started = deploy_py(env, "run")
            if started.returncode != 0:
                raise RuntimeError(f"deploy.py run failed: {describe(started)}")
            wait_for(lambda: samples, 300, "the first reference bridge writing", interval=0.5)

            def active_run() -> dict[str, Any] | None:
                runs = server.post("/flow_runs/filter", {"flow_runs": {"state": {"type": {"any_": ["RUNNING"]}}},
                                                         "deployments": {"id": {"any_": [str(deployment.id)]}}})
                return runs[0] if len(runs) == 1 else None

            def heartbeats(run_id: str) -> list[float]:
                page = server.post("/events/filter", {"filter": {"event": {"name": [HEARTBEAT_EVENT]},
                                                                 "resource": {"id": [f"prefect.flow-run.{run_id}"]}},
                                                      "limit": 50})
                return sorted(_epoch(e["occurred"]) for e in page.get("events", []))

            for round_, phase in enumerate(kill_phases(rounds), start=1):
                run = wait_for(active_run, 120, "one RUNNING run of the deployment", interval=0.5)
                active = wait_for(lambda: next((n for n, m in machines.items() if m.bridge_pids()), None), 120,
                                  "a machine running the bridge", interval=0.5)
                other = next(name for name in machines if name != active)
                wait_for(machines[other].polling, 120, f"{other}'s worker polling", interval=0.5)
                beats = wait_for(lambda: heartbeats(run["id"]), 120, "the run's first heartbeat event", interval=1)
                kill_at = next_kill_time(beats[-1], phase, time.time())
                time.sleep(max(0.0, kill_at - time.time()))  # the chosen phase of the heartbeat period
                beats = heartbeats(run["id"])
                lost_wall, lost_at = time.time(), time.monotonic()
                machines[active].kill_tree()
                wait_for(lambda: any(t >= lost_at and pushed > lost_wall for t, pushed in samples[-200:]), 600,
                         f"fresh data after losing {active}", interval=0.05)
                took = next(t for t, pushed in samples if t >= lost_at and pushed > lost_wall) - lost_at
                writer = wait_for(lambda: (hb := view.heartbeat()) and hb.get("pid") in machines[other].bridge_pids()
                                  and hb["pid"], 60, f"the bridge heartbeat from {other}'s tree", interval=0.2)
                old = server.get(f"/flow_runs/{run['id']}")
                new = wait_for(active_run, 60, "the new RUNNING run", interval=0.5)
                crashed = _epoch(old["state"]["timestamp"]) - lost_wall if old.get("state_type") == "CRASHED" else None
                result = RoundResult(
                    took_s=took, lost=active, took_over=other, phase_s=phase,
                    since_heartbeat_s=lost_wall - max((b for b in beats if b <= lost_wall), default=float("nan")),
                    to_crashed_s=crashed,
                    to_new_run_s=_epoch(new["created"]) - lost_wall if new["id"] != run["id"] else None,
                    to_running_s=_epoch(new["start_time"]) - lost_wall if new.get("start_time") else None,
                )
                self.results.append(result)
                self.log(f"reference round {round_:2d}: {active} lost {result.since_heartbeat_s:.1f} s after a heartbeat; "
                         f"Crashed +{_fmt(result.to_crashed_s)}, new run +{_fmt(result.to_new_run_s)}, "
                         f"running +{_fmt(result.to_running_s)}, fresh data from {other} (bridge pid {writer}) "
                         f"after {took:.2f} s; old run {old.get('state_type')} ({(old.get('state') or {}).get('message')!r})")
                machines[active].start()  # the lost machine comes back: an idle worker
            simulator.stop()
            on_disk = kept_by_history({scan_number_from_name(p) for p in scans.rglob("*.arrow")}, HISTORY_RETENTION)
            self.on_disk = len(on_disk)
            try:
                wait_for(lambda: view.history_keys() >= on_disk, 120, "every reference scan on disk in history")
            except AssertionError:
                pass
            self.missing = len(on_disk - view.history_keys())
        finally:
            stop.set()
            simulator.stop()
            if client is not None:
                for automation_id in automation_ids:  # nothing may start a new run while we stop
                    try:
                        client.delete_automation(automation_id)
                    except Exception:  # noqa: BLE001
                        pass
            for machine in machines.values():
                machine.stop()
            if view is not None:
                view.close()
            server.stop()
        return self.results


def _fmt(value: float | None) -> str:
    return "?" if value is None else f"{value:.1f} s"
