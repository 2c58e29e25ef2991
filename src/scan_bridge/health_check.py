"""The freshness check against a live cluster: reads Hazelcast and the disk with hard deadlines.

:class:`FreshnessChecker` keeps one client open across checks (the daemon checks every 30 s for
months) and hands what it saw to the pure :func:`~scan_bridge.health_classify.classify`. Nothing it
does outlasts ``health_timeout_s``, even against a frozen member.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from .health_classify import FreshnessReport, Observation, Thresholds, classify
from .discovery import UnreadableFolder
from .health_disk import hidden_by, probe_disk
from .hzcall import CLOSE_DEADLINE_S, CallTimedOut, StartedClient, wait_future
from .settings import DaemonSettings

log = logging.getLogger(__name__)

__all__ = ["FreshnessChecker"]

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
        # The previous report, the input of the next classification (the scan rate, a counter reset,
        # "still empty"): kept here only; the daemon keeps the current one in DaemonStatus.report and
        # hands the one before it to its publishers.
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
        unreadable: list[UnreadableFolder] = []
        if watch_dir is not None:
            grace = self.thresholds.newer_file_grace_s
            zone = self.settings.scanner_zone
            disk_future = self._disk.submit(
                lambda: probe_disk(Path(watch_dir), grace, self._clock(), zone=zone, unreadable=unreadable)
            )
            if disk_future is None:
                disk_error = f"{watch_dir} still not listed after an earlier check (hung mount?)"

        latest, heartbeat, hazelcast_error = self.read_hazelcast(deadline)

        newest = complete = None
        if disk_future is not None:
            try:
                newest, complete = disk_future.result(timeout=max(deadline - time.monotonic(), 0.2))
                hidden = hidden_by(unreadable, newest)
                if hidden is not None:  # "nothing newer on disk" would be a guess: say what we could not read
                    disk_error = f"{hidden.path} not readable ({hidden.reason})"
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

    def read_hazelcast(self, deadline: float) -> tuple[Any, Any, str | None]:
        """(latest scan, heartbeat, None) decoded, or (None, None, why not) by ``deadline`` (monotonic).

        Over this checker's client (started, or restarted after a failure, as needed); never raises
        and never waits past the deadline. :mod:`.downstream` polls with it.
        """
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
