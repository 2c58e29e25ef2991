"""What "newer" means, and what identifies a scan: the one place every comparison of two scans imports.

A scanner restarts and numbers again from 1, or numbers per day; its numbers say nothing across
such a restart. Its clock does: **a scan is newer than another when its timestamp (UTC) is later**,
whatever the numbers. So (docs/bridge.md "How scans are ordered and identified"):

* :func:`compare` orders two scans by timestamp only. Two scans that claim the same instant (to the
  microsecond) are *the same slot*: they compare equal, share a history key, and the first one the
  bridge pushed is kept (the second is logged, never written over it).
* :func:`history_key` is a scan's key in ``DOLPHIN_EIGEN_SCANS``: its UTC timestamp in **microseconds
  since the Unix epoch**, a Java ``long``. "The scans since T" is a key range; "scan N of today" is
  the key range of today plus the document's ``scan_number`` field.
* :func:`is_counter_reset`: a newer scan with a *lower* number means the scanner's counter started
  again (a restart, or midnight for a per-day counter): logged once, loudly; never a reason to restart.
* :func:`resolve_fold`: a naive local time in the hour that repeats in autumn (daylight saving ends)
  reads two ways; the scan's number, compared with the newest scan known, says which, so latest never
  jumps back an hour.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class ScanId:
    """What ordering needs of a scan: its time (tz-aware, UTC) and the scanner's number for it."""

    timestamp: datetime
    scan_number: int

    @property
    def key(self) -> int:
        return history_key(self.timestamp)

    def describe(self) -> str:
        """``#20 at 2024-05-01T12:00:00.000000Z``: both facts, for log lines."""
        from .document import format_timestamp

        return f"#{self.scan_number} at {format_timestamp(self.timestamp)}"


def history_key(timestamp: datetime) -> int:
    """The scan's key in history: microseconds since the Unix epoch of its UTC timestamp (a Java ``long``).

    Every ``datetime`` Python can hold fits (year 1 is about -6.2e16). A naive ``timestamp`` is UTC.
    """
    if timestamp.tzinfo is None:
        timestamp = timestamp.replace(tzinfo=UTC)
    return (timestamp - EPOCH) // _MICRO


def key_time(key: int) -> datetime:
    """The UTC instant a history key stands for (the inverse of :func:`history_key`)."""
    return EPOCH + timedelta(microseconds=key)


def compare(a: ScanId, b: ScanId) -> int:
    """-1 if ``a`` is older than ``b``, 1 if newer, 0 if both claim the same instant (the same slot).

    The one decision of order. Numbers never decide it: they start again.
    """
    ka, kb = a.key, b.key
    return (ka > kb) - (ka < kb)


def is_newer(candidate: ScanId, than: ScanId | None) -> bool:
    """True if ``candidate`` should replace ``than`` as the latest scan (anything beats nothing)."""
    return than is None or compare(candidate, than) > 0


def newest(scans: list[ScanId]) -> ScanId | None:
    """The newest of ``scans`` by :func:`compare`; of several claiming the same instant, the first given."""
    best: ScanId | None = None
    for scan in scans:
        if is_newer(scan, best):
            best = scan
    return best


def is_counter_reset(previous: ScanId | None, new: ScanId) -> bool:
    """True when ``new`` is newer than ``previous`` but numbered lower: the scanner's counter started again."""
    return previous is not None and compare(new, previous) > 0 and new.scan_number < previous.scan_number


def resolve_fold(first: datetime, second: datetime, scan_number: int, reference: ScanId | None) -> datetime:
    """Which reading of an ambiguous local time is meant: ``first`` (before the clocks went back) or ``second``.

    ``first``/``second`` are the two UTC instants a naive time in the repeated autumn hour can mean;
    ``reference`` is the newest scan the bridge knows. The scan is in the second pass when the newest
    scan is already at or past the first reading and was numbered lower (this one came after it);
    else the first (the first pass itself, or a late file of it: numbered lower than the newest).
    A counter that starts again inside that very hour is read as the first pass (told apart by nothing).
    """
    if reference is not None and reference.timestamp >= first and scan_number > reference.scan_number:
        return second
    return first
