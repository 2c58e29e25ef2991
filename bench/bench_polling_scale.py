"""Diagnostic: the polling observer's idle CPU against the files in a folder and the number of folders.

    python bench/bench_polling_scale.py            # 0 / 1,000 / 5,000 / 17,280 files; 365 / 3,650 folders; 15 s windows (~2.5 min)
    python bench/bench_polling_scale.py --quick    # 0 / 1,000 files, 365 folders, 5 s windows

A scanner writing every 5 s leaves 17,280 files in a day's folder. watchdog's polling observer
snapshots (lists and ``stat``s) every watched file on every poll, so the bridge's idle cost grows
with the size of today's (and yesterday's) folder, not with the rate of new scans. This measures
that slope: one date folder of N files (hard links to one tiny scan, built once under
/tmp/scan-bridge-bench-cache), a real bridge with ``--observer polling`` (default 1.0 s interval)
and ``--retention 1`` (so start-up reads one file and the window is idle), CPU over a window that
opens 3 s after "Watching". The native observer on the largest folder is a row, for contrast.

Every folder under the watched directory is polled (a ``stat`` each per poll, a listing only when it
changed), so the second series is a tree of N day folders (``YYYY/MM/DD``, one file each, their
mtimes long past) beside ``logs/`` and ``zzz/``: the idle cost per folder.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    CACHE_ROOT,
    Bridge,
    cpu_percent,
    hazelcast_member,
    log,
    md_table,
    member_env,
    print_header,
    unique_maps,
)

from scan_bridge.simulate import write_scan  # noqa: E402


def folder_of(count: int) -> Path:
    watch = CACHE_ROOT / "polling-scale" / f"{count}"
    folder = watch / "2026-03-24"
    done = watch.parent / f"{count}.complete"
    if done.exists():
        return watch
    folder.mkdir(parents=True, exist_ok=True)
    if count:
        first = folder / "scan_0000001_000000.arrow"
        if not first.exists():
            write_scan(first, 1, 5)
        for i in range(1, count):
            target = folder / f"scan_{i + 1:07d}_{i * 5 // 3600 % 24:02d}{i * 5 // 60 % 60:02d}{i * 5 % 60:02d}.arrow"
            if not target.exists():
                os.link(first, target)
    done.write_text("ok\n")
    return watch


def tree_of(folders: int) -> Path:
    """``N`` day folders as ``YYYY/MM/DD`` (one scan each) plus ``logs/`` and ``zzz/``, all long unmodified."""
    watch = CACHE_ROOT / "polling-scale-folders" / f"{folders}"
    done = watch.parent / f"{folders}.complete"
    if done.exists():
        return watch
    first = CACHE_ROOT / "polling-scale-folders" / "scan.arrow"
    if not first.exists():
        first.parent.mkdir(parents=True, exist_ok=True)
        write_scan(first, 1, 5)
    day = date(2026, 3, 24)
    for i in range(folders):
        folder = watch / f"{day - timedelta(days=i):%Y/%m/%d}"
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"scan_{folders - i:07d}_000000.arrow"
        if not target.exists():
            os.link(first, target)
    for name in ("logs", "zzz"):
        (watch / name).mkdir(exist_ok=True)
    old = time.time() - 86400
    for folder in [p for p in watch.rglob("*") if p.is_dir()] + [watch]:
        os.utime(folder, (old, old))
    done.write_text("ok\n")
    return watch


def idle_cpu_percent(bridge: Bridge, seconds: float) -> float:
    """Start ``bridge``; once it is watching and 3 s have settled it, its CPU over ``seconds`` (% of one core); stop it."""
    with bridge:
        bridge.wait_logged("Watching", 60)
        proc = psutil.Process(bridge.pid)
        time.sleep(3)
        return cpu_percent(proc, seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 0 and 1,000 files, 5 s windows")
    parser.add_argument("--files", default=None, help="comma-separated folder sizes (default 0,1000,5000,17280)")
    parser.add_argument("--folders", default=None, help="comma-separated folder counts (default 365,3650)")
    parser.add_argument("--window-s", type=float, default=None, help="idle window (default 15)")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in (args.files or ("0,1000" if args.quick else "0,1000,5000,17280")).split(",")]
    seconds = args.window_s or (5.0 if args.quick else 15.0)
    folder_counts = [int(s) for s in (args.folders or ("365" if args.quick else "365,3650")).split(",")]
    runs = [(n, "polling") for n in sizes] + [(max(sizes), "native")]
    rows = []
    folder_rows = []
    with tempfile.TemporaryDirectory(prefix="bench-polling-") as tmp_text:
        tmp = Path(tmp_text)
        with hazelcast_member(tmp) as cluster:
            for n, observer in runs:
                watch = folder_of(n)
                bridge = Bridge(
                    watch, {**member_env(cluster), **unique_maps()}, tmp / f"bridge-{n}-{observer}.log",
                    "--observer", observer, "--retention", "1",
                )
                pct = idle_cpu_percent(bridge, seconds)
                log(f"{n} files, {observer}: {pct:.2f} %")
                rows.append([f"{n:,}", observer, f"{pct:.2f}"])
            for n in folder_counts:
                watch = tree_of(n)
                bridge = Bridge(
                    watch, {**member_env(cluster), **unique_maps()}, tmp / f"bridge-folders-{n}.log",
                    "--observer", "polling", "--retention", "1",
                )
                pct = idle_cpu_percent(bridge, seconds)
                total = 1 + sum(1 for p in watch.rglob("*") if p.is_dir())
                log(f"{n} day folders ({total} folders), polling: {pct:.2f} %")
                folder_rows.append([f"{n:,}", f"{total:,}", f"{pct:.2f}"])
    print_header("Polling observer: idle CPU against files in the watched folder")
    print(f"One date folder, bridge idle, {seconds:g} s windows, CPU in % of one core (includes the client's own ~1 % floor).\n")
    print(md_table(["files in the folder", "observer", "bridge idle CPU %"], rows))
    polled = [(int(r[0].replace(",", "")), float(r[2])) for r in rows if r[1] == "polling"]
    if len(polled) >= 2 and polled[-1][0] > polled[0][0]:
        slope = (polled[-1][1] - polled[0][1]) / (polled[-1][0] - polled[0][0]) * 1000
        print(f"\nSlope: {slope:.2f} % of a core per 1,000 watched files at a 1.0 s poll interval.")
    if folder_rows:
        print()
        print(md_table(["day folders (YYYY/MM/DD)", "folders polled (with months, years, logs/, zzz/, the top)", "bridge idle CPU %"], folder_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
