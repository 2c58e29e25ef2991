"""The scanner's own numbering and clock (issue 14), against a real member with a real bridge process.

Counters that start again (a restart, a per-day counter), a reset while the bridge is down, a late
older scan after a reset, two files with the same number, naive local timestamps across both
daylight-saving changes, and the health check and ``wait_for_fresh_scan`` across a reset.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from scan_bridge.document import format_timestamp
from scan_bridge.downstream import StaleScanError, wait_for_fresh_scan
from scan_bridge.health import FreshnessChecker, HealthStatus
from scan_bridge.settings import DaemonSettings
from scan_bridge.simulate import write_scan
from scan_bridge.supervisor import bridge_event

from .support import BridgeRunner, View, member_settings, unique_maps, wait_for

T0 = datetime(2026, 3, 24, 12, 0, tzinfo=UTC)


@pytest.fixture
def env(hazelcast_cluster):
    return {**hazelcast_cluster.env(), **unique_maps()}


@pytest.fixture
def scans(tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    return folder


@pytest.fixture
def view(env):
    v = View(env)
    yield v
    v.close()


def write(root: Path, number: int, when: datetime, *, stamp: str | None = None, folder: str | None = None, **meta: Any) -> Path:
    """Scan ``number`` stamped ``when`` (or the text ``stamp``) in a date folder, named like the scanner's files (docs/scan-format.md)."""
    day = folder or f"{when.astimezone(UTC):%Y-%m-%d}"
    path = root / day / f"scan_{number:06d}_{when:%H%M%S}.arrow"
    extra = {"timestamp": stamp} if stamp is not None else {}
    return write_scan(path, number, 5, timestamp=when, extra_metadata={**extra, **meta} or None)


def latest_is(view: View, number: int, timestamp: datetime | None = None) -> Any:
    def check() -> Any:
        doc = view.latest()
        if doc is None or doc["scan_number"] != number:
            return None
        if timestamp is not None and doc["timestamp"] != format_timestamp(timestamp):
            return None
        return doc

    return check


def numbered(view: View, number: int) -> list[str]:
    """The timestamps of every scan numbered ``number`` in history, oldest first."""
    return [d["timestamp"] for d in view.scans() if d["scan_number"] == number]


def resets(bridge: BridgeRunner) -> list[dict[str, Any]]:
    return [line["fields"] for line in bridge.lines() if line.get("fields", {}).get("event") == "counter_reset"]


def first_run(bridge: BridgeRunner, scans: Path, view: View) -> None:
    """The scanner's first run through ``bridge``: scans #1-#20, 10 s apart from T0, #20 latest."""
    bridge.wait_logged("Watching")
    for n in range(1, 21):
        write(scans, n, T0 + timedelta(seconds=10 * n))
    wait_for(latest_is(view, 20), 30, "latest #20 of the first run")


def test_scanner_restart_mid_stream_numbering_from_1(tmp_path, scans, env, view):
    with BridgeRunner(scans, env, tmp_path / "bridge.log") as bridge:
        first_run(bridge, scans, view)
        restart = T0 + timedelta(minutes=10)
        for n in range(1, 11):  # the scanner restarted: new files, numbering from 1, later times
            write(scans, n, restart + timedelta(seconds=10 * n))
        wait_for(latest_is(view, 10, restart + timedelta(seconds=100)), 30, "latest is the new #10, not the old #20")
        wait_for(lambda: len(view.raw_keys()) == 30, 30, "all 30 scans in history")
        for n in range(1, 11):
            assert len(numbered(view, n)) == 2, f"history keeps the old #{n} and the new #{n}"
        wait_for(lambda: resets(bridge), 10, "the counter reset logged")
    (reset,) = resets(bridge)  # once, with both numbers and times
    assert reset["from_number"] == 20 and reset["to_number"] == 1
    assert reset["from_timestamp"] == format_timestamp(T0 + timedelta(seconds=200))
    assert reset["to_timestamp"] == format_timestamp(restart + timedelta(seconds=10))
    # The daemon turns exactly that record (its fields, not its text) into a scan-bridge.counter-reset event.
    events = [e for e in map(bridge_event, bridge.log_path.read_text().splitlines()) if e is not None]
    assert events == [("counter-reset", reset)]
    # These scans are stamped in March, their files written now: one warning line naming the likely cause.
    mismatches = [line for line in bridge.lines() if line.get("fields", {}).get("event") == "clock_mismatch"]
    assert len(mismatches) == 1 and "SCAN_BRIDGE_SCANNER_TIMEZONE" in mismatches[0]["message"]


def test_daily_counter_across_midnight_with_date_folders(tmp_path, scans, env, view):
    midnight = datetime(2026, 3, 25, tzinfo=UTC)
    with BridgeRunner(scans, env, tmp_path / "bridge.log") as bridge:
        bridge.wait_logged("Watching")
        for i, n in enumerate(range(8638, 8641)):
            write(scans, n, midnight - timedelta(seconds=30 - 10 * i))  # 2026-03-24/, 23:59:30 .. 23:59:50
        wait_for(latest_is(view, 8640), 30, "latest: yesterday's last")
        for n in range(1, 4):
            write(scans, n, midnight + timedelta(seconds=10 * (n - 1)))  # 2026-03-25/, 00:00:00 ..
        wait_for(latest_is(view, 3, midnight + timedelta(seconds=20)), 30, "latest: today's #3")
        assert sorted(d["scan_number"] for d in view.scans()) == [1, 2, 3, 8638, 8639, 8640]
        wait_for(lambda: len(resets(bridge)) == 1, 10, "midnight logged as a counter reset")


def test_counter_reset_while_the_bridge_is_down_is_found_at_start(tmp_path, scans, env, view):
    with BridgeRunner(scans, env, tmp_path / "bridge.log") as bridge:
        first_run(bridge, scans, view)
    restart = T0 + timedelta(minutes=10)
    for n in range(1, 6):
        write(scans, n, restart + timedelta(seconds=10 * n))
    with BridgeRunner(scans, env, tmp_path / "bridge2.log") as bridge:
        wait_for(latest_is(view, 5, restart + timedelta(seconds=50)), 30, "latest: the new #5")
        bridge.wait_logged("Caught up 5 scans")
        assert len(view.raw_keys()) == 25
        (reset,) = wait_for(lambda: resets(bridge), 10, "the reset logged at start-up")
        assert (reset["from_number"], reset["to_number"]) == (20, 1)
        # A late, older scan after the reset (the first run's #21, written late): history only.
        late = write(scans, 21, T0 + timedelta(seconds=210))
        wait_for(lambda: numbered(view, 21), 30, "the late #21 in history")
        assert view.latest()["scan_number"] == 5, "a bigger number stamped earlier never becomes latest"
        assert len(resets(bridge)) == 1
        assert late.exists()


def test_two_files_with_the_same_number_and_different_content(tmp_path, scans, env, view):
    with BridgeRunner(scans, env, tmp_path / "bridge.log") as bridge:
        bridge.wait_logged("Watching")
        write(scans, 5, T0, regime="BULL")
        wait_for(latest_is(view, 5, T0), 30, "the first #5")
        write(scans, 5, T0 + timedelta(minutes=5), folder="again", regime="BEAR")
        wait_for(latest_is(view, 5, T0 + timedelta(minutes=5)), 30, "the second #5 is the latest")
        docs = [d for d in view.scans() if d["scan_number"] == 5]
        assert [d["regime"] for d in docs] == ["BULL", "BEAR"], "both kept, oldest key first"
        # The same number AND the same time, different content: one slot; the first is kept, and it is said.
        write(scans, 5, T0, folder="third", regime="CRAB")
        bridge.wait_logged("claims the same time as")
        assert [d["regime"] for d in view.scans() if d["scan_number"] == 5] == ["BULL", "BEAR"]


def test_naive_local_timestamps_with_the_zone_set_across_both_dst_changes(tmp_path, scans, env, view):
    env = {**env, "SCAN_BRIDGE_SCANNER_TIMEZONE": "Europe/Amsterdam"}
    # (number, naive local wall time, the UTC instant it must become)
    spring = [  # 2026-03-29: 02:00 CET -> 03:00 CEST
        (1, "2026-03-29T01:50:00", datetime(2026, 3, 29, 0, 50, tzinfo=UTC)),
        (2, "2026-03-29T01:59:00", datetime(2026, 3, 29, 0, 59, tzinfo=UTC)),
        (3, "2026-03-29T03:00:00", datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),
        (4, "2026-03-29T03:10:00", datetime(2026, 3, 29, 1, 10, tzinfo=UTC)),
    ]
    autumn = [  # 2026-10-25: 03:00 CEST -> 02:00 CET; 02:00-02:59 happens twice
        (101, "2026-10-25T01:50:00", datetime(2026, 10, 24, 23, 50, tzinfo=UTC)),
        (102, "2026-10-25T02:10:00", datetime(2026, 10, 25, 0, 10, tzinfo=UTC)),
        (103, "2026-10-25T02:50:00", datetime(2026, 10, 25, 0, 50, tzinfo=UTC)),
        (104, "2026-10-25T02:10:00", datetime(2026, 10, 25, 1, 10, tzinfo=UTC)),  # the clocks went back
        (105, "2026-10-25T02:50:00", datetime(2026, 10, 25, 1, 50, tzinfo=UTC)),
        (106, "2026-10-25T03:10:00", datetime(2026, 10, 25, 2, 10, tzinfo=UTC)),
    ]
    with BridgeRunner(scans, env, tmp_path / "bridge.log") as bridge:
        bridge.wait_logged("Watching")
        for number, local, utc in spring + autumn:
            write(scans, number, utc, stamp=local)
            wait_for(latest_is(view, number, utc), 30, f"#{number} ({local} local) latest as {format_timestamp(utc)}")
        # A late file of the first pass through the repeated hour: numbered lower, so the first reading; history only.
        write(scans, 99, datetime(2026, 10, 25, 0, 40, tzinfo=UTC), stamp="2026-10-25T02:40:00")
        wait_for(lambda: numbered(view, 99), 30, "the late #99 in history")
        assert numbered(view, 99) == ["2026-10-25T00:40:00.000000Z"]
        assert view.latest()["scan_number"] == 106
        stamps = {d["scan_number"]: d["timestamp"] for d in view.scans()}
        assert stamps == {n: format_timestamp(utc) for n, _, utc in spring + autumn} | {99: "2026-10-25T00:40:00.000000Z"}
        assert not resets(bridge), "local time is not a counter reset"


def test_health_check_and_wait_for_fresh_scan_across_a_reset(tmp_path, scans, env, view, hazelcast_cluster):
    now = datetime.now(UTC)
    old_run = now - timedelta(minutes=5)
    settings = DaemonSettings(
        **member_settings(env),
        watch_dir=scans,
        newer_file_grace_s=0.5,
        health_timeout_s=10,
    )
    with BridgeRunner(scans, env, tmp_path / "bridge.log") as bridge:
        bridge.wait_logged("Watching")
        for n in range(1, 21):  # the first run, five minutes ago
            write(scans, n, old_run + timedelta(seconds=n))
        old20 = wait_for(latest_is(view, 20), 30, "latest #20 of the first run")
        with FreshnessChecker(settings) as checker:
            before = checker.check(bridge_running=True)
            assert before.status is HealthStatus.STALE and before.scan_number == 20
            fresh = datetime.now(UTC)
            for n in range(1, 6):  # the scanner restarted, numbering from 1, now
                write(scans, n, fresh + timedelta(milliseconds=n))
            wait_for(latest_is(view, 5), 30, "latest: the new #5")
            wait_for(lambda: view.heartbeat() and view.heartbeat().get("counter_reset"), 10, "the reset in the heartbeat")
            scan = wait_for_fresh_scan(max_age_s=60, timeout_s=20, settings=settings, newer_than=old20)
            assert scan["scan_number"] == 5, "newer than #20 by the scanner's time, with a lower number"
            with pytest.raises(StaleScanError, match="none newer than #5"):
                wait_for_fresh_scan(max_age_s=60, timeout_s=10, settings=settings, newer_than=scan)  # a new client connects first
            report = checker.check(bridge_running=True)
        assert report.status is HealthStatus.HEALTHY, report.message
        assert not report.bridge_stuck, report.message
        assert report.scan_number == 5 and report.counter_reset and "#20" in report.counter_reset
        assert report.scans_per_minute is None, "numbers across a reset give no rate"
        assert "counter started again" in report.message
