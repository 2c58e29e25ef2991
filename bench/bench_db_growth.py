"""Measured growth of Prefect's database per day under the daemon at its defaults, on SQLite and PostgreSQL.

    python bench/bench_db_growth.py                          # both backends, ~8 min each
    python bench/bench_db_growth.py --backend postgresql     # one
    python bench/bench_db_growth.py --quick                  # smoke run
    PYTHONPATH=<other checkout>/src python bench/bench_db_growth.py   # the same measurement of other code

Real parts: ``prefect server start`` on its own database (SQLite in its PREFECT_HOME, or a database
on a PostgreSQL server started from Debian's package, tests/postgres_support.py), a Hazelcast
member, a scanner writing 2 scans/s of 100 assets, and ``python -m scan_bridge.daemon_flow``.

**Compressed time.** A run at the defaults would take days to show its growth above the noise of
whole pages, so every cadence the daemon controls is divided by ``--compress`` (k, default 30): the
health check (30 s -> 1 s), the summary interval (the daemon's ``summary_interval_s`` default, read
from the code under test, or the 60 s the bridge had before it: -> /k). A window of W seconds then
stands for W x k seconds at the defaults, and

    growth per day = measured growth in the window x 86400 / (W x k).

Two figures per backend, one way each:

* **direct**: the bytes the database's tables grew by in the compressed window (indexes and TOAST
  included: SQLite ``dbstat`` allocated pages, PostgreSQL ``pg_total_relation_size``), scaled as
  above. Whole pages make this coarse for a short window.
* **rows x cost**: the rows added per kind in the compressed window, scaled to a day, times the
  bytes per row measured in an accelerated phase that writes hundreds of rows (a health line and a
  bridge summary every 0.5 s), so the page rounding averages out.

What the cadence cannot compress is priced on its own: the hourly artifact version (24 a day; the
script writes 24 versions of a full day's artifact, rendered by the daemon's own ``render_markdown``,
through the API and measures them), and Prefect's own flow-run heartbeat event (every 180 s, events
only). **Permanent** growth is what Prefect never deletes for a run that never ends: the ``log`` and
``artifact`` tables. Events are deleted after the server's event retention (7 days).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))

from _common import log, md_table, prefect_server, print_header  # noqa: E402
from bench_daemon_restart import DAEMON_HEALTH, DaemonProc, world  # noqa: E402

DAY = 86400.0
HEALTH_DEFAULT_S = 30.0
OLD_BRIDGE_SUMMARY_S = 60.0  # before issue 13 the daemon gave the bridge 60 s and sent every health line
ARTIFACTS_PER_DAY = 24
PERMANENT = ("log", "artifact", "artifact_collection")
EVENTS = ("events", "event_resources")
KINDS = (("health line", "Health: %"), ("bridge summary", "[Bridge] [OK] Pushed%"))


def summary_default() -> tuple[float, bool]:
    """(the daemon's summary interval at its defaults, whether the code under test has the setting)."""
    from scan_bridge.settings import DaemonSettings

    field = DaemonSettings.model_fields.get("summary_interval_s")
    return (float(field.default), True) if field is not None else (OLD_BRIDGE_SUMMARY_S, False)


class Database:
    """Sizes per table (indexes and TOAST included) and row counts of one Prefect database."""

    def __init__(self, backend: str, server: Any, sqlite_path: Path | None = None, pg: Any = None, name: str = "") -> None:
        self.backend, self.server, self.sqlite_path, self.pg, self.name = backend, server, sqlite_path, pg, name

    def sizes(self) -> dict[str, int]:
        if self.backend == "sqlite":
            assert self.sqlite_path is not None
            con = sqlite3.connect(str(self.sqlite_path), timeout=60)
            try:
                con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                owner = dict(con.execute("SELECT name, tbl_name FROM sqlite_master WHERE type IN ('table','index')"))
                out: dict[str, int] = defaultdict(int)
                for name, pgsize in con.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"):
                    out[owner.get(name, name)] += pgsize or 0
                return dict(out)
            finally:
                con.close()
        text = self.pg.query(self.name, "SELECT relname || '=' || pg_total_relation_size(oid) FROM pg_class "
                                        "WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace")
        return {k: int(v) for k, v in (line.split("=") for line in text.splitlines() if line)}

    def scalar(self, sql: str) -> int:
        if self.backend == "sqlite":
            assert self.sqlite_path is not None
            con = sqlite3.connect(str(self.sqlite_path), timeout=60)
            try:
                return int(con.execute(sql).fetchone()[0])
            finally:
                con.close()
        return int(self.pg.query(self.name, sql))

    def counts(self) -> dict[str, int]:
        out = {t: self.scalar(f'SELECT count(*) FROM "{t}"') for t in PERMANENT + EVENTS}
        for kind, pattern in KINDS:
            out[kind] = self.scalar(f"SELECT count(*) FROM log WHERE message LIKE '{pattern}'")
        out["heartbeat events"] = self.scalar("SELECT count(*) FROM events WHERE event = 'scan-bridge.heartbeat'")
        out["prefect heartbeat events"] = self.scalar("SELECT count(*) FROM events WHERE event = 'prefect.flow-run.heartbeat'")
        return out


@dataclass
class Snap:
    at: float
    sizes: dict[str, int]
    counts: dict[str, int]


def snap(db: Database) -> Snap:
    return Snap(time.monotonic(), db.sizes(), db.counts())


def grew(a: Snap, b: Snap, tables: tuple[str, ...]) -> int:
    return sum(b.sizes.get(t, 0) - a.sizes.get(t, 0) for t in tables)


def rows(a: Snap, b: Snap, key: str) -> int:
    return b.counts.get(key, 0) - a.counts.get(key, 0)


def full_day_markdown() -> str:
    """The artifact after a calm day (a check every 30 s), rendered by the daemon's own code."""
    from datetime import UTC, datetime, timedelta

    from scan_bridge.daemon_flow import render_markdown
    from scan_bridge.health_history import HealthHistory
    from scan_bridge.supervisor import DaemonStatus

    history = HealthHistory()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(int(DAY / 30)):
        history.record_check(start + timedelta(seconds=30 * i), "healthy", 2.0, 1 + 6 * i)
    return render_markdown(DaemonStatus(), history)


def artifact_versions(api_url: str, n: int) -> None:
    """``n`` versions of the full-day artifact under one key, as the daemon creates them (one per hour).

    In a process of its own: Prefect's events worker outlives a settings context, so in this process
    the artifacts' events would go to the previous backend's server.
    """
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); "
        "from bench_db_growth import full_day_markdown; from prefect import flow; "
        "from prefect.artifacts import create_markdown_artifact\n"
        "@flow(persist_result=False)\n"
        "def versions(n: int) -> None:\n"
        "    markdown = full_day_markdown()\n"
        "    for _ in range(n):\n"
        "        create_markdown_artifact(markdown, key='bench-scan-bridge-health', description='Scan bridge health')\n"
        "versions(int(sys.argv[2]))\n"
    )
    env = {**os.environ, "PREFECT_API_URL": api_url}
    env.pop("PREFECT_HOME", None)
    subprocess.run([sys.executable, "-c", code, str(Path(__file__).resolve().parent), str(n)], env=env, check=True,
                   stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, timeout=300)


def wait_lines(daemon: DaemonProc, n: int, timeout: float) -> None:
    assert daemon.tap is not None
    deadline = time.monotonic() + timeout
    while daemon.tap.count(DAEMON_HEALTH, 0, daemon.tap.mark()) < n:
        if time.monotonic() > deadline:
            raise TimeoutError(f"fewer than {n} health lines within {timeout:g} s")
        time.sleep(0.5)


def daemon_phase(daemon: DaemonProc, db: Database, window_s: float, what: str, drain_s: float = 0.0) -> tuple[Snap, Snap]:
    """Start ``daemon``; the database's figures once it has settled (3 health lines, then 5 s) and
    ``window_s`` (+ ``drain_s``) later; the daemon stopped in any case."""
    daemon.start()
    try:
        wait_lines(daemon, 3, 180)
        time.sleep(5)
        before = snap(db)
        log(what)
        time.sleep(window_s + drain_s)
        return before, snap(db)
    finally:
        daemon.stop()


def measure(backend: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    pg = None
    db_name = ""
    database_url: str | None = None
    if backend == "postgresql":
        from tests.postgres_support import PostgresServer

        pg = PostgresServer().start()
        database_url = pg.create_database("bench")
        db_name = database_url.rsplit("/", 1)[1]

    summary_s, has_setting = summary_default()
    k = args.compress
    try:
        with world(workdir / backend, prefill=100, rate=2.0, assets=100) as w, prefect_server(workdir / backend, database_url) as server:
            db = Database(backend, server, server.db_path if backend == "sqlite" else None, pg, db_name)
            # 1. accelerated: every check's health line and a bridge summary every 0.5 s -> bytes per row
            fast = {"SCAN_BRIDGE_HEALTH_INTERVAL_S": "0.5", "SCAN_BRIDGE_SUMMARY_INTERVAL_S": "0.5"}
            a0, a1 = daemon_phase(
                DaemonProc("daemon-cost", w.bridge_env, server.env(), fast, workdir / f"{backend}-cost.log"), db,
                args.cost_window, f"{backend}: accelerated phase {args.cost_window:g} s",
                drain_s=3,  # the last batch of API logs (every ~2 s)
            )
            # 2. artifact versions at a full day's size
            b0 = snap(db)
            artifact_versions(server.api_url, ARTIFACTS_PER_DAY)
            time.sleep(5)
            b1 = snap(db)
            # 3. compressed defaults
            compressed = {"SCAN_BRIDGE_HEALTH_INTERVAL_S": f"{HEALTH_DEFAULT_S / k:g}",
                          "SCAN_BRIDGE_SUMMARY_INTERVAL_S": f"{summary_s / k:g}"}
            c0, c1 = daemon_phase(
                DaemonProc("daemon-compressed", w.bridge_env, server.env(), compressed, workdir / f"{backend}-compressed.log"),
                db, args.window,
                f"{backend}: compressed phase {args.window:g} s (x{k:g} = {args.window * k / 3600:.1f} h at the defaults)",
            )
    finally:
        if pg is not None:
            pg.stop()
    return {"a": (a0, a1), "b": (b0, b1), "c": (c0, c1), "k": k, "summary_s": summary_s, "has_setting": has_setting}


def mib(n: float) -> str:
    return f"{n / 2**20:.3f}"


def report(backend: str, r: dict[str, Any]) -> dict[str, float]:
    a0, a1 = r["a"]
    b0, b1 = r["b"]
    c0, c1 = r["c"]
    k = r["k"]
    log_cost = grew(a0, a1, ("log",)) / max(1, rows(a0, a1, "log"))
    event_cost = grew(a0, a1, EVENTS) / max(1, rows(a0, a1, "events"))
    artifact_cost = grew(b0, b1, ("artifact", "artifact_collection")) / ARTIFACTS_PER_DAY
    artifact_event_cost = grew(b0, b1, EVENTS) / ARTIFACTS_PER_DAY
    window = c1.at - c0.at
    scale = DAY / (window * k)
    log_rows_day = rows(c0, c1, "log") * scale
    event_rows_day = rows(c0, c1, "events") * scale
    permanent_rows_cost = log_rows_day * log_cost + ARTIFACTS_PER_DAY * artifact_cost
    direct_log = grew(c0, c1, ("log",)) * scale
    events_day = event_rows_day * event_cost + ARTIFACTS_PER_DAY * artifact_event_cost
    print(f"\n### {backend}\n")
    print(f"Compressed phase: {window:.0f} s x {k:g} = {window * k / 3600:.2f} h at the defaults (health every "
          f"{HEALTH_DEFAULT_S / k:g} s, summary every {r['summary_s'] / k:g} s); scale to a day x{scale:.2f}. "
          f"Code under test {'has' if r['has_setting'] else 'lacks'} `summary_interval_s` (default {r['summary_s']:g} s).\n")
    print(md_table(["rows added in the compressed phase", "count", "per day at the defaults"], [
        [key, rows(c0, c1, key), f"{rows(c0, c1, key) * scale:.0f}"]
        for key in ("log", "health line", "bridge summary", "events", "heartbeat events", "artifact")
    ]))
    print()
    print(md_table(["cost per row (accelerated phase / artifact phase)", "rows", "bytes", "bytes per row"], [
        ["log row (table + indexes)", rows(a0, a1, "log"), grew(a0, a1, ("log",)), f"{log_cost:.0f}"],
        ["event (events + event_resources, + indexes)", rows(a0, a1, "events"), grew(a0, a1, EVENTS), f"{event_cost:.0f}"],
        ["artifact version, full day's markdown (artifact + collection, + indexes, TOAST)", ARTIFACTS_PER_DAY,
         grew(b0, b1, ("artifact", "artifact_collection")), f"{artifact_cost:.0f}"],
        ["Prefect's events per artifact version", rows(b0, b1, "events"), grew(b0, b1, EVENTS), f"{artifact_event_cost:.0f}"],
    ]))
    print()
    print(md_table(["per day at the defaults", "MiB/day"], [
        ["log rows (rows x cost)", mib(log_rows_day * log_cost)],
        ["log table, direct (bytes grown x scale; whole pages)", mib(direct_log)],
        ["artifact versions (24 x cost)", mib(ARTIFACTS_PER_DAY * artifact_cost)],
        ["**permanent growth** (log rows x cost + artifact versions)", f"**{mib(permanent_rows_cost)}**"],
        ["events, deleted after the retention (7 days)", mib(events_day)],
    ]))
    return {"permanent": permanent_rows_cost, "direct_log": direct_log, "events": events_day}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument("--compress", type=float, default=30.0, help="divide the daemon's cadences by this (default 30)")
    parser.add_argument("--window", type=float, default=300.0, help="compressed phase, seconds (default 300 = 2.5 h at k=30)")
    parser.add_argument("--cost-window", type=float, default=90.0, help="accelerated phase for bytes per row, seconds")
    parser.add_argument("--quick", action="store_true", help="smoke run: 30 s phases")
    args = parser.parse_args()
    if args.quick:
        args.window, args.cost_window = 30.0, 20.0
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    workdir = Path(tempfile.mkdtemp(prefix="bench-db-growth-"))
    log(f"workdir {workdir}")
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    results = {b: measure(b, args, workdir) for b in backends}
    print_header("Growth of Prefect's database per day under the daemon, at the defaults (compressed time)")
    import prefect

    print(f"Prefect {prefect.__version__}; scanner 2 scans/s of 100 assets; code from "
          f"{Path(sys.modules['scan_bridge'].__file__).resolve().parents[1]}.")
    totals = {b: report(b, r) for b, r in results.items()}
    print("\n### Summary\n")
    print(md_table(["backend", "permanent MiB/day", "log direct MiB/day", "events MiB/day (7-day window)", "a year, permanent"],
                   [[b, mib(t["permanent"]), mib(t["direct_log"]), mib(t["events"]), f"{t['permanent'] * 365 / 2**20:.0f} MiB"]
                    for b, t in totals.items()]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
