"""Micro benchmark: one simulated scan, from file on disk to the document text the bridge pushes.

    python bench/bench_reader.py                      # 400 assets, 500 repeats
    python bench/bench_reader.py --assets 2000 --repeat 200 --format stream

Prints the median time of ``read_scan`` + ``document_json`` (what the bridge does per scan), the
same scan done naively (row-wise ``to_pylist`` + ``json.dumps``), their ratio, and the document size.
Whether the numpy fast path (``scanfile.NUMPY_COLUMNS``) is on is printed too: with it, numeric
columns skip Python floats (faster).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from scan_bridge import scanfile
from scan_bridge.document import document_json, parse_timestamp
from scan_bridge.scanfile import read_scan
from scan_bridge.simulate import write_scan


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    for _ in range(min(20, repeat)):  # warm caches and allocators
        fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def naive(path: Path, fmt: str) -> str:
    """Row dicts through the standard library: what the bridge avoids."""
    with pa.memory_map(str(path)) as source:
        reader = pa.ipc.open_file(source) if fmt == "file" else pa.ipc.open_stream(source)
        table = reader.read_all()
    meta = {k.decode(): v.decode() for k, v in (reader.schema.metadata or {}).items()}
    rows = table.to_pylist()
    document = {
        "scan_number": int(meta.pop("scan_number")),
        "timestamp": parse_timestamp(meta.pop("timestamp")).isoformat(),
        "asset_count": len(rows),
        **meta,
        "rows": rows,
        "bridge": {"pushed_at": datetime.now(UTC).isoformat(), "file": str(path)},
    }
    return json.dumps(document, default=str)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", type=int, default=400)
    parser.add_argument("--repeat", type=int, default=500)
    parser.add_argument("--format", dest="fmt", choices=("file", "stream"), default="file")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as folder:
        path = write_scan(Path(folder) / "scan_000001_000000.arrow", 1, args.assets, fmt=args.fmt, rng=random.Random(1))
        pushed_at = datetime.now(UTC)

        def bridge() -> str:
            return document_json(read_scan(path, 1 << 30), pushed_at)

        text = bridge()
        arrow_bytes = path.stat().st_size
        fast = median_ms(bridge, args.repeat)
        read_only = median_ms(lambda: read_scan(path, 1 << 30), args.repeat)
        slow = median_ms(lambda: naive(path, args.fmt), args.repeat)

    print(f"scan: {args.assets} assets, Arrow {args.fmt} of {arrow_bytes:,} bytes; document {len(text.encode()):,} bytes of JSON")
    print(f"numpy fast path: {'on' if scanfile.NUMPY_COLUMNS else 'off'}; python {sys.version.split()[0]}, pyarrow {pa.__version__}")
    print(f"read_scan + document_json: median {fast:.3f} ms over {args.repeat} runs (read_scan alone {read_only:.3f} ms)")
    print(f"naive to_pylist + json:    median {slow:.3f} ms over {args.repeat} runs")
    print(f"ratio: {slow / fast:.1f}x faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
