"""The one decision of order between two scans (issue 14), and the scanner's clock: pure, no cluster."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from scan_bridge.document import encode_body, parse_scan_time, parse_timestamp
from scan_bridge.ordering import (
    ScanId,
    compare,
    history_key,
    is_counter_reset,
    is_newer,
    key_time,
    newest,
    resolve_fold,
)
from scan_bridge.scanfile import ScanRecord, restamped

T0 = datetime(2026, 3, 24, 12, 0, tzinfo=UTC)
AMS = ZoneInfo("Europe/Amsterdam")


def scan(number: int, seconds: float) -> ScanId:
    return ScanId(T0 + timedelta(seconds=seconds), number)


def test_later_time_is_newer_whatever_the_number() -> None:
    old20, new1 = scan(20, 0), scan(1, 10)
    assert compare(new1, old20) == 1 and compare(old20, new1) == -1
    assert is_newer(new1, old20) and not is_newer(old20, new1)
    assert is_newer(old20, None)


def test_same_instant_is_the_same_slot_whatever_the_number() -> None:
    assert compare(scan(5, 0), scan(6, 0)) == 0
    assert not is_newer(scan(6, 0), scan(5, 0)), "a second scan claiming the same time does not replace the first"
    assert newest([scan(5, 0), scan(6, 0)]) == scan(5, 0)


def test_counter_reset_is_a_newer_scan_with_a_lower_number() -> None:
    assert is_counter_reset(scan(20, 0), scan(1, 10))
    assert not is_counter_reset(scan(20, 0), scan(21, 10))
    assert not is_counter_reset(scan(20, 10), scan(1, 0)), "a late, older file is not a reset"
    assert not is_counter_reset(None, scan(1, 0))


def test_history_key_is_utc_microseconds_and_round_trips() -> None:
    assert history_key(datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)) == 1_000_000
    assert history_key(T0) == int(T0.timestamp()) * 1_000_000
    assert key_time(history_key(T0 + timedelta(microseconds=7))) == T0 + timedelta(microseconds=7)
    assert history_key(datetime(1, 1, 1, tzinfo=UTC)) > -(2**63)  # any datetime fits a Java long
    assert history_key(datetime(9999, 12, 31, tzinfo=UTC)) < 2**63 - 1
    # a daily counter: day 2's #1 has a larger key than day 1's #8640
    assert history_key(datetime(2026, 3, 25, 0, 0, tzinfo=UTC)) > history_key(datetime(2026, 3, 24, 23, 59, 50, tzinfo=UTC))


def test_naive_times_read_in_the_scanner_zone() -> None:
    assert parse_timestamp("2026-06-01T14:00:00", AMS) == datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    assert parse_timestamp("2026-01-01T14:00:00", AMS) == datetime(2026, 1, 1, 13, 0, tzinfo=UTC)
    assert parse_timestamp("2026-06-01T14:00:00") == datetime(2026, 6, 1, 14, 0, tzinfo=UTC), "default: UTC"
    assert parse_timestamp("2026-06-01T14:00:00Z", AMS) == datetime(2026, 6, 1, 14, 0, tzinfo=UTC), "an offset wins"
    assert parse_timestamp(1_780_000_000, AMS) == parse_timestamp(1_780_000_000), "epoch seconds are absolute"


def test_spring_forward_is_unambiguous() -> None:
    before, after = parse_scan_time("2026-03-29T01:59:00", AMS), parse_scan_time("2026-03-29T03:00:00", AMS)
    assert before == (datetime(2026, 3, 29, 0, 59, tzinfo=UTC), None)
    assert after == (datetime(2026, 3, 29, 1, 0, tzinfo=UTC), None)


def test_autumn_repeated_hour_has_two_readings() -> None:
    first, second = parse_scan_time("2026-10-25T02:30:00", AMS)
    assert first == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert second == datetime(2026, 10, 25, 1, 30, tzinfo=UTC)


def test_resolve_fold_by_number_so_latest_never_jumps_back() -> None:
    first, second = parse_scan_time("2026-10-25T02:10:00", AMS)
    assert second is not None
    first_pass_latest = ScanId(datetime(2026, 10, 25, 0, 55, tzinfo=UTC), 104)  # 02:55 CEST
    # the clocks went back: 02:10 again, numbered after the newest -> the second pass
    assert resolve_fold(first, second, 105, first_pass_latest) == second
    # a late file of the first pass (numbered lower) -> the first pass
    assert resolve_fold(first, second, 90, first_pass_latest) == first
    # the first pass itself: the newest is before this reading
    assert resolve_fold(first, second, 102, ScanId(datetime(2026, 10, 25, 0, 0, tzinfo=UTC), 101)) == first
    assert resolve_fold(first, second, 1, None) == first


def test_restamped_changes_the_time_in_the_body_only() -> None:
    first, second = parse_scan_time("2026-10-25T02:10:00", AMS)
    assert second is not None
    body = encode_body(7, first, ["A"], {"x": [1.0]}, {"regime": "BULL"})
    record = ScanRecord(path=__file__, scan_number=7, timestamp=first, asset_count=1, body_json=body,  # type: ignore[arg-type]
                        size_bytes=1, mtime=0.0, timestamp_alt=second)
    moved = restamped(record, second)
    assert moved.timestamp == second and moved.timestamp_alt is None and moved.key == history_key(second)
    assert moved.body_json == body.replace(b"2026-10-25T00:10:00.000000Z", b"2026-10-25T01:10:00.000000Z")


@pytest.mark.parametrize("name", ["Mars/Base", "", "UTC+2"])
def test_a_bad_zone_name_is_a_clear_error(name: str, tmp_path) -> None:
    from pydantic import ValidationError

    from scan_bridge.settings import BridgeSettings, describe_validation_error

    with pytest.raises(ValidationError) as info:
        BridgeSettings(watch_dir=tmp_path, scanner_timezone=name)
    assert "--scanner-timezone / SCAN_BRIDGE_SCANNER_TIMEZONE" in describe_validation_error(info.value)


def test_the_reader_applies_the_zone_to_naive_text_and_naive_arrow_columns(tmp_path) -> None:
    import pyarrow as pa

    from scan_bridge.scanfile import read_scan
    from scan_bridge.simulate import table_bytes

    def file(name: str, table: pa.Table) -> object:
        path = tmp_path / name
        path.write_bytes(table_bytes(table))
        return path

    text = file("text.arrow", pa.table({"asset": ["A"]}).replace_schema_metadata(
        {"scan_number": "1", "timestamp": "2026-10-25T02:30:00"}))
    column = file("column.arrow", pa.table({
        "asset": ["A"], "scan_number": [2],
        "timestamp": pa.array([datetime(2026, 6, 1, 14, 0)], pa.timestamp("us")),  # no zone: wall-clock time
    }))
    zoned = file("zoned.arrow", pa.table({
        "asset": ["A"], "scan_number": [3],
        "timestamp": pa.array([datetime(2026, 6, 1, 14, 0)], pa.timestamp("us", tz="UTC")),  # an instant
    }))
    record = read_scan(text, 1 << 20, zone=AMS)
    assert (record.timestamp, record.timestamp_alt) == (datetime(2026, 10, 25, 0, 30, tzinfo=UTC), datetime(2026, 10, 25, 1, 30, tzinfo=UTC))
    assert b'"timestamp":"2026-10-25T00:30:00.000000Z"' in record.body_json, "documents carry UTC"
    assert read_scan(column, 1 << 20, zone=AMS).timestamp == datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    assert read_scan(column, 1 << 20).timestamp == datetime(2026, 6, 1, 14, 0, tzinfo=UTC), "default: UTC"
    assert read_scan(zoned, 1 << 20, zone=AMS).timestamp == datetime(2026, 6, 1, 14, 0, tzinfo=UTC)


def test_the_health_check_finds_the_newest_scan_not_the_file_copied_last(tmp_path) -> None:
    """A late, older file copied in last must not hide the newer scan written just before (issue 14)."""
    import os
    import time

    from scan_bridge.health import probe_disk
    from scan_bridge.simulate import write_scan

    now = time.time()
    newer = write_scan(tmp_path / "scan_000005_120500.arrow", 5, 3, timestamp=T0 + timedelta(minutes=5))
    late = write_scan(tmp_path / "scan_000021_120330.arrow", 21, 3, timestamp=T0 + timedelta(seconds=210))
    os.utime(newer, (now - 60, now - 60))
    os.utime(late, (now - 30, now - 30))  # modified last
    newest, complete = probe_disk(tmp_path, grace_s=10, now=now)
    assert newest is not None and newest.scan_number == 21, "the file modified last, for the operator"
    assert complete is not None and complete.scan_number == 5 and complete.timestamp == T0 + timedelta(minutes=5)


pytestmark = pytest.mark.unit  # pure: see pyproject.toml markers
