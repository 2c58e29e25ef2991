"""Is the data in Hazelcast fresh, and if not, whose fault is it: the bridge's or the scanner's?

The daemon asks this every 30 s for months and acts on the answer, so the answer must tell apart
the cases that call for different actions:

* **stale because the bridge is stuck** (a newer, complete scan file sits on disk that Hazelcast does
  not have, or the bridge's heartbeat stopped): restarting the bridge helps;
* **stale because the scanner is silent** (nothing newer on disk, heartbeat fresh): restarting the
  bridge would only burn the restart budget;
* **error** (Hazelcast did not answer in time): the bridge reconnects by itself;
* **down** (the bridge process is not running): only the daemon knows that, so it passes it in; the
  check never guesses it.

``bridge_stuck`` is reported beside the status, independently of the data's age: a SIGSTOPped
bridge must be restarted before the data it last pushed turns stale.

The module is three layers: :func:`classify` is pure (an :class:`Observation` in, a
:class:`FreshnessReport` out) so every rule is tested without a cluster or a clock; :func:`probe_disk`
looks at the newest scan files; :class:`FreshnessChecker` reads Hazelcast with hard deadlines and
keeps one client open across checks. :func:`check_hazelcast_data_freshness` is the one-shot form::

    python -c "from scan_bridge.health import check_hazelcast_data_freshness; print(check_hazelcast_data_freshness())"
    python -m scan_bridge.health [--json]
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, tzinfo
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .discovery import newest_files, scan_number_from_name
from .document import DEFAULT_MAX_FILE_BYTES, decode_metadata, parse_scan_number, parse_timestamp
from .hzcall import CLOSE_DEADLINE_S, CallTimedOut, StartedClient, wait_future
from .logs import printable
from .ordering import ScanId, compare, is_counter_reset, is_newer
from .settings import DaemonSettings

log = logging.getLogger(__name__)

__all__ = [
    "DiskFile",
    "FreshnessChecker",
    "FreshnessReport",
    "HealthStatus",
    "Observation",
    "StaleCause",
    "Thresholds",
    "check_hazelcast_data_freshness",
    "classify",
    "probe_disk",
    "scan_id_of_file",
    "scan_number_of_file",
]


class HealthStatus(str, Enum):
    """How fresh the data is (HEALTHY/WARNING/STALE) or why we cannot tell (DOWN/ERROR/MISSING)."""

    HEALTHY = "healthy"
    WARNING = "warning"
    STALE = "stale"
    DOWN = "down"
    ERROR = "error"
    MISSING = "missing"


class StaleCause(str, Enum):
    """Why data is stale; decides whether a restart can help."""

    BRIDGE_STUCK = "bridge stuck"
    SCANNER_SILENT = "scanner silent"
    BRIDGE_BUSY = "bridge busy"  # newer files on disk, and a fresh heartbeat written between files: catching up


class Thresholds(BaseModel):
    """The numbers the classification compares against (defaults: the design note's)."""

    model_config = ConfigDict(frozen=True)

    warn_after_s: float = Field(default=30.0, gt=0)
    stale_after_s: float = Field(default=60.0, gt=0)
    heartbeat_stale_after_s: float = Field(default=15.0, gt=0)
    newer_file_grace_s: float = Field(default=10.0, ge=0)
    clock_skew_tolerance_s: float = Field(default=2.0, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.warn_after_s > self.stale_after_s:
            raise ValueError(f"warn_after_s ({self.warn_after_s}) must not exceed stale_after_s ({self.stale_after_s})")
        return self

    @classmethod
    def from_settings(cls, settings: DaemonSettings) -> Thresholds:
        """The daemon's configured thresholds."""
        return cls(
            warn_after_s=settings.warn_after_s,
            stale_after_s=settings.stale_after_s,
            heartbeat_stale_after_s=settings.heartbeat_stale_after_s,
            newer_file_grace_s=settings.newer_file_grace_s,
            clock_skew_tolerance_s=settings.clock_skew_tolerance_s,
        )


class DiskFile(BaseModel):
    """One scan file as seen on disk: enough to compare it with what Hazelcast holds."""

    model_config = ConfigDict(frozen=True)

    path: str
    scan_number: int | None  # None: neither the name nor the file's metadata told
    mtime: float  # epoch seconds
    timestamp: datetime | None = None  # the scan's time (UTC), read with the scanner's zone; None: unreadable

    @property
    def scan_id(self) -> ScanId | None:
        return None if self.timestamp is None or self.scan_number is None else ScanId(self.timestamp, self.scan_number)


class Observation(BaseModel):
    """Everything one check saw, raw: the input of :func:`classify`.

    ``latest`` and ``heartbeat`` are the decoded JSON documents (None when the key is absent); any
    other type (a string that was not JSON, a list) is reported as an unreadable document.
    """

    checked_at: datetime
    where: str = "latest_eigen_scan"  # for messages: which key in which map
    hazelcast_error: str | None = None  # set when Hazelcast could not be read; latest/heartbeat are then unknown
    latest: Any = None
    heartbeat: Any = None
    newest_file: DiskFile | None = None  # the newest scan file on disk, complete or not
    newest_complete_file: DiskFile | None = None  # the newest one unmodified for at least the grace
    disk_error: str | None = None
    bridge_running: bool | None = None  # None: the caller does not know (a standalone check)
    # Seconds Hazelcast has answered this checker again after it did not (None: no outage seen). The
    # bridge is not judged until it has answered for the heartbeat threshold: right after a frozen
    # or restarted member, the heartbeat and the unpushed files tell of the outage, not of the bridge.
    hazelcast_answering_s: float | None = None


class FreshnessReport(BaseModel):
    """What an operator reads: the verdict, one line saying why, and the numbers behind it.

    Ages are seconds before ``checked_at``. ``data_age_s`` is negative when the scan's timestamp is
    ahead of this host's clock; ``clock_skew_s`` then says by how much.
    """

    status: HealthStatus
    cause: StaleCause | None = None  # set only when status is STALE
    message: str
    checked_at: datetime
    bridge_running: bool | None = None
    # The bridge looks stuck, whatever the data's age (a stopped heartbeat, or a complete file it did not push).
    bridge_stuck: bool = False
    stuck_reason: str | None = None
    heartbeat_stale: bool = False
    # latest_eigen_scan
    data_age_s: float | None = None
    scan_number: int | None = None
    scan_timestamp: datetime | None = None
    asset_count: int | None = None
    bridge_lag_s: float | None = None  # the bridge's own file-to-push lag for that scan
    clock_skew_s: float | None = None
    # progression since the previous check
    scans_since_previous: int | None = None
    scans_per_minute: float | None = None
    # scan_bridge_heartbeat
    heartbeat_age_s: float | None = None
    heartbeat_pid: int | None = None
    heartbeat_host: str | None = None
    heartbeat_pushed_total: int | None = None  # scans this bridge process has pushed since it started
    heartbeat_rejected_total: int | None = None
    heartbeat_busy: bool = False  # fresh, and written by a bridge working through files (a catch-up)
    # the disk
    newest_on_disk: int | None = None
    newest_on_disk_path: str | None = None
    newest_on_disk_age_s: float | None = None
    unpushed_file: str | None = None  # a complete file newer than Hazelcast's scan
    unpushed_scan_number: int | None = None
    # the scanner's counter started again (from the bridge's heartbeat, or seen between two checks)
    counter_reset: str | None = None
    disk_error: str | None = None
    hazelcast_error: str | None = None

    def __str__(self) -> str:
        return self.message


# --------------------------------------------------------------------------------------------------
# Classification (pure)


def _age(now: datetime, then: datetime) -> float:
    return (now - then).total_seconds()


def _seconds(value: float) -> str:
    return f"{value:.1f}s"


def _int_or_none(value: Any) -> int | None:
    try:
        return parse_scan_number(value)
    except (ValueError, TypeError):
        return None


def _float_or_none(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _heartbeat_age(heartbeat: dict[str, Any], now: datetime) -> float | None:
    """Age from ``epoch`` (the bridge's time.time()), else from the ISO ``time``; None if neither reads."""
    epoch = _float_or_none(heartbeat.get("epoch"))
    if epoch is not None:
        return now.timestamp() - epoch
    try:
        return _age(now, parse_timestamp(heartbeat.get("time")))
    except (ValueError, TypeError):
        return None


def _scan_id(number: int | None, timestamp: datetime | None) -> ScanId | None:
    return None if number is None or timestamp is None else ScanId(timestamp, number)


def _progression(
    scan: ScanId | None, checked_at: datetime, previous: FreshnessReport | None
) -> tuple[int | None, float | None]:
    """Scans since the previous check, and per minute; None where the numbers cannot tell.

    Which scan is newer is :mod:`scan_bridge.ordering`'s call (time), not the numbers': a later scan
    with a lower number is a counter that started again, and the difference of numbers means nothing.
    """
    before = None if previous is None else _scan_id(previous.scan_number, previous.scan_timestamp)
    if before is None or scan is None:
        return None, None
    order = compare(scan, before)
    if order == 0:
        since = 0
    elif order < 0 or is_counter_reset(before, scan):  # a new, empty cluster refilled; or numbering from 1 again
        return None, None
    else:
        since = scan.scan_number - before.scan_number
    elapsed = _age(checked_at, previous.checked_at) if previous is not None else 0.0
    if elapsed <= 0:  # a clock step
        return since, None
    return since, since * 60.0 / elapsed


#: A counter reset is named in the report's message for this long after the bridge saw it (the
#: ``counter_reset`` field keeps the last one for as long as the bridge runs): a per-day counter
#: resets every midnight, and the message should not carry that all day.
RESET_NOTE_S = 600.0


def _recent_reset(heartbeat: Any, now: datetime) -> bool:
    reset = heartbeat.get("counter_reset") if isinstance(heartbeat, dict) else None
    if not isinstance(reset, dict):
        return True  # seen between two checks: it is recent by definition
    try:
        return _age(now, parse_timestamp(reset.get("seen_at"))) <= RESET_NOTE_S
    except (ValueError, TypeError):
        return False


def _reset_note(heartbeat: Any, scan: ScanId | None, previous: FreshnessReport | None) -> str | None:
    """The last counter reset: the bridge's heartbeat names it; else one seen between two checks."""
    reset = heartbeat.get("counter_reset") if isinstance(heartbeat, dict) else None
    if isinstance(reset, dict):
        return (
            f"scanner counter started again at {reset.get('to_timestamp')}: "
            f"#{reset.get('from_number')} ({reset.get('from_timestamp')}) then #{reset.get('to_number')}"
        )
    before = None if previous is None else _scan_id(previous.scan_number, previous.scan_timestamp)
    if scan is not None and is_counter_reset(before, scan):
        assert before is not None
        return f"scanner counter started again: #{before.scan_number} then #{scan.scan_number}"
    return None


def classify(
    observation: Observation, thresholds: Thresholds | None = None, previous: FreshnessReport | None = None
) -> FreshnessReport:
    """The verdict on one observation; pure, so every rule is testable without a cluster or a clock.

    Order of precedence: DOWN (the bridge is not running: the most actionable fact, and known without
    Hazelcast), ERROR (Hazelcast unreadable, or ``latest_eigen_scan`` not a readable scan document),
    MISSING (no ``latest_eigen_scan``), then the data's age: HEALTHY below ``warn_after_s``, WARNING
    up to and including ``stale_after_s``, STALE above.

    A scan timestamp more than ``clock_skew_tolerance_s`` in the future is WARNING ("clock skew +Ns"),
    not healthy: we cannot tell its age, and a clock that is off is worth an operator's look. Within
    the tolerance it counts as age 0 (normal jitter between hosts).

    ``bridge_stuck`` is independent of the status (except DOWN and ERROR, where it is False): the
    heartbeat is older than ``heartbeat_stale_after_s`` (or absent while a scan exists), or a file
    unmodified for ``newer_file_grace_s`` holds a newer scan than Hazelcast's (later by the scanner's
    time, :mod:`scan_bridge.ordering`; whatever its number), or any scan when Hazelcast has none yet. A STALE status gets cause BRIDGE_STUCK when ``bridge_stuck``,
    else SCANNER_SILENT.

    A fresh heartbeat with ``busy`` true was written between files of a long catch-up: a newer file
    on disk is then expected, not a sign of a stuck bridge (a restart would only start the catch-up
    over). STALE then gets cause BRIDGE_BUSY. A stale heartbeat is never busy: a bridge stuck in the
    middle of a catch-up stops beating like any other.
    """
    th = thresholds or Thresholds()
    now = observation.checked_at
    report: dict[str, Any] = {
        "checked_at": now,
        "bridge_running": observation.bridge_running,
        "hazelcast_error": observation.hazelcast_error,
        "disk_error": observation.disk_error,
    }

    newest = observation.newest_file
    if newest is not None:
        report.update(
            newest_on_disk=newest.scan_number,
            newest_on_disk_path=newest.path,
            newest_on_disk_age_s=now.timestamp() - newest.mtime,
        )

    def finish(status: HealthStatus, text: str, cause: StaleCause | None = None) -> FreshnessReport:
        head = status.value + (f" ({cause.value})" if cause is not None else "")
        return FreshnessReport(status=status, cause=cause, message=f"{head}: {text}", **report)

    disk_note = "" if observation.disk_error is None else f"; disk: {observation.disk_error}"

    if observation.hazelcast_error is not None:
        if observation.bridge_running is False:
            return finish(HealthStatus.DOWN, f"bridge process not running; Hazelcast: {observation.hazelcast_error}")
        return finish(HealthStatus.ERROR, observation.hazelcast_error + disk_note)

    # -- heartbeat
    heartbeat = observation.heartbeat
    heartbeat_age: float | None = None
    heartbeat_note: str
    report["heartbeat_busy"] = False
    if heartbeat is None:
        heartbeat_note = "no heartbeat"
    elif not isinstance(heartbeat, dict):
        heartbeat_note = "heartbeat unreadable"
    else:
        heartbeat_age = _heartbeat_age(heartbeat, now)
        report.update(
            heartbeat_age_s=heartbeat_age,
            heartbeat_pid=_int_or_none(heartbeat.get("pid")),
            heartbeat_host=heartbeat.get("host") if isinstance(heartbeat.get("host"), str) else None,
            heartbeat_pushed_total=_int_or_none(heartbeat.get("pushed_total")),
            heartbeat_rejected_total=_int_or_none(heartbeat.get("rejected_total")),
        )
        if heartbeat_age is None:
            heartbeat_note = "heartbeat without a readable time"
        else:
            pid = report["heartbeat_pid"]
            heartbeat_note = f"heartbeat {_seconds(heartbeat_age)} old" + (f" (pid {pid})" if pid is not None else "")
            if heartbeat.get("busy") is True and heartbeat_age <= th.heartbeat_stale_after_s:
                report["heartbeat_busy"] = True
                heartbeat_note += ", busy"
            # One member of several frozen: the bridge's pushes time out while this heartbeat reached
            # another member. Not stuck (a restart would wait on the same member): its unpushed files
            # are expected, as in a catch-up (chaos harness, issue 10: such a bridge was restarted).
            elif heartbeat.get("member_silent") is True and heartbeat_age <= th.heartbeat_stale_after_s:
                report["heartbeat_busy"] = True
                heartbeat_note += ", waiting for a member that does not answer"

    # -- latest scan
    latest = observation.latest
    latest_problem: str | None = None
    scan_number: int | None = None
    scan_timestamp: datetime | None = None
    if latest is not None:
        if not isinstance(latest, dict):
            latest_problem = f"{type(latest).__name__}, not a JSON object"
        else:
            scan_number = _int_or_none(latest.get("scan_number"))
            try:
                scan_timestamp = parse_timestamp(latest.get("timestamp"))
            except (ValueError, TypeError) as exc:
                latest_problem = f"timestamp: {exc}"
            bridge_block = latest.get("bridge")
            report.update(
                scan_number=scan_number,
                scan_timestamp=scan_timestamp,
                asset_count=_int_or_none(latest.get("asset_count")),
                bridge_lag_s=_float_or_none(bridge_block.get("lag_s")) if isinstance(bridge_block, dict) else None,
            )
    latest_id = _scan_id(scan_number, scan_timestamp)
    since, per_minute = _progression(latest_id, now, previous)
    report.update(scans_since_previous=since, scans_per_minute=per_minute)
    reset_note = _reset_note(heartbeat, latest_id, previous)
    report.update(counter_reset=reset_note)

    # -- is the bridge stuck? (independent of the data's age)
    stuck_reasons: list[str] = []
    busy_reason: str | None = None  # newer files unpushed, but the bridge says it is working through files
    heartbeat_stale = False
    answering = observation.hazelcast_answering_s
    recovering = answering is not None and answering < max(th.heartbeat_stale_after_s, th.newer_file_grace_s)
    if recovering:
        pass  # judged from the next checks on (see Observation.hazelcast_answering_s)
    elif heartbeat_age is not None:
        if heartbeat_age > th.heartbeat_stale_after_s:
            heartbeat_stale = True
            stuck_reasons.append(f"heartbeat {_seconds(heartbeat_age)} old (limit {th.heartbeat_stale_after_s:g}s)")
    elif latest is not None:
        heartbeat_stale = True
        stuck_reasons.append(f"{heartbeat_note} while a scan exists")

    complete = observation.newest_complete_file
    # An empty cluster (a member restarted alone comes back empty) is refilled by the bridge as soon
    # as its client reconnects, which can take a few seconds: an empty cluster alone is no sign of a
    # stuck bridge, only when it was already empty at the previous check.
    empty_since_previous = previous is not None and previous.status is HealthStatus.MISSING
    complete_id = complete.scan_id if complete is not None else None
    if (
        complete is not None
        and complete.scan_number is not None
        and (
            (latest is None and empty_since_previous)
            or (latest_id is not None and complete_id is not None and is_newer(complete_id, latest_id))  # ordering's call
        )
    ):
        has = f"Hazelcast has #{scan_number}" if latest is not None else "Hazelcast has no scan"
        unpushed = (
            f"{os.path.basename(complete.path)} (#{complete.scan_number}) complete on disk for "
            f"{_seconds(now.timestamp() - complete.mtime)}, {has}"
        )
        if report["heartbeat_busy"]:  # a catch-up in progress: restarting would only start it over
            busy_reason = f"bridge busy: {unpushed}"
        elif recovering:  # the outage hid these files; the bridge catches up as its client reconnects
            busy_reason = f"Hazelcast answers again since {_seconds(answering)}, the bridge catches up: {unpushed}"
        else:
            stuck_reasons.append(unpushed)
            report.update(unpushed_file=complete.path, unpushed_scan_number=complete.scan_number)

    bridge_stuck = bool(stuck_reasons) and observation.bridge_running is not False
    if bridge_stuck:
        report.update(bridge_stuck=True, stuck_reason="; ".join(stuck_reasons), heartbeat_stale=heartbeat_stale)
    stuck_note = f"; bridge stuck: {report['stuck_reason']}" if bridge_stuck else ""
    if not bridge_stuck:
        report.update(unpushed_file=None, unpushed_scan_number=None)

    scan_label = f"scan #{scan_number}" if scan_number is not None else "latest scan"

    if observation.bridge_running is False:
        known = ""
        if scan_timestamp is not None:
            report["data_age_s"] = _age(now, scan_timestamp)
            known = f"; {scan_label} is {_seconds(report['data_age_s'])} old"
        return finish(HealthStatus.DOWN, "bridge process not running" + known)

    if latest is None:
        return finish(HealthStatus.MISSING, f"no {observation.where} yet; {heartbeat_note}{stuck_note}{disk_note}")
    if latest_problem is not None or scan_timestamp is None:
        return finish(HealthStatus.ERROR, f"{observation.where} unreadable ({latest_problem})")

    age = _age(now, scan_timestamp)
    report["data_age_s"] = age
    if age < 0:
        report["clock_skew_s"] = -age

    detail = f"{scan_label} is {_seconds(age)} old"
    if report["asset_count"] is not None:
        detail += f" ({report['asset_count']} assets)"
    if since is not None:
        detail += f", {since:+d} scans since last check" + (
            f" ({per_minute:.1f}/min)" if per_minute is not None else ""
        )
    if not heartbeat_stale:  # else the stuck note says it
        detail += f"; {heartbeat_note}"
    if reset_note is not None and _recent_reset(heartbeat, now):
        detail += f"; {reset_note} (not a fault; no restart)"

    if age < -th.clock_skew_tolerance_s:
        return finish(
            HealthStatus.WARNING,
            f"clock skew +{-age:.1f}s: {scan_label} is stamped {-age:.1f}s in the future; "
            f"{heartbeat_note}{stuck_note}{disk_note}",
        )
    effective_age = max(age, 0.0)
    if effective_age < th.warn_after_s:
        return finish(HealthStatus.HEALTHY, detail + stuck_note + disk_note)
    if effective_age <= th.stale_after_s:
        return finish(HealthStatus.WARNING, detail + stuck_note + disk_note)
    if bridge_stuck:
        return finish(HealthStatus.STALE, f"{detail}; {report['stuck_reason']}{disk_note}", StaleCause.BRIDGE_STUCK)
    if busy_reason is not None:
        return finish(HealthStatus.STALE, f"{detail}; {busy_reason}{disk_note}", StaleCause.BRIDGE_BUSY)
    if newest is None:
        disk_state = "no scan files on disk" if observation.disk_error is None else "disk not readable"
    else:
        newest_age = _seconds(now.timestamp() - newest.mtime)
        disk_state = f"nothing newer on disk (newest {os.path.basename(newest.path)}, {newest_age} old)"
    return finish(HealthStatus.STALE, f"{detail}; {disk_state}{disk_note}", StaleCause.SCANNER_SILENT)


# --------------------------------------------------------------------------------------------------
# The disk


def scan_number_of_file(path: Path) -> int | None:
    """The scan number of one file: from its name, else from its Arrow schema (or first row).

    Reading the schema is cheap: the IPC file format's footer, or the stream's first message. The
    number may also be a column (the scan contract allows both); then the file is read the way the
    bridge reads it (validated, its decoded size bounded before decoding). Any problem
    (a file being written, not Arrow) gives None: the caller then cannot compare, and says nothing.
    """
    number = scan_number_from_name(path)
    if number is not None:
        return number
    import pyarrow as pa  # late: only for names without a number

    try:
        with pa.OSFile(str(path), "rb") as source:
            reader: Any
            try:
                reader = pa.ipc.open_file(source)
            except pa.ArrowInvalid:  # not the file format: the stream format, or not Arrow
                source.seek(0)
                reader = pa.ipc.open_stream(source)
            metadata = decode_metadata(reader.schema.metadata)
            if "scan_number" in metadata:
                return parse_scan_number(metadata["scan_number"])
            column = "scan_number" in reader.schema.names
    except (pa.ArrowException, OSError, ValueError, TypeError):
        return None
    if column:  # decoding data: only through the bridge's reader (validated, its size bounded before decoding)
        from .scanfile import ScanFileIncomplete, ScanFileRejected, read_table

        try:
            values = read_table(path, DEFAULT_MAX_FILE_BYTES).column("scan_number")
            return parse_scan_number(values[0].as_py()) if len(values) else None
        except (ScanFileIncomplete, ScanFileRejected, ValueError):
            return None
    return None


def scan_id_of_file(path: Path, zone: tzinfo = UTC) -> ScanId | None:
    """The scan's number and time (read with the scanner's ``zone``) through the bridge's own reader; None if not a valid scan (yet).

    An ambiguous local time (the repeated autumn hour) is read as its first occurrence: the check
    compares with a tolerance of its own (the grace), and the bridge settles such times by number.
    """
    from .scanfile import ScanFileIncomplete, ScanFileRejected, read_scan

    try:
        record = read_scan(path, DEFAULT_MAX_FILE_BYTES, zone=zone)
    except (ScanFileIncomplete, ScanFileRejected):
        return None
    return record.scan_id


#: How many complete files (newest by modification time first) the check reads to find the newest
#: *scan* among them: a late, older file copied in last must not hide a newer scan written just before.
COMPLETE_COMPARED = 5
#: How many of the newest files the probe may look at to find complete ones. It must cover every file
#: younger than the grace: 20 did not at 5 scans/s (50 files in a 10 s grace), so no complete file was
#: found and a bridge that did not push was called "scanner silent" (chaos harness, issue 10). Files
#: younger than the grace are only stat'ed, and the listing is bounded by this many paths in memory.
DISK_LOOK_AT = 2000


def probe_disk(
    root: Path, grace_s: float, now: float | None = None, look_at: int = DISK_LOOK_AT, zone: tzinfo = UTC
) -> tuple[DiskFile | None, DiskFile | None]:
    """(newest scan file, newest *complete* scan) under ``root``.

    The first is the file modified last (complete or not: what the scanner is doing). The second is
    the newest scan by :mod:`scan_bridge.ordering` (the scanner's time, with the scanner's ``zone``)
    among the first :data:`COMPLETE_COMPARED` complete files, newest modified first. Complete means
    unmodified for ``grace_s``: a file still being written keeps a fresh mtime. We look past the
    newest file because a scanner writing every few seconds always has a file younger than the
    grace; ``look_at`` bounds how far (the listing is newest-first and lazy, see discovery).
    """
    now = time.time() if now is None else now
    newest: DiskFile | None = None
    complete_files: list[DiskFile] = []
    for path in newest_files(root, look_at):
        try:
            mtime = path.stat().st_mtime
        except OSError:
            continue
        complete = now - mtime >= grace_s
        scan = scan_id_of_file(path, zone) if complete else None  # a file still being written is not read
        number = scan.scan_number if scan is not None else scan_number_of_file(path)
        entry = DiskFile(path=str(path), scan_number=number, mtime=mtime, timestamp=scan.timestamp if scan else None)
        if newest is None:
            newest = entry
        if complete:
            complete_files.append(entry)
            if len(complete_files) >= COMPLETE_COMPARED:
                break
    best: DiskFile | None = complete_files[0] if complete_files else None
    for entry in complete_files:
        scan = entry.scan_id
        if scan is not None and (best is None or best.scan_id is None or is_newer(scan, best.scan_id)):
            best = entry
    return newest, best


# --------------------------------------------------------------------------------------------------
# Hazelcast, with deadlines


T = TypeVar("T")


class _OneAtATime:
    """Runs a call in a daemon thread, one at a time, so a hung call (a dead network mount, a member
    that accepts TCP but never answers) costs one thread, not one per check."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._pending: concurrent.futures.Future[Any] | None = None

    def submit(self, fn: Callable[[], T]) -> concurrent.futures.Future[T] | None:
        """The call's future; None while the previous call is still running."""
        if self._pending is not None and not self._pending.done():
            return None
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn())
            except BaseException as exc:  # noqa: BLE001 - handed to the waiter
                future.set_exception(exc)

        threading.Thread(target=run, name=self._name, daemon=True).start()
        self._pending = future
        return future


def _decode(value: Any) -> Any:
    """A map value as a Python object: HazelcastJsonValue and JSON text decoded; undecodable text kept as is."""
    if value is None:
        return None
    loads = getattr(value, "loads", None)
    if callable(loads):
        try:
            return loads()
        except ValueError:
            return getattr(value, "to_string", lambda: str(value))()
    if isinstance(value, (bytes, bytearray)):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class FreshnessChecker:
    """Checks freshness repeatedly over one Hazelcast client; nothing it does outlasts its timeout.

    The daemon checks every 30 s for months, so the client stays open between checks. Every wait
    is bounded by ``settings.health_timeout_s`` (one deadline for connect and read together), and
    bounded by us, not by the client: measured with client 5.7.0, a member that accepts TCP but does
    not answer (SIGSTOPped) made the client's constructor hang (10 minutes, until we killed it)
    despite ``cluster_connect_timeout=3``, and a ``get`` on an open connection to it hang (over 20 s;
    ``invocation_timeout`` only counts between retries of failed invocations, and the client's
    heartbeat timeout is 60 s by default, 15 s in ``client_config``). So the client starts with
    ``async_start=True`` and we wait for its CONNECTED event ourselves, and we wait on each read's
    future with a deadline. After any failure the client is shut down (a few ms, even against a
    frozen member) and the next check starts a fresh one.
    """

    def __init__(
        self,
        settings: DaemonSettings | None = None,
        *,
        thresholds: Thresholds | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings if settings is not None else DaemonSettings()
        self.thresholds = thresholds or Thresholds.from_settings(self.settings)
        self._clock = clock
        self._client: Any = None
        self._client_ready: threading.Event | None = None
        self._started: StartedClient | None = None
        self._disk = _OneAtATime("freshness-disk-probe")
        self._lock = threading.Lock()
        self.last_report: FreshnessReport | None = None
        self._outage = False  # Hazelcast did not answer the last check
        self._answering_since: float | None = None  # when it answered again after an outage

    # -- public ------------------------------------------------------------------------------------

    @property
    def where(self) -> str:
        """Which map on which cluster, for messages."""
        s = self.settings
        return f"{s.features_map} at {','.join(s.hazelcast_members)} (cluster {s.hazelcast_cluster_name!r})"

    def observe(self, *, bridge_running: bool | None = None) -> Observation:
        """Read Hazelcast and the disk (concurrently), within the timeout plus a little slack."""
        timeout = self.settings.health_timeout_s
        deadline = time.monotonic() + timeout
        watch_dir = self.settings.watch_dir
        disk_future = None
        disk_error: str | None = None
        if watch_dir is not None:
            grace = self.thresholds.newer_file_grace_s
            zone = self.settings.scanner_zone
            disk_future = self._disk.submit(lambda: probe_disk(Path(watch_dir), grace, self._clock(), zone=zone))
            if disk_future is None:
                disk_error = f"{watch_dir} still not listed after an earlier check (hung mount?)"

        latest, heartbeat, hazelcast_error = self._read_hazelcast(deadline)

        newest = complete = None
        if disk_future is not None:
            try:
                newest, complete = disk_future.result(timeout=max(deadline - time.monotonic(), 0.2))
            except concurrent.futures.TimeoutError:
                disk_error = f"listing {watch_dir} took over {timeout:g}s"
            except Exception as exc:  # noqa: BLE001 - reported, never raised
                disk_error = f"listing {watch_dir} failed: {type(exc).__name__}: {exc}"
        return Observation(
            checked_at=datetime.fromtimestamp(self._clock(), UTC),
            where=f"{self.settings.latest_key} in {self.settings.features_map}",
            hazelcast_error=hazelcast_error,
            latest=latest,
            heartbeat=heartbeat,
            newest_file=newest,
            newest_complete_file=complete,
            disk_error=disk_error,
            bridge_running=bridge_running,
        )

    def check(self, *, bridge_running: bool | None = None, previous: FreshnessReport | None = None) -> FreshnessReport:
        """Observe and classify; ``previous`` (default: this checker's last report) gives the scan rate."""
        with self._lock:
            observation = self.observe(bridge_running=bridge_running)
            now = self._clock()
            if observation.hazelcast_error is not None:
                self._answering_since, self._outage = None, True
            elif self._outage:
                self._answering_since, self._outage = now, False
            if self._answering_since is not None:
                observation = observation.model_copy(update={"hazelcast_answering_s": now - self._answering_since})
            report = classify(observation, self.thresholds, previous if previous is not None else self.last_report)
            self.last_report = report
            return report

    def close(self) -> None:
        """Shut the client down; the checker may be used again (it reconnects)."""
        with self._lock:
            self._drop_client()

    def __enter__(self) -> FreshnessChecker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- Hazelcast ---------------------------------------------------------------------------------

    def _drop_client(self) -> None:
        started, self._client, self._client_ready, self._started = self._started, None, None, None
        if started is not None and not started.shutdown(CLOSE_DEADLINE_S):
            log.debug("health check client did not shut down within %g s; dropped", CLOSE_DEADLINE_S)

    def _start_client(self) -> None:
        config = self.settings.client_config()
        timeout = self.settings.health_timeout_s
        config.update(cluster_connect_timeout=timeout, invocation_timeout=timeout)
        self._started = StartedClient(config)  # async start: never blocks on a frozen member
        self._client_ready = self._started.connected
        self._client = self._started.client

    def _read_hazelcast(self, deadline: float) -> tuple[Any, Any, str | None]:
        s = self.settings
        timeout = s.health_timeout_s
        members = ",".join(s.hazelcast_members)
        try:
            if self._client is not None and not self._client.lifecycle_service.is_running():
                self._drop_client()
            if self._client is None:
                self._start_client()
            ready = self._client_ready
            assert ready is not None
            if not ready.wait(max(deadline - time.monotonic(), 0.0)) or not self._client.lifecycle_service.is_running():
                self._drop_client()
                cluster = s.hazelcast_cluster_name
                return None, None, f"Hazelcast not reachable at {members} (cluster {cluster!r}) within {timeout:g}s"
            future = self._client.get_map(s.features_map).get_all([s.latest_key, s.heartbeat_key])
            try:
                values = wait_future(future, max(deadline - time.monotonic(), 0.0), f"reading {s.features_map}")
            except CallTimedOut:
                self._drop_client()
                return (
                    None,
                    None,
                    f"Hazelcast at {members} did not answer within {timeout:g}s (reading {s.features_map})",
                )
        except Exception as exc:  # noqa: BLE001 - any client failure is an ERROR report, never a traceback
            self._drop_client()
            text = " ".join(str(exc).split())[:200]
            return (
                None,
                None,
                f"reading {s.features_map} from Hazelcast at {members} failed: {type(exc).__name__}: {text}",
            )
        return _decode(values.get(s.latest_key)), _decode(values.get(s.heartbeat_key)), None


def check_hazelcast_data_freshness(
    settings: DaemonSettings | None = None,
    *,
    previous: FreshnessReport | None = None,
    bridge_running: bool | None = None,
) -> FreshnessReport:
    """One check with a client of its own (closed after): for scripts and a shell prompt.

    Settings default to ``DaemonSettings()`` (the ``SCAN_BRIDGE_*`` environment). Never raises for
    an unreachable cluster and never waits beyond ``health_timeout_s`` plus a little slack.
    """
    with FreshnessChecker(settings) as checker:
        return checker.check(bridge_running=bridge_running, previous=previous)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m scan_bridge.health [--json]``: print one check; exit 0 healthy, 1 warning, 2 otherwise."""
    args = list(sys.argv[1:] if argv is None else argv)
    report = check_hazelcast_data_freshness()
    print(report.model_dump_json(indent=2) if "--json" in args else printable(report.message))  # a file name is not a line
    return {HealthStatus.HEALTHY: 0, HealthStatus.WARNING: 1}.get(report.status, 2)


if __name__ == "__main__":
    sys.exit(main())
