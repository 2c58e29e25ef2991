"""The daemon's Prometheus metrics: values from hand-made statuses, counters across bridge restarts, the endpoint."""

from __future__ import annotations

import math
import threading
import urllib.error
import urllib.request
import warnings
from datetime import UTC, datetime
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from scan_bridge.health import FreshnessReport, HealthStatus, StaleCause
from scan_bridge.metrics import HEALTH_STATES, DaemonMetrics
from scan_bridge.restart_policy import ProcessState
from scan_bridge.supervisor import DaemonStatus

NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
BRIDGE = 4321


def report(status: HealthStatus = HealthStatus.HEALTHY, **fields: Any) -> FreshnessReport:
    defaults: dict[str, Any] = {
        "detail": "test",
        "checked_at": NOW,
        "data_age_s": 1.5,
        "scan_number": 4228,
        "asset_count": 400,
        "heartbeat_pid": BRIDGE,
        "heartbeat_pushed_total": 10,
        "heartbeat_rejected_total": 0,
    }
    defaults.update(fields)
    return FreshnessReport(status=status, **defaults)


def status(rep: FreshnessReport | None = None, **fields: Any) -> DaemonStatus:
    fields.setdefault("state", ProcessState.RUNNING)
    fields.setdefault("pid", BRIDGE)
    return DaemonStatus(report=rep, **fields)


def value(metrics: DaemonMetrics, name: str, labels: dict[str, str] | None = None) -> float:
    sample = metrics.registry.get_sample_value(name, labels or {})
    assert sample is not None, f"no sample {name}{labels or ''}"
    return sample


def health_state(metrics: DaemonMetrics) -> str:
    on = [s for s in HEALTH_STATES if value(metrics, "scan_bridge_health_state", {"scan_bridge_health_state": s}) == 1]
    assert len(on) == 1, on
    return on[0]


def pushed(metrics: DaemonMetrics) -> float:
    return value(metrics, "scan_bridge_scans_pushed_total")


def rejected(metrics: DaemonMetrics) -> float:
    return value(metrics, "scan_bridge_files_rejected_total")


# -- values ---------------------------------------------------------------------------------------


def test_before_the_first_check_everything_is_unknown() -> None:
    metrics = DaemonMetrics()
    metrics.update(status(None, state=ProcessState.STARTING))

    assert health_state(metrics) == "unknown"
    assert value(metrics, "scan_bridge_stale_cause", {"scan_bridge_stale_cause": "none"}) == 1
    assert math.isnan(value(metrics, "scan_bridge_data_age_seconds"))
    assert math.isnan(value(metrics, "scan_bridge_scan_number"))
    assert math.isnan(value(metrics, "scan_bridge_assets"))
    assert value(metrics, "scan_bridge_last_check_timestamp_seconds") == 0
    assert value(metrics, "scan_bridge_bridge_up") == 1  # STARTING with a pid
    assert pushed(metrics) == 0
    assert value(metrics, "scan_bridge_restarts_total") == 0


def test_a_healthy_report_sets_the_figures() -> None:
    metrics = DaemonMetrics()
    metrics.update(status(report(data_age_s=2.25, scan_number=4230, asset_count=399)))

    assert health_state(metrics) == "healthy"
    assert value(metrics, "scan_bridge_data_age_seconds") == 2.25
    assert value(metrics, "scan_bridge_scan_number") == 4230
    assert value(metrics, "scan_bridge_assets") == 399
    assert value(metrics, "scan_bridge_last_check_timestamp_seconds") == NOW.timestamp()
    assert value(metrics, "scan_bridge_bridge_up") == 1


@pytest.mark.parametrize(
    ("cause", "label"),
    [(StaleCause.BRIDGE_STUCK, "bridge_stuck"), (StaleCause.SCANNER_SILENT, "scanner_silent"), (StaleCause.BRIDGE_BUSY, "bridge_busy")],
)
def test_stale_sets_the_state_and_its_cause_and_recovery_clears_the_cause(cause: StaleCause, label: str) -> None:
    metrics = DaemonMetrics()
    metrics.update(status(report(HealthStatus.STALE, cause=cause, data_age_s=75.0)))

    assert health_state(metrics) == "stale"
    assert value(metrics, "scan_bridge_stale_cause", {"scan_bridge_stale_cause": label}) == 1
    assert value(metrics, "scan_bridge_stale_cause", {"scan_bridge_stale_cause": "none"}) == 0
    assert value(metrics, "scan_bridge_data_age_seconds") == 75.0

    metrics.update(status(report()))
    assert health_state(metrics) == "healthy"
    assert value(metrics, "scan_bridge_stale_cause", {"scan_bridge_stale_cause": label}) == 0
    assert value(metrics, "scan_bridge_stale_cause", {"scan_bridge_stale_cause": "none"}) == 1


def test_an_unreadable_hazelcast_makes_the_figures_unknown_not_stale_values() -> None:
    metrics = DaemonMetrics()
    metrics.update(status(report()))
    metrics.update(
        status(
            report(
                HealthStatus.ERROR,
                data_age_s=None,
                scan_number=None,
                asset_count=None,
                heartbeat_pid=None,
                heartbeat_pushed_total=None,
                heartbeat_rejected_total=None,
            )
        )
    )

    assert health_state(metrics) == "error"
    assert math.isnan(value(metrics, "scan_bridge_data_age_seconds"))
    assert math.isnan(value(metrics, "scan_bridge_scan_number"))
    assert math.isnan(value(metrics, "scan_bridge_assets"))
    assert pushed(metrics) == 10  # kept, not reset, by a check that saw no heartbeat


@pytest.mark.parametrize(
    ("state", "pid", "up"),
    [
        (ProcessState.RUNNING, BRIDGE, 1),
        (ProcessState.STARTING, BRIDGE, 1),
        (ProcessState.STARTING, None, 0),
        (ProcessState.BACKOFF, BRIDGE, 0),
        (ProcessState.EXITED, BRIDGE, 0),
        (ProcessState.STOPPING, BRIDGE, 0),
        (ProcessState.FATAL, BRIDGE, 0),
        (ProcessState.STOPPED, None, 0),
    ],
)
def test_bridge_up(state: ProcessState, pid: int | None, up: int) -> None:
    metrics = DaemonMetrics()
    metrics.update(status(report(), state=state, pid=pid))
    assert value(metrics, "scan_bridge_bridge_up") == up


# -- counters -------------------------------------------------------------------------------------


def test_restarts_are_counted_by_delta_and_never_twice() -> None:
    metrics = DaemonMetrics()
    metrics.update(status(report(), restarts_total=1))
    metrics.update(status(report(), restarts_total=1))  # a later update, no new restart
    assert value(metrics, "scan_bridge_restarts_total") == 1

    metrics.update(status(report(), restarts_total=3))
    assert value(metrics, "scan_bridge_restarts_total") == 3

    metrics.update(status(report(), restarts_total=2))  # never goes down
    assert value(metrics, "scan_bridge_restarts_total") == 3


def test_repeated_updates_with_the_same_heartbeat_count_once() -> None:
    metrics = DaemonMetrics()
    same = status(report(heartbeat_pushed_total=10, heartbeat_rejected_total=2))
    for _ in range(3):  # a health check, then a restart and a state change publishing the same report
        metrics.update(same)

    assert pushed(metrics) == 10
    assert rejected(metrics) == 2


def test_the_same_bridge_adds_its_deltas() -> None:
    metrics = DaemonMetrics()
    metrics.update(status(report(heartbeat_pushed_total=10, heartbeat_rejected_total=0)))
    metrics.update(status(report(heartbeat_pushed_total=25, heartbeat_rejected_total=1)))
    metrics.update(status(report(heartbeat_pushed_total=31, heartbeat_rejected_total=1)))

    assert pushed(metrics) == 31
    assert rejected(metrics) == 1


def test_counters_survive_a_bridge_restart() -> None:
    metrics = DaemonMetrics()
    metrics.update(status(report(heartbeat_pushed_total=10, heartbeat_rejected_total=2)))
    metrics.update(status(report(heartbeat_pushed_total=14, heartbeat_rejected_total=2)))
    # Restarted: the first check after it still reads the old bridge's last heartbeat (it pushed 2 more
    # before it was killed), while the daemon already runs the new one.
    metrics.update(status(report(heartbeat_pushed_total=16, heartbeat_rejected_total=2), pid=5000, restarts_total=1))
    assert pushed(metrics) == 16

    # The new bridge's own heartbeat: its counters began at 0.
    metrics.update(status(report(heartbeat_pid=5000, heartbeat_pushed_total=3, heartbeat_rejected_total=1), pid=5000))
    assert pushed(metrics) == 19
    assert rejected(metrics) == 3

    metrics.update(status(report(heartbeat_pid=5000, heartbeat_pushed_total=8, heartbeat_rejected_total=1), pid=5000))
    assert pushed(metrics) == 24
    assert rejected(metrics) == 3


def test_a_lower_value_from_the_same_pid_is_a_new_process() -> None:
    metrics = DaemonMetrics()
    metrics.update(status(report(heartbeat_pushed_total=10)))
    metrics.update(status(report(heartbeat_pushed_total=4)))  # a process's own counter never goes down

    assert pushed(metrics) == 14


def test_a_heartbeat_left_by_an_earlier_daemon_run_is_only_a_baseline() -> None:
    metrics = DaemonMetrics()
    # The daemon just started bridge 5000; Hazelcast still holds the heartbeat of the previous run's bridge.
    metrics.update(status(report(heartbeat_pid=999, heartbeat_pushed_total=5000, heartbeat_rejected_total=7), pid=5000))
    assert pushed(metrics) == 0
    assert rejected(metrics) == 0

    metrics.update(status(report(heartbeat_pid=5000, heartbeat_pushed_total=2, heartbeat_rejected_total=0), pid=5000))
    assert pushed(metrics) == 2
    assert rejected(metrics) == 0


def test_a_heartbeat_without_counters_changes_nothing() -> None:
    metrics = DaemonMetrics()
    metrics.update(status(report(heartbeat_pushed_total=10)))
    metrics.update(status(report(heartbeat_pushed_total=None, heartbeat_rejected_total=None)))
    metrics.update(status(report(heartbeat_pushed_total=12)))

    assert pushed(metrics) == 12


# -- registries and the endpoint ------------------------------------------------------------------


def test_instances_have_their_own_registries() -> None:
    first, second = DaemonMetrics(), DaemonMetrics()
    first.update(status(report(scan_number=1)))
    second.update(status(report(scan_number=2)))

    assert value(first, "scan_bridge_scan_number") == 1
    assert value(second, "scan_bridge_scan_number") == 2
    given = CollectorRegistry()
    assert DaemonMetrics(given).registry is given


def test_serve_exposes_the_metrics_over_http_and_close_frees_the_port() -> None:
    metrics = DaemonMetrics()
    metrics.update(status(report(scan_number=4242, heartbeat_pushed_total=17), restarts_total=2))
    metrics.serve(0)
    try:
        port = metrics.port
        assert port > 0
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            assert response.status == 200
            text = response.read().decode()
    finally:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            metrics.close()
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]  # closed, not left to the GC
    assert not [t for t in threading.enumerate() if "serve_forever" in t.name]  # the server's thread ended

    for name in (
        "scan_bridge_data_age_seconds",
        "scan_bridge_scan_number",
        "scan_bridge_assets",
        "scan_bridge_restarts_total",
        "scan_bridge_bridge_up",
        "scan_bridge_health_state",
        "scan_bridge_stale_cause",
        "scan_bridge_scans_pushed_total",
        "scan_bridge_files_rejected_total",
        "scan_bridge_last_check_timestamp_seconds",
    ):
        assert f"# HELP {name} " in text, name
    assert "scan_bridge_scan_number 4242.0" in text
    assert "scan_bridge_scans_pushed_total 17.0" in text
    assert "scan_bridge_restarts_total 2.0" in text
    assert 'scan_bridge_health_state{scan_bridge_health_state="healthy"} 1.0' in text
    assert "python_gc" not in text  # our registry, not the default one

    assert not metrics.serving
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)
    metrics.close()  # a second close does nothing
    again = DaemonMetrics()  # the port is free again: a new endpoint binds it
    again.serve(port)
    try:
        assert again.port == port
    finally:
        again.close()


def test_serve_twice_is_refused_and_port_needs_a_server() -> None:
    metrics = DaemonMetrics()
    with pytest.raises(RuntimeError):
        _ = metrics.port
    metrics.serve(0)
    try:
        with pytest.raises(RuntimeError):
            metrics.serve(0)
    finally:
        metrics.close()


pytestmark = pytest.mark.unit  # pure: see pyproject.toml markers
