"""Everything the bridge writes to Hazelcast, and nothing else.

What shapes this module:
- ``latest_eigen_scan`` must never move backwards, so the sink keeps the newest scan it knows (by
  :mod:`scan_bridge.ordering`: later in the scanner's time, whatever the numbers) and re-reads it
  from the cluster whenever it (re)connects (the cluster may be a new, empty one).
- History (``DOLPHIN_EIGEN_SCANS``) is keyed by the scan's time (:func:`~scan_bridge.ordering.history_key`),
  so writing a scan twice is harmless, which is what makes "push again after a crash" safe, and a
  scanner that numbers again from 1 never overwrites its earlier #1. A second scan claiming a time
  already in history is not written (the first is kept) and is logged.
- A newer scan with a lower number is a counter that started again: logged once per reset, loudly,
  with ``fields.event == "counter_reset"`` (the daemon turns it into an event), and kept for the heartbeat.
- Retention is enforced here, amortised: the sink trims only once the map holds a few percent more
  than the limit, with one ``remove_all`` by predicate instead of a call per key.
- Each time ``latest_eigen_scan`` moves, a small event goes to the reliable topic ``scan_topic``
  (see docs/downstream.md): fire and forget, so a slow or failing topic never holds up a push.
- Every call has a deadline (:mod:`scan_bridge.hzcall`): a frozen member or a silent network makes a
  call raise :class:`~scan_bridge.hzcall.CallTimedOut` instead of holding the bridge's loop forever.
- Failover (an ``epoch`` given, docs/high-availability.md): every document names its machine and
  epoch, ``latest_eigen_scan`` moves only by compare-and-set, the sink claims it on its first
  refresh, and a value of a higher epoch there raises :class:`~scan_bridge.fencing.Fenced`
  (:mod:`scan_bridge.fencing`). Without an epoch nothing of this happens: one machine writes as before.
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

import orjson
from hazelcast import predicate
from hazelcast.config import TopicOverloadPolicy
from hazelcast.core import HazelcastJsonValue

from .document import document_json, format_timestamp, parse_timestamp
from .fencing import EPOCH_FIELD, FENCE_RECHECK_S, HOST_FIELD, Fenced, claim_latest, writer_epoch, writer_host
from .hzcall import CLOSE_DEADLINE_S, StartedClient, wait_future
from .logs import fields
from .names import COUNTER_RESET
from .ordering import ScanId, compare, is_newer
from .scanfile import ScanRecord
from .settings import HazelcastSettings

log = logging.getLogger(__name__)

#: A push may take this long per byte beyond the call timeout before it counts as unanswered: a
#: 200-scan catch-up batch of ~100 KB documents (20 MB) gets 10 s more than a single live scan.
SLOW_LINK_BYTES_PER_S = 2_000_000

#: How many times a refused compare-and-set of latest is read again and retried before the push counts as failed.
LATEST_CAS_ATTEMPTS = 5

#: History keys below this (2000-01-01T00:00:00Z as a time key) may be scan numbers an older bridge
#: used as keys; :meth:`ScanSink._upgrade_keys` moves those to their time keys. Chunk of that upgrade.
LEGACY_KEYS_BELOW = 946_684_800_000_000
UPGRADE_CHUNK = 100


class SinkUnavailable(Exception):
    """The cluster could not be reached within the configured time; the message names where we looked."""


def _now() -> datetime:
    return datetime.now(timezone.utc)


def connect_client(
    settings: HazelcastSettings,
    lifecycle_listener: Callable[[str], None] | None = None,
    abandon: Callable[[], bool] = lambda: False,
) -> StartedClient:
    """A connected client, or :class:`SinkUnavailable` within ``hazelcast_connect_timeout_s``.

    The client's own default is to retry forever, which turns a wrong address or cluster name
    into a silent hang; and its constructor never returns against a frozen member, whatever the
    connect timeout says. So the client starts asynchronously and we wait for CONNECTED with our
    own deadline; later reconnects are the client's.
    """
    config = settings.client_config()
    if settings.scan_topic:
        # Overwrite the oldest event when the topic's ringbuffer is full: publishing never waits, never fails for space.
        config["reliable_topics"] = {settings.scan_topic: {"overload_policy": TopicOverloadPolicy.DISCARD_OLDEST}}
    timeout = settings.hazelcast_connect_timeout_s
    started: StartedClient | None = None
    try:
        started = StartedClient(config, [lifecycle_listener] if lifecycle_listener is not None else [])
        if started.wait_connected(timeout, abandon):
            return started
        reason = "no answer"
    except Exception as exc:  # the client raises IllegalStateError with a long text
        reason = type(exc).__name__
    if started is not None:
        started.shutdown(CLOSE_DEADLINE_S)
    raise SinkUnavailable(
        f"cannot reach Hazelcast cluster {settings.hazelcast_cluster_name!r} at "
        f"{', '.join(settings.hazelcast_members)} within {timeout:g} s "
        f"({reason}); check SCAN_BRIDGE_HAZELCAST_MEMBERS and SCAN_BRIDGE_HAZELCAST_CLUSTER_NAME, "
        f"or start a member (python -m scan_bridge.localcluster)"
    )


class ScanSink:
    """Writes scans, the latest pointer and the heartbeat; trims history to ``retention``."""

    def __init__(
        self,
        settings: HazelcastSettings,
        retention: int,
        lifecycle_listener: Callable[[str], None] | None = None,
        abandon: Callable[[], bool] = lambda: False,
        *,
        epoch: int | None = None,
        machine: str | None = None,
    ) -> None:
        """Connect (see :func:`connect_client`); ``abandon()`` true makes every wait give up at once (SIGTERM).

        ``epoch`` (failover): the lease epoch this bridge writes under; ``machine`` names it in documents.
        """
        self._settings = settings
        self._epoch = epoch
        self._latest_value: Any = None  # failover: latest as the cluster holds it, the compare-and-set's expectation
        self._confirmed_at = -1e18  # failover: when our epoch was last seen to hold latest (monotonic)
        self._retention = retention
        self._abandon = abandon
        self._call_timeout = settings.hazelcast_call_timeout_s
        self._started = connect_client(settings, lifecycle_listener, abandon)
        self._client = self._started.client
        self._features = self._client.get_map(settings.features_map)
        self._history = self._client.get_map(settings.history_map)
        self._topic = self._client.get_reliable_topic(settings.scan_topic) if settings.scan_topic else None
        self._known: list[int] = []  # sorted history keys (scan times) present, as far as we know
        self._numbers: dict[int, int] = {}  # key -> scan number, for the keys this sink wrote
        self._in_flight: set[int] = set()  # keys submitted, not yet known written (cleared by refresh)
        self.latest: ScanId | None = None
        self.last_reset: dict[str, Any] | None = None  # the last counter reset seen, for the heartbeat
        self._started_at = _now().isoformat()
        self._host = machine or socket.gethostname()
        self._writer = None if epoch is None else {HOST_FIELD: self._host, EPOCH_FIELD: epoch}

    # -- reading what the cluster holds ---------------------------------------------------------

    def _wait(self, future: Any, what: str, timeout_s: float | None = None) -> Any:
        return wait_future(future, timeout_s or self._call_timeout, what, self._abandon)

    def refresh(self) -> set[int]:
        """Re-read what the cluster holds (history keys, latest number); called on every (re)connect."""
        keys = {int(k) for k in self._wait(self._history.key_set(), f"key_set of {self._settings.history_map}")}
        if any(k < LEGACY_KEYS_BELOW for k in keys):
            keys = self._upgrade_keys(keys)
        self._known = sorted(keys)
        self._numbers = {}
        self._in_flight = set()  # a batch that failed is pushed again by the reconcile that follows
        if self._epoch is not None:
            latest = self._claim()
        else:
            latest = self._wait(self._features.get(self._settings.latest_key), f"get {self._settings.latest_key}")
        self.latest = _scan_id_of(latest)
        self._repair_latest()
        return keys

    # -- fencing (failover only) --------------------------------------------------------------------

    def _check_fence(self, value: Any) -> None:
        """Raise :class:`Fenced` when ``value`` (latest as read) speaks for a higher epoch than ours."""
        assert self._epoch is not None
        theirs = writer_epoch(value)
        if theirs > self._epoch:
            raise Fenced(
                f"{self._settings.latest_key} holds epoch {theirs} (written by {writer_host(value) or 'another machine'}); "
                f"this bridge's lease epoch {self._epoch} is over: it writes nothing more",
                theirs,
            )

    def _claim(self) -> Any:
        """Mark latest with our epoch (compare-and-set), so an older active's next move of it fails; returns it as now held.

        Usually the daemon claimed it already when it won the lease; then this only reads it.
        """
        assert self._epoch is not None
        latest = claim_latest(self._features, self._settings.latest_key, self._epoch, self._wait, LATEST_CAS_ATTEMPTS)
        self._latest_value = latest
        self._confirmed_at = time.monotonic()
        return latest

    def _recheck_fence(self) -> None:
        """Before a write after a pause (idle, or frozen and thawed): read latest and stop if a newer epoch holds it."""
        if self._epoch is None or time.monotonic() - self._confirmed_at < FENCE_RECHECK_S:
            return
        key = self._settings.latest_key
        current = self._wait(self._features.get(key), f"get {key}")
        self._check_fence(current)
        self._confirmed_at = time.monotonic()

    def _move_latest(self, document: HazelcastJsonValue) -> tuple[Any, bool]:
        """Start moving latest to ``document``: (future, whether it is a compare-and-set to check)."""
        key = self._settings.latest_key
        if self._epoch is None:
            return self._features.set(key, document), False
        expected, self._latest_value = self._latest_value, document
        if expected is None:
            return self._features.put_if_absent(key, document), True
        return self._features.replace_if_same(key, expected, document), True

    def _latest_refused(self, document: HazelcastJsonValue, scan: ScanId) -> bool:
        """Our compare-and-set of latest was refused: re-read; stop if fenced, else retry while ours is newer.

        True when latest now holds ``document``; False when it holds a scan as new or newer already.
        """
        key = self._settings.latest_key
        for _ in range(LATEST_CAS_ATTEMPTS):
            current = self._wait(self._features.get(key), f"get {key}")
            self._check_fence(current)
            held = _scan_id_of(current)
            if current is not None and not is_newer(scan, held):
                self._latest_value = current  # as new or newer already: nothing to move
                if held is not None and is_newer(held, self.latest):
                    self.latest = held
                return False
            if current is None:
                done = self._wait(self._features.put_if_absent(key, document), f"put_if_absent {key}") is None
            else:
                done = bool(self._wait(self._features.replace_if_same(key, current, document), f"replace_if_same {key}"))
            if done:
                self._latest_value = document
                return True
        raise RuntimeError(f"{key} kept changing under this bridge (epoch {self._epoch}); catching up from disk")

    @staticmethod
    def _moved(result: Any, cas: bool) -> bool:
        """Did a move of latest succeed? ``replace_if_same`` answers True, ``put_if_absent`` None (no previous value)."""
        return result is True or (result is None and cas)

    def _repair_latest(self) -> None:
        """Latest is the newest scan in history. A push cut short (a member frozen mid-push, then the
        bridge stopped) can leave the history entry written without the latest that went with it;
        the reconcile then finds the scan present and would never push it again, so latest would lag
        for good. Keys are times: the newest key is the newest scan, so moving to it never goes back."""
        if not self._known or (self.latest is not None and self.latest.key >= self._known[-1]):
            return
        newest = self._wait(self._history.get(self._known[-1]), f"get newest of {self._settings.history_map}")
        scan = _scan_id_of(newest)
        if scan is None or not is_newer(scan, self.latest):
            return
        future, cas = self._move_latest(newest)
        if cas and not self._moved(self._wait(future, f"set {self._settings.latest_key}"), cas):
            self._latest_refused(newest, scan)
        elif not cas:
            self._wait(future, f"set {self._settings.latest_key}")
        log.warning("%s was behind history (#%s); set to #%d", self._settings.latest_key,
                    self.latest.scan_number if self.latest else None, scan.scan_number,
                    extra=fields(event="latest_repaired", scan_number=scan.scan_number))
        self.latest = scan

    def _upgrade_keys(self, keys: set[int]) -> set[int]:
        """Entries an older bridge keyed by scan number move to their time key; nothing is lost (upgrade, once).

        Only keys below :data:`LEGACY_KEYS_BELOW` are looked at (a number key is small; a time key of a
        scan stamped after 2000 is not), in chunks, and only those whose document's time gives another
        key are moved: put under the time key (unless a scan is there already), then the old key removed.
        Old ``int`` keys (a 32-bit-era bridge) are matched by value, as the member compares them.
        """
        legacy = sorted(k for k in keys if k < LEGACY_KEYS_BELOW)
        moved = 0
        for i in range(0, len(legacy), UPGRADE_CHUNK):
            chunk = legacy[i : i + UPGRADE_CHUNK]
            entries = self._wait(
                self._history.entry_set(predicate.in_("__key", *chunk)), f"reading old keys of {self._settings.history_map}"
            )
            documents: dict[int, Any] = {}
            old: list[int] = []
            for key, value in entries:
                scan = _scan_id_of(value)
                if scan is None or scan.key == int(key):
                    continue  # not a scan document, or already a time key (a scan stamped before 2000)
                old.append(int(key))
                if scan.key not in keys and scan.key not in documents:
                    documents[scan.key] = value
            if documents:
                self._wait(self._history.put_all(documents), f"moving old keys of {self._settings.history_map}")
            if old:
                self._wait(self._history.remove_all(predicate.in_("__key", *old)), f"removing old keys of {self._settings.history_map}")
            keys = (keys - set(old)) | set(documents)
            moved += len(old)
        if moved:
            log.warning(
                "Upgraded %s: %d scans moved from scan-number keys to time keys (a bridge before issue 14 wrote them)",
                self._settings.history_map, moved, extra=fields(event="keys_upgraded", moved=moved),
            )
        return keys

    @property
    def latest_number(self) -> int | None:
        """The number of the latest scan (None before the first); for log lines, never for comparisons."""
        return None if self.latest is None else self.latest.scan_number

    def is_present(self, key: int) -> bool:
        """The history holds a scan at this key (time), as far as this sink knows."""
        index = bisect.bisect_left(self._known, key)
        return index < len(self._known) and self._known[index] == key

    def retention_floor(self) -> int | None:
        """Scans keyed (timed) below this would be trimmed at once, so pushing them is pointless."""
        if len(self._known) < self._retention:
            return None
        return self._known[-self._retention]

    # -- writing ----------------------------------------------------------------------------------

    def submit(self, records: Sequence[ScanRecord]) -> PendingPush:
        """Start writing ``records`` to history (one ``put_all``) and move latest forward if one is newer.

        Returns at once, so the caller can read the next batch while this one travels (catch-up
        reads and writes overlap). Writes to one key keep their order (one partition, one
        connection), so batches submitted oldest first leave the newest as latest. A record whose
        time is already in history (or earlier in this batch) is left out and logged.
        """
        self._recheck_fence()  # failover: a thawed bridge finds out here, before it writes anything
        pushed_at = _now()
        documents: dict[int, HazelcastJsonValue] = {}
        kept: list[ScanRecord] = []
        for record in records:
            key = record.key
            if key in documents or key in self._in_flight or self.is_present(key):
                self._same_time(record, key)
                continue
            documents[key] = HazelcastJsonValue(document_json(record, pushed_at, self._writer))
            kept.append(record)
        size = sum(len(d.to_string()) for d in documents.values())
        futures = []
        newest: ScanRecord | None = None
        for record in kept:
            if newest is None or compare(record.scan_id, newest.scan_id) > 0:
                newest = record
        moves_latest = newest is not None and is_newer(newest.scan_id, self.latest)
        if len(documents) == 1:
            ((key, document),) = documents.items()
            futures.append(self._history.set(key, document))
        elif documents:
            futures.append(self._history.put_all(documents))
        event = None
        resets: list[tuple[ScanId, ScanId]] = []
        latest_cas: tuple[int, HazelcastJsonValue, ScanId] | None = None
        if moves_latest:
            assert newest is not None
            future, cas = self._move_latest(documents[newest.key])
            if cas:
                latest_cas = (len(futures), documents[newest.key], newest.scan_id)
            futures.append(future)
            # Counter resets among the scans that move latest: a drop in numbers along the scanner's time.
            previous = self.latest
            for record in sorted((r for r in kept if is_newer(r.scan_id, self.latest)), key=lambda r: r.key):
                if previous is not None and record.scan_number < previous.scan_number:
                    resets.append((previous, record.scan_id))
                previous = record.scan_id
            self.latest = newest.scan_id  # re-read from the cluster on every reconnect, should this fail
            if self._topic is not None:
                event = orjson.dumps({  # an encoder, never interpolation: every field is JSON whatever it holds
                    "scan_number": newest.scan_number,
                    "timestamp": format_timestamp(newest.timestamp),
                    "history_key": newest.key,
                    "asset_count": newest.asset_count,
                    "pushed_at": format_timestamp(pushed_at),
                }).decode()
        timeout = self._call_timeout + size / SLOW_LINK_BYTES_PER_S
        numbers = {r.key: r.scan_number for r in kept}
        self._in_flight.update(numbers)
        self._numbers.update(numbers)  # for the "same time as #N" line; a failed write is re-read by refresh
        return PendingPush(
            self, list(documents), newest.scan_number if moves_latest and newest else None, futures, event, timeout,
            key_numbers=numbers, resets=resets, latest_cas=latest_cas,
        )

    def _same_time(self, record: ScanRecord, key: int) -> None:
        """A scan claiming a time history already holds: the first is kept; say so, with both numbers when known."""
        other = self._numbers.get(key)
        same = "the same number" if other == record.scan_number else (f"#{other}" if other is not None else "a scan")
        log.warning(
            "Not written: %s (#%d at %s) claims the same time as %s already in history; the first is kept",
            record.path, record.scan_number, format_timestamp(record.timestamp), same,
            extra=fields(event="same_time", file=str(record.path), scan_number=record.scan_number,
                         timestamp=format_timestamp(record.timestamp), other_number=other),
        )

    def _counter_reset(self, before: ScanId, after: ScanId) -> None:
        """Log one counter reset, loudly, once (on the write that made it the latest); kept for the heartbeat."""
        self.last_reset = {
            "from_number": before.scan_number,
            "from_timestamp": format_timestamp(before.timestamp),
            "to_number": after.scan_number,
            "to_timestamp": format_timestamp(after.timestamp),
            "seen_at": format_timestamp(_now()),
        }
        log.warning(
            "SCANNER COUNTER STARTED AGAIN: #%d at %s is followed by #%d at %s (later by the scanner's clock); "
            "latest_eigen_scan follows the time, history keeps both (keys are times). Not a fault of the bridge",
            before.scan_number, self.last_reset["from_timestamp"], after.scan_number, self.last_reset["to_timestamp"],
            extra=fields(event=COUNTER_RESET, **self.last_reset),
        )

    def _committed(self, keys: Sequence[int], numbers: dict[int, int] | None = None) -> None:
        for key in keys:
            index = bisect.bisect_left(self._known, key)
            if index == len(self._known) or self._known[index] != key:
                self._known.insert(index, key)
        self._numbers.update(numbers or {})
        self._in_flight.difference_update(keys)
        self._trim_if_due()

    def _announce(self, event: str) -> None:
        """Publish a latest-moved event on the scan topic without waiting; a failure is logged at debug only."""
        assert self._topic is not None
        try:
            self._topic.publish(event).add_done_callback(_log_publish_failure)
        except Exception:  # noqa: BLE001 - the event is a courtesy; the scan itself is written
            log.debug("publishing %s on %s failed", event, self._settings.scan_topic, exc_info=True)

    def _trim_if_due(self) -> None:
        slack = max(10, self._retention // 20)
        if len(self._known) <= self._retention + slack:
            return
        cutoff = self._known[-self._retention]
        self._wait(self._history.remove_all(predicate.less("__key", cutoff)), f"trimming {self._settings.history_map}")
        for key in self._known[: bisect.bisect_left(self._known, cutoff)]:
            self._numbers.pop(key, None)
        del self._known[: bisect.bisect_left(self._known, cutoff)]
        log.debug("trimmed history below key %d", cutoff)

    def heartbeat(
        self, *, connected: bool, pushed_total: int, rejected_total: int, busy: bool = False, member_silent: bool = False
    ) -> Any:
        """Refresh the heartbeat without waiting: a slow cluster must not hold up the bridge's loop.

        Returns the write's future: the bridge watches it to notice a member that stopped answering
        (and one that answers again), without ever blocking on it. ``busy``: written between files
        of a long stretch of work (a catch-up), so files newer than Hazelcast's scan are expected.
        ``member_silent``: a call to a member missed its deadline and pushes are held until one gets
        through (one member of several frozen: this heartbeat reached another), so newer files are
        expected too, and a new bridge would wait on the same member.
        """
        now = _now()
        document = {
            "time": now.isoformat(),
            "epoch": now.timestamp(),
            "pid": os.getpid(),
            "host": self._host,
            "started_at": self._started_at,
            "last_scan_number": self.latest_number,
            "last_scan_timestamp": None if self.latest is None else format_timestamp(self.latest.timestamp),
            COUNTER_RESET: self.last_reset,
            "connected": connected,
            "pushed_total": pushed_total,
            "rejected_total": rejected_total,
            "busy": busy,
            "member_silent": member_silent,
        }
        if self._epoch is not None:
            # Not "epoch": that field is the heartbeat's time (seconds since 1970), which the health check reads.
            document["lease_epoch"] = self._epoch
        return self._features.set(self._settings.heartbeat_key, HazelcastJsonValue(document))

    def close(self) -> bool:
        """Shut the client down within ``CLOSE_DEADLINE_S``; False if it did not finish in time."""
        return self._started.shutdown(CLOSE_DEADLINE_S)


class PendingPush:
    """A submitted batch; :meth:`wait` raises what the cluster raised, and books the batch when done."""

    def __init__(
        self,
        sink: ScanSink,
        numbers: list[int],
        new_latest: int | None,
        futures: list[Any],
        event: str | None = None,
        timeout_s: float | None = None,
        *,
        key_numbers: dict[int, int] | None = None,
        resets: list[tuple[ScanId, ScanId]] | None = None,
        latest_cas: tuple[int, HazelcastJsonValue, ScanId] | None = None,
    ) -> None:
        self._sink = sink
        self._latest_cas = latest_cas  # failover: (index of the future, the document, its scan) to check
        self._key_numbers = key_numbers or {}
        self._resets = resets or []
        self.timeout_s = timeout_s
        self.numbers = numbers
        self.new_latest = new_latest
        self._futures = futures
        self._event = event  # published on the scan topic once the write succeeded

    def __len__(self) -> int:
        return len(self.numbers)

    def wait(self) -> int | None:
        """Block until written (at most ``timeout_s`` in all); the new latest scan number if latest moved, else None.

        ``numbers`` holds the history keys written (the scans' times), despite its name.

        Raises :class:`~scan_bridge.hzcall.CallTimedOut` when the cluster does not answer in time.
        """
        deadline = time.monotonic() + (self.timeout_s or self._sink._call_timeout)
        for index, future in enumerate(self._futures):
            result = self._sink._wait(future, f"writing {len(self.numbers)} scans", max(deadline - time.monotonic(), 0.001))
            if self._latest_cas is not None and index == self._latest_cas[0]:
                if not ScanSink._moved(result, True) and not self._sink._latest_refused(self._latest_cas[1], self._latest_cas[2]):
                    self._event, self.new_latest = None, None  # latest holds a newer scan: ours did not move it
                self._sink._confirmed_at = time.monotonic()  # our epoch held latest (or a not newer one held it)
        if self._event is not None:
            self._sink._announce(self._event)
            self._event = None
        self._sink._committed(self.numbers, self._key_numbers)
        for before, after in self._resets:
            self._sink._counter_reset(before, after)
        self._resets = []
        return self.new_latest


def _log_publish_failure(future: Any) -> None:
    try:
        future.result()
    except Exception as exc:  # noqa: BLE001
        log.debug("scan topic publish failed: %s: %s", type(exc).__name__, exc)


def _scan_id_of(value: Any) -> ScanId | None:
    """The latest document's number and time (its timestamp is UTC with ``Z``); None if unreadable."""
    if value is None:
        return None
    try:
        text = value.to_string() if isinstance(value, HazelcastJsonValue) else str(value)
        document = json.loads(text)
        return ScanId(parse_timestamp(document["timestamp"]), int(document["scan_number"]))
    except (ValueError, KeyError, TypeError):
        return None

