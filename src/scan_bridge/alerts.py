"""Alerts through Prefect's own machinery: one notification block and a set of automations.

``deploy.py alerts`` calls :func:`install_alerts`. The daemon already emits an event on every
change of state and a light heartbeat per check (``scan-bridge.heartbeat``, or
``scan-bridge.standby-heartbeat`` from a failover standby: :mod:`daemon_publisher`); here we only
tell Prefect's server what to do with them, so operators find, pause and edit the alerts in the UI
where they manage everything else.

Why one *Custom Webhook* block for every kind, rather than Prefect's Slack/Discord/PagerDuty
blocks: those go through apprise, which only posts to the vendors' own hosts. Then nothing could be
tested end to end against a local receiver, and PagerDuty's "resolve" (same ``dedup_key``) cannot
be expressed. With the custom block the automation's *body* is the whole JSON request, rendered by
Prefect's template engine (``|tojson`` escapes it), so each automation shapes its own message for
the kind: ``{"text": ...}`` for Slack, ``{"content": ...}`` for Discord, an Events API v2 message
for PagerDuty, everything for ``generic``. The URL (and PagerDuty's routing key) sit in the
block's ``secrets``, a ``SecretDict``: the API and UI show them obfuscated, and this module never
prints them.

Alerts by role (failover, docs/high-availability.md): every daemon publishes its own state changes
with its role as a label (:mod:`.state_events`); the alerts about the data match the role that
answers for it (``active``, or ``single`` without failover), so a standby's view alerts nobody,
except its own warning that it cannot reach Hazelcast (it could not take over), and that warning's
recovery.

Safe to run twice: the block is saved with ``overwrite``, automations are matched by their exact
names and updated in place (trigger included: an upgrade's new rules replace the old), and duplicates or former names of ours are removed; an automation of
anyone else's is never touched, whatever it is called.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Literal
from uuid import UUID

from pydantic import SecretStr

from . import names as _names  # the module; names() below lists the automations
from .health_status import UNHEALTHY_EVENT_NAMES, HealthStatus
from .lease import Role
from .state_events import RESPONSIBLE_ROLES

if TYPE_CHECKING:  # Prefect is imported when used: the pure parts (alerts(), request_body()) need none of it
    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.events.schemas.automations import Automation, AutomationCore

AlertKind = Literal["slack", "discord", "pagerduty", "generic"]
KINDS: tuple[str, ...] = ("slack", "discord", "pagerduty", "generic")

BLOCK_NAME = "scan-bridge-alerts"
NAME_PREFIX = "scan-bridge: "
FLOW_NAME = _names.FLOW_NAME
DAEMON_RESOURCES = _names.DAEMON_RESOURCE_PREFIX + "*"
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
# Statuses after which ``scan-bridge.healthy`` is news ("none": the daemon's first check, not a recovery).
UNHEALTHY = UNHEALTHY_EVENT_NAMES

_DAEMON = "scan-bridge {{ event.resource.name }}"
# Names an earlier version gave automations that are no longer in the set (none yet): setting the
# alerts up again removes them, like --remove. Add a name here when an alert is renamed or dropped.
FORMER_NAMES: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Alert:
    """One automation: which events fire it, the message, and how bad it is."""

    key: str
    title: str
    expect: frozenset[str]  # reactive: the events that fire it; proactive: the events that arm it
    text: str  # a Jinja template, rendered by Prefect's server with the triggering event in scope
    severity: Literal["critical", "error", "warning", "info"]
    resolves: bool = False  # PagerDuty: resolve the daemon's incident instead of opening one
    proactive_within_s: float | None = None
    #: Proactive only: events that satisfy the armed trigger like ``expect`` but do not arm it (the other
    #: role's heartbeat; the daemon's goodbye is added to every proactive alert by automation_for).
    satisfied_by: frozenset[str] = frozenset()
    match_labels: tuple[tuple[str, tuple[str, ...]], ...] = ()
    flow_runs: bool = False  # fires on the daemon's flow-run events, not on ours

    @property
    def name(self) -> str:
        return NAME_PREFIX + self.title


def _on(status: HealthStatus) -> frozenset[str]:
    """The daemon's state-change event for ``status``."""
    return frozenset({_names.event(status.event_name)})


#: The alerts about the data match the state events of the daemon that answers for it (the active
#: machine, a single machine): a standby's state changes alert nobody (state_events; docs/high-availability.md).
_RESPONSIBLE = (_names.ROLE_LABEL, RESPONSIBLE_ROLES)
#: A standby's own: it cannot reach Hazelcast, so it cannot take over (a warning, not the data's critical).
_STANDBY = (_names.ROLE_LABEL, (Role.STANDBY.value,))
_ERROR = HealthStatus.ERROR.event_name
#: A standby's every state event but the error: it reaches Hazelcast again, whatever it sees there.
_REACHED = frozenset(_names.event(s.event_name) for s in HealthStatus if s is not HealthStatus.ERROR)


#: The text of a health alert: the daemon, then the report's headline (status once, cause, figures).
_HEADLINE = _DAEMON + ": {{ event.payload.message }}"

#: The active daemon's heartbeat (a single machine's too) and a failover standby's (daemon_publisher.heartbeat_event).
ACTIVE_HEARTBEAT = _names.event(_names.HEARTBEAT_EVENT)
STANDBY_HEARTBEAT = _names.event(_names.STANDBY_HEARTBEAT_EVENT)
#: Either heartbeat satisfies either silence alert: a daemon that changes role (took over, stepped
#: down) answers the trigger its previous heartbeat armed and, with the same event, arms the other.
HEARTBEATS = frozenset({ACTIVE_HEARTBEAT, STANDBY_HEARTBEAT})


def _silent(health_interval_s: float, role: str, consequence: str) -> str:
    """The text of a silence alert: the daemon, what stopped, since when, what it means."""
    return (_DAEMON + f": {role.upper()} SILENT: no health check reported for {silent_after_s(health_interval_s):g} s "
            "(last at {{ event.occurred.isoformat(timespec='seconds') }}, status {{ event.payload.status }}). " + consequence)


def alerts(health_interval_s: float) -> list[Alert]:
    """The alert set for a daemon checking every ``health_interval_s`` seconds."""
    silent_after = silent_after_s(health_interval_s)
    return [
        Alert("warning", "warning", _on(HealthStatus.WARNING), _HEADLINE, "warning", match_labels=(_RESPONSIBLE,)),
        Alert("stale", "stale", _on(HealthStatus.STALE), _HEADLINE, "critical", match_labels=(_RESPONSIBLE,)),
        Alert("missing", "no scan in Hazelcast", _on(HealthStatus.MISSING), _HEADLINE, "critical",
              match_labels=(_RESPONSIBLE,)),
        Alert("hazelcast-unavailable", "Hazelcast unavailable", _on(HealthStatus.ERROR), _HEADLINE, "critical",
              match_labels=(_RESPONSIBLE,)),
        Alert("gave-up", "gave up", frozenset({_names.event(_names.GAVE_UP_EVENT)}),
              _DAEMON + ": GAVE UP on the bridge after {{ event.payload.restarts_total }} restarts: "
              "{{ (event.payload.reason or '').split('\\n')[0] }}", "critical"),
        Alert("run-ended", "daemon run failed or crashed",
              frozenset({"prefect.flow-run.Failed", "prefect.flow-run.Crashed"}),
              "scan-bridge daemon run {{ event.resource.name }} ended {{ event.event.split('.')[-1] }}: "
              "{{ flow_run.state.message }}", "critical", flow_runs=True),
        Alert("recovered", "healthy again", _on(HealthStatus.HEALTHY),
              _DAEMON + ": healthy again (was {{ event.payload.previous_status }}): {{ event.payload.detail }}",
              "info", resolves=True, match_labels=(_RESPONSIBLE, (_names.PREVIOUS_STATUS_LABEL, UNHEALTHY))),
        # Failover: a standby that cannot reach Hazelcast cannot take over. Its own warning, paired with
        # its own recovery; when the cluster is down for everyone, the active's critical alert is the one
        # that says so for the data (docs/high-availability.md, "Alerts by role").
        Alert("standby-hazelcast-unavailable", "standby cannot reach Hazelcast", _on(HealthStatus.ERROR),
              _DAEMON + ": STANDBY: {{ event.payload.message }}. It cannot take over while Hazelcast is out of its "
              "reach; the active machine's own alerts say whether the data is affected.", "warning",
              match_labels=(_STANDBY,)),
        Alert("standby-hazelcast-reachable", "standby reaches Hazelcast again", _REACHED,
              _DAEMON + ": standby reaches Hazelcast again: {{ event.payload.message }}", "info", resolves=True,
              match_labels=(_STANDBY, (_names.PREVIOUS_STATUS_LABEL, (_ERROR,)))),
        Alert("daemon-silent", "daemon silent", frozenset({ACTIVE_HEARTBEAT}),
              _silent(health_interval_s, "daemon",
                      "The daemon, its worker or its machine may be gone: the bridge is unsupervised."),
              "critical", proactive_within_s=silent_after, satisfied_by=HEARTBEATS),
        # Failover (docs/high-availability.md): a standby that is gone leaves the data alone but one
        # fewer machine to take over; quieter than the active's silence.
        Alert("standby-silent", "standby silent", frozenset({STANDBY_HEARTBEAT}),
              _silent(health_interval_s, "standby",
                      "This standby, its worker or its machine may be gone: it cannot take over if the active "
                      "machine is lost. The active machine's bridge is not affected."),
              "warning", proactive_within_s=silent_after, satisfied_by=HEARTBEATS),
    ]


def silent_after_s(health_interval_s: float) -> float:
    """Two health intervals, and at least Prefect's minimum for a proactive trigger (10 s)."""
    return max(2 * health_interval_s, 10.0)


def _json(expression: str) -> str:
    """A Jinja expression rendered as a JSON value, safe for the block's second substitution pass.

    The server renders the automation's body with Jinja; the block then fills its own template
    (PagerDuty's is ``{"routing_key": {{routing_key}}, {{body}}}``) by replacing one placeholder after
    the other, in no fixed order, as plain text. A body holding ``{{routing_key}}`` would then get the
    key pasted into the alert text, and a malformed body. So no text that came from an event may
    carry ``{{`` into that pass: it is written ``{\\u007b``, which a JSON decoder reads back as ``{{``.
    In JSON text ``{{`` occurs only inside strings, so this never touches the structure.
    """
    return "{{ (" + expression + ")|tojson|replace('{{', '{\\\\u007b') }}"


def json_literal(value: object) -> str:
    """``value`` as JSON text for a block template, with the same ``{{`` guard as :func:`_json`."""
    return json.dumps(value).replace("{{", "{\\u007b")


def request_body(alert: Alert, kind: str) -> str:
    """The Jinja template of the whole JSON request for ``kind``; the block posts it as is.

    Every value taken from the event goes through ``tojson`` (see :func:`_json`); our own constants
    (key, severity) are JSON-encoded here. Nothing is interpolated into JSON unescaped.
    """
    text = "{% set text %}" + alert.text + "{% endset %}"
    if kind == "slack":
        return text + '{"text": ' + _json("text") + "}"
    if kind == "discord":
        return text + '{"content": ' + _json("text") + "}"
    if kind == "pagerduty":
        # The routing key is added by the block from its secrets (see block_for); the body is the rest.
        dedup = _json("'scan-bridge/' ~ event.resource.id" if not alert.flow_runs else "'scan-bridge/run/' ~ event.resource.id")
        if alert.resolves:
            return text + '"event_action": "resolve", "dedup_key": ' + dedup
        return (
            text + '"event_action": "trigger", "dedup_key": ' + dedup + ', "payload": {"summary": ' + _json("text[:1000]")
            + ', "source": ' + _json("event.resource.id") + ', "severity": ' + json_literal(alert.severity) + ", "
            '"component": "scan-bridge", "class": ' + json_literal(alert.key) + ', "custom_details": '
            + _json("event.payload") + "}"
        )
    if kind == "generic":
        return (
            text + '{"alert": ' + json_literal(alert.key) + ', "severity": ' + json_literal(alert.severity)
            + ', "text": ' + _json("text") + ', "event": ' + _json("event.event") + ', "occurred": '
            + _json("event.occurred.isoformat()") + ', "resource": ' + _json("event.resource.id")
            + ', "figures": ' + _json("event.payload") + "}"
        )
    raise ValueError(f"unknown alert kind {kind!r}; expected one of {', '.join(KINDS)}")


def block_for(kind: str, webhook: SecretStr, routing_key: SecretStr | None = None) -> CustomWebhookNotificationBlock:
    """The notification block: URL (and routing key) as secrets, the automation's body as the request."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    secrets = {"webhook_url": webhook.get_secret_value()}
    body_template = "{{body}}"
    if kind == "pagerduty":
        if routing_key is None or not routing_key.get_secret_value():
            raise ValueError("--kind pagerduty needs a routing key: --routing-key or SCAN_BRIDGE_ALERT_ROUTING_KEY")
        # The block substitutes by plain text replacement: the key is stored as a JSON string literal.
        secrets["routing_key"] = json_literal(routing_key.get_secret_value())
        body_template = '{"routing_key": {{routing_key}}, {{body}}}'
    return CustomWebhookNotificationBlock(
        name="scan-bridge",
        url="{{webhook_url}}",
        method="POST",
        form_data=body_template,
        headers={"Content-Type": "application/json"},
        secrets=secrets,
        timeout=10,
    )


def automation_for(alert: Alert, kind: str, block_id: UUID) -> AutomationCore:
    """The automation for one alert: a reactive trigger (or the proactive one), one notification."""
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture

    if alert.flow_runs:
        match = {"prefect.resource.id": "prefect.flow-run.*"}
        match_related = {"prefect.resource.role": "flow", "prefect.resource.name": FLOW_NAME}
    else:
        match = {"prefect.resource.id": DAEMON_RESOURCES}
        match.update({label: list(values) for label, values in alert.match_labels})
        match_related = {}
    if alert.proactive_within_s is not None:
        trigger = EventTrigger(
            posture=Posture.Proactive,
            after=set(alert.expect),
            # A daemon that stops on purpose says so; that is not silence. A daemon that changed role
            # answers with the other role's heartbeat (satisfied_by), which arms only the other alert.
            expect=set(alert.expect) | set(alert.satisfied_by) | {_names.event(_names.DAEMON_STOPPED_EVENT)},
            match=match,
            for_each={"prefect.resource.id"},
            threshold=1,
            within=timedelta(seconds=alert.proactive_within_s),
        )
    else:
        trigger = EventTrigger(
            posture=Posture.Reactive,
            expect=set(alert.expect),
            match=match,
            match_related=match_related,
            for_each={"prefect.resource.id"},
            threshold=1,
            within=timedelta(0),
        )
    return AutomationCore(
        name=alert.name,
        description=f"scan-bridge alert ({alert.key}), set up by `python deploy.py alerts --kind {kind}`.",
        enabled=True,
        trigger=trigger,
        actions=[
            SendNotification(
                block_document_id=block_id,
                subject=f"scan-bridge {alert.key}",
                body=request_body(alert, kind),
            )
        ],
    )


@dataclass(frozen=True, slots=True)
class Installed:
    block_name: str
    created: list[str]
    updated: list[str]
    removed: list[str]


def install_alerts(
    webhook: SecretStr,
    kind: str = "generic",
    *,
    health_interval_s: float = 30.0,
    routing_key: SecretStr | None = None,
) -> Installed:
    """Save the block and create or update the automations; idempotent."""
    from prefect.client.orchestration import get_client

    if kind not in KINDS:
        raise ValueError(f"unknown alert kind {kind!r}; expected one of {', '.join(KINDS)}")
    block = block_for(kind, webhook, routing_key)
    block_id = block.save(BLOCK_NAME, overwrite=True)
    wanted = {alert.name: automation_for(alert, kind, block_id) for alert in alerts(health_interval_s)}
    created, updated, removed = [], [], []
    with get_client(sync_client=True) as client:
        seen: set[str] = set()
        for automation in ours(client):
            if automation.name in wanted and automation.name not in seen:
                client.update_automation(automation.id, wanted[automation.name])
                updated.append(automation.name)
                seen.add(automation.name)
            else:  # ours, but no longer in the set (or a duplicate): remove it
                client.delete_automation(automation.id)
                removed.append(automation.name)
        for name, automation in wanted.items():
            if name not in seen:
                client.create_automation(automation)
                created.append(name)
    return Installed(BLOCK_NAME, created, updated, removed)


def ours(client: SyncPrefectClient) -> list[Automation]:
    """The automations this module set up, as the server has them now: those with one of our names.

    By exact name, not by the prefix: an operator's own automation named ``scan-bridge: ...`` (a copy
    of ours, as docs/alerts.md suggests for restarts) is never updated or removed.
    """
    known = set(names()) | set(FORMER_NAMES)
    return [automation for automation in client.read_automations() if automation.name in known]


def remove_alerts() -> list[str]:
    """Delete our automations and the block; the names removed."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect.client.orchestration import get_client

    removed = []
    with get_client(sync_client=True) as client:
        for automation in ours(client):
            client.delete_automation(automation.id)
            removed.append(automation.name)
    try:
        CustomWebhookNotificationBlock.delete(BLOCK_NAME)
    except Exception:  # not there: nothing to delete
        pass
    return removed


def describe(installed: Installed, kind: str) -> Iterable[str]:
    """What ``deploy.py alerts`` prints: names only, never the URL or key."""
    yield f"Notification block {installed.block_name!r} ({kind}) saved; its URL is stored as a secret."
    for title, names in (("created", installed.created), ("updated", installed.updated), ("removed", installed.removed)):
        for name in names:
            yield f"automation {title}: {name}"


def names(health_interval_s: float = 30.0) -> Sequence[str]:
    """The automations' names, as the UI lists them."""
    return [alert.name for alert in alerts(health_interval_s)]
