"""The daemon against a Prefect server backed by a real PostgreSQL, as Prefect recommends for production.

The module's Prefect server (``prefect_server``, tests/daemon_fixtures.py) stores everything in a
database of its own on the session's PostgreSQL server (tests/postgres_support.py): Debian's
package, started by the tests on a loopback port, data in a temporary folder. A representative part
of the daemon and alert tests runs here unchanged (imported, so they are the very same tests): the
run's logs, its artifact and its in-place updates; the events, a proactive automation on the light
heartbeat event and its webhook. The whole suite would not fit CI's time twice (measured: these
tests add about 2 minutes; the rest of test_daemon.py on PostgreSQL passed too, see docs/performance.md).

The module also checks what the daemon sends to Prefect's log at its summary interval (issue 13):
that is the database's permanent growth, whichever the backend; and what the daemon relies on in
Prefect itself, on whichever Prefect is installed (3.9.x by scripts/test, 3.8.x by
scripts/test-oldest): Prefect 3.9 retries flows that *return* Failed when ``retries`` is set, and
the light heartbeat event must stay without the run's related resources. These share this module's
server (one Prefect server start less in the suite). The slower checks of the other 3.9 points
(SIGTERM, cancellation, automations) are the daemon, alert and end-to-end tests, on both versions.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import prefect
import pytest
from packaging.version import Version
from prefect import flow
from prefect.events import emit_event
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.states import Failed

from scan_bridge.daemon_flow import scan_bridge_daemon_flow
from scan_bridge.daemon_publisher import _emit_without_run_context
from scan_bridge.settings import DaemonSettings
from scan_bridge.supervisor import summary_every

from .postgres_support import PostgresServer
from .prefect_support import PrefectServer, RunReader
from .support import wait_for
from .test_alerts import killed_daemon_alerts_daemon_silent, receiver  # noqa: F401  (receiver: a fixture)
from .test_daemon import test_bridge_lines_health_and_artifact_reach_prefect  # noqa: F401  (collected here, on PostgreSQL)

PREFECT_SERVER_DATABASE = "postgresql"  # read by the prefect_server fixture
PREFECT = Version(prefect.__version__)


def test_the_server_really_stores_in_postgres(prefect_server: PrefectServer, postgres_server: PostgresServer) -> None:
    database = prefect_server.database_url.rsplit("/", 1)[1] if prefect_server.database_url else None
    assert database is not None, "this module's Prefect server must have a PostgreSQL URL"
    tables = postgres_server.query(database, "SELECT count(*) FROM pg_tables WHERE tablename IN ('flow_run', 'log', 'events')")
    assert tables == "3", f"Prefect's tables are not in {database}: {tables}"
    assert not (prefect_server.home / "prefect.db").exists(), "no SQLite database beside it"


def test_prefect_log_gets_a_summary_per_interval_the_console_every_check(client, scanner, hz_env, start_daemon, prefect_server,
                                                                        postgres_server):
    """Health every 1 s, summary every 4 s: the console shows every check, Prefect's log one in four
    (plus the first, a change), and the bridge's summary every 4 s; the rows are in PostgreSQL."""
    daemon = start_daemon(hz_env, SCAN_BRIDGE_SUMMARY_INTERVAL_S="4")
    run = RunReader(client, daemon.wait_flow_run_id())
    run.wait_logged("Health: HEALTHY")
    console = lambda: len(re.findall(r"Health: HEALTHY", daemon.output()))  # noqa: E731
    wait_for(lambda: console() >= 16, 60, "16 healthy checks on the daemon's console", 0.3)
    wait_for(lambda: run.count("Health: HEALTHY") >= 4, 15, "the summaries in Prefect's log", 0.3)
    checks, sent = console(), run.count("Health: HEALTHY")
    assert summary_every(DaemonSettings(health_interval_s=1, summary_interval_s=4)) == 4
    assert sent <= checks // 4 + 2, f"{sent} health lines sent to Prefect for {checks} checks"
    bridge_summaries = run.count("[Bridge] [OK] Pushed")
    assert 1 <= bridge_summaries <= checks // 4 + 2, f"{bridge_summaries} bridge summaries in {checks} s"
    database = prefect_server.database_url.rsplit("/", 1)[1]
    rows = int(postgres_server.query(database, "SELECT count(*) FROM log WHERE message LIKE 'Health: %'"))
    assert rows >= sent, "the log rows are in PostgreSQL"


# -- what the daemon relies on in Prefect (3.8.x and 3.9.x) -------------------------------------------




@pytest.fixture(scope="module")
def api(prefect_server: PrefectServer) -> Iterator[str]:
    """In-process flows of this module report to the module's real server."""
    with temporary_settings({PREFECT_API_URL: prefect_server.api_url}):
        try:
            yield prefect_server.api_url
        finally:
            # Prefect's in-process events and log workers outlive the settings: empty them while this
            # server still answers, so nothing of ours is sent to a later module's server.
            from prefect.events.worker import EventsWorker
            from prefect.logging.handlers import APILogWorker

            EventsWorker.drain_all(timeout=10, at_exit=False)
            APILogWorker.drain_all(timeout=10, at_exit=False)


def _events(api: str, name: str, resource_id: str) -> list[dict]:
    response = httpx.post(f"{api}/events/filter", json={"filter": {"event": {"name": [name]},
                                                                   "resource": {"id": [resource_id]}}, "limit": 10},
                          timeout=10)
    response.raise_for_status()
    return response.json()["events"]


def test_the_light_heartbeat_goes_without_the_run_context_and_others_keep_it(api: str) -> None:
    """The heartbeat event is posted to the public ``POST /api/events`` (no Prefect internals): stored,
    with no related resources; an event emitted the usual way in the same run still gets the run
    attached (what the state-change events' alert templates use)."""
    resource = {"prefect.resource.id": "scan-bridge.daemon.compat-test"}

    @flow(persist_result=False)
    def emits() -> None:
        _emit_without_run_context("scan-bridge.heartbeat", resource, {"status": "healthy"})
        emit_event(event="scan-bridge.healthy", resource=resource, payload={})

    emits()
    beat = wait_for(lambda: _events(api, "scan-bridge.heartbeat", resource["prefect.resource.id"]), 30, "the heartbeat event")
    assert beat[0]["related"] == [] and beat[0]["payload"] == {"status": "healthy"}
    change = wait_for(lambda: _events(api, "scan-bridge.healthy", resource["prefect.resource.id"]), 30, "the state event")
    roles = {related["prefect.resource.role"] for related in change[0]["related"]}
    assert {"flow-run", "flow"} <= roles, f"Prefect no longer attaches the run to events emitted in a flow: {roles}"


def test_a_daemon_run_that_gave_up_is_not_retried(api: str) -> None:
    """The daemon returns Failed when it gives up. Prefect 3.9 retries a flow that *returns* Failed
    when ``retries`` is set (3.8 did not): the daemon sets none, so a run that gave up ends FAILED
    once, and the operator's alert fires once, on every version."""
    assert not scan_bridge_daemon_flow.retries, "a retried daemon would restart a bridge that gave up"

    calls: list[int] = []

    def gives_up() -> object:
        calls.append(1)
        return Failed(message="gave up")

    like_ours = flow(gives_up, name="gives-up-like-the-daemon", persist_result=False,
                     retries=scan_bridge_daemon_flow.retries, retry_delay_seconds=0)
    state = like_ours(return_state=True)
    assert state.is_failed() and len(calls) == 1

    calls.clear()
    with_retries = flow(gives_up, name="gives-up-with-retries", persist_result=False, retries=1, retry_delay_seconds=0)
    state = with_retries(return_state=True)
    if PREFECT >= Version("3.9"):
        assert state.is_failed() and len(calls) == 2, f"Prefect {PREFECT}: returned Failed with retries=1: {state}, ran {len(calls)}x"
    else:  # 3.8 proposed AwaitingRetry and returned without running the flow again
        assert len(calls) == 1, f"Prefect {PREFECT}: returned Failed with retries=1 ran {len(calls)} times"


def test_killed_daemon_alerts_daemon_silent(prefect_server, client, scanner, hz_env, view, start_daemon, receiver, record_property):
    """test_alerts.py's killed-daemon test, on PostgreSQL (there it is -m extended: one copy in the default run)."""
    killed_daemon_alerts_daemon_silent(prefect_server, client, scanner, hz_env, view, start_daemon, receiver, record_property)
