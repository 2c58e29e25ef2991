"""History on disk: does a year of folders slow the bridge's start or its idle polling, against one day?

    python bench/bench_history.py            # the real figures (~4 min; ~2 min more the first time, to build the trees)
    python bench/bench_history.py --quick    # smoke run: 1 round, 5 s idle window

Trees (built once under /tmp/scan-bridge-bench-cache/history-v2 and reused):

* **day**: ``2026-03-24/`` with 1,000 scan files;
* **2 days**: the day plus ``2026-03-23/`` with 1,000 more (diagnostic: yesterday's full folder);
* **year**: 365 folders ``2025-03-25/`` … ``2026-03-24/`` × 1,000 files = 365,000 files, plus the
  folders a real scanner directory holds beside the dates and whose names sort after them:
  ``logs/``, ``archive/``, ``quarantine/``, ``zzz/`` (a few files each);
* **year nested**: the same year as ``2025/03/25/`` … ``2026/03/24/`` (365 day folders, 13 month
  folders, 2 year folders) plus the same non-date folders.

Names are ``scan_NNNNNNN_HHMMSS.arrow`` in the day folders, numbers increasing with time. The newest folder
holds 1,000 distinct tiny scans (5 assets), the same inodes in every tree; every other folder holds
one tiny scan and 999 hard links to it (so those files share one mtime, and carry a scan number
inside that differs from their name; only names matter to the listing code).

Every folder is watched (one inotify watch each with the native observer, one ``stat`` per poll with
the polling one), so the watches and the folder count are shown. Per tree, with its own maps (kept
between runs of that tree):

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
    cpu_percent,
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
TREES = ("day", "2 days", "year", "year nested")
OTHER_FOLDERS = ("logs", "archive", "quarantine", "zzz")


def day_folder(tree: str, day: date) -> str:
    """Where a day's scans live in a tree: ``YYYY-MM-DD`` or ``YYYY/MM/DD``."""
    return f"{day:%Y/%m/%d}" if tree == "year nested" else day.isoformat()


def _name(number: int, index: int) -> str:
    seconds = index * 86400 // FILES_PER_DAY
    return f"scan_{number:07d}_{seconds // 3600:02d}{seconds // 60 % 60:02d}{seconds % 60:02d}.arrow"


def build_trees() -> dict[str, Path]:
    root = CACHE_ROOT / "history-v2"
    trees = {"day": root / "day", "2 days": root / "two-days", "year": root / "year", "year nested": root / "year-nested"}
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
    for d in range(DAYS - 1):  # the nested year: the same files, other folders
        source_folder = trees["year"] / day_index[d].isoformat()
        folder = trees["year nested"] / day_folder("year nested", day_index[d])
        folder.mkdir(parents=True, exist_ok=True)
        for source in source_folder.iterdir():
            if not (folder / source.name).exists():
                os.link(source, folder / source.name)
    for tree in ("2 days", "year", "year nested"):
        for source in sorted(newest.iterdir()):
            target = trees[tree] / day_folder(tree, LAST_DAY) / source.name
            target.parent.mkdir(parents=True, exist_ok=True)
            if not target.exists():
                os.link(source, target)
    for tree in ("year", "year nested"):
        for name in OTHER_FOLDERS:
            folder = trees[tree] / name
            folder.mkdir(exist_ok=True)
            for i in range(3):
                (folder / f"note-{i}.txt").write_text("not a scan\n")
    yesterday = trees["year"] / day_index[DAYS - 2].isoformat()
    for source in sorted(yesterday.iterdir()):
        target = trees["2 days"] / yesterday.name / source.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            os.link(source, target)
    (root / "complete").write_text("ok\n")
    log(f"trees built in {time.perf_counter() - started:.0f} s")
    return trees


def set_history_mtimes(trees: dict[str, Path]) -> None:
    """Give the trees the modification times a real history has (the build writes them all at once).

    A day's files carry times spread over that day (the newest folder's, one per file; an older
    folder's hard links share one inode, so one time at its noon), and each folder the time of its
    last change (the end of its day; month and year folders the start of their last day). "Newest"
    is by modification time, so without this every file of the year would be equally new.
    """
    def stamp(day: date, seconds: int) -> float:
        return datetime.combine(day, datetime.min.time(), UTC).timestamp() + seconds

    newest = trees["day"] / LAST_DAY.isoformat()
    for i, path in enumerate(sorted(newest.iterdir())):
        if path.name.startswith("scan_9"):
            continue
        when = stamp(LAST_DAY, i * 86400 // FILES_PER_DAY)
        os.utime(path, (when, when))
    for d in range(DAYS - 1):
        day = LAST_DAY - timedelta(days=DAYS - 1 - d)
        first = next(iter(sorted((trees["year"] / day.isoformat()).iterdir())))
        os.utime(first, (stamp(day, 43200),) * 2)
    for tree, watch in trees.items():
        folders = [p for p in watch.rglob("*") if p.is_dir()]
        for folder in sorted(folders, key=lambda p: -len(p.parts)):
            rel = folder.relative_to(watch).as_posix()
            try:
                day = date.fromisoformat(rel.replace("/", "-")) if rel.count("/") == 2 or len(rel) == 10 else None
            except ValueError:
                day = None
            if day is not None:
                when = stamp(day, 86399)
            elif rel[:4].isdigit():  # a year or month folder of the nested tree: its last day's start
                days = [date.fromisoformat(p.relative_to(watch).as_posix().replace("/", "-")) for p in folder.rglob("*") if p.is_dir() and p.relative_to(watch).as_posix().count("/") == 2]
                when = stamp(max(days), 0) if days else stamp(LAST_DAY, 0)
            else:  # logs/, archive/, ...: touched long ago
                when = stamp(LAST_DAY - timedelta(days=30), 0)
            os.utime(folder, (when, when))


def remove_new_files(trees: dict[str, Path]) -> None:
    for tree, watch in trees.items():
        folder = watch / day_folder(tree, LAST_DAY)
        for entry in os.scandir(folder):
            if entry.name.startswith(("scan_9", ".scan_9")):
                os.unlink(entry.path)


def inotify_watches(pid: int) -> int:
    """inotify watches held by a process (``inotify wd:`` lines of its descriptors' fdinfo)."""
    total = 0
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}", encoding="ascii") as info:
                total += sum(line.startswith("inotify wd:") for line in info)
        except OSError:
            continue
    return total


def start_run(cluster, hz, tree: str, watch: Path, maps: dict[str, str], number: int, log_path: Path, *flags: str) -> tuple[Bridge, dict]:
    """Start a bridge, write scan ``number`` right after, wait until it is in history; the start-up figures."""
    events = KeyEvents(hz, maps["SCAN_BRIDGE_HISTORY_MAP"])
    bridge = Bridge(watch, {**member_env(cluster), **maps}, log_path, *flags).start()
    try:
        write_scan(watch / day_folder(tree, LAST_DAY) / _name(number, FILES_PER_DAY - 1), number, ASSETS)
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
        "watches": inotify_watches(bridge.pid),
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
    set_history_mtimes(trees)
    counts = {name: sum(1 for _ in path.rglob("scan_*.arrow")) for name, path in trees.items()}
    folders = {name: 1 + sum(1 for p in path.rglob("*") if p.is_dir()) for name, path in trees.items()}
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
                    bridge, _ = start_run(cluster, hz, "day", trees["day"], unique_maps(), number, tmp / "warm-up.log")
                    bridge.stop()
                    for t in TREES:
                        number += 1
                        bridge, figures = start_run(cluster, hz, t, trees[t], maps[t], number, tmp / f"cold-{t}.log")
                        bridge.stop()
                        cold[t] = figures
                        log(f"{t}: cold {figures}")
                    for r in range(rounds):
                        order = TREES if r % 2 == 0 else tuple(reversed(TREES))
                        for t in order:
                            number += 1
                            bridge, figures = start_run(cluster, hz, t, trees[t], maps[t], number, tmp / f"warm-{t}-{r}.log")
                            bridge.stop()
                            warm[t].append(figures)
                            log(f"{t}: warm native {figures}")
                    for r in range(idle_rounds):
                        order = TREES if r % 2 == 0 else tuple(reversed(TREES))
                        for t in order:
                            number += 1
                            bridge, figures = start_run(
                                cluster, hz, t, trees[t], maps[t], number, tmp / f"poll-{t}-{r}.log", "--observer", "polling"
                            )
                            try:
                                proc = psutil.Process(bridge.pid)
                                time.sleep(3)
                                figures["idle_cpu_pct"] = cpu_percent(proc, idle_s)
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

    print_header("History on disk: one day vs a year of folders")
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
                f"{med(warm[t], 'watches'):.0f}",
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
                "folders (incl. the top) / scan files",
                "inotify watches",
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
    nested_push = med(warm["year nested"], "first_push") / med(warm["day"], "first_push")
    nested_idle = med(polling["year nested"], "idle_cpu_pct") / med(polling["day"], "idle_cpu_pct")
    print()
    print(
        md_table(
            ["year ÷ day", "ratio", "within 20 %?"],
            [
                ["warm start → first push (native)", f"{push_ratio:.2f}", "yes" if push_ratio <= 1 + TARGET else "NO"],
                ["… of which 'Connected' → first push (the part that lists the tree)", f"{tree_ratio:.2f}", "yes" if tree_ratio <= 1 + TARGET else "NO"],
                ["polling idle CPU", f"{idle_ratio:.2f}", "yes" if idle_ratio <= 1 + TARGET else "NO"],
                ["year nested ÷ day: warm start → first push (native)", f"{nested_push:.2f}", "yes" if nested_push <= 1 + TARGET else "NO"],
                ["year nested ÷ day: polling idle CPU", f"{nested_idle:.2f}", "yes" if nested_idle <= 1 + TARGET else "NO"],
                ["(diagnostic) 2 days ÷ day, polling idle CPU", f"{two_ratio:.2f}", ""],
            ],
        )
    )
    met = all(r <= 1 + TARGET for r in (push_ratio, idle_ratio, nested_push, nested_idle))
    print(f"\nTarget (either year within 20 % of one day, both figures): {'met' if met else 'NOT met'}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
