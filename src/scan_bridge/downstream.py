"""For flows that consume the bridge's output: wait until ``latest_eigen_scan`` is fresh, then go.

::

    from scan_bridge import wait_for_fresh_scan
    scan = wait_for_fresh_scan(max_age_s=30, timeout_s=120)   # the latest scan document, as a dict

    from scan_bridge.downstream import wait_for_fresh_scan_task   # the same, as a Prefect task

Reads go through :class:`~scan_bridge.health.FreshnessChecker`'s client handling, so no single read
outlasts ``health_timeout_s`` (nor the overall ``timeout_s``), even against a frozen member, and a
dead cluster is a :class:`StaleScanError` naming its address rather than a hang. See docs/downstream.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from .document import parse_timestamp
from .health_check import FreshnessChecker
from .ordering import ScanId, is_newer
from .settings import DaemonSettings, HazelcastSettings

__all__ = ["StaleScanError", "wait_for_fresh_scan", "wait_for_fresh_scan_task"]

_SLACK_S = 0.05  # never start a read with less time than this left


class StaleScanError(TimeoutError):
    """No scan at most ``max_age_s`` old within ``timeout_s``; the message says what was last seen, and where.

    ``last_age_s`` / ``last_scan_number`` describe the last scan read (None if none was), ``last_error``
    the last failure to read the cluster (None if the last read worked), ``address`` the members asked.
    """

    def __init__(
        self,
        message: str,
        *,
        address: str,
        last_age_s: float | None = None,
        last_scan_number: int | None = None,
        last_error: str | None = None,
    ) -> None:
        super().__init__(message)
        self.address = address
        self.last_age_s = last_age_s
        self.last_scan_number = last_scan_number
        self.last_error = last_error


def _daemon_settings(settings: HazelcastSettings | None) -> DaemonSettings:
    """The checker's settings: the caller's cluster and names, no disk probing."""
    if settings is None:
        return DaemonSettings(watch_dir=None)
    if isinstance(settings, DaemonSettings):
        return settings if settings.watch_dir is None else settings.model_copy(update={"watch_dir": None})
    fields = {name: getattr(settings, name) for name in HazelcastSettings.model_fields}
    return DaemonSettings(**fields, watch_dir=None)


def wait_for_fresh_scan(
    max_age_s: float = 30.0,
    timeout_s: float = 120.0,
    settings: HazelcastSettings | None = None,
    *,
    poll_interval_s: float = 0.5,
    clock: Callable[[], float] = time.time,
    newer_than: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The latest scan document, as soon as its age (now minus its ``timestamp``) is at most ``max_age_s``.

    Polls ``settings.latest_key`` in ``settings.features_map`` every ``poll_interval_s``; each read is
    bounded by ``health_timeout_s`` (when ``settings`` is a :class:`DaemonSettings`, else its default)
    and by what is left of ``timeout_s``. Raises :class:`StaleScanError` (a ``TimeoutError``) after
    ``timeout_s`` (plus a little slack) when no fresh scan was seen, naming the age last seen, or that
    no scan or no cluster was seen, and the cluster's address. ``settings`` defaults to the
    ``SCAN_BRIDGE_*`` environment. A scan stamped in the future (clock skew) counts as fresh.

    ``newer_than`` (a scan document, e.g. the one the caller handled last): wait for a scan newer
    than it, as :mod:`scan_bridge.ordering` decides (later in the scanner's time, whatever the
    numbers: a scanner that numbers again from 1 is followed).
    """
    after = None
    if newer_than is not None:
        after = ScanId(parse_timestamp(newer_than["timestamp"]), int(newer_than["scan_number"]))
    if max_age_s < 0 or timeout_s < 0 or poll_interval_s <= 0:
        raise ValueError("max_age_s and timeout_s must be >= 0, poll_interval_s > 0")
    s = _daemon_settings(settings)
    if s.health_timeout_s > timeout_s:  # so the messages name the wait the caller asked for
        s = s.model_copy(update={"health_timeout_s": max(timeout_s, _SLACK_S)})
    address = ",".join(s.hazelcast_members)
    where = f"{s.latest_key} in {s.features_map} at {address} (cluster {s.hazelcast_cluster_name!r})"
    deadline = time.monotonic() + timeout_s
    last_age: float | None = None
    last_number: Any = None
    last_error: str | None = None
    seen_scan = False
    checker = FreshnessChecker(s, clock=clock)
    try:
        while True:
            read_deadline = min(time.monotonic() + s.health_timeout_s, deadline)
            latest, _heartbeat, error = checker.read_hazelcast(max(read_deadline, time.monotonic() + _SLACK_S))
            last_error = error
            if error is None and latest is not None:
                if not isinstance(latest, dict):
                    last_error = f"{s.latest_key} is a {type(latest).__name__}, not a scan document"
                else:
                    try:
                        stamp = parse_timestamp(latest.get("timestamp"))
                    except (ValueError, TypeError) as exc:
                        last_error = f"{s.latest_key} has no readable timestamp ({exc})"
                    else:
                        seen_scan = True
                        last_number = latest.get("scan_number")
                        last_age = clock() - stamp.timestamp()
                        number = latest.get("scan_number")
                        newer = after is None or (
                            isinstance(number, int) and is_newer(ScanId(stamp, number), after)
                        )
                        if last_age <= max_age_s and newer:
                            return latest
            remaining = deadline - time.monotonic()
            if remaining <= _SLACK_S:
                break
            time.sleep(min(poll_interval_s, remaining))
    finally:
        checker.close()

    if seen_scan and last_age is not None and last_error is None:
        what = f"last saw scan #{last_number} {last_age:.1f}s old"
        if after is not None:
            what += f", none newer than {after.describe()}"
    elif last_error is not None:
        what = last_error + (f" (earlier saw scan #{last_number} {last_age:.1f}s old)" if seen_scan else "")
    else:
        what = "no scan there yet"
    message = f"no scan at most {max_age_s:g}s old in {where} within {timeout_s:g}s: {what}"
    raise StaleScanError(
        " ".join(message.split()),
        address=address,
        last_age_s=last_age,
        last_scan_number=last_number if isinstance(last_number, int) else None,
        last_error=last_error,
    )


_task: Any = None


def _make_task() -> Any:
    from prefect import task
    from prefect.cache_policies import NO_CACHE

    return task(
        name="wait-for-fresh-scan",
        description="Wait until latest_eigen_scan is at most max_age_s old; StaleScanError after timeout_s.",
        cache_policy=NO_CACHE,  # a wait must wait every time
        retries=0,
        log_prints=True,
    )(wait_for_fresh_scan)


def __getattr__(name: str) -> Any:
    """``wait_for_fresh_scan_task`` is built on first use, so importing this module never imports Prefect."""
    global _task
    if name == "wait_for_fresh_scan_task":
        if _task is None:
            _task = _make_task()
        return _task
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
