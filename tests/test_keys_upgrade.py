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
