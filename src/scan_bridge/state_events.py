"""Which health checks publish a state-change event, and the labels it carries (pure).

The alerts about the data (:mod:`.alerts`: warning, stale, no scan in Hazelcast, Hazelcast
unavailable, healthy again) must come from the one daemon that answers for the data: the active
machine under failover, or the single machine. Every daemon checks the data and publishes its own
state changes (the UI shows each machine's view), so each event says the daemon's role in a label
(:data:`names.ROLE_LABEL`) and those automations match :data:`RESPONSIBLE_ROLES`; a standby's
state changes alert nobody about the data (docs/high-availability.md, "Alerts by role").

That alone would lose an alert: a standby sees the data go stale, takes over while it is still
stale, and its next check is no state change, so nothing would be published. So a daemon whose role
at this check answers for the data while its role at the check before did not (it took over)
publishes its state again, changed or not: "stale" from the machine that now keeps the data. A
daemon that steps down publishes nothing for it; from its next state change on its events carry
``standby`` and alert nobody, its recovery included (the new active's does).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import names
from .daemon_status import status_changed
from .health_classify import FreshnessReport
from .health_status import NO_STATUS
from .lease import Role

#: The role label's values that answer for the data: the failover's active machine, a single machine.
RESPONSIBLE_ROLES: tuple[str, ...] = (Role.ACTIVE.value, names.SINGLE_MACHINE_ROLE)


def role_label(role: Role | None) -> str:
    """The role label's value: the lease role under failover (``active``, ``standby``), else ``single``."""
    return names.SINGLE_MACHINE_ROLE if role is None else role.value


def responsible(role: Role | None) -> bool:
    """Whether a daemon in ``role`` answers for the data (its state events alert about it)."""
    return role_label(role) in RESPONSIBLE_ROLES


@dataclass(frozen=True, slots=True)
class StateEvent:
    """One state-change event: ``scan-bridge.<name>`` and the labels automations match."""

    name: str  # the status's event name: ``stale``, ``hazelcast-unavailable``
    previous_status: str  # the event name of the status at the check before, or ``none`` at the first
    cause: str  # the stale cause, or ``none``
    role: str  # role_label() of the daemon when it checked
    changed: bool  # a new status or cause; False: the same state again, because the daemon took over

    def labels(self) -> dict[str, str]:
        return {
            names.STATUS_LABEL: self.name,
            names.PREVIOUS_STATUS_LABEL: self.previous_status,
            names.CAUSE_LABEL: self.cause,
            names.ROLE_LABEL: self.role,
        }


def state_event(
    previous: FreshnessReport | None, report: FreshnessReport, role: Role | None, role_before: Role | None
) -> StateEvent | None:
    """The state-change event this check publishes, or None.

    ``previous`` and ``role_before`` are the report and the role at this daemon's check before (None,
    None at its first). Published: a new status or cause, whatever the role; and the same state
    again when the daemon has taken over since that check (see the module's docstring).
    """
    changed = status_changed(previous, report)
    took_over = previous is not None and responsible(role) and not responsible(role_before)
    if not changed and not took_over:
        return None
    return StateEvent(
        name=report.status.event_name,
        previous_status=NO_STATUS if previous is None else previous.status.event_name,
        cause=report.cause.value if report.cause is not None else NO_STATUS,
        role=role_label(role),
        changed=changed,
    )
