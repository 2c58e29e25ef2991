"""The health artifact's pure parts (daemon_artifact.py): its key per daemon, the figures ``deploy.py
status`` reads from it, and the history it carries to the next run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from scan_bridge.daemon_artifact import figures, figures_from_markdown
from scan_bridge.daemon_flow import ARTIFACT_KEY, artifact_key, history_from_markdown, render_markdown
from scan_bridge.health import FreshnessReport, HealthStatus, StaleCause
from scan_bridge.health_history import HealthHistory
from scan_bridge.supervisor import DaemonStatus


def test_the_deployment_and_a_standalone_daemon_use_the_key_deploy_py_status_reads() -> None:
    assert artifact_key("scan-bridge-daemon") == ARTIFACT_KEY
    assert artifact_key("standalone") == ARTIFACT_KEY


def test_another_daemon_gets_its_own_valid_key() -> None:
    assert artifact_key("prod-eu") == "scan-bridge-health-prod-eu"
    assert artifact_key("Prod EU / 2") == "scan-bridge-health-prod-eu-2"
    assert artifact_key("///") == ARTIFACT_KEY


def test_the_history_survives_the_round_trip_through_the_markdown() -> None:
    history = HealthHistory()
    at = datetime.now(UTC) - timedelta(hours=3)
    for i in range(10):
        history.record_check(at + timedelta(seconds=30 * i), "healthy", 1.5, 100 + i)
    history.record_change(at + timedelta(minutes=4), "stale (scanner silent)", "state change", 61.0, 109)
    restored = history_from_markdown(render_markdown(DaemonStatus(), history))
    assert restored.to_json() == history.to_json()


def test_no_or_garbled_history_gives_an_empty_one() -> None:
    empty = HealthHistory().to_json()
    assert history_from_markdown(None).to_json() == empty
    assert history_from_markdown("## Scan bridge: HEALTHY\n").to_json() == empty
    assert history_from_markdown("<!-- history: {not json -->").to_json() == empty


def test_the_figures_deploy_py_status_reads_are_the_ones_written() -> None:
    """Written and read in one module: the marker is nobody else's business."""
    report = FreshnessReport(status=HealthStatus.STALE, cause=StaleCause.SCANNER_SILENT, detail="scan #7 is 72.0s old",
                             checked_at=datetime.now(UTC), data_age_s=72.0, scan_number=7)
    status = DaemonStatus(report=report, restarts_total=2)
    read = figures_from_markdown(render_markdown(status, HealthHistory()))
    assert read == {k: (v if not isinstance(v, datetime) else str(v)) for k, v in figures(status).items()}
    assert read["message"] == "STALE (scanner silent): scan #7 is 72.0s old" and read["restarts_total"] == 2
    assert figures_from_markdown(None) is None and figures_from_markdown("<!-- figures: [1] -->") is None



pytestmark = __import__("pytest").mark.unit  # pure: see pyproject.toml markers
