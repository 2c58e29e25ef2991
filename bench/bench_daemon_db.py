"""The daemon's footprint in Prefect's database: bytes per row of each kind, and bytes per day at the defaults.

    python bench/bench_daemon_db.py            # the real figures (~10 min)
    python bench/bench_daemon_db.py --quick    # smoke run (~2.5 min)

A real Prefect server (``prefect server start``) with its own PREFECT_HOME, so its own SQLite DB
(``prefect.db``, WAL mode), a real member, a scanner writing 2 scans/s of 100 assets, and
``python -m scan_bridge.daemon_flow``. Phases, with a snapshot of the DB between them:

1. **accelerated steady** (``--steady``, 120 s): ``SCAN_BRIDGE_HEALTH_INTERVAL_S=1`` and
   ``SCAN_BRIDGE_SUMMARY_INTERVAL_S=1``, all healthy: one health line and one bridge summary line
   a second. Gives the cost of a health line and of a forwarded bridge line, and shows what else
   grows with time (Prefect's flow-run heartbeat, ...).
2. **accelerated kills** (``--kills`` kills of the bridge, 8 s apart, restart delay 1 s): every
   kill is a state change, so the daemon emits events and updates the artifact (in place: it
   shows whether updates add rows). Gives the cost of an artifact version and of each event; the
   per-day model prices 24 hourly versions at the size a full day's history renders to.
3. **defaults** (``--defaults-window``, 300 s; a new daemon run with the default settings: health
   and summary every 30 s): the direct growth at the defaults, as a cross-check of the model.

What is measured, per table (indexes counted with their table), from SQLite's ``dbstat`` virtual
table: rows (``count(*)``), **allocated** bytes (``sum(pgsize)``: whole 4 KiB pages, what the file
grows by) and **payload** bytes (``sum(payload)``: the bytes of the rows and index entries
themselves). Per-row costs use allocated bytes where a phase adds hundreds of rows, payload bytes
times the phase's measured allocated/payload ratio where it adds few (a handful of rows cannot
fill whole pages, so their allocated delta is mostly page quantisation). The DB file (``prefect.db``
plus ``-wal``, after a passive checkpoint; used = (page_count - freelist_count) x page_size) is
shown too.
"""

from __future__ import annotations

import argparse
import os
import re
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import log, md_table, prefect_server, print_header  # noqa: E402
from bench_daemon_restart import DAEMON_HEALTH, DAEMON_PID, DAEMON_WATCHING, DaemonProc, is_bridge, world  # noqa: E402

import signal  # noqa: E402

DAY = 86400.0
TARGET_BYTES_PER_DAY = 5 * 2**20
# At the defaults
HEALTH_PER_DAY = DAY / 30
SUMMARY_PER_DAY = DAY / 60  # the daemon gives the bridge SCAN_BRIDGE_SUMMARY_INTERVAL_S=60 unless set
ARTIFACTS_PER_DAY = 24.0  # a new version per UTC hour; in between the daemon updates it in place
CHECKS_PER_DAY = DAY / 30  # one scan-bridge.heartbeat event per health check
HEARTBEAT_S = 180  # Prefect 3.8's default PREFECT_FLOWS_HEARTBEAT_FREQUENCY

LOG_KINDS = (
    ("health line", re.compile(r"^Health: ")),
    ("bridge summary", re.compile(r"^\[Bridge\] \[OK\] Pushed ")),
    ("other bridge line", re.compile(r"^\[Bridge\] ")),
    ("other daemon line", re.compile(r"")),
)


def log_kind(message: str) -> str:
    return next(name for name, pattern in LOG_KINDS if pattern.search(message))


@dataclass
class Snapshot:
    at: float
    rows: dict[str, int]
    alloc: dict[str, int]
    payload: dict[str, int]
    used_bytes: int
    file_bytes: int
    log_rowid: int
    event_rowid: int
    artifact_rowid: int
    label: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def connect(db: Path) -> sqlite3.Connection:
    con = sqlite3.connect(str(db), timeout=60)
    con.execute("PRAGMA busy_timeout=60000")
    return con


def snapshot(db: Path, label: str) -> Snapshot:
    con = connect(db)
    try:
        con.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        owner = {name: tbl for name, tbl in con.execute("SELECT name, tbl_name FROM sqlite_master WHERE type IN ('table','index')")}
        tables = [name for name, in con.execute("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")]
        alloc: dict[str, int] = defaultdict(int)
        payload: dict[str, int] = defaultdict(int)
        for name, pgsize, pay in con.execute("SELECT name, sum(pgsize), sum(payload) FROM dbstat GROUP BY name"):
            table = owner.get(name, name)
            alloc[table] += pgsize or 0
            payload[table] += pay or 0
        rows = {t: con.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
        page_size = con.execute("PRAGMA page_size").fetchone()[0]
        page_count = con.execute("PRAGMA page_count").fetchone()[0]
        freelist = con.execute("PRAGMA freelist_count").fetchone()[0]

        def max_rowid(t: str) -> int:
            return con.execute(f'SELECT coalesce(max(rowid), 0) FROM "{t}"').fetchone()[0]

        snap = Snapshot(
            at=time.monotonic(), rows=rows, alloc=dict(alloc), payload=dict(payload),
            used_bytes=(page_count - freelist) * page_size,
            file_bytes=sum(p.stat().st_size for p in (db, db.with_name(db.name + "-wal")) if p.exists()),
            log_rowid=max_rowid("log"), event_rowid=max_rowid("events"), artifact_rowid=max_rowid("artifact"), label=label,
        )
    finally:
        con.close()
    return snap


@dataclass
class Delta:
    a: Snapshot
    b: Snapshot

    @property
    def seconds(self) -> float:
        return self.b.at - self.a.at

    def rows(self, t: str) -> int:
        return self.b.rows.get(t, 0) - self.a.rows.get(t, 0)

    def alloc(self, *ts: str) -> int:
        return sum(self.b.alloc.get(t, 0) - self.a.alloc.get(t, 0) for t in ts)

    def payload(self, *ts: str) -> int:
        return sum(self.b.payload.get(t, 0) - self.a.payload.get(t, 0) for t in ts)

    def changed_tables(self) -> list[str]:
        names = set(self.a.rows) | set(self.b.rows)
        return sorted(t for t in names if self.rows(t) or self.alloc(t) or self.payload(t))

    def fill_ratio(self) -> float:
        """Allocated bytes per payload byte over the whole DB in this delta."""
        pay = sum(self.payload(t) for t in self.changed_tables())
        alloc = sum(self.alloc(t) for t in self.changed_tables())
        return alloc / pay if pay > 0 else float("nan")


def new_logs(db: Path, a: Snapshot, b: Snapshot) -> list[tuple[str, int]]:
    con = connect(db)
    try:
        return [(m, n) for m, n in con.execute(
            "SELECT message, length(CAST(message AS BLOB)) FROM log WHERE rowid > ? AND rowid <= ?", (a.log_rowid, b.log_rowid))]
    finally:
        con.close()


def _n(value: Any) -> int:
    """Bytes SQLite stores for one value (text/blob length; 8 for a number; 0 for NULL) plus ~1 header byte."""
    if value is None:
        return 1
    if isinstance(value, str):
        return len(value.encode()) + 2
    if isinstance(value, bytes):
        return len(value) + 2
    return 9


def new_events(db: Path, a: Snapshot, b: Snapshot) -> list[tuple[str, float, int]]:
    """(event name, estimated payload bytes of its row, index entries and event_resources rows, resources).

    The estimate adds up the stored values of the row, of each of the 8 indexes plus the primary
    key (schema of Prefect 3.8.8) and of its event_resources rows and their 4 indexes plus key;
    main() calibrates the sum against dbstat's payload delta.
    """
    con = connect(db)
    try:
        resources: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        for row in con.execute(
            "SELECT r.event_id, r.occurred, r.resource_id, r.resource_role, r.resource, r.id, r.created, r.updated "
            "FROM event_resources r JOIN events e ON r.event_id = e.id WHERE e.rowid > ? AND e.rowid <= ?",
            (a.event_rowid, b.event_rowid),
        ):
            resources[row[0]].append(row)
        out = []
        for (occurred, event, resource_id, resource, rri, related, payload, received, recorded, follows, eid, created,
             updated) in con.execute(
            "SELECT occurred, event, resource_id, resource, related_resource_ids, related, payload, received, recorded, "
            "follows, id, created, updated FROM events WHERE rowid > ? AND rowid <= ?", (a.event_rowid, b.event_rowid)
        ):
            rowid = 4
            size = sum(map(_n, (occurred, event, resource_id, resource, rri, related, payload, received, recorded, follows,
                                eid, created, updated))) + rowid
            size += sum(_n(v) for v in (event, eid)) + rowid                      # (event, id)
            size += sum(_n(v) for v in (event, occurred, eid)) + rowid            # (event, occurred, id)
            size += sum(_n(v) for v in (event, related, occurred)) + rowid        # (event, related, occurred)
            size += sum(_n(v) for v in (event, resource_id, occurred)) + rowid    # (event, resource_id, occurred)
            size += _n(occurred) + rowid                                          # (occurred)
            size += _n(occurred) + _n(eid) + rowid                                # (occurred, id)
            size += _n(rri) + rowid                                               # (related_resource_ids)
            size += _n(updated) + rowid                                           # (updated)
            size += _n(eid) + rowid                                               # primary key
            res = resources.get(eid, [])
            for (_, r_occ, r_rid, r_role, r_res, r_id, r_created, r_updated) in res:
                size += sum(map(_n, (r_occ, r_rid, r_role, r_res, eid, r_id, r_created, r_updated))) + rowid
                size += _n(r_rid) + _n(r_occ) + rowid + _n(r_updated) + rowid + _n(r_occ) + rowid
                size += _n(eid) + rowid + _n(r_id) + rowid
            out.append((event, float(size), len(res)))
        return out
    finally:
        con.close()


def new_artifacts(db: Path, a: Snapshot, b: Snapshot) -> list[tuple[int, int]]:
    """(bytes of data, state-change rows in the markdown) of each new artifact version."""
    con = connect(db)
    try:
        out = []
        for (data,) in con.execute("SELECT data FROM artifact WHERE rowid > ? AND rowid <= ?", (a.artifact_rowid, b.artifact_rowid)):
            text = data or ""
            out.append((len(text.encode()), text.count("\\n| 20")))
        return out
    finally:
        con.close()


def artifact_sizes() -> tuple[int, int]:
    """Bytes of the artifact's markdown after a full 24 h: a calm day, and one flapping every 2 minutes.

    Rendered by the daemon's own ``render_markdown`` from a synthetic history (a check every 30 s),
    so the model follows whatever the artifact really carries (hour table, changes, hidden JSON).
    """
    from datetime import UTC, datetime, timedelta

    from scan_bridge.daemon_artifact import render_markdown
    from scan_bridge.health_history import HealthHistory
    from scan_bridge.daemon_status import DaemonStatus

    sizes = []
    for flapping in (False, True):
        history = HealthHistory()
        # The day must end now: render_markdown draws the 24 hours before the clock, so an older day
        # would render as one "no checks" row and an empty chart (this was so until issue 15).
        start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=DAY - 30)
        status, scan = "healthy", 1
        for i in range(int(DAY / 30)):
            at = start + timedelta(seconds=30 * i)
            if flapping and i % 4 == 0:
                status = "warning" if status == "healthy" else "healthy"
                history.record_change(at, status, "state change", 31.0, scan)
            scan += 6
            history.record_check(at, status, 31.0 if status == "warning" else 2.0, scan)
        sizes.append(len(render_markdown(DaemonStatus(), history).encode()))
    return sizes[0], sizes[1]


def kb(n: float) -> str:
    return f"{n / 1024:.1f}"


def mb(n: float) -> str:
    return f"{n / 2**20:.2f}"


def table_rows(d: Delta) -> list[list[Any]]:
    return [[t, d.rows(t), kb(d.alloc(t)), kb(d.payload(t))] for t in d.changed_tables()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 30 s steady, 3 kills, 40 s at the defaults")
    parser.add_argument("--steady", type=float, default=120.0, help="accelerated steady phase, seconds (default 120)")
    parser.add_argument("--kills", type=int, default=10, help="kills in the kill phase (default 10)")
    parser.add_argument("--defaults-window", type=float, default=300.0, help="phase 3 at the defaults, seconds (0 skips)")
    args = parser.parse_args()
    if args.quick:
        args.steady, args.kills, args.defaults_window = 30.0, 3, 40.0
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"

    workdir = Path(tempfile.mkdtemp(prefix="bench-daemon-db-"))
    log(f"workdir {workdir}")
    with world(workdir, prefill=100, rate=2.0, assets=100) as w, prefect_server(workdir) as server:
        db = server.db_path
        s0 = snapshot(db, "server started, no daemon")
        fast = {"SCAN_BRIDGE_HEALTH_INTERVAL_S": "1", "SCAN_BRIDGE_SUMMARY_INTERVAL_S": "1",
                "SCAN_BRIDGE_MAX_RESTARTS": "1000", "SCAN_BRIDGE_RESTART_DELAY_S": "1"}
        daemon = DaemonProc("daemon fast", w.bridge_env, server.env(), fast, workdir / "daemon-fast.log").start()
        assert daemon.tap is not None
        try:
            _, match, index = daemon.tap.wait_for(DAEMON_PID, 0, 120)
            pid = int(match.group(1))
            daemon.tap.wait_for(DAEMON_HEALTH, index, 120)
            time.sleep(10)
            s1 = snapshot(db, "accelerated daemon running")
            log(f"steady phase: {args.steady:g} s")
            time.sleep(args.steady)
            s2 = snapshot(db, "after steady phase")
            log(f"kill phase: {args.kills} kills")
            for _ in range(args.kills):
                mark = daemon.tap.mark()
                if is_bridge(pid):
                    os.kill(pid, signal.SIGKILL)
                _, match, index = daemon.tap.wait_for(DAEMON_PID, mark, 60)
                pid = int(match.group(1))
                daemon.tap.wait_for(DAEMON_WATCHING, index, 60)
                time.sleep(6)
            time.sleep(10)  # logs every ~2 s, events persisted in batches
            s3 = snapshot(db, "after kill phase")
        finally:
            daemon.stop()
        time.sleep(5)
        s4 = snapshot(db, "accelerated daemon stopped")

        s5 = s6 = None
        defaults_lines = (0, 0)
        if args.defaults_window > 0:
            daemon = DaemonProc("daemon defaults", w.bridge_env, server.env(), {}, workdir / "daemon-defaults.log").start()
            assert daemon.tap is not None
            try:
                daemon.tap.wait_for(DAEMON_HEALTH, 0, 120)
                time.sleep(5)
                s5 = snapshot(db, "default daemon running")
                mark = daemon.tap.mark()
                log(f"defaults phase: {args.defaults_window:g} s")
                time.sleep(args.defaults_window)
                s6 = snapshot(db, "after defaults phase")
                end = daemon.tap.mark()
                defaults_lines = (daemon.tap.count(DAEMON_HEALTH, mark, end),
                                  daemon.tap.count(re.compile(r"\[Bridge\] \[OK\] Pushed"), mark, end))
            finally:
                daemon.stop()

        steady, kills, whole = Delta(s1, s2), Delta(s2, s3), Delta(s0, s4)
        accel = Delta(s1, s3)
        logs_steady = new_logs(db, s1, s3)
        events_all = new_events(db, s0, s4)
        artifacts_all = new_artifacts(db, s0, s4)

    # ---- per-row costs ------------------------------------------------------------------------------
    log_tables = ("log",)
    n_log = accel.rows("log")
    log_alloc = accel.alloc(*log_tables)
    msg_bytes = sum(n for _, n in logs_steady)
    overhead = (log_alloc - msg_bytes) / n_log if n_log else float("nan")  # per row, all but the message text
    overhead_payload = (accel.payload(*log_tables) - msg_bytes) / n_log if n_log else float("nan")
    kinds: dict[str, list[int]] = defaultdict(list)
    for message, n in logs_steady:
        kinds[log_kind(message)].append(n)
    cost_log = {k: overhead + statistics.mean(v) for k, v in kinds.items()}

    ev_tables = ("events", "event_resources")
    n_ev = whole.rows("events")
    fill = whole.fill_ratio()
    ev_payload = whole.payload(*ev_tables)
    ev_calibration = ev_payload / sum(size for _, size, _ in events_all) if events_all else float("nan")
    by_name: dict[str, list[tuple[float, int]]] = defaultdict(list)
    for name, size, nres in events_all:
        by_name[name].append((size * ev_calibration * fill, nres))  # allocated bytes of this event

    def ev_cost(prefix: str) -> float:
        costs = [c for name, v in by_name.items() if name.startswith(prefix) for c, _ in v]
        return statistics.mean(costs) if costs else float("nan")

    ev_alloc_per = (ev_payload / n_ev) * fill if n_ev else float("nan")

    art_tables = ("artifact",)
    n_art = whole.rows("artifact")
    art_payload_per = whole.payload(*art_tables) / n_art if n_art else float("nan")
    art_data_mean = statistics.mean(n for n, _ in artifacts_all) if artifacts_all else float("nan")
    art_overhead = art_payload_per - art_data_mean  # id, key, times, description, indexes
    calm_bytes, flapping_bytes = artifact_sizes()

    def artifact_cost(data_bytes: float) -> float:
        return (art_overhead + data_bytes) * fill

    # Prefect's own events per artifact version: artifact.created (key, type, description) and
    # artifact-collection.updated, whose payload carries the artifact's whole markdown.
    art_events = sum(len(v) for k, v in by_name.items() if k.startswith("prefect.artifact"))
    art_events_per_version = art_events / n_art if n_art else 0.0
    updated_base = ev_cost("prefect.artifact-collection.") - art_data_mean * fill  # created for a new key, updated after

    def artifact_events_cost(data_bytes: float) -> float:
        return ev_cost("prefect.artifact.created") + updated_base + data_bytes * fill

    # ---- report -------------------------------------------------------------------------------------
    print_header("Daemon footprint in Prefect's database")
    print(f"Prefect server {server.api_url.split('/api')[0]} (own PREFECT_HOME, SQLite); scanner 2 scans/s of 100 assets. "
          f"Phases: accelerated steady {steady.seconds:.0f} s, accelerated kills {kills.seconds:.0f} s ({args.kills} kills), "
          f"defaults {args.defaults_window:g} s.\n")
    print("### Snapshots\n")
    snaps = [s for s in (s0, s1, s2, s3, s4, s5, s6) if s is not None]
    print(md_table(["snapshot", "t s", "rows log", "rows events", "rows event_resources", "rows artifact", "DB used KiB", "db+wal file KiB"],
                   [[s.label, f"{s.at - s0.at:.0f}", s.rows.get("log"), s.rows.get("events"), s.rows.get("event_resources"),
                     s.rows.get("artifact"), kb(s.used_bytes), kb(s.file_bytes)] for s in snaps]))
    print(f"\n### Accelerated steady phase ({steady.seconds:.0f} s, health and summary every 1 s): every table that changed\n")
    print(md_table(["table (+ its indexes)", "rows added", "allocated KiB", "payload KiB"], table_rows(steady)))
    ev_steady = defaultdict(int)
    for name, _, _ in new_events(db, s1, s2):
        ev_steady[name] += 1
    print("\nEvents in the steady phase: " + (", ".join(f"{k} × {v}" for k, v in sorted(ev_steady.items())) or "none"))
    print(f"\n### Kill phase ({kills.seconds:.0f} s, {args.kills} kills): every table that changed\n")
    print(md_table(["table (+ its indexes)", "rows added", "allocated KiB", "payload KiB"], table_rows(kills)))

    print("\n### Cost per row\n")
    rows = []
    for kind, lengths in kinds.items():
        rows.append([f"log row: {kind}", len(lengths), f"{statistics.mean(lengths):.0f}", f"{cost_log[kind]:.0f}", "fixed part + message"])
    rows.append(["log row: fixed part (ids, times, name, level, 6 indexes + pk)", n_log, "—", f"{overhead:.0f}",
                 "allocated − message bytes, accelerated phases"])
    rows.append(["artifact version (row + 5 indexes + pk)", n_art, f"{art_data_mean:.0f} (markdown, mean)", f"{art_payload_per * fill:.0f}",
                 f"whole run, payload × {fill:.2f}"])
    rows.append(["event, mean of all (events row + 8 indexes + its event_resources rows + 5 indexes)", n_ev, "—",
                 f"{ev_alloc_per:.0f}", f"whole run, payload × {fill:.2f}"])
    for name, v in sorted(by_name.items()):
        rows.append([f"event: {name} ({statistics.mean(r for _, r in v):.0f} related resources)", len(v), "—",
                     f"{statistics.mean(c for c, _ in v):.0f}", "estimate from stored values, calibrated to dbstat"])
    print(md_table(["kind", "rows measured", "bytes of content", "bytes in the DB per row", "how"], rows))
    print(f"\nLog rows by payload instead of allocated pages: fixed part {overhead_payload:.0f} B + message "
          f"(allocated/payload over the accelerated phases: {accel.fill_ratio():.2f}).")
    print(f"\nArtifact versions in the whole run: {n_art} (the kill phase's {args.kills} state changes updated the artifact "
          f"in place: {kills.rows('artifact')} rows added there). A full day's artifact renders to {calm_bytes} B (calm) "
          f"and {flapping_bytes} B (a state change every 2 minutes), hidden history JSON included.")
    print(f"\nEvent estimate calibration: dbstat payload / summed estimate = {ev_calibration:.2f}.")

    print("\n### Per day at the defaults (model: measured per-row costs × daily counts)\n")
    cost_health = cost_log.get("health line", float("nan"))
    cost_summary = cost_log.get("bridge summary", float("nan"))
    heartbeat_per_day = DAY / HEARTBEAT_S
    model = [
        ["health lines", f"{HEALTH_PER_DAY:.0f}", f"{cost_health:.0f}", HEALTH_PER_DAY * cost_health, "forever (logs are not vacuumed)"],
        ["bridge summary lines", f"{SUMMARY_PER_DAY:.0f}", f"{cost_summary:.0f}", SUMMARY_PER_DAY * cost_summary, "forever"],
        ["artifact versions (hourly), calm day", f"{ARTIFACTS_PER_DAY:.0f}", f"{artifact_cost(calm_bytes):.0f}",
         ARTIFACTS_PER_DAY * artifact_cost(calm_bytes), "forever (artifacts are not vacuumed)"],
        ["artifact versions (hourly), flapping day", f"{ARTIFACTS_PER_DAY:.0f}", f"{artifact_cost(flapping_bytes):.0f}",
         ARTIFACTS_PER_DAY * artifact_cost(flapping_bytes), "forever"],
        ["Prefect's 2 events per artifact version, calm day", f"{2 * ARTIFACTS_PER_DAY:.0f}",
         f"{artifact_events_cost(calm_bytes) / 2:.0f}", ARTIFACTS_PER_DAY * artifact_events_cost(calm_bytes), "7 days (events retention)"],
        ["Prefect's 2 events per artifact version, flapping day", f"{2 * ARTIFACTS_PER_DAY:.0f}",
         f"{artifact_events_cost(flapping_bytes) / 2:.0f}", ARTIFACTS_PER_DAY * artifact_events_cost(flapping_bytes), "7 days (events retention)"],
        ["scan-bridge.heartbeat events (one per check)", f"{CHECKS_PER_DAY:.0f}", f"{ev_cost('scan-bridge.heartbeat'):.0f}",
         CHECKS_PER_DAY * ev_cost("scan-bridge.heartbeat"), "7 days"],
        ["Prefect's flow-run heartbeat events (every 180 s)", f"{heartbeat_per_day:.0f}", f"{ev_cost('prefect.flow-run.heartbeat'):.0f}",
         heartbeat_per_day * ev_cost("prefect.flow-run.heartbeat"), "7 days"],
        ["daemon state events (changes only)", "0 while healthy", f"{ev_cost('scan-bridge.healthy'):.0f}", 0.0, "7 days"],
    ]
    print(md_table(["source", "rows/day", "bytes/row", "MiB/day", "kept"],
                   [[a, b, c, mb(d), e] for a, b, c, d, e in model]))
    def total(rows: list[list[Any]], exclude: str, kept: str | None = None) -> float:
        return sum(r[3] for r in rows if exclude not in r[0] and (kept is None or r[4].startswith(kept)))


    typical, worst = total(model, "flapping"), total(model, "calm")
    permanent_typical, permanent_worst = total(model, "flapping", "forever"), total(model, "calm", "forever")
    rolling_typical, rolling_worst = typical - permanent_typical, worst - permanent_worst
    print()
    print(md_table(["per day at the defaults", "calm day", "flapping day (a change every 2 min)"], [
        ["permanent growth (logs, artifact versions: never deleted)", f"**{mb(permanent_typical)} MiB**", f"**{mb(permanent_worst)} MiB**"],
        ["events (deleted after 7 days)", f"{mb(rolling_typical)} MiB", f"{mb(rolling_worst)} MiB"],
        ["all sources (the DB's growth in its first week)", f"{mb(typical)} MiB", f"{mb(worst)} MiB"],
        ["standing size of the 7-day event window", f"{mb(7 * rolling_typical)} MiB", f"{mb(7 * rolling_worst)} MiB"],
    ]))
    print(f"\nTarget < 5 MB/day (= {mb(5e6)} MiB): permanent growth {'met' if permanent_typical < 5e6 else 'NOT met'} on a "
          f"calm day, {'met' if permanent_worst < 5e6 else 'NOT met'} on a flapping one; all sources "
          f"{'met' if typical < 5e6 else 'NOT met'} / {'met' if worst < 5e6 else 'NOT met'}.")
    print(f"Each state change additionally costs one daemon event (~{ev_cost('scan-bridge.healthy'):.0f} B, 7 days) and a log "
          f"line or two; the artifact is updated in place ({art_events_per_version:.1f} Prefect events per new version).")

    if s5 is not None and s6 is not None:
        d = Delta(s5, s6)
        scale = DAY / d.seconds
        pay = sum(d.payload(t) for t in d.changed_tables())
        alloc = sum(d.alloc(t) for t in d.changed_tables())
        print(f"\n### Cross-check: {d.seconds:.0f} s at the defaults ({defaults_lines[0]} health lines, {defaults_lines[1]} summaries)\n")
        print(md_table(["table (+ its indexes)", "rows added", "allocated KiB", "payload KiB", "payload MiB/day (×" + f"{scale:.0f})"],
                       [[t, d.rows(t), kb(d.alloc(t)), kb(d.payload(t)), mb(d.payload(t) * scale)] for t in d.changed_tables()]))
        print(f"\nPayload {mb(pay * scale)} MiB/day; × the accelerated phases' allocated/payload ratio {accel.fill_ratio():.2f} = "
              f"{mb(pay * scale * accel.fill_ratio())} MiB/day (allocated delta {kb(alloc)} KiB is page-quantised at this length).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
