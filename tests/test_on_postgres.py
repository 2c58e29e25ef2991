"""The daemon against a Prefect server backed by a real PostgreSQL, as Prefect recommends for production.

The module's Prefect server (``prefect_server``, tests/daemon_fixtures.py) stores everything in a
database of its own on the session's PostgreSQL server (tests/postgres_support.py): Debian's
package, started by the tests on a loopback port, data in a temporary folder. A representative part
of the daemon and alert tests runs here unchanged (imported, so they are the very same tests): the
run's logs, its artifact and its in-place updates; the events, a proactive automation on the light
heartbeat event and its webhook. The whole suite would not fit CI's time twice (measured: these
tests add about 2 minutes; the rest of test_daemon.py on PostgreSQL passed too, see docs/performance.md).

The module also checks what the daemon sends to Prefect's log at its summary interval (issue 13):
that is the database's permanent growth, whichever the backend.
"""

from __future__ import annotations

import re

from scan_bridge.supervisor import summary_every
from scan_bridge.settings import DaemonSettings

from .postgres_support import PostgresServer
from .prefect_support import PrefectServer, RunReader
from .support import wait_for
from .test_alerts import receiver, test_killed_daemon_alerts_daemon_silent  # noqa: F401  (collected here, on PostgreSQL)
from .test_daemon import test_bridge_lines_health_and_artifact_reach_prefect  # noqa: F401  (collected here, on PostgreSQL)

PREFECT_SERVER_DATABASE = "postgresql"  # read by the prefect_server fixture


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
