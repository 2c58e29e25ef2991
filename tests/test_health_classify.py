"""Every rule of the freshness classification, on hand-made observations (no cluster, no clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from scan_bridge.health import (
    DiskFile,
    FreshnessReport,
    HealthStatus,
    Observation,
    StaleCause,
    Thresholds,
    classify,
)

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
TH = Thresholds()  # 30 / 60 / heartbeat 15 / file grace 10 / skew tolerance 2


def iso(age_s: float) -> str:
    return (NOW - timedelta(seconds=age_s)).isoformat().replace("+00:00", "Z")


def latest(age_s: float, number: int = 4228, assets: int = 400) -> dict[str, Any]:
    return {
        "scan_number": number,
        "timestamp": iso(age_s),
        "asset_count": assets,
        "bridge": {"pushed_at": iso(age_s - 0.1), "file": f"/data/scan_{number:06d}.arrow", "lag_s": 0.1},
    }


def heartbeat(age_s: float, pid: int = 4321) -> dict[str, Any]:
    return {
        "time": iso(age_s),
        "epoch": NOW.timestamp() - age_s,
        "pid": pid,
        "host": "scanbox",
        "started_at": iso(3600),
        "last_scan_number": 4228,
        "connected": True,
        "pushed_total": 10,
        "rejected_total": 0,
    }


def disk(number: int | None, age_s: float, name: str | None = None, stamped_age_s: float | None = None) -> DiskFile:
    """A file written ``age_s`` ago; its scan stamped ``stamped_age_s`` ago (default: when it was written)."""
    name = name or (f"scan_{number:06d}_120000.arrow" if number is not None else "unnamed.arrow")
    stamped = NOW - timedelta(seconds=age_s if stamped_age_s is None else stamped_age_s)
    return DiskFile(path=f"/data/2024-05-01/{name}", scan_number=number, mtime=NOW.timestamp() - age_s, timestamp=stamped)


def observe(**fields: Any) -> Observation:
    fields.setdefault("checked_at", NOW)
    fields.setdefault("bridge_running", True)
    return Observation(**fields)


def healthy_obs(data_age: float = 3.0, **fields: Any) -> Observation:
    fields.setdefault("latest", latest(data_age))
    fields.setdefault("heartbeat", heartbeat(1.0))
    fields.setdefault("newest_file", disk(4228, data_age))
    fields.setdefault("newest_complete_file", disk(4228, data_age) if data_age >= 10 else None)
    return observe(**fields)


# -- statuses -----------------------------------------------------------------------------------------


def test_healthy() -> None:
    r = classify(healthy_obs(3.0), TH)
    assert r.status is HealthStatus.HEALTHY
    assert r.cause is None and not r.bridge_stuck
    assert r.data_age_s == pytest.approx(3.0)
    assert (r.scan_number, r.asset_count, r.heartbeat_pid, r.heartbeat_host) == (4228, 400, 4321, "scanbox")
    assert r.heartbeat_age_s == pytest.approx(1.0)
    assert r.bridge_lag_s == pytest.approx(0.1)
    assert r.newest_on_disk == 4228
    assert r.headline.startswith("HEALTHY: scan #4228 is 3.0s old (400 assets)")
    assert "heartbeat 1.0s old (pid 4321)" in r.message


@pytest.mark.parametrize(
    ("age", "status"),
    [
        (29.9, HealthStatus.HEALTHY),
        (30.0, HealthStatus.WARNING),
        (45.0, HealthStatus.WARNING),
        (60.0, HealthStatus.WARNING),
        (60.1, HealthStatus.STALE),
    ],
)
def test_age_boundaries(age: float, status: HealthStatus) -> None:
    # heartbeat fresh, nothing newer on disk: stale means the scanner is silent
    r = classify(healthy_obs(age), TH)
    assert r.status is status
    assert r.cause is (StaleCause.SCANNER_SILENT if status is HealthStatus.STALE else None)


def test_missing() -> None:
    r = classify(observe(latest=None, heartbeat=heartbeat(1.0)), TH)
    assert r.status is HealthStatus.MISSING
    assert not r.bridge_stuck
    assert "no latest_eigen_scan" in r.message


def test_missing_with_complete_file_on_disk_is_stuck_only_when_still_missing_at_the_next_check() -> None:
    # A member restarted alone comes back empty; the bridge refills it once its client reconnects.
    first = classify(observe(latest=None, heartbeat=None, newest_complete_file=disk(7, 30.0)), TH)
    assert first.status is HealthStatus.MISSING
    assert not first.bridge_stuck, "an empty cluster at one check is no sign of a stuck bridge"
    second = classify(observe(latest=None, heartbeat=heartbeat(1.0), newest_complete_file=disk(7, 30.0)), TH, previous=first)
    assert second.status is HealthStatus.MISSING
    assert second.bridge_stuck and second.unpushed_scan_number == 7
    assert "Hazelcast has no scan" in (second.stuck_reason or "")


def test_missing_without_heartbeat_is_not_stuck() -> None:
    """A bridge still starting has written neither key: not (yet) stuck."""
    r = classify(observe(latest=None, heartbeat=None), TH)
    assert r.status is HealthStatus.MISSING and not r.bridge_stuck


def test_error() -> None:
    r = classify(observe(hazelcast_error="Hazelcast not reachable at 127.0.0.1:1 (cluster 'dev') within 3s"), TH)
    assert r.status is HealthStatus.ERROR
    assert r.hazelcast_error and "127.0.0.1:1" in r.message
    assert not r.bridge_stuck


def test_down_wins_and_keeps_the_data() -> None:
    r = classify(healthy_obs(100.0, bridge_running=False, heartbeat=heartbeat(100.0)), TH)
    assert r.status is HealthStatus.DOWN
    assert r.bridge_running is False
    assert r.data_age_s == pytest.approx(100.0)
    assert not r.bridge_stuck and r.cause is None
    assert r.headline.startswith("DOWN: bridge process not running")


def test_down_with_hazelcast_error() -> None:
    r = classify(observe(bridge_running=False, hazelcast_error="not reachable"), TH)
    assert r.status is HealthStatus.DOWN
    assert r.hazelcast_error == "not reachable"


def test_unknown_bridge_state_is_never_down() -> None:
    r = classify(healthy_obs(3.0, bridge_running=None), TH)
    assert r.status is HealthStatus.HEALTHY


def test_unreadable_latest_is_error() -> None:
    assert classify(healthy_obs(latest="not json"), TH).status is HealthStatus.ERROR
    r = classify(healthy_obs(latest={"scan_number": 1, "timestamp": "yesterday"}), TH)
    assert r.status is HealthStatus.ERROR and "unreadable" in r.message


# -- clock skew ---------------------------------------------------------------------------------------


def test_clock_skew_is_a_warning() -> None:
    r = classify(healthy_obs(-42.0), TH)
    assert r.status is HealthStatus.WARNING
    assert r.clock_skew_s == pytest.approx(42.0)
    assert r.data_age_s == pytest.approx(-42.0)
    assert r.headline.startswith("WARNING: clock skew +42.0s")


def test_small_skew_is_jitter() -> None:
    r = classify(healthy_obs(-1.5), TH)
    assert r.status is HealthStatus.HEALTHY
    assert r.clock_skew_s == pytest.approx(1.5)


def test_clock_skew_still_detects_a_stuck_bridge() -> None:
    r = classify(healthy_obs(-42.0, heartbeat=heartbeat(40.0)), TH)
    assert r.status is HealthStatus.WARNING and r.bridge_stuck


# -- stuck or silent ----------------------------------------------------------------------------------


def test_stale_stuck_by_newer_file() -> None:
    obs = healthy_obs(
        90.0,
        heartbeat=heartbeat(1.0),
        newest_file=disk(4231, 2.0),
        newest_complete_file=disk(4230, 12.0),
    )
    r = classify(obs, TH)
    assert r.status is HealthStatus.STALE and r.cause is StaleCause.BRIDGE_STUCK
    assert r.bridge_stuck and not r.heartbeat_stale
    assert r.unpushed_scan_number == 4230
    assert r.unpushed_file and r.unpushed_file.endswith("scan_004230_120000.arrow")
    assert r.newest_on_disk == 4231  # the newest file, complete or not, for the operator
    assert r.newest_on_disk_age_s == pytest.approx(2.0)
    assert "Hazelcast has #4228" in r.message


def test_stale_stuck_by_old_heartbeat() -> None:
    r = classify(healthy_obs(90.0, heartbeat=heartbeat(40.0)), TH)
    assert r.status is HealthStatus.STALE and r.cause is StaleCause.BRIDGE_STUCK
    assert r.heartbeat_stale and r.unpushed_file is None
    assert "heartbeat 40.0s old (limit 15s)" in (r.stuck_reason or "")


def test_stale_stuck_by_missing_heartbeat() -> None:
    r = classify(healthy_obs(90.0, heartbeat=None), TH)
    assert r.cause is StaleCause.BRIDGE_STUCK and r.heartbeat_stale
    assert "no heartbeat while a scan exists" in (r.stuck_reason or "")


def test_heartbeat_without_epoch_uses_time() -> None:
    hb = heartbeat(40.0)
    del hb["epoch"]
    r = classify(healthy_obs(3.0, heartbeat=hb), TH)
    assert r.heartbeat_age_s == pytest.approx(40.0) and r.bridge_stuck


def test_stale_scanner_silent() -> None:
    r = classify(healthy_obs(90.0, newest_file=disk(4228, 95.0), newest_complete_file=disk(4228, 95.0)), TH)
    assert r.status is HealthStatus.STALE and r.cause is StaleCause.SCANNER_SILENT
    assert not r.bridge_stuck
    assert "nothing newer on disk" in r.message


def test_stale_scanner_silent_without_a_watch_dir() -> None:
    r = classify(healthy_obs(90.0, newest_file=None, newest_complete_file=None), TH)
    assert r.cause is StaleCause.SCANNER_SILENT and "no scan files on disk" in r.message


@pytest.mark.parametrize("newest", [None, disk(4228, 95.0)])
def test_stale_while_the_newest_folder_is_unreadable_is_not_scanner_silent(newest: Any) -> None:
    # Nobody can tell whether the scanner wrote on: the folder that would hold its scans is chmod 000
    # (or the listing hung). The report says so, once, with the folder; the policy restarts nothing.
    error = "/scans/2026-12-02 not readable (PermissionError: Permission denied)"
    r = classify(healthy_obs(90.0, newest_file=newest, newest_complete_file=newest, disk_error=error), TH)
    assert r.status is HealthStatus.STALE and r.cause is StaleCause.DISK_UNREADABLE and not r.bridge_stuck
    assert r.headline.startswith("STALE (disk not readable): ") and error in r.headline
    assert "scanner silent" not in r.headline and "nothing newer on disk" not in r.headline


def test_a_disk_error_does_not_hide_a_stuck_bridge() -> None:
    r = classify(healthy_obs(90.0, heartbeat=heartbeat(40.0), disk_error="/scans/x not readable (EACCES)"), TH)
    assert r.cause is StaleCause.BRIDGE_STUCK


def test_heartbeat_stale_while_data_fresh_is_stuck() -> None:
    """A SIGSTOPped bridge: its last push is still fresh, its heartbeat is not."""
    r = classify(healthy_obs(5.0, heartbeat=heartbeat(20.0)), TH)
    assert r.status is HealthStatus.HEALTHY
    assert r.bridge_stuck and r.heartbeat_stale
    assert "bridge stuck" in r.message


def test_newer_file_within_grace_is_not_stuck() -> None:
    """A file the scanner may still be writing (or the bridge is reading) does not count."""
    r = classify(healthy_obs(90.0, newest_file=disk(4229, 3.0), newest_complete_file=disk(4228, 95.0)), TH)
    assert r.cause is StaleCause.SCANNER_SILENT and not r.bridge_stuck


def test_newer_complete_file_while_data_fresh_is_stuck() -> None:
    r = classify(healthy_obs(12.0, newest_complete_file=disk(4229, 11.0)), TH)
    assert r.status is HealthStatus.HEALTHY and r.bridge_stuck and not r.heartbeat_stale


def test_file_without_number_cannot_be_compared() -> None:
    r = classify(healthy_obs(90.0, newest_complete_file=disk(None, 30.0)), TH)
    assert r.cause is StaleCause.SCANNER_SILENT


def test_older_file_on_disk_is_not_newer() -> None:
    """A file stamped before Hazelcast's scan is not something the bridge missed, whatever its number."""
    r = classify(healthy_obs(90.0, newest_complete_file=disk(5000, 30.0, stamped_age_s=100.0)), TH)
    assert r.cause is StaleCause.SCANNER_SILENT and not r.bridge_stuck


def test_lower_number_stamped_later_is_newer() -> None:
    """The scanner restarted its numbering (issue 14): #3 stamped after Hazelcast's #4228 is newer, and unpushed."""
    r = classify(healthy_obs(90.0, newest_complete_file=disk(3, 30.0)), TH)
    assert r.cause is StaleCause.BRIDGE_STUCK and r.unpushed_scan_number == 3


def test_thresholds_are_configurable() -> None:
    th = Thresholds(warn_after_s=5, stale_after_s=10, heartbeat_stale_after_s=3)
    assert classify(healthy_obs(6.0), th).status is HealthStatus.WARNING
    assert classify(healthy_obs(3.0, heartbeat=heartbeat(4.0)), th).bridge_stuck
    with pytest.raises(ValueError):
        Thresholds(warn_after_s=70, stale_after_s=60)


# -- progression --------------------------------------------------------------------------------------


def test_scans_per_minute() -> None:
    previous = classify(healthy_obs(3.0), TH)
    later = NOW + timedelta(seconds=30)
    obs = observe(
        checked_at=later,
        latest={**latest(0.0, number=4234), "timestamp": later.isoformat()},
        heartbeat={**heartbeat(0.0), "epoch": later.timestamp()},
    )
    r = classify(obs, TH, previous)
    assert r.scans_since_previous == 6
    assert r.scans_per_minute == pytest.approx(12.0)
    assert "+6 scans since last check (12.0/min)" in r.message


def test_no_progression_without_previous_or_with_reset_numbering() -> None:
    r = classify(healthy_obs(3.0), TH)
    assert r.scans_since_previous is None and r.scans_per_minute is None
    previous = FreshnessReport(
        status=HealthStatus.HEALTHY, detail="x", checked_at=NOW - timedelta(seconds=30), scan_number=9000,
        scan_timestamp=NOW - timedelta(seconds=33),
    )
    r = classify(healthy_obs(3.0), TH, previous)
    # #4228 stamped after #9000: the counter started again; the difference of numbers means nothing (issue 14).
    assert r.scans_since_previous is None and r.scans_per_minute is None
    assert r.counter_reset == "scanner counter started again: #9000 then #4228"
    assert "counter started again" in r.message and r.status is HealthStatus.HEALTHY


def test_counter_reset_from_the_heartbeat_is_in_the_report() -> None:
    reset = {"from_number": 20, "from_timestamp": iso(60), "to_number": 1, "to_timestamp": iso(50), "seen_at": iso(49)}
    r = classify(healthy_obs(3.0, heartbeat={**heartbeat(1.0), "counter_reset": reset}), TH)
    assert r.status is HealthStatus.HEALTHY and not r.bridge_stuck
    assert r.counter_reset and "#20" in r.counter_reset and "#1" in r.counter_reset
    assert "counter started again" in r.message
    # An hour later it stays in the report's field but leaves the message (a per-day counter resets nightly).
    old = {**reset, "seen_at": iso(3600)}
    r = classify(healthy_obs(3.0, heartbeat={**heartbeat(1.0), "counter_reset": old}), TH)
    assert r.counter_reset and "counter started again" not in r.message


def test_report_serialises_for_an_operator() -> None:
    r = classify(healthy_obs(90.0, heartbeat=heartbeat(40.0)), TH)
    data = r.model_dump(mode="json")
    assert data["status"] == "stale" and data["cause"] == "bridge stuck"
    assert str(r) == r.message and "\n" not in r.message


# -- a busy bridge (a heartbeat written between files of a long catch-up) -------------------------------


def busy_heartbeat(age_s: float) -> dict[str, Any]:
    return {**heartbeat(age_s), "busy": True}


def test_busy_bridge_with_newer_files_on_disk_is_not_stuck_and_not_restarted() -> None:
    """A catch-up of many files: Hazelcast's scan is old and newer files wait on disk, but the bridge beats."""
    from scan_bridge.restart_policy import Action, ProcessState, RestartBudget, decide

    obs = healthy_obs(90.0, heartbeat=busy_heartbeat(1.0), newest_file=disk(4900, 2.0), newest_complete_file=disk(4899, 12.0))
    r = classify(obs, TH)
    assert r.status is HealthStatus.STALE and r.cause is StaleCause.BRIDGE_BUSY
    assert not r.bridge_stuck and r.heartbeat_busy
    assert r.unpushed_file is None  # nothing for the restart-once-per-file rule to hold on to
    assert r.headline.startswith("STALE (bridge busy): ") and "; scan_004899_120000.arrow (#4899) complete on disk" in r.message
    assert "heartbeat 1.0s old (pid 4321), busy" in r.message
    budget = RestartBudget(max_restarts=3, window_s=600.0)
    decision = decide(ProcessState.RUNNING, r, budget=budget, now=1000.0)
    assert decision.action is Action.NONE and decision.reason.startswith("bridge busy catching up")
    # The same observation from a bridge that is not busy: stuck, restarted.
    idle = classify(healthy_obs(90.0, newest_file=disk(4900, 2.0), newest_complete_file=disk(4899, 12.0)), TH)
    assert idle.bridge_stuck and idle.cause is StaleCause.BRIDGE_STUCK
    assert decide(ProcessState.RUNNING, idle, budget=budget, now=1000.0).action is Action.RESTART


def test_a_bridge_waiting_on_a_silent_member_is_not_stuck() -> None:
    """Found by the chaos harness (issue 10): one member of two frozen, the bridge's pushes timed out
    while its heartbeat reached the other member; newer files waited on disk, the daemon called the
    bridge stuck and restarted it (the new one waits on the same member). The heartbeat now says so."""
    from scan_bridge.restart_policy import Action, ProcessState, RestartBudget, decide

    waiting = {**heartbeat(1.0), "member_silent": True}
    r = classify(healthy_obs(90.0, heartbeat=waiting, newest_file=disk(4900, 2.0), newest_complete_file=disk(4899, 12.0)), TH)
    assert r.status is HealthStatus.STALE and r.cause is StaleCause.BRIDGE_BUSY and not r.bridge_stuck
    assert "heartbeat 1.0s old (pid 4321), waiting for a member that does not answer" in r.message
    budget = RestartBudget(max_restarts=3, window_s=600.0)
    assert decide(ProcessState.RUNNING, r, budget=budget, now=1000.0).action is Action.NONE
    # A heartbeat that stopped is stuck whatever it said.
    stopped = classify(healthy_obs(90.0, heartbeat={**heartbeat(40.0), "member_silent": True},
                                   newest_complete_file=disk(4899, 30.0)), TH)
    assert stopped.bridge_stuck


def test_the_bridge_is_not_judged_until_hazelcast_has_answered_again_for_the_heartbeat_threshold() -> None:
    """Found by the chaos harness (issue 10): right after a frozen member thawed, the first check that
    could read Hazelcast again saw the heartbeat from before the freeze (18 s old) and files the freeze
    had held back, called the bridge stuck and restarted it, which started a restart loop."""
    after_outage = dict(heartbeat=heartbeat(18.0), newest_file=disk(4900, 2.0), newest_complete_file=disk(4899, 12.0))
    r = classify(healthy_obs(90.0, hazelcast_answering_s=1.0, **after_outage), TH)
    assert not r.bridge_stuck and r.cause is StaleCause.BRIDGE_BUSY
    assert "Hazelcast answers again since 1.0s, the bridge catches up" in r.message
    judged = classify(healthy_obs(90.0, hazelcast_answering_s=16.0, **after_outage), TH)
    assert judged.bridge_stuck and judged.cause is StaleCause.BRIDGE_STUCK


def test_the_checker_counts_how_long_hazelcast_has_answered_since_an_outage() -> None:
    from scan_bridge.health_check import FreshnessChecker

    clock = [1000.0]
    checker = FreshnessChecker(thresholds=TH, clock=lambda: clock[0])
    seen: list[float | None] = []
    outcomes = iter([None, "not reachable", None, None, None])

    def fake_observe(**_kw: Any) -> Observation:  # what the member said; the state kept across checks is under test
        error = next(outcomes)
        return healthy_obs(3.0) if error is None else observe(hazelcast_error=error)

    checker.observe = fake_observe  # type: ignore[method-assign]
    real_classify = classify

    import scan_bridge.health_check as health

    def spy(observation: Observation, *args: Any) -> Any:
        seen.append(observation.hazelcast_answering_s)
        return real_classify(observation, *args)

    health.classify, saved = spy, health.classify
    try:
        for _ in range(5):
            checker.check()
            clock[0] += 5
    finally:
        health.classify = saved
    assert seen == [None, None, 0.0, 5.0, 10.0]


def test_busy_bridge_while_data_is_fresh_is_healthy_not_stuck() -> None:
    r = classify(healthy_obs(12.0, heartbeat=busy_heartbeat(1.0), newest_complete_file=disk(4229, 11.0)), TH)
    assert r.status is HealthStatus.HEALTHY and not r.bridge_stuck and r.heartbeat_busy


def test_a_busy_heartbeat_that_stopped_is_stuck() -> None:
    """A bridge stuck in the middle of a catch-up: its last heartbeat said busy, and then nothing came."""
    r = classify(healthy_obs(90.0, heartbeat=busy_heartbeat(40.0), newest_complete_file=disk(4229, 30.0)), TH)
    assert r.cause is StaleCause.BRIDGE_STUCK and r.bridge_stuck and r.heartbeat_stale
    assert not r.heartbeat_busy
    assert r.unpushed_scan_number == 4229


def test_busy_without_newer_files_changes_nothing() -> None:
    r = classify(healthy_obs(90.0, heartbeat=busy_heartbeat(1.0), newest_file=disk(4228, 95.0),
                             newest_complete_file=disk(4228, 95.0)), TH)
    assert r.cause is StaleCause.SCANNER_SILENT and r.heartbeat_busy


pytestmark = pytest.mark.unit  # pure: see pyproject.toml markers
