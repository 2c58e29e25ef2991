"""Fencing against a real member: two bridges' sinks, one with a stale lease epoch (failover, issue 12).

What must hold: every document names its machine and epoch; a new active claims latest_eigen_scan
on its first refresh, after which the old active's writes of it are refused (it raises Fenced and
latest never moves back); a refused compare-and-set that finds a newer scan leaves it in place.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import hazelcast
import pytest
from hazelcast.core import HazelcastJsonValue

from scan_bridge.document import encode_body
from scan_bridge.fencing import FENCE_RECHECK_S, Fenced
from scan_bridge.ordering import history_key
from scan_bridge.scanfile import ScanRecord
from scan_bridge.settings import HazelcastSettings
from scan_bridge.sink import ScanSink
from tests.conftest import ClusterInfo

T0 = datetime(2026, 12, 2, 5, 0, tzinfo=UTC)


def scan(n: int) -> ScanRecord:
    stamp = T0 + timedelta(seconds=n)
    body = encode_body(n, stamp, ["A", "B"], {"x": [float(n), 1.0]})
    return ScanRecord(path=Path(f"/data/scan_{n:06d}.arrow"), scan_number=n, timestamp=stamp, asset_count=2,
                      body_json=body, size_bytes=len(body), mtime=0.0)


@pytest.fixture
def settings(hazelcast_cluster: ClusterInfo) -> HazelcastSettings:
    suffix = uuid.uuid4().hex[:8]
    return HazelcastSettings(
        hazelcast_members=hazelcast_cluster.members, hazelcast_cluster_name=hazelcast_cluster.cluster_name,
        history_map=f"H_{suffix}", features_map=f"F_{suffix}", scan_topic="",
    )


@pytest.fixture
def view(hazelcast_cluster: ClusterInfo, settings: HazelcastSettings) -> Iterator[Any]:
    client = hazelcast.HazelcastClient(**hazelcast_cluster.client_config(), default_int_type="LONG")
    yield client
    client.shutdown()


@pytest.fixture
def sinks(settings: HazelcastSettings) -> Iterator[Any]:
    made: list[ScanSink] = []

    def make(epoch: int | None, machine: str) -> ScanSink:
        sink = ScanSink(settings, retention=1000, epoch=epoch, machine=machine)
        made.append(sink)
        return sink

    yield make
    for sink in made:
        sink.close()


def latest(view: Any, settings: HazelcastSettings) -> dict[str, Any]:
    return json.loads(view.get_map(settings.features_map).blocking().get(settings.latest_key).to_string())


def push(sink: ScanSink, *numbers: int) -> int | None:
    return sink.submit([scan(n) for n in numbers]).wait()


def test_every_document_names_its_machine_and_epoch(sinks: Any, view: Any, settings: HazelcastSettings) -> None:
    a = sinks(3, "machine-a")
    a.refresh()
    push(a, 1)
    push(a, 2, 3)
    history = view.get_map(settings.history_map).blocking()
    for n in (1, 2, 3):
        bridge = json.loads(history.get(history_key(T0 + timedelta(seconds=n))).to_string())["bridge"]
        assert (bridge["host"], bridge["epoch"]) == ("machine-a", 3)
    assert latest(view, settings)["scan_number"] == 3 and latest(view, settings)["bridge"]["epoch"] == 3
    a.heartbeat(connected=True, pushed_total=3, rejected_total=0).result()
    beat = json.loads(view.get_map(settings.features_map).blocking().get(settings.heartbeat_key).to_string())
    assert (beat["host"], beat["lease_epoch"]) == ("machine-a", 3)
    assert abs(beat["epoch"] - time.time()) < 60, "the heartbeat's own epoch field is still its time"


def test_a_stale_active_is_fenced_and_never_moves_latest(sinks: Any, view: Any, settings: HazelcastSettings) -> None:
    a = sinks(1, "machine-a")
    a.refresh()
    push(a, 1, 2)
    b = sinks(2, "machine-b")  # takes over: its first refresh claims latest for epoch 2
    b.refresh()
    claimed = latest(view, settings)
    assert claimed["scan_number"] == 2 and claimed["bridge"]["host"] == "machine-a"
    assert claimed["bridge"]["fenced_by_epoch"] == 2

    # The old active thaws with a newer scan in hand: no new scan came since the takeover, yet it is refused.
    with pytest.raises(Fenced, match="epoch 2 .*machine-a.*epoch 1 is over"):
        push(a, 3)
    assert latest(view, settings) == claimed
    push(b, 3, 4)
    assert (latest(view, settings)["scan_number"], latest(view, settings)["bridge"]["host"]) == (4, "machine-b")
    with pytest.raises(Fenced, match="machine-b"):
        push(a, 5)
    with pytest.raises(Fenced):
        a.refresh()
    now = latest(view, settings)
    assert (now["scan_number"], now["bridge"]["epoch"]) == (4, 2), "the stale writer never moved latest"


def test_a_refused_move_that_finds_a_newer_scan_leaves_it(sinks: Any, view: Any, settings: HazelcastSettings) -> None:
    """Latest moved behind our back to a newer scan (of an older epoch, so not a fence): ours must not replace it."""
    b = sinks(2, "machine-b")
    b.refresh()
    push(b, 1)
    newer = json.dumps({"scan_number": 9, "timestamp": (T0 + timedelta(seconds=9)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                        "bridge": {"host": "machine-a", "epoch": 1}})
    view.get_map(settings.features_map).blocking().set(settings.latest_key, HazelcastJsonValue(newer))
    assert push(b, 3) is None  # written to history, but latest did not move
    assert latest(view, settings)["scan_number"] == 9
    assert b.latest_number == 9
    push(b, 10)
    assert (latest(view, settings)["scan_number"], latest(view, settings)["bridge"]["host"]) == (10, "machine-b")


def test_without_an_epoch_documents_are_as_before(sinks: Any, view: Any, settings: HazelcastSettings) -> None:
    one = sinks(None, "ignored")
    one.refresh()
    push(one, 1)
    bridge = latest(view, settings)["bridge"]
    assert "epoch" not in bridge and "host" not in bridge


def test_a_thawed_active_finds_out_before_it_writes_anything(sinks: Any, view: Any, settings: HazelcastSettings) -> None:
    """Frozen (or idle) past FENCE_RECHECK_S while another machine took over: the next submit reads latest
    first and raises Fenced, so not even the history entry of the scan in hand is written."""
    a = sinks(1, "machine-a")
    a.refresh()
    push(a, 1)
    b = sinks(2, "machine-b")
    b.refresh()
    time.sleep(FENCE_RECHECK_S + 0.2)  # the pause itself is the condition under test (a frozen process), not a wait
    with pytest.raises(Fenced):
        a.submit([scan(2)])
    assert history_key(T0 + timedelta(seconds=2)) not in {int(k) for k in view.get_map(settings.history_map).blocking().key_set()}
