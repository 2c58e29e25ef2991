"""History on disk: does a year of date folders slow the bridge's start or its idle polling, against one day?

    python bench/bench_history.py            # the real figures (~3 min; ~1 min more the first time, to build the trees)
    python bench/bench_history.py --quick    # smoke run: 1 round, 5 s idle window

Trees (built once under /tmp/scan-bridge-bench-cache/history-v1 and reused):

* **day**: ``2026-03-24/`` with 1,000 scan files;
* **2 days**: the day plus ``2026-03-23/`` with 1,000 more (diagnostic: the bridge watches the
  ``watch_recent_dirs=2`` newest folders, so a second full folder is what a real deployment has
  every day after its first);
* **year**: 365 folders ``2025-03-25/`` … ``2026-03-24/`` × 1,000 files = 365,000 files.

Names are ``YYYY-MM-DD/scan_NNNNNNN_HHMMSS.arrow``, numbers increasing with time. The newest folder
holds 1,000 distinct tiny scans (5 assets), the same inodes in every tree; every other folder holds
one tiny scan and 999 hard links to it (so those files share one mtime, and carry a scan number
inside that differs from their name; only names matter to the listing code).

Per tree, with its own maps (kept between runs of that tree):

1. a **cold** start (fresh maps: the bridge catches up the newest 1,000 files; shown, n=1; one
   unreported start before them warms the member and the page cache);
2. **warm** starts (history already holds the newest 1,000, as after a restart), native observer:
   seconds from the process start to the "Connected" and "Watching" log lines, and to the entry
   event of a new scan file written right after the process was started;
3. the same warm start with ``--observer polling`` (default ``--poll-interval-s`` 1.0), then the
   bridge's CPU over an idle window (no new files) after "Watching" + 3 s.

Trees are alternated within each round; medians over rounds. The bridge first touches the tree
after it has connected, so the start-to-"Connected" part (interpreter start-up, imports, the
connection: ~0.5 s, and the noisiest) cannot depend on the tree; "Connected → first push" is the
part that can, and is shown apart. Target: year within 20 % of day,
for the start-to-first-push time and for the polling idle CPU.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    CACHE_ROOT,
    Bridge,
    KeyEvents,
    client,
    cpu_seconds,
    hazelcast_member,
    log,
    md_table,
    median,
    member_env,
    print_header,
    unique_maps,
)

from scan_bridge.simulate import Market, scan_table, table_bytes, write_bytes, write_scan  # noqa: E402

FILES_PER_DAY = 1000
DAYS = 365
LAST_DAY = date(2026, 3, 24)
ASSETS = 5
NEW_BASE = 9_000_000  # numbers of the files written during the benchmark (removed afterwards)
TARGET = 0.20
TREES = ("day", "2 days", "year")


def _name(number: int, index: int) -> str:
    seconds = index * 86400 // FILES_PER_DAY
    return f"scan_{number:07d}_{seconds // 3600:02d}{seconds // 60 % 60:02d}{seconds % 60:02d}.arrow"


def build_trees() -> dict[str, Path]:
    root = CACHE_ROOT / "history-v1"
    trees = {"day": root / "day", "2 days": root / "two-days", "year": root / "year"}
    if (root / "complete").exists():
        return trees
    started = time.perf_counter()
    log(f"building the history trees in {root} (once)")
    market = Market(ASSETS, random.Random(3))
    day_index = {d: (LAST_DAY - timedelta(days=DAYS - 1 - d)) for d in range(DAYS)}
    last = DAYS - 1
    # The newest folder: 1,000 distinct tiny scans, shared (hard links) by every tree.
    newest = trees["day"] / LAST_DAY.isoformat()
    for i in range(FILES_PER_DAY):
        number = last * FILES_PER_DAY + i + 1
        when = datetime.combine(LAST_DAY, datetime.min.time(), UTC) + timedelta(seconds=i * 86400 // FILES_PER_DAY)
        write_bytes(newest / _name(number, i), table_bytes(scan_table(market, number, when)))
    # Older folders: one real tiny scan each, 999 hard links to it.
    for d in range(DAYS - 1):
        folder = trees["year"] / day_index[d].isoformat()
        folder.mkdir(parents=True, exist_ok=True)
        first = folder / _name(d * FILES_PER_DAY + 1, 0)
        write_scan(first, d * FILES_PER_DAY + 1, ASSETS, rng=random.Random(d))
        for i in range(1, FILES_PER_DAY):
            target = folder / _name(d * FILES_PER_DAY + i + 1, i)
            if not target.exists():
                os.link(first, target)
    for tree in ("2 days", "year"):
        for source in sorted(newest.iterdir()):
            target = trees[tree] / LAST_DAY.isoformat() / source.name
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                os.link(source, target)
    yesterday = trees["year"] / day_index[DAYS - 2].isoformat()
    for source in sorted(yesterday.iterdir()):
        target = trees["2 days"] / yesterday.name / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            os.link(source, target)
    (root / "complete").write_text("ok\n")
    log(f"trees built in {time.perf_counter() - started:.0f} s")
    return trees


def remove_new_files(trees: dict[str, Path]) -> None:
    for watch in trees.values():
        folder = watch / LAST_DAY.isoformat()
        for entry in os.scandir(folder):
            if entry.name.startswith(("scan_9", ".scan_9")):
                os.unlink(entry.path)


def start_run(cluster, hz, watch: Path, maps: dict[str, str], number: int, log_path: Path, *flags: str) -> tuple[Bridge, dict]:
    """Start a bridge, write scan ``number`` right after, wait until it is in history; the start-up figures."""
    events = KeyEvents(hz, maps["SCAN_BRIDGE_HISTORY_MAP"])
    bridge = Bridge(watch, {**member_env(cluster), **maps}, log_path, *flags).start()
    try:
        write_scan(watch / LAST_DAY.isoformat() / _name(number, FILES_PER_DAY - 1), number, ASSETS)
        if not events.wait(lambda seen: number in seen, 120):
            raise TimeoutError(f"scan {number} not in history within 120 s: {bridge.tail()}")
        connected = bridge.wait_logged("Connected to Hazelcast", 10)
        watching = bridge.wait_logged("Watching", 10)
    except BaseException:
        bridge.stop()
        raise
    finally:
        events.close()
    first_push = events.seen[number] - bridge.started_perf
    return bridge, {
        "connected": bridge.since_start(connected),
        "watching": bridge.since_start(watching),
        "first_push": first_push,
        # The tree is first touched after the connection: everything before is interpreter start-up and connecting.
        "after_connected": first_push - bridge.since_start(connected),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round, 5 s idle window")
    parser.add_argument("--rounds", type=int, default=None, help="warm native starts per tree (default 5)")
    parser.add_argument("--idle-rounds", type=int, default=None, help="polling starts + idle windows per tree (default 2)")
    parser.add_argument("--idle-s", type=float, default=None, help="idle window (default 20)")
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 5)
    idle_rounds = args.idle_rounds or (1 if args.quick else 2)
    idle_s = args.idle_s or (5.0 if args.quick else 20.0)

    trees = build_trees()
    remove_new_files(trees)
    counts = {name: sum(1 for _ in path.glob("*/scan_*.arrow")) for name, path in trees.items()}
    folders = {name: sum(1 for p in path.iterdir() if p.is_dir()) for name, path in trees.items()}
    cold: dict[str, dict] = {}
    warm: dict[str, list[dict]] = {t: [] for t in TREES}
    polling: dict[str, list[dict]] = {t: [] for t in TREES}
    number = NEW_BASE
    with tempfile.TemporaryDirectory(prefix="bench-history-") as tmp_text:
        tmp = Path(tmp_text)
        try:
            with hazelcast_member(tmp) as cluster:
                hz = client(cluster)
                try:
                    maps = {t: unique_maps() for t in TREES}
                    number += 1  # a first, unreported start warms the member (JIT) and the page cache
                    bridge, _ = start_run(cluster, hz, trees["day"], unique_maps(), number, tmp / "warm-up.log")
                    bridge.stop()
                    for t in TREES:
                        number += 1
                        bridge, figures = start_run(cluster, hz, trees[t], maps[t], number, tmp / f"cold-{t}.log")
                        bridge.stop()
                        cold[t] = figures
                        log(f"{t}: cold {figures}")
                    for r in range(rounds):
                        order = TREES if r % 2 == 0 else tuple(reversed(TREES))
                        for t in order:
                            number += 1
                            bridge, figures = start_run(cluster, hz, trees[t], maps[t], number, tmp / f"warm-{t}-{r}.log")
                            bridge.stop()
                            warm[t].append(figures)
                            log(f"{t}: warm native {figures}")
                    for r in range(idle_rounds):
                        order = TREES if r % 2 == 0 else tuple(reversed(TREES))
                        for t in order:
                            number += 1
                            bridge, figures = start_run(
                                cluster, hz, trees[t], maps[t], number, tmp / f"poll-{t}-{r}.log", "--observer", "polling"
                            )
                            try:
                                proc = psutil.Process(bridge.pid)
                                time.sleep(3)
                                before, started = cpu_seconds(proc), time.perf_counter()
                                time.sleep(idle_s)
                                figures["idle_cpu_pct"] = (cpu_seconds(proc) - before) / (time.perf_counter() - started) * 100
                                figures["rss_mb"] = proc.memory_info().rss / 2**20
                            finally:
                                bridge.stop()
                            polling[t].append(figures)
                            log(f"{t}: polling {figures}")
                finally:
                    hz.shutdown()
        finally:
            remove_new_files(trees)

    def med(runs: list[dict], key: str) -> float:
        return median([run[key] for run in runs])

    print_header("History on disk: one day vs a year of date folders")
    print(
        f"Tiny scans ({ASSETS} assets); warm starts: {rounds} per tree (native observer), {idle_rounds} with the polling "
        f"observer (default 1.0 s interval) + {idle_s:g} s idle window each; medians; seconds from the bridge process start.\n"
    )
    rows = []
    for t in TREES:
        rows.append(
            [
                t,
                f"{folders[t]} / {counts[t]:,}",
                f"{cold[t]['first_push']:.2f}",
                f"{med(warm[t], 'connected'):.2f}",
                f"{med(warm[t], 'watching'):.2f}",
                f"{med(warm[t], 'first_push'):.2f}",
                f"{med(warm[t], 'after_connected') * 1000:.0f}",
                f"{med(polling[t], 'watching'):.2f}",
                f"{med(polling[t], 'first_push'):.2f}",
                f"{med(polling[t], 'idle_cpu_pct'):.2f}",
                f"{med(polling[t], 'rss_mb'):.0f}",
            ]
        )
    print(
        md_table(
            [
                "tree",
                "folders / files",
                "cold: start → first push s (n=1)",
                "warm native: → Connected s",
                "→ Watching s",
                "→ first push s",
                "Connected → first push ms",
                "warm polling: → Watching s",
                "→ first push s",
                "polling idle CPU % of a core",
                "RSS MB",
            ],
            rows,
        )
    )
    push_ratio = med(warm["year"], "first_push") / med(warm["day"], "first_push")
    tree_ratio = med(warm["year"], "after_connected") / med(warm["day"], "after_connected")
    idle_ratio = med(polling["year"], "idle_cpu_pct") / med(polling["day"], "idle_cpu_pct")
    two_ratio = med(polling["2 days"], "idle_cpu_pct") / med(polling["day"], "idle_cpu_pct")
    print()
    print(
        md_table(
            ["year ÷ day", "ratio", "within 20 %?"],
            [
                ["warm start → first push (native)", f"{push_ratio:.2f}", "yes" if push_ratio <= 1 + TARGET else "NO"],
                ["… of which 'Connected' → first push (the part that lists the tree)", f"{tree_ratio:.2f}", "yes" if tree_ratio <= 1 + TARGET else "NO"],
                ["polling idle CPU", f"{idle_ratio:.2f}", "yes" if idle_ratio <= 1 + TARGET else "NO"],
                ["(diagnostic) 2 days ÷ day, polling idle CPU", f"{two_ratio:.2f}", ""],
            ],
        )
    )
    met = push_ratio <= 1 + TARGET and idle_ratio <= 1 + TARGET
    print(f"\nTarget (year within 20 % of one day, both figures): {'met' if met else 'NOT met'}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
