"""A day's folder moved in at once, against the catch-up of the same folder at start.

    python bench/bench_burst.py            # 6,000 scans of 400 assets (~2 min the first time, to write them)
    python bench/bench_burst.py --quick    # 1,000 scans

The folder (``2026-03-24/`` with N scans of 400 assets, written once under
/tmp/scan-bridge-bench-cache/burst-v1 and hard-linked for each run) is given to a bridge with the
default settings (retention 1,000, batch size 200) in three ways, each with fresh maps:

* **catch-up**: the folder is there when the bridge starts (the start-up reconcile pushes it);
* **moved in, native** / **moved in, polling**: the bridge runs and watches an empty folder; the
  day's folder is renamed into it (from beside it, same file system) in one step.

Measured: seconds from the bridge's start (catch-up) or the rename (moved in) until the newest
1,000 scans are all in history (an entry listener in this process), how many scans were pushed
(the bridge's ``pushed_total``) and the largest ``put_all`` (its debug line per put), and the
bridge's peak RSS (sampled every 20 ms). "Hostile input" (issue 16) measured 574 MB RSS and one
put of 6,000 documents for the moved-in case before the live path batched.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    CACHE_ROOT,
    Bridge,
    KeyEvents,
    client,
    hazelcast_member,
    log,
    md_table,
    member_env,
    pregenerate_scans,
    print_header,
    unique_maps,
)

ASSETS = 400
RETENTION = 1000
DAY = "2026-03-24"


def source_folder(count: int) -> Path:
    root = CACHE_ROOT / "burst-v1" / f"{count}"
    folder = root / DAY
    done = root / "complete"
    if done.exists():
        return folder
    log(f"writing {count} scans of {ASSETS} assets into {folder} (once)")
    folder.mkdir(parents=True, exist_ok=True)
    for i, data in enumerate(pregenerate_scans(1, count, ASSETS)):
        (folder / f"scan_{i + 1:06d}_{i * 5 // 3600 % 24:02d}{i * 5 // 60 % 60:02d}{i * 5 % 60:02d}.arrow").write_bytes(data)
    done.write_text("ok\n")
    return folder


class PeakRss:
    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except psutil.Error:
                return

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak / 2**20


def run(cluster, hz, tmp: Path, source: Path, count: int, mode: str) -> list[str]:
    work = tmp / mode.replace(" ", "-").replace(",", "")
    watch = work / "scans"
    watch.mkdir(parents=True)
    staged = work / DAY
    subprocess.run(["cp", "-al", str(source), str(staged)], check=True)
    if mode == "catch-up":
        os.rename(staged, watch / DAY)
    maps = unique_maps()
    events = KeyEvents(hz, maps["SCAN_BRIDGE_HISTORY_MAP"])
    observer = "polling" if "polling" in mode else "native"
    bridge = Bridge(watch, {**member_env(cluster), **maps}, work / "bridge.log", "--observer", observer, "--log-level", "DEBUG")
    newest = set(range(count - RETENTION + 1, count + 1))
    try:
        bridge.start()
        rss = PeakRss(bridge.pid)
        started = time.perf_counter()
        if mode != "catch-up":
            bridge.wait_logged("Watching", 60)
            started = time.perf_counter()
            os.rename(staged, watch / DAY)
        if not events.wait(lambda seen: newest <= seen.keys(), 300):
            raise TimeoutError(f"{mode}: the newest {RETENTION} not in history: {bridge.tail()}")
        elapsed = max(events.seen[n] for n in newest) - started
        time.sleep(2)  # let the summary line with pushed_total come
        peak = rss.stop()
        puts = [line["fields"]["put_all"] for line in bridge.lines() if "put_all" in line.get("fields", {})]
    finally:
        events.close()
        bridge.stop()
        shutil.rmtree(work, ignore_errors=True)
    log(f"{mode}: {elapsed:.2f} s, pushed {sum(puts)} in {len(puts)} puts (largest {max(puts)}), peak RSS {peak:.0f} MB")
    return [mode, f"{elapsed:.2f}", f"{sum(puts):,}", f"{len(puts)}", f"{max(puts)}", f"{peak:.0f}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1,000 scans instead of 6,000")
    args = parser.parse_args(argv)
    count = 1000 if args.quick else 6000
    source = source_folder(count)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-burst-", dir=CACHE_ROOT) as tmp_text:  # same file system: rename, links
        tmp = Path(tmp_text)
        with hazelcast_member(tmp / "member") as cluster:
            hz = client(cluster)
            try:
                for mode in ("catch-up", "moved in, native", "moved in, polling"):
                    rows.append(run(cluster, hz, tmp, source, count, mode))
            finally:
                hz.shutdown()
    print_header(f"A folder of {count:,} scans moved in at once, against its catch-up at start")
    print(f"{count:,} scans of {ASSETS} assets, default retention {RETENTION} and batch size 200; fresh maps each.\n")
    print(md_table(["how the folder arrives", "→ newest 1,000 in history s", "scans pushed", "puts", "largest put", "peak RSS MB"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
