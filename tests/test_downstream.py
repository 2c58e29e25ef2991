"""Downstream flows waiting for the bridge: wait_for_fresh_scan and the scan topic, against a real member."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
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

from .support import BridgeRunner, member_settings, unique_maps, wait_for

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def env(hazelcast_cluster):
    return {**hazelcast_cluster.env(), **unique_maps(), "SCAN_BRIDGE_SCAN_TOPIC": f"T_{uuid.uuid4().hex[:8]}"}


@pytest.fixture
def settings(env) -> HazelcastSettings:
    return HazelcastSettings(**member_settings(env), scan_topic=env["SCAN_BRIDGE_SCAN_TOPIC"])


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
    assert time.monotonic() - started < 8  # a deadline for "at once" on a loaded machine, not a speed target


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
    assert 1.4 <= elapsed < 10  # waited for the fresh scan, and returned well before timeout_s


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


class TopicLog:
    """A listener on the scan topic, confirmed live before the test relies on it.

    A listener that never got going would make "no event arrived" pass without checking anything, so
    :meth:`confirmed` publishes probes of its own until one comes back. Probes are kept apart from
    the bridge's events, and :meth:`barrier` uses one to say "everything published before now is in".
    """

    def __init__(self, client, name: str) -> None:
        self.topic = client.get_reliable_topic(name).blocking()
        self._messages: list[dict] = []
        self._lock = threading.Lock()
        self._registration = self.topic.add_listener(self._on_message)

    def _on_message(self, message) -> None:
        with self._lock:
            self._messages.append(json.loads(message.message))

    def _probe(self, timeout: float) -> None:
        token = uuid.uuid4().hex
        self.topic.publish(json.dumps({"probe": token}))
        wait_for(lambda: any(m.get("probe") == token for m in self.all()), timeout, f"probe {token} back from the topic")

    def confirmed(self) -> TopicLog:
        self._probe(15)
        return self

    def barrier(self) -> None:
        """Messages published before this call (by anyone, in topic order) have been received."""
        self._probe(15)

    def all(self) -> list[dict]:
        with self._lock:
            return list(self._messages)

    def events(self) -> list[dict]:
        """The bridge's events: everything but our probes."""
        return [m for m in self.all() if "probe" not in m]

    def close(self) -> None:
        self.topic.remove_listener(self._registration)


def test_topic_listener_gets_each_scan_the_bridge_pushes_in_order_and_the_wait_ends(tmp_path, env, settings, client):
    scans = tmp_path / "scans"
    scans.mkdir()
    put_latest(client, settings, 0, age_s=300)  # a stale scan the waiter must see and reject
    topic = TopicLog(client, settings.scan_topic).confirmed()
    try:
        with BridgeRunner(scans, env, tmp_path / "bridge.log") as bridge:
            bridge.wait_logged("Watching")
            reads: list[float] = []

            def counting_clock() -> float:  # called once per read that found a scan
                reads.append(1.0)
                return time.time()

            waiter: dict = {}

            def wait() -> None:
                try:
                    waiter["scan"] = wait_for_fresh_scan(max_age_s=30, timeout_s=60, settings=settings,
                                                         poll_interval_s=0.1, clock=counting_clock)
                except Exception as exc:  # handed to the test thread
                    waiter["error"] = exc

            thread = threading.Thread(target=wait, daemon=True)
            thread.start()
            # The waiter is running and has already turned the stale scan down: it is waiting, not absent.
            wait_for(lambda: len(reads) >= 2 or not thread.is_alive(), 30, "two reads of the stale scan by the waiter")
            assert thread.is_alive() and waiter == {}, f"the wait ended on a stale scan: {waiter}"
            for n in range(1, 11):
                scan_file(scans, n)
                time.sleep(0.05)
            thread.join(60)
            assert not thread.is_alive(), "the wait did not end"
            assert "error" not in waiter, waiter.get("error")
            assert waiter["scan"]["scan_number"] >= 1
            wait_for(lambda: (lambda e: e and e[-1]["scan_number"] == 10)(topic.events()), 20, "event for scan #10")
    finally:
        topic.close()
    received = topic.events()
    numbers = [event["scan_number"] for event in received]
    assert numbers == sorted(set(numbers)), numbers  # in order, no repeats (a catch-up batch announces its newest)
    assert numbers[-1] == 10
    last = received[-1]
    assert set(last) == {"scan_number", "timestamp", "history_key", "asset_count", "pushed_at"}
    assert last["asset_count"] == 5
    assert last["timestamp"].endswith("Z") and last["pushed_at"].endswith("Z")


def latest_number(client, settings: HazelcastSettings) -> int | None:
    value = client.get_map(settings.features_map).blocking().get(settings.latest_key)
    return None if value is None else json.loads(value.to_string())["scan_number"]


def test_empty_topic_setting_disables_events(tmp_path, env, settings, client):
    scans = tmp_path / "scans"
    scans.mkdir()
    # Live listeners (silence below means no event, not no listener) on this test's topic and on the
    # default one, which a bridge that ignored the empty value would publish on.
    default = HazelcastSettings.model_fields["scan_topic"].default
    topics = [TopicLog(client, name).confirmed() for name in (settings.scan_topic, default)]
    try:
        with BridgeRunner(scans, {**env, "SCAN_BRIDGE_SCAN_TOPIC": ""}, tmp_path / "bridge.log") as bridge:
            bridge.wait_logged("Watching")
            for n in (1, 2):
                scan_file(scans, n)
                wait_for(lambda: latest_number(client, settings) == n, 30, f"scan #{n} pushed")
            # Publishing is fire and forget after the write: a barrier after scan #2 was written lets an
            # event for #1 (and very likely #2) arrive before we look.
            for topic in topics:
                topic.barrier()
    finally:
        for topic in topics:
            topic.close()
    assert [topic.events() for topic in topics] == [[], []]


def test_prefect_task_and_example_flow(client, settings, monkeypatch, capsys):
    from prefect.testing.utilities import prefect_test_harness

    from scan_bridge.downstream import wait_for_fresh_scan_task

    spec = importlib.util.spec_from_file_location("paper_trade_flow", ROOT / "examples" / "paper_trade_flow.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)

    with prefect_test_harness(server_startup_timeout=60):
        # Written once the harness's server is up: its start took over 30 s on a loaded machine,
        # and a scan written before it was stale by the time the task looked.
        put_latest(client, settings, 42, age_s=1)
        assert wait_for_fresh_scan_task(max_age_s=30, timeout_s=10, settings=settings)["scan_number"] == 42
        trades = example.paper_trade_flow(max_age_s=30, timeout_s=10, settings=settings)
    assert trades["scan_number"] == 42


# -- bounded against a frozen member and a wrong cluster name -----------------------------------------

# What "within its timeout" may overrun by on a loaded 2-core machine: a shutdown and a thread switch,
# not another read (docs/downstream.md promises "plus well under a second").
OVERRUN_S = 1.5


def wait_in_thread(timeout_s: float, settings: HazelcastSettings, **kwargs: object) -> tuple[dict, threading.Thread]:
    """``wait_for_fresh_scan`` in a daemon thread: a hang costs the thread, not the test run."""
    outcome: dict = {}

    def run() -> None:
        started = time.monotonic()
        try:
            outcome["scan"] = wait_for_fresh_scan(timeout_s=timeout_s, settings=settings, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            outcome["error"] = exc
        outcome["elapsed"] = time.monotonic() - started

    thread = threading.Thread(target=run, name="wait-for-fresh-scan", daemon=True)
    thread.start()
    return outcome, thread


def assert_gave_up_in_time(outcome: dict, thread: threading.Thread, timeout_s: float, what: str) -> StaleScanError:
    thread.join(timeout_s + OVERRUN_S + 5)  # the join is only the test's own deadline; the bound is checked below
    assert not thread.is_alive(), f"wait_for_fresh_scan still waiting {timeout_s + OVERRUN_S + 5:g}s in ({what})"
    assert "scan" not in outcome, f"{what}: returned {outcome['scan']}"
    error = outcome["error"]
    assert isinstance(error, StaleScanError), f"{what}: {type(error).__name__}: {error}"
    assert outcome["elapsed"] <= timeout_s + OVERRUN_S, f"{what}: gave up after {outcome['elapsed']:.1f}s"
    return error


def private_settings(cluster, **overrides: object) -> DaemonSettings:
    return DaemonSettings(
        hazelcast_members=",".join(cluster.members),
        hazelcast_cluster_name=cluster.cluster_name,
        health_timeout_s=2,
        **overrides,
    )


def test_frozen_member_neither_hangs_the_wait_while_reading_nor_when_connecting(local_cluster_factory):
    """SIGSTOP: the member accepts TCP and never answers; the client's own futures would wait for ever."""
    cluster = local_cluster_factory(1)
    pid = cluster.pid(0)
    assert pid is not None
    settings = private_settings(cluster, features_map=f"F_{uuid.uuid4().hex[:8]}")
    feeder = hazelcast.HazelcastClient(cluster_name=cluster.cluster_name, cluster_members=cluster.members,
                                       cluster_connect_timeout=30)
    try:
        put_latest(feeder, settings, 5, age_s=300)
    finally:
        feeder.shutdown()

    reads: list[float] = []

    def counting_clock() -> float:  # called once per read that found a scan
        reads.append(1.0)
        return time.time()

    timeout_s = 8.0
    outcome, thread = wait_in_thread(timeout_s, settings, max_age_s=30, poll_interval_s=0.2, clock=counting_clock)
    try:
        wait_for(lambda: len(reads) >= 2, timeout_s - 3, "two reads of the stale scan before the freeze")
        os.kill(pid, signal.SIGSTOP)
        error = assert_gave_up_in_time(outcome, thread, timeout_s, "frozen while connected")
        assert error.last_error is not None and settings.hazelcast_members[0] in error.last_error, error
        assert "earlier saw scan #5" in str(error)

        # A fresh client against the frozen member: the constructor alone would block until it thaws.
        outcome, thread = wait_in_thread(3.0, settings, max_age_s=30, poll_interval_s=0.2)
        error = assert_gave_up_in_time(outcome, thread, 3.0, "frozen before the wait")
        assert "not reachable" in str(error) or "did not answer" in str(error), error
        assert error.address == settings.hazelcast_members[0]
    finally:
        os.kill(pid, signal.SIGCONT)
    # thawed: the same call works again (the freeze left nothing behind that blocks it)
    assert wait_for_fresh_scan(max_age_s=400, timeout_s=30, settings=settings)["scan_number"] == 5


@pytest.mark.parametrize("timeout_s", [1.0, 4.0])
def test_wrong_cluster_name_gives_up_within_the_timeout_naming_it(hazelcast_cluster, timeout_s):
    """A member answers at the address, but refuses a client with another cluster name."""
    settings = DaemonSettings(hazelcast_members=",".join(hazelcast_cluster.members),
                              hazelcast_cluster_name="not-this-cluster", health_timeout_s=2)
    outcome, thread = wait_in_thread(timeout_s, settings, poll_interval_s=0.2)
    error = assert_gave_up_in_time(outcome, thread, timeout_s, "wrong cluster name")
    message = str(error)
    assert "\n" not in message
    assert "'not-this-cluster'" in message and hazelcast_cluster.members[0] in message, message
    assert error.last_error is not None and error.last_age_s is None
