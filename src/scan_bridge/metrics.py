"""An optional Prometheus endpoint for the daemon: the figures of :class:`DaemonStatus` as metrics.

Why it looks the way it does:

* **Off unless a port is set.** The Prefect UI (logs, artifact, events) is the daemon's primary
  surface; this endpoint is for sites that alert from Prometheus. The daemon creates a
  :class:`DaemonMetrics` and calls :meth:`DaemonMetrics.serve` only when ``metrics_port`` is set,
  and binds to 127.0.0.1 unless told otherwise: the endpoint has no authentication.
* **Its own registry.** Every instance owns a fresh ``CollectorRegistry``, never the process-wide
  default one: tests build many instances (the default registry refuses a second metric of the same
  name), and the endpoint serves exactly the daemon's figures, nothing another library registered.
* **Counters survive bridge restarts.** The bridge's heartbeat carries counters of the *current
  bridge process* (``pushed_total``, ``rejected_total``), which start again at 0 when the daemon
  restarts it. Prometheus counters must only go up, so we keep the last (pid, value) seen and add
  deltas: the positive difference for the same pid, the whole value for a new bridge of ours (it
  started at 0). A heartbeat from a pid that is not the daemon's current bridge and that we have not
  seen before (left in Hazelcast by a bridge of an earlier daemon run) only sets the baseline: counting
  it would show that bridge's lifetime total as a burst of pushes (or rejections) at daemon start.
  Likewise restarts are added as the delta of ``DaemonStatus.restarts_total``, so calling
  :meth:`DaemonMetrics.update` again with the same status never counts twice.

:meth:`DaemonMetrics.update` is called from the daemon's loop after every health check, restart and
state change; scrapes run in the HTTP server's threads. prometheus_client's metrics are thread-safe;
our own bookkeeping (the last values seen) is kept under a lock.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, start_http_server

from .health_classify import FreshnessReport, HealthStatus, StaleCause
from .restart_policy import ProcessState

if TYPE_CHECKING:  # at run time only its attributes are read
    from .daemon_status import DaemonStatus

__all__ = ["HEALTH_STATES", "STALE_CAUSES", "DaemonMetrics"]

#: States of ``scan_bridge_health_state``: the health statuses, and ``unknown`` before the first check.
HEALTH_STATES: tuple[str, ...] = (*(s.value for s in HealthStatus), "unknown")
#: States of ``scan_bridge_stale_cause``: ``none`` unless the health state is ``stale``.
STALE_CAUSES: tuple[str, ...] = ("none", *(c.name.lower() for c in StaleCause))

_UP_STATES = (ProcessState.RUNNING, ProcessState.STARTING)


@dataclass(slots=True)
class _Seen:
    """The last value of one per-process counter, and whose it was."""

    pid: int
    value: int


class _ProcessCounter:
    """Turns a counter of one bridge process (reset at each restart) into increments of a monotonic one."""

    def __init__(self, counter: Counter) -> None:
        self._counter = counter
        self._seen: _Seen | None = None

    def observe(self, pid: int | None, value: int | None, bridge_pid: int | None) -> None:
        if pid is None or value is None or value < 0:
            return  # no heartbeat, or one without this counter: nothing learnt
        seen = self._seen
        if seen is not None and seen.pid == pid:
            if value >= seen.value:
                increment = value - seen.value
            else:
                # A process's own counter never goes down: a new process that got the same pid.
                increment = value
        elif pid == bridge_pid:
            increment = value  # a bridge the daemon started: it counted from 0
        else:
            increment = 0  # a heartbeat left by a bridge we never watched: a baseline only
        if increment:
            self._counter.inc(increment)
        self._seen = _Seen(pid, value)


class DaemonMetrics:
    """The daemon's figures as Prometheus metrics in a registry of their own; :meth:`serve` exposes them."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.data_age = Gauge(
            "scan_bridge_data_age_seconds",
            "Age of latest_eigen_scan (check time minus the scan's timestamp) at the last health check; "
            "NaN when unknown (no check yet, Hazelcast unreadable, no scan). Negative: the scan's clock is ahead.",
            registry=r,
        )
        self.scan_number = Gauge(
            "scan_bridge_scan_number",
            "Number of the latest scan in Hazelcast (latest_eigen_scan) at the last health check; NaN when unknown.",
            registry=r,
        )
        self.assets = Gauge(
            "scan_bridge_assets",
            "Asset count of the latest scan in Hazelcast at the last health check; NaN when unknown.",
            registry=r,
        )
        self.restarts = Counter(
            "scan_bridge_restarts_total",
            "Restarts of the bridge process the daemon made (for an exit, a stuck bridge, or a DOWN report).",
            registry=r,
        )
        self.bridge_up = Gauge(
            "scan_bridge_bridge_up",
            "1 when the bridge process is running (state RUNNING or STARTING, with a pid), else 0 "
            "(stopped, waiting to restart, gave up).",
            registry=r,
        )
        self.health_state = Enum(
            "scan_bridge_health_state",
            "Verdict of the last health check on latest_eigen_scan: healthy, warning, stale, down, error, "
            "missing; unknown before the first check.",
            states=list(HEALTH_STATES),
            registry=r,
        )
        self.stale_cause = Enum(
            "scan_bridge_stale_cause",
            "Why the data is stale when the health state is stale: bridge_stuck (the daemon restarts the bridge) "
            "or scanner_silent (no restart: nothing newer to push); none otherwise.",
            states=list(STALE_CAUSES),
            registry=r,
        )
        self.scans_pushed = Counter(
            "scan_bridge_scans_pushed_total",
            "Scans the bridge pushed to Hazelcast, summed over bridge restarts (from the heartbeat's pushed_total, "
            "as seen by the health checks).",
            registry=r,
        )
        self.files_rejected = Counter(
            "scan_bridge_files_rejected_total",
            "Scan files the bridge rejected as unreadable or invalid, summed over bridge restarts (from the "
            "heartbeat's rejected_total, as seen by the health checks).",
            registry=r,
        )
        self.last_check = Gauge(
            "scan_bridge_last_check_timestamp_seconds",
            "Unix time of the last health check (0 before the first one); alert when it stops advancing.",
            registry=r,
        )
        for gauge in (self.data_age, self.scan_number, self.assets):
            gauge.set(math.nan)
        self.health_state.state("unknown")
        self.stale_cause.state("none")
        self._lock = threading.Lock()
        self._restarts_seen = 0
        self._pushed = _ProcessCounter(self.scans_pushed)
        self._rejected = _ProcessCounter(self.files_rejected)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    # -- figures ------------------------------------------------------------------------------------

    def update(self, status: DaemonStatus) -> None:
        """Set every metric from ``status``; calling it again with the same status changes nothing."""
        with self._lock:
            self.bridge_up.set(1 if status.state in _UP_STATES and status.pid is not None else 0)
            if status.restarts_total > self._restarts_seen:
                self.restarts.inc(status.restarts_total - self._restarts_seen)
            self._restarts_seen = max(self._restarts_seen, status.restarts_total)
            self._update_report(status.report, status.pid)

    def _update_report(self, report: FreshnessReport | None, bridge_pid: int | None) -> None:
        if report is None:
            self.health_state.state("unknown")
            self.stale_cause.state("none")
            for gauge in (self.data_age, self.scan_number, self.assets):
                gauge.set(math.nan)
            return
        self.health_state.state(report.status.value)
        cause = report.cause.name.lower() if report.status is HealthStatus.STALE and report.cause else "none"
        self.stale_cause.state(cause)
        self.data_age.set(_or_nan(report.data_age_s))
        self.scan_number.set(_or_nan(report.scan_number))
        self.assets.set(_or_nan(report.asset_count))
        self.last_check.set(report.checked_at.timestamp())
        self._pushed.observe(report.heartbeat_pid, report.heartbeat_pushed_total, bridge_pid)
        self._rejected.observe(report.heartbeat_pid, report.heartbeat_rejected_total, bridge_pid)

    # -- as one of the daemon's publishers (supervisor.Publisher) --------------------------------------

    def health(self, status: DaemonStatus, previous: FreshnessReport | None) -> None:
        self.update(status)

    def restarted(self, status: DaemonStatus, reason: str) -> None:
        self.update(status)

    def gave_up(self, status: DaemonStatus, message: str) -> None:
        self.update(status)

    def stopped(self, status: DaemonStatus, reason: str) -> None:
        self.update(status)

    def file_crashed_reader(self, status: DaemonStatus, file: str, reason: str) -> None:
        """Counted already: the file is in ``scan_bridge_files_rejected_total`` (the heartbeat's ``rejected_total``)."""

    def bridge_event(self, status: DaemonStatus, name: str, fields: dict[str, Any]) -> None:
        pass  # nothing to count: a counter reset is an event and a line in the health report, not a metric

    # -- the endpoint -------------------------------------------------------------------------------

    def serve(self, port: int, addr: str = "127.0.0.1") -> None:
        """Serve ``/metrics`` on ``addr:port`` from a daemon thread (port 0: any free port, see :attr:`port`)."""
        if self._server is not None:
            raise RuntimeError(f"metrics already served on port {self.port}")
        self._server, self._thread = start_http_server(port, addr=addr, registry=self.registry)

    @property
    def port(self) -> int:
        """The port the endpoint is bound to (the real one when :meth:`serve` was given 0)."""
        if self._server is None:
            raise RuntimeError("metrics are not being served")
        return int(self._server.server_address[1])

    @property
    def serving(self) -> bool:
        return self._server is not None

    def close(self) -> None:
        """Stop serving and free the port; does nothing when not serving."""
        server, thread, self._server, self._thread = self._server, self._thread, None, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5.0)


def _or_nan(value: float | None) -> float:
    return math.nan if value is None else float(value)
