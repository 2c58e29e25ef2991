"""The daemon's health check, run beside its loop: every interval, a report posted to the loop's queue.

A check can take up to its timeout (Hazelcast unreachable); in the loop it would delay noticing a
bridge exit, so it runs in a thread of its own and only posts :class:`HealthResult` messages.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from .health_check import FreshnessChecker
from .health_classify import FreshnessReport


@dataclass(frozen=True, slots=True)
class HealthResult:
    report: FreshnessReport
    pid: int | None = None  # the bridge that was current when the check began


class HealthTicker:
    """Runs the freshness check every ``interval_s`` in its own thread and posts the report.

    A check can take up to its timeout (Hazelcast unreachable); in the loop it would delay noticing a
    bridge exit, so it runs beside it.
    """

    def __init__(
        self,
        checker: FreshnessChecker,
        interval_s: float,
        post: Callable[[HealthResult], None],
        bridge_running: Callable[[], bool],
        bridge_pid: Callable[[], int | None],
    ) -> None:
        self._checker = checker
        self._interval_s = interval_s
        self._post = post
        self._bridge_running = bridge_running
        self._bridge_pid = bridge_pid
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="health-ticker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        next_at = time.monotonic() + self._interval_s
        while not self._stop.wait(max(0.0, next_at - time.monotonic())):
            next_at += self._interval_s
            pid = self._bridge_pid()  # first: a restart during the check then shows as a different pid
            try:
                report = self._checker.check(bridge_running=self._bridge_running())
            except Exception as exc:  # the ticker must outlive any single check
                logging.getLogger(__name__).warning("health check failed: %s", exc)
                continue
            self._post(HealthResult(report, pid))
            if next_at < time.monotonic():  # a check longer than the interval: skip, don't pile up
                next_at = time.monotonic() + self._interval_s

    def stop(self) -> None:
        self._stop.set()
        self._checker.close()
