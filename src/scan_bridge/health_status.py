"""The health statuses, with everything that is decided per status: exit code, severity, event name.

One enum, so a new status is one line here plus its rule in :mod:`.health_classify`; the CLI's exit
codes, the history's ranking, the event names automations match and the alert set all derive from it.
Pure: no I/O, imported by the daemon, the CLI and the history alike.
"""

from __future__ import annotations

from enum import Enum


class HealthStatus(str, Enum):
    """How fresh the data is (HEALTHY/WARNING/STALE) or why we cannot tell (DOWN/ERROR/MISSING)."""

    HEALTHY = "healthy"
    WARNING = "warning"
    STALE = "stale"
    DOWN = "down"
    ERROR = "error"
    MISSING = "missing"

    @property
    def exit_code(self) -> int:
        """The exit code of ``deploy.py health`` and ``python -m scan_bridge.health``.

        0 healthy, 1 warning, 2 stale/missing/down (the data is not usable), 3 error (Hazelcast did not
        answer: we cannot tell). 3 and not 2 for an error, so a script can tell "the data is bad" from
        "the check could not run" (the two CLIs once disagreed: 2 vs 3).
        """
        return _EXIT_CODES[self]

    @property
    def severity(self) -> int:
        """Rank, worst highest (see :data:`SEVERITY_ORDER`)."""
        return SEVERITY_ORDER.index(self)

    @property
    def event_name(self) -> str:
        """The name of the daemon's state-change event: ``scan-bridge.<event_name>``.

        ``error`` is named for what it means to an operator: Hazelcast is unavailable.
        """
        return "hazelcast-unavailable" if self is HealthStatus.ERROR else self.value

    @property
    def label(self) -> str:
        """How the status is shown to people: ``WARNING``."""
        return self.value.upper()


class StaleCause(str, Enum):
    """Why data is stale; decides whether a restart can help."""

    BRIDGE_STUCK = "bridge stuck"
    SCANNER_SILENT = "scanner silent"
    BRIDGE_BUSY = "bridge busy"  # newer files on disk, and a fresh heartbeat written between files: catching up
    DISK_UNREADABLE = "disk not readable"  # the folder that may hold newer scans cannot be listed: rights, a hung mount


_EXIT_CODES = {
    HealthStatus.HEALTHY: 0,
    HealthStatus.WARNING: 1,
    HealthStatus.STALE: 2,
    HealthStatus.MISSING: 2,
    HealthStatus.DOWN: 2,
    HealthStatus.ERROR: 3,
}

#: Worst last. For whoever reads the data: healthy and warning mean the data is there and fairly
#: fresh; missing means there is no latest scan at all (usually a fresh cluster before the first
#: scan) and is ranked below stale, which means readers are served old data while believing it
#: current; down means the bridge is not running, so nothing will get fresher until it is restarted;
#: error means Hazelcast itself did not answer, so no reader can read anything and we cannot even tell.
SEVERITY_ORDER: tuple[HealthStatus, ...] = (
    HealthStatus.HEALTHY,
    HealthStatus.WARNING,
    HealthStatus.MISSING,
    HealthStatus.STALE,
    HealthStatus.DOWN,
    HealthStatus.ERROR,
)

#: Event names of the statuses after which ``scan-bridge.healthy`` is news (a recovery).
UNHEALTHY_EVENT_NAMES: tuple[str, ...] = tuple(s.event_name for s in SEVERITY_ORDER if s is not HealthStatus.HEALTHY)

#: The event-name spelling of "no status yet" (the previous status of a daemon's first check).
NO_STATUS = "none"


def status_label(status: HealthStatus, cause: StaleCause | None) -> str:
    """``STALE (scanner silent)``: the status, and the cause when there is one. Shown once per message."""
    return status.label + (f" ({cause.value})" if cause is not None else "")
