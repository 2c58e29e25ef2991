"""Alerts end to end: ``deploy.py alerts`` against a real Prefect server, the daemon as a real process,
a real member and bridge, and a webhook receiver on 127.0.0.1 standing in for Slack/Discord/PagerDuty.

Each test names its daemon (``SCAN_BRIDGE_DAEMON_NAME``) and looks only at messages about it, so a late
message about another test's daemon cannot be mistaken for its own. Automations are server-wide: each
test installs its kind again (which also exercises "safe to run twice").
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx
import pytest
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

from scan_bridge import alerts
from scan_bridge.lease import Role
from scan_bridge.control import project_dir

from .daemon_fixtures import Scanner, wait_connected
from .prefect_support import PrefectServer, RunReader, clean_env, free_port
from .support import unique_maps, wait_for
from .webhook_receiver import WebhookReceiver

# Proactive triggers are evaluated every 5 s on the server (PREFECT_SERVER_EVENTS_PROACTIVE_GRANULARITY).
PROACTIVE_GRANULARITY_S = 5.0


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    r = WebhookReceiver()
    yield r
    r.close()


def deploy_alerts(server: PrefectServer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "deploy.py", "alerts", *args],
        cwd=project_dir(),
        env=server.env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )


def install(server: PrefectServer, receiver: WebhookReceiver, kind: str, secret: str, *extra: str) -> str:
    result = deploy_alerts(server, "--webhook", f"{receiver.url}/hook/{secret}", "--kind", kind, "--health-interval", "1", *extra)
    assert result.returncode == 0, result.stderr
    return result.stdout


def about(name: str):
    """Messages that mention daemon ``name`` (every kind's text does)."""
    return lambda m: name in m.raw


def events(server: PrefectServer, event: str, resource_id: str) -> list[dict]:
    response = httpx.post(
        f"{server.api_url}/events/filter",
        json={"filter": {"event": {"name": [event]}, "resource": {"id": [resource_id]}}, "limit": 50},
        timeout=10,
    )
    response.raise_for_status()
    return response.json()["events"]


def health_lines(run: RunReader, status: str) -> int:
    return run.count(f"Health: {status}")


# --------------------------------------------------------------------------------------------------


def test_alerts_command_is_safe_twice_and_keeps_the_webhook_secret(prefect_server, client, receiver):
    secret = f"T0KEN-{uuid.uuid4().hex}"
    before = alerts.ours(client)  # none on a fresh server; another test of the module may have set them up
    first = deploy_alerts(prefect_server, "--webhook", f"{receiver.url}/{secret}", "--kind", "slack")
    second = deploy_alerts(prefect_server, "--webhook", f"{receiver.url}/{secret}", "--kind", "slack")
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    assert f"automation {'updated' if before else 'created'}: scan-bridge: stale" in first.stdout, first.stdout
    for name in alerts.names():
        assert f"automation updated: {name}" in second.stdout, second.stdout
    assert "created" not in second.stdout and "removed" not in second.stdout, second.stdout
    for output in (first.stdout, first.stderr, second.stdout, second.stderr):
        assert secret not in output

    ours = [a for a in client.read_automations() if a.name.startswith(alerts.NAME_PREFIX)]
    assert sorted(a.name for a in ours) == sorted(alerts.names())
    assert all(a.enabled for a in ours)
    silent = next(a for a in ours if a.name == alerts.NAME_PREFIX + "daemon silent")
    assert silent.trigger.posture.value == "Proactive"
    assert silent.trigger.within.total_seconds() == alerts.silent_after_s(30.0)

    # What the API and the UI read back: the URL obfuscated, in the block and in every automation.
    blocks = httpx.post(f"{prefect_server.api_url}/block_documents/filter", json={}, timeout=10).text
    automations = httpx.post(f"{prefect_server.api_url}/automations/filter", json={}, timeout=10).text
    assert alerts.BLOCK_NAME in blocks
    assert secret not in blocks and secret not in automations

    # deploy.py status counts them, and names one paused in the UI.
    client.pause_automation(silent.id)
    status = subprocess.run([sys.executable, "deploy.py", "status"], cwd=project_dir(), env=prefect_server.env(),
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert "Alerts        : 10 of 11 automations enabled (paused: daemon silent)" in status.stdout, status.stdout
    client.resume_automation(silent.id)


def test_alerts_command_rejects_bad_input_in_one_line(prefect_server, receiver):
    not_url = deploy_alerts(prefect_server, "--webhook", "hooks.slack.com/services/SECRETPART")
    assert not_url.returncode == 2
    assert not_url.stderr.strip() == "alerts: --webhook is not an http(s) URL (value not shown: it is a secret)"
    from_env = subprocess.run([sys.executable, "deploy.py", "alerts"], cwd=project_dir(), stdin=subprocess.DEVNULL,
                              env={**prefect_server.env(), "SCAN_BRIDGE_ALERT_WEBHOOK_URL": "hooks.slack.com/SECRETPART"},
                              capture_output=True, text=True, timeout=120)
    assert from_env.returncode == 2
    assert from_env.stderr.strip() == "alerts: SCAN_BRIDGE_ALERT_WEBHOOK_URL is not an http(s) URL (value not shown: it is a secret)"
    no_key = deploy_alerts(prefect_server, "--webhook", f"{receiver.url}/x", "--kind", "pagerduty")
    assert no_key.returncode == 2
    assert len(no_key.stderr.strip().splitlines()) == 1 and "routing key" in no_key.stderr


def test_alerts_remove_takes_ours_away_and_leaves_the_rest(prefect_server, client, receiver):
    """``--remove``: every automation of ours and our block go; an operator's own automations and blocks
    stay, including one named like ours (docs/alerts.md suggests copying one for restarts)."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock
    from prefect.events.actions import DoNothing
    from prefect.events.schemas.automations import AutomationCore, EventTrigger
    from prefect.exceptions import ObjectNotFound
    from prefect.settings import PREFECT_API_URL, temporary_settings

    install(prefect_server, receiver, "slack", "remove-secret")
    slug = CustomWebhookNotificationBlock.get_block_type_slug()
    foreign_names = ["ops: disk full", alerts.NAME_PREFIX + "bridge restarted"]
    foreign_ids: list = []
    foreign_block = None
    try:
        foreign_ids += [
            client.create_automation(AutomationCore(name=foreign, trigger=EventTrigger(expect={"scan-bridge.bridge-restarted"}),
                                                    actions=[DoNothing()]))
            for foreign in foreign_names
        ]
        with temporary_settings({PREFECT_API_URL: prefect_server.api_url}):
            foreign_block = CustomWebhookNotificationBlock(name="ops", url="http://127.0.0.1:9/ops").save("ops-pager", overwrite=True)
        again = install(prefect_server, receiver, "slack", "remove-secret")  # setting up again leaves them alone too
        assert "removed" not in again, again

        result = deploy_alerts(prefect_server, "--remove")
        assert result.returncode == 0, result.stderr
        assert sorted(line.removeprefix("automation removed: ") for line in result.stdout.splitlines()
                      if line.startswith("automation removed: ")) == sorted(alerts.names())
        assert f"{len(alerts.names())} automation(s) removed" in result.stdout, result.stdout
        left = {a.id: a.name for a in client.read_automations()}
        assert not set(alerts.names()) & set(left.values()), left
        assert [left.get(i) for i in foreign_ids] == foreign_names
        with pytest.raises(ObjectNotFound):
            client.read_block_document_by_name(alerts.BLOCK_NAME, slug)
        assert client.read_block_document_by_name("ops-pager", slug).id == foreign_block

        twice = deploy_alerts(prefect_server, "--remove")
        assert twice.returncode == 0 and "0 automation(s) removed" in twice.stdout, twice.stdout + twice.stderr
    finally:
        for automation_id in foreign_ids:
            if automation_id in {a.id for a in client.read_automations()}:  # gone already when the test failed
                client.delete_automation(automation_id)
        if foreign_block is not None:
            client.delete_block_document(foreign_block)


@pytest.mark.parametrize("args", [("--webhook", "http://127.0.0.1:9/hook", "--kind", "slack"), ("--remove",), ()],
                         ids=["webhook", "remove", "url-from-env"])
def test_alerts_without_an_api_says_so_in_one_line(tmp_path, args):
    url = f"http://127.0.0.1:{free_port()}/api"  # nothing listens there
    env = clean_env(PREFECT_HOME=str(tmp_path / "prefect-home"), PREFECT_API_URL=url,
                    SCAN_BRIDGE_ALERT_WEBHOOK_URL="http://127.0.0.1:9/from-env")
    result = subprocess.run([sys.executable, "deploy.py", "alerts", *args], cwd=project_dir(), env=env,
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"Prefect API not reachable at {url} "), lines[0]
    assert "/from-env" not in result.stderr and "/hook" not in result.stderr


def test_url_from_the_environment_and_the_missing_and_unavailable_alerts_reach_the_receiver(
        prefect_server, client, local_cluster_factory, start_daemon, receiver, record_property):
    """Generic format, the URL only in SCAN_BRIDGE_ALERT_WEBHOOK_URL. One daemon on a private member:
    its maps are empty and no scanner writes (no scan in Hazelcast), then the member is killed
    (Hazelcast unavailable)."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    cluster = local_cluster_factory(1)
    name = f"alerts-{uuid.uuid4().hex[:8]}"
    secret = f"env-T0KEN-{uuid.uuid4().hex}"
    result = subprocess.run(
        [sys.executable, "deploy.py", "alerts", "--kind", "generic", "--health-interval", "1"],
        cwd=project_dir(), env={**prefect_server.env(), "SCAN_BRIDGE_ALERT_WEBHOOK_URL": f"{receiver.url}/hook/{secret}"},
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "automation updated: scan-bridge: no scan in Hazelcast" in result.stdout \
        or "automation created: scan-bridge: no scan in Hazelcast" in result.stdout, result.stdout
    assert secret not in result.stdout + result.stderr
    slug = CustomWebhookNotificationBlock.get_block_type_slug()
    api = prefect_server.api_url
    block = httpx.get(f"{api}/block_types/slug/{slug}/block_documents/name/{alerts.BLOCK_NAME}", timeout=10)
    block.raise_for_status()
    blocks = httpx.post(f"{api}/block_documents/filter", json={}, timeout=10).text
    automations = httpx.post(f"{api}/automations/filter", json={}, timeout=10).text
    assert "webhook_url" in block.text  # the block holds it, obfuscated
    for text in (block.text, blocks, automations):
        assert secret not in text

    hz = {**unique_maps(), "SCAN_BRIDGE_HAZELCAST_MEMBERS": ",".join(cluster.members),
          "SCAN_BRIDGE_HAZELCAST_CLUSTER_NAME": cluster.cluster_name}
    started = time.monotonic()
    start_daemon(hz, SCAN_BRIDGE_DAEMON_NAME=name)
    missing = receiver.wait(lambda m: about(name)(m) and m.body.get("alert") == "missing", 120, "the no-scan alert")[0]
    record_property("missing_alert_after_start_s", round(missing.at - started, 2))
    assert missing.path == f"/hook/{secret}"
    assert missing.content_type == "application/json"
    assert missing.body["severity"] == "critical" and missing.body["event"] == "scan-bridge.missing"
    assert missing.body["resource"] == f"scan-bridge.daemon.{name}"
    assert missing.body["text"].startswith(f"scan-bridge {name}: MISSING: no latest_eigen_scan in "), \
        missing.body["text"]
    assert missing.body["figures"]["status"] == "missing"

    cluster.stop_member(0, kill=True)
    killed = time.monotonic()
    unavailable = receiver.wait(lambda m: about(name)(m) and m.body.get("alert") == "hazelcast-unavailable" and m.at > killed,
                                60, "the Hazelcast-unavailable alert after the kill")[0]
    record_property("unavailable_alert_after_kill_s", round(unavailable.at - killed, 2))
    assert unavailable.path == f"/hook/{secret}"
    assert unavailable.body["event"] == "scan-bridge.hazelcast-unavailable"
    assert unavailable.body["text"].startswith(f"scan-bridge {name}: ERROR: "), unavailable.body["text"]
    assert cluster.members[0] in unavailable.body["text"]
    assert unavailable.body["figures"]["status"] == "error"


def test_silent_scanner_alerts_once_then_recovers(prefect_server, client, scans, scanner, hz_env, start_daemon, receiver,
                                                  record_property):
    """PagerDuty format: a trigger per state change, and a resolve with the same dedup key."""
    name = f"alerts-{uuid.uuid4().hex[:8]}"
    routing_key = f"rk-{uuid.uuid4().hex}"
    stale_after, interval = 4.0, 1.0
    daemon = start_daemon(hz_env, SCAN_BRIDGE_DAEMON_NAME=name, SCAN_BRIDGE_STALE_AFTER_S="4", SCAN_BRIDGE_WARN_AFTER_S="2")
    run = RunReader(client, daemon.wait_flow_run_id())
    # Alerts set up once the daemon is healthy: with checks every second, the very first one may come
    # before the bridge's first push (MISSING), a transition that is not what this test is about.
    wait_for(lambda: health_lines(run, "HEALTHY") >= 1, 60, "a healthy check", 0.2)
    output = install(prefect_server, receiver, "pagerduty", "pd-secret", "--routing-key", routing_key)
    assert routing_key not in output

    # Healthy for a while: one heartbeat event per check, and not a single message.
    healthy = health_lines(run, "HEALTHY")
    wait_for(lambda: health_lines(run, "HEALTHY") >= healthy + 5, 60, "five more healthy checks", 0.2)
    resource = f"scan-bridge.daemon.{name}"
    beats = wait_for(lambda: (lambda e: e if len(e) >= 5 else None)(events(prefect_server, "scan-bridge.heartbeat", resource)),
                     15, "five heartbeat events", 0.3)
    assert {"status", "data_age_s", "scan_number"} <= set(beats[0]["payload"])
    assert beats[0]["related"] == [], "light: without the run, flow and deployment as related resources"
    changes = events(prefect_server, "scan-bridge.healthy", resource)
    assert changes and "prefect.flow-run" in json.dumps(changes[0]["related"]), "state changes keep them (for templates)"
    assert receiver.matching(about(name)) == []
    # A daemon with its own name keeps its own health artifact (and history).
    own = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[f"scan-bridge-health-{name}"])))
    assert own and "## Scan bridge: HEALTHY" in own[0].data

    scanner.stop()
    stopped = time.monotonic()
    stale = receiver.wait(lambda m: about(name)(m) and "STALE" in m.raw, stale_after + interval + 5, "the stale alert")[0]
    record_property("stale_alert_after_s", round(stale.at - stopped, 2))
    assert stale.at - stopped <= stale_after + interval + 5
    assert stale.path.startswith("/hook/pd-secret")
    body = stale.body
    assert body["routing_key"] == routing_key and body["event_action"] == "trigger"
    assert body["dedup_key"] == f"scan-bridge/{resource}"
    assert body["payload"]["severity"] == "critical" and body["payload"]["class"] == "stale"
    assert "STALE (scanner silent)" in body["payload"]["summary"]
    assert body["payload"]["custom_details"]["cause"] == "scanner silent"
    assert body["payload"]["custom_details"]["scan_number"] is not None

    # The state stays the same for several more checks: no further alert (only the warning before it).
    seen = health_lines(run, "STALE (scanner silent)")
    wait_for(lambda: health_lines(run, "STALE (scanner silent)") >= seen + 6, 30, "six more stale checks", 0.2)
    classes = [m.body["payload"]["class"] for m in receiver.matching(about(name))]
    # A warning comes first when a check fell between warn (2 s) and stale (4 s) age; a slow check may skip it.
    assert classes in (["warning", "stale"], ["stale"]), classes

    resumed = Scanner(scans)
    try:
        resolve = receiver.wait(lambda m: m.body.get("event_action") == "resolve"
                                and m.body.get("dedup_key") == f"scan-bridge/{resource}", 30, "the recovery")[0]
        assert resolve.body["routing_key"] == routing_key
        healthy = health_lines(run, "HEALTHY")
        wait_for(lambda: health_lines(run, "HEALTHY") >= healthy + 5, 30, "five more healthy checks", 0.2)
        mine = receiver.matching(lambda m: m.body.get("dedup_key") == f"scan-bridge/{resource}")
        assert [m.body["event_action"] for m in mine] == ["trigger"] * len(classes) + ["resolve"]
    finally:
        resumed.stop()


@pytest.mark.extended  # ~35 s; the same test runs in the default suite on PostgreSQL (test_on_postgres.py)
def test_killed_daemon_alerts_daemon_silent(prefect_server, client, scanner, hz_env, view, start_daemon, receiver, record_property):
    """Slack format. SIGKILL: no goodbye event, so the proactive automation notices the silence."""
    killed_daemon_alerts_daemon_silent(prefect_server, client, scanner, hz_env, view, start_daemon, receiver, record_property)


def killed_daemon_alerts_daemon_silent(prefect_server, client, scanner, hz_env, view, start_daemon, receiver, record_property):
    """The body of the killed-daemon test, shared with test_on_postgres.py (which runs it by default)."""
    name = f"alerts-{uuid.uuid4().hex[:8]}"
    daemon = start_daemon(hz_env, SCAN_BRIDGE_DAEMON_NAME=name)
    run = RunReader(client, daemon.wait_flow_run_id())
    wait_connected(view, daemon.bridge_pid())
    wait_for(lambda: health_lines(run, "HEALTHY") >= 1, 60, "a healthy check", 0.2)
    install(prefect_server, receiver, "slack", "slack-secret")
    healthy = health_lines(run, "HEALTHY")
    wait_for(lambda: health_lines(run, "HEALTHY") >= healthy + 3, 60, "three more healthy checks (heartbeats arm it)", 0.2)

    daemon.signal(signal.SIGKILL)
    killed = time.monotonic()
    silent_after = alerts.silent_after_s(1.0)
    limit = silent_after + PROACTIVE_GRANULARITY_S + 5
    message = receiver.wait(lambda m: about(name)(m) and "DAEMON SILENT" in m.raw, limit, "the daemon-silent alert")[0]
    record_property("silent_alert_after_s", round(message.at - killed, 2))
    assert message.at - killed <= limit
    assert set(message.body) == {"text"}, "Slack's incoming-webhook shape"
    assert message.body["text"].startswith(f"scan-bridge {name}: DAEMON SILENT")
    # Fires once per silence, not once per evaluation: two more evaluations (every 5 s) after the
    # first message, counted from its arrival, bring nothing more.
    first = message.at
    receiver.assert_none(lambda m: about(name)(m) and m is not message, first + 2 * PROACTIVE_GRANULARITY_S + 1,
                         "a second message about the killed daemon")
    assert [m.body["text"].split(":")[1].strip() for m in receiver.matching(about(name))] == ["DAEMON SILENT"]


@pytest.mark.extended  # ~30 s: CI only, see pyproject.toml
def test_stopped_daemon_is_not_silent_and_its_crashed_run_alerts(prefect_server, client, scanner, hz_env, start_daemon, receiver):
    """Discord format. A deliberate stop says goodbye (scan-bridge.daemon-stopped): no 'daemon silent'.
    A standalone daemon stopped by SIGTERM ends Crashed in Prefect, which alerts as such."""
    name = f"alerts-{uuid.uuid4().hex[:8]}"
    daemon = start_daemon(hz_env, SCAN_BRIDGE_DAEMON_NAME=name)
    run = RunReader(client, daemon.wait_flow_run_id())
    wait_for(lambda: health_lines(run, "HEALTHY") >= 1, 60, "a healthy check", 0.2)
    install(prefect_server, receiver, "discord", "discord-secret")
    healthy = health_lines(run, "HEALTHY")
    wait_for(lambda: health_lines(run, "HEALTHY") >= healthy + 3, 60, "three more healthy checks (heartbeats arm it)", 0.2)
    run_name = run.flow_run().name

    daemon.signal(signal.SIGTERM)
    assert daemon.wait(30) == 0
    stopped = time.monotonic()
    goodbye = wait_for(lambda: events(prefect_server, "scan-bridge.daemon-stopped", f"scan-bridge.daemon.{name}"), 10,
                       "the daemon-stopped event", 0.2)
    assert len(goodbye) == 1 and goodbye[0]["payload"]["reason"] == "SIGTERM"
    crashed = receiver.wait(lambda m: run_name in m.raw, 30, "the run-ended alert")[0]
    assert set(crashed.body) == {"content"}, "Discord's webhook shape"
    assert f"scan-bridge daemon run {run_name} ended Crashed" in crashed.body["content"]

    # The window in which a killed daemon's silence alerts (test above), counted from the exit: the
    # last heartbeat came before it. Waited out in full.
    limit = alerts.silent_after_s(1.0) + PROACTIVE_GRANULARITY_S + 5
    receiver.assert_none(lambda m: about(name)(m) and "DAEMON SILENT" in m.raw, stopped + limit,
                         "a daemon-silent alert after a deliberate stop")
    assert time.monotonic() - stopped >= limit


def test_gave_up_alerts_with_figures_and_the_failed_run(prefect_server, client, scanner, hz_env, view, start_daemon, receiver):
    """Generic format: the alert, its severity, the event and the whole health report as figures."""
    name = f"alerts-{uuid.uuid4().hex[:8]}"
    install(prefect_server, receiver, "generic", "generic-secret")
    daemon = start_daemon(hz_env, SCAN_BRIDGE_DAEMON_NAME=name, SCAN_BRIDGE_MAX_RESTARTS="1",
                          SCAN_BRIDGE_RESTART_DELAY_S="0.5")
    run = RunReader(client, daemon.wait_flow_run_id())
    previous = None
    for _crash in range(2):
        pid = daemon.bridge_pid(timeout=30, other_than=previous)
        wait_connected(view, pid)
        os.kill(pid, signal.SIGKILL)
        previous = pid
    assert daemon.wait(60) != 0
    run_name = run.flow_run().name

    gave_up = receiver.wait(lambda m: about(name)(m) and m.body.get("alert") == "gave-up", 30, "the gave-up alert")[0]
    assert gave_up.body["severity"] == "critical"
    assert gave_up.body["event"] == "scan-bridge.gave-up"
    assert gave_up.body["resource"] == f"scan-bridge.daemon.{name}"
    assert gave_up.body["figures"]["restarts_total"] == 1
    assert gave_up.body["figures"]["bridge_state"] == "FATAL"
    assert gave_up.body["text"].startswith(f"scan-bridge {name}: GAVE UP on the bridge after 1 restarts: Gave up on the bridge")
    failed = receiver.wait(lambda m: run_name in m.raw and m.body.get("alert") == "run-ended", 30, "the run-failed alert")[0]
    assert "ended Failed: Gave up on the bridge" in failed.body["text"]
    assert failed.body["event"] == "prefect.flow-run.Failed"
    assert gave_up.content_type == failed.content_type == "application/json"


# -- alerts by role (failover, docs/high-availability.md) -----------------------------------------------

#: From a daemon's last heartbeat to its silence alert, at most: the window, the server's evaluation
#: period, and 10 s for the post (seen: 13.4-17.0 s in all; four alerts a run, each a chance to be late).
SILENCE_LIMIT_S = alerts.silent_after_s(1.0) + PROACTIVE_GRANULARITY_S + 10
#: After a silence alert, two more evaluations that must bring nothing more ("once per silence").
ONCE_WINDOW_S = 2 * PROACTIVE_GRANULARITY_S + 1
#: Each daemon's role in rounds 0-2, in rounds 3-5, and from round 6 on (None: silent from then on).
ROLE_SCRIPTS: dict[str, tuple[Role, Role, Role | None]] = {
    "standby-lost": (Role.STANDBY, Role.STANDBY, None),
    "stepped-down-lost": (Role.ACTIVE, Role.STANDBY, None),
    "active-lost": (Role.ACTIVE, Role.ACTIVE, None),
    "took-over-lost": (Role.STANDBY, Role.ACTIVE, None),
    "took-over": (Role.STANDBY, Role.ACTIVE, Role.ACTIVE),
    "stepped-down": (Role.ACTIVE, Role.STANDBY, Role.STANDBY),
}
#: The daemons that change role after round 2.
CHANGERS = tuple(key for key, script in ROLE_SCRIPTS.items() if script[0] != script[1])
#: The alert each lost daemon must raise, once.
LOST_ALERTS = {"standby-lost": "standby-silent", "stepped-down-lost": "standby-silent",
               "active-lost": "daemon-silent", "took-over-lost": "daemon-silent"}


@dataclass
class RoleRun:
    """What ``roles_silenced`` saw: every message, and per daemon its resource, last beat and role change."""

    messages: list
    resource: dict[str, str] = field(default_factory=dict)
    last_beat: dict[str, float] = field(default_factory=dict)
    changed_at: dict[str, float] = field(default_factory=dict)
    watched_until: float = 0.0

    def about(self, daemon: str) -> list:
        return [m for m in self.messages if isinstance(m.body, dict) and m.body.get("resource") == self.resource[daemon]]


class RoleBeats:
    """Six daemons' health checks, once a second from a thread, through the daemon's own publisher
    (``PrefectPublisher.health``, which picks the heartbeat event by ``DaemonStatus.role``): what a
    failover daemon sends, without the Hazelcast members and bridges that do not take part in it."""

    def __init__(self, tag: str) -> None:
        import logging

        from scan_bridge.daemon_publisher import PrefectPublisher
        from scan_bridge.daemon_status import DaemonStatus
        from scan_bridge.health_classify import FreshnessReport
        from scan_bridge.health_status import HealthStatus

        self.report = FreshnessReport(status=HealthStatus.HEALTHY, detail="scripted", checked_at=datetime.now(UTC))
        log = logging.getLogger("test-alerts-roles")
        self.names = {key: f"roles-{tag}-{key}" for key in ROLE_SCRIPTS}
        class HeartbeatsOnly(PrefectPublisher):
            def _artifact(self, status: DaemonStatus, force: bool) -> None:
                pass  # the artifact is not what these tests are about (and outside a flow run, deprecated)

        self.publishers = {key: HeartbeatsOnly(log, name) for key, name in self.names.items()}
        self.status = {key: DaemonStatus(report=self.report) for key in ROLE_SCRIPTS}
        self.last_beat: dict[str, float] = {}
        self.changed_at: dict[str, float] = {}
        self._stop = threading.Event()
        # The publishers' event threads start from this one and inherit its context (the test's API URL).
        self._thread = threading.Thread(target=contextvars.copy_context().run, args=(self._run,), name="role-beats", daemon=True)

    def _run(self) -> None:
        rounds = 0
        while not self._stop.is_set():
            for key, script in ROLE_SCRIPTS.items():
                role = script[min(rounds // 3, 2)]
                if role is None:
                    continue
                status = self.status[key]
                if status.role is not None and status.role != role:
                    self.changed_at.setdefault(key, time.monotonic())
                status.role = role
                self.publishers[key].health(status, self.report)  # not a state change: the heartbeat alone
                self.last_beat[key] = time.monotonic()
            rounds += 1
            self._stop.wait(1.0)  # the health interval (1 s) of the automations installed

    def start(self) -> RoleBeats:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop beating, and let the daemons still beating say goodbye, as a stopping daemon does."""
        from scan_bridge import names
        from scan_bridge.daemon_publisher import _emit_without_run_context

        self._stop.set()
        self._thread.join(10)
        for key, script in ROLE_SCRIPTS.items():
            if script[2] is not None:
                _emit_without_run_context(names.event(names.DAEMON_STOPPED_EVENT), self.publishers[key].resource, {"reason": "test over"})


@pytest.fixture(scope="module")
def roles_silenced(prefect_server: PrefectServer) -> Iterator[RoleRun]:
    """One run for the three role tests below (they share its ~30 s): the generic alerts with health every
    1 s (windows of 10 s), six daemons beating in their roles (ROLE_SCRIPTS), four of them silent after
    six rounds. Watched until each lost daemon's alert came and two more evaluations passed, and at least
    SILENCE_LIMIT_S after every role change and every silence."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    receiver = WebhookReceiver()
    try:
        install(prefect_server, receiver, "generic", "roles-secret")
        with temporary_settings({PREFECT_API_URL: prefect_server.api_url}):
            beats = RoleBeats(uuid.uuid4().hex[:8]).start()
            run = RoleRun(receiver.messages, {k: p.resource["prefect.resource.id"] for k, p in beats.publishers.items()})
            try:
                wait_for(lambda: len(beats.last_beat) == len(ROLE_SCRIPTS) and len(beats.changed_at) == len(CHANGERS)
                         and all(time.monotonic() - beats.last_beat[k] > 2.0 for k in LOST_ALERTS), 60,
                         "six rounds of beats, the role changes and the silences", 0.2)
                silent_since = max(beats.last_beat[k] for k in LOST_ALERTS)
                first = {}
                for key, alert in LOST_ALERTS.items():  # a missing alert is for the tests to report, not the fixture
                    mine = lambda m, key=key, alert=alert: isinstance(m.body, dict) and m.body.get("alert") == alert \
                        and m.body.get("resource") == run.resource[key]  # noqa: E731
                    with contextlib.suppress(AssertionError):
                        first[key] = receiver.wait(mine, max(silent_since + SILENCE_LIMIT_S - time.monotonic(), 0.1), alert)[0].at
                until = max([silent_since + SILENCE_LIMIT_S, *(at + ONCE_WINDOW_S for at in first.values()),
                             *(at + SILENCE_LIMIT_S for at in beats.changed_at.values())])
                receiver.assert_none(lambda m: False, until, "")  # waits out the window in full
                run.watched_until = until
            finally:
                beats.stop()
            run.last_beat, run.changed_at, run.messages = dict(beats.last_beat), dict(beats.changed_at), list(receiver.messages)
        yield run
    finally:
        receiver.close()


def _silence_alerts(run: RoleRun, lost: tuple[str, ...], alert: str, severity: str, role: str, event: str) -> None:
    for daemon in lost:
        messages = run.about(daemon)
        assert [m.body["alert"] for m in messages] == [alert], (daemon, [m.raw[:300] for m in messages])
        message = messages[0]
        assert message.body["severity"] == severity and message.body["event"] == event, message.raw
        assert message.body["text"].startswith(f"scan-bridge {run.resource[daemon].removeprefix('scan-bridge.daemon.')}: "
                                               f"{role} SILENT: no health check reported for 10 s"), message.body["text"]
        assert message.at - run.last_beat[daemon] <= SILENCE_LIMIT_S, (daemon, message.at - run.last_beat[daemon])
        assert run.watched_until >= message.at + ONCE_WINDOW_S, "watched two more evaluations after it"


@pytest.mark.extended  # the three share one ~30 s run (roles_silenced)
def test_a_lost_standby_alerts_standby_silent_once_and_not_daemon_silent(roles_silenced: RoleRun) -> None:
    """A standby gone silent (one that always stood by, and one that stepped down first): one "standby
    silent" warning, no "daemon silent"."""
    _silence_alerts(roles_silenced, ("standby-lost", "stepped-down-lost"), "standby-silent", "warning", "STANDBY",
                    "scan-bridge.standby-heartbeat")


@pytest.mark.extended
def test_a_lost_active_alerts_daemon_silent_once_and_not_standby_silent(roles_silenced: RoleRun) -> None:
    """The active daemon gone silent (one that was active from the start, and one that took over first):
    one critical "daemon silent", no "standby silent"."""
    _silence_alerts(roles_silenced, ("active-lost", "took-over-lost"), "daemon-silent", "critical", "DAEMON",
                    "scan-bridge.heartbeat")


@pytest.mark.extended
def test_a_daemon_that_changes_role_raises_neither_alert_while_it_beats(roles_silenced: RoleRun) -> None:
    """A standby that takes over, and an active that steps down, keep beating in their new role: the
    alert the old role's heartbeat armed is answered by the new one's, so nothing comes, watched for a
    whole silence window and more after the change."""
    for daemon in ("took-over", "stepped-down"):
        assert [m.raw[:300] for m in roles_silenced.about(daemon)] == [], daemon
        assert roles_silenced.watched_until - roles_silenced.changed_at[daemon] >= SILENCE_LIMIT_S


#: Each daemon's health checks in order: (role, status) per check. The last daemon's stale is the
#: sentinel: sent after every other event, so once it has alerted the others have been evaluated.
STATE_SCRIPTS: dict[str, list[tuple[Role | None, str]]] = {
    "standby": [(Role.STANDBY, "healthy"), (Role.STANDBY, "stale"), (Role.STANDBY, "stale")],
    "active": [(Role.ACTIVE, "healthy"), (Role.ACTIVE, "stale"), (Role.ACTIVE, "stale")],
    "took-over": [(Role.STANDBY, "healthy"), (Role.STANDBY, "stale"), (Role.ACTIVE, "stale"), (Role.ACTIVE, "stale")],
    "stepped-down": [(Role.ACTIVE, "healthy"), (Role.ACTIVE, "stale"), (Role.STANDBY, "stale"), (Role.STANDBY, "healthy")],
    "standby-blind": [(Role.STANDBY, "healthy"), (Role.STANDBY, "error"), (Role.STANDBY, "healthy")],
    "single": [(None, "healthy"), (None, "stale")],
}
#: What each must bring, in order: the alert keys (generic kind).
STATE_ALERTS = {"standby": [], "active": ["stale"], "took-over": ["stale"], "stepped-down": ["stale"],
                "standby-blind": ["standby-hazelcast-unavailable", "standby-hazelcast-reachable"], "single": ["stale"]}


def test_state_alerts_come_from_the_daemon_that_answers_for_the_data(prefect_server, client, receiver):
    """Failover (docs/high-availability.md, "Alerts by role"): the automations of ``deploy.py alerts``
    on a real server, and the state events of the daemon's own publisher (its labels and its decision
    to publish; posted by the same REST call as its heartbeat, so the test's events keep their order).

    A standby's stale raises nothing; the active's raises "stale" once; a standby that takes over
    while the data stays stale raises "stale" once, from the active, though its view never changed;
    an active that steps down raised its "stale" and raises no "healthy again" as a standby (the new
    active's recovery is the one); a standby that cannot reach Hazelcast has its own warning and
    recovery; a single machine alerts as before. The automations an earlier version set up (no role
    label) are updated in place by running ``deploy.py alerts`` again."""
    import dataclasses
    import logging

    from scan_bridge import names
    from scan_bridge.daemon_publisher import PrefectPublisher, _emit_without_run_context
    from scan_bridge.daemon_status import DaemonStatus
    from scan_bridge.health_classify import FreshnessReport
    from scan_bridge.health_status import HealthStatus, StaleCause

    # The automations as the version before roles had them: the data's alerts without the role label.
    install(prefect_server, receiver, "generic", "state-secret")
    for automation in alerts.ours(client):
        alert = next(a for a in alerts.alerts(1.0) if a.name == automation.name)
        if any(label == names.ROLE_LABEL for label, _ in alert.match_labels):
            earlier = dataclasses.replace(alert, match_labels=tuple(m for m in alert.match_labels if m[0] != names.ROLE_LABEL))
            client.update_automation(automation.id, alerts.automation_for(earlier, "generic", automation.actions[0].block_document_id))
    assert "automation updated: scan-bridge: stale" in install(prefect_server, receiver, "generic", "state-secret")
    for automation in alerts.ours(client):
        alert = next(a for a in alerts.alerts(1.0) if a.name == automation.name)
        for label, values in alert.match_labels:
            assert automation.trigger.match.get(label) == list(values), (alert.key, automation.trigger.match)

    class StateEvents(PrefectPublisher):
        def _event(self, name, payload, light=False, labels=None):
            _emit_without_run_context(names.event(name), {**self.resource, **(labels or {})}, payload)

        def _artifact(self, status, force):
            pass

    def report(status: str) -> FreshnessReport:
        cause = StaleCause.SCANNER_SILENT if status == "stale" else None
        return FreshnessReport(status=HealthStatus(status), cause=cause, detail=f"scripted {status}", checked_at=datetime.now(UTC))

    from prefect.settings import PREFECT_API_URL, temporary_settings

    tag = uuid.uuid4().hex[:8]
    publishers = {key: StateEvents(logging.getLogger("test-alerts-state"), f"state-{tag}-{key}") for key in STATE_SCRIPTS}
    resource = {key: p.resource["prefect.resource.id"] for key, p in publishers.items()}
    with temporary_settings({PREFECT_API_URL: prefect_server.api_url}):
        for key, script in STATE_SCRIPTS.items():
            previous = None
            for role, status in script:
                checked = report(status)
                publishers[key].health(DaemonStatus(report=checked, role=role), previous)
                previous = checked
    ours = {key: (lambda m, key=key: isinstance(m.body, dict) and m.body.get("resource") == resource[key]) for key in STATE_SCRIPTS}
    receiver.wait(ours["single"], 30, "the single machine's stale alert, sent last")
    for key, expected in STATE_ALERTS.items():
        if expected:
            receiver.wait(ours[key], 30, f"{key}: {expected}", count=len(expected))
    receiver.assert_none(lambda m: False, time.monotonic() + 3.0, "")  # anything late still comes in
    got = {key: [m.body["alert"] for m in receiver.matching(ours[key])] for key in STATE_SCRIPTS}
    assert got == STATE_ALERTS, got
    (took_over,) = receiver.matching(ours["took-over"])
    assert took_over.body["figures"]["role"] == "active" and took_over.body["severity"] == "critical"
    assert took_over.body["text"].startswith(f"scan-bridge state-{tag}-took-over: STALE (scanner silent): scripted stale")
    blind = receiver.matching(ours["standby-blind"])
    assert [m.body["severity"] for m in blind] == ["warning", "info"], [m.raw[:300] for m in blind]


def test_every_alert_renders_valid_json_for_every_kind() -> None:
    """Prefect's own template engine, a message full of quotes, newlines and angle brackets."""
    from prefect.server.utilities.user_templates import render_user_template_sync

    class Resource(dict):
        id = "scan-bridge.daemon.x"
        name = "x"

    from datetime import UTC, datetime

    class Event:
        event = "scan-bridge.stale"
        occurred = datetime(2026, 11, 24, 1, 2, 3, tzinfo=UTC)
        resource = Resource()
        payload = {"message": 'a "quoted"\nline <b>&</b>', "cause": "scanner silent", "previous_status": "stale",
                   "reason": "first\nsecond", "restarts_total": 3, "status": "healthy"}

    class State:
        name, message = "Failed", 'bad "thing"'

    context = {"event": Event(), "flow_run": type("FlowRun", (), {"state": State()})()}
    for kind in alerts.KINDS:
        for alert in alerts.alerts(30.0):
            rendered = render_user_template_sync(alerts.request_body(alert, kind), context)
            if kind == "pagerduty":
                rendered = '{"routing_key": "k", ' + rendered + "}"  # what the block wraps it in
            body = json.loads(rendered)
            text = {"slack": lambda b: b["text"], "discord": lambda b: b["content"], "generic": lambda b: b["text"],
                    "pagerduty": lambda b: b.get("payload", {}).get("summary", "resolve")}[kind](body)
            assert text, (kind, alert.key)
            if alert.key in ("warning", "stale", "missing", "hazelcast-unavailable") and kind != "pagerduty":
                assert 'a "quoted"\nline <b>&</b>' in text


def test_each_role_arms_its_own_silence_alert_and_either_heartbeat_answers_both() -> None:
    """The triggers of the two silence alerts (docs/alerts.md, "Who watches the watcher"): armed (``after``)
    by one role's heartbeat only, satisfied (``expect``) by either heartbeat and by the goodbye, per daemon."""
    triggers = {alert.key: (alert, alerts.automation_for(alert, "generic", uuid.uuid4()).trigger)
                for alert in alerts.alerts(30.0) if alert.proactive_within_s is not None}
    assert set(triggers) == {"daemon-silent", "standby-silent"}
    (daemon, on_active), (standby, on_standby) = triggers["daemon-silent"], triggers["standby-silent"]
    assert on_active.after == {"scan-bridge.heartbeat"} and on_standby.after == {"scan-bridge.standby-heartbeat"}
    for trigger in (on_active, on_standby):
        assert trigger.posture.value == "Proactive" and trigger.for_each == {"prefect.resource.id"}
        assert trigger.expect == {"scan-bridge.heartbeat", "scan-bridge.standby-heartbeat", "scan-bridge.daemon-stopped"}
        assert trigger.threshold == 1 and trigger.within.total_seconds() == alerts.silent_after_s(30.0) == 60
    assert (daemon.severity, standby.severity) == ("critical", "warning")
    assert "DAEMON SILENT: no health check reported for 60 s" in daemon.text
    assert "STANDBY SILENT: no health check reported for 60 s" in standby.text


HOSTILE_NAME = ("scan_1.arrow\n2026-12-01 00:00:00 INFO    [OK] Pushed 1 scans. Latest: #999999\x1b[2J\u2028"
                "{{webhook_url}}{{routing_key}}{{body}}{{$SCAN_BRIDGE_TEST_ENV_SECRET}}")


def _render(alert: alerts.Alert, kind: str, payload: dict[str, object]) -> str:
    from datetime import UTC, datetime

    from prefect.server.utilities.user_templates import render_user_template_sync

    class Resource(dict):
        id = "scan-bridge.daemon.x"
        name = "x"

    event = type("Event", (), {"event": "scan-bridge.stale", "occurred": datetime(2026, 12, 1, tzinfo=UTC),
                               "resource": Resource(), "payload": payload})()
    state = type("State", (), {"name": "Failed", "message": "m"})()
    return render_user_template_sync(alerts.request_body(alert, kind), {"event": event, "flow_run": type("F", (), {"state": state})()})


def test_a_file_name_in_a_health_message_cannot_forge_alert_lines() -> None:
    """The daemon's event payload (built by daemon_artifact.figures) carries the message escaped, so every alert text is one line."""
    from datetime import UTC, datetime

    from scan_bridge.daemon_artifact import figures
    from scan_bridge.health import FreshnessReport, HealthStatus, StaleCause
    from scan_bridge.supervisor import DaemonStatus

    report = FreshnessReport(status=HealthStatus.STALE, cause=StaleCause.BRIDGE_STUCK, checked_at=datetime.now(UTC),
                             detail=f"{HOSTILE_NAME} (#7) complete on disk for 30 s")
    payload = figures(DaemonStatus(report=report))
    for kind in ("slack", "discord", "generic"):
        for alert in alerts.alerts(30.0):
            if alert.key not in ("warning", "stale", "missing", "hazelcast-unavailable", "recovered"):
                continue
            body = json.loads(_render(alert, kind, payload))
            text = body["content" if kind == "discord" else "text"]
            assert "\n" not in text and "\x1b" not in text and "\u2028" not in text, (kind, alert.key, text)
            assert "scan_1.arrow\\n2026-12-01" in text and "\\x1b[2J" in text


def test_pagerduty_body_is_json_whatever_the_key_and_texts_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    """The block's own substitution (Prefect's apply_values) as it posts: a key with a quote and a backslash
    arrives exact, and event texts holding ``{{placeholder}}`` reach the receiver as text, never substituted."""
    from pydantic import SecretStr

    key = 'R0ut"ing\\key{{body}}'
    monkeypatch.setenv("SCAN_BRIDGE_TEST_ENV_SECRET", "env-secret-42")
    webhook = "https://hooks.example.invalid/secret-path"
    block = alerts.block_for("pagerduty", SecretStr(webhook), SecretStr(key))
    payload = {"message": HOSTILE_NAME, "cause": "bridge stuck", "status": "stale", "previous_status": "stale",
               "reason": HOSTILE_NAME, "restarts_total": 1}
    for alert in alerts.alerts(30.0):
        rendered = _render(alert, "pagerduty", payload)
        # The block replaces its placeholders one after the other in no fixed order: no "{{" may reach it.
        assert "{{" not in rendered, alert.key
        request = block._build_request_args(rendered, f"scan-bridge {alert.key}")
        body = json.loads(request["content"])
        assert body["routing_key"] == key, alert.key
        assert webhook not in request["content"] and "env-secret-42" not in request["content"], alert.key
        if "payload" in body and alert.key == "stale":
            assert "{{webhook_url}}{{routing_key}}{{body}}{{$SCAN_BRIDGE_TEST_ENV_SECRET}}" in body["payload"]["summary"]
            assert body["payload"]["custom_details"]["message"] == HOSTILE_NAME
        assert body["dedup_key"].startswith("scan-bridge/")
