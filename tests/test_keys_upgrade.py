"""History written by a bridge with 32-bit keys, then trimmed and read by one with long keys (issue 16)."""

from __future__ import annotations

import uuid

import hazelcast
from hazelcast import predicate

from scan_bridge.document import HISTORY_KEY_INT_TYPE


def test_int_keys_of_an_older_bridge_are_trimmed_by_a_long_cutoff(hazelcast_cluster):
    name = f"H_{uuid.uuid4().hex[:8]}"
    old = hazelcast.HazelcastClient(**hazelcast_cluster.client_config())  # default_int_type INT, as before
    new = hazelcast.HazelcastClient(**hazelcast_cluster.client_config(), default_int_type=HISTORY_KEY_INT_TYPE)
    try:
        old.get_map(name).blocking().put_all({n: "old" for n in range(1, 11)})
        history = new.get_map(name).blocking()
        history.put_all({n: "new" for n in range(11, 21)})
        assert {int(k) for k in history.key_set()} == set(range(1, 21))  # by value, whatever the type
        history.remove_all(predicate.less("__key", 15))  # the bridge's trim, with a long cutoff
        assert {int(k) for k in history.key_set()} == set(range(15, 21))
        assert history.get(20) == "new" and history.get(5) is None
    finally:
        old.shutdown()
        new.shutdown()


def test_number_keys_of_a_bridge_before_issue_14_move_to_time_keys(hazelcast_cluster):
    """Upgrade without losing history: the new bridge's first refresh re-keys every scan by its time, once."""
    import json
    from datetime import UTC, datetime, timedelta

    from hazelcast.core import HazelcastJsonValue

    from scan_bridge.ordering import history_key
    from scan_bridge.settings import HazelcastSettings
    from scan_bridge.sink import ScanSink

    t0 = datetime(2026, 3, 24, 12, 0, tzinfo=UTC)
    suffix = uuid.uuid4().hex[:8]
    settings = HazelcastSettings(
        hazelcast_members=hazelcast_cluster.members,
        hazelcast_cluster_name=hazelcast_cluster.cluster_name,
        history_map=f"H_{suffix}",
        features_map=f"F_{suffix}",
        scan_topic="",
    )

    def doc(n: int) -> HazelcastJsonValue:
        stamp = (t0 + timedelta(seconds=n)).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
        return HazelcastJsonValue(json.dumps({"scan_number": n, "timestamp": stamp, "asset_count": 0}))

    old = hazelcast.HazelcastClient(**hazelcast_cluster.client_config())  # INT keys: the 32-bit era
    new = hazelcast.HazelcastClient(**hazelcast_cluster.client_config(), default_int_type=HISTORY_KEY_INT_TYPE)
    try:
        old.get_map(settings.history_map).blocking().put_all({n: doc(n) for n in range(1, 6)})
        history = new.get_map(settings.history_map).blocking()
        history.put_all({n: doc(n) for n in range(6, 11)})  # long number keys: the bridge just before issue 14
        sink = ScanSink(settings, retention=1000)
        try:
            keys = sink.refresh()
        finally:
            sink.close()
        expected = {history_key(t0 + timedelta(seconds=n)): n for n in range(1, 11)}
        assert keys == set(expected)
        assert {int(k) for k in history.key_set()} == set(expected), "every scan kept, under its time key"
        for key, n in expected.items():
            assert json.loads(history.get(key).to_string())["scan_number"] == n
    finally:
        old.shutdown()
        new.shutdown()
