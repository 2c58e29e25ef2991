"""The failover lease's rules (pure): who takes over when, renewal, stepping down, epochs.

Time is passed in (monotonic seconds), as in the supervisor's tests; the entry is a dict with a
compare-and-set, the one property of Hazelcast's map that the rules rely on (tested against a real
member in test_lease_store.py).
"""

from __future__ import annotations

import pytest

from scan_bridge.lease import (
    LeaseKeeper,
    LeaseRecord,
    Release,
    Renew,
    Role,
    StepDown,
    Take,
    Wait,
    check_timing,
)

pytestmark = pytest.mark.unit  # pure: see pyproject.toml markers

LEASE, RENEW = 5.0, 1.0


def held(epoch: int, holder: str | None = "a", renewal: int = 0) -> str:
    return LeaseRecord(epoch, holder, renewal, "2026-12-02T05:00:00Z").to_json()


def keeper(me: str = "b") -> LeaseKeeper:
    return LeaseKeeper(me, LEASE, RENEW)


# -- the record ---------------------------------------------------------------------------------------


def test_record_round_trips_and_has_one_text() -> None:
    record = LeaseRecord(3, "host-a", 7, "2026-12-02T05:00:00Z")
    assert LeaseRecord.from_json(record.to_json()) == record
    assert record.to_json() == LeaseRecord(3, "host-a", 7, "2026-12-02T05:00:00Z").to_json()  # CAS compares text


@pytest.mark.parametrize(
    ("text", "says"),
    [("nope", "not a lease record"), ('{"holder": "a"}', "not a lease record"), ('{"epoch": -1, "holder": "a"}', "epoch"),
     ('{"epoch": true, "holder": "a"}', "epoch"), ('{"epoch": 1, "holder": 5}', "holder"),
     ('{"epoch": 1, "holder": "a", "renewal": "x"}', "renewal")],
)
def test_a_bad_record_says_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        LeaseRecord.from_json(text)


def test_timing_must_leave_room_for_a_missed_renewal() -> None:
    check_timing(5.0, 1.0)
    check_timing(2.0, 1.0)
    with pytest.raises(ValueError, match="at least twice"):
        check_timing(3.0, 2.0)
    with pytest.raises(ValueError, match="fence re-check"):
        check_timing(1.5, 0.5)
    with pytest.raises(ValueError, match="positive"):
        check_timing(5.0, 0.0)
    with pytest.raises(ValueError, match="non-empty name"):
        LeaseKeeper("", LEASE, RENEW)


# -- a standby ----------------------------------------------------------------------------------------


def test_an_absent_lease_is_taken_at_once_with_epoch_one() -> None:
    step = keeper().observed(None, 100.0)
    assert isinstance(step, Take)
    assert step.expected is None and step.record.epoch == 1 and step.record.holder == "b"


def test_an_absent_lease_is_taken_above_every_epoch_seen() -> None:
    """A cluster restarted empty loses the entry; the next epoch must still beat the last one fenced with."""
    k = keeper()
    k.observed(held(4), 100.0)
    k.note_epoch(9)  # e.g. the epoch in latest_eigen_scan's bridge block
    step = k.observed(None, 101.0)
    assert isinstance(step, Take) and step.record.epoch == 10


def test_a_renewing_holder_is_never_taken_over() -> None:
    k = keeper()
    for second in range(30):
        step = k.observed(held(2, renewal=second), 100.0 + second)
        assert isinstance(step, Wait)
        assert step.until <= 100.0 + second + RENEW  # looks again within one renewal interval
    assert k.role is Role.STANDBY


def test_a_holder_that_stops_renewing_is_taken_over_after_the_lease() -> None:
    k = keeper()
    assert isinstance(k.observed(held(2, renewal=5), 100.0), Wait)
    assert isinstance(k.observed(held(2, renewal=5), 104.9), Wait)
    step = k.observed(held(2, renewal=5), 105.0)
    assert isinstance(step, Take)
    assert step.expected == held(2, renewal=5)  # compare-and-set against exactly what was seen
    assert step.record.epoch == 3 and "did not renew the lease for 5.0 s" in step.reason


def test_a_released_lease_is_taken_at_once() -> None:
    step = keeper().observed(held(6, holder=None), 100.0)
    assert isinstance(step, Take) and step.record.epoch == 7 and "released" in step.reason


def test_an_unreadable_entry_counts_as_a_holder_that_never_renews() -> None:
    k = keeper()
    assert isinstance(k.observed("garbage", 100.0), Wait)
    step = k.observed("garbage", 105.0)
    assert isinstance(step, Take) and step.expected == "garbage" and step.record.epoch == 1


# -- the active -----------------------------------------------------------------------------------------


def active(at: float = 100.0, epoch: int = 3) -> LeaseKeeper:
    k = keeper()
    k.observed(None, at)
    k.took(LeaseRecord(epoch, "b", 0, "since").to_json(), at)
    return k


def test_the_active_renews_every_interval_with_a_new_value() -> None:
    k = active()
    assert k.role is Role.ACTIVE and k.epoch == 3
    assert k.due(100.5) == Wait(101.0)
    step = k.due(101.0)
    assert isinstance(step, Renew) and step.expected == k.mine and step.record.renewal == 1 and step.record.epoch == 3
    k.sending(101.0)
    k.renewed(step.record.to_json(), 101.0)
    assert k.mine == step.record.to_json()
    assert isinstance(k.due(102.0), Renew)


def test_the_active_may_write_until_one_interval_before_a_standby_may_take_over() -> None:
    k = active(100.0)
    k.sending(101.0)
    k.renewed(LeaseRecord(3, "b", 1, "since").to_json(), 101.0)  # answered at any time: counts from the send
    assert k.valid_until == 101.0 + LEASE - RENEW
    assert k.may_write(104.99) and not k.may_write(105.0)


def test_unanswered_renewals_step_down_when_the_lease_may_have_lapsed() -> None:
    k = active(100.0)
    now = 100.0
    while True:
        now += RENEW
        step = k.due(now)
        if isinstance(step, StepDown):
            break
        assert isinstance(step, Renew)
        k.sending(now)
        k.renew_unanswered(step.record.to_json(), now, now + 0.5)
    assert now == 100.0 + LEASE - RENEW
    assert "no renewal of the lease confirmed for 4.0 s" in step.reason
    assert k.role is Role.STANDBY and not k.may_write(now) and k.epoch is None


def test_a_refused_renewal_steps_down_and_names_the_new_holder() -> None:
    k = active()
    step = k.renew_refused(held(4, holder="c"), 101.0)
    assert isinstance(step, StepDown) and "c holds the lease now (epoch 4)" in step.reason
    assert k.role is Role.STANDBY and not k.may_write(101.0)
    assert isinstance(k.observed(held(4, holder="c"), 102.0), Wait)  # and waits out the new holder like anyone


def test_a_refused_renewal_that_finds_our_unanswered_renewal_stays_active() -> None:
    """The renewal got no answer in time but was written: the next renewal's compare-and-set is refused
    because the entry holds that newer value of ours; that is not a lost lease."""
    k = active(100.0)
    first = k.due(101.0)
    assert isinstance(first, Renew)
    k.sending(101.0)
    k.renew_unanswered(first.record.to_json(), 101.0, 102.0)
    second = k.due(102.0)
    assert isinstance(second, Renew) and second.expected == k.mine  # still expects the older value
    k.sending(102.0)
    step = k.renew_refused(first.record.to_json(), 102.1)
    assert not isinstance(step, StepDown) and k.role is Role.ACTIVE
    assert k.mine == first.record.to_json() and k.valid_until == 101.0 + LEASE - RENEW


def test_a_vanished_entry_is_a_lost_lease() -> None:
    step = active().renew_refused(None, 101.0)
    assert isinstance(step, StepDown) and "gone" in step.reason


def test_release_hands_over_with_the_same_epoch() -> None:
    k = active(epoch=5)
    release = k.release()
    assert isinstance(release, Release) and release.expected == k.mine
    assert release.record.holder is None and release.record.epoch == 5
    assert keeper("c").observed(release.record.to_json(), 0.0) == Take(
        release.record.to_json(), LeaseRecord(6, "c", 0, ""), "lease released by its last holder (epoch 5)"
    )
    assert keeper().release() is None


# -- two machines over one compare-and-set entry ------------------------------------------------------------


class Entry:
    """The map entry: put_if_absent and replace_if_same, nothing else."""

    def __init__(self) -> None:
        self.value: str | None = None

    def cas(self, expected: str | None, new: str) -> bool:
        if self.value != expected:
            return False
        self.value = new
        return True


def drive(k: LeaseKeeper, entry: Entry, now: float) -> None:
    """One turn of a driver (what lease_elector does with real calls)."""
    if k.role is Role.STANDBY:
        step = k.observed(entry.value, now)
        if isinstance(step, Take):
            text = step.record.to_json()
            if entry.cas(step.expected, text):
                k.took(text, now)
            else:
                k.observed(entry.value, now)
        return
    step = k.due(now)
    if isinstance(step, Renew):
        k.sending(now)
        text = step.record.to_json()
        if entry.cas(step.expected, text):
            k.renewed(text, now)
        else:
            k.renew_refused(entry.value, now)


def test_two_machines_never_write_at_once_and_a_lost_one_is_replaced_within_the_bound() -> None:
    entry = Entry()
    a, b = LeaseKeeper("a", LEASE, RENEW), LeaseKeeper("b", LEASE, RENEW)
    t = 0.0
    drive(a, entry, t)
    assert a.role is Role.ACTIVE and a.epoch == 1
    epochs = [1]
    alive = {"a": True, "b": True}
    lost_at: float | None = None
    while t < 60.0:
        t += 0.25
        if t == 10.0:  # machine a is lost: nobody drives it again
            alive["a"] = False
            lost_at = t
        if t == 30.0:  # a comes back (a new daemon, a new keeper) and b is lost
            a = LeaseKeeper("a", LEASE, RENEW)
            alive["a"], alive["b"] = True, False
            lost_at = t
        for name, k in (("a", a), ("b", b)):
            if alive[name]:
                drive(k, entry, t)
        writers = [k for k, up in ((a, alive["a"]), (b, alive["b"])) if up and k.may_write(t)]
        # a lost machine's keeper is frozen in time: it must not be able to write either, once lapsed
        frozen = [k for k, up in ((a, alive["a"]), (b, alive["b"])) if not up and k.valid_until is not None and t < k.valid_until]
        assert len(writers) + len(frozen) <= 1, f"two writers at {t}"
        for k, up in ((a, alive["a"]), (b, alive["b"])):
            if up and k.epoch is not None and k.epoch != epochs[-1]:
                assert k.epoch > epochs[-1]
                epochs.append(k.epoch)
                assert lost_at is not None and t - lost_at <= LEASE + RENEW, f"took {t - lost_at} s"
    assert epochs == [1, 2, 3]


def test_a_frozen_active_that_thaws_steps_down_at_its_first_look() -> None:
    entry = Entry()
    a, b = LeaseKeeper("a", LEASE, RENEW), LeaseKeeper("b", LEASE, RENEW)
    drive(a, entry, 0.0)
    for t in (0.5, 1.0, 1.5):
        drive(a, entry, t)
        drive(b, entry, t)
    # a frozen from 1.5 to 20 s: b takes over meanwhile
    t = 1.5
    while b.role is Role.STANDBY:
        t += 0.5
        drive(b, entry, t)
    assert b.epoch == 2 and not a.may_write(t)  # a's own clock says so as soon as it runs again
    step = a.due(20.0)
    assert isinstance(step, StepDown) and a.role is Role.STANDBY
    drive(a, entry, 20.0)
    assert a.role is Role.STANDBY and b.role is Role.ACTIVE
