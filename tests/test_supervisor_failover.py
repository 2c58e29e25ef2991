"""The supervisor's loop under failover (issue 12), with the scripted harness of test_supervisor.

A standby starts no bridge and never restarts anything whatever the health says; a takeover starts
the bridge under the lease's epoch without spending the restart budget; stepping down SIGKILLs it;
a fenced bridge (exit 4) is not restarted; on stop the lease is released only after the bridge is gone.
"""

from __future__ import annotations

from typing import Any

import pytest

from scan_bridge.lease import Role
from scan_bridge.lease_elector import SteppedDown, TookOver
from scan_bridge.names import FENCED_EXIT_CODE
from scan_bridge.restart_policy import ProcessState
from scan_bridge.supervisor import HealthResult, StopRequest
from tests.test_supervisor import DOWN, HEALTHY, STUCK, Advance, Exit, Harness, checked

pytestmark = pytest.mark.unit


class FakeElector:
    def __init__(self, history: list[Any]) -> None:
        self.history = history
        self.on_took_over: Any = None
        self.on_stepped_down: Any = None

    def start(self) -> None:
        self.history.append(("elector-start",))

    def stop(self, release: bool = True) -> None:
        self.history.append(("elector-stop", release))


class FailoverHarness(Harness):
    def __init__(self) -> None:
        super().__init__()
        self.elector = FakeElector(self.history)
        self.supervisor.elector = self.elector
        self.envs: list[dict[str, str]] = []
        publisher = self.supervisor.publisher
        publisher.took_over = lambda status, reason: self.history.append(("took_over", status.epoch, status.takeovers_total))  # type: ignore[attr-defined]
        publisher.stepped_down = lambda status, reason: self.history.append(("stepped_down", reason))  # type: ignore[attr-defined]

    def _make(self, argv: list[str], *, env: dict[str, str], events: Any, pidfile: Any) -> Any:
        self.envs.append(dict(env))
        return super()._make(argv, env=env, events=events, pidfile=pidfile)


def test_a_standby_starts_no_bridge_and_acts_on_no_report() -> None:
    h = FailoverHarness()
    status = h.run([HealthResult(DOWN, None), Advance(60.0), HealthResult(STUCK, None), StopRequest("over")])
    assert [e for e in h.history if e[0] in ("start", "kill", "restarted")] == []
    assert h.history[0] == ("elector-start",) and h.history[-2:] == [("elector-stop", True), ("stopped", "over")]
    assert status.role is Role.STANDBY and status.restarts_total == 0


def test_a_takeover_starts_the_bridge_under_the_epoch_and_is_not_a_restart() -> None:
    h = FailoverHarness()
    status = h.run([TookOver(7, "machine-a did not renew"), checked(HEALTHY, 101), StopRequest("over")])
    assert ("start", 101) in h.history and ("took_over", 7, 1) in h.history
    assert h.envs[0]["SCAN_BRIDGE_LEASE_EPOCH"] == "7" and h.envs[0]["SCAN_BRIDGE_MACHINE_NAME"]
    assert status.role is Role.ACTIVE and status.epoch == 7 and status.restarts_total == 0 and status.restarts_in_window == 0
    # the bridge is stopped before the lease is released: never two writers
    assert h.history.index(("stop", 101, 7.0)) < h.history.index(("elector-stop", True))


def test_stepping_down_kills_the_bridge_and_stands_by_again() -> None:
    h = FailoverHarness()
    status = h.run([
        TookOver(2, "free"), checked(HEALTHY, 101), SteppedDown("machine-b holds the lease now (epoch 3)"),
        Advance(30.0), HealthResult(DOWN, None), checked(DOWN, 101), StopRequest("over"),
    ])
    assert ("kill", 101) in h.history and ("stepped_down", "machine-b holds the lease now (epoch 3)") in h.history
    assert [e for e in h.history if e[0] == "start"] == [("start", 101)]  # nothing restarted it
    assert status.role is Role.STANDBY and status.epoch is None and status.state is ProcessState.STOPPED


def test_a_fenced_bridge_is_not_restarted() -> None:
    h = FailoverHarness()
    status = h.run([TookOver(2, "free"), Advance(30.0), Exit(h, 0, FENCED_EXIT_CODE), Advance(60.0),
                    checked(DOWN, 101), Advance(60.0), StopRequest("over")])
    assert [e for e in h.history if e[0] in ("start", "restarted")] == [("start", 101)]
    assert status.restarts_total == 0 and status.last_exit_code == FENCED_EXIT_CODE


def test_an_active_bridge_that_crashes_is_restarted_under_the_same_epoch() -> None:
    h = FailoverHarness()
    status = h.run([TookOver(4, "free"), Advance(30.0), Exit(h, 0, 1), Advance(5.0), StopRequest("over")])
    assert [e[0] for e in h.history if e[0] in ("start", "restarted")] == ["start", "restarted", "start"]
    assert [env["SCAN_BRIDGE_LEASE_EPOCH"] for env in h.envs] == ["4", "4"]
    assert status.restarts_total == 1 and status.takeovers_total == 1


def test_the_artifact_and_heartbeat_say_the_role_only_under_failover() -> None:
    from scan_bridge.daemon_artifact import figures, render_markdown
    from scan_bridge.daemon_publisher import heartbeat_payload
    from scan_bridge.daemon_status import DaemonStatus

    single = DaemonStatus()
    assert "role" not in figures(single) and "role" not in heartbeat_payload(single)
    active = DaemonStatus(role=Role.ACTIVE, epoch=3, takeovers_total=2, active_since="2026-12-02T05:00:00+00:00")
    assert figures(active)["role"] == "active" and heartbeat_payload(active)["epoch"] == 3
    assert "| role | active |" in render_markdown(active) and "| epoch | 3 |" in render_markdown(active)


def test_each_check_sends_the_heartbeat_of_the_role_the_daemon_has_then() -> None:
    """A standby's checks send ``standby-heartbeat``, the active's ``heartbeat``: each arms the silence
    alert of its role (alerts.py); a single machine's send ``heartbeat``, as before failover."""
    from scan_bridge.daemon_publisher import heartbeat_event

    h = FailoverHarness()
    beats: list[str] = []
    h.supervisor.publisher.health = lambda status, previous: beats.append(heartbeat_event(status))  # type: ignore[method-assign]
    h.run([
        HealthResult(HEALTHY, None), TookOver(2, "free"), checked(HEALTHY, 101),
        SteppedDown("machine-b holds the lease now (epoch 3)"), HealthResult(HEALTHY, None), StopRequest("over"),
    ])
    assert beats == ["standby-heartbeat", "heartbeat", "standby-heartbeat"]

    single = Harness()
    single.supervisor.publisher.health = lambda status, previous: beats.append(heartbeat_event(status))  # type: ignore[method-assign]
    beats.clear()
    single.run([checked(HEALTHY, 101), StopRequest("over")])
    assert beats == ["heartbeat"]
