"""Fencing's pure helpers: which epoch a latest document speaks for, and the claim a new active writes."""

from __future__ import annotations

import json

import pytest
from hazelcast.core import HazelcastJsonValue

from scan_bridge.fencing import claimed, writer_epoch, writer_host

pytestmark = pytest.mark.unit  # pure: see pyproject.toml markers


def doc(**bridge: object) -> str:
    return json.dumps({"scan_number": 7, "timestamp": "2026-12-02T05:00:00.000000Z", "assets": ["Ä"], "bridge": bridge})


def test_the_epoch_of_a_document_is_its_writers_or_its_claimers() -> None:
    assert writer_epoch(None) == 0
    assert writer_epoch(doc(pushed_at="x")) == 0  # a single machine's document: no epoch
    assert writer_epoch(doc(host="a", epoch=3)) == 3
    assert writer_epoch(HazelcastJsonValue(doc(host="a", epoch=3, fenced_by_epoch=5))) == 5
    assert writer_epoch(doc(epoch=True)) == 0 and writer_epoch("not json") == 0 and writer_epoch("[1]") == 0
    assert writer_host(doc(host="a", epoch=3)) == "a" and writer_host(doc()) is None


def test_a_claim_adds_the_epoch_and_changes_nothing_else() -> None:
    original = json.loads(doc(host="a", epoch=3, pushed_at="x"))
    after = json.loads(claimed(doc(host="a", epoch=3, pushed_at="x"), 4))
    assert after["bridge"] == {**original["bridge"], "fenced_by_epoch": 4}
    assert {k: v for k, v in after.items() if k != "bridge"} == {k: v for k, v in original.items() if k != "bridge"}
    assert writer_epoch(claimed(doc(), 2)) == 2
    with pytest.raises(ValueError):
        claimed("[1, 2]", 2)
