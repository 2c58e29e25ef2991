"""Alerts by role (docs/high-availability.md): which checks publish a state event, what its labels say,
and which automations Prefect's own trigger matching lets it fire. Pure: no server, no member.

The operator relies on: one alert about the data per incident, from the daemon that answers for it
(the active machine, or a single machine); none from a standby, however its view changes; and one
from a standby that takes over while the data is already bad, though its own view did not change.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from scan_bridge import alerts, names
from scan_bridge.daemon_publisher import PrefectPublisher
from scan_bridge.daemon_status import DaemonStatus
from scan_bridge.health_status import HealthStatus
from scan_bridge.lease import Role
from scan_bridge.lease_elector import SteppedDown, TookOver
from scan_bridge.state_events import RESPONSIBLE_ROLES, responsible, role_label, state_event
from scan_bridge.supervisor import HealthResult, StopRequest
from tests.test_supervisor import HEALTHY, SILENT, STUCK, checked, report
from tests.test_supervisor_failover import FailoverHarness

pytestmark = pytest.mark.unit

ERROR = report(HealthStatus.ERROR)
WARNING = report(HealthStatus.WARNING)


def test_the_role_label_says_active_standby_or_single_and_two_of_them_answer_for_the_data() -> None:
    assert [role_label(r) for r in (Role.ACTIVE, Role.STANDBY, None)] == ["active", "standby", names.SINGLE_MACHINE_ROLE]
    assert set(RESPONSIBLE_ROLES) == {"active", "single"}
    assert [responsible(r) for r in (Role.ACTIVE, Role.STANDBY, None)] == [True, False, True]


def test_a_state_change_is_published_in_every_role_with_the_role_it_had() -> None:
    for role in (Role.STANDBY, Role.ACTIVE, None):
        event = state_event(HEALTHY, SILENT, role, role)
        assert event is not None and event.changed
        assert event.labels() == {names.STATUS_LABEL: "stale", names.PREVIOUS_STATUS_LABEL: "healthy",
                                  names.CAUSE_LABEL: "scanner silent", names.ROLE_LABEL: role_label(role)}
        assert state_event(SILENT, SILENT, role, role) is None  # no change, no event


def test_a_takeover_publishes_the_unchanged_state_again_as_active_and_a_step_down_does_not() -> None:
    again = state_event(SILENT, SILENT, Role.ACTIVE, Role.STANDBY)
    assert again is not None and not again.changed
    assert (again.name, again.previous_status, again.role) == ("stale", "stale", "active")
    assert state_event(SILENT, SILENT, Role.STANDBY, Role.ACTIVE) is None  # stepping down: nothing to say
    assert state_event(SILENT, SILENT, Role.ACTIVE, Role.ACTIVE) is None  # said already in this role
    assert state_event(None, SILENT, Role.ACTIVE, None).changed  # the first check: a change, as always
    # Taking over while the view changes: the change, from the active (recovered: "healthy again" is news).
    recovered = state_event(SILENT, HEALTHY, Role.ACTIVE, Role.STANDBY)
    assert recovered is not None and (recovered.name, recovered.previous_status, recovered.role) == ("healthy", "stale", "active")


class Recording(PrefectPublisher):
    """The daemon's own publisher, its events recorded instead of sent."""

    def __init__(self) -> None:
        super().__init__(logging.getLogger("test-state-events"), "roles")
        self.sent: list[tuple[str, dict[str, str]]] = []

    def _event(self, name: str, payload: dict[str, Any], light: bool = False, labels: dict[str, str] | None = None) -> None:
        if not light:
            self.sent.append((name, {**self.resource, **(labels or {})}))

    def _artifact(self, status: DaemonStatus, force: bool) -> None:
        pass

    def state_events(self) -> list[tuple[str, str, str]]:
        return [(name, r[names.PREVIOUS_STATUS_LABEL], r[names.ROLE_LABEL]) for name, r in self.sent
                if names.ROLE_LABEL in r]


def test_the_supervisor_and_publisher_announce_a_takeover_during_staleness_once() -> None:
    """The whole loop: a standby sees the data go stale, takes over while it stays stale, checks twice
    more, steps down, sees it recover. Its state events: each change with its role, plus the stale
    state once more from the active at its first check after the takeover."""
    h = FailoverHarness()
    publisher = Recording()
    h.supervisor.publisher = publisher
    h.run([
        HealthResult(HEALTHY, None), HealthResult(SILENT, None), TookOver(2, "machine-a did not renew"),
        checked(SILENT, 101), checked(SILENT, 101), SteppedDown("machine-c holds the lease now (epoch 3)"),
        HealthResult(SILENT, None), HealthResult(HEALTHY, None), StopRequest("over"),
    ])
    assert publisher.state_events() == [
        ("healthy", "none", "standby"), ("stale", "healthy", "standby"),
        ("stale", "stale", "active"),  # the takeover: the same state, now from the machine that answers for it
        ("healthy", "stale", "standby"),  # after stepping down: published, but alerts nobody (below)
    ]


def _resource(name: str, publisher: Recording) -> Any:
    from prefect.server.events.schemas.events import ReceivedEvent

    (event_name, resource), = [(n, r) for n, r in publisher.sent if n == name][-1:]
    return ReceivedEvent(event=names.event(event_name), resource=resource, payload={}, id=uuid.uuid4(),
                         occurred=datetime.now(UTC))


def _fired(event: Any) -> set[str]:
    """The alerts whose trigger covers ``event``, by Prefect's own server-side matching."""
    from prefect.server.events.schemas.automations import EventTrigger

    fired = set()
    for alert in alerts.alerts(30.0):
        if alert.proactive_within_s is not None:
            continue
        trigger = alerts.automation_for(alert, "generic", uuid.uuid4()).trigger
        if EventTrigger.model_validate(trigger.model_dump(mode="json")).covers(event):
            fired.add(alert.key)
    return fired


@pytest.mark.parametrize("role", [Role.ACTIVE, None, Role.STANDBY], ids=["active", "single", "standby"])
def test_the_data_alerts_fire_for_the_active_and_a_single_machine_and_never_for_a_standby(role: Role | None) -> None:
    """Each state change the publisher sends, against every reactive automation's trigger."""
    fired: dict[str, set[str]] = {}
    for before, after in ((HEALTHY, WARNING), (WARNING, STUCK), (STUCK, HEALTHY), (HEALTHY, ERROR), (ERROR, HEALTHY),
                          (HEALTHY, report(HealthStatus.MISSING)), (report(HealthStatus.MISSING), ERROR),
                          (ERROR, SILENT)):
        publisher = Recording()
        publisher.health(DaemonStatus(report=before, role=role), None)
        publisher.health(DaemonStatus(report=after, role=role), before)
        fired[f"{before.status.value}->{after.status.value}"] = _fired(_resource(after.status.event_name, publisher))
    if responsible(role):
        assert fired == {"healthy->warning": {"warning"}, "warning->stale": {"stale"}, "stale->healthy": {"recovered"},
                         "healthy->error": {"hazelcast-unavailable"}, "error->healthy": {"recovered"},
                         "healthy->missing": {"missing"}, "missing->error": {"hazelcast-unavailable"},
                         "error->stale": {"stale"}}
    else:  # a standby: only its own pair about reaching Hazelcast (it cannot take over without it)
        assert fired == {"healthy->warning": set(), "warning->stale": set(), "stale->healthy": set(),
                         "healthy->error": {"standby-hazelcast-unavailable"}, "error->healthy": {"standby-hazelcast-reachable"},
                         "healthy->missing": set(), "missing->error": {"standby-hazelcast-unavailable"},
                         "error->stale": {"standby-hazelcast-reachable"}}


def test_a_takeover_during_staleness_fires_stale_once_and_a_stepped_down_recovery_fires_nothing() -> None:
    publisher = Recording()
    standby, active = DaemonStatus(report=SILENT, role=Role.STANDBY), DaemonStatus(report=SILENT, role=Role.ACTIVE)
    publisher.health(DaemonStatus(report=HEALTHY, role=Role.STANDBY), None)
    publisher.health(standby, HEALTHY)
    assert _fired(_resource("stale", publisher)) == set()  # the standby saw it: nobody is alerted by it
    publisher.health(active, SILENT)
    assert len([n for n, _ in publisher.sent if n == "stale"]) == 2
    assert _fired(_resource("stale", publisher)) == {"stale"}  # the takeover: once, from the active
    publisher.health(active, SILENT)
    assert len([n for n, _ in publisher.sent if n == "stale"]) == 2  # and not again
    publisher.health(DaemonStatus(report=SILENT, role=Role.STANDBY), SILENT)  # stepped down
    publisher.health(DaemonStatus(report=HEALTHY, role=Role.STANDBY), SILENT)
    assert _fired(_resource("healthy", publisher)) == set()  # the new active's recovery is the one
