"""The daemon's figures into Prefect: the health artifact, state-change events, a light heartbeat.

Events are what automations (``deploy.py alerts``, :mod:`.alerts`) react to; their names are in
:mod:`.names`, the status part of them is :attr:`HealthStatus.event_name`.

Database footprint: the daemon runs for months. The artifact gets a new version once an hour (an
hourly snapshot) and is updated *in place* in between, on a state change and at most every
``ARTIFACT_INTERVAL_S``: a new version is a permanent row (plus an event repeating it), an in-place
update is neither. Events are emitted on state changes, plus one small heartbeat per check; the
server prunes events after its retention period.
"""

from __future__ import annotations

import contextlib
import contextvars
import queue
import threading
import time
from datetime import UTC, datetime
from typing import Any

from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.events import emit_event

from . import health_chart, names
from .daemon_artifact import ARTIFACT_INTERVAL_S, artifact_key, failover_figures, figures, previous_history, render_markdown
from .daemon_status import DaemonStatus
from .health_classify import FreshnessReport
from .health_history import HealthHistory
from .lease import Role
from .logs import printable
from .state_events import state_event


class PrefectPublisher:
    """Figures into Prefect: one artifact (stable key), events on state changes, one light heartbeat per check.

    Events are what automations (``deploy.py alerts``) react to. The state-change events carry the
    whole health report as payload and the new and previous status, the cause and the daemon's role
    as resource labels, because a trigger can match labels but not payload fields: "healthy again"
    is ``scan-bridge.healthy`` whose ``scan-bridge.previous-status`` is not ``healthy``/``none`` and
    whose ``scan-bridge.role`` answers for the data (:mod:`.state_events`). The heartbeat event is small
    and lets a proactive automation notice a daemon that went silent; the server prunes events
    after its retention period, so it does not grow the database for ever.
    """

    def __init__(
        self,
        logger: Any,
        deployment: str | None,
        artifact_interval_s: float = ARTIFACT_INTERVAL_S,
        history: HealthHistory | None = None,
        thresholds: tuple[float, float] = health_chart.DEFAULT_THRESHOLDS,
    ) -> None:
        self.log = logger
        self.thresholds = thresholds  # (warn_after_s, stale_after_s), for the artifact's chart
        self.history = history if history is not None else HealthHistory()
        self._artifact_id: Any = None
        self._artifact_hour: datetime | None = None
        self.deployment = deployment or names.STANDALONE_NAME
        self.artifact_key = artifact_key(self.deployment)
        self.resource = {
            "prefect.resource.id": names.DAEMON_RESOURCE_PREFIX + self.deployment,
            "prefect.resource.name": deployment or names.DAEMON_NAME,
        }
        self.artifact_interval_s = artifact_interval_s
        self._artifact_at = -1e18
        self._light: LightEvents | None = None  # started at the first light event, from the flow's thread
        self._role_before: Role | None = None  # the role at the check before (state_events.state_event)

    @classmethod
    def resume(cls, logger: Any, deployment: str | None,
               thresholds: tuple[float, float] = health_chart.DEFAULT_THRESHOLDS) -> PrefectPublisher:
        """A publisher that continues the history its daemon's previous run left in the artifact."""
        publisher = cls(logger, deployment, thresholds=thresholds)
        publisher.history = previous_history(logger, publisher.artifact_key)
        return publisher

    def _note(self, status: DaemonStatus, note: str) -> None:
        report = status.report
        shown = figures(status)
        self.history.record_change(
            datetime.now(UTC),
            "—" if report is None else report.label.lower(),  # the history's spelling: "stale (scanner silent)"
            note,
            shown.get("data_age_s"),
            shown.get("scan_number"),
        )

    def _artifact(self, status: DaemonStatus, force: bool) -> None:
        """A new version at the first write of each UTC hour; otherwise an in-place update, when due."""
        now, hour = time.monotonic(), datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        new_version = self._artifact_id is None or hour != self._artifact_hour
        if not new_version and not force and now - self._artifact_at < self.artifact_interval_s:
            return
        self._artifact_at = now
        markdown = render_markdown(status, self.history, self.thresholds)
        try:
            if new_version:
                self._artifact_id = create_markdown_artifact(markdown, key=self.artifact_key, description="Scan bridge health")
                self._artifact_hour = hour
            else:
                # PATCH directly: the client's update_artifact also emits an event carrying the whole markdown.
                with get_client(sync_client=True) as client:
                    client.request("PATCH", "/artifacts/{id}", json={"data": markdown}, path_params={"id": self._artifact_id})
        except Exception as exc:  # the API may be briefly away; the next update retries
            self.log.warning("Could not publish the health artifact: %s", exc)

    def _event(self, name: str, payload: dict[str, Any], light: bool = False, labels: dict[str, str] | None = None) -> None:
        resource = {**self.resource, **(labels or {})}
        try:
            if light:
                if self._light is None:
                    self._light = LightEvents(self.log)
                self._light.send(names.event(name), resource, payload)
            else:
                emit_event(event=names.event(name), resource=resource, payload=payload)
        except Exception as exc:
            self.log.warning("Could not emit event %s: %s", names.event(name), exc)

    def health(self, status: DaemonStatus, previous: FreshnessReport | None) -> None:
        report = status.report
        if report is None:
            return
        self.history.record_check(report.checked_at, report.status.value, report.data_age_s, report.scan_number)
        event = state_event(previous, report, status.role, self._role_before)
        self._role_before = status.role
        if event is not None:
            if event.changed:
                self._note(status, "state change")
            self._event(event.name, {**figures(status), "previous_status": event.previous_status}, labels=event.labels())
        self._event(heartbeat_event(status), heartbeat_payload(status), light=True,
                    labels={names.STATUS_LABEL: report.status.event_name})
        self._artifact(status, force=event is not None)

    def restarted(self, status: DaemonStatus, reason: str) -> None:
        self.history.record_restart(datetime.now(UTC))
        self._note(status, f"{names.RESTART_NOTE}: {reason}")
        self._event(names.BRIDGE_RESTARTED_EVENT, {**figures(status), "reason": reason})
        self._artifact(status, force=True)

    def gave_up(self, status: DaemonStatus, message: str) -> None:
        self._note(status, "gave up")
        self._event(names.GAVE_UP_EVENT, {**figures(status), "reason": message[:2000]})
        self._artifact(status, force=True)

    def file_crashed_reader(self, status: DaemonStatus, file: str, reason: str) -> None:
        """A file a bridge died reading: never pushed, so an operator should hear of it (once per file)."""
        self._note(status, f"file crashed the reader: {printable(file)}")
        self._event(names.FILE_CRASHED_READER_EVENT, {
            "file": printable(file),
            "reason": printable(reason),
            "bridge_pid": status.pid,
            "restarts_total": status.restarts_total,
        })

    def bridge_event(self, status: DaemonStatus, name: str, fields: dict[str, Any]) -> None:
        """Something the bridge reported that an operator should hear of (``counter-reset``): an event, a note in the history."""
        self._note(status, name.replace("-", " "))
        self._event(name, {**figures(status), "bridge": fields})
        self._artifact(status, force=True)

    def took_over(self, status: DaemonStatus, reason: str) -> None:
        """Failover: this daemon took the lease and started its bridge (an event, a marker in the history)."""
        self._note(status, f"{names.TAKEOVER_NOTE}: epoch {status.epoch}: {reason}")
        self._event(names.TOOK_OVER_EVENT, {**figures(status), "reason": reason})
        self._artifact(status, force=True)

    def stepped_down(self, status: DaemonStatus, reason: str) -> None:
        """Failover: this daemon lost the lease and killed its bridge; it stands by again."""
        self._note(status, f"stepped down: {reason}")
        self._event(names.STEPPED_DOWN_EVENT, {**figures(status), "reason": reason})
        self._artifact(status, force=True)

    def stopped(self, status: DaemonStatus, reason: str) -> None:
        """The daemon is ending on purpose (or gave up, already announced): not "daemon silent"."""
        self._event(names.DAEMON_STOPPED_EVENT, {**figures(status), "reason": reason})
        self._note(status, f"{names.STOPPED_NOTE}: {reason}")
        self._artifact(status, force=True)


#: Deadline of one light event's POST (in its own thread: the supervisor's loop never waits for it).
LIGHT_EVENT_TIMEOUT_S = 10.0
#: Light events waiting to be sent; more while the API is away are dropped (a heartbeat says only "alive").
LIGHT_EVENT_BACKLOG = 4


class LightEvents:
    """Sends the light events from a thread of its own, so an API outage (timeouts, the client's
    retries) never holds up the supervisor's loop; what cannot be sent within the backlog is dropped.

    The thread runs in a copy of the flow's context, so it talks to the same API as the flow.
    """

    def __init__(self, logger: Any) -> None:
        self.log = logger
        self._queue: queue.Queue[tuple[str, dict[str, str], dict[str, Any]]] = queue.Queue(LIGHT_EVENT_BACKLOG)
        self._dropped = 0
        context = contextvars.copy_context()
        threading.Thread(target=context.run, args=(self._run,), name="light-events", daemon=True).start()

    def send(self, event: str, resource: dict[str, str], payload: dict[str, Any]) -> None:
        try:
            self._queue.put_nowait((event, resource, payload))
        except queue.Full:
            self._dropped += 1

    def _run(self) -> None:
        client: Any = None  # one client for the thread's life (a new one per event costs a version check)
        while True:
            event, resource, payload = self._queue.get()
            try:
                if client is None:
                    client = get_client(sync_client=True, httpx_settings={"timeout": LIGHT_EVENT_TIMEOUT_S})
                    client.__enter__()
                _emit_without_run_context(event, resource, payload, client)
            except Exception as exc:
                self.log.warning("Could not emit event %s: %s (%d dropped while the API was away)", event, exc, self._dropped)
                if client is not None:
                    with contextlib.suppress(Exception):
                        client.__exit__(None, None, None)
                client = None


def _emit_without_run_context(event: str, resource: dict[str, str], payload: dict[str, Any], client: Any = None) -> None:
    """The event straight to the server's public ``POST /api/events``, not through Prefect's events worker.

    The events worker attaches the run, its flow and its deployment as related resources to every
    event emitted within a flow run: three more resources per event, stored with their own index
    rows. For one event per health check that tripled the event's size in the database (3.8 KB
    measured, bench/bench_daemon_db.py), so the heartbeat goes without them; it names the daemon in
    its own resource. This used to hide the run by setting Prefect's internal
    ``FlowRunContext.__var__``; the REST endpoint (the one ``prefect event`` tools and webhooks use)
    is public on 3.8 and 3.9 and needs no internals. Same event schema, same server pipeline
    (stored, and seen by automations).
    """
    from prefect.events import Event

    body = Event(event=event, resource=resource, payload=payload).model_dump(mode="json")
    if client is not None:
        client.request("POST", "/events", json=[body])
        return
    with get_client(sync_client=True, httpx_settings={"timeout": LIGHT_EVENT_TIMEOUT_S}) as own:
        own.request("POST", "/events", json=[body])


def heartbeat_event(status: DaemonStatus) -> str:
    """The heartbeat's name: ``standby-heartbeat`` from a failover standby, ``heartbeat`` otherwise.

    Each arms the silence alert of its role ("daemon silent", critical; "standby silent", warning)
    and satisfies the other's (:mod:`.alerts`), so a daemon that takes over or steps down alerts as
    neither and is watched as its new role from its next check on. A role in the payload would not
    do (a trigger cannot match payload fields), nor a role label (a trigger's ``match`` filters the
    events that satisfy it as well as those that arm it).
    """
    return names.STANDBY_HEARTBEAT_EVENT if status.role is Role.STANDBY else names.HEARTBEAT_EVENT


def heartbeat_payload(status: DaemonStatus) -> dict[str, Any]:
    """The few figures worth one event per check (the full report goes with state changes)."""
    report = status.report
    return {
        "status": None if report is None else report.status.value,
        "cause": None if report is None or report.cause is None else report.cause.value,
        "data_age_s": None if report is None or report.data_age_s is None else round(report.data_age_s, 1),
        "scan_number": None if report is None else report.scan_number,
        "bridge_state": status.state.value,
        "restarts_total": status.restarts_total,
        **failover_figures(status),
    }

