"""The daemon's health artifact: one markdown page under a stable key, rendered from its status.

What an operator reads at a glance (the verdict, the figures, the last 24 hours), plus two lines
invisible in the rendered page: the figures as JSON, which ``deploy.py status`` reads
(:func:`figures_from_markdown`), and the history, which the next run of the daemon continues
(:func:`history_from_markdown`). Both markers are written and read here only.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from prefect.client.orchestration import get_client

from . import health_chart, names
from .daemon_status import DaemonStatus
from .health_history import HealthHistory
from .logs import printable

ARTIFACT_KEY = names.ARTIFACT_KEY
# Seconds between in-place updates of the artifact when nothing changes.
ARTIFACT_INTERVAL_S = 300.0
_HISTORY_MARK = "<!-- history: "
_FIGURES_MARK = "<!-- figures: "
#: Figures the title and the line under it already say: not repeated in the table.
_SAID_ABOVE = ("status", "cause", "message", "detail")


def failover_figures(status: DaemonStatus) -> dict[str, Any]:
    """Role, lease epoch, takeovers and since when active, under failover; nothing on a single machine."""
    if status.role is None:
        return {}
    return {"role": status.role.value, "epoch": status.epoch, "takeovers_total": status.takeovers_total,
            "active_since": status.active_since}


def figures(status: DaemonStatus) -> dict[str, Any]:
    report = status.report
    figures: dict[str, Any] = {
        "bridge_state": status.state.value,
        "bridge_pid": status.pid,
        "process_uptime_s": None if status.uptime_s is None else round(status.uptime_s, 1),
        "restarts_total": status.restarts_total,
        "restarts_in_window": status.restarts_in_window,
        "last_exit_code": status.last_exit_code,
        **failover_figures(status),
    }
    if report is not None:
        figures.update(
            status=report.status.value,
            cause=None if report.cause is None else report.cause.value,
            # The headline (status once, cause, figures) and its detail alone; each may quote a file
            # name: one line, no escapes, in events and alerts.
            message=printable(report.headline),
            detail=printable(report.detail),
            checked_at=report.checked_at.isoformat(),
            data_age_s=None if report.data_age_s is None else round(report.data_age_s, 1),
            scan_number=report.scan_number,
            scans_per_minute=None if report.scans_per_minute is None else round(report.scans_per_minute, 1),
            asset_count=report.asset_count,
            heartbeat_age_s=None if report.heartbeat_age_s is None else round(report.heartbeat_age_s, 1),
            newest_on_disk=report.newest_on_disk,
            counter_reset=None if report.counter_reset is None else printable(report.counter_reset),
        )
    return figures


def render_markdown(status: DaemonStatus, history: HealthHistory | None = None,
                    thresholds: tuple[float, float] = health_chart.DEFAULT_THRESHOLDS) -> str:
    """The artifact an operator reads at a glance: the verdict, the chart, the figures, the last 24 hours.

    ``thresholds`` are the daemon's (warn_after_s, stale_after_s), drawn on the chart.
    """
    shown = figures(status)
    report = status.report
    # The title says the status (and cause) once; the line below it, the detail alone.
    title = "UNKNOWN" if report is None else report.label
    detail = "no health check yet" if report is None else printable(report.detail)
    now = datetime.now(UTC)
    lines = [f"## Scan bridge: {title}", "", detail, ""]
    if history is not None:  # the last 24 hours as a picture; the tables below keep the exact figures
        lines += [health_chart.markdown_image(history, now, *thresholds), ""]
    lines += ["| Figure | Value |", "|---|---|"]
    for key, value in shown.items():
        if key not in _SAID_ABOVE:
            lines.append(f"| {key.replace('_', ' ')} | {'—' if value is None else value} |")
    if history is not None:
        lines += ["", history.render_markdown(now)]
    lines += ["", f"_Updated {now.isoformat(timespec='seconds')}; on every state change and at most every {ARTIFACT_INTERVAL_S:g} s otherwise; a new version each hour._"]
    # For `deploy.py status`: the same figures, machine-readable, invisible in the rendered page.
    lines += ["", f"{_FIGURES_MARK}{json.dumps(shown, default=str)} -->"]
    if history is not None:  # for the next daemon run: the history continues where this one left it
        lines += [f"{_HISTORY_MARK}{json.dumps(history.to_json(), separators=(',', ':'), default=str)} -->"]
    return "\n".join(lines)


def artifact_key(daemon: str) -> str:
    """The health artifact's key for a daemon: ``scan-bridge-health``, or ``scan-bridge-health-<name>``.

    The deployment's daemon (and a standalone one) keep the plain key that ``deploy.py status`` reads;
    a daemon with another name (``SCAN_BRIDGE_DAEMON_NAME``, a second deployment) gets its own, so
    neither overwrites the other's page in the UI nor restores the other's history at start.
    Artifact keys allow lowercase letters, digits and dashes only.
    """
    if daemon in (names.DEPLOYMENT_NAME, names.STANDALONE_NAME):
        return ARTIFACT_KEY
    slug = re.sub(r"[^a-z0-9]+", "-", daemon.lower()).strip("-")
    return f"{ARTIFACT_KEY}-{slug}" if slug else ARTIFACT_KEY


def history_from_markdown(markdown: str | None) -> HealthHistory:
    """The history a previous run left in its artifact; empty if there is none or it is unreadable."""
    if markdown:
        for line in reversed(markdown.splitlines()):
            if line.startswith(_HISTORY_MARK) and line.endswith(" -->"):
                try:
                    return HealthHistory.from_json(json.loads(line[len(_HISTORY_MARK):-4]))
                except ValueError:
                    break
    return HealthHistory()


def figures_from_markdown(markdown: str | None) -> dict[str, Any] | None:
    """The figures :func:`render_markdown` embedded (for ``deploy.py status``); None if absent or unreadable."""
    for line in reversed((markdown or "").splitlines()):
        if line.startswith(_FIGURES_MARK) and line.endswith(" -->"):
            try:
                found = json.loads(line[len(_FIGURES_MARK):-4])
            except ValueError:
                return None
            return found if isinstance(found, dict) else None
    return None


def previous_history(logger: Any, key: str = ARTIFACT_KEY) -> HealthHistory:
    """The history in the latest artifact under ``key`` (a previous run of this daemon)."""
    try:
        with get_client(sync_client=True) as client:
            from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

            latest = client.read_latest_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])), limit=1
            )
        return history_from_markdown(latest[0].data if latest else None)
    except Exception as exc:  # no history is better than no daemon
        logger.warning("Could not read the previous health history: %s", exc)
        return HealthHistory()
