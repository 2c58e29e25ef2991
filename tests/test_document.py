"""The document's pure helpers and the bridge-block splice."""

from __future__ import annotations

import json
import math
import os
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from scan_bridge.document import (
    BRIDGE_VERSION,
    RESERVED_KEYS,
    bridge_block,
    decode_metadata,
    decode_metadata_value,
    document_json,
    encode_body,
    format_timestamp,
    parse_scan_number,
    parse_timestamp,
    timestamp_from_epoch,
)
from scan_bridge.scanfile import ScanRecord

NOON = datetime(2024, 5, 1, 12, tzinfo=UTC)


def record(body: bytes | None = None, timestamp: datetime = NOON, path: Path = Path("/data/scans/scan_000007_120000.arrow")) -> ScanRecord:
    if body is None:
        body = encode_body(7, timestamp, ["A", "B"], {"x": [1.0, float("nan")]}, {"regime": "BULL"})
    return ScanRecord(path=path, scan_number=7, timestamp=timestamp, asset_count=2, body_json=body, size_bytes=1, mtime=0.0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(2024, 5, 1, 12), NOON),
        (datetime(2024, 5, 1, 14, tzinfo=timezone(timedelta(hours=2))), NOON),
        (date(2024, 5, 1), datetime(2024, 5, 1, tzinfo=UTC)),
        (1714564800, NOON),
        (1714564800.5, NOON + timedelta(milliseconds=500)),
        (0, datetime(1970, 1, 1, tzinfo=UTC)),
        (-1, datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ("1714564800", NOON),
        (" 1714564800.25 ", NOON + timedelta(milliseconds=250)),
        ("2024-05-01T12:00:00Z", NOON),
        ("2024-05-01T12:00:00+00:00", NOON),
        ("2024-05-01T08:00:00-04:00", NOON),
        ("2024-05-01T12:00:00", NOON),
        ("2024-05-01 12:00:00.123456789Z", NOON + timedelta(microseconds=123456)),
        ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),
    ],
)
def test_parse_timestamp(value: object, expected: datetime) -> None:
    parsed = parse_timestamp(value)
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize("value", [None, True, "", "yesterday", "12:00", math.nan, math.inf, 1e30, "1e30", [1], {"a": 1}])
def test_parse_timestamp_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(value)


@pytest.mark.parametrize(("value", "expected"), [(0, 0), (42, 42), (42.0, 42), ("42", 42), (" 7 ", 7), ("+3", 3), (2**31, 2**31), (2**63 - 1, 2**63 - 1), (str(2**63 - 1), 2**63 - 1)])
def test_parse_scan_number(value: object, expected: int) -> None:
    assert parse_scan_number(value) == expected


@pytest.mark.parametrize("value", [None, True, False, -1, 1.5, math.nan, "abc", "1.0", "", "-3", [1]])
def test_parse_scan_number_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        parse_scan_number(value)


@pytest.mark.parametrize("value", [2**63, str(2**64), 1e300])
def test_scan_numbers_beyond_a_java_long_are_rejected_with_the_reason(value: object) -> None:
    # History keys are Java longs: a number that cannot be one is rejected, never pushed and retried for ever.
    with pytest.raises(ValueError, match="does not fit a history key"):
        parse_scan_number(value)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (datetime(1, 1, 1, tzinfo=UTC), "0001-01-01T00:00:00.000000Z"),
        (datetime(999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "0999-12-31T23:59:59.999999Z"),
        (datetime(9999, 12, 31, tzinfo=UTC), "9999-12-31T00:00:00.000000Z"),
    ],
)
def test_years_below_1000_are_written_with_four_digits(value: datetime, text: str) -> None:
    # strftime("%Y") wrote year 1 as "1-01-01T...", which our own health check could not read back.
    assert format_timestamp(value) == text
    assert parse_timestamp(text) == value


def test_format_timestamp_has_one_shape() -> None:
    assert format_timestamp(NOON) == "2024-05-01T12:00:00.000000Z"
    assert format_timestamp(datetime(2024, 5, 1, 12, 0, 0, 5)) == "2024-05-01T12:00:00.000005Z"  # naive = UTC
    assert format_timestamp(datetime(2024, 5, 1, 14, tzinfo=timezone(timedelta(hours=2)))) == "2024-05-01T12:00:00.000000Z"
    assert parse_timestamp(format_timestamp(NOON)) == NOON


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        (1714564800, "s", NOON),
        (1714564800_123, "ms", NOON + timedelta(milliseconds=123)),
        (1714564800_123456, "us", NOON + timedelta(microseconds=123456)),
        (1714564800_123456789, "ns", NOON + timedelta(microseconds=123456)),
        (-1, "ns", datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),  # truncated towards the past
    ],
)
def test_timestamp_from_epoch(value: int, unit: str, expected: datetime) -> None:
    assert timestamp_from_epoch(value, unit) == expected


def test_timestamp_from_epoch_rejects() -> None:
    with pytest.raises(ValueError):
        timestamp_from_epoch(1, "minutes")
    with pytest.raises(ValueError):
        timestamp_from_epoch(10**20, "s")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"42", 42),
        (b"-1.5", -1.5),
        (b"true", True),
        (b"null", None),
        (b'"x"', "x"),
        (b"[1, 2]", [1, 2]),
        (b'{"a": {"b": 1}}', {"a": {"b": 1}}),
        (b"BULL", "BULL"),
        (b"2024-05-01T12:00:00Z", "2024-05-01T12:00:00Z"),
        (b"NaN", "NaN"),
        (b"1e400", "1e400"),
        (b"", ""),
        (b"\xff", "\ufffd"),
    ],
)
def test_decode_metadata_value(raw: bytes, expected: object) -> None:
    assert decode_metadata_value(raw) == expected


def test_decode_metadata_keeps_order() -> None:
    assert list(decode_metadata({b"b": b"1", b"a": b"x"}).items()) == [("b", 1), ("a", "x")]
    assert decode_metadata(None) == {}


def test_encode_body_shape() -> None:
    meta = {"regime": "BULL", "assets": ["moved"], "scan_number": 99, "lambda_max": 2.5}
    body = encode_body(7, NOON, ["A", "B"], {"x": [1.0, float("nan")], "n": [1, None]}, meta)
    doc = json.loads(body)
    assert list(doc) == ["scan_number", "timestamp", "asset_count", "regime", "lambda_max", "metadata", "assets", "columns"]
    assert doc["scan_number"] == 7  # the normalised value, not a stray metadata copy
    assert doc["timestamp"] == "2024-05-01T12:00:00.000000Z"
    assert doc["asset_count"] == 2
    assert doc["metadata"] == {"assets": ["moved"]}
    assert doc["columns"] == {"x": [1.0, None], "n": [1, None]}
    assert RESERVED_KEYS == {"asset_count", "assets", "columns", "bridge", "metadata"}


def test_document_json_splices_bridge_block() -> None:
    rec = record()
    pushed = NOON + timedelta(seconds=1, microseconds=250000)
    text = document_json(rec, pushed)
    assert isinstance(text, str)
    doc = json.loads(text)
    assert list(doc)[-1] == "bridge"
    assert doc["bridge"] == {
        "pushed_at": "2024-05-01T12:00:01.250000Z",
        "file": "/data/scans/scan_000007_120000.arrow",
        "lag_s": 1.25,
        "bridge_version": BRIDGE_VERSION,
    }
    assert doc["columns"]["x"] == [1.0, None]  # NaN → null survives the splice
    assert len(doc["assets"]) == len(doc["columns"]["x"]) == doc["asset_count"]
    without = {k: v for k, v in doc.items() if k != "bridge"}
    assert without == json.loads(rec.body_json)
    assert text.startswith(rec.body_json[:-1].decode())


def test_bridge_version_is_the_package_version() -> None:
    assert BRIDGE_VERSION == "0.1.0"


def test_lag_for_other_zones_and_naive_pushed_at() -> None:
    rec = record()
    in_new_york = datetime(2024, 5, 1, 8, 0, 3, tzinfo=timezone(timedelta(hours=-4)))
    assert bridge_block(rec, in_new_york)["lag_s"] == 3.0
    assert bridge_block(rec, datetime(2024, 5, 1, 12, 0, 3))["lag_s"] == 3.0  # naive means UTC
    assert bridge_block(rec, NOON - timedelta(seconds=2))["lag_s"] == -2.0  # scanner clock ahead


def test_non_utf8_file_name_does_not_break_json() -> None:
    path = Path(os.fsdecode(b"/data/scan_\xff.arrow"))
    doc = json.loads(document_json(record(path=path), NOON))
    assert doc["bridge"]["file"] == "/data/scan_\ufffd.arrow"


def test_document_json_rejects_a_body_that_is_not_an_object() -> None:
    with pytest.raises(ValueError):
        document_json(record(body=b"[1]"), NOON)


def test_decimal_and_exotic_values_serialise() -> None:
    from decimal import Decimal

    body = encode_body(1, NOON, ["A"], {"d": [Decimal("1.10")], "t": [timedelta(seconds=1.5)], "b": [b"\x00"], "o": [object]}, {})
    columns = json.loads(body)["columns"]
    assert columns["d"] == ["1.10"]
    assert columns["t"] == [1.5]
    assert columns["b"] == ["AA=="]
    assert columns["o"] == [str(object)]


pytestmark = pytest.mark.unit  # pure: see pyproject.toml markers
