"""What the reconcile's first look costs since keys are times (issue 14): reading the newest 1,000 files once.

Before, a file whose name carried a scan number the cluster held was skipped unread; a number says
nothing about presence once history is keyed by time, so a fresh bridge reads each of the newest
``retention`` files once (later reconciles of the same process skip those it read, unchanged since).

    python bench/bench_reconcile_read.py [--files 1000] [--assets 400] [--runs 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from scan_bridge.scanfile import read_scan
from scan_bridge.simulate import write_scan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--assets", type=int, default=400)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    t0 = datetime(2026, 3, 24, tzinfo=UTC)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        paths = [
            write_scan(root / f"scan_{n:06d}.arrow", n, args.assets, timestamp=t0 + timedelta(seconds=n), rng=random.Random(n))
            for n in range(args.files)
        ]
        runs = []
        for _ in range(args.runs):
            started = time.perf_counter()
            for path in paths:
                read_scan(path, 1 << 30)
            runs.append(time.perf_counter() - started)
    median = statistics.median(runs)
    print(f"read {args.files} files of {args.assets} assets: median {median:.2f} s over {args.runs} runs "
          f"({median / args.files * 1000:.2f} ms per file)")


if __name__ == "__main__":
    main()
