"""read_scan: completeness, validation and the JSON body, on files written here (no servers)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from scan_bridge import scanfile
from scan_bridge.chaos.processes import unprivileged
from scan_bridge.scanfile import (
    ScanFileDenied,
    ScanFileIncomplete,
    ScanFileRejected,
    ScanRecord,
    column_values,
    message_header,
    read_scan,
)

LIMIT = 64 * 1024 * 1024
SRC = str(Path(__file__).resolve().parents[1] / "src")
META = {"scan_number": "7", "timestamp": "2024-05-01T12:00:00Z"}


def make_table(rows: int = 3, metadata: dict[str, Any] | None = None, **columns: Any) -> pa.Table:
    data: dict[str, Any] = {
        "asset": pa.array([f"A{i}" for i in range(rows)], pa.string()),
        "x": pa.array([float(i) + 0.5 for i in range(rows)], pa.float64()),
    }
    data.update(columns)
    table = pa.table(data)
    meta = META if metadata is None else metadata
    return table.replace_schema_metadata({k: v if isinstance(v, (str, bytes)) else json.dumps(v) for k, v in meta.items()})


def arrow_bytes(table: pa.Table, fmt: str = "file", legacy: bool = False, chunk: int | None = None) -> bytes:
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(use_legacy_format=legacy)
    opener = pa.ipc.new_file if fmt == "file" else pa.ipc.new_stream
    with opener(sink, table.schema, options=options) as writer:
        writer.write_table(table, max_chunksize=chunk)
    return sink.getvalue().to_pybytes()


def write(path: Path, table: pa.Table, fmt: str = "file", **kwargs: Any) -> Path:
    path.write_bytes(arrow_bytes(table, fmt, **kwargs))
    return path


def body(record: ScanRecord) -> dict[str, Any]:
    return json.loads(record.body_json)


def rejected(path: Path, max_bytes: int = LIMIT) -> ScanFileRejected:
    with pytest.raises(ScanFileRejected) as info:
        read_scan(path, max_bytes)
    return info.value


def incomplete(path: Path) -> ScanFileIncomplete:
    with pytest.raises(ScanFileIncomplete) as info:
        read_scan(path, LIMIT)
    return info.value


# -- valid files ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "legacy", "name"),
    [("file", False, "scan.arrow"), ("stream", False, "scan.arrow"), ("stream", True, "scan.arrow"), ("file", False, "scan.arrows")],
)
def test_file_and_stream_formats_detected_by_content(tmp_path: Path, fmt: str, legacy: bool, name: str) -> None:
    table = make_table(5, y=[1, 2, 3, 4, 5])
    path = write(tmp_path / name, table, fmt, legacy=legacy, chunk=2)  # several record batches
    record = read_scan(path, LIMIT)
    assert record.path == str(path)  # a str, never a Path (issue 17)
    assert record.scan_number == 7
    assert record.timestamp == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert record.asset_count == 5
    assert record.size_bytes == path.stat().st_size
    assert record.mtime == path.stat().st_mtime
    doc = body(record)
    assert list(doc) == ["scan_number", "timestamp", "asset_count", "assets", "columns"]
    assert doc["timestamp"] == "2024-05-01T12:00:00.000000Z"
    assert doc["assets"] == ["A0", "A1", "A2", "A3", "A4"]
    assert doc["columns"] == {"x": [0.5, 1.5, 2.5, 3.5, 4.5], "y": [1, 2, 3, 4, 5]}


def test_record_is_frozen(tmp_path: Path) -> None:
    record = read_scan(write(tmp_path / "s.arrow", make_table()), LIMIT)
    with pytest.raises(AttributeError):
        record.scan_number = 8  # type: ignore[misc]


def test_metadata_decoded_as_json_where_it_parses_else_text(tmp_path: Path) -> None:
    meta = {
        **META,
        "lambda_max": "3.25",
        "count": "12",
        "flags": '{"a": [1, true, null]}',
        "quoted": '"123"',
        "regime": "BULL",
        "when": "2024-05-01T12:00:00Z",
        "nan": "NaN",
        "yes": "true",
        "empty": "",
        "latin1": b"caf\xe9",
    }
    doc = body(read_scan(write(tmp_path / "s.arrow", make_table(metadata=meta)), LIMIT))
    assert doc["lambda_max"] == 3.25
    assert doc["count"] == 12
    assert doc["flags"] == {"a": [1, True, None]}
    assert doc["quoted"] == "123"
    assert doc["regime"] == "BULL"
    assert doc["when"] == "2024-05-01T12:00:00Z"
    assert doc["nan"] == "NaN"
    assert doc["yes"] is True
    assert doc["empty"] == ""
    assert doc["latin1"] == "caf\ufffd"
    # metadata keeps the file's order, between asset_count and assets
    assert list(doc)[:4] == ["scan_number", "timestamp", "asset_count", "lambda_max"]
    assert list(doc)[-2:] == ["assets", "columns"]


def test_metadata_named_like_reserved_keys_moves_under_metadata(tmp_path: Path) -> None:
    meta = {**META, "assets": "[1]", "columns": "c", "bridge": "b", "asset_count": "99", "metadata": '{"m": 1}', "ok": "1"}
    doc = body(read_scan(write(tmp_path / "s.arrow", make_table(metadata=meta)), LIMIT))
    assert doc["metadata"] == {"assets": [1], "columns": "c", "bridge": "b", "asset_count": 99, "metadata": {"m": 1}}
    assert doc["asset_count"] == 3
    assert doc["assets"] == ["A0", "A1", "A2"]
    assert doc["ok"] == 1
    assert "bridge" not in doc


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1714564800", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("1714564800.25", datetime(2024, 5, 1, 12, 0, 0, 250000, tzinfo=UTC)),
        ('"1714564800"', datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T14:00:00+02:00", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01T12:00:00", datetime(2024, 5, 1, 12, tzinfo=UTC)),
        ("2024-05-01 12:00:00.5Z", datetime(2024, 5, 1, 12, 0, 0, 500000, tzinfo=UTC)),
        ('"2024-05-01T12:00:00Z"', datetime(2024, 5, 1, 12, tzinfo=UTC)),
    ],
)
def test_timestamp_in_metadata(tmp_path: Path, raw: str, expected: datetime) -> None:
    record = read_scan(write(tmp_path / "s.arrow", make_table(metadata={"scan_number": "1", "timestamp": raw})), LIMIT)
    assert record.timestamp == expected
    assert record.timestamp.utcoffset() == timedelta(0)


@pytest.mark.parametrize("raw", ["42", '"42"', "42.0"])
def test_scan_number_in_metadata_forms(tmp_path: Path, raw: str) -> None:
    record = read_scan(write(tmp_path / "s.arrow", make_table(metadata={"scan_number": raw, "timestamp": "0"})), LIMIT)
    assert record.scan_number == 42
    assert record.timestamp == datetime(1970, 1, 1, tzinfo=UTC)


def test_scan_number_and_timestamp_as_uniform_columns(tmp_path: Path) -> None:
    ts = datetime(2024, 5, 1, 12, 0, 0, 123456)
    table = make_table(3, metadata={"regime": "BEAR"}, scan_number=[11, 11, 11], timestamp=pa.array([ts] * 3, pa.timestamp("us")))
    record = read_scan(write(tmp_path / "s.arrow", table), LIMIT)
    assert record.scan_number == 11
    assert record.timestamp == ts.replace(tzinfo=UTC)
    doc = body(record)
    assert doc["scan_number"] == 11
    assert doc["timestamp"] == "2024-05-01T12:00:00.123456Z"
    assert doc["regime"] == "BEAR"
    assert set(doc["columns"]) == {"x"}  # consumed columns are not per-asset columns


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
@pytest.mark.parametrize("tz", [None, "UTC", "America/New_York", "+05:30"])
def test_timestamp_column_units_and_zones(tmp_path: Path, unit: str, tz: str | None) -> None:
    per_second = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[unit]
    stored = 1_714_564_800 * per_second  # 2024-05-01T12:00:00Z: Arrow stores UTC instants whatever the zone
    column = pa.array([stored, stored], pa.timestamp(unit, tz=tz))
    table = make_table(2, metadata={"scan_number": "3"}, timestamp=column)
    record = read_scan(write(tmp_path / "s.arrow", table), LIMIT)
    assert record.timestamp == datetime(2024, 5, 1, 12, tzinfo=UTC)


def test_ns_timestamp_column_truncated_to_microseconds(tmp_path: Path) -> None:
    column = pa.array([1_714_564_800_123_456_789] * 2, pa.timestamp("ns"))
    record = read_scan(write(tmp_path / "s.arrow", make_table(2, metadata={"scan_number": "3"}, timestamp=column)), LIMIT)
    assert record.timestamp == datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    "column",
    [
        pa.array([1_714_564_800, 1_714_564_800]),
        pa.array([1_714_564_800.0, 1_714_564_800.0]),
        pa.array(["2024-05-01T12:00:00Z", "2024-05-01T12:00:00Z"]),
        pa.array([date(2024, 5, 1), date(2024, 5, 1)]),
    ],
)
def test_timestamp_column_other_types(tmp_path: Path, column: pa.Array) -> None:
    record = read_scan(write(tmp_path / "s.arrow", make_table(2, metadata={"scan_number": "3"}, timestamp=column)), LIMIT)
    assert record.timestamp.date() == date(2024, 5, 1)
    assert record.timestamp.tzinfo is not None


def test_metadata_wins_and_same_named_column_passes_through(tmp_path: Path) -> None:
    # With the scan's timestamp in the metadata, a "timestamp" column is per-asset data (e.g. last trade).
    per_asset = pa.array([datetime(2024, 5, 1, 11, 59), datetime(2024, 5, 1, 11, 58)], pa.timestamp("ms", tz="UTC"))
    table = make_table(2, scan_number=[1, 2], timestamp=per_asset)
    record = read_scan(write(tmp_path / "s.arrow", table), LIMIT)
    assert record.scan_number == 7
    assert record.timestamp == datetime(2024, 5, 1, 12, tzinfo=UTC)
    doc = body(record)
    assert doc["columns"]["scan_number"] == [1, 2]
    assert doc["columns"]["timestamp"] == ["2024-05-01T11:59:00.000000Z", "2024-05-01T11:58:00.000000Z"]


# -- rejections -----------------------------------------------------------------------------------


def test_rejection_message_names_path_and_reason(tmp_path: Path) -> None:
    path = write(tmp_path / "scan_1.arrow", make_table(metadata={"timestamp": "0"}))
    exc = rejected(path)
    assert exc.path == str(path)
    assert exc.reason == "missing scan_number (neither schema metadata nor column)"
    assert str(exc) == f"rejected {path}: missing scan_number (neither schema metadata nor column)"


@pytest.mark.parametrize(
    ("metadata", "columns", "reason"),
    [
        ({"scan_number": "1"}, {}, "missing timestamp (neither schema metadata nor column)"),
        ({}, {"timestamp": [0, 0, 0]}, "missing scan_number (neither schema metadata nor column)"),
        ({"scan_number": "abc", "timestamp": "0"}, {}, "invalid scan_number in schema metadata"),
        ({"scan_number": "-1", "timestamp": "0"}, {}, "invalid scan_number in schema metadata"),
        ({"scan_number": "1.5", "timestamp": "0"}, {}, "invalid scan_number in schema metadata"),
        ({"scan_number": "true", "timestamp": "0"}, {}, "invalid scan_number in schema metadata"),
        ({"scan_number": "1", "timestamp": "yesterday"}, {}, "invalid timestamp in schema metadata"),
        ({"scan_number": "1", "timestamp": "1e30"}, {}, "invalid timestamp in schema metadata"),
        ({"scan_number": "1", "timestamp": "null"}, {}, "invalid timestamp in schema metadata"),
        ({"timestamp": "0"}, {"scan_number": [1, 1, 2]}, "scan_number differs between rows"),
        ({"scan_number": "1"}, {"timestamp": pa.array([0, 0, 1], pa.timestamp("s"))}, "timestamp differs between rows"),
        ({"timestamp": "0"}, {"scan_number": [None, None, None]}, "invalid scan_number (the scan_number column is null)"),
        ({"timestamp": "0"}, {"scan_number": [1, None, 1]}, "scan_number differs between rows"),
        ({"timestamp": "0"}, {"scan_number": ["x", "x", "x"]}, "invalid scan_number column"),
        ({"scan_number": "1"}, {"timestamp": ["soon", "soon", "soon"]}, "invalid timestamp column"),
    ],
)
def test_bad_scan_number_or_timestamp(tmp_path: Path, metadata: dict[str, str], columns: dict[str, Any], reason: str) -> None:
    exc = rejected(write(tmp_path / "s.arrow", make_table(3, metadata=metadata, **columns)))
    assert exc.reason.startswith(reason), exc.reason


def test_scan_number_column_with_no_rows(tmp_path: Path) -> None:
    table = make_table(0, metadata={"timestamp": "0"}, scan_number=pa.array([], pa.int64()))
    assert rejected(write(tmp_path / "s.arrow", table)).reason == "missing scan_number (the scan_number column has no rows)"


def test_no_asset_column(tmp_path: Path) -> None:
    table = make_table().drop_columns(["asset"])
    assert rejected(write(tmp_path / "s.arrow", table)).reason == "no 'asset' column"


@pytest.mark.parametrize(
    ("column", "reason"),
    [
        (pa.array([1, 2, 3]), "'asset' column holds int64, not strings"),
        (pa.array([b"a", b"b", b"c"]), "'asset' column holds binary, not strings"),
        (pa.array(["a", None, "c"]), "'asset' column has 1 null names"),
    ],
)
def test_bad_asset_column(tmp_path: Path, column: pa.Array, reason: str) -> None:
    table = make_table().set_column(0, "asset", column)
    assert rejected(write(tmp_path / "s.arrow", table)).reason == reason


@pytest.mark.parametrize("asset_type", [pa.large_string(), pa.string_view(), pa.dictionary(pa.int32(), pa.string())])
def test_other_string_asset_columns_accepted(tmp_path: Path, asset_type: pa.DataType) -> None:
    table = make_table().set_column(0, "asset", pa.array(["a", "b", "a"]).cast(asset_type))
    assert body(read_scan(write(tmp_path / "s.arrow", table), LIMIT))["assets"] == ["a", "b", "a"]


def test_duplicate_column_names(tmp_path: Path) -> None:
    table = make_table().append_column("x", pa.array([1, 2, 3]))
    assert rejected(write(tmp_path / "s.arrow", table)).reason == "duplicate column name 'x'"


def test_larger_than_limit(tmp_path: Path) -> None:
    path = write(tmp_path / "s.arrow", make_table())
    size = path.stat().st_size
    assert rejected(path, max_bytes=size - 1).reason == f"larger than limit ({size} bytes > {size - 1} bytes)"
    assert read_scan(path, size).size_bytes == size


def test_incomplete_large_file_rejected_without_waiting(tmp_path: Path) -> None:
    path = tmp_path / "s.arrow"
    path.write_bytes(b"ARROW1\0\0" + b"\0" * 100)
    assert rejected(path, max_bytes=50).reason.startswith("larger than limit")


@pytest.mark.parametrize(
    "content",
    [
        random.Random(1).randbytes(4096),
        b"asset,x\nA0,1.0\n",
        b"PAR1" + b"\0" * 100 + b"PAR1",
        b"\x00\x00\x00\x00",
        b"{}",
    ],
)
def test_not_arrow(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "s.arrow"
    path.write_bytes(content)
    assert rejected(path).reason.startswith("not Arrow"), content[:16]


def test_stream_head_with_garbage_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "s.arrow"
    path.write_bytes(b"\xff\xff\xff\xff\x10\x00\x00\x00" + b"\x07" * 16 + b"\xff\xff\xff\xff\x00\x00\x00\x00")
    assert rejected(path).reason.startswith("corrupt Arrow stream")


def test_file_with_magic_and_footer_but_garbage_inside_is_corrupt(tmp_path: Path) -> None:
    data = bytearray(arrow_bytes(make_table()))
    footer_length = int.from_bytes(data[-10:-6], "little")
    start = len(data) - 10 - footer_length
    data[start : len(data) - 10] = b"\x5a" * footer_length  # the footer flatbuffer, scrambled
    path = tmp_path / "s.arrow"
    path.write_bytes(bytes(data))
    exc = rejected(path)
    assert exc.reason.startswith("corrupt Arrow file"), exc.reason


def test_file_with_impossible_footer_length_is_corrupt(tmp_path: Path) -> None:
    path = tmp_path / "s.arrow"
    path.write_bytes(b"ARROW1\0\0" + b"\0" * 40 + (10_000).to_bytes(4, "little") + b"ARROW1")
    assert rejected(path).reason.startswith("corrupt Arrow file (footer length 10000")


def test_directory_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "s.arrow"
    path.mkdir()
    assert rejected(path).reason == "not a regular file (a directory)"


def test_fifo_is_rejected_without_blocking(tmp_path: Path) -> None:
    path = tmp_path / "s.arrow"
    os.mkfifo(path)  # opening a FIFO for reading would wait for a writer forever
    assert rejected(path).reason == "not a regular file (a FIFO)"


def test_a_symlink_is_rejected_not_followed(tmp_path: Path) -> None:
    # Issue 16: a symlinked file pointing outside the watched folder was read as a scan.
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    target = write_scan(outside / "secret.arrow", 7, 3)
    watched = tmp_path / "scans"
    watched.mkdir()
    for name, to in (("s.arrow", target), ("dangling.arrow", tmp_path / "gone.arrow")):
        (watched / name).symlink_to(to)
        assert rejected(watched / name).reason == "a symbolic link (not followed: it may point outside the watched folder)"


def test_missing_file_is_unreadable(tmp_path: Path) -> None:
    assert rejected(tmp_path / "never.arrow").reason.startswith("unreadable (FileNotFoundError")


@pytest.mark.parametrize("error", [PermissionError(13, "Permission denied"), PermissionError(1, "Operation not permitted")])
def test_permission_denied_is_not_readable_now_never_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: OSError
) -> None:
    # Rights are not content: a rejection lost the scan for good when a folder was chmod 000 for a while
    # (chaos harness, issue 10); the bridge reads it again once it may.
    path = write(tmp_path / "s.arrow", make_table())

    def denied(*args: object, **kwargs: object) -> int:
        raise error

    monkeypatch.setattr(scanfile.os, "open", denied)
    with pytest.raises(ScanFileDenied) as info:
        read_scan(path, LIMIT)
    assert isinstance(info.value, ScanFileIncomplete)  # "try again later" for every other caller
    assert str(info.value) == f"not readable: unreadable (PermissionError: {error.strerror})"


def test_a_chmod_000_file_is_not_readable_now_and_reads_once_restored(tmp_path: Path) -> None:
    """The real thing, without root's power to read past permission bits (as the chaos harness runs the bridge)."""
    path = write(tmp_path / "s.arrow", make_table())
    probe = ("import sys; from pathlib import Path; from scan_bridge.scanfile import read_scan, ScanFileDenied\n"
             "try:\n    read_scan(Path(sys.argv[1]), 10**8)\nexcept ScanFileDenied as exc:\n    print('denied', exc.reason)\n"
             "else:\n    print('read')")
    argv = unprivileged([sys.executable, "-c", probe, str(path)])
    path.chmod(0)
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": SRC})
    finally:
        path.chmod(0o644)
    assert out.stdout.strip() == "denied unreadable (PermissionError: Permission denied)", out
    again = subprocess.run(argv, capture_output=True, text=True, timeout=60, env={**os.environ, "PYTHONPATH": SRC})
    assert again.stdout.strip() == "read", again


# -- incomplete files -----------------------------------------------------------------------------


def test_zero_bytes_is_incomplete(tmp_path: Path) -> None:
    path = tmp_path / "s.arrow"
    path.touch()
    exc = incomplete(path)
    assert exc.path == str(path)
    assert str(exc) == "incomplete: empty file (the writer may have just created it)"


@pytest.mark.parametrize("fmt", ["file", "stream"])
def test_truncated_to_half_is_incomplete(tmp_path: Path, fmt: str) -> None:
    data = arrow_bytes(make_table(50), fmt)
    path = tmp_path / "s.arrow"
    path.write_bytes(data)
    os.truncate(path, len(data) // 2)
    incomplete(path)


@pytest.mark.parametrize(("fmt", "legacy"), [("file", False), ("stream", False), ("stream", True)])
def test_every_prefix_is_incomplete_and_the_whole_is_complete(tmp_path: Path, fmt: str, legacy: bool) -> None:
    """A writer may stop anywhere; every cut must read as "not yet", never as corrupt.

    The int column makes zero bytes common, so many stream cuts end in what looks like an
    end-of-stream marker: only following the message framing tells them apart.
    """
    table = make_table(40, n=list(range(40)), flag=[i % 3 == 0 for i in range(40)])
    data = arrow_bytes(table, fmt, legacy=legacy, chunk=16)
    path = tmp_path / "s.arrow"
    first = 4 if legacy else 1  # a legacy stream's first 1-3 bytes cannot be told from garbage
    for cut in range(first, len(data)):
        path.write_bytes(data[:cut])
        with pytest.raises(ScanFileIncomplete):
            read_scan(path, LIMIT)
    path.write_bytes(data)
    assert read_scan(path, LIMIT).asset_count == 40


@pytest.mark.parametrize(
    ("new_writer", "reason"),
    [
        (pa.ipc.new_file, "no footer yet"),  # magic, schema and the batch are there; the footer is not
        (pa.ipc.new_stream, "no end-of-stream marker yet"),
    ],
    ids=["file_without_footer", "stream_without_end_marker"],
)
def test_written_but_not_closed_is_incomplete(tmp_path: Path, new_writer: Any, reason: str) -> None:
    table = make_table(10)
    path = tmp_path / "s.arrow"
    with open(path, "wb") as handle:
        writer = new_writer(handle, table.schema)
        writer.write_table(table)
        handle.flush()
        try:
            assert reason in incomplete(path).reason
        finally:
            writer.close()
    assert read_scan(path, LIMIT).asset_count == 10


def test_message_header_matches_pyarrow() -> None:
    data = arrow_bytes(make_table(20, n=list(range(20))), "stream", chunk=7)
    reader = pa.ipc.MessageReader.open_stream(pa.py_buffer(data))
    pos = 0
    for message in reader:
        length = int.from_bytes(data[pos + 4 : pos + 8], "little")
        header_type, body_length = message_header(data[pos + 8 : pos + 8 + length])
        assert body_length == message.body.size if message.body is not None else body_length == 0
        assert header_type == {"schema": 1, "dictionary batch": 2, "record batch": 3}[message.type]
        pos += 8 + length + body_length
    assert data[pos:] == b"\xff\xff\xff\xff\x00\x00\x00\x00"
    with pytest.raises(ValueError):
        message_header(b"\x01\x02")


# -- column values --------------------------------------------------------------------------------


def test_nan_inf_and_nulls_become_null(tmp_path: Path) -> None:
    table = make_table(
        4,
        f=[1.5, float("nan"), None, float("inf")],
        f32=pa.array([0.5, None, float("nan"), -1.0], pa.float32()),
        i=[1, None, 3, 4],
        b=[True, False, None, True],
    )
    doc = body(read_scan(write(tmp_path / "s.arrow", table), LIMIT))
    assert doc["columns"]["f"] == [1.5, None, None, None]
    assert doc["columns"]["f32"] == [0.5, None, None, -1.0]
    assert doc["columns"]["i"] == [1, None, 3, 4]
    assert doc["columns"]["b"] == [True, False, None, True]
    assert len(doc["assets"]) == 4 and all(len(v) == 4 for v in doc["columns"].values())


def test_other_types(tmp_path: Path) -> None:
    table = make_table(
        2,
        ts=pa.array([datetime(2024, 1, 2, 3, 4, 5, 6), None], pa.timestamp("us")),
        ts_ns=pa.array([1_000_000_001, 0], pa.timestamp("ns", tz="Europe/Berlin")),
        d=pa.array([date(2024, 1, 2), None]),
        dec=pa.array([Decimal("1.10"), Decimal("-2.5")], pa.decimal128(10, 2)),
        dur=pa.array([1_500_000_000, None], pa.duration("ns")),
        t_ns=pa.array([1, 2], pa.time64("ns")),
        bin=pa.array([b"\x00\x01", None]),
        cat=pa.array(["u", "v"]).dictionary_encode(),
        lst=pa.array([[1, 2], []]),
        st=pa.array([{"a": 1, "b": "x"}, None]),
        u64=pa.array([2**64 - 1, 0], pa.uint64()),
        i8=pa.array([-128, 127], pa.int8()),
    )
    columns = body(read_scan(write(tmp_path / "s.arrow", table), LIMIT))["columns"]
    assert columns["ts"] == ["2024-01-02T03:04:05.000006Z", None]
    assert columns["ts_ns"] == ["1970-01-01T00:00:01.000000Z", "1970-01-01T00:00:00.000000Z"]
    assert columns["d"] == ["2024-01-02", None]
    assert columns["dec"] == ["1.10", "-2.50"]
    assert columns["dur"] == [1.5, None]
    assert columns["t_ns"] == ["00:00:00.000000001", "00:00:00.000000002"]
    assert columns["bin"] == ["AAE=", None]
    assert columns["cat"] == ["u", "v"]
    assert columns["lst"] == [[1, 2], []]
    assert columns["st"] == [{"a": 1, "b": "x"}, None]
    assert columns["u64"] == [2**64 - 1, 0]
    assert columns["i8"] == [-128, 127]


def test_empty_scan(tmp_path: Path) -> None:
    record = read_scan(write(tmp_path / "s.arrow", make_table(0)), LIMIT)
    assert record.asset_count == 0
    assert body(record)["columns"] == {"x": []}


def test_sliced_and_chunked_columns() -> None:
    chunked = pa.chunked_array([pa.array([1.0, 2.0, 3.0]).slice(1), pa.array([4.0])])
    assert list(column_values(chunked)) == [2.0, 3.0, 4.0]
    assert list(column_values(pa.chunked_array([], pa.float64()))) == []


def test_numpy_path_writes_the_same_text_as_the_plain_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    table = make_table(
        5,
        f=[0.1, float("nan"), None, 1e300, -0.0],
        i=[1, 2, 3, 4, 2**62],
        u8=pa.array([0, 1, 2, 3, 255], pa.uint8()),
        f32=pa.array([0.1, 0.2, 0.3, 0.4, 0.5], pa.float32()),
    )
    path = write(tmp_path / "s.arrow", table)
    with_numpy = read_scan(path, LIMIT).body_json
    monkeypatch.setattr(scanfile, "NUMPY_COLUMNS", False)
    assert read_scan(path, LIMIT).body_json == with_numpy


def test_body_is_compact_json_object(tmp_path: Path) -> None:
    record = read_scan(write(tmp_path / "s.arrow", make_table()), LIMIT)
    assert record.body_json.startswith(b'{"scan_number":7,')
    assert record.body_json.endswith(b"}")
    assert b" " not in record.body_json


def test_naive_and_offset_timestamps_equal(tmp_path: Path) -> None:
    a = read_scan(write(tmp_path / "a.arrow", make_table(metadata={"scan_number": "1", "timestamp": "2024-05-01T12:00:00"})), LIMIT)
    b = read_scan(
        write(tmp_path / "b.arrow", make_table(metadata={"scan_number": "1", "timestamp": "2024-05-01T07:00:00-05:00"})), LIMIT
    )
    assert a.timestamp == b.timestamp == datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
    assert body(a)["timestamp"] == body(b)["timestamp"] == "2024-05-01T12:00:00.000000Z"


# -- hostile files (issue 16): a file can fail in exactly one way, and costs a bounded amount -------------

from tests import hostile  # noqa: E402
from scan_bridge.scanfile import ScanLimits, measure  # noqa: E402
from scan_bridge.simulate import Market, scan_table, write_scan  # noqa: E402


@pytest.mark.parametrize("case", sorted(hostile.rejected_cases()))
def test_hostile_files_are_rejected_with_a_reason_naming_the_file(tmp_path: Path, case: str) -> None:
    # Before: UnicodeDecodeError (asset, column name), SystemError (offsets backwards), struct.error
    # (header out of bounds) escaped the reader; the memory leak file was *read*, with 200 KB of the
    # process's memory as a value; the bombs were decoded in full.
    data, reason = hostile.rejected_cases()[case]
    path = tmp_path / f"scan_{case}.arrow"
    path.write_bytes(data)
    exc = rejected(path)
    assert exc.reason.startswith(reason), exc.reason
    assert str(exc).startswith(f"rejected {path}: ")
    assert "\n" not in str(exc)


@pytest.mark.parametrize("case", ["zstd_bomb", "many_rows", "many_values"])
def test_bombs_are_rejected_from_the_metadata_before_pyarrow_decodes_anything(
    tmp_path: Path, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, reason = hostile.rejected_cases()[case]
    assert len(data) < 4096  # a few KB on disk ...
    path = tmp_path / "scan_000001.arrow"
    path.write_bytes(data)

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("pyarrow was asked to decode a file the metadata already condemns")

    monkeypatch.setattr(pa.ipc, "open_file", refuse)
    monkeypatch.setattr(pa.ipc, "open_stream", refuse)
    assert rejected(path).reason.startswith(reason)


@pytest.mark.parametrize(("fmt", "legacy"), [("file", False), ("stream", False), ("stream", True)])
@pytest.mark.parametrize("compression", [None, "lz4", "zstd"])
def test_measure_counts_rows_values_and_decoded_bytes_of_valid_files(fmt: str, legacy: bool, compression: str | None) -> None:
    table = scan_table(Market(50, rng=random.Random(3)), 7)
    sink = pa.BufferOutputStream()
    opener = pa.ipc.new_file if fmt == "file" else pa.ipc.new_stream
    options = pa.ipc.IpcWriteOptions(use_legacy_format=legacy, compression=compression)
    with opener(sink, table.schema, options=options) as writer:
        writer.write_table(table, max_chunksize=20)
    cost = measure(sink.getvalue().to_pybytes(), "file" if fmt == "file" else "stream")
    assert cost.rows == 50
    assert cost.values == 50 * table.num_columns
    # Every buffer decoded, padding included: at least the table's own bytes, not wildly more.
    assert table.nbytes <= cost.decoded_bytes <= 2 * table.nbytes + 4096


def test_limits_on_rows_columns_and_document_size(tmp_path: Path) -> None:
    table = scan_table(Market(400, rng=random.Random(1)), 9)
    path = write(tmp_path / "scan_000009.arrow", table)
    record = read_scan(path, LIMIT)  # the defaults take a simulator scan with room to spare
    assert record.asset_count == 400
    assert read_scan(path, LIMIT, ScanLimits(max_rows=400)).asset_count == 400
    with pytest.raises(ScanFileRejected, match=r"too large: 400 rows > limit 399 \(max_scan_rows\)"):
        read_scan(path, LIMIT, ScanLimits(max_rows=399))
    with pytest.raises(ScanFileRejected, match=r"too large: 15 columns > limit 14 \(max_scan_columns\)"):
        read_scan(path, LIMIT, ScanLimits(max_columns=14))
    size = len(record.body_json)
    assert read_scan(path, LIMIT, ScanLimits(max_document_bytes=size)).body_json == record.body_json
    with pytest.raises(ScanFileRejected, match=rf"too large: a document of {size} bytes > limit {size - 1}"):
        read_scan(path, LIMIT, ScanLimits(max_document_bytes=size - 1))


@pytest.mark.parametrize("number", [2**31 - 1, 2**31, 2**40, 2**63 - 1])
def test_scan_numbers_up_to_a_java_long_are_read_exactly(tmp_path: Path, number: int) -> None:
    path = tmp_path / "scan.arrow"
    path.write_bytes(hostile.scan_with_number(number))
    record = read_scan(path, LIMIT)
    assert record.scan_number == number
    assert body(record)["scan_number"] == number


def test_a_year_below_1000_is_written_with_four_digits(tmp_path: Path) -> None:
    path = tmp_path / "scan.arrow"
    path.write_bytes(hostile.scan_with_number(5, datetime(1, 1, 1, tzinfo=UTC)))
    record = read_scan(path, LIMIT)
    assert body(record)["timestamp"] == "0001-01-01T00:00:00.000000Z"  # was "1-01-01T00:00:00.000000Z"


pytestmark = pytest.mark.unit  # pure: see pyproject.toml markers
