"""Every place that shows a health result says its status once, its cause once, then the figures.

Issue 15: alerts read ``WARNING: warning: scan #46 ...`` and ``STALE (scanner silent): stale
(scanner silent): ...``, because each place added the status to a message that already held it.
Now every place shows :attr:`FreshnessReport.headline` (or, under a title that says the status, its
``detail``); these tests hold each place to it: the log line, the artifact, each alert, ``deploy.py
status`` and ``deploy.py health``. Pure: no member, no Prefect server.
"""

from __future__ import annotations

import logging
import re
from contextlib import contextmanager
from typing import Any

import pytest

from scan_bridge import alerts, control
from scan_bridge.daemon_artifact import figures, render_markdown
from scan_bridge.daemon_status import DaemonStatus
from scan_bridge.health import FreshnessReport, HealthStatus, Observation, StaleCause, classify
from scan_bridge.settings import DaemonSettings
from scan_bridge.supervisor import Supervisor

from .test_health_classify import NOW, TH, disk, healthy_obs, heartbeat, observe

pytestmark = pytest.mark.unit


def _reports() -> dict[str, FreshnessReport]:
    """One realistic report per status and stale cause, from the classification itself."""
    return {
        "healthy": classify(healthy_obs(3.0), TH),
        "warning": classify(healthy_obs(45.0), TH),
        "scanner silent": classify(healthy_obs(90.0, newest_file=disk(4228, 95.0), newest_complete_file=disk(4228, 95.0)), TH),
        "bridge stuck": classify(healthy_obs(90.0, heartbeat=heartbeat(40.0)), TH),
        "bridge busy": classify(
            healthy_obs(90.0, heartbeat={**heartbeat(1.0), "busy": True},
                        newest_file=disk(4899, 30.0), newest_complete_file=disk(4899, 30.0)), TH),
        "disk not readable": classify(
            healthy_obs(90.0, disk_error="/scans/2026-12-02 not readable (PermissionError: Permission denied)"), TH),
        "missing": classify(observe(heartbeat=heartbeat(1.0)), TH),
        "down": classify(healthy_obs(3.0, bridge_running=False), TH),
        "error": classify(Observation(checked_at=NOW, hazelcast_error="Hazelcast not reachable at 127.0.0.1:1 within 3s"), TH),
    }


REPORTS = _reports()


def test_the_reports_cover_every_status_and_cause() -> None:
    assert {r.status for r in REPORTS.values()} == set(HealthStatus)
    assert {r.cause for r in REPORTS.values()} - {None} == set(StaleCause)


def _says_once(text: str, report: FreshnessReport, where: str) -> None:
    """The status word, and the cause when there is one, each exactly once (any case, whole words)."""
    for said in [report.status.value] + ([report.cause.value] if report.cause is not None else []):
        found = len(re.findall(rf"(?<![\w-]){re.escape(said)}(?![\w-])", text, flags=re.IGNORECASE))
        assert found == 1, f"{where} says {said!r} {found} times: {text!r}"


@pytest.mark.parametrize("key", list(REPORTS))
def test_the_headline_says_the_status_once(key: str) -> None:
    report = REPORTS[key]
    assert report.headline.startswith(report.label + ": ")
    assert report.message == report.headline == str(report)
    _says_once(report.headline, report, "the headline")


@pytest.mark.parametrize("key", list(REPORTS))
def test_the_daemon_log_line_says_the_status_once(key: str) -> None:
    report = REPORTS[key]
    records: list[logging.LogRecord] = []
    logger = logging.getLogger(f"test-messages-once-{key}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        Supervisor(DaemonSettings(), ["true"], {}, logger=logger)._on_report(report)
    finally:
        logger.removeHandler(handler)
    lines = [r.getMessage() for r in records if r.getMessage().startswith("Health: ")]
    assert len(lines) == 1, [r.getMessage() for r in records]
    assert lines[0] == f"Health: {report.headline}"
    _says_once(lines[0], report, "the log line")


@pytest.mark.parametrize("key", list(REPORTS))
def test_the_artifact_says_the_status_once(key: str) -> None:
    report = REPORTS[key]
    markdown = render_markdown(DaemonStatus(report=report))
    visible = "\n".join(line for line in markdown.splitlines() if not line.startswith("<!--"))
    assert visible.startswith(f"## Scan bridge: {report.label}\n\n{report.detail}\n")
    _says_once(visible, report, "the artifact")


def _render_alert(alert: alerts.Alert, payload: dict[str, Any]) -> str:
    from prefect.server.utilities.user_templates import render_user_template_sync

    class Resource(dict):  # type: ignore[type-arg]
        id = "scan-bridge.daemon.scan-bridge-daemon"
        name = "scan-bridge-daemon"

    event = type("Event", (), {"event": "scan-bridge.x", "occurred": NOW, "resource": Resource(), "payload": payload})()
    import json

    return str(json.loads(render_user_template_sync(alerts.request_body(alert, "slack"), {"event": event}))["text"])


@pytest.mark.parametrize("key", [k for k, r in REPORTS.items() if r.status is not HealthStatus.DOWN])
def test_the_alert_says_the_status_once(key: str) -> None:
    report = REPORTS[key]
    payload = {**figures(DaemonStatus(report=report)), "previous_status": "stale"}
    event = f"scan-bridge.{report.status.event_name}"
    # The data's alert for the event (the active or single machine's), and a standby's own when it has one.
    expected = {
        "recovered": f"healthy again (was stale): {report.detail}",
        "standby-hazelcast-reachable": f"standby reaches Hazelcast again: {report.headline}",
        "standby-hazelcast-unavailable": f"STANDBY: {report.headline}. It cannot take over while Hazelcast is out "
                                         "of its reach; the active machine's own alerts say whether the data is affected.",
    }
    fired = [a for a in alerts.alerts(30.0) if event in a.expect]
    assert fired, event
    for alert in fired:
        text = _render_alert(alert, payload)
        assert text == "scan-bridge scan-bridge-daemon: " + expected.get(alert.key, report.headline), alert.key
        _says_once(text, report, f"the {alert.key} alert")


@pytest.mark.parametrize("key", list(REPORTS))
def test_deploy_health_says_the_status_once(key: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    report = REPORTS[key]
    monkeypatch.setattr(control, "_health_report", lambda: report)
    assert control.main(["health"]) == report.status.exit_code
    out = capsys.readouterr().out.strip()
    assert out.startswith(report.headline)
    _says_once(out, report, "deploy.py health")


class _NoDaemonClient:
    """A Prefect client with no pool, no deployment, no automations: ``deploy.py status`` down to its health lines."""

    def read_work_pool(self, name: str) -> Any:
        from prefect.exceptions import ObjectNotFound

        raise ObjectNotFound(http_exc=Exception(name))

    def read_deployment_by_name(self, name: str) -> Any:
        from prefect.exceptions import ObjectNotFound

        raise ObjectNotFound(http_exc=Exception(name))

    def read_automations(self) -> list[Any]:
        return []


@pytest.mark.parametrize("key", list(REPORTS))
def test_deploy_status_says_the_status_once(key: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    report = REPORTS[key]

    @contextmanager
    def client() -> Any:
        yield _NoDaemonClient()

    monkeypatch.setattr(control, "require_api", lambda: "http://127.0.0.1:9/api")
    monkeypatch.setattr(control, "_client", client)
    monkeypatch.setattr(control, "_health_report", lambda: report)
    control.main(["status"])
    out = capsys.readouterr().out
    health = out[out.index("Health        : "):]
    assert health.startswith(f"Health        : {report.headline}\n")
    _says_once(health, report, "deploy.py status")


def test_each_status_has_one_exit_code_in_every_cli() -> None:
    """``deploy.py health`` and ``python -m scan_bridge.health`` exit alike (they once said 3 and 2 for an error)."""
    assert {s: s.exit_code for s in HealthStatus} == {
        HealthStatus.HEALTHY: 0, HealthStatus.WARNING: 1, HealthStatus.STALE: 2,
        HealthStatus.MISSING: 2, HealthStatus.DOWN: 2, HealthStatus.ERROR: 3,
    }


def test_python_m_health_exits_with_the_status_code(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import scan_bridge.health as health

    for report in REPORTS.values():
        monkeypatch.setattr(health, "check_hazelcast_data_freshness", lambda report=report: report)
        assert health.main([]) == report.status.exit_code
        out = capsys.readouterr().out.strip()
        assert out == report.headline
        _says_once(out, report, "python -m scan_bridge.health")
