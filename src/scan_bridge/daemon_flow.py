"""The daemon: a long-running Prefect flow that keeps the bridge alive and says how fresh the data is.

The flow is a thin shell around :class:`~scan_bridge.supervisor.Supervisor`: it supplies Prefect's
run logger (so every ``[Bridge]`` line shows in the UI), publishes the health figures as one
markdown artifact under a stable key and as events on state changes, and turns "gave up" into a
Failed run. Three layers make sure the bridge never outlives the daemon, because Prefect has open
reports of cancelled runs leaving subprocesses behind (PrefectHQ/prefect#17593, #20979):

1. ``try/finally`` in the supervisor stops the bridge (SIGTERM, then SIGKILL) on cancellation,
   Ctrl+C, SIGTERM or any error;
2. the bridge carries a parent-death signal (SIGKILL), set from a spawner thread that lives as long
   as the daemon, so a SIGKILLed daemon takes the bridge with it;
3. ``on_cancellation`` / ``on_crashed`` hooks, which run in a separate process after the flow
   process is gone, kill whatever the pidfile still names.

Database footprint: the daemon runs for months, so it creates no task runs at all; Prefect's log
gets a health line on every change and once per summary interval (every check goes to the console),
the bridge's output arrives as periodic summaries at the same interval (issue 13). The artifact gets
a new version once an hour (an hourly snapshot) and is updated *in place* in between, on a state
change and at most every ``ARTIFACT_INTERVAL_S``: a new version is a permanent row (plus an event
repeating it), an in-place update is neither. Events are emitted on state changes, plus one small
heartbeat per check; the server prunes events after its retention period.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import queue
import re
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from prefect.client.orchestration import get_client
from prefect.context import get_run_context
from prefect.events import emit_event
from prefect.states import Failed

from .health_history import HealthHistory
from .logs import printable
from .runfiles import clean_stale, kill_bridge_by_pidfile, pidfile_for
from .settings import DaemonSettings, HazelcastSettings
from .supervisor import DaemonStatus, GaveUp, Publishers, Supervisor

ARTIFACT_KEY = "scan-bridge-health"
#: ``scan-bridge.<name>`` of the event for a scan file that crashed the bridge's reader (skipped for good).
FILE_CRASHED_READER_EVENT = "file-crashed-reader"
#: Daemon names that use ARTIFACT_KEY itself; any other name gets its own key (see artifact_key).
DEFAULT_DAEMON_NAMES = ("scan-bridge-daemon", "standalone")
# Seconds between in-place updates of the artifact when nothing changes.
ARTIFACT_INTERVAL_S = 300.0
_HISTORY_MARK = "<!-- history: "


def bridge_command() -> list[str]:
    return [sys.executable, "-m", "scan_bridge.service", "--log-format", "json"]


def bridge_environment(settings: DaemonSettings) -> dict[str, str]:
    """The daemon's environment plus its effective Hazelcast and folder settings, for the bridge."""
    env = dict(os.environ)
    # A secret read from a file is passed on as that file, not as its content.
    from_file = {name.removesuffix("_file") for name in HazelcastSettings.model_fields
                 if name.endswith("_file") and getattr(settings, name) is not None}
    for name in HazelcastSettings.model_fields:
        value = getattr(settings, name)
        if name in from_file:
            env.pop(f"SCAN_BRIDGE_{name.upper()}", None)
            continue
        if value is None:
            continue
        if isinstance(value, list):
            value = ",".join(value)
        elif hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[f"SCAN_BRIDGE_{name.upper()}"] = str(value)
    if settings.watch_dir is not None:
        env["SCAN_BRIDGE_WATCH_DIR"] = str(settings.watch_dir)
    # The bridge reads scan times in the zone the health check reads them in (issue 14).
    env["SCAN_BRIDGE_SCANNER_TIMEZONE"] = settings.scanner_timezone
    # Each forwarded line is a row in Prefect's database for as long as the run is kept (for ever: the
    # run never ends): under the daemon the bridge summarises at the daemon's summary interval.
    env["SCAN_BRIDGE_SUMMARY_INTERVAL_S"] = f"{settings.summary_interval_s:g}"
    return env


def _figures(status: DaemonStatus) -> dict[str, Any]:
    report = status.report
    figures: dict[str, Any] = {
        "bridge_state": status.state.value,
        "bridge_pid": status.pid,
        "process_uptime_s": None if status.uptime_s is None else round(status.uptime_s, 1),
        "restarts_total": status.restarts_total,
        "restarts_in_window": status.restarts_in_window,
        "last_exit_code": status.last_exit_code,
    }
    if report is not None:
        figures.update(
            status=report.status.value,
            cause=None if report.cause is None else report.cause.value,
            message=printable(report.message),  # it may quote a file name: one line, no escapes, in events and alerts
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


def render_markdown(status: DaemonStatus, history: HealthHistory | None = None) -> str:
    """The artifact an operator reads at a glance: the verdict, the figures, the last 24 hours."""
    figures = _figures(status)
    verdict = str(figures.get("status", "unknown")).upper()
    if figures.get("cause"):
        verdict += f" ({figures['cause']})"
    now = datetime.now(UTC)
    lines = [f"## Scan bridge: {verdict}", "", f"{figures.get('message', 'no health check yet')}", ""]
    lines += ["| Figure | Value |", "|---|---|"]
    for key, value in figures.items():
        if key not in ("status", "cause", "message"):
            lines.append(f"| {key.replace('_', ' ')} | {'—' if value is None else value} |")
    if history is not None:
        lines += ["", history.render_markdown(now)]
    lines += ["", f"_Updated {now.isoformat(timespec='seconds')}; on every state change and at most every {ARTIFACT_INTERVAL_S:g} s otherwise; a new version each hour._"]
    # For `deploy.py status`: the same figures, machine-readable, invisible in the rendered page.
    lines += ["", f"<!-- figures: {json.dumps(figures, default=str)} -->"]
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
    if daemon in DEFAULT_DAEMON_NAMES:
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


def event_status(status: str | None) -> str:
    """The event-name spelling of a health status: ``error`` is named for what it means to an operator."""
    if status is None:
        return "none"
    return {"error": "hazelcast-unavailable"}.get(status, status)


class PrefectPublisher:
    """Figures into Prefect: one artifact (stable key), events on state changes, one light heartbeat per check.

    Events are what automations (``deploy.py alerts``) react to. The state-change events carry the
    whole health report as payload and the new and previous status as resource labels, because a
    trigger can match labels but not payload fields: "healthy again" is ``scan-bridge.healthy``
    whose ``scan-bridge.previous-status`` is not ``healthy``/``none``. The heartbeat event is small
    and lets a proactive automation notice a daemon that went silent; the server prunes events
    after its retention period, so it does not grow the database for ever.
    """

    def __init__(
        self,
        logger: Any,
        deployment: str | None,
        artifact_interval_s: float = ARTIFACT_INTERVAL_S,
        history: HealthHistory | None = None,
    ) -> None:
        self.log = logger
        self.history = history if history is not None else HealthHistory()
        self._artifact_id: Any = None
        self._artifact_hour: datetime | None = None
        self.deployment = deployment or "standalone"
        self.artifact_key = artifact_key(self.deployment)
        self.resource = {
            "prefect.resource.id": f"scan-bridge.daemon.{self.deployment}",
            "prefect.resource.name": deployment or "scan-bridge-daemon",
        }
        self.artifact_interval_s = artifact_interval_s
        self._artifact_at = -1e18
        self._announced: str | None = None  # the last state-change event's status, in event spelling
        self._light: LightEvents | None = None  # started at the first light event, from the flow's thread

    @classmethod
    def resume(cls, logger: Any, deployment: str | None) -> PrefectPublisher:
        """A publisher that continues the history its daemon's previous run left in the artifact."""
        publisher = cls(logger, deployment)
        publisher.history = previous_history(logger, publisher.artifact_key)
        return publisher

    def _note(self, status: DaemonStatus, note: str) -> None:
        figures = _figures(status)
        self.history.record_change(
            datetime.now(UTC),
            str(figures.get("status", "—")) + (f" ({figures['cause']})" if figures.get("cause") else ""),
            note,
            figures.get("data_age_s"),
            figures.get("scan_number"),
        )

    def _artifact(self, status: DaemonStatus, force: bool) -> None:
        """A new version at the first write of each UTC hour; otherwise an in-place update, when due."""
        now, hour = time.monotonic(), datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        new_version = self._artifact_id is None or hour != self._artifact_hour
        if not new_version and not force and now - self._artifact_at < self.artifact_interval_s:
            return
        self._artifact_at = now
        markdown = render_markdown(status, self.history)
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

    def _event(self, name: str, payload: dict[str, Any], light: bool = False, **labels: str) -> None:
        resource = dict(self.resource)
        resource.update({f"scan-bridge.{key.replace('_', '-')}": value for key, value in labels.items()})
        try:
            if light:
                if self._light is None:
                    self._light = LightEvents(self.log)
                self._light.send(f"scan-bridge.{name}", resource, payload)
            else:
                emit_event(event=f"scan-bridge.{name}", resource=resource, payload=payload)
        except Exception as exc:
            self.log.warning("Could not emit event scan-bridge.%s: %s", name, exc)

    def health(self, status: DaemonStatus, changed: bool) -> None:
        report = status.report
        if report is None:
            return
        name = event_status(report.status.value)
        self.history.record_check(report.checked_at, report.status.value, report.data_age_s, report.scan_number)
        if changed:
            self._note(status, "state change")
            previous, self._announced = event_status(self._announced), name
            self._event(name, {**_figures(status), "previous_status": previous},
                        status=name, previous_status=previous,
                        cause=report.cause.value if report.cause is not None else "none")
        self._event("heartbeat", heartbeat_payload(status), light=True, status=name)
        self._artifact(status, force=changed)

    def restarted(self, status: DaemonStatus, reason: str) -> None:
        self.history.record_restart(datetime.now(UTC))
        self._note(status, f"restart: {reason}")
        self._event("bridge-restarted", {**_figures(status), "reason": reason})
        self._artifact(status, force=True)

    def gave_up(self, status: DaemonStatus, message: str) -> None:
        self._note(status, "gave up")
        self._event("gave-up", {**_figures(status), "reason": message[:2000]})
        self._artifact(status, force=True)

    def file_crashed_reader(self, status: DaemonStatus, file: str, reason: str) -> None:
        """A file a bridge died reading: never pushed, so an operator should hear of it (once per file)."""
        self._note(status, f"file crashed the reader: {printable(file)}")
        self._event(FILE_CRASHED_READER_EVENT, {
            "file": printable(file),
            "reason": printable(reason),
            "bridge_pid": status.pid,
            "restarts_total": status.restarts_total,
        })

    def bridge_event(self, status: DaemonStatus, name: str, fields: dict[str, Any]) -> None:
        """Something the bridge reported that an operator should hear of (``counter-reset``): an event, a note in the history."""
        self._note(status, name.replace("-", " "))
        self._event(name, {**_figures(status), "bridge": fields})
        self._artifact(status, force=True)

    def stopped(self, status: DaemonStatus, reason: str) -> None:
        """The daemon is ending on purpose (or gave up, already announced): not "daemon silent"."""
        self._event("daemon-stopped", {**_figures(status), "reason": reason})
        self._note(status, f"daemon stopped: {reason}")
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
    }


def survive_lost_console() -> int:
    """Make Prefect's console log handlers go quiet, not exit, when the console's pipe breaks; how many.

    A process worker reads the flow process's output through a pipe. When the worker dies (SIGKILL,
    OOM) the next log line hits a broken pipe, and rich, which Prefect's console handler writes
    through, answers that with ``SystemExit(1)`` (``Console.on_broken_pipe``), which ``logging`` does
    not catch: it ended the daemon mid-check and its run Crashed, by accident of whichever line came
    first. rich documents overriding ``on_broken_pipe`` for this; ours keeps rich's silencing and
    drops the exit, so the daemon goes on supervising the bridge and logging to the API, and
    ``deploy.py stop --force`` ends it deliberately (docs/operations.md).
    """
    import logging

    from rich.console import Console

    loggers = [logging.getLogger()] + [
        logger for logger in logging.Logger.manager.loggerDict.values() if isinstance(logger, logging.Logger)
    ]
    patched = 0
    for logger in loggers:
        for handler in logger.handlers:
            console = getattr(handler, "console", None)
            if isinstance(console, Console) and not getattr(console, "_scan_bridge_quiet_on_broken_pipe", False):
                console.on_broken_pipe = partial(setattr, console, "quiet", True)  # type: ignore[method-assign]
                console._scan_bridge_quiet_on_broken_pipe = True  # type: ignore[attr-defined]
                patched += 1
    return patched


def _kill_bridge_by_pidfile(flow: Any, flow_run: Any, state: Any) -> None:
    """Hook for on_cancellation / on_crashed: kills the bridge only if it is still the very process recorded."""
    kill_bridge_by_pidfile(str(flow_run.id))


@flow(
    name="scan-bridge-daemon",
    description="Runs the scan bridge, forwards its logs, checks data freshness, restarts it when that helps.",
    on_cancellation=[_kill_bridge_by_pidfile],
    on_crashed=[_kill_bridge_by_pidfile],
    persist_result=False,
)
def scan_bridge_daemon_flow(
    watch_dir: str | None = None,
    hazelcast_members: str | None = None,
    hazelcast_cluster_name: str | None = None,
    health_interval_s: float | None = None,
    warn_after_s: float | None = None,
    stale_after_s: float | None = None,
    max_restarts: int | None = None,
    restart_delay_s: float | None = None,
    restart_window_s: float | None = None,
    restart_on_any_stale: bool | None = None,
) -> Any:
    """Parameters left empty come from ``SCAN_BRIDGE_*`` environment variables (then the defaults)."""
    survive_lost_console()
    logger = get_run_logger()
    overrides = {
        name: value
        for name, value in {
            "watch_dir": watch_dir,
            "hazelcast_members": hazelcast_members,
            "hazelcast_cluster_name": hazelcast_cluster_name,
            "health_interval_s": health_interval_s,
            "warn_after_s": warn_after_s,
            "stale_after_s": stale_after_s,
            "max_restarts": max_restarts,
            "restart_delay_s": restart_delay_s,
            "restart_window_s": restart_window_s,
            "restart_on_any_stale": restart_on_any_stale,
        }.items()
        if value is not None
    }
    settings = DaemonSettings(**overrides)
    context = get_run_context()
    flow_run = getattr(context, "flow_run", None)
    run_id = str(flow_run.id) if flow_run is not None else f"local-{os.getpid()}"
    deployment = settings.daemon_name or os.environ.get("PREFECT__DEPLOYMENT_NAME") or (
        "scan-bridge-daemon" if flow_run is not None and flow_run.deployment_id else None
    )
    publishers: list[Any] = [PrefectPublisher.resume(logger, deployment)]
    metrics = None
    if settings.metrics_port is not None:
        from .metrics import DaemonMetrics

        metrics = DaemonMetrics()
        metrics.update(DaemonStatus())
        try:
            metrics.serve(settings.metrics_port, settings.metrics_addr)
        except OSError as exc:  # supervising the bridge matters more than the metrics: go on without them
            logger.error(
                "Prometheus metrics not served: cannot listen on %s:%d (%s); set SCAN_BRIDGE_METRICS_PORT to a free port",
                settings.metrics_addr, settings.metrics_port, exc.strerror or exc,
            )
            metrics = None
        else:
            logger.info("Prometheus metrics on http://%s:%d/metrics", settings.metrics_addr, metrics.port)
            publishers.append(metrics)
    supervisor = Supervisor(
        settings,
        bridge_command(),
        bridge_environment(settings),
        logger=logger,
        publisher=Publishers(publishers),
        pidfile=_pidfile(run_id, logger),
        start_grace_s=settings.start_grace_s,
    )
    try:
        status = supervisor.run()
    except GaveUp as exc:
        return Failed(message=str(exc))
    finally:
        if metrics is not None:
            metrics.close()
    return _figures(status)


def _pidfile(run_id: str, logger: Any) -> Path | None:
    """This run's pidfile in the private run-file directory (stale ones cleaned first); None if there is no safe place."""
    try:
        clean_stale()
        return pidfile_for(run_id)
    except (OSError, ValueError) as exc:  # supervising the bridge matters more than the out-of-process kill
        logger.warning("No pidfile (the cancel hooks cannot kill a bridge left behind): %s", exc)
        return None


def _on_sigterm(signum: int, frame: Any) -> None:
    """SIGTERM while no flow run holds it: stop as on Ctrl+C.

    During the run Prefect's own handler raises ``TerminationSignal`` (the supervisor stops the bridge
    as it propagates); after reporting the run, Prefect sends the signal again to the handler that
    was there before, expecting the default action. Dying by that signal would exit 143 and lose
    the run's last log lines (still in the batch for the API), so this handler takes that second
    delivery and lets the ``TerminationSignal`` already on its way reach :func:`main`.
    """
    if type(sys.exc_info()[1]).__name__ == "TerminationSignal":
        return
    raise SystemExit(0)


def main() -> int:
    """``python -m scan_bridge.daemon_flow``: 0 when stopped by Ctrl+C or SIGTERM, 1 when the run failed.

    Without ``PREFECT_API_URL`` it first starts a Prefect server of its own that dies with it
    (:mod:`scan_bridge.prefect_server`), instead of Prefect's temporary one that outlived a SIGKILL.
    """
    from .prefect_server import ServerStartError, ensure_api

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        ensure_api()  # no PREFECT_API_URL: a server of our own that dies with us, not Prefect's temporary one
        state = scan_bridge_daemon_flow(return_state=True)
    except ServerStartError as exc:
        print(f"scan-bridge daemon: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, SystemExit):
        return 0
    except BaseException as exc:  # Prefect's TerminationSignal on SIGTERM
        if type(exc).__name__ == "TerminationSignal":
            return 0
        raise
    if state.is_completed() or state.is_cancelled():
        return 0
    print(f"scan-bridge daemon ended {state.type.value}: {state.message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
