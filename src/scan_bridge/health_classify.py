"""Is the data in Hazelcast fresh, and if not, whose fault is it: the pure classification.

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

:func:`classify` is pure (an :class:`Observation` in, a :class:`FreshnessReport` out) so every rule
is tested without a cluster or a clock. Who observes: :mod:`.health_check` (Hazelcast, with
deadlines) and :mod:`.health_disk` (the newest scan files); the one-shot form and the CLI are in
:mod:`.health`.
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, computed_field, model_validator

from .document import parse_scan_number, parse_timestamp
from .health_status import HealthStatus, StaleCause, status_label
from .names import COUNTER_RESET
from .ordering import ScanId, compare, is_counter_reset, is_newer
from .settings import DaemonSettings

__all__ = [
    "DiskFile",
    "FreshnessReport",
    "HealthStatus",
    "Observation",
    "StaleCause",
    "Thresholds",
    "classify",
]


def _daemon_default(name: str) -> Any:
    """A threshold's default is the daemon setting's (one home: :class:`~scan_bridge.settings.DaemonSettings`)."""
    return DaemonSettings.model_fields[name].default


class Thresholds(BaseModel):
    """The numbers the classification compares against; defaults and bounds are the daemon settings'."""

    model_config = ConfigDict(frozen=True)

    warn_after_s: float = Field(default=_daemon_default("warn_after_s"), gt=0)
    stale_after_s: float = Field(default=_daemon_default("stale_after_s"), gt=0)
    heartbeat_stale_after_s: float = Field(default=_daemon_default("heartbeat_stale_after_s"), gt=0)
    newer_file_grace_s: float = Field(default=_daemon_default("newer_file_grace_s"), ge=0)
    clock_skew_tolerance_s: float = Field(default=_daemon_default("clock_skew_tolerance_s"), ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if self.warn_after_s > self.stale_after_s:
            raise ValueError(f"warn_after_s ({self.warn_after_s}) must not exceed stale_after_s ({self.stale_after_s})")
        return self

    @classmethod
    def from_settings(cls, settings: DaemonSettings) -> Thresholds:
        """The daemon's configured thresholds."""
        return cls(**{name: getattr(settings, name) for name in cls.model_fields})


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

    :attr:`headline` is the one way a report is shown (log line, artifact, alerts, ``deploy.py``):
    the status once, its cause, then :attr:`detail`. Nothing takes it apart again: who needs the
    status or the cause reads the fields. In JSON the headline is ``message``.

    Ages are seconds before ``checked_at``. ``data_age_s`` is negative when the scan's timestamp is
    ahead of this host's clock; ``clock_skew_s`` then says by how much.
    """

    status: HealthStatus
    cause: StaleCause | None = None  # set only when status is STALE
    detail: str  # why, and the figures: never the status or the cause (the headline adds them)
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

    @property
    def label(self) -> str:
        """``STALE (scanner silent)``: the status and its cause, as people read them."""
        return status_label(self.status, self.cause)

    @property
    def headline(self) -> str:
        """``STALE (scanner silent): scan #46 is 72.0s old; ...``: status once, cause, then the figures."""
        return f"{self.label}: {self.detail}"

    @computed_field  # type: ignore[prop-decorator]
    @property
    def message(self) -> str:
        """The headline, under the name the JSON form (``deploy.py health --json``, events) has always used."""
        return self.headline

    def __str__(self) -> str:
        return self.headline


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
    reset = heartbeat.get(COUNTER_RESET) if isinstance(heartbeat, dict) else None
    if not isinstance(reset, dict):
        return True  # seen between two checks: it is recent by definition
    try:
        return _age(now, parse_timestamp(reset.get("seen_at"))) <= RESET_NOTE_S
    except (ValueError, TypeError):
        return False


def _reset_note(heartbeat: Any, scan: ScanId | None, previous: FreshnessReport | None) -> str | None:
    """The last counter reset: the bridge's heartbeat names it; else one seen between two checks."""
    reset = heartbeat.get(COUNTER_RESET) if isinstance(heartbeat, dict) else None
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

    A ``disk_error`` (the folder that may hold newer scans could not be listed) makes a STALE that is
    not the bridge's fault DISK_UNREADABLE rather than SCANNER_SILENT: nobody can tell then.
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
        return FreshnessReport(status=status, cause=cause, detail=text, **report)

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
            busy_reason = unpushed  # the cause, BRIDGE_BUSY, is in the headline
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
    if observation.disk_error is not None:
        # Whether the scanner wrote on is unknown: the folder that would hold its newer scans cannot be
        # read (rights, a hung mount). Not "scanner silent", and no restart: the bridge cannot read it either.
        return finish(HealthStatus.STALE, f"{detail}{disk_note}", StaleCause.DISK_UNREADABLE)
    if newest is None:
        disk_state = "no scan files on disk"
    else:
        newest_age = _seconds(now.timestamp() - newest.mtime)
        disk_state = f"nothing newer on disk (newest {os.path.basename(newest.path)}, {newest_age} old)"
    return finish(HealthStatus.STALE, f"{detail}; {disk_state}{disk_note}", StaleCause.SCANNER_SILENT)
