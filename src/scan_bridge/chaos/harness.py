"""The chaos run: starts the real processes, injects seeded faults one after another, and keeps score.

One fault at a time: inject it, wait for it to end, wait for the system to recover (fresh data and
every scan the fault hid in history, up to ``settle_timeout_s``), a seeded gap, the next. So each
recovery is measured on its own, and a violation names the fault that was active.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import statistics
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from ..health_status import StaleCause
from ..localcluster import LocalCluster, LocalClusterError, find_jar, free_port_block
from ..prefect_server import OwnPrefectServer
from . import processes
from .plan import Profile, fault_order
from .processes import RUN_VARIABLE, Daemon, WorkerDaemon
from .referee import Referee
from .scanner import ChaosScanner, Written, history_key


@dataclass
class Fault:
    index: int
    kind: str
    start: float  # time.time()
    end: float | None = None
    detail: str = ""
    fresh_s: float | None = None  # end -> latest names a scan written after the end
    caught_up_s: float | None = None  # end -> every scan the fault hid is in history
    hidden: int = 0  # complete scans written while the fault was on
    missing: int = 0
    unneeded_restarts: int = 0
    scanner_moved_on: bool = False  # unreadable-folder: the scanner's midnight came, its new folder stayed readable
    notes: list[str] = field(default_factory=list)


@dataclass
class Violation:
    at: float
    what: str
    fault: str | None  # "kind #index" of the fault active (or last ended) then


@dataclass
class Sample:
    at: float
    pid: int
    rss: int
    cpu_s: float


@dataclass
class Options:
    profile: Profile
    kinds: list[str]
    seed: int
    duration_s: float
    workdir: Path | None = None
    keep: bool = False
    midnight_in_s: float = 60.0
    prefect: str = "standalone"  # or "server": the daemon as a deployment run by a real worker
    alerts: bool = False  # install the product's alert automations, posting to a receiver here
    log: Any = print


class Harness:
    def __init__(self, options: Options) -> None:
        self.o = options
        self.p = options.profile
        self.rng = random.Random(options.seed)
        self.run_id = uuid.uuid4().hex[:12]
        self.violations: list[Violation] = []
        self.faults: list[Fault] = []
        self.samples: dict[str, list[Sample]] = {"daemon": [], "bridge": []}
        self.pids: dict[int, float] = {}  # every process the run started or saw: pid -> create time
        self.pid_names: dict[int, str] = {}
        self.worst_staleness = 0.0
        self.worst_staleness_calm = 0.0  # outside faults and their recovery
        self.max_bridges = 0
        self.faulted_pids: set[int] = set()
        self.started_at = 0.0
        self.ended_at = 0.0
        self._overdue_reported: set[int] = set()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._owned_dir = options.workdir is None
        self.dir = Path(options.workdir or tempfile.mkdtemp(prefix="scan-bridge-chaos-"))
        self.cluster: LocalCluster | None = None
        self.server: OwnPrefectServer | None = None
        self.scanner: ChaosScanner | None = None
        self.referee: Referee | None = None
        self.daemon: Daemon | None = None
        self.in_recovery = False
        self.receiver: Any = None
        self.alerts: dict[str, Any] | None = None

    # -- bookkeeping ----------------------------------------------------------------------------------

    def log(self, text: str) -> None:
        self.o.log(f"[{datetime.now(UTC):%H:%M:%S}] {text}")

    def current_fault(self) -> Fault | None:
        return self.faults[-1] if self.faults else None

    def violation(self, what: str) -> None:
        fault = self.current_fault()
        label = f"{fault.kind} #{fault.index}" if fault is not None else None
        with self._lock:
            self.violations.append(Violation(time.time(), what, label))
        self.log(f"VIOLATION ({label or 'no fault'}): {what}")

    def remember(self, pid: int | None, name: str) -> None:
        if pid is None or pid in self.pids:
            return
        created = processes.create_time(pid)
        if created is not None:
            self.pids[pid] = created
            self.pid_names[pid] = name

    # -- the run ------------------------------------------------------------------------------------

    def run(self) -> int:
        os.environ[RUN_VARIABLE] = self.run_id  # inherited by every process the run starts
        self.log(f"chaos run {self.run_id}: profile {self.p.name}, seed {self.o.seed}, {self.o.duration_s:g} s, faults {','.join(self.o.kinds)}; in {self.dir}")
        try:
            self._start_everything()
            self.started_at = time.time()
            sampler = threading.Thread(target=self._sample_loop, name="chaos-sampler", daemon=True)
            sampler.start()
            self._fault_loop()
            self._final_drain()
        except Exception as exc:  # noqa: BLE001 - whatever broke, stop everything and report it
            self.violation(f"the harness itself failed: {type(exc).__name__}: {exc}")
        finally:
            self.ended_at = time.time()
            self._stop.set()
            self._stop_everything()
        return 1 if self.violations else 0

    def _start_everything(self) -> None:
        jar = find_jar()
        for attempt in range(3):
            cluster = LocalCluster(
                f"chaos-{self.run_id}", free_port_block(self.p.members), self.dir / "hz", jar=jar,
                heap="1g" if self.p.assets >= 100 else "256m",
            )
            try:
                self.cluster = cluster.start(timeout_s=180)
                break
            except LocalClusterError as exc:
                if "already in use" not in str(exc) or attempt == 2:
                    raise
        assert self.cluster is not None
        for i in range(self.p.members):
            self.remember(self.cluster.pid(i), f"member {i}")
        self.log(f"cluster up: {self.cluster.members}")
        os.environ["PREFECT_HOME"] = str(self.dir / "prefect")
        os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        self.server = OwnPrefectServer(timeout_s=180)
        url = self.server.start()
        self.remember(self.server.proc.pid if self.server.proc else None, "prefect server")
        self.log(f"prefect server up: {url}")
        if self.o.alerts:
            from pydantic import SecretStr
            from prefect.context import refresh_global_settings_context

            from ..alerts import install_alerts
            from .alerting import Receiver

            os.environ["PREFECT_API_URL"] = url
            refresh_global_settings_context()
            self.receiver = Receiver()
            install_alerts(SecretStr(self.receiver.url), "generic", health_interval_s=self.p.health_interval_s)
            self.log(f"alerts installed, posting to {self.receiver.url}")
        watch = self.dir / "scans"
        self.scanner = ChaosScanner(watch, self.p.rate, self.p.assets, random.Random(self.rng.random()),
                                    midnight_in_s=self.o.midnight_in_s, log=self.log)
        self.scanner.start()
        self.referee = Referee(self.cluster.cluster_name, self.cluster.members, self.scanner.ledger, self.violation)
        runtime = self.dir / "run"
        runtime.mkdir(mode=0o700)
        env = {
            **os.environ,
            **self.p.daemon_env(),
            "PREFECT_API_URL": url,
            "PREFECT_LOGGING_TO_API_BATCH_INTERVAL": "1",
            "SCAN_BRIDGE_WATCH_DIR": str(watch),
            "SCAN_BRIDGE_HAZELCAST_MEMBERS": ",".join(self.cluster.members),
            "SCAN_BRIDGE_HAZELCAST_CLUSTER_NAME": self.cluster.cluster_name,
            "SCAN_BRIDGE_STATE_DIR": str(self.dir / "state"),
            "SCAN_BRIDGE_RUNTIME_DIR": str(runtime),
            "SCAN_BRIDGE_DAEMON_NAME": f"chaos-{self.run_id}",
        }
        if self.o.prefect == "server":
            os.environ["PREFECT_API_URL"] = url  # the harness creates the pool, the deployment and the runs
            worker = WorkerDaemon(env, self.dir / "daemon.log", self.run_id)
            worker.setup()
            self.remember(worker.worker.pid if worker.worker else None, "worker")
            self.daemon = worker
        else:
            self.daemon = Daemon(env, self.dir / "daemon.log")
        self.remember(self.daemon.start(), "daemon")
        self._wait_fresh(since=time.time(), timeout=240, what="the first fresh scan after start")
        self.log("daemon and bridge up, data fresh")

    def _wait_fresh(self, since: float, timeout: float, what: str) -> float | None:
        """Seconds until latest names a scan written at or after ``since``; None (and a violation) on timeout."""
        assert self.referee is not None
        key = history_key(datetime.fromtimestamp(since, UTC))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            at = self.referee.first_latest_at_or_after(key, since)
            if at is not None:
                return max(0.0, at - since)
            if self.daemon is not None and not self.daemon.alive() and self.daemon.proc is not None:
                raise RuntimeError(f"the daemon exited ({self.daemon.proc.returncode}) waiting for {what}:\n{self.daemon.tail()}")
            time.sleep(0.1)
        self.violation(f"no fresh data {timeout:g} s after {what}")
        return None

    # -- faults -------------------------------------------------------------------------------------

    def _fault_loop(self) -> None:
        order = fault_order(self.rng, self.o.kinds, self.p.weights)
        deadline = self.started_at + self.o.duration_s
        seen: set[str] = set()
        while True:
            # A short run goes on until every kind ran once; after that the clock rules.
            if time.time() >= deadline and seen >= set(self.o.kinds):
                break
            if time.time() >= deadline + self.p.overrun_s:
                self.violation(f"the run overran its duration by {self.p.overrun_s:g} s; never injected: {', '.join(sorted(set(self.o.kinds) - seen))}")
                break
            gap = self.rng.uniform(*self.p.gap_s)
            time.sleep(gap)
            kind = next(order)
            fault = Fault(len(self.faults) + 1, kind, time.time())
            self.faults.append(fault)
            self.log(f"fault {fault.index}: {kind}")
            getattr(self, "_inject_" + kind.replace("-", "_"))(fault)
            if fault.end is None:
                fault.end = time.time()
            self._recover(fault)
            seen.add(kind)

    def _bridge_pid(self, timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = processes.bridges(self.run_id)
            running = [p for p in found if p.status() != psutil.STATUS_STOPPED]
            if len(running) == 1:
                return running[0].pid
            time.sleep(0.2)
        raise RuntimeError(f"no running bridge within {timeout:g} s:\n{self.daemon.tail() if self.daemon else ''}")

    def _inject_kill_bridge(self, fault: Fault) -> None:
        pid = self._bridge_pid()
        self.remember(pid, "bridge")
        self.faulted_pids.add(pid)
        os.kill(pid, signal.SIGKILL)
        fault.detail = f"bridge pid {pid}"

    def _inject_stop_bridge(self, fault: Fault) -> None:
        pid = self._bridge_pid()
        self.remember(pid, "bridge")
        self.faulted_pids.add(pid)
        created = self.pids.get(pid)
        os.kill(pid, signal.SIGSTOP)
        processes.wait_stopped(pid)
        deadline = time.monotonic() + self.p.stop_bridge_s
        while time.monotonic() < deadline:
            if not processes.still_alive({pid: created or 0.0}):
                fault.end = time.time()
                fault.detail = f"bridge pid {pid}, killed by the daemon after {fault.end - fault.start:.1f} s"
                return
            time.sleep(0.1)
        os.kill(pid, signal.SIGCONT)
        fault.end = time.time()
        fault.detail = f"bridge pid {pid}, thawed by the harness"
        self.violation(f"a frozen bridge (pid {pid}) was not restarted within {self.p.stop_bridge_s:g} s")

    def _inject_kill_member(self, fault: Fault) -> None:
        assert self.cluster is not None
        for i in range(self.p.members):
            self.cluster.stop_member(i, kill=True)
        time.sleep(self.p.member_down_s)
        for i in range(self.p.members):
            self.cluster.start_member(i, timeout_s=180)
            self.remember(self.cluster.pid(i), f"member {i}")
        fault.detail = f"{self.p.members} member(s) down {time.time() - fault.start:.1f} s, back empty"

    def _inject_freeze_member(self, fault: Fault) -> None:
        assert self.cluster is not None
        index = self.rng.randrange(self.p.members)
        pid = self.cluster.pid(index)
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        processes.wait_stopped(pid)
        time.sleep(self.p.freeze_member_s)
        os.kill(pid, signal.SIGCONT)
        fault.detail = f"member {index} frozen {self.p.freeze_member_s:g} s"

    def _inject_lose_member(self, fault: Fault) -> None:
        assert self.cluster is not None
        index = self.rng.randrange(self.p.members)
        self.cluster.stop_member(index, kill=True)
        time.sleep(self.p.member_down_s)
        self.cluster.start_member(index, timeout_s=180)
        self.remember(self.cluster.pid(index), f"member {index}")
        fault.detail = f"member {index} of {self.p.members} killed, replaced after {time.time() - fault.start:.1f} s"

    def _inject_pause_scanner(self, fault: Fault) -> None:
        assert self.scanner is not None
        self.scanner.pause()
        time.sleep(self.p.pause_scanner_s)
        self.scanner.resume()
        fault.detail = f"scanner paused {self.p.pause_scanner_s:g} s"

    def _inject_burst(self, fault: Fault) -> None:
        assert self.scanner is not None
        written = self.scanner.burst(self.p.burst_files)
        fault.detail = f"{len(written)} scans in {time.time() - fault.start:.1f} s"

    def _inject_kill_daemon(self, fault: Fault) -> None:
        assert self.daemon is not None
        old = self.daemon.pid
        self.daemon.kill()
        time.sleep(1.0)  # an operator, or systemd's RestartSec
        self.remember(self.daemon.start(), "daemon")
        fault.detail = f"daemon pid {old} killed, {self.daemon.pid} started"

    def _inject_bad_files(self, fault: Fault) -> None:
        assert self.scanner is not None
        written = self.scanner.hostile_files()
        fault.detail = f"{len(written)} hostile files: {', '.join(w.kind for w in written)}"

    def _inject_incomplete_file(self, fault: Fault) -> None:
        assert self.scanner is not None
        item = self.scanner.incomplete_file()
        fault.detail = f"{item.path.name}, {item.size} bytes, never finished"

    def _inject_unreadable_folder(self, fault: Fault) -> None:
        """The folder being written is made mode 000 (an operator's chmod, a mount's export changed), then restored.

        The scanner (this process, with its rights) writes on into it; the bridge cannot list or read
        it until it is restored, and must then push every scan of it, without restarts.
        """
        assert self.scanner is not None
        bridge = self._bridge_pid()
        if processes.reads_anything(bridge):
            self.violation(f"the bridge (pid {bridge}) can read past permission bits: unreadable-folder tests nothing")
        folder = self.scanner.current_folder()
        mode = folder.stat().st_mode & 0o7777
        folder.chmod(0)
        try:
            time.sleep(self.p.unreadable_folder_s)
        finally:
            folder.chmod(mode)
        fault.detail = f"{folder.name}/ mode 000 for {self.p.unreadable_folder_s:g} s, then {mode:o} again"
        moved_on = self.scanner.current_folder()
        if moved_on != folder:
            # The scanner's midnight came meanwhile: its new folder was readable, the data stayed fresh.
            fault.detail += f"; the scanner moved on to {moved_on.name}/ at its midnight"
            fault.scanner_moved_on = True

    # -- recovery and verdicts -------------------------------------------------------------------------

    def _hidden(self, fault: Fault) -> list[Written]:
        assert self.scanner is not None and fault.end is not None
        return [w for w in self.scanner.ledger.complete_scans() if fault.start <= w.visible_at <= fault.end]

    def _recover(self, fault: Fault) -> None:
        assert self.referee is not None and fault.end is not None
        self.in_recovery = True
        try:
            hidden = self._hidden(fault)
            fault.hidden = len(hidden)
            fresh = self._wait_fresh(fault.end, self.p.settle_timeout_s, f"{fault.kind} #{fault.index} ended")
            fault.fresh_s = fresh
            deadline = time.monotonic() + self.p.settle_timeout_s
            while time.monotonic() < deadline:
                seen = self.referee.seen
                if all(w.key in seen for w in hidden):
                    last = max((seen[w.key] for w in hidden), default=fault.end)
                    fault.caught_up_s = max(0.0, last - fault.end)
                    break
                time.sleep(0.2)
            # The daemon's verdicts come a check or two after the fault: give them time to arrive.
            time.sleep(min(self.p.health_interval_s + 1, 6))
            self._judge_verdicts(fault)
        finally:
            self.in_recovery = False

    def _judge_verdicts(self, fault: Fault) -> None:
        assert self.daemon is not None and fault.end is not None
        with self.daemon._lock:
            self.daemon._read()
        window_end = time.time()
        restarts = [s for s in self.daemon.starts if not s.first and fault.start <= s.at <= window_end]
        verdicts = [v for v in self.daemon.verdicts if fault.start <= v.at <= window_end]
        statuses = sorted({v.status + (f" ({v.cause})" if v.cause else "") for v in verdicts})
        if statuses:
            fault.notes.append("verdicts: " + ", ".join(statuses))
        unneeded = [s for s in restarts if not self._restart_needed(s)]
        fault.unneeded_restarts = len(unneeded)
        if fault.kind == "kill-bridge" and not restarts:
            self.violation("the killed bridge was not restarted by the daemon")
        if fault.kind == "freeze-member":
            if unneeded:
                self.violation(f"a frozen member led to {len(unneeded)} bridge restart(s): {self._reasons(fault)}")
            # With one member the daemon's own read hangs too; with two it may well reach the other.
            if self.p.members == 1 and not any(v.status == "error" for v in verdicts):
                self.violation(f"a member frozen {self.p.freeze_member_s:g} s was never reported 'error' (verdicts: {', '.join(statuses) or 'none'})")
        elif fault.kind == "pause-scanner":
            if unneeded:
                self.violation(f"a paused scanner led to {len(unneeded)} bridge restart(s): {self._reasons(fault)}")
            if not any(v.status == "stale" and v.cause == StaleCause.SCANNER_SILENT.value for v in verdicts):
                self.violation(f"a scanner paused {self.p.pause_scanner_s:g} s was never reported 'stale (scanner silent)' (verdicts: {', '.join(statuses) or 'none'})")
        elif fault.kind == "unreadable-folder":
            if unneeded:
                self.violation(f"an unreadable folder led to {len(unneeded)} bridge restart(s): {self._reasons(fault)}")
            if not fault.scanner_moved_on and not any(
                v.status == "stale" and v.cause == StaleCause.DISK_UNREADABLE.value for v in verdicts
            ):
                self.violation(f"a folder unreadable for {self.p.unreadable_folder_s:g} s was never reported "
                               f"'stale ({StaleCause.DISK_UNREADABLE.value})' (verdicts: {', '.join(statuses) or 'none'})")
        elif unneeded:
            self.violation(f"{len(unneeded)} bridge restart(s) nothing called for during {fault.kind}: {self._reasons(fault)}")

    def _restart_needed(self, start: processes.BridgeStart) -> bool:
        """A restart is wanted when the bridge before it (same daemon) was one the harness killed or froze."""
        assert self.daemon is not None
        before = [s for s in self.daemon.starts if s.daemon == start.daemon and s.at <= start.at and s.pid != start.pid]
        return bool(before) and before[-1].pid in self.faulted_pids

    def _reasons(self, fault: Fault) -> str:
        assert self.daemon is not None
        reasons = [r for at, r in self.daemon.restart_reasons if at >= fault.start]
        return "; ".join(reasons[-3:]) or "no reason logged"

    # -- continuous checks ----------------------------------------------------------------------------

    def _sample_loop(self) -> None:
        tick = 0
        while not self._stop.wait(1.0):
            tick += 1
            try:
                self._sample(tick)
            except Exception as exc:  # noqa: BLE001 - a sampling hiccup must not end the run
                self.log(f"sampler: {type(exc).__name__}: {exc}")

    def _sample(self, tick: int) -> None:
        assert self.referee is not None and self.scanner is not None and self.daemon is not None
        found = processes.bridges(self.run_id)
        for proc in found:
            self.remember(proc.pid, "bridge")
        if len(found) > 1:
            self.violation(f"{len(found)} bridges at once: pids {sorted(p.pid for p in found)}")
        self.max_bridges = max(self.max_bridges, len(found))
        key = self.referee.latest_key_now()
        scan = self.scanner.ledger.scans.get(key) if key is not None else None
        if scan is not None:
            staleness = time.time() - scan.timestamp.timestamp()
            self.worst_staleness = max(self.worst_staleness, staleness)
            fault = self.current_fault()
            calm = fault is None or (fault.end is not None and not self.in_recovery)
            if calm and not self.scanner.paused:
                self.worst_staleness_calm = max(self.worst_staleness_calm, staleness)
        self._check_overdue()
        self.referee.check_unknown()
        if tick % 10 == 0:
            for name, proc_list in (("daemon", [self.daemon.pid]), ("bridge", [p.pid for p in found])):
                for pid in proc_list:
                    if pid is None:
                        continue
                    try:
                        proc = psutil.Process(pid)
                        times = proc.cpu_times()
                        self.samples[name].append(Sample(time.time(), pid, proc.memory_info().rss, times.user + times.system))
                    except psutil.Error:
                        continue

    def _due(self, scan: Written, now: float) -> float | None:
        """When ``scan`` must be in history: the bound after the last fault that overlapped it; None while one is on."""
        due = scan.visible_at + self.p.bound_s
        for fault in reversed(self.faults):
            if fault.end is None:
                if fault.start <= now:
                    return None
                continue
            if fault.end >= scan.visible_at:
                due = max(due, fault.end + self.p.bound_s)
            else:
                break
        return due

    def _check_overdue(self) -> None:
        assert self.referee is not None and self.scanner is not None
        now = time.time()
        seen = self.referee.seen
        for scan in self.scanner.ledger.complete_scans():
            if scan.key in seen or scan.key in self._overdue_reported:
                continue
            due = self._due(scan, now)
            if due is not None and now > due:
                self._overdue_reported.add(scan.key)
                self.violation(f"scan #{scan.number} ({scan.path.name}, written {datetime.fromtimestamp(scan.visible_at, UTC):%H:%M:%S}) not in history {self.p.bound_s:g} s after the fault that hid it ended")

    # -- the end --------------------------------------------------------------------------------------

    def _final_drain(self) -> None:
        assert self.scanner is not None and self.referee is not None
        self.scanner.stop()
        self.log("scanner stopped; waiting for every scan to be in history")
        deadline = time.monotonic() + self.p.settle_timeout_s
        while time.monotonic() < deadline:
            self.referee.poll_once()
            if all(w.key in self.referee.seen for w in self.scanner.ledger.complete_scans()):
                break
            time.sleep(1.0)
        self._check_overdue()
        self.referee.check_unknown(older_than_s=0)
        self.referee.check_latest_known()
        changed = self.scanner.changed_files()
        for line in changed[:20]:
            self.violation(f"a scanner's file was changed: {line}")
        for item in self.scanner.ledger.complete_scans():
            if item.key not in self.referee.seen:
                fault = next((f for f in reversed(self.faults) if f.start <= item.visible_at), None)
                if fault is not None and fault.end is not None and item.visible_at <= fault.end:
                    fault.missing += 1

    def _stop_everything(self) -> None:
        if self.daemon is not None:
            code = self.daemon.stop()
            self.log(f"daemon stopped (exit {code})")
            self.daemon.close()
            if self.receiver is not None:
                self._judge_alerts()
        if self.scanner is not None:
            self.scanner.stop()
        if self.referee is not None:
            self.referee.close()
        if self.server is not None:
            self.server.stop()
        if self.cluster is not None:
            self.cluster.stop()
        # Nothing of this run may survive it: by pid (every process it started or saw) and by its mark.
        deadline = time.monotonic() + 15
        left: list[int] = []
        while time.monotonic() < deadline:
            left = sorted(set(processes.still_alive(self.pids)) | {p.pid for p in processes.run_processes(self.run_id)})
            if not left:
                break
            time.sleep(0.5)
        if left:
            names = ", ".join(f"{pid} ({self.pid_names.get(pid, '?')})" for pid in left)
            self.violation(f"processes left behind: {names}")
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
        os.environ.pop(RUN_VARIABLE, None)
        os.environ.pop("PREFECT_API_URL", None)

    def _judge_alerts(self) -> None:
        """Wait for the alerts still on their way (none new for 10 s, at most 60 s), then count them."""
        from .alerting import judge

        assert self.daemon is not None
        deadline = time.monotonic() + 60
        count, quiet_since = -1, time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - quiet_since < 10:
            if len(self.receiver.received) != count:
                count, quiet_since = len(self.receiver.received), time.monotonic()
            time.sleep(0.5)
        self.alerts = judge(self.daemon.verdicts, list(self.receiver.received))
        for line in self.alerts["duplicates"]:
            self.violation(f"an alert came twice for one state change: {line}")
        for key, extra in self.alerts["more_than_expected"].items():
            self.violation(f"{extra} more '{key}' alert(s) than state changes")
        self.receiver.close()

    def cleanup(self) -> None:
        """Remove the run's folder (it holds the scans, logs and databases) unless asked to keep it."""
        if self._owned_dir and not self.o.keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    # -- figures --------------------------------------------------------------------------------------

    def figures(self) -> dict[str, Any]:
        from .report import figures

        return figures(self)


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None
