"""The alerts check: the product's own automations (:func:`scan_bridge.alerts.install_alerts`, kind
``generic``) on the run's Prefect server, posting to a webhook receiver in the harness.

Expected: one alert per state change of the daemon's verdict (status or stale cause), as its log
shows them, per daemon incarnation: ``warning``, ``stale``, ``missing``, ``hazelcast-unavailable``
(verdict ``error``) on entering that state, ``recovered`` on becoming healthy after one of those.
The proactive ``daemon-silent`` alert follows a killed daemon and is counted apart.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from ..webhook_receiver import Received as Message
from ..webhook_receiver import WebhookReceiver
from .processes import Verdict

#: The daemon's verdict -> the alert its state change fires (alerts.alerts()).
ALERT_FOR = {"warning": "warning", "stale": "stale", "missing": "missing", "error": "hazelcast-unavailable"}
#: Verdicts after which "healthy" is a recovery (docs/alerts.md: previous status not healthy, and
#: not "none"): every alerting one, and "down" (the bridge not running), which alerts nothing itself.
UNHEALTHY = set(ALERT_FOR) | {"down"}


@dataclass(slots=True)
class Received:
    at: float
    alert: str
    event: str
    occurred: str


class Receiver(WebhookReceiver):
    """The run's webhook receiver (:class:`~scan_bridge.webhook_receiver.WebhookReceiver` on ``/alert``);
    what arrived, read as alerts."""

    @property
    def url(self) -> str:
        return f"{super().url}/alert"

    @property
    def received(self) -> list[Received]:
        return [_as_alert(message) for message in self.matching(lambda _: True)]


def _as_alert(message: Message) -> Received:
    body = message.body
    if not isinstance(body, dict):
        return Received(message.at, "unreadable", message.raw[:200], "")
    return Received(message.at, str(body.get("alert")), str(body.get("event")), str(body.get("occurred")))


def expected_alerts(verdicts: list[Verdict]) -> Counter[str]:
    """Alerts the daemon's state changes call for, by alert key."""
    out: Counter[str] = Counter()
    previous: dict[int, tuple[str, str | None]] = {}
    for verdict in verdicts:
        state = (verdict.status, verdict.cause)
        before = previous.get(verdict.daemon)
        previous[verdict.daemon] = state
        if before == state:
            continue
        if verdict.status in ALERT_FOR:
            out[ALERT_FOR[verdict.status]] += 1
        elif verdict.status == "healthy" and before is not None and before[0] in UNHEALTHY:
            out["recovered"] += 1
    return out


def judge(verdicts: list[Verdict], received: list[Received]) -> dict[str, Any]:
    """Figures, and the duplicates (one state change alerted twice): those are violations."""
    expected = expected_alerts(verdicts)
    got = Counter(r.alert for r in received if r.alert not in ("daemon-silent", "run-ended"))
    seen: Counter[tuple[str, str, str]] = Counter((r.alert, r.event, r.occurred) for r in received)
    duplicates = [f"{alert} ({event} at {occurred}) x{n}" for (alert, event, occurred), n in seen.items() if n > 1]
    keys = sorted(set(expected) | set(got))
    return {
        "expected": {k: expected.get(k, 0) for k in keys},
        "received": {k: got.get(k, 0) for k in keys},
        "daemon_silent": sum(1 for r in received if r.alert == "daemon-silent"),
        "duplicates": duplicates,
        "more_than_expected": {k: got[k] - expected.get(k, 0) for k in keys if got.get(k, 0) > expected.get(k, 0)},
    }
