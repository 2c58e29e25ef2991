"""Catch-up: how fast a bridge started on a backlog of 5,000 scan files fills history, against a bare put_all.

    python bench/bench_catchup.py            # the real figures: 5,000 files x 400 assets, 3 rounds x 2 member configs (~3 min)
    python bench/bench_catchup.py --quick    # smoke run: 300 files, 1 round each

The backlog (one date folder of simulated 400-asset scans, written atomically) is generated once
into a cache under /tmp and reused. In each round, in alternating order:

* **bridge**: a real bridge process (``--retention 6000``, so history keeps all of them) is started
  on the backlog with fresh maps; this process polls ``history.size()`` (every 50 ms) until it
  holds every scan. Rates are given from the process start (includes Python start-up and the
  connection) and from the bridge's own "Connected to Hazelcast" log line; the bridge's own
  "Caught up N scans in X s" figure is shown too.
* **bare put_all**: the same documents (built beforehand with ``read_scan`` + ``document_json``,
  not timed) go into a fresh map of the same kind with a plain hazelcast-python-client
  ``put_all``, 200 per call, one call at a time (what the bridge's batches do).

Ratio = bridge scans/s ÷ bare put_all scans/s, from medians over rounds of the same run.
Target: ≥ 0.7 of the bare put_all.

Both run against two member configurations in turn (``--member-config``), because the member's
cost dominates one of them: with its default ``metadata-policy`` (CREATE_ON_UPDATE) a member parses
every HazelcastJsonValue it stores to build query metadata, which for these ~104 KB documents makes
it the bottleneck (and needs ~450 KB of heap per document, hence a 6 GB heap here); with
``metadata-policy: OFF`` the member stores the bytes as they come and the client side shows.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    CACHE_ROOT,
    Bridge,
    client,
    hazelcast_member,
    log,
    md_table,
    median,
    member_env,
    print_header,
    unique_maps,
)
from hazelcast.core import HazelcastJsonValue  # noqa: E402

from scan_bridge.document import document_json  # noqa: E402
from scan_bridge.scanfile import read_scan  # noqa: E402
from scan_bridge.simulate import Market, scan_path, scan_table, table_bytes, write_bytes  # noqa: E402

ASSETS = 400
BATCH = 200
TARGET_RATIO = 0.7
HEAP = "6g"  # the default metadata policy needs ~450 KB of heap per 104 KB document: 5,000 overflow 2 GB


def backlog(count: int, assets: int) -> Path:
    """``count`` scans in date folders (5 s apart, like a scanner), generated once and cached; returns the watch dir."""
    root = CACHE_ROOT / f"backlog-{count}x{assets}"
    scans = root / "scans"
    done = root / "complete"
    if done.exists():
        return scans
    log(f"generating a backlog of {count} scans x {assets} assets in {scans} (once)")
    market = Market(assets, random.Random(11))
    start = datetime(2026, 3, 24, 0, 0, tzinfo=UTC)
    for i in range(count):
        when = start + timedelta(seconds=5 * i)
        write_bytes(scan_path(scans, i + 1, when), table_bytes(scan_table(market, i + 1, when)))
    done.write_text("ok\n")
    return scans


def bare_put_all(hz, documents: dict[int, HazelcastJsonValue]) -> float:
    """Seconds to put every document into a fresh map, ``BATCH`` per put_all, one call in flight."""
    name = f"BARE_{random.getrandbits(32):08x}"
    history = hz.get_map(name)
    keys = list(documents)
    started = time.perf_counter()
    for i in range(0, len(keys), BATCH):
        history.put_all({k: documents[k] for k in keys[i : i + BATCH]}).result()
    elapsed = time.perf_counter() - started
    size = history.size().result()
    history.destroy()
    if size != len(documents):
        raise RuntimeError(f"bare put_all left {size} of {len(documents)} entries")
    return elapsed


def bridge_catchup(cluster, hz, watch: Path, count: int, log_path: Path) -> dict:
    maps = unique_maps()
    history = hz.get_map(maps["SCAN_BRIDGE_HISTORY_MAP"])
    bridge = Bridge(watch, {**member_env(cluster), **maps}, log_path, "--retention", "6000")
    with bridge:
        deadline = time.monotonic() + 600
        while True:
            size = history.size().result()
            if size >= count:
                done_perf, done_wall = time.perf_counter(), time.time()
                break
            if bridge.proc.poll() is not None:
                raise RuntimeError(f"bridge exited: {bridge.tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"history holds {size} of {count} after 600 s: {bridge.tail()}")
            time.sleep(0.05)
        connected = bridge.wait_logged("Connected to Hazelcast", 10)
        caught = bridge.wait_logged("Caught up", 30)
    for name in maps.values():
        hz.get_map(name).destroy()
    total = done_perf - bridge.started_perf
    from_connected = done_wall - datetime.fromisoformat(connected["time"]).timestamp()
    own = float(caught["message"].split(" in ")[1].split(" s")[0])
    return {"from_start_s": total, "from_connected_s": from_connected, "own_s": own}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 300 files, 1 round")
    parser.add_argument("--files", type=int, default=None, help="backlog size (default 5000)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds of (bridge, bare put_all) per member configuration (default 3)")
    parser.add_argument(
        "--member-config",
        choices=("default", "metadata-off", "both"),
        default="both",
        help="the member's JSON metadata policy: its default (CREATE_ON_UPDATE), OFF, or both in turn (default both)",
    )
    args = parser.parse_args(argv)
    count = args.files or (300 if args.quick else 5000)
    rounds = args.rounds or (1 if args.quick else 3)
    configs = ("default", "metadata-off") if args.member_config == "both" else (args.member_config,)
    if count > 6000:
        parser.error("--files must be at most 6000 (the bridge runs with --retention 6000)")

    watch = backlog(count, ASSETS)
    files = sorted(watch.rglob("scan_*.arrow"))
    if len(files) != count:
        raise SystemExit(f"backlog cache {watch} holds {len(files)} files, expected {count}: delete it and rerun")
    log(f"building {count} documents with read_scan + document_json (not timed)")
    pushed_at = datetime.now(UTC)
    documents: dict[int, HazelcastJsonValue] = {}
    for path in files:
        record = read_scan(path, 1 << 30)
        documents[record.key] = HazelcastJsonValue(document_json(record, pushed_at))  # the bridge's key: the time
    doc_bytes = sum(len(d.to_string()) for d in documents.values())

    print_header("Catch-up of a backlog")
    print(
        f"{count} files x {ASSETS} assets ({doc_bytes / count / 1000:.0f} KB of JSON each, {doc_bytes / 1e6:.0f} MB in all); "
        f"{rounds} round(s) per member configuration, alternating order; medians. Member heap {HEAP}.\n"
    )
    verdicts = []
    for config in configs:
        json_metadata = config == "default"
        label = "member default (metadata-policy CREATE_ON_UPDATE)" if json_metadata else "member with metadata-policy: OFF"
        bridge_runs: list[dict] = []
        bare_runs: list[float] = []
        with tempfile.TemporaryDirectory(prefix="bench-catchup-") as tmp_text:
            tmp = Path(tmp_text)
            with hazelcast_member(tmp, heap=HEAP, json_metadata=json_metadata) as cluster:
                hz = client(cluster)
                try:
                    bare_put_all(hz, dict(list(documents.items())[:BATCH]))  # warm the member and the connection
                    for r in range(rounds):
                        order = ("bare", "bridge") if r % 2 == 0 else ("bridge", "bare")
                        for kind in order:
                            if kind == "bare":
                                bare_runs.append(bare_put_all(hz, documents))
                                log(f"{config} round {r + 1}: bare put_all {bare_runs[-1]:.2f} s")
                            else:
                                bridge_runs.append(bridge_catchup(cluster, hz, watch, count, tmp / f"bridge-{r}.log"))
                                log(f"{config} round {r + 1}: bridge {bridge_runs[-1]}")
                finally:
                    hz.shutdown()

        bare_rate = count / median(bare_runs)
        start_rate = count / median([b["from_start_s"] for b in bridge_runs])
        conn_rate = count / median([b["from_connected_s"] for b in bridge_runs])
        own_rate = count / median([b["own_s"] for b in bridge_runs])
        print(f"### {label}\n")
        rows = []
        for r in range(rounds):
            b = bridge_runs[r]
            rows.append(
                [
                    r + 1,
                    f"{bare_runs[r]:.2f}",
                    f"{b['from_start_s']:.2f}",
                    f"{b['from_connected_s']:.2f}",
                    f"{b['own_s']:.1f}",
                    f"{bare_runs[r] / b['from_connected_s']:.2f}",
                ]
            )
        print(md_table(["round", "bare put_all s", "bridge from start s", "bridge from Connected s", "bridge's own 'Caught up' s", "ratio (from Connected)"], rows))
        print()
        summary = [
            ["bare put_all (batches of 200)", f"{bare_rate:.0f}", "1.00"],
            ["bridge, from process start", f"{start_rate:.0f}", f"{start_rate / bare_rate:.2f}"],
            ["bridge, from 'Connected' log line", f"{conn_rate:.0f}", f"{conn_rate / bare_rate:.2f}"],
            ["bridge, its own 'Caught up … in X s'", f"{own_rate:.0f}", f"{own_rate / bare_rate:.2f}"],
        ]
        print(md_table(["measure (median)", "scans/s", "ratio to bare"], summary))
        print()
        verdict_conn = "met" if conn_rate / bare_rate >= TARGET_RATIO else "NOT met"
        verdict_start = "met" if start_rate / bare_rate >= TARGET_RATIO else "NOT met"
        verdicts.append(
            f"{label}: {verdict_conn} from the 'Connected' line ({conn_rate / bare_rate:.2f}); "
            f"{verdict_start} from process start ({start_rate / bare_rate:.2f})."
        )
    print(f"Target ≥ {TARGET_RATIO} of bare put_all:")
    for line in verdicts:
        print(f"- {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
