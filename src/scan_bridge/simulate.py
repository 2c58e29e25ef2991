"""A simulated eigen scanner: writes realistic scan files at a steady rate, for demos, tests and benchmarks.

    python -m scan_bridge.simulate --out /data/scans --rate 2 --assets 400
    python -m scan_bridge.simulate --out /tmp/scans --rate 5 --count 100 --in-place --format stream

Each scan is one Arrow file (``--format file``, the default) or stream (``--format stream``; still
named ``.arrow``, so readers must tell the formats apart by content) holding one row per asset:

* ``asset`` (string), 12 float64 features that random-walk from scan to scan (``eigenvalue``,
  ``loading_1``..``loading_5``, ``volatility``, ``momentum``, ``z_score`` (NaN for ~1% of assets: not
  enough history), ``correlation``, ``beta``, ``spread_bps``), ``trade_count`` (int64) and
  ``is_anomaly`` (bool);
* schema metadata: ``scan_number``, ``timestamp`` (ISO-8601 UTC, the time of writing),
  ``scanner_version``, ``regime`` (BULL/BEAR/SIDEWAYS/TRANSITION) and ``lambda_max`` (the largest eigenvalue).

Files go to ``OUT/YYYY-MM-DD/scan_NNNNNN_HHMMSS.arrow`` (``--no-date-folders``: straight into OUT).
By default each is written atomically: to ``.scan_....arrow.tmp`` beside it, then renamed. With
``--in-place`` the final name is written in ~8 flushed chunks with short pauses, so a watcher sees
partial files, the way a scanner writing directly would leave them.

Without ``--start-scan``, numbering continues after the newest file already in OUT (by its name),
so a restarted simulator does not reuse scan numbers. SIGINT/SIGTERM stop it after the current file
(never leaving a partial one), with exit status 0.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import orjson
import pyarrow as pa

from .discovery import iter_newest, scan_number_from_name
from .document import format_timestamp

SCANNER_VERSION = "sim-0.1.0"
FEATURES = (
    "eigenvalue",
    "loading_1",
    "loading_2",
    "loading_3",
    "loading_4",
    "loading_5",
    "volatility",
    "momentum",
    "z_score",
    "correlation",
    "beta",
    "spread_bps",
)
REGIMES = ("BULL", "BEAR", "SIDEWAYS", "TRANSITION")
FORMATS = ("file", "stream")
IN_PLACE_CHUNKS = 8


def asset_names(count: int) -> list[str]:
    """``ASSET0001``, ``ASSET0002``, ...: the simulated universe."""
    return [f"ASSET{i:04d}" for i in range(1, count + 1)]


class Market:
    """Per-asset state that random-walks from one scan to the next, so consecutive scans look related."""

    def __init__(self, assets: int, rng: random.Random | None = None) -> None:
        self.rng = rng or random.Random()
        self.assets = asset_names(assets)
        gauss = self.rng.gauss
        n = assets
        self.eigenvalue = [math.exp(gauss(0.0, 0.5)) for _ in range(n)]
        self.loadings = [[max(-1.0, min(1.0, gauss(0.0, 0.3))) for _ in range(n)] for _ in range(5)]
        self.base_vol = [abs(gauss(0.02, 0.008)) + 0.002 for _ in range(n)]
        self.volatility = list(self.base_vol)
        self.momentum = [gauss(0.0, 1.0) for _ in range(n)]
        self.z_score = [gauss(0.0, 1.0) for _ in range(n)]
        self.correlation = [max(-1.0, min(1.0, gauss(0.4, 0.2))) for _ in range(n)]
        self.beta = [gauss(1.0, 0.3) for _ in range(n)]
        self.spread_bps = [abs(gauss(5.0, 2.0)) + 0.5 for _ in range(n)]
        self.trade_count = [int(abs(gauss(5000, 2000))) for _ in range(n)]
        self.young = set(self.rng.sample(range(n), k=max(1, n // 100))) if n else set()
        self.regime = self.rng.choice(REGIMES)

    def step(self) -> tuple[dict[str, list[Any]], dict[str, Any]]:
        """Move one scan ahead: the per-asset columns (without ``asset``) and the scan-level facts."""
        rng = self.rng
        gauss = rng.gauss
        n = len(self.assets)
        if rng.random() < 0.02:
            self.regime = rng.choice(REGIMES)
        self.eigenvalue = [e * math.exp(gauss(0.0, 0.02)) for e in self.eigenvalue]
        self.loadings = [[max(-1.0, min(1.0, x + gauss(0.0, 0.01))) for x in row] for row in self.loadings]
        self.volatility = [abs(v + 0.1 * (b - v) + gauss(0.0, 0.001)) for v, b in zip(self.volatility, self.base_vol)]
        self.momentum = [0.95 * m + gauss(0.0, 0.3) for m in self.momentum]
        self.z_score = [0.9 * z + gauss(0.0, 0.45) for z in self.z_score]
        self.correlation = [max(-1.0, min(1.0, c + gauss(0.0, 0.01))) for c in self.correlation]
        self.beta = [b + gauss(0.0, 0.005) for b in self.beta]
        self.spread_bps = [abs(s + gauss(0.0, 0.1)) + 0.1 for s in self.spread_bps]
        self.trade_count = [max(0, t + int(gauss(0, 150))) for t in self.trade_count]
        z_score = [math.nan if i in self.young else z for i, z in enumerate(self.z_score)]
        columns: dict[str, list[Any]] = {"eigenvalue": self.eigenvalue}
        for k, row in enumerate(self.loadings, start=1):
            columns[f"loading_{k}"] = row
        columns.update(
            volatility=self.volatility,
            momentum=self.momentum,
            z_score=z_score,
            correlation=self.correlation,
            beta=self.beta,
            spread_bps=self.spread_bps,
            trade_count=self.trade_count,
            is_anomaly=[abs(z) > 2.5 for z in self.z_score],
        )
        facts = {"regime": self.regime, "lambda_max": max(self.eigenvalue) if n else 0.0}
        return columns, facts


_SCHEMA_FIELDS = [pa.field("asset", pa.string())]
_SCHEMA_FIELDS += [pa.field(name, pa.float64()) for name in FEATURES]
_SCHEMA_FIELDS += [pa.field("trade_count", pa.int64()), pa.field("is_anomaly", pa.bool_())]
SCHEMA = pa.schema(_SCHEMA_FIELDS)


def _metadata_text(value: Any) -> str:
    # Text stays text (the reader keeps what is not JSON as is); numbers and objects are written as JSON.
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def scan_table(
    market: Market,
    scan_number: int,
    timestamp: datetime | None = None,
    extra_metadata: Mapping[str, Any] | None = None,
) -> pa.Table:
    """The next scan of ``market`` as an Arrow table with its scan-level fields in the schema metadata."""
    when = timestamp if timestamp is not None else datetime.now(UTC)
    columns, facts = market.step()
    metadata: dict[str, Any] = {
        "scan_number": scan_number,
        "timestamp": format_timestamp(when),
        "scanner_version": SCANNER_VERSION,
        **facts,
        **(extra_metadata or {}),
    }
    arrays = [pa.array(market.assets, pa.string())]
    arrays += [pa.array(columns[f.name], f.type) for f in SCHEMA if f.name != "asset"]
    schema = SCHEMA.with_metadata({key: _metadata_text(value) for key, value in metadata.items()})
    return pa.Table.from_arrays(arrays, schema=schema)


def table_bytes(table: pa.Table, fmt: str = "file") -> bytes:
    """``table`` as Arrow IPC file (``fmt="file"``) or stream (``fmt="stream"``) bytes."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, not {fmt!r}")
    sink = pa.BufferOutputStream()
    opener = pa.ipc.new_file if fmt == "file" else pa.ipc.new_stream
    with opener(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def write_bytes(
    path: Path,
    data: bytes,
    *,
    in_place: bool = False,
    chunks: int = IN_PLACE_CHUNKS,
    pause_s: float = 0.0,
    on_chunk: Callable[[Path, int], None] | None = None,
) -> Path:
    """Write ``data`` to ``path`` (parents created): atomically via a hidden temp file, or in place in chunks.

    In place, the file is written in ``chunks`` flushed pieces, ``pause_s`` apart; ``on_chunk(path,
    bytes_written)`` runs after each flush (tests use it to look at the partial file).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if not in_place:
        temp = path.with_name(f".{path.name}.tmp")
        try:
            with open(temp, "wb") as handle:
                handle.write(data)
            os.replace(temp, path)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return path
    pieces = max(1, chunks)
    bounds = [len(data) * i // pieces for i in range(pieces + 1)]
    with open(path, "wb") as handle:
        for i in range(pieces):
            handle.write(data[bounds[i] : bounds[i + 1]])
            handle.flush()
            if on_chunk is not None:
                on_chunk(path, bounds[i + 1])
            if pause_s > 0 and i < pieces - 1:
                time.sleep(pause_s)
    return path


def write_scan(
    path: Path,
    scan_number: int,
    assets: int,
    timestamp: datetime | None = None,
    fmt: str = "file",
    extra_metadata: dict[str, Any] | None = None,
    rng: random.Random | None = None,
    *,
    in_place: bool = False,
    chunks: int = IN_PLACE_CHUNKS,
    pause_s: float = 0.0,
    on_chunk: Callable[[Path, int], None] | None = None,
) -> Path:
    """Write one simulated scan of ``assets`` assets to ``path`` (atomically unless ``in_place``); returns ``path``.

    ``timestamp`` defaults to now; ``extra_metadata`` adds or overrides schema metadata (text is
    written as is, anything else as JSON); ``rng`` makes the content reproducible.
    """
    table = scan_table(Market(assets, rng), scan_number, timestamp, extra_metadata)
    return write_bytes(Path(path), table_bytes(table, fmt), in_place=in_place, chunks=chunks, pause_s=pause_s, on_chunk=on_chunk)


def scan_path(out: Path, scan_number: int, timestamp: datetime, date_folders: bool = True) -> Path:
    """``OUT/YYYY-MM-DD/scan_NNNNNN_HHMMSS.arrow`` (UTC), or ``OUT/scan_...`` without date folders."""
    when = timestamp.astimezone(UTC)
    name = f"scan_{scan_number:06d}_{when:%H%M%S}.arrow"
    return (out / f"{when:%Y-%m-%d}" / name) if date_folders else out / name


def next_scan_number(out: Path) -> int:
    """One past the scan number in the name of the newest file under ``out``; 1 when there is none."""
    for path in iter_newest(out):
        number = scan_number_from_name(path)
        if number is not None:
            return number + 1
    return 1


class Simulator:
    """Writes scans at ``rate`` per second on a monotonic schedule until ``count`` are written or :meth:`stop`."""

    def __init__(
        self,
        out: Path,
        rate: float = 2.0,
        assets: int = 400,
        start_scan: int | None = None,
        count: int | None = None,
        in_place: bool = False,
        date_folders: bool = True,
        fmt: str = "file",
        seed: int | None = None,
        log: Callable[[str], None] | None = None,
        on_written: Callable[[Path], None] | None = None,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be > 0, not {rate}")
        if assets < 0:
            raise ValueError(f"assets must be >= 0, not {assets}")
        if count is not None and count < 0:
            raise ValueError(f"count must be >= 0, not {count}")
        if fmt not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, not {fmt!r}")
        self.out = Path(out)
        self.rate = rate
        self.count = count
        self.in_place = in_place
        self.date_folders = date_folders
        self.fmt = fmt
        self.start_scan = start_scan
        self.market = Market(assets, random.Random(seed))
        self.log = log or (lambda line: print(line, flush=True))
        self.on_written = on_written
        self.written = 0
        self._stop = threading.Event()

    def stop(self) -> None:
        """Ask :meth:`run` to return after the file it is writing (safe from signal handlers and other threads)."""
        self._stop.set()

    def run(self) -> int:
        """Write scans until done or stopped; returns how many were written."""
        self.out.mkdir(parents=True, exist_ok=True)
        number = self.start_scan if self.start_scan is not None else next_scan_number(self.out)
        period = 1.0 / self.rate
        mode = "in place" if self.in_place else "atomic"
        total = "forever" if self.count is None else f"{self.count} scans"
        self.log(
            f"simulate: {len(self.market.assets)}-asset scans at {self.rate:g}/s into {self.out} "
            f"({self.fmt} format, {mode}), from scan {number}, {total}"
        )
        # In place, the chunks of one file are spread over a quarter of the period.
        pause = period / 4 / IN_PLACE_CHUNKS if self.in_place else 0.0
        anchor = time.monotonic()
        ticks = 0
        while not self._stop.is_set() and (self.count is None or self.written < self.count):
            delay = anchor + ticks * period - time.monotonic()
            if delay > 0:
                if self._stop.wait(delay):
                    break
            elif -delay > period:  # fell behind (slow disk, suspended): carry on from now, no burst
                anchor, ticks = time.monotonic(), 0
            when = datetime.now(UTC)
            table = scan_table(self.market, number, when)
            path = scan_path(self.out, number, when, self.date_folders)
            write_bytes(path, table_bytes(table, self.fmt), in_place=self.in_place, pause_s=pause)
            self.written += 1
            if self.on_written is not None:
                self.on_written(path)
            if self.written % 100 == 0:
                self.log(f"simulate: {self.written} scans written, last {path}")
            number += 1
            ticks += 1
        self.log(f"simulate: stopped after {self.written} scans")
        return self.written


def run(simulator: Simulator) -> int:
    """Run ``simulator`` until done, SIGINT or SIGTERM (handled: it stops cleanly); returns the number written."""

    def handle(signum: int, frame: FrameType | None) -> None:
        simulator.stop()

    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, handle)
    try:
        return simulator.run()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, not {text}")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, not {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scan_bridge.simulate", description="Write simulated eigen scans.")
    parser.add_argument("--out", type=Path, required=True, help="Directory to write into (created).")
    parser.add_argument("--rate", type=_positive_float, default=2.0, help="Scans per second (default 2).")
    parser.add_argument("--assets", type=_non_negative_int, default=400, help="Assets (rows) per scan (default 400).")
    parser.add_argument("--start-scan", type=_non_negative_int, default=None, help="First scan number (default: after the newest in OUT, else 1).")
    parser.add_argument("--count", type=_non_negative_int, default=None, help="Stop after this many scans (default: forever).")
    parser.add_argument("--in-place", action="store_true", help="Write the final name slowly, in chunks (default: temp file + rename).")
    parser.add_argument("--date-folders", action=argparse.BooleanOptionalAction, default=True, help="OUT/YYYY-MM-DD/ sub-folders (default on).")
    parser.add_argument("--format", dest="fmt", choices=FORMATS, default="file", help="Arrow IPC file or stream format (default file).")
    parser.add_argument("--seed", type=int, default=None, help="Seed for reproducible content.")
    args = parser.parse_args(argv)
    run(Simulator(args.out, args.rate, args.assets, args.start_scan, args.count, args.in_place, args.date_folders, args.fmt,
                  args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
