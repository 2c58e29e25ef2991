"""A rolling, compacted health history, so the artifact answers "was it healthy last night?".

The daemon checks every 30 s for months; keeping every check is neither useful nor affordable (the
artifact is a database row, rewritten up to every few minutes). So the history keeps, for the last
``keep`` (24 h by default):

* one summary per UTC hour: number of checks, count per status, median and worst data age, scans
  seen, state changes and restarts. Only the open hour keeps its individual data ages (for an exact
  median); when a check lands in a later hour the earlier hours are reduced to their summary;
* the state changes and events themselves, newest ``max_changes`` only. The per-hour ``changes``
  count still counts every change, so a flapping night stays visible after the list was capped.

Everything here is pure: no Prefect, no I/O, no clock. Time is passed in (tz-aware; a naive
datetime is taken as UTC rather than rejected, because a history must never bring the daemon down).
``to_json``/``from_json`` let a restarted daemon continue from its previous artifact; ``from_json``
never raises and keeps whatever part of its input is sound.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from .health_status import SEVERITY_ORDER

__all__ = ["SEVERITY", "Change", "HealthHistory", "HourSummary", "severity"]

HOUR = timedelta(hours=1)
JSON_VERSION = 1

#: Status names, worst last: :data:`~scan_bridge.health_status.SEVERITY_ORDER` (which says why), as
#: the strings the history stores (it also reads histories a previous daemon wrote).
SEVERITY: tuple[str, ...] = tuple(status.value for status in SEVERITY_ORDER)

# Bounds that keep memory, JSON and markdown small whatever the callers pass in.
MAX_AGES_PER_HOUR = 720  # one check every 5 s; beyond that the open hour is sampled (see _add_age)
MAX_STATUS_CHARS = 60
MAX_NOTE_CHARS = 100
MAX_STATUS_KINDS = 12  # distinct status names per hour; more is garbage, folded into "other"


def severity(status: str) -> int:
    """Rank of a status (its first word: "stale (scanner silent)" is "stale"); unknown ranks worst.

    An unknown status is something we do not understand, which is no reason for reassurance.
    """
    word = _status_word(status)
    return SEVERITY.index(word) if word in SEVERITY else len(SEVERITY)


def _status_word(status: str) -> str:
    parts = str(status).strip().split(None, 1)
    return parts[0].lower() if parts else "unknown"


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _hour_of(at: datetime) -> datetime:
    return at.replace(minute=0, second=0, microsecond=0)


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _short(value: float | None) -> str:
    """Numbers for the markdown: one decimal at most, no trailing ".0", "—" for None."""
    if value is None:
        return "—"
    if isinstance(value, int):
        return str(value)
    text = f"{value:.1f}"
    return text.removesuffix(".0")


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell (a "|" or a newline would break the table)."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _compact(value: float) -> float | int:
    """3 instead of 3.0 in the JSON: the open hour's ages are a hundred-odd numbers."""
    value = round(value, 1)
    return int(value) if value.is_integer() else value


@dataclass
class HourSummary:
    """One UTC hour. ``ages`` is not None while the hour is open (its median is not final yet)."""

    start: datetime
    checks: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    worst_age_s: float | None = None
    median_age_s: float | None = None
    first_scan: int | None = None
    last_scan: int | None = None
    # Scans = sum of forward steps of the scan number between consecutive checks, not last - first:
    # it survives a scanner whose numbering restarts and it keeps the scans that arrived between the
    # last check of the previous hour and the first of this one.
    scans: int = 0
    restarts: int = 0
    changes: int = 0
    changes_dropped: int = 0  # changes of this hour evicted by the max_changes cap
    ages: list[float] | None = None
    age_stride: int = 1  # every age_stride-th age is kept once MAX_AGES_PER_HOUR was reached
    ages_seen: int = 0

    @property
    def healthy_fraction(self) -> float | None:
        return None if self.checks == 0 else self.statuses.get("healthy", 0) / self.checks

    @property
    def median(self) -> float | None:
        return _median(self.ages) if self.ages is not None else self.median_age_s

    def worst_status(self) -> str | None:
        return max(self.statuses, key=severity) if self.statuses else None

    def _add_age(self, age: float) -> None:
        # Stride sampling keeps the whole hour evenly represented: halving the list and the rate
        # together, instead of dropping new samples (which would make the median the hour's start).
        if self.ages is None:
            return  # a late check for an hour already closed: counts and worst only
        if self.ages_seen % self.age_stride == 0:
            self.ages.append(age)
            if len(self.ages) >= MAX_AGES_PER_HOUR:
                self.ages = self.ages[::2]
                self.age_stride *= 2
        self.ages_seen += 1

    def close(self) -> None:
        if self.ages is not None:
            self.median_age_s = _median(self.ages)
            self.ages = None

    def to_json(self) -> dict[str, Any]:
        """Nones and zero counts left out: the JSON rides along in every version of the artifact.

        An age of 0 (a scan fresher than 0.05 s) or scan #0 is a measurement, so these are kept whenever known:
        dropping them turned a perfectly fresh hour into "no data age" (``?``) on reading back.
        """
        data: dict[str, Any] = {"hour": f"{self.start:%Y-%m-%dT%H:%MZ}", "checks": self.checks}
        if self.statuses:
            data["statuses"] = dict(self.statuses)
        known = {
            "age_median": _round(self.median_age_s),
            "age_worst": _round(self.worst_age_s),
            "scan_first": self.first_scan,
            "scan_last": self.last_scan,
        }
        data.update({k: v for k, v in known.items() if v is not None})
        optional = {
            "scans": self.scans,
            "restarts": self.restarts,
            "changes": self.changes,
            "dropped": self.changes_dropped,
        }
        data.update({k: v for k, v in optional.items() if v})
        if self.ages is not None:
            data["ages"] = [_compact(a) for a in self.ages]
            if self.age_stride != 1:
                data["age_stride"] = self.age_stride
        return data

    @classmethod
    def from_json(cls, data: Any) -> HourSummary | None:
        """One hour from JSON, or None if its start is unusable; bad fields fall back to empty."""
        if not isinstance(data, dict):
            return None
        start = _parse_time(data.get("hour"))
        if start is None or start != _hour_of(start):
            return None
        hour = cls(start=start)
        hour.checks = _count(data.get("checks"))
        statuses = data.get("statuses")
        if isinstance(statuses, dict):
            for name, n in list(statuses.items())[:MAX_STATUS_KINDS]:
                if isinstance(name, str) and name and _count(n) > 0:
                    hour.statuses[name[:MAX_STATUS_CHARS]] = _count(n)
        hour.median_age_s = _number(data.get("age_median"))
        hour.worst_age_s = _number(data.get("age_worst"))
        hour.first_scan = _integer(data.get("scan_first"))
        hour.last_scan = _integer(data.get("scan_last"))
        hour.scans = _count(data.get("scans"))
        hour.restarts = _count(data.get("restarts"))
        hour.changes = _count(data.get("changes"))
        hour.changes_dropped = _count(data.get("dropped"))
        ages = data.get("ages")
        if isinstance(ages, list):
            good = [a for a in (_number(x) for x in ages[:MAX_AGES_PER_HOUR]) if a is not None]
            hour.ages = good
            stride = _count(data.get("age_stride"))
            hour.age_stride = stride if stride >= 1 and stride & (stride - 1) == 0 else 1
            hour.ages_seen = len(good) * hour.age_stride
        return hour


@dataclass
class Change:
    """One state change or event, as shown in the artifact."""

    at: datetime
    status: str
    note: str = ""
    data_age_s: float | None = None
    scan_number: int | None = None

    def to_json(self) -> list[Any]:
        """``[at, status, data_age_s, scan_number, note]``: a list, as there may be a hundred of them."""
        return [_stamp(self.at), self.status, _round(self.data_age_s), self.scan_number, self.note]

    @classmethod
    def from_json(cls, data: Any) -> Change | None:
        if not isinstance(data, list) or len(data) < 2:
            return None
        at = _parse_time(data[0])
        status = data[1]
        if at is None or not isinstance(status, str):
            return None
        age, scan, note = (list(data[2:5]) + [None, None, None])[:3]
        return cls(
            at=at,
            status=status[:MAX_STATUS_CHARS],
            note=note[:MAX_NOTE_CHARS] if isinstance(note, str) else "",
            data_age_s=_number(age),
            scan_number=_integer(scan),
        )


def _stamp(at: datetime) -> str:
    return f"{at:%Y-%m-%dT%H:%M:%SZ}"


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return _utc(datetime.fromisoformat(value))
    except ValueError:
        return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _count(value: Any) -> int:
    number = _integer(value)
    return number if number is not None and number > 0 else 0


class HealthHistory:
    """The last ``keep`` of health checks as hourly summaries plus the newest ``max_changes`` changes.

    Pruning is relative to the newest time recorded (not to a clock): an hour is dropped once it
    ends ``keep`` or more before it, a change once it is older than that.

    ``max_changes`` defaults to 60, not 100: a listed change costs ~70 B of markdown and the hour
    table ~2 KB, so 100 rows put a flapping day at 8.5 KB, over the 8 KB aim; 60 rows are the last
    two hours of a state flipping every 2 minutes, and the hour table's Changes column covers the rest.
    """

    def __init__(self, keep: timedelta = timedelta(hours=24), max_changes: int = 60) -> None:
        self.keep = max(keep, HOUR)
        self.max_changes = max(1, max_changes)
        self.hours: dict[datetime, HourSummary] = {}  # by hour start (UTC)
        self.changes: list[Change] = []  # oldest first
        self.newest: datetime | None = None
        # The previous check that saw a scan number: where the next check's forward step starts.
        self._prev_scan: tuple[datetime, int] | None = None

    # -- recording --------------------------------------------------------------------------------

    def record_check(self, at: datetime, status: str, data_age_s: float | None, scan_number: int | None) -> None:
        """One health check, into the summary of its UTC hour."""
        at = _utc(at)
        if not self._advance(at):
            return
        hour = self._hour(at)
        for earlier in self.hours.values():
            if earlier.start < hour.start:
                earlier.close()
        hour.checks += 1
        name = _status_word(status)
        if name not in hour.statuses and len(hour.statuses) >= MAX_STATUS_KINDS:
            name = "other"
        hour.statuses[name] = hour.statuses.get(name, 0) + 1
        age = _number(data_age_s)
        if age is not None:
            hour.worst_age_s = age if hour.worst_age_s is None else max(hour.worst_age_s, age)
            hour._add_age(age)
        scan = _integer(scan_number)
        if scan is not None:
            if hour.first_scan is None:
                hour.first_scan = scan
            hour.last_scan = scan
            prev = self._prev_scan
            # Only steps from the previous check in this or the previous hour: scans made while
            # nobody was checking are not pinned on the hour in which checking resumed.
            if prev is None or prev[0] <= at:
                if prev is not None and scan > prev[1] and at - prev[0] <= HOUR:
                    hour.scans += scan - prev[1]
                self._prev_scan = (at, scan)

    def record_change(
        self,
        at: datetime,
        status: str,
        note: str = "",
        data_age_s: float | None = None,
        scan_number: int | None = None,
    ) -> None:
        """A state change ("stale (scanner silent)") or an event ("restart: <reason>", "gave up")."""
        at = _utc(at)
        if not self._advance(at):
            return
        self._hour(at).changes += 1
        change = Change(
            at=at,
            status=" ".join(str(status).split())[:MAX_STATUS_CHARS],
            note=" ".join(str(note).split())[:MAX_NOTE_CHARS],
            data_age_s=_number(data_age_s),
            scan_number=_integer(scan_number),
        )
        if self.changes and at < self.changes[-1].at:  # a clock that stepped back: keep the list sorted
            self.changes.append(change)
            self.changes.sort(key=lambda c: c.at)
        else:
            self.changes.append(change)
        self._prune()

    def record_restart(self, at: datetime) -> None:
        """A restart of the bridge, counted in its hour."""
        at = _utc(at)
        if self._advance(at):
            self._hour(at).restarts += 1

    def _advance(self, at: datetime) -> bool:
        """Move the newest time forward and prune; False if ``at`` is already outside the window."""
        if self.newest is None or at > self.newest:
            self.newest = at
            self._prune()
        return at > self.newest - self.keep

    def _hour(self, at: datetime) -> HourSummary:
        start = _hour_of(at)
        hour = self.hours.get(start)
        if hour is None:
            hour = self.hours[start] = HourSummary(start=start, ages=[])
        return hour

    def _prune(self) -> None:
        if self.newest is None:
            return
        cutoff = self.newest - self.keep
        for start in [s for s in self.hours if s + HOUR <= cutoff]:
            del self.hours[start]
        self.changes = [c for c in self.changes if c.at > cutoff]
        excess = len(self.changes) - self.max_changes
        if excess > 0:
            for change in self.changes[:excess]:
                hour = self.hours.get(_hour_of(change.at))
                if hour is not None:
                    hour.changes_dropped += 1
            del self.changes[:excess]

    # -- persistence ------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-able data; the open hour carries its ages so a restart keeps its median exact."""
        data: dict[str, Any] = {
            "version": JSON_VERSION,
            "newest": None if self.newest is None else _stamp(self.newest),
            "hours": [self.hours[s].to_json() for s in sorted(self.hours)],
            "changes": [c.to_json() for c in self.changes],
        }
        if self._prev_scan is not None:
            data["prev_scan"] = [_stamp(self._prev_scan[0]), self._prev_scan[1]]
        return data

    @classmethod
    def from_json(
        cls, data: Any, keep: timedelta = timedelta(hours=24), max_changes: int = 60
    ) -> HealthHistory:
        """The history ``to_json`` gave, pruned to ``keep``/``max_changes``; never raises.

        Anything unrecognisable (not a dict, another version) gives an empty history; within a
        recognised document each hour and each change is taken or skipped on its own.
        """
        history = cls(keep=keep, max_changes=max_changes)
        try:
            if not isinstance(data, dict) or data.get("version") != JSON_VERSION:
                return history
            history._load(data)
        except Exception:  # noqa: BLE001  a history is a convenience; losing it must not stop the daemon
            return cls(keep=keep, max_changes=max_changes)
        return history

    def _load(self, data: dict[str, Any]) -> None:
        hours = [h for h in map(HourSummary.from_json, _items(data.get("hours"))) if h is not None]
        changes = [c for c in map(Change.from_json, _items(data.get("changes"))) if c is not None]
        times = [h.start for h in hours] + [c.at for c in changes]
        newest = _parse_time(data.get("newest"))
        if newest is not None:
            times.append(newest)
        if not times:
            return
        self.newest = max(times)
        for hour in hours:
            self.hours[hour.start] = hour
        newest_start = max(self.hours) if self.hours else None
        for hour in self.hours.values():
            if hour.start != newest_start:
                hour.close()  # only the newest hour can still be open
        self.changes = sorted(changes, key=lambda c: c.at)
        prev = data.get("prev_scan")
        if isinstance(prev, list) and len(prev) == 2:
            at, scan = _parse_time(prev[0]), _integer(prev[1])
            if at is not None and scan is not None:
                self._prev_scan = (at, scan)
        self._prune()

    # -- rendering --------------------------------------------------------------------------------

    def render_markdown(self, now: datetime) -> str:
        """The two sections of the artifact: hours (newest first, gaps folded) and the changes."""
        now = _utc(now)
        top = max(now, self.newest) if self.newest is not None else now
        cutoff = top - self.keep
        window = f"{self.keep.total_seconds() / 3600:g} hours"
        lines = [
            f"### Last {window}, by hour (UTC)",
            "",
            "| Hour | Checks | Healthy % | Not healthy (worst first) | Data age s median / worst | Scans | Changes | Restarts |",
            "|---|---|---|---|---|---|---|---|",
        ]
        lines += self._hour_rows(_hour_of(cutoff), _hour_of(top))
        lines += ["", f"### State changes, last {window} (newest first)", ""]
        shown = [c for c in self.changes if c.at > cutoff]
        if not shown:
            lines.append("_None._")
        else:
            lines += ["| When (UTC) | Status | Data age s | Scan | Note |", "|---|---|---|---|---|"]
            day = None
            for change in reversed(shown):
                if change.at.date() != day:
                    day = change.at.date()
                    lines.append(f"| **{day.isoformat()}** | | | | |")
                lines.append(
                    f"| {change.at:%H:%M:%S} | {_cell(change.status)} | {_short(change.data_age_s)} "
                    f"| {_short(change.scan_number)} | {_cell(change.note)} |"
                )
        dropped = sum(h.changes_dropped for h in self.hours.values() if h.start + HOUR > cutoff)
        if dropped:
            note = f"{dropped} older changes in this window not listed (newest {self.max_changes} kept)"
            lines += ["", f"_{note}; the Changes column counts them all._"]
        return "\n".join(lines)

    def _hour_rows(self, first: datetime, last: datetime) -> Iterable[str]:
        gap_end: datetime | None = None  # newest-first walk: the open gap's end (exclusive)
        start = last
        while start >= first:
            hour = self.hours.get(start)
            if hour is not None and hour.checks == 0 and hour.restarts == 0:
                hour = None
            if hour is None:
                if gap_end is None:
                    gap_end = start + HOUR
            else:
                if gap_end is not None:
                    yield from self._gap_row(start + HOUR, gap_end, last)
                    gap_end = None
                yield self._hour_row(hour)
            start -= HOUR
        if gap_end is not None:
            yield from self._gap_row(first, gap_end, last)

    @staticmethod
    def _gap_row(start: datetime, end: datetime, last: datetime) -> Iterable[str]:
        if end > last:  # the gap reaches the hour in progress
            if start == last:
                return  # only the hour in progress, which has not had its first check yet
            until = "now"
        elif end.date() == start.date() or end == datetime.combine(end.date(), datetime.min.time(), UTC):
            until = f"{end:%H:%M}"
        else:
            until = f"{end:%m-%d %H:%M}"
        yield f"| {start:%m-%d %H:%M}–{until} | no checks | | | | | | |"

    @staticmethod
    def _hour_row(hour: HourSummary) -> str:
        fraction = hour.healthy_fraction
        bad = sorted((s for s in hour.statuses if s != "healthy"), key=lambda s: (-severity(s), s))
        worst = ", ".join(f"{s} {hour.statuses[s]}" for s in bad) or "—"
        return (
            f"| {hour.start:%m-%d %H:%M} | {hour.checks} | {_short(None if fraction is None else 100 * fraction)} "
            f"| {_cell(worst)} | {_short(hour.median)} / {_short(hour.worst_age_s)} "
            f"| {hour.scans} | {hour.changes} | {hour.restarts} |"
        )


def _items(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
