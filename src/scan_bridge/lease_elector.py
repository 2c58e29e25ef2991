"""The failover lease's thread: drives :class:`~scan_bridge.lease.LeaseKeeper` with real calls to Hazelcast.

One thread per daemon. As a standby it reads the lease every ``renew_s`` and takes it when the
keeper says so; as the active it renews it every ``renew_s``. It only *reports*: ``on_took_over``
and ``on_stepped_down`` are called from this thread (the daemon puts them on its loop's queue, as
every other input of the supervisor), and :meth:`may_write` answers from the keeper's clock.

Its own Hazelcast client (like the health check's): the lease must keep being renewed while the
bridge's connection is busy with a catch-up, and a frozen call of the bridge must not look like a
lost machine. Every call has a deadline of ``renew_s`` at most (:mod:`scan_bridge.lease_store`),
so one slow call never delays the next renewal by more than one interval.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from .document import format_timestamp
from .fencing import Fenced, claim_latest
from .hzcall import CLOSE_DEADLINE_S, CallAbandoned, StartedClient, wait_future
from .lease import LeaseKeeper, LeaseRecord, Renew, Role, StepDown, Take, Wait
from .lease_store import LeaseStore
from .settings import HazelcastSettings

__all__ = ["LeaseElector", "SteppedDown", "TookOver"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TookOver:
    """The supervisor's message: this machine took the lease with ``epoch``; start the bridge under it."""

    epoch: int
    reason: str


@dataclass(frozen=True, slots=True)
class SteppedDown:
    """The supervisor's message: this machine no longer holds the lease; stop the bridge at once."""

    reason: str


def _ignore(*_args: object) -> None:
    pass


def _wall_now() -> str:
    return format_timestamp(datetime.now(timezone.utc))


class LeaseElector:
    """Holds or watches the lease ``key`` in ``settings.features_map`` for machine ``machine``."""

    def __init__(
        self,
        settings: HazelcastSettings,
        key: str,
        machine: str,
        *,
        lease_s: float,
        renew_s: float,
        on_took_over: Callable[[int, str], None] = _ignore,
        on_stepped_down: Callable[[str], None] = _ignore,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keeper = LeaseKeeper(machine, lease_s, renew_s)
        self.settings = settings
        self.key = key
        self.on_took_over = on_took_over
        self.on_stepped_down = on_stepped_down
        self.clock = clock
        self.call_timeout_s = min(settings.hazelcast_call_timeout_s, renew_s)
        self._stop = threading.Event()
        self._lock = threading.Lock()  # the keeper is read by may_write() from other threads
        self._thread: threading.Thread | None = None
        self._started: StartedClient | None = None
        self._store: LeaseStore | None = None
        self._attempt: tuple[str, float] | None = None  # a takeover sent without an answer: (text, sent at)
        #: The current record while active (for the artifact and status), and when the last takeover happened.
        self.since: str | None = None
        self.last_error: str | None = None

    # -- public ---------------------------------------------------------------------------------------

    @property
    def role(self) -> Role:
        return self.keeper.role

    @property
    def epoch(self) -> int | None:
        return self.keeper.epoch

    def may_write(self) -> bool:
        """True while this machine holds the lease and it cannot have lapsed in any standby's eyes."""
        with self._lock:
            return self.keeper.may_write(self.clock())

    def start(self) -> LeaseElector:
        self._thread = threading.Thread(target=self._run, name="lease-elector", daemon=True)
        self._thread.start()
        return self

    def stop(self, release: bool = True, timeout_s: float = 5.0) -> None:
        """Stop the thread; when ``release`` and active, hand the lease over at once (one call, with its deadline)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        with self._lock:
            step = self.keeper.release() if release else None
        if step is not None and self._store is not None:
            # Not abandoned by the stop flag that ended the thread's calls: this one call must go through.
            store = LeaseStore(self._store.map, self.key, self.call_timeout_s)
            try:
                done, _ = store.swap(step.expected, step.record)
                log.info("Lease released (epoch %d)%s", step.record.epoch, "" if done else ": someone else held it already")
            except Exception as exc:  # noqa: BLE001 - a standby takes it after lease_s anyway
                log.warning("Lease not released (%s: %s); a standby takes it once it lapses", type(exc).__name__, exc)
        if self._started is not None:
            self._started.shutdown(CLOSE_DEADLINE_S)

    # -- the loop -------------------------------------------------------------------------------------

    def _run(self) -> None:
        wait_s = 0.0
        while not self._stop.wait(wait_s):
            try:
                wait_s = self._turn()
            except CallAbandoned:
                return
            except Exception as exc:  # noqa: BLE001 - a call failed or timed out: the keeper's clock decides
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.debug("lease call failed: %s", self.last_error)
                wait_s = self._after_failure()

    def _connected_store(self) -> LeaseStore | None:
        if self._started is None:
            config = self.settings.client_config()
            config.update(invocation_timeout=self.call_timeout_s)
            self._started = StartedClient(config)  # async: never blocks on a frozen member
        if not self._started.wait_connected(self.call_timeout_s, self._stop.is_set):
            return None
        if self._store is None:
            imap = self._started.client.get_map(self.settings.features_map)
            self._store = LeaseStore(imap, self.key, self.call_timeout_s, self._stop.is_set)
        return self._store

    def _turn(self) -> float:
        """One step; returns how long to wait before the next."""
        store = self._connected_store()
        if store is None:
            return self._after_failure()
        if self.keeper.role is Role.STANDBY:
            return self._standby_turn(store)
        return self._active_turn(store)

    def _standby_turn(self, store: LeaseStore) -> float:
        raw = store.read()
        now = self.clock()
        if self._attempt is not None and raw == self._attempt[0]:
            text, sent_at = self._attempt  # our takeover got no answer but was written
            self._attempt = None
            return self._won(text, sent_at, "took the lease (the answer was late)")
        self._attempt = None
        with self._lock:
            step = self.keeper.observed(raw, now)
        if isinstance(step, Wait):
            return max(step.until - now, 0.0)
        assert isinstance(step, Take)
        record = replace(step.record, since=_wall_now())
        sent_at = self.clock()
        self._attempt = (record.to_json(), sent_at)
        done, found = store.swap(step.expected, record)
        self._attempt = None
        if done:
            assert found is not None
            return self._won(found, sent_at, step.reason)
        with self._lock:
            self.keeper.observed(found, self.clock())
        return 0.0

    def _won(self, text: str, sent_at: float, reason: str) -> float:
        with self._lock:
            self.keeper.took(text, sent_at)
        self._claim_latest(LeaseRecord.from_json(text).epoch)
        if self.keeper.role is not Role.ACTIVE or self.keeper.record is None:
            return 0.0  # lost it again while raising the epoch
        record = self.keeper.record
        self.since = record.since
        log.info("Took the lease (epoch %d): %s", record.epoch, reason)
        self.on_took_over(record.epoch, reason)
        return 0.0

    def _claim_latest(self, epoch: int) -> None:
        """Claim latest_eigen_scan for the new epoch at once: an old active's next move of it then fails,
        even before our bridge has started (fencing.claim_latest). Best effort: the bridge claims it too.

        Latest may speak for a higher epoch than the lease entry (the entry was lost: an operator's
        delete, a partition lost without backup): then our lease moves above it first, or our own
        bridge would be fenced at its first refresh and this machine would hold a lease nobody uses.
        """
        assert self._store is not None
        wait = lambda future, what: wait_future(future, self.call_timeout_s, what, self._stop.is_set)  # noqa: E731
        try:
            try:
                claim_latest(self._store.map, self.settings.latest_key, epoch, wait)
            except Fenced as fenced:
                with self._lock:
                    self.keeper.note_epoch(fenced.epoch)
                    current = self.keeper.mine
                    record = self.keeper.record
                assert current is not None and record is not None
                higher = replace(record, epoch=fenced.epoch + 1, renewal=record.renewal + 1)
                sent_at = self.clock()
                done, found = self._store.swap(current, higher)
                if not done:
                    with self._lock:
                        step = self.keeper.renew_refused(found, self.clock())
                    if isinstance(step, StepDown):
                        self._lost(step)
                    return
                with self._lock:
                    self.keeper.took(higher.to_json(), sent_at)
                log.warning("Lease epoch raised from %d to %d above latest_eigen_scan's", epoch, higher.epoch)
                claim_latest(self._store.map, self.settings.latest_key, higher.epoch, wait)
        except Exception as exc:  # noqa: BLE001 - the bridge's first refresh claims it (or is fenced) anyway
            log.warning("Could not claim %s for epoch %d yet (%s: %s); the bridge will", self.settings.latest_key,
                        epoch, type(exc).__name__, exc)

    def _active_turn(self, store: LeaseStore) -> float:
        now = self.clock()
        with self._lock:
            step = self.keeper.due(now)
        if isinstance(step, Wait):
            return max(step.until - now, 0.0)
        if isinstance(step, StepDown):
            return self._lost(step)
        assert isinstance(step, Renew)
        text = step.record.to_json()
        with self._lock:
            self.keeper.sending(now)
        try:
            done, found = store.swap(step.expected, step.record)
        except CallAbandoned:
            raise
        except Exception as exc:  # noqa: BLE001 - no answer in time (or a failed call): maybe written, maybe not
            self.last_error = f"{type(exc).__name__}: {exc}"
            with self._lock:
                after = self.keeper.renew_unanswered(text, now, self.clock())
            if isinstance(after, StepDown):
                return self._lost(after)
            return max(after.until - self.clock(), 0.0) if isinstance(after, Wait) else 0.0
        with self._lock:
            if done:
                self.keeper.renewed(text, now)
                return 0.0
            after = self.keeper.renew_refused(found, self.clock())
        if isinstance(after, StepDown):
            return self._lost(after)
        return 0.0

    def _lost(self, step: StepDown) -> float:
        log.warning("Stepped down: %s", step.reason)
        self.since = None
        self.on_stepped_down(step.reason)
        return 0.0

    def _after_failure(self) -> float:
        """A call failed: the active steps down once its lease may have lapsed; either way, try again soon."""
        now = self.clock()
        if self.keeper.role is Role.ACTIVE:
            with self._lock:
                step = self.keeper.due(now)
            if isinstance(step, StepDown):
                return self._lost(step)
        return min(self.keeper.renew_s, 0.5)

