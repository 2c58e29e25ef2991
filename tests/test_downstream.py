"""Downstream flows waiting for the bridge: wait_for_fresh_scan and the scan topic, against a real member."""

from __future__ import annotations

import importlib.util
import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import hazelcast
import pytest
from hazelcast.core import HazelcastJsonValue

from scan_bridge.document import format_timestamp
from scan_bridge.downstream import StaleScanError, wait_for_fresh_scan
from scan_bridge.settings import DaemonSettings, HazelcastSettings
from scan_bridge.simulate import write_scan

from .support import BridgeRunner, unique_maps, wait_for

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def env(hazelcast_cluster):
    return {**hazelcast_cluster.env(), **unique_maps(), "SCAN_BRIDGE_SCAN_TOPIC": f"T_{uuid.uuid4().hex[:8]}"}


@pytest.fixture
def settings(env) -> HazelcastSettings:
    return HazelcastSettings(
        hazelcast_members=env["SCAN_BRIDGE_HAZELCAST_MEMBERS"],
        hazelcast_cluster_name=env["SCAN_BRIDGE_HAZELCAST_CLUSTER_NAME"],
        features_map=env["SCAN_BRIDGE_FEATURES_MAP"],
        history_map=env["SCAN_BRIDGE_HISTORY_MAP"],
        scan_topic=env["SCAN_BRIDGE_SCAN_TOPIC"],
    )


@pytest.fixture
def client(hazelcast_cluster):
    c = hazelcast.HazelcastClient(**hazelcast_cluster.client_config())
    yield c
    c.shutdown()


def put_latest(client, settings: HazelcastSettings, number: int, age_s: float) -> None:
    stamp = datetime.now(UTC) - timedelta(seconds=age_s)
    document = {"scan_number": number, "timestamp": format_timestamp(stamp), "asset_count": 1, "assets": ["BTC"]}
    client.get_map(settings.features_map).blocking().set(settings.latest_key, HazelcastJsonValue(document))


def test_returns_at_once_when_fresh(client, settings):
    put_latest(client, settings, 7, age_s=1)
    started = time.monotonic()
    scan = wait_for_fresh_scan(max_age_s=30, timeout_s=10, settings=settings)
    assert scan["scan_number"] == 7
    assert scan["assets"] == ["BTC"]
    assert time.monotonic() - started < 3


def test_waits_while_stale_and_returns_once_a_fresh_scan_lands(client, settings):
    put_latest(client, settings, 1, age_s=300)
    timer = threading.Timer(1.5, put_latest, (client, settings, 2, 0))
    timer.start()
    try:
        started = time.monotonic()
        scan = wait_for_fresh_scan(max_age_s=30, timeout_s=20, settings=settings, poll_interval_s=0.2)
        elapsed = time.monotonic() - started
    finally:
        timer.cancel()
    assert scan["scan_number"] == 2
    assert 1.4 <= elapsed < 5


def test_times_out_naming_the_age_it_saw(client, settings):
    put_latest(client, settings, 3, age_s=100)
    started = time.monotonic()
    with pytest.raises(StaleScanError) as caught:
        wait_for_fresh_scan(max_age_s=5, timeout_s=1.5, settings=settings, poll_interval_s=0.2)
    elapsed = time.monotonic() - started
    assert 1.4 <= elapsed < 3
    message = str(caught.value)
    assert "\n" not in message
    assert "scan #3 10" in message and "s old" in message  # 100.x s
    assert settings.hazelcast_members[0] in message
    assert isinstance(caught.value, TimeoutError)
    assert 100 <= caught.value.last_age_s < 110
    assert caught.value.last_scan_number == 3


def test_times_out_saying_no_scan_was_seen(settings):
    with pytest.raises(StaleScanError, match="no scan there yet") as caught:
        wait_for_fresh_scan(timeout_s=1, settings=settings, poll_interval_s=0.2)
    assert caught.value.last_age_s is None


@pytest.mark.parametrize("timeout_s", [1.0, 4.0])
def test_unreachable_cluster_names_the_address_within_the_timeout(timeout_s):
    settings = DaemonSettings(hazelcast_members="127.0.0.1:1", health_timeout_s=2)
    started = time.monotonic()
    with pytest.raises(StaleScanError) as caught:
        wait_for_fresh_scan(timeout_s=timeout_s, settings=settings)
    elapsed = time.monotonic() - started
    assert elapsed < timeout_s + 1.5
    message = str(caught.value)
    assert "127.0.0.1:1" in message and "not reachable" in message
    assert caught.value.address == "127.0.0.1:1"
    assert caught.value.last_age_s is None


def scan_file(root: Path, number: int) -> Path:
    folder = root / "2026-03-24"
    folder.mkdir(parents=True, exist_ok=True)
    return write_scan(folder / f"scan_{number:06d}_120000.arrow", number, 5)


def test_topic_listener_gets_each_scan_the_bridge_pushes_in_order_and_the_wait_ends(tmp_path, env, settings, client):
    scans = tmp_path / "scans"
    scans.mkdir()
    received: list[dict] = []
    topic = client.get_reliable_topic(settings.scan_topic).blocking()
    registration = topic.add_listener(lambda message: received.append(json.loads(message.message)))
    try:
        with BridgeRunner(scans, env, tmp_path / "bridge.log") as bridge:
            bridge.wait_logged("Watching")
            waiter: dict = {}

            def wait() -> None:
                try:
                    waiter["scan"] = wait_for_fresh_scan(max_age_s=30, timeout_s=30, settings=settings, poll_interval_s=0.1)
                except Exception as exc:  # handed to the test thread
                    waiter["error"] = exc

            thread = threading.Thread(target=wait)
            thread.start()
            time.sleep(0.5)
            assert "scan" not in waiter  # nothing pushed yet: still waiting
            for n in range(1, 11):
                scan_file(scans, n)
                time.sleep(0.05)
            thread.join(30)
            assert "error" not in waiter, waiter.get("error")
            assert waiter["scan"]["scan_number"] >= 1
            wait_for(lambda: received and received[-1]["scan_number"] == 10, 20, "event for scan #10")
    finally:
        topic.remove_listener(registration)
    numbers = [event["scan_number"] for event in received]
    assert numbers == sorted(set(numbers)), numbers  # in order, no repeats (a catch-up batch announces its newest)
    assert numbers[-1] == 10
    last = received[-1]
    assert set(last) == {"scan_number", "timestamp", "asset_count", "pushed_at"}
    assert last["asset_count"] == 5
    assert last["timestamp"].endswith("Z") and last["pushed_at"].endswith("Z")


def test_empty_topic_setting_disables_events(tmp_path, env, settings, client):
    scans = tmp_path / "scans"
    scans.mkdir()
    received: list = []
    topic = client.get_reliable_topic(settings.scan_topic).blocking()
    registration = topic.add_listener(lambda message: received.append(message.message))
    try:
        with BridgeRunner(scans, {**env, "SCAN_BRIDGE_SCAN_TOPIC": ""}, tmp_path / "bridge.log") as bridge:
            bridge.wait_logged("Watching")
            scan_file(scans, 1)
            wait_for_fresh_scan(timeout_s=20, settings=settings, poll_interval_s=0.1)
            time.sleep(0.5)
    finally:
        topic.remove_listener(registration)
    assert received == []


def test_prefect_task_and_example_flow(client, settings, monkeypatch, capsys):
    from prefect.testing.utilities import prefect_test_harness

    from scan_bridge.downstream import wait_for_fresh_scan_task

    spec = importlib.util.spec_from_file_location("paper_trade_flow", ROOT / "examples" / "paper_trade_flow.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)

    put_latest(client, settings, 42, age_s=1)
    with prefect_test_harness(server_startup_timeout=60):
        assert wait_for_fresh_scan_task(max_age_s=30, timeout_s=10, settings=settings)["scan_number"] == 42
        trades = example.paper_trade_flow(max_age_s=30, timeout_s=10, settings=settings)
    assert trades["scan_number"] == 42
