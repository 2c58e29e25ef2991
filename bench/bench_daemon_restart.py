"""Restart after ``kill -9``: the Prefect daemon (``python -m scan_bridge.daemon_flow``) against supervisord.

    python bench/bench_daemon_restart.py            # the real figures: 20 kills per setup (~15 min)
    python bench/bench_daemon_restart.py --quick    # smoke run: 3 kills per setup (~3 min)

Setups (all in one run, interleaved in ``--rounds`` blocks so machine noise hits each alike):

* ``daemon d=0``: the daemon with ``SCAN_BRIDGE_RESTART_DELAY_S=0`` (the mechanism's own cost);
* ``supervisord``: ``supervisord -n`` with ``autorestart=true``, ``startsecs=1`` (it restarts a
  process that was RUNNING at once; its back-off only applies to a process that dies within
  ``startsecs``, which ours never does here);
* ``daemon d=5``: the daemon with its default delay (5 s);
* ``supervisord +sleep 5``: supervisord has no restart-delay option, so its command is
  ``sh -c 'sleep 5; exec python -m scan_bridge.service ...'``: the same 5 s before the bridge
  starts (its "pid" mark is then the shell's spawn, before the sleep, so it is not comparable).

Everything real: one Hazelcast member from the jar, a Prefect server (``prefect server start``,
its own ``PREFECT_HOME`` and SQLite DB) for the daemon, the bridge as the supervisors start it
(``python -m scan_bridge.service --log-format json``), and a scanner (``python -m
scan_bridge.simulate``, 2 scans/s of 100 assets) writing into the watched folder, which holds
``--prefill`` older scans (default 1,000 = the bridge's retention, so every restart reconciles a
full window).

Per kill, times from the ``kill -9`` (SIGKILL sent by this process):

* **pid**: the supervisor reported the new bridge process (daemon: its ``Bridge started (pid N)``
  line; supervisord: ``spawned: 'bridge' with pid N``), as read by this process from its output;
* **watching**: the new bridge's ``Watching ...`` line arrived through the supervisor's output
  (it is logged after the bridge connected to Hazelcast, wrote its heartbeat, reconciled the
  folder against the history map and started its watcher; this is "running" in this report);
* **fresh**: the history map received (entry listener) a scan number higher than the newest scan
  on disk at the kill, i.e. a scan written *after* the kill is readable; the scanner's 0.5 s
  period is part of this figure.

Before each kill the bridge has logged ``Watching``, fresh data has arrived, and 2–3 s (random)
have passed. Budget: ``SCAN_BRIDGE_MAX_RESTARTS=1000``.

This module also holds the plumbing that ``bench_daemon_cpu.py`` and ``bench_daemon_db.py`` use.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import KeyEvents, client, hazelcast_member, log, md_table, median, prefect_server, print_header  # noqa: E402

from scan_bridge.simulate import next_scan_number  # noqa: E402

VENV_BIN = Path(sys.executable).parent
PYTHON = sys.executable
ROOT = Path(__file__).resolve().parents[1]


def _kill_group(proc: subprocess.Popen[Any], sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def stop_process(proc: subprocess.Popen[Any] | None, grace_s: float = 30.0) -> int | None:
    """SIGTERM to the process (it stops its own children), then SIGKILL to its whole group."""
    if proc is None:
        return None
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            log(f"pid {proc.pid} ignored SIGTERM for {grace_s:g} s; killing its group")
    _kill_group(proc)  # leftovers in its session (it was started with start_new_session)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)
    return proc.returncode


# -- output of a child, timestamped as it arrives ------------------------------------------------------


class LineTap:
    """Reads a child's merged stdout/stderr in a thread; every line with ``time.perf_counter()`` at arrival."""

    def __init__(self, pipe: Any, log_path: Path) -> None:
        self.lines: list[tuple[float, str]] = []
        self._cond = threading.Condition()
        self._log = open(log_path, "a", encoding="utf-8", errors="replace")
        self._thread = threading.Thread(target=self._run, args=(pipe,), daemon=True, name="line-tap")
        self._thread.start()

    def _run(self, pipe: Any) -> None:
        for raw in iter(pipe.readline, b""):
            now = time.perf_counter()
            text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            with self._cond:
                self.lines.append((now, text))
                self._cond.notify_all()
            self._log.write(f"{now:.4f} {text}\n")
        self._log.flush()

    def mark(self) -> int:
        with self._cond:
            return len(self.lines)

    def wait_for(self, pattern: re.Pattern[str], start: int = 0, timeout: float = 60.0) -> tuple[float, re.Match[str], int]:
        """First line at index >= start matching ``pattern``: (arrival time, match, index)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            index = start
            while True:
                while index < len(self.lines):
                    at, text = self.lines[index]
                    match = pattern.search(text)
                    if match:
                        return at, match, index
                    index += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    tail = " | ".join(t for _, t in self.lines[-8:])
                    raise TimeoutError(f"no line matching {pattern.pattern!r} within {timeout:g} s; last lines: {tail}")
                self._cond.wait(min(left, 1.0))

    def last(self, pattern: re.Pattern[str]) -> tuple[int, re.Match[str]] | None:
        """The newest line matching ``pattern``: (index, match)."""
        with self._cond:
            for index in range(len(self.lines) - 1, -1, -1):
                match = pattern.search(self.lines[index][1])
                if match:
                    return index, match
        return None

    def count(self, pattern: re.Pattern[str], start: int = 0, end: int | None = None) -> int:
        with self._cond:
            return sum(1 for _, text in self.lines[start:end] if pattern.search(text))

    def close(self) -> None:
        self._thread.join(5)
        self._log.close()


# -- the scanner ------------------------------------------------------------------------------------------


class Scanner:
    """``python -m scan_bridge.simulate`` writing into the watched folder (after an optional fast prefill)."""

    def __init__(self, out: Path, rate: float = 2.0, assets: int = 100, log_path: Path | None = None) -> None:
        self.out = out
        self.rate = rate
        self.assets = assets
        self.log_path = log_path or out.parent / "simulate.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def prefill(self, count: int) -> None:
        if count <= 0:
            return
        started = time.monotonic()
        subprocess.run(
            [PYTHON, "-m", "scan_bridge.simulate", "--out", str(self.out), "--rate", "10000", "--assets",
             str(self.assets), "--count", str(count), "--seed", "1"],
            check=True, stdout=subprocess.DEVNULL, timeout=600,
        )
        log(f"prefilled {count} scans in {time.monotonic() - started:.1f} s")

    def start(self) -> Scanner:
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [PYTHON, "-m", "scan_bridge.simulate", "--out", str(self.out), "--rate", f"{self.rate:g}", "--assets",
             str(self.assets), "--seed", "2"],
            stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        return self

    def newest_number(self) -> int:
        return next_scan_number(self.out) - 1

    def stop(self) -> None:
        stop_process(self.proc, grace_s=10)
        with contextlib.suppress(Exception):
            self._log.close()


# -- the supervisors ---------------------------------------------------------------------------------------

DAEMON_PID = re.compile(r"Bridge started \(pid (\d+)\)")
DAEMON_WATCHING = re.compile(r"\[Bridge\] Watching ")
DAEMON_HEALTH = re.compile(r"Health: ")
SUPD_PID = re.compile(r"spawned: 'bridge' with pid (\d+)")
SUPD_WATCHING = re.compile(r'"message":"Watching ')


class Supervised:
    """A supervisor process (the daemon or supervisord) whose output we tap."""

    name: str
    pid_pattern: re.Pattern[str]
    watching_pattern: re.Pattern[str]
    proc: subprocess.Popen[bytes] | None = None
    tap: LineTap | None = None

    def _popen(self, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.proc = subprocess.Popen(
            argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, cwd=str(ROOT),
        )
        assert self.proc.stdout is not None
        self.tap = LineTap(self.proc.stdout, log_path)

    def stop(self) -> None:
        stop_process(self.proc, grace_s=30)
        if self.tap is not None:
            self.tap.close()


class DaemonProc(Supervised):
    """``python -m scan_bridge.daemon_flow`` against the Prefect server in ``server_env``."""

    pid_pattern = DAEMON_PID
    watching_pattern = DAEMON_WATCHING

    def __init__(self, name: str, bridge_env: dict[str, str], server_env: dict[str, str], daemon_env: dict[str, str],
                 log_path: Path) -> None:
        self.name = name
        self.env = {
            **os.environ, **server_env, **bridge_env, **daemon_env,
            "COLUMNS": "1000",  # Prefect's rich console wraps at 80 columns on a pipe otherwise
            "PYTHONUNBUFFERED": "1",
        }
        self.log_path = log_path

    def start(self) -> DaemonProc:
        self._popen([PYTHON, "-m", "scan_bridge.daemon_flow"], self.env, self.log_path)
        return self


class SupervisordProc(Supervised):
    """``supervisord -n -c conf`` with one ``[program:bridge]``."""

    pid_pattern = SUPD_PID
    watching_pattern = SUPD_WATCHING

    def __init__(self, name: str, bridge_env: dict[str, str], workdir: Path, log_path: Path, pre_sleep_s: float = 0.0) -> None:
        self.name = name
        self.workdir = workdir
        self.log_path = log_path
        workdir.mkdir(parents=True, exist_ok=True)
        bridge = shlex.join([PYTHON, "-m", "scan_bridge.service", "--log-format", "json"])
        command = f"/bin/sh -c {shlex.quote(f'sleep {pre_sleep_s:g}; exec {bridge}')}" if pre_sleep_s > 0 else bridge
        environment = ",".join(f'{k}="{v}"' for k, v in {**bridge_env, "PYTHONUNBUFFERED": "1"}.items())
        self.conf = workdir / "supervisord.conf"
        self.conf.write_text(
            f"""[supervisord]
nodaemon=true
logfile=/dev/null
logfile_maxbytes=0
pidfile={workdir}/supervisord.pid
loglevel=info

[program:bridge]
command={command}
directory={ROOT}
environment={environment}
autorestart=true
startsecs=1
startretries=1000
stopasgroup=true
killasgroup=true
stopwaitsecs=10
stdout_logfile=/dev/stdout
stdout_logfile_maxbytes=0
redirect_stderr=true
"""
        )

    def start(self) -> SupervisordProc:
        self._popen([str(VENV_BIN / "supervisord"), "-n", "-c", str(self.conf)], dict(os.environ), self.log_path)
        return self


# -- one world: member, maps, folder, scanner ---------------------------------------------------------------


@dataclass
class World:
    workdir: Path
    watch_dir: Path
    bridge_env: dict[str, str]
    history_map: str
    scanner: Scanner
    hz: Any
    events: KeyEvents


@contextlib.contextmanager
def world(workdir: Path, prefill: int, rate: float = 2.0, assets: int = 100) -> Iterator[World]:
    """A member, a watched folder (prefilled), a scanner writing into it, and a listener on the history map."""
    with hazelcast_member(workdir, heap="1g") as cluster:
        watch_dir = workdir / "scans"
        watch_dir.mkdir()
        suffix = uuid.uuid4().hex[:8]
        history_map = f"H_{suffix}"
        bridge_env = {
            "SCAN_BRIDGE_WATCH_DIR": str(watch_dir),
            "SCAN_BRIDGE_HAZELCAST_MEMBERS": ",".join(cluster.members),
            "SCAN_BRIDGE_HAZELCAST_CLUSTER_NAME": cluster.cluster_name,
            "SCAN_BRIDGE_FEATURES_MAP": f"F_{suffix}",
            "SCAN_BRIDGE_HISTORY_MAP": history_map,
        }
        scanner = Scanner(watch_dir, rate=rate, assets=assets, log_path=workdir / "simulate.log")
        scanner.prefill(prefill)
        hz = client(cluster)
        events = KeyEvents(hz, history_map)
        scanner.start()
        try:
            yield World(workdir, watch_dir, bridge_env, history_map, scanner, hz, events)
        finally:
            scanner.stop()
            events.close()
            hz.shutdown()


def _fresh_after(events: KeyEvents, newest_before: int) -> float | None:
    times = [t for key, t in events.seen.items() if key > newest_before]
    return min(times) if times else None


def wait_fresh(events: KeyEvents, newest_before: int, timeout: float) -> float:
    if not events.wait(lambda seen: any(key > newest_before for key in seen), timeout):
        raise TimeoutError(f"no scan newer than #{newest_before} reached the history map within {timeout:g} s")
    fresh = _fresh_after(events, newest_before)
    assert fresh is not None
    return fresh


def is_bridge(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"scan_bridge.service" in f.read()
    except OSError:
        return False


# -- the restart benchmark --------------------------------------------------------------------------------


@dataclass
class Kill:
    setup: str
    round: int
    pid_s: float | None
    watching_s: float
    fresh_s: float


@dataclass
class Setup:
    name: str
    make: Callable[[World, Path], Supervised]
    kills: list[Kill] = field(default_factory=list)
    startup_s: list[float] = field(default_factory=list)
    extra_starts: int = 0  # bridge starts nobody asked for (beyond one per kill)


def run_block(setup: Setup, w: World, round_no: int, kills: int, timeout_s: float) -> None:
    sup = setup.make(w, w.workdir / f"{setup.name.replace(' ', '_').replace('+', '').replace('=', '')}-{round_no}.log")
    started = time.perf_counter()
    sup.start()
    assert sup.tap is not None
    try:
        newest = w.scanner.newest_number()
        at_pid, match, index = sup.tap.wait_for(sup.pid_pattern, 0, timeout_s)
        pid = int(match.group(1))
        at_watch, _, index = sup.tap.wait_for(sup.watching_pattern, index, timeout_s)
        wait_fresh(w.events, newest, timeout_s)
        setup.startup_s.append(at_watch - started)
        log(f"{setup.name} round {round_no}: bridge pid {pid} watching {at_watch - started:.1f} s after start")
        first_index = index
        for k in range(kills):
            time.sleep(2.0 + random.random())
            # The newest bridge, once it is watching (a supervisor may have restarted it on its own).
            while True:
                last = sup.tap.last(sup.pid_pattern)
                assert last is not None
                index, match = last
                pid = int(match.group(1))
                sup.tap.wait_for(sup.watching_pattern, index, timeout_s)
                if sup.tap.last(sup.pid_pattern)[0] == index and is_bridge(pid):  # type: ignore[index]
                    break
                time.sleep(0.5)
            mark = sup.tap.mark()
            newest = w.scanner.newest_number()
            t_kill = time.perf_counter()
            os.kill(pid, signal.SIGKILL)
            at_pid, match, index = sup.tap.wait_for(sup.pid_pattern, mark, timeout_s)
            new_pid = int(match.group(1))
            at_watch, _, _ = sup.tap.wait_for(sup.watching_pattern, index, timeout_s)
            at_fresh = wait_fresh(w.events, newest, timeout_s)
            record = Kill(setup.name, round_no, at_pid - t_kill, at_watch - t_kill, at_fresh - t_kill)
            setup.kills.append(record)
            log(f"  kill {k + 1}/{kills}: pid {pid}->{new_pid}  pid {record.pid_s:.3f}  watching {record.watching_s:.3f}  "
                f"fresh {record.fresh_s:.3f} s")
        time.sleep(3.0)
        starts = sup.tap.count(sup.pid_pattern, first_index)  # after the first bridge's Watching line
        if starts != kills:
            log(f"  {setup.name}: {starts - kills} bridge start(s) beyond one per kill")
        setup.extra_starts += starts - kills
    finally:
        sup.stop()


def _fmt(value: float) -> str:
    return f"{value:.2f}"


def restart_report(setups: list[Setup], args: argparse.Namespace) -> str:
    rows = []
    for s in setups:
        pid = [k.pid_s for k in s.kills if k.pid_s is not None]
        watch = [k.watching_s for k in s.kills]
        fresh = [k.fresh_s for k in s.kills]
        if not s.kills:
            rows.append([s.name, 0, "—", "—", "—", "—", "—", "—", "—"])
            continue
        pid_cell = (f"{_fmt(median(pid))} / {_fmt(max(pid))}" if "sleep" not in s.name else
                    f"({_fmt(median(pid))} / {_fmt(max(pid))})")
        rows.append([
            s.name, len(s.kills), pid_cell,
            f"{_fmt(median(watch))} / {_fmt(max(watch))}",
            f"{_fmt(median(fresh))} / {_fmt(max(fresh))}",
            _fmt(median([w - p for w, p in zip(watch, pid)])),
            _fmt(min(watch)),
            _fmt(median(s.startup_s)) if s.startup_s else "—",
            s.extra_starts,
        ])
    out = [md_table(["setup", "kills", "new pid s (median / worst)", "Watching s (median / worst)",
                     "fresh data s (median / worst)", "pid→Watching s (median)", "Watching best s", "cold start→Watching s",
                     "unasked restarts"],
                    rows)]
    by = {s.name: s for s in setups}

    def ratio(a: str, b: str, what: str) -> str | None:
        if a not in by or b not in by or not by[a].kills or not by[b].kills:
            return None
        va = [getattr(k, what) for k in by[a].kills]
        vb = [getattr(k, what) for k in by[b].kills]
        return f"{median(va) / median(vb):.2f} (worst {max(va) / max(vb):.2f})"

    ratios = []
    for a, b in (("daemon d=0", "supervisord"), ("daemon d=5", "supervisord +sleep 5"), ("daemon d=5", "supervisord")):
        cells = [ratio(a, b, "pid_s") if "sleep" not in b else "—", ratio(a, b, "watching_s"), ratio(a, b, "fresh_s")]
        if cells[1] is not None:
            ratios.append([f"{a} / {b}", *(c or "—" for c in cells)])
    if ratios:
        out += ["", md_table(["ratio of medians", "new pid", "Watching", "fresh data"], ratios)]
    return "\n".join(out)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 kills per setup, 1 round, prefill 100")
    parser.add_argument("--kills", type=int, default=20, help="kills per setup (default 20)")
    parser.add_argument("--rounds", type=int, default=2, help="blocks the kills are split into, setups interleaved")
    parser.add_argument("--prefill", type=int, default=1000, help="scans on disk before the start (default 1000)")
    parser.add_argument("--setups", default="daemon d=0,supervisord,daemon d=5,supervisord +sleep 5")
    parser.add_argument("--timeout", type=float, default=120.0, help="per wait (s)")
    parser.add_argument("--json-out", type=Path, help="write every kill's figures here")
    args = parser.parse_args()
    if args.quick:
        args.kills, args.rounds, args.prefill = 3, 1, 100
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"

    workdir = Path(tempfile.mkdtemp(prefix="bench-daemon-restart-"))
    log(f"workdir {workdir}")
    wanted = [name.strip() for name in args.setups.split(",")]
    with world(workdir, args.prefill) as w, prefect_server(workdir) as server:
        common_daemon = {"SCAN_BRIDGE_MAX_RESTARTS": "1000", "PREFECT_LOGGING_LEVEL": "INFO"}
        factories: dict[str, Callable[[World, Path], Supervised]] = {
            "daemon d=0": lambda w, p: DaemonProc("daemon d=0", w.bridge_env, server.env(),
                                                  {**common_daemon, "SCAN_BRIDGE_RESTART_DELAY_S": "0"}, p),
            "daemon d=5": lambda w, p: DaemonProc("daemon d=5", w.bridge_env, server.env(), common_daemon, p),
            "supervisord": lambda w, p: SupervisordProc("supervisord", w.bridge_env, w.workdir / "supd", p),
            "supervisord +sleep 5": lambda w, p: SupervisordProc("supervisord +sleep 5", w.bridge_env,
                                                                 w.workdir / "supd-sleep", p, pre_sleep_s=5.0),
        }
        setups = [Setup(name, factories[name]) for name in wanted]
        per_round = [args.kills // args.rounds + (1 if r < args.kills % args.rounds else 0) for r in range(args.rounds)]
        for round_no, kills in enumerate(per_round, 1):
            for setup in setups:
                run_block(setup, w, round_no, kills, args.timeout)
    print_header("Bridge restart after kill -9: the Prefect daemon vs supervisord")
    print(f"{args.kills} kills per setup in {args.rounds} interleaved round(s); member heap 1g; scanner 2 scans/s of 100 assets; "
          f"{args.prefill} scans on disk before the start. Times from the SIGKILL. Cells: median / worst.\n")
    print(restart_report(setups, args))
    if args.json_out:
        args.json_out.write_text(json.dumps([k.__dict__ for s in setups for k in s.kills], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
