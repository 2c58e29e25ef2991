"""Who writes: the failover lease's rules, pure (no I/O, time passed in), so every rule is unit-tested.

The lease is one map entry in Hazelcast (see docs/high-availability.md for why not the CP
subsystem's ``FencedLock``: the open-source 5.7 member refuses every CP call). Its value is a small
JSON document, :class:`LeaseRecord`, and it only ever changes by compare-and-set
(``put_if_absent`` / ``replace_if_same``), so two machines can never both believe they moved it.

How a lapse is seen without comparing clocks: the entry has no time-to-live. The active machine
*renews* it every ``renew_s`` by replacing it with the same record and ``renewal + 1``; a standby
reads it every ``renew_s`` and notes, on its own monotonic clock, when it last saw the value
change. A value unchanged for ``lease_s`` is a holder that stopped renewing: the standby replaces
exactly that value (compare-and-set) with a record of its own and ``epoch + 1``. No two machines'
clocks are ever compared, only durations on one machine, and the entry never expires, so the epoch
survives every takeover and only ever grows.

Why the active stops first: a standby cannot see a value before it was written, so it takes over
at the earliest ``lease_s`` after the active *sent* its last successful renewal. The active counts
from that same send time and treats itself as lapsed ``renew_s`` earlier
(:attr:`LeaseKeeper.valid_until`), so with equal clock rates its own "may write" ends at least one
renewal interval before any standby's may begin. Writes that are already on their way when that
happens are what fencing (the epoch on ``latest_eigen_scan``, :mod:`scan_bridge.sink`) is for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from enum import Enum

from .fencing import FENCE_RECHECK_S

__all__ = [
    "DEFAULT_LEASE_S",
    "DEFAULT_RENEW_S",
    "LeaseKeeper",
    "LeaseRecord",
    "Release",
    "Renew",
    "Role",
    "StepDown",
    "Take",
    "Wait",
    "check_timing",
]

#: A holder unchanged this long has lapsed (seconds); with the defaults a standby writes ~6-8 s
#: after the active machine is lost (docs/high-availability.md, "Timing").
DEFAULT_LEASE_S = 5.0
#: How often the active renews and a standby looks (seconds).
DEFAULT_RENEW_S = 1.0


def check_timing(lease_s: float, renew_s: float) -> None:
    """ValueError unless ``0 < renew_s``, ``lease_s >= 2 * renew_s`` (room for one missed renewal) and
    ``lease_s >= 2 * FENCE_RECHECK_S`` (a bridge frozen long enough for a takeover re-checks before writing)."""
    if not renew_s > 0 or not lease_s > 0:
        raise ValueError(f"lease_s ({lease_s:g}) and lease_renew_s ({renew_s:g}) must be positive")
    if lease_s < 2 * FENCE_RECHECK_S:
        raise ValueError(
            f"lease_s ({lease_s:g}) must be at least {2 * FENCE_RECHECK_S:g} s: twice the bridge's fence re-check "
            f"interval ({FENCE_RECHECK_S:g} s), so a bridge frozen through a takeover re-checks before it writes"
        )
    if lease_s < 2 * renew_s:
        raise ValueError(
            f"lease_s ({lease_s:g}) must be at least twice lease_renew_s ({renew_s:g}): "
            "the active must be able to miss a renewal without losing the lease"
        )


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """The lease entry's value.

    ``epoch`` grows by one at every takeover and is what fencing compares; ``holder`` is the active
    machine's name (None once it released the lease on a clean stop, so a standby need not wait);
    ``renewal`` changes at every renewal, which is how standbys see the holder alive; ``since`` is
    when this epoch began (UTC ISO text, for operators only: no decision reads it).
    """

    epoch: int
    holder: str | None
    renewal: int = 0
    since: str = ""

    def to_json(self) -> str:
        """The stored text: compact, keys in a fixed order (compare-and-set compares the bytes)."""
        return json.dumps(
            {"epoch": self.epoch, "holder": self.holder, "renewal": self.renewal, "since": self.since},
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> LeaseRecord:
        """The record in ``text``, or ValueError saying what is wrong with it."""
        try:
            data = json.loads(text)
            epoch, holder, renewal = data["epoch"], data["holder"], data.get("renewal", 0)
        except (ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"lease entry is not a lease record ({exc}): {text[:80]!r}") from None
        if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"lease entry's epoch must be a non-negative integer, not {epoch!r}")
        if holder is not None and not isinstance(holder, str):
            raise ValueError(f"lease entry's holder must be text or null, not {holder!r}")
        if isinstance(renewal, bool) or not isinstance(renewal, int):
            raise ValueError(f"lease entry's renewal must be an integer, not {renewal!r}")
        return cls(epoch, holder, renewal, str(data.get("since", "")))


class Role(Enum):
    STANDBY = "standby"
    ACTIVE = "active"


# -- what the keeper asks its driver to do next ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Wait:
    """Nothing to do until ``until`` (monotonic seconds); then read the lease (standby) or ask again (active)."""

    until: float


@dataclass(frozen=True, slots=True)
class Take:
    """Compare-and-set the lease from ``expected`` (None: the entry is absent, so ``put_if_absent``) to ``record``."""

    expected: str | None
    record: LeaseRecord
    reason: str


@dataclass(frozen=True, slots=True)
class Renew:
    """Compare-and-set the lease from ``expected`` (our own last value) to ``record`` (``renewal + 1``)."""

    expected: str
    record: LeaseRecord


@dataclass(frozen=True, slots=True)
class Release:
    """Compare-and-set the lease from ``expected`` to ``record`` (no holder): a clean stop hands over at once."""

    expected: str
    record: LeaseRecord


@dataclass(frozen=True, slots=True)
class StepDown:
    """We are no longer active: stop writing now. ``reason`` says why, for the log and the event."""

    reason: str


Step = Wait | Take | Renew | Release | StepDown


class LeaseKeeper:
    """One machine's view of the lease, and what it should do next; ``now`` is always monotonic seconds.

    The driver (:mod:`scan_bridge.lease_elector`) reads and writes the entry and reports back:

    * standby: read the entry, :meth:`observed` says :class:`Wait` or :class:`Take`; after a Take,
      :meth:`took` (won) or :meth:`observed` again with what was there instead (lost the race);
    * active: :meth:`due` says :class:`Renew` (or :class:`StepDown` once the lease may have lapsed);
      after a Renew, :meth:`renewed`, :meth:`renew_refused` (someone else holds it: step down) or
      :meth:`renew_unanswered` (no answer in time: keep trying until :attr:`valid_until`).
    """

    def __init__(self, me: str, lease_s: float = DEFAULT_LEASE_S, renew_s: float = DEFAULT_RENEW_S) -> None:
        check_timing(lease_s, renew_s)
        if not me:
            raise ValueError("a machine needs a non-empty name to hold the lease")
        self.me = me
        self.lease_s = lease_s
        self.renew_s = renew_s
        self.role = Role.STANDBY
        #: The last value read or written, and since when (monotonic) it has been seen unchanged.
        self.seen: str | None = None
        self.seen_record: LeaseRecord | None = None
        self.seen_since: float | None = None
        #: The highest epoch ever seen: a takeover of an absent entry (a cluster restarted empty) goes above it.
        self.highest_epoch = 0
        #: Ours while active: the stored text and record, when the renewal that confirmed it was sent.
        self.mine: str | None = None
        self.record: LeaseRecord | None = None
        self.confirmed_sent_at: float | None = None
        self.last_sent_at: float | None = None
        #: Renewals sent without an answer (text -> sent at): one may have been written all the same.
        self.unanswered: dict[str, float] = {}

    # -- standby --------------------------------------------------------------------------------------

    def note_epoch(self, epoch: int) -> None:
        """An epoch seen elsewhere (the latest document's): the next takeover goes above it."""
        self.highest_epoch = max(self.highest_epoch, epoch)

    def observed(self, raw: str | None, now: float) -> Wait | Take:
        """The entry holds ``raw`` (None: absent). Take it when absent, released or unchanged for ``lease_s``."""
        if raw != self.seen or self.seen_since is None:
            self.seen, self.seen_since = raw, now
            try:
                self.seen_record = None if raw is None else LeaseRecord.from_json(raw)
            except ValueError:
                self.seen_record = None  # unreadable: treated as a holder that never renews
            if self.seen_record is not None:
                self.note_epoch(self.seen_record.epoch)
        if self.role is Role.ACTIVE:
            return Wait(now)  # the active's business is due(); an observation only updates what it knows
        if raw is None:
            return self._take(None, "no lease held")
        if self.seen_record is not None and self.seen_record.holder is None:
            return self._take(raw, f"lease released by its last holder (epoch {self.seen_record.epoch})")
        unchanged = now - self.seen_since
        if unchanged >= self.lease_s:
            holder = self.seen_record.holder if self.seen_record is not None else "an unreadable entry"
            return self._take(raw, f"{holder} did not renew the lease for {unchanged:.1f} s (lease {self.lease_s:g} s)")
        return Wait(min(self.seen_since + self.lease_s, now + self.renew_s))

    def _take(self, expected: str | None, reason: str) -> Take:
        epoch = self.highest_epoch + 1
        return Take(expected, LeaseRecord(epoch, self.me, 0, ""), reason)

    def took(self, stored: str, sent_at: float) -> None:
        """The compare-and-set of a :class:`Take` succeeded with ``stored`` (the text written, which may carry
        ``since``); it was sent at ``sent_at``."""
        record = LeaseRecord.from_json(stored)
        self.role = Role.ACTIVE
        self.record = record
        self.mine = stored
        self.seen, self.seen_record, self.seen_since = stored, record, sent_at
        self.note_epoch(record.epoch)
        self.confirmed_sent_at = sent_at
        self.last_sent_at = sent_at

    # -- active ---------------------------------------------------------------------------------------

    @property
    def epoch(self) -> int | None:
        """Our epoch while active, else None."""
        return self.record.epoch if self.role is Role.ACTIVE and self.record is not None else None

    @property
    def valid_until(self) -> float | None:
        """While active: until when we may write (monotonic). ``renew_s`` before a standby may take over."""
        if self.role is not Role.ACTIVE or self.confirmed_sent_at is None:
            return None
        return self.confirmed_sent_at + self.lease_s - self.renew_s

    def may_write(self, now: float) -> bool:
        """Active, and the lease cannot have lapsed yet in any standby's eyes."""
        until = self.valid_until
        return until is not None and now < until

    def due(self, now: float) -> Wait | Renew | StepDown:
        """The active's next step: renew when due, step down once the lease may have lapsed unconfirmed."""
        if self.role is not Role.ACTIVE or self.record is None or self.mine is None:
            return Wait(now + self.renew_s)
        until = self.valid_until
        assert until is not None and self.last_sent_at is not None
        if now >= until:
            return self._step_down(f"no renewal of the lease confirmed for {now - (self.confirmed_sent_at or now):.1f} s")
        next_renewal = self.last_sent_at + self.renew_s
        if now >= next_renewal:
            return Renew(self.mine, replace(self.record, renewal=self.record.renewal + 1))
        return Wait(min(next_renewal, until))

    def sending(self, now: float) -> None:
        """A renewal is about to be sent (the next is due ``renew_s`` after this, answered or not)."""
        self.last_sent_at = now

    def renewed(self, stored: str, sent_at: float) -> None:
        """The renewal sent at ``sent_at`` succeeded (``stored`` written): we hold the lease ``lease_s`` from then."""
        if self.role is not Role.ACTIVE:
            return  # we stepped down meanwhile; the next standby look sees our renewal and waits it out
        self.record = LeaseRecord.from_json(stored)
        self.mine = stored
        self.seen, self.seen_record, self.seen_since = stored, self.record, sent_at
        self.confirmed_sent_at = max(self.confirmed_sent_at or sent_at, sent_at)
        self.unanswered.clear()

    def renew_refused(self, current: str | None, now: float) -> Wait | StepDown:
        """The entry no longer holds our value: another machine took the lease (or it vanished).

        Unless it holds a renewal of ours that got no answer in time but was written all the same:
        then that is our value, confirmed as of when it was sent, and we stay active.
        """
        if self.role is Role.ACTIVE and current is not None and current in self.unanswered:
            self.renewed(current, self.unanswered.pop(current))
            self.unanswered.clear()
            return self.due(now)
        record = None
        try:
            record = None if current is None else LeaseRecord.from_json(current)
        except ValueError:
            pass
        if current is None:
            why = "the lease entry is gone (a cluster restarted empty?)"
        elif record is not None:
            why = f"{record.holder or 'nobody'} holds the lease now (epoch {record.epoch})"
        else:
            why = "the lease entry holds something else"
        step = self._step_down(f"lost the lease: {why}")
        self.observed(current, now)
        return step

    def renew_unanswered(self, sent: str, sent_at: float, now: float) -> Wait | Renew | StepDown:
        """No answer in time to the renewal ``sent`` at ``sent_at``: still active until :attr:`valid_until`."""
        if self.role is not Role.ACTIVE:
            return Wait(now + self.renew_s)
        self.unanswered[sent] = sent_at
        return self.due(now)

    def release(self) -> Release | None:
        """On a clean stop: hand the lease over at once (no holder, same epoch); None when not active."""
        if self.role is not Role.ACTIVE or self.record is None or self.mine is None:
            return None
        return Release(self.mine, replace(self.record, holder=None, renewal=self.record.renewal + 1))

    def _step_down(self, reason: str) -> StepDown:
        self.role = Role.STANDBY
        self.record = None
        self.mine = None
        self.confirmed_sent_at = None
        self.unanswered.clear()
        return StepDown(reason)
