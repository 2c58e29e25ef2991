"""The simulated scanner writes files the reader accepts, atomically or in place, and stops cleanly."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pytest

from scan_bridge import simulate
from scan_bridge.discovery import is_scan_path
from scan_bridge.scanfile import ScanFileIncomplete, read_scan
from scan_bridge.simulate import FEATURES, Simulator, next_scan_number, scan_path, write_scan

LIMIT = 64 * 1024 * 1024
WHEN = datetime(2024, 5, 1, 12, 30, 45, 123456, tzinfo=UTC)


@pytest.mark.parametrize("fmt", ["file", "stream"])
def test_write_scan_is_accepted_by_the_reader(tmp_path: Path, fmt: str) -> None:
    path = write_scan(tmp_path / "scan_000042_123045.arrow", 42, 400, WHEN, fmt=fmt, rng=random.Random(1))
    assert path == tmp_path / "scan_000042_123045.arrow"
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no temp file left behind
    with open(path, "rb") as handle:
        assert (handle.read(6) == b"ARROW1") == (fmt == "file")
    record = read_scan(path, LIMIT)
    assert (record.scan_number, record.timestamp, record.asset_count) == (42, WHEN, 400)
    doc = json.loads(record.body_json)
    assert doc["scanner_version"] == simulate.SCANNER_VERSION
    assert doc["regime"] in simulate.REGIMES
    assert doc["lambda_max"] == max(doc["columns"]["eigenvalue"])
    assert doc["assets"][:2] == ["ASSET0001", "ASSET0002"] and len(set(doc["assets"])) == 400
    assert list(doc["columns"]) == [*FEATURES, "trade_count", "is_anomaly"]
    assert all(len(values) == 400 for values in doc["columns"].values())
    assert 1 <= doc["columns"]["z_score"].count(None) <= 40  # NaN for young assets → null
    assert all(isinstance(v, int) for v in doc["columns"]["trade_count"])
    assert all(isinstance(v, bool) for v in doc["columns"]["is_anomaly"])


def test_write_scan_is_reproducible_with_a_seed(tmp_path: Path) -> None:
    a = write_scan(tmp_path / "a.arrow", 1, 50, WHEN, rng=random.Random(7)).read_bytes()
    b = write_scan(tmp_path / "b.arrow", 1, 50, WHEN, rng=random.Random(7)).read_bytes()
    c = write_scan(tmp_path / "c.arrow", 1, 50, WHEN, rng=random.Random(8)).read_bytes()
    assert a == b != c


def test_extra_metadata(tmp_path: Path) -> None:
    path = write_scan(tmp_path / "s.arrow", 3, 5, WHEN, extra_metadata={"venue": "SIM", "window": 50, "regime": "BEAR"})
    doc = json.loads(read_scan(path, LIMIT).body_json)
    assert (doc["venue"], doc["window"], doc["regime"]) == ("SIM", 50, "BEAR")


def test_default_timestamp_is_now(tmp_path: Path) -> None:
    before = datetime.now(UTC)
    record = read_scan(write_scan(tmp_path / "s.arrow", 1, 3), LIMIT)
    assert before <= record.timestamp <= datetime.now(UTC)


@pytest.mark.parametrize("fmt", ["file", "stream"])
def test_in_place_is_incomplete_until_the_last_chunk(tmp_path: Path, fmt: str) -> None:
    seen: list[tuple[int, str]] = []

    def look(path: Path, written: int) -> None:
        assert path.stat().st_size == written  # each chunk is flushed before we look
        try:
            read_scan(path, LIMIT)
            seen.append((written, "complete"))
        except ScanFileIncomplete:
            seen.append((written, "incomplete"))

    path = write_scan(tmp_path / "scan.arrow", 5, 400, WHEN, fmt=fmt, rng=random.Random(2), in_place=True, on_chunk=look)
    assert len(seen) == simulate.IN_PLACE_CHUNKS
    assert [state for _, state in seen] == ["incomplete"] * (simulate.IN_PLACE_CHUNKS - 1) + ["complete"]
    assert seen[-1][0] == path.stat().st_size
    assert read_scan(path, LIMIT).scan_number == 5


def test_scan_path() -> None:
    out = Path("/out")
    assert scan_path(out, 42, WHEN) == Path("/out/2024-05-01/scan_000042_123045.arrow")
    assert scan_path(out, 1234567, WHEN, date_folders=False) == Path("/out/scan_1234567_123045.arrow")
    assert is_scan_path(scan_path(out, 1, WHEN))
    assert not is_scan_path(f".{scan_path(out, 1, WHEN).name}.tmp")  # the atomic writer's temp name


def test_next_scan_number(tmp_path: Path) -> None:
    assert next_scan_number(tmp_path) == 1
    write_scan(scan_path(tmp_path, 9, WHEN), 9, 1, WHEN)
    assert next_scan_number(tmp_path) == 10


def test_simulator_writes_count_scans_in_date_folders(tmp_path: Path) -> None:
    lines: list[str] = []
    sim = Simulator(tmp_path, rate=500, assets=20, start_scan=100, count=5, seed=3, log=lines.append)
    assert sim.run() == 5
    files = sorted(tmp_path.rglob("*"))
    scans = [p for p in files if p.is_file()]
    assert all(p.parent.parent == tmp_path and len(p.parent.name) == 10 for p in scans)  # OUT/YYYY-MM-DD/
    assert not [p for p in files if p.name.startswith(".")]
    records = sorted((read_scan(p, LIMIT) for p in scans), key=lambda r: r.scan_number)
    assert [r.scan_number for r in records] == [100, 101, 102, 103, 104]
    assert all(r.asset_count == 20 for r in records)
    assert [r.timestamp for r in records] == sorted(r.timestamp for r in records)
    assert len(lines) == 2 and lines[0].startswith("simulate: 20-asset scans at 500/s") and "from scan 100" in lines[0]


def test_simulator_continues_numbering_and_random_walks(tmp_path: Path) -> None:
    Simulator(tmp_path, rate=500, assets=10, count=2, seed=1, date_folders=False, log=lambda _: None).run()
    Simulator(tmp_path, rate=500, assets=10, count=2, seed=1, date_folders=False, fmt="stream", log=lambda _: None).run()
    records = sorted((read_scan(p, LIMIT) for p in tmp_path.iterdir()), key=lambda r: r.scan_number)
    assert [r.scan_number for r in records] == [1, 2, 3, 4]
    first, second = (json.loads(r.body_json)["columns"]["eigenvalue"] for r in records[:2])
    assert first != second
    assert all(abs(b / a - 1) < 0.2 for a, b in zip(first, second))  # one step of a walk, not fresh noise


def test_simulator_in_place_files_are_complete(tmp_path: Path) -> None:
    sim = Simulator(tmp_path, rate=200, assets=30, count=3, in_place=True, fmt="stream", log=lambda _: None)
    assert sim.run() == 3
    assert sorted(read_scan(p, LIMIT).scan_number for p in tmp_path.rglob("*.arrow")) == [1, 2, 3]


def test_simulator_stop(tmp_path: Path) -> None:
    written: list[Path] = []

    def on_written(path: Path) -> None:
        written.append(path)
        if len(written) == 4:
            sim.stop()

    sim = Simulator(tmp_path, rate=1000, assets=5, on_written=on_written, log=lambda _: None)  # count: forever
    assert sim.run() == 4
    assert len(list(tmp_path.rglob("*.arrow"))) == 4


def test_simulator_paces_on_schedule(tmp_path: Path) -> None:
    start = time.monotonic()
    Simulator(tmp_path, rate=100, assets=1, count=11, log=lambda _: None).run()
    assert time.monotonic() - start >= 10 / 100  # the 11th scan is due 10 periods after the first


@pytest.mark.parametrize(
    "kwargs", [{"rate": 0}, {"rate": -1}, {"assets": -1}, {"count": -1}, {"fmt": "csv"}]
)
def test_simulator_rejects_bad_arguments(tmp_path: Path, kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Simulator(tmp_path, **kwargs)  # type: ignore[arg-type]


def test_main_without_date_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert simulate.main(["--out", str(tmp_path), "--rate", "500", "--assets", "7", "--count", "3", "--no-date-folders", "--start-scan", "20"]) == 0
    assert sorted(p.name[:11] for p in tmp_path.iterdir()) == ["scan_000020", "scan_000021", "scan_000022"]
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("simulate: 7-asset scans at 500/s") and out[-1] == "simulate: stopped after 3 scans"


def test_main_rejects_bad_flags(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as info:
        simulate.main(["--out", str(tmp_path), "--rate", "0"])
    assert info.value.code == 2


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_cli_stops_cleanly_on_signal(tmp_path: Path, signum: int) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "scan_bridge.simulate", "--out", str(tmp_path), "--rate", "50", "--assets", "50", "--in-place"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # printed once the signal handlers are in place
        assert first.startswith("simulate: 50-asset scans at 50/s"), first
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out.strip().startswith("simulate: stopped after")
    assert "Traceback" not in err
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert not path.name.startswith(".")
            read_scan(path, LIMIT)  # every file it left is complete


def test_written_table_schema(tmp_path: Path) -> None:
    path = write_scan(tmp_path / "s.arrow", 1, 3, WHEN)
    schema = pa.ipc.open_file(pa.memory_map(os.fspath(path))).schema
    assert schema.field("asset").type == pa.string()
    assert all(schema.field(name).type == pa.float64() for name in FEATURES)
    assert schema.metadata[b"scan_number"] == b"1"
    assert schema.metadata[b"timestamp"] == b"2024-05-01T12:30:45.123456Z"
