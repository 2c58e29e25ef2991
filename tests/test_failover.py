"""Failover with real processes (issue 12): two "machines" (process trees, each a failover daemon's
supervisor with its own bridge and worker-less loop; tests/failover_machine.py) on one real member,
a scanner writing 5 scans a second into the shared folder.

Machine loss: SIGKILL the active machine's whole tree; the standby writes within the bound, no scan
is missing, latest_eigen_scan never moves backwards, and every document names the machine that wrote it.
Frozen machine: SIGSTOP the active tree past the lease, SIGCONT once the standby writes: the old
active writes nothing after the takeover (every document's host and push time) and stands by.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from scan_bridge.discovery import scan_number_from_name
from tests.conftest import ClusterInfo
from tests.daemon_fixtures import Scanner
from tests.support import View, kill_all, process_tree, unique_maps, wait_for

pytestmark = pytest.mark.extended

LEASE_S, RENEW_S = "3", "0.5"
#: From SIGKILL of the active tree to a document written by the standby: the lease, one look, a bridge start.
TAKEOVER_BOUND_S = 15.0


class Machine:
    def __init__(self, name: str, env: dict[str, str], tmp: Path) -> None:
        self.name = name
        self.log_path = tmp / f"{name}.log"
        self.env = {
            **os.environ, **env,
            "SCAN_BRIDGE_FAILOVER": "true", "SCAN_BRIDGE_MACHINE_NAME": name,
            "SCAN_BRIDGE_LEASE_S": LEASE_S, "SCAN_BRIDGE_LEASE_RENEW_S": RENEW_S,
            "SCAN_BRIDGE_STATE_DIR": str(tmp / f"{name}-state"),
            "SCAN_BRIDGE_HEALTH_INTERVAL_S": "2", "SCAN_BRIDGE_SUMMARY_INTERVAL_S": "5",
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Machine:
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.failover_machine"], env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True, cwd=Path(__file__).resolve().parent.parent,
        )
        return self

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def tree(self) -> list[psutil.Process]:
        assert self.proc is not None
        return process_tree(self.proc.pid)

    def kill_tree(self) -> None:
        """The machine is lost: every process of it SIGKILLed at once (its group, and any child elsewhere)."""
        kill_all(self.tree())

    def signal_tree(self, signum: int) -> list[psutil.Process]:
        """SIGSTOP / SIGCONT every process of the machine (a frozen VM, a machine cut off and back)."""
        processes = self.tree()
        for p in processes:
            try:
                p.send_signal(signum)
            except psutil.NoSuchProcess:
                pass
        return processes

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.signal_tree(signal.SIGCONT)
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill_tree()
        if self.proc is not None:
            self._log.close()


@pytest.fixture
def machines(tmp_path: Path) -> Iterator[Any]:
    made: list[Machine] = []

    def make(name: str, env: dict[str, str]) -> Machine:
        machine = Machine(name, env, tmp_path).start()
        made.append(machine)
        return machine

    yield make
    for machine in made:
        machine.stop()
        print(f"--- {machine.name} ---\n{machine.output()[-4000:]}")
    left = [p.pid for m in made for p in m.tree() if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not left, f"processes left running: {left}"


class LatestWatcher:
    """Samples latest_eigen_scan every 50 ms from its own client: did it ever move backwards?"""

    def __init__(self, env: dict[str, str]) -> None:
        self.view = View(env)
        self.samples: list[tuple[float, str, int, str | None]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            try:
                latest = self.view.latest()
            except Exception:  # noqa: BLE001 - a sample missed is not a finding
                continue
            if latest is not None:
                bridge = latest.get("bridge", {})
                self.samples.append((time.monotonic(), latest["timestamp"], latest["scan_number"], bridge.get("host")))

    def first_by(self, host: str, after: float) -> float | None:
        return next((t for t, _ts, _n, h in self.samples if h == host and t >= after), None)

    def close(self) -> None:
        """Stop sampling (the samples stay); safe to call twice."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._thread.join(5)
        self.view.close()


@dataclass
class TwoMachines:
    """Machine a active and writing, machine b standing by, a scanner writing, latest sampled from the start."""

    env: dict[str, str]
    scans: Path
    view: View
    scanner: Scanner
    watcher: LatestWatcher
    a: Machine
    b: Machine

    def every_scan_pushed(self) -> set[int]:
        """Stop the scanner; once every scan on disk is in the history map, their numbers."""
        self.scanner.stop()
        on_disk = {scan_number_from_name(p) for p in self.scans.rglob("*.arrow")}
        wait_for(lambda: self.view.history_keys() >= on_disk, 30, "every scan on disk in history")
        return on_disk


@pytest.fixture
def two_machines(hazelcast_cluster: ClusterInfo, machines: Any, tmp_path: Path) -> Iterator[TwoMachines]:
    scans = tmp_path / "scans"
    scans.mkdir()
    env = {**hazelcast_cluster.env(), **unique_maps(), "SCAN_BRIDGE_WATCH_DIR": str(scans)}
    view = View(env)
    scanner = Scanner(scans)
    watcher = LatestWatcher(env)
    try:
        a = machines("machine-a", env)
        wait_for(lambda: (view.latest() or {}).get("bridge", {}).get("host") == "machine-a", 60, "machine a writing")
        b = machines("machine-b", env)
        wait_for(lambda: "Standing by" in b.output(), 30, "machine b standing by")
        yield TwoMachines(env, scans, view, scanner, watcher, a, b)
    finally:
        scanner.stop() if scanner.thread.is_alive() else None
        watcher.close()
        view.destroy_maps()
        view.close()


def test_machine_loss_a_standby_writes_within_the_bound_and_no_scan_is_missing(two_machines: TwoMachines) -> None:
    m = two_machines
    a, b, view, watcher = m.a, m.b, m.view, m.watcher
    time.sleep(1.0)  # b watches a renew for a while before the loss (an observation window)
    assert "Took over" not in b.output()

    lost_at = time.monotonic()
    a.kill_tree()
    wait_for(lambda: watcher.first_by("machine-b", lost_at) is not None, TAKEOVER_BOUND_S + 15, "machine b writing")
    took_s = watcher.first_by("machine-b", lost_at) - lost_at  # type: ignore[operator]
    print(f"takeover: {took_s:.2f} s from SIGKILL to a document written by machine b")
    assert took_s <= TAKEOVER_BOUND_S
    assert "Took over as the active machine 'machine-b' (lease epoch 2)" in b.output()

    time.sleep(2.0)  # b pushes live scans for a while
    on_disk = m.every_scan_pushed()
    assert view.history_keys() == on_disk, "0 scans missing, none extra"
    hosts = {doc["bridge"]["host"]: doc["bridge"]["epoch"] for doc in view.scans()}
    assert hosts == {"machine-a": 1, "machine-b": 2}
    assert "bridge stuck" not in b.output(), "the standby's and the active's health checks read a sane heartbeat"
    b.stop()  # before the maps go: destroying the features map would take the lease entry with it
    watcher.close()
    stamps = [ts for _t, ts, _n, _h in watcher.samples]
    assert stamps == sorted(stamps), "latest_eigen_scan moved backwards"
    assert len(watcher.samples) > 50


def test_a_frozen_active_that_thaws_writes_nothing_and_stands_by(two_machines: TwoMachines) -> None:
    m = two_machines
    a, b, view, watcher = m.a, m.b, m.view, m.watcher
    frozen_at = time.monotonic()
    a.signal_tree(signal.SIGSTOP)
    wait_for(lambda: watcher.first_by("machine-b", frozen_at) is not None, TAKEOVER_BOUND_S + 15, "machine b writing")
    time.sleep(1.0)  # b writes for a while; a stays frozen (the scenario, not a wait for something)
    thawed_at = time.time()
    # The bridge runs first after the thaw (which process a thawed machine schedules first is arbitrary):
    # it finds new files at once, so only fencing, not its daemon's kill, can keep it from writing.
    daemon, *children = a.tree()
    for child in children:
        child.send_signal(signal.SIGCONT)
    time.sleep(1.5)  # the bridge alone, thawed (the scenario, not a wait for something)
    daemon.send_signal(signal.SIGCONT)
    wait_for(lambda: "Stepped down to standby" in a.output(), 30, "machine a stepping down")
    assert "Fenced: latest_eigen_scan holds epoch 2" in a.output(), "the thawed bridge found out by itself"
    time.sleep(2.0)  # a stands by while b keeps writing
    on_disk = m.every_scan_pushed()
    documents = view.scans()
    late = [d["scan_number"] for d in documents
            if d["bridge"]["host"] == "machine-a" and _epoch_s(d["bridge"]["pushed_at"]) >= thawed_at]
    assert late == [], f"machine a wrote after it thawed (lease lost): {late}"
    assert {(d["bridge"]["host"], d["bridge"]["epoch"]) for d in documents} == {("machine-a", 1), ("machine-b", 2)}
    assert view.history_keys() == on_disk
    assert "Took over" not in a.output().split("Stepped down to standby")[-1], "a stands by, it does not fight back"
    b.stop()
    a.stop()
    watcher.close()
    hosts = [h for _t, _ts, _n, h in watcher.samples]
    first_b = hosts.index("machine-b")
    assert "machine-a" not in hosts[first_b:], "latest went back to machine a after the takeover"
    stamps = [ts for _t, ts, _n, _h in watcher.samples]
    assert stamps == sorted(stamps), "latest_eigen_scan moved backwards"


def _epoch_s(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()
