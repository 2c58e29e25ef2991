"""The freshness check against a real Hazelcast member (and a real directory of scan files)."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import hazelcast
import pyarrow as pa
import pytest
from hazelcast.core import HazelcastJsonValue

from scan_bridge.health import (
    FreshnessChecker,
    FreshnessReport,
    HealthStatus,
    StaleCause,
    check_hazelcast_data_freshness,
    probe_disk,
    scan_number_of_file,
)
from scan_bridge.localcluster import LocalCluster
from scan_bridge.settings import DaemonSettings

TIMEOUT_S = 3.0
SLACK_S = 2.0


def iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def latest_doc(number: int, age_s: float) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "scan_number": number,
        "timestamp": iso(now - timedelta(seconds=age_s)),
        "asset_count": 400,
        "bridge": {
            "pushed_at": iso(now - timedelta(seconds=age_s - 0.2)),
            "file": f"scan_{number:06d}.arrow",
            "lag_s": 0.2,
        },
    }


def heartbeat_doc(age_s: float) -> dict[str, Any]:
    now = time.time() - age_s
    return {
        "time": iso(datetime.fromtimestamp(now, UTC)),
        "epoch": now,
        "pid": 4321,
        "host": "test",
        "started_at": iso(datetime.now(UTC) - timedelta(hours=1)),
        "last_scan_number": None,
        "connected": True,
        "pushed_total": 1,
        "rejected_total": 0,
    }


def scan_file(directory: Path, name: str, age_s: float, metadata: dict[bytes, bytes] | None = None) -> Path:
    """A real Arrow IPC file, its mtime set ``age_s`` into the past."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    table = pa.table({"asset": ["A", "B"], "eigenvalue": [1.0, 2.0]}).replace_schema_metadata(metadata)
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    mtime = time.time() - age_s
    os.utime(path, (mtime, mtime))
    return path


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when we return: nobody listens there


@pytest.fixture(scope="module")
def writer(hazelcast_cluster: Any) -> Iterator[hazelcast.HazelcastClient]:
    client = hazelcast.HazelcastClient(**hazelcast_cluster.client_config())
    yield client
    client.shutdown()


@pytest.fixture
def settings(hazelcast_cluster: Any, unique_names: dict[str, str], tmp_path: Path) -> DaemonSettings:
    watch = tmp_path / "scans"
    watch.mkdir()
    return DaemonSettings(
        hazelcast_members=hazelcast_cluster.members,
        hazelcast_cluster_name=hazelcast_cluster.cluster_name,
        features_map=unique_names["features_map"],
        watch_dir=watch,
        health_timeout_s=TIMEOUT_S,
    )


@pytest.fixture
def put(writer: hazelcast.HazelcastClient, settings: DaemonSettings) -> Callable[..., None]:
    features = writer.get_map(settings.features_map).blocking()

    def put_docs(latest: dict[str, Any] | None = None, heartbeat: dict[str, Any] | None = None) -> None:
        if latest is not None:
            features.set(settings.latest_key, HazelcastJsonValue(json.dumps(latest)))
        if heartbeat is not None:
            features.set(settings.heartbeat_key, HazelcastJsonValue(json.dumps(heartbeat)))

    return put_docs


def test_missing(settings: DaemonSettings) -> None:
    report = check_hazelcast_data_freshness(settings)
    assert report.status is HealthStatus.MISSING
    assert report.hazelcast_error is None
    assert f"no latest_eigen_scan in {settings.features_map} yet" in report.message


def test_healthy(settings: DaemonSettings, put: Callable[..., None]) -> None:
    put(latest_doc(4228, 2.0), heartbeat_doc(0.5))
    scan_file(settings.watch_dir, "scan_004228_120000.arrow", 2.0)  # type: ignore[arg-type]
    report = check_hazelcast_data_freshness(settings, bridge_running=True)
    assert report.status is HealthStatus.HEALTHY, report.message
    assert report.scan_number == 4228 and report.asset_count == 400
    assert report.data_age_s is not None and 1.5 < report.data_age_s < 10
    assert report.heartbeat_pid == 4321 and not report.bridge_stuck
    assert report.newest_on_disk == 4228


def test_stale_scanner_silent(settings: DaemonSettings, put: Callable[..., None]) -> None:
    put(latest_doc(4228, 120.0), heartbeat_doc(1.0))
    scan_file(settings.watch_dir / "2024-05-01", "scan_004228_120000.arrow", 121.0)  # type: ignore[operator]
    report = check_hazelcast_data_freshness(settings)
    assert report.status is HealthStatus.STALE, report.message
    assert report.cause is StaleCause.SCANNER_SILENT
    assert not report.bridge_stuck
    assert report.newest_on_disk == 4228


def test_stale_bridge_stuck_by_newer_file(settings: DaemonSettings, put: Callable[..., None]) -> None:
    put(latest_doc(4228, 120.0), heartbeat_doc(1.0))
    def meta(number: int, age_s: float) -> dict[bytes, bytes]:  # "newer" is the scan's time (issue 14): files carry it
        stamp = (datetime.now(UTC) - timedelta(seconds=age_s)).isoformat()
        return {b"scan_number": str(number).encode(), b"timestamp": stamp.encode()}

    scan_file(settings.watch_dir, "scan_004228_120000.arrow", 121.0, meta(4228, 120.0))  # type: ignore[arg-type]
    scan_file(settings.watch_dir, "scan_004230_120010.arrow", 60.0, meta(4230, 60.0))  # type: ignore[arg-type]
    scan_file(settings.watch_dir, "scan_004231_120015.arrow", 1.0, meta(4231, 1.0))  # type: ignore[arg-type] # still being written
    report = check_hazelcast_data_freshness(settings)
    assert report.status is HealthStatus.STALE, report.message
    assert report.cause is StaleCause.BRIDGE_STUCK
    assert report.unpushed_scan_number == 4230
    assert report.newest_on_disk == 4231


def test_unreachable_is_an_error_within_the_timeout(tmp_path: Path) -> None:
    port = closed_port()
    settings = DaemonSettings(hazelcast_members=[f"127.0.0.1:{port}"], health_timeout_s=TIMEOUT_S, watch_dir=None)
    start = time.monotonic()
    report = check_hazelcast_data_freshness(settings)
    elapsed = time.monotonic() - start
    assert report.status is HealthStatus.ERROR
    assert f"127.0.0.1:{port}" in report.message and f"127.0.0.1:{port}" in (report.hazelcast_error or "")
    assert elapsed < TIMEOUT_S + SLACK_S


def test_checker_reuses_its_client_and_measures_progress(settings: DaemonSettings, put: Callable[..., None]) -> None:
    put(latest_doc(100, 1.0), heartbeat_doc(0.2))
    with FreshnessChecker(settings) as checker:
        first = checker.check(bridge_running=True)
        client = checker._client
        put(latest_doc(106, 1.0), heartbeat_doc(0.2))
        second = checker.check(bridge_running=True)
        assert checker._client is client
    assert first.status is second.status is HealthStatus.HEALTHY
    assert second.scans_since_previous == 6
    assert second.scans_per_minute is not None and second.scans_per_minute > 0
    assert checker._client is None  # closed


def test_down_is_what_the_caller_says(settings: DaemonSettings, put: Callable[..., None]) -> None:
    put(latest_doc(1, 1.0), heartbeat_doc(0.2))
    assert check_hazelcast_data_freshness(settings, bridge_running=False).status is HealthStatus.DOWN


def test_scan_number_from_file_metadata(tmp_path: Path) -> None:
    named = scan_file(tmp_path, "scan_000042_x.arrow", 0)
    unnamed = scan_file(tmp_path, "eigen.arrow", 0, {b"scan_number": b"77"})
    garbage = tmp_path / "junk.arrow"
    garbage.write_bytes(b"not arrow at all")
    assert scan_number_of_file(named) == 42
    assert scan_number_of_file(unnamed) == 77
    assert scan_number_of_file(garbage) is None
    stream = tmp_path / "stream.arrows"
    table = pa.table({"asset": ["A"], "scan_number": [91]})
    with pa.OSFile(str(stream), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    assert scan_number_of_file(stream) == 91


def test_probe_disk_looks_past_files_being_written(tmp_path: Path) -> None:
    scan_file(tmp_path, "scan_000010_a.arrow", 30)
    for number in range(11, 16):
        scan_file(tmp_path, f"scan_{number:06d}_a.arrow", 15 - number * 0.5)
    newest, complete = probe_disk(tmp_path, grace_s=10)
    assert newest is not None and newest.scan_number == 15
    assert complete is not None and complete.scan_number == 10
    assert probe_disk(tmp_path / "empty", grace_s=10) == (None, None)


def test_probe_disk_finds_a_complete_file_behind_a_grace_full_of_new_ones(tmp_path: Path) -> None:
    """Found by the chaos harness (issue 10): at 5 scans/s a grace of 10 s hides 50 files younger than
    it, and the probe looked at the newest 20 only, so it found no complete file at all: a bridge that
    was not pushing was reported "scanner silent" (never restarted) while the scanner wrote on."""
    for number in range(1, 11):
        scan_file(tmp_path, f"scan_{number:06d}_a.arrow", 30 - number)
    for number in range(11, 61):  # 50 files written in the last 10 s
        scan_file(tmp_path, f"scan_{number:06d}_a.arrow", (60 - number) * 0.2)
    newest, complete = probe_disk(tmp_path, grace_s=10)
    assert newest is not None and newest.scan_number == 60
    assert complete is not None and complete.scan_number == 10


# -- a member that goes away --------------------------------------------------------------------------


def private_settings(cluster: LocalCluster, tmp_path: Path) -> DaemonSettings:
    return DaemonSettings(
        hazelcast_members=cluster.members,
        hazelcast_cluster_name=cluster.cluster_name,
        features_map="features_private",
        watch_dir=None,
        health_timeout_s=TIMEOUT_S,
    )


def wait_for(checker: FreshnessChecker, status: HealthStatus, timeout: float = 30.0) -> None:
    """Check until ``status`` (a just-started or resumed JVM on a busy machine may need a few tries)."""
    deadline = time.monotonic() + timeout
    while (report := checker.check()).status is not status:
        assert time.monotonic() < deadline, report.message
        time.sleep(0.2)


def timed_check(check: Callable[[], FreshnessReport]) -> FreshnessReport:
    start = time.monotonic()
    report = check()
    elapsed = time.monotonic() - start
    assert elapsed < TIMEOUT_S + SLACK_S, f"{elapsed:.1f}s: {report.message}"
    return report


def test_frozen_member_is_an_error_not_a_hang(
    local_cluster_factory: Callable[..., LocalCluster], tmp_path: Path
) -> None:
    """A SIGSTOPped member accepts TCP and never answers: the client alone would wait for ever."""
    cluster = local_cluster_factory(1)
    pid = cluster.pid(0)
    assert pid is not None
    with FreshnessChecker(private_settings(cluster, tmp_path)) as checker:
        wait_for(checker, HealthStatus.MISSING)
        os.kill(pid, signal.SIGSTOP)
        try:
            report = timed_check(checker.check)
            assert report.status is HealthStatus.ERROR, report.message
            # a fresh client against the frozen member: the constructor would hang, our wait does not
            report = timed_check(lambda: check_hazelcast_data_freshness(private_settings(cluster, tmp_path)))
            assert report.status is HealthStatus.ERROR, report.message
        finally:
            os.kill(pid, signal.SIGCONT)
        wait_for(checker, HealthStatus.MISSING)


def test_member_restart_is_survived(local_cluster_factory: Callable[..., LocalCluster], tmp_path: Path) -> None:
    cluster = local_cluster_factory(1)
    with FreshnessChecker(private_settings(cluster, tmp_path)) as checker:
        wait_for(checker, HealthStatus.MISSING)
        cluster.stop_member(0, kill=True)
        report = timed_check(checker.check)
        assert report.status is HealthStatus.ERROR, report.message
        cluster.start_member(0)
        wait_for(checker, HealthStatus.MISSING)
