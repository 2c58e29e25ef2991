"""The restart rules: a sliding-window budget, and which reports may spend it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from scan_bridge.health import FreshnessReport, HealthStatus, StaleCause
from scan_bridge.restart_policy import (
    Action,
    ProcessState,
    RestartBudget,
    decide,
    describe_exit,
    settled_state,
)
from scan_bridge.settings import DaemonSettings

NOW = 1000.0


def report(status: HealthStatus, **fields: object) -> FreshnessReport:
    return FreshnessReport(status=status, detail=status.value, checked_at=datetime(2024, 5, 1, tzinfo=UTC), **fields)


def stale(cause: StaleCause, **fields: object) -> FreshnessReport:
    if cause is StaleCause.BRIDGE_STUCK:
        fields.setdefault("bridge_stuck", True)
        fields.setdefault("stuck_reason", "heartbeat 40.0s old (limit 15s)")
        fields.setdefault("heartbeat_stale", True)
    return report(HealthStatus.STALE, cause=cause, **fields)


def fresh_budget() -> RestartBudget:
    return RestartBudget(3, 600.0)


def spent_budget(at: float = NOW) -> RestartBudget:
    budget = fresh_budget()
    for offset in (30, 20, 10):
        budget.record(at - offset)
    return budget


# -- the budget ---------------------------------------------------------------------------------------


def test_budget_allows_max_restarts_within_window() -> None:
    budget = RestartBudget(3, 600.0)
    for t in (0.0, 1.0, 2.0):
        assert budget.allows(t)
        budget.record(t)
    assert not budget.allows(3.0)
    assert budget.used(3.0) == 3
    assert budget.remaining(3.0) == 0


def test_budget_window_slides() -> None:
    budget = RestartBudget(3, 600.0)
    for t in (0.0, 100.0, 200.0):
        budget.record(t)
    assert not budget.allows(599.9)
    assert budget.allows(600.0)  # the restart at 0 left the window exactly now
    assert budget.used(600.0) == 2
    assert budget.next_allowed_at(300.0) == 600.0
    assert budget.next_allowed_at(600.0) == 600.0


def test_budget_survives_months_of_occasional_crashes() -> None:
    budget = RestartBudget(3, 600.0)
    day = 86400.0
    for n in range(120):  # one crash a day for four months
        now = n * day
        assert budget.allows(now)
        budget.record(now)
    assert budget.used(120 * day) == 0
    assert len(budget._times) == 1  # old restarts are forgotten, memory stays bounded


def test_budget_asking_does_not_spend() -> None:
    budget = RestartBudget(1, 10.0)
    assert budget.allows(0.0) and budget.allows(0.0)
    assert budget.used(0.0) == 0


def test_zero_budget_never_allows() -> None:
    budget = RestartBudget(0, 600.0)
    assert not budget.allows(0.0)
    assert budget.next_allowed_at(0.0) is None


def test_budget_validates_and_reads_settings() -> None:
    with pytest.raises(ValueError):
        RestartBudget(-1, 10)
    with pytest.raises(ValueError):
        RestartBudget(1, 0)
    budget = RestartBudget.from_settings(DaemonSettings(max_restarts=5, restart_window_s=60))
    assert (budget.max_restarts, budget.window_s) == (5, 60)


# -- decide -------------------------------------------------------------------------------------------


def test_exited_restarts() -> None:
    decision = decide(ProcessState.EXITED, budget=fresh_budget(), now=NOW, returncode=1)
    assert decision.action is Action.RESTART
    assert "exit code 1" in decision.reason
    assert "restart 1 of 3" in decision.reason


def test_exited_with_budget_spent_gives_up() -> None:
    decision = decide(ProcessState.EXITED, budget=spent_budget(), now=NOW, returncode=-9)
    assert decision.action is Action.GIVE_UP
    assert "killed by SIGKILL" in decision.reason
    assert "3 restarts" in decision.reason


def test_exited_after_window_restarts_again() -> None:
    budget = spent_budget(at=NOW)
    assert decide(ProcessState.EXITED, budget=budget, now=NOW + 600, returncode=1).action is Action.RESTART


def test_stuck_restarts() -> None:
    decision = decide(ProcessState.RUNNING, stale(StaleCause.BRIDGE_STUCK), budget=fresh_budget(), now=NOW)
    assert decision.action is Action.RESTART
    assert "bridge stuck: heartbeat 40.0s old" in decision.reason
    assert decision.for_file is None


def test_stuck_before_stale_restarts() -> None:
    """A SIGSTOPped bridge: data still fresh, heartbeat old."""
    r = report(HealthStatus.HEALTHY, bridge_stuck=True, heartbeat_stale=True, stuck_reason="heartbeat 20.0s old")
    assert decide(ProcessState.RUNNING, r, budget=fresh_budget(), now=NOW).action is Action.RESTART


def test_stuck_with_budget_spent_gives_up() -> None:
    decision = decide(ProcessState.RUNNING, stale(StaleCause.BRIDGE_STUCK), budget=spent_budget(), now=NOW)
    assert decision.action is Action.GIVE_UP


def test_scanner_silent_does_nothing() -> None:
    decision = decide(ProcessState.RUNNING, stale(StaleCause.SCANNER_SILENT), budget=fresh_budget(), now=NOW)
    assert decision.action is Action.NONE
    assert "scanner silent" in decision.reason


def test_scanner_silent_with_budget_spent_still_does_nothing() -> None:
    assert (
        decide(ProcessState.RUNNING, stale(StaleCause.SCANNER_SILENT), budget=spent_budget(), now=NOW).action
        is Action.NONE
    )


def test_disk_not_readable_does_nothing() -> None:
    decision = decide(ProcessState.RUNNING, stale(StaleCause.DISK_UNREADABLE), budget=fresh_budget(), now=NOW)
    assert decision.action is Action.NONE
    assert "disk not readable" in decision.reason


def test_hazelcast_error_does_nothing() -> None:
    r = report(HealthStatus.ERROR, hazelcast_error="Hazelcast not reachable")
    decision = decide(ProcessState.RUNNING, r, budget=fresh_budget(), now=NOW)
    assert decision.action is Action.NONE
    assert "reconnects" in decision.reason


def test_restart_on_any_stale_restores_old_behaviour() -> None:
    decision = decide(
        ProcessState.RUNNING,
        stale(StaleCause.SCANNER_SILENT),
        budget=fresh_budget(),
        now=NOW,
        restart_on_any_stale=True,
    )
    assert decision.action is Action.RESTART
    assert "restart_on_any_stale" in decision.reason
    spent = decide(
        ProcessState.RUNNING,
        stale(StaleCause.SCANNER_SILENT),
        budget=spent_budget(),
        now=NOW,
        restart_on_any_stale=True,
    )
    assert spent.action is Action.GIVE_UP


def test_restart_on_any_stale_does_not_touch_warning_or_error() -> None:
    for r in (report(HealthStatus.WARNING), report(HealthStatus.ERROR), report(HealthStatus.MISSING)):
        assert (
            decide(ProcessState.RUNNING, r, budget=fresh_budget(), now=NOW, restart_on_any_stale=True).action
            is Action.NONE
        )


@pytest.mark.parametrize("status", [HealthStatus.HEALTHY, HealthStatus.WARNING, HealthStatus.MISSING])
def test_quiet_statuses_do_nothing(status: HealthStatus) -> None:
    assert decide(ProcessState.RUNNING, report(status), budget=fresh_budget(), now=NOW).action is Action.NONE


def test_down_report_restarts() -> None:
    decision = decide(ProcessState.RUNNING, report(HealthStatus.DOWN), budget=fresh_budget(), now=NOW)
    assert decision.action is Action.RESTART


def test_starting_bridge_is_not_restarted_on_a_report() -> None:
    decision = decide(ProcessState.STARTING, stale(StaleCause.BRIDGE_STUCK), budget=fresh_budget(), now=NOW)
    assert decision.action is Action.NONE
    assert "starting" in decision.reason


def test_starting_becomes_running_after_grace() -> None:
    assert settled_state(ProcessState.STARTING, started_at=0.0, now=19.9, start_grace_s=20) is ProcessState.STARTING
    assert settled_state(ProcessState.STARTING, started_at=0.0, now=20.0, start_grace_s=20) is ProcessState.RUNNING
    assert settled_state(ProcessState.EXITED, started_at=0.0, now=99.0, start_grace_s=20) is ProcessState.EXITED


def test_a_bridge_is_starting_until_it_has_written_a_heartbeat_of_its_own():
    """Found by the chaos harness (issue 10): under load a new bridge took longer than the grace to
    start, was judged by its predecessor's heartbeat, called stuck and killed, in a loop."""
    from scan_bridge.restart_policy import START_TIMEOUT_S

    def state(now: float, beaten: bool) -> ProcessState:
        return settled_state(ProcessState.STARTING, started_at=0.0, now=now, start_grace_s=20, beaten=beaten)

    assert state(25.0, beaten=False) is ProcessState.STARTING
    assert state(25.0, beaten=True) is ProcessState.RUNNING
    assert state(19.0, beaten=True) is ProcessState.STARTING
    assert state(START_TIMEOUT_S, beaten=False) is ProcessState.RUNNING  # hung before connecting: judged


@pytest.mark.parametrize(
    "state", [ProcessState.STOPPED, ProcessState.STOPPING, ProcessState.BACKOFF, ProcessState.FATAL]
)
def test_states_that_never_restart(state: ProcessState) -> None:
    assert decide(state, stale(StaleCause.BRIDGE_STUCK), budget=fresh_budget(), now=NOW).action is Action.NONE


def test_no_report_does_nothing() -> None:
    assert decide(ProcessState.RUNNING, None, budget=fresh_budget(), now=NOW).action is Action.NONE


def test_unpushed_file_restarts_once_per_file() -> None:
    r = stale(
        StaleCause.BRIDGE_STUCK,
        heartbeat_stale=False,
        unpushed_file="/data/scan_000042.arrow",
        stuck_reason="scan_000042.arrow (#42) complete on disk",
    )
    first = decide(ProcessState.RUNNING, r, budget=fresh_budget(), now=NOW)
    assert first.action is Action.RESTART
    assert first.for_file == "/data/scan_000042.arrow"
    again = decide(ProcessState.RUNNING, r, budget=fresh_budget(), now=NOW, restarted_for_file=first.for_file)
    assert again.action is Action.NONE
    assert "rejected" in again.reason
    # a different file, or a stopped heartbeat, restarts again
    for changed in ({"unpushed_file": "/data/scan_000043.arrow"}, {"heartbeat_stale": True}):
        r2 = r.model_copy(update=changed)
        d = decide(ProcessState.RUNNING, r2, budget=fresh_budget(), now=NOW, restarted_for_file=first.for_file)
        assert d.action is Action.RESTART


def test_decide_does_not_spend_the_budget() -> None:
    budget = fresh_budget()
    decide(ProcessState.EXITED, budget=budget, now=NOW, returncode=1)
    assert budget.used(NOW) == 0


def test_describe_exit() -> None:
    assert describe_exit(0) == "exit code 0"
    assert describe_exit(-15) == "killed by SIGTERM"
    assert describe_exit(None) == "exited"
    assert describe_exit(-200) == "killed by signal 200"


def test_states_are_supervisord_names() -> None:
    assert {s.value for s in ProcessState} >= {"STARTING", "RUNNING", "BACKOFF", "STOPPING", "EXITED", "FATAL"}


pytestmark = pytest.mark.unit  # pure: see pyproject.toml markers
