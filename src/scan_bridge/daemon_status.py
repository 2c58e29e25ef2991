"""What the daemon knows about its bridge, and the interface of whoever publishes it.

:class:`DaemonStatus` is the one place the daemon keeps its state, the current health report
included (the report before it is handed to publishers with each new one, never kept twice).
:class:`Publisher` is what the loop calls on every check, restart and stop: the Prefect artifact
and events (:mod:`.daemon_publisher`), the Prometheus endpoint (:mod:`.metrics`), nothing in tests.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .health_classify import FreshnessReport
from .lease import Role
from .restart_policy import ProcessState


def status_changed(previous: FreshnessReport | None, report: FreshnessReport) -> bool:
    """A new status or cause: what the daemon announces (an event, a note in the history)."""
    return previous is None or previous.status != report.status or previous.cause != report.cause


@dataclass(slots=True)
class DaemonStatus:
    """The figures the daemon publishes (docs/daemon.md, "Health report"; docs/metrics.md)."""

    state: ProcessState = ProcessState.STOPPED
    pid: int | None = None
    uptime_s: float | None = None
    restarts_total: int = 0
    restarts_in_window: int = 0
    last_exit_code: int | None = None
    last_decision: str | None = None
    report: FreshnessReport | None = None
    #: Failover only (docs/high-availability.md): active or standby, the lease epoch while active,
    #: takeovers by this daemon, and when it last took over (UTC ISO). None/0 on a single machine.
    role: Role | None = None
    epoch: int | None = None
    takeovers_total: int = 0
    active_since: str | None = None


class Publisher(Protocol):
    """Where the daemon's figures go (a Prefect artifact and events in the flow; nothing in tests)."""

    def health(self, status: DaemonStatus, previous: FreshnessReport | None) -> None:
        """After every check; ``status.report`` is the new report, ``previous`` the one before (None at first)."""

    def restarted(self, status: DaemonStatus, reason: str) -> None: ...

    def gave_up(self, status: DaemonStatus, message: str) -> None: ...

    def stopped(self, status: DaemonStatus, reason: str) -> None: ...

    def file_crashed_reader(self, status: DaemonStatus, file: str, reason: str) -> None: ...

    def bridge_event(self, status: DaemonStatus, name: str, fields: dict[str, Any]) -> None: ...

    def took_over(self, status: DaemonStatus, reason: str) -> None:
        """Failover: this daemon took the lease (``status.epoch``) and starts its bridge."""

    def stepped_down(self, status: DaemonStatus, reason: str) -> None:
        """Failover: this daemon lost the lease and stopped its bridge."""


class NullPublisher:
    def health(self, status: DaemonStatus, previous: FreshnessReport | None) -> None:
        pass

    def restarted(self, status: DaemonStatus, reason: str) -> None:
        pass

    def gave_up(self, status: DaemonStatus, message: str) -> None:
        pass

    def stopped(self, status: DaemonStatus, reason: str) -> None:
        pass

    def file_crashed_reader(self, status: DaemonStatus, file: str, reason: str) -> None:
        pass

    def bridge_event(self, status: DaemonStatus, name: str, fields: dict[str, Any]) -> None:
        pass

    def took_over(self, status: DaemonStatus, reason: str) -> None:
        pass

    def stepped_down(self, status: DaemonStatus, reason: str) -> None:
        pass


class Publishers:
    """Several publishers as one (the Prefect artifact and events, the Prometheus endpoint).

    One failing publisher must not starve the others or the loop: errors are logged and swallowed.
    """

    def __init__(self, publishers: Sequence[Publisher]) -> None:
        self.publishers = list(publishers)

    def _each(self, method: str, *args: Any) -> None:
        for publisher in self.publishers:
            if not hasattr(publisher, method):
                continue  # a publisher with nothing to say about failover (the Prometheus endpoint)
            try:
                getattr(publisher, method)(*args)
            except Exception as exc:
                logging.getLogger(__name__).warning("%s.%s failed: %s", type(publisher).__name__, method, exc)

    def health(self, status: DaemonStatus, previous: FreshnessReport | None) -> None:
        self._each("health", status, previous)

    def restarted(self, status: DaemonStatus, reason: str) -> None:
        self._each("restarted", status, reason)

    def gave_up(self, status: DaemonStatus, message: str) -> None:
        self._each("gave_up", status, message)

    def stopped(self, status: DaemonStatus, reason: str) -> None:
        self._each("stopped", status, reason)

    def file_crashed_reader(self, status: DaemonStatus, file: str, reason: str) -> None:
        self._each("file_crashed_reader", status, file, reason)

    def bridge_event(self, status: DaemonStatus, name: str, fields: dict[str, Any]) -> None:
        self._each("bridge_event", status, name, fields)

    def took_over(self, status: DaemonStatus, reason: str) -> None:
        self._each("took_over", status, reason)

    def stepped_down(self, status: DaemonStatus, reason: str) -> None:
        self._each("stepped_down", status, reason)
