"""A busy bridge is never taken for a stuck one, and a stuck one still is (issue 16), against a real
member, a real bridge and the daemon's real health check.

The work is made long without any hook in the product: thousands of small scans to catch up, a
heartbeat every 0.1 s and a health check that calls a heartbeat older than ``BOUND_S`` stuck. Before
the bridge beat between files, its heartbeat aged for the whole catch-up (several seconds here).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from scan_bridge.health import FreshnessChecker
from scan_bridge.settings import DaemonSettings

from .support import BridgeRunner, member_settings, wait_for, write_many_scans

FILES = 30000  # long enough to outlast the bounds on a quiet machine too (12,000 took 4.6 s there)
HEARTBEAT_INTERVAL_S = 0.1
BOUND_S = 1.5  # the health check's heartbeat_stale_after_s in this test: 15 x the interval, for a loaded machine


@pytest.fixture
def scans(tmp_path):
    folder = tmp_path / "scans" / "2026-03-24"
    folder.mkdir(parents=True)
    write_many_scans(folder, FILES, time.time() - 60)  # complete for the health check (newer_file_grace_s), as after an outage
    return folder.parent


def checker_for(env: dict[str, str], watch_dir: Path) -> FreshnessChecker:
    settings = DaemonSettings(
        **member_settings(env),
        watch_dir=watch_dir,
        heartbeat_stale_after_s=BOUND_S,
        newer_file_grace_s=1.0,
        health_timeout_s=10.0,
    )
    return FreshnessChecker(settings)


def caught_up(bridge: BridgeRunner) -> bool:
    return any(m.startswith("[OK] Caught up") for m in bridge.messages())


def test_a_long_catch_up_keeps_beating_and_a_sigstopped_bridge_still_looks_stuck(tmp_path, scans, env, view):
    env = {
        **env,
        "SCAN_BRIDGE_RETENTION": str(FILES),
        "SCAN_BRIDGE_HEARTBEAT_INTERVAL_S": str(HEARTBEAT_INTERVAL_S),
    }
    bridge = BridgeRunner(scans, env, tmp_path / "bridge.log").start()
    checker = checker_for(env, scans)
    assert bridge.proc is not None
    pid = bridge.proc.pid
    try:
        wait_for(lambda: (view.heartbeat() or {}).get("pid") == pid, 60, "the bridge's first heartbeat")
        started = time.monotonic()

        def watch(until, what: str) -> tuple[float, int, set[bool]]:
            """Follow the heartbeat and the health check while the bridge works; the oldest heartbeat seen."""
            oldest, checks, busy_seen = 0.0, 0, set()
            deadline = time.monotonic() + 120
            while not until():
                assert time.monotonic() < deadline, f"timed out waiting for {what}"
                beat = view.heartbeat() or {}
                age = time.time() - beat["epoch"]
                assert age <= BOUND_S, f"heartbeat {age:.2f} s old while the bridge was working ({what})"
                oldest = max(oldest, age)
                busy_seen.add(bool(beat.get("busy")))
                # From the first busy heartbeat on (the one on connecting is), no check may say stuck.
                if True in busy_seen:
                    report = checker.check(bridge_running=True)
                    checks += 1
                    assert not report.bridge_stuck, f"a busy bridge taken for a stuck one: {report.message}"
                time.sleep(0.05)
            return oldest, checks, busy_seen

        # Half the catch-up: the bridge works without a break, and beats.
        oldest, checks, busy_seen = watch(
            lambda: (view.heartbeat() or {}).get("pushed_total", 0) >= FILES // 2 or caught_up(bridge), "half the catch-up"
        )
        assert not caught_up(bridge), "the catch-up was too short to prove anything; raise FILES"
        worked = time.monotonic() - started
        assert worked > 2 * BOUND_S, f"half the catch-up took only {worked:.1f} s"
        assert oldest <= BOUND_S, f"heartbeat {oldest:.2f} s old while the bridge was working"
        assert True in busy_seen and checks >= 5

        # Frozen in the middle of the catch-up: the heartbeat ages, and the health check says stuck.
        os.kill(pid, signal.SIGSTOP)
        try:
            report = wait_for(
                lambda: (r := checker.check(bridge_running=True)).bridge_stuck and r.heartbeat_stale and r,
                30,
                "the SIGSTOPped bridge to look stuck",
            )
            assert f"(limit {BOUND_S:g}s)" in (report.stuck_reason or "")
            assert not report.heartbeat_busy
        finally:
            os.kill(pid, signal.SIGCONT)

        # Thawed: it beats again, and finishes the catch-up beating.
        wait_for(lambda: time.time() - (view.heartbeat() or {"epoch": 0})["epoch"] < HEARTBEAT_INTERVAL_S * 5, 30,
                 "a fresh heartbeat after SIGCONT")
        oldest_after, _, _ = watch(lambda: caught_up(bridge), "the end of the catch-up")
        print(f"half the catch-up took {worked:.1f} s; oldest heartbeat while working: {max(oldest, oldest_after):.2f} s (before SIGSTOP {oldest:.2f} s, "
              f"after SIGCONT {oldest_after:.2f} s); {checks} health checks before SIGSTOP, none stuck")
        oldest = oldest_after
        assert oldest <= BOUND_S, f"heartbeat {oldest:.2f} s old while the bridge was working"
        assert len(view.history_keys()) == FILES
        wait_for(lambda: (view.heartbeat() or {}).get("busy") is False, 10, "an idle heartbeat after the catch-up")
        assert bridge.stop() == 0
    finally:
        checker.close()
        bridge.stop()
