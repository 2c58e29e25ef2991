"""The failover lease against a real member: the compare-and-set it relies on, and two machines' electors.

Also the reason it is a map entry at all: the open-source member refuses the CP subsystem.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import hazelcast
import pytest
from hazelcast.errors import HazelcastError

from scan_bridge.lease import LeaseRecord, Role
from scan_bridge.lease_elector import LeaseElector
from scan_bridge.lease_store import LeaseStore
from scan_bridge.settings import HazelcastSettings
from tests.conftest import ClusterInfo
from tests.support import wait_for

LEASE_S, RENEW_S = 2.0, 0.5


@pytest.fixture
def client(hazelcast_cluster: ClusterInfo) -> Any:
    c = hazelcast.HazelcastClient(**hazelcast_cluster.client_config())
    yield c
    c.shutdown()


@pytest.fixture
def settings(hazelcast_cluster: ClusterInfo, unique_names: dict[str, str]) -> HazelcastSettings:
    return HazelcastSettings(
        hazelcast_members=hazelcast_cluster.members,
        hazelcast_cluster_name=hazelcast_cluster.cluster_name,
        features_map=unique_names["features_map"],
    )


def test_the_open_source_member_has_no_cp_subsystem(client: Any) -> None:
    """Why the lease is a map entry (docs/high-availability.md): FencedLock is Enterprise-only since 5.5."""
    with pytest.raises(HazelcastError, match="CP subsystem is an Enterprise feature"):
        client.cp_subsystem.get_lock("scan-bridge-lease").blocking().lock()


def test_swap_is_a_compare_and_set(client: Any, unique_names: dict[str, str]) -> None:
    store = LeaseStore(client.get_map(unique_names["features_map"]), "lease", 5.0)
    assert store.read() is None
    a1, b1 = LeaseRecord(1, "a", 0, "t"), LeaseRecord(1, "b", 0, "t")
    assert store.swap(None, a1) == (True, a1.to_json())
    assert store.swap(None, b1) == (False, a1.to_json())  # a second put_if_absent loses, and says who won
    a2 = LeaseRecord(1, "a", 1, "t")
    assert store.swap(a1.to_json(), a2) == (True, a2.to_json())
    b2 = LeaseRecord(2, "b", 0, "t")
    assert store.swap(a1.to_json(), b2) == (False, a2.to_json())  # stale expectation: refused
    assert store.read() == a2.to_json()
    store.erase()
    assert store.swap(a2.to_json(), b2) == (False, None)


def holds_for(check: Any, seconds: float) -> None:
    """``check()`` stays true for ``seconds`` (looked at every 0.1 s)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert check()
        time.sleep(0.1)


class Machine:
    """One machine's elector, and what it reported."""

    def __init__(self, settings: HazelcastSettings, name: str) -> None:
        self.events: list[tuple[str, Any]] = []
        self.changed = threading.Event()
        self.elector = LeaseElector(
            settings, "scan_bridge_lease", name, lease_s=LEASE_S, renew_s=RENEW_S,
            on_took_over=lambda epoch, reason: self._note("took-over", epoch),
            on_stepped_down=lambda reason: self._note("stepped-down", reason),
        )

    def took_over(self) -> bool:
        return bool(self.events) and self.events[-1][0] == "took-over"

    def _note(self, kind: str, detail: Any) -> None:
        self.events.append((kind, detail, time.monotonic()))
        self.changed.set()


def test_a_standby_takes_over_a_lost_active_within_the_lease_and_a_release_at_once(settings: HazelcastSettings) -> None:
    a = Machine(settings, "machine-a")
    a.elector.start()
    wait_for(lambda: a.elector.role is Role.ACTIVE, timeout=15, what="machine a to take the free lease")
    assert a.elector.epoch == 1 and a.elector.may_write()
    b = Machine(settings, "machine-b")
    b.elector.start()
    # Past one lease and a look: a renews, b never takes over (an observation window, not a wait for something).
    holds_for(lambda: b.elector.role is Role.STANDBY and a.elector.role is Role.ACTIVE, LEASE_S + 2 * RENEW_S)

    lost_at = time.monotonic()
    a.elector.stop(release=False)  # machine a is lost: no release, no more renewals
    # The role turns ACTIVE a moment before the elector has claimed latest and called on_took_over:
    # wait for the call, which is what starts a bridge.
    wait_for(lambda: b.took_over(), timeout=LEASE_S + 10, what="machine b to take over")
    assert b.elector.role is Role.ACTIVE
    took = b.events[-1]
    assert took[:2] == ("took-over", 2)
    assert took[2] - lost_at <= LEASE_S + 2 * RENEW_S + 1.0, f"took {took[2] - lost_at:.2f} s"
    assert b.elector.may_write()

    c = Machine(settings, "machine-c")  # a replacement machine joins as standby
    c.elector.start()
    holds_for(lambda: c.elector.role is Role.STANDBY and b.elector.role is Role.ACTIVE, LEASE_S + RENEW_S)
    released_at = time.monotonic()
    b.elector.stop(release=True)  # a clean stop hands over at once
    wait_for(lambda: c.took_over(), timeout=10, what="machine c to take the released lease")
    assert c.elector.role is Role.ACTIVE
    assert c.events[-1][:2] == ("took-over", 3)
    assert c.events[-1][2] - released_at < LEASE_S, "a released lease is taken without waiting for it to lapse"
    c.elector.stop()


def test_deploy_status_reads_who_is_active(settings: HazelcastSettings) -> None:
    """`deploy.py status`'s Failover line: nothing without a lease (one machine), else holder, since, epoch."""
    from scan_bridge.lease_store import describe_lease, read_lease

    assert read_lease(settings, "scan_bridge_lease", 10.0) is None
    assert describe_lease(None) is None
    machine = Machine(settings, "machine-a")
    machine.elector.start()
    wait_for(lambda: machine.elector.role is Role.ACTIVE, timeout=15, what="machine a to take the free lease")
    line = describe_lease(read_lease(settings, "scan_bridge_lease", 10.0))
    assert line is not None and line.startswith(f"machine-a active since {machine.elector.since} (lease epoch 1")
    machine.elector.stop(release=True)
    assert "no machine active: lease released at epoch 1" in (describe_lease(read_lease(settings, "scan_bridge_lease", 10.0)) or "")
    assert describe_lease("junk").startswith("lease entry unreadable")  # type: ignore[union-attr]


def test_a_lease_lost_from_the_map_restarts_above_the_epoch_on_latest(settings: HazelcastSettings, client: Any) -> None:
    """The lease entry vanished (deleted, or lost with a partition) while latest still speaks for epoch 5:
    the machine that takes the lease raises its epoch above 5 and claims latest, instead of holding a lease
    under which its own bridge would be fenced at once."""
    from hazelcast.core import HazelcastJsonValue

    from scan_bridge.fencing import writer_epoch

    features = client.get_map(settings.features_map).blocking()
    document = '{"scan_number": 1, "timestamp": "2026-12-02T05:00:00.000000Z", "bridge": {"host": "machine-x", "epoch": 5}}'
    features.set(settings.latest_key, HazelcastJsonValue(document))
    machine = Machine(settings, "machine-a")
    machine.elector.start()
    try:
        wait_for(lambda: machine.events, timeout=15, what="machine a to take the lease")
        assert machine.events[0][:2] == ("took-over", 6)
        assert writer_epoch(features.get(settings.latest_key)) == 6
        assert LeaseRecord.from_json(features.get("scan_bridge_lease")).epoch == 6
    finally:
        machine.elector.stop()
