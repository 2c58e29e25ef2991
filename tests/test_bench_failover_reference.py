"""The pure parts of the failover benchmark's Prefect reference path (bench/_failover_reference.py).

The automations must be the ones Prefect documents (a reference that detects faster than the
documented one would flatter Prefect's path, a slower one would flatter ours), the kill phases must
cover the heartbeat period evenly, and the statistics must be what the docs quote.
"""

from __future__ import annotations

import json
from datetime import timedelta
from uuid import uuid4

import pytest

from bench._failover_reference import (
    HEARTBEAT_FREQUENCY_S,
    HISTORY_RETENTION,
    kept_by_history,
    kill_phases,
    next_kill_time,
    ratio,
    restart_automation,
    summarize,
    zombie_automation,
)

pytestmark = pytest.mark.unit  # pure: see pyproject.toml markers


def test_zombie_automation_is_prefects_documented_one() -> None:
    automation = zombie_automation()
    trigger = automation.trigger
    assert trigger.posture == "Proactive"
    assert trigger.after == {"prefect.flow-run.heartbeat"}
    assert trigger.expect == {"prefect.flow-run.heartbeat", "prefect.flow-run.Completed", "prefect.flow-run.Failed",
                              "prefect.flow-run.Cancelled", "prefect.flow-run.Crashed"}
    assert trigger.match.root == {"prefect.resource.id": ["prefect.flow-run.*"]}
    assert trigger.for_each == {"prefect.resource.id"}
    assert trigger.threshold == 1
    assert trigger.within == timedelta(seconds=90)
    (action,) = automation.actions
    assert action.type == "change-flow-run-state"
    assert action.state == "CRASHED" and not action.force
    # The documented frequency: at least 30 s (Prefect's minimum), three missed heartbeats in the window.
    assert HEARTBEAT_FREQUENCY_S == 30
    json.loads(automation.model_dump_json())  # what the client sends: serializable


def test_restart_automation_runs_the_deployment_on_its_crashed_runs() -> None:
    deployment_id = uuid4()
    automation = restart_automation(deployment_id)
    trigger = automation.trigger
    assert trigger.posture == "Reactive"
    assert trigger.expect == {"prefect.flow-run.Crashed"}
    assert trigger.match_related.root == {"prefect.resource.id": [f"prefect.deployment.{deployment_id}"],
                                           "prefect.resource.role": "deployment"}
    assert trigger.threshold == 1
    (action,) = automation.actions
    assert action.type == "run-deployment"
    assert action.source == "selected" and action.deployment_id == deployment_id
    assert action.parameters is None  # the deployment's own parameters, as `deploy.py run` starts it


def test_kill_phases_take_one_point_in_each_slice_of_the_period() -> None:
    phases = kill_phases(6, period_s=30, seed=1)
    assert sorted(phases) == pytest.approx([2.5, 7.5, 12.5, 17.5, 22.5, 27.5])
    assert phases != sorted(phases)  # shuffled, so the phase does not follow the run's drift in load
    assert kill_phases(6, period_s=30, seed=1) == phases  # reproducible
    assert kill_phases(0) == []
    assert kill_phases(1, period_s=30) == [15.0]


def test_next_kill_time_is_the_phase_after_a_heartbeat_and_in_the_future() -> None:
    assert next_kill_time(last_heartbeat=100.0, phase_s=10.0, now=101.0, period_s=30) == 110.0
    # The phase in this period has passed (or is too close): the same phase one or more periods on.
    assert next_kill_time(last_heartbeat=100.0, phase_s=10.0, now=109.5, period_s=30) == 140.0
    assert next_kill_time(last_heartbeat=100.0, phase_s=2.0, now=165.0, period_s=30) == 192.0


def test_summary_and_ratio() -> None:
    summary = summarize([90.0, 70.0, 110.0, 80.0])
    assert (summary.median, summary.worst, summary.best, summary.count) == (85.0, 110.0, 70.0, 4)
    assert ratio([85.0, 80.0, 90.0], [5.0, 6.0, 7.0, 100.0]) == pytest.approx(85.0 / 6.5)
    with pytest.raises(ValueError, match="no rounds"):
        summarize([])


def test_missing_scans_are_counted_only_within_what_history_keeps() -> None:
    # The first 30-minute run counted 1,824 of 2,827 scans "missing": all of them trimmed by retention.
    assert kept_by_history(set(range(1, 2828)), 1000) == set(range(1828, 2828))
    assert kept_by_history({5, 1, 3}, 1000) == {1, 3, 5}
    assert HISTORY_RETENTION == 1000  # the bridge's default (settings.py), read from there
