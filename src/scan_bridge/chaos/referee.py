"""The referee: watches Hazelcast with a client of its own and judges what the bridge did.

It is independent of the bridge's code on purpose: its own ``hazelcast.HazelcastClient``, its own
JSON parsing, and the history keys the scanner computed when it wrote each file
(:mod:`.scanner`), never ``scan_bridge.ordering`` or the sink. It learns what reached Hazelcast two
ways, because either alone can miss things:

* entry listeners on the history map (keys only) and on ``latest_eigen_scan`` (with the value):
  exact arrival times;
* a poll every ``poll_s`` of the history's key set and of latest, each call with a deadline: fills
  in what a listener missed while the client reconnected (a member killed or frozen).

The harness asks it, continuously and at the end: which scans are overdue (not in history within
the bound after the fault that hid them ended), whether latest ever moved backwards or named a scan
nobody wrote, and whether a key in history is one the scanner never wrote as a complete scan.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import hazelcast

from .scanner import Ledger, history_key

CALL_TIMEOUT_S = 5.0


@dataclass(slots=True)
class LatestSeen:
    at: float  # time.time()
    number: int
    key: int
    via: str  # "event" or "poll"


def _wait(future: Any, timeout: float) -> Any:
    """``future.result()`` with a deadline (the threaded client's futures have none of their own)."""
    done = threading.Event()
    future.add_done_callback(lambda _f: done.set())
    if not done.wait(timeout):
        raise TimeoutError(f"no answer within {timeout:g} s")
    return future.result()


def _latest_key(text: str) -> tuple[int, int]:
    document = json.loads(text)
    when = datetime.fromisoformat(document["timestamp"].replace("Z", "+00:00"))
    return int(document["scan_number"]), history_key(when)


class Referee:
    """See the module docstring. ``violation(what)`` is called for every broken invariant it notices itself."""

    def __init__(
        self,
        cluster_name: str,
        members: list[str],
        ledger: Ledger,
        violation: Callable[[str], None],
        features_map: str = "DOLPHIN_FEATURES",
        history_map: str = "DOLPHIN_EIGEN_SCANS",
        latest_key: str = "latest_eigen_scan",
        poll_s: float = 2.0,
    ) -> None:
        logging.getLogger("hazelcast").setLevel(logging.CRITICAL)
        self.ledger = ledger
        self.violation = violation
        self.poll_s = poll_s
        self.seen: dict[int, float] = {}  # history key -> first time.time() it was seen in history
        self.latest: list[LatestSeen] = []
        self.unknown: dict[int, float] = {}  # keys in history the ledger did not (yet) hold
        self.poll_failures = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._last_latest: dict[str, int] = {}  # via -> key of the last latest seen that way
        self.client = hazelcast.HazelcastClient(
            cluster_name=cluster_name,
            cluster_members=members,
            cluster_connect_timeout=120,
            heartbeat_timeout=15,
            invocation_timeout=10,
        )
        self.history = self.client.get_map(history_map)
        self.features = self.client.get_map(features_map)
        self.latest_name = latest_key
        _wait(self.history.add_entry_listener(include_value=False, added_func=self._on_key, updated_func=self._on_key), 30)
        _wait(
            self.features.add_entry_listener(
                include_value=True, key=latest_key, added_func=self._on_latest, updated_func=self._on_latest
            ),
            30,
        )
        self._thread = threading.Thread(target=self._poll_loop, name="referee-poll", daemon=True)
        self._thread.start()

    # -- what arrives -------------------------------------------------------------------------------

    def _see(self, key: int, at: float) -> None:
        with self._lock:
            if key not in self.seen:
                self.seen[key] = at
                if key not in self.ledger.scans:
                    self.unknown.setdefault(key, at)

    def _on_key(self, event: Any) -> None:
        self._see(int(event.key), time.time())

    def _on_latest(self, event: Any) -> None:
        try:
            number, key = _latest_key(event.value.to_string() if hasattr(event.value, "to_string") else str(event.value))
        except (ValueError, KeyError, TypeError) as exc:
            self.violation(f"latest_eigen_scan is not a scan document ({exc})")
            return
        self._record_latest(number, key, "event")

    def _record_latest(self, number: int, key: int, via: str) -> None:
        now = time.time()
        with self._lock:
            previous = self._last_latest.get(via)
            self._last_latest[via] = key
            if previous == key:
                return
            self.latest.append(LatestSeen(now, number, key, via))
        if previous is not None and key < previous:
            old = self.ledger.scans.get(previous)
            self.violation(
                f"latest_eigen_scan moved backwards (seen by {via}): from #{old.number if old else '?'} (key {previous}) "
                f"to #{number} (key {key})"
            )

    def _poll_loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            self.poll_once()

    def poll_once(self) -> bool:
        """One look at the history's keys and at latest; False when the cluster did not answer in time."""
        try:
            keys = _wait(self.history.key_set(), CALL_TIMEOUT_S)
            value = _wait(self.features.get(self.latest_name), CALL_TIMEOUT_S)
        except Exception:  # noqa: BLE001 - frozen or restarting member: the next poll tries again
            self.poll_failures += 1
            return False
        now = time.time()
        for key in keys:
            self._see(int(key), now)
        if value is not None:
            try:
                number, key = _latest_key(value.to_string() if hasattr(value, "to_string") else str(value))
            except (ValueError, KeyError, TypeError) as exc:
                self.violation(f"latest_eigen_scan is not a scan document ({exc})")
            else:
                self._record_latest(number, key, "poll")
        return True

    # -- judging ------------------------------------------------------------------------------------

    def latest_key_now(self) -> int | None:
        with self._lock:
            return self.latest[-1].key if self.latest else None

    def first_latest_at_or_after(self, key: int, since: float) -> float | None:
        """When latest first named a scan with key >= ``key``, seen at or after ``since``."""
        with self._lock:
            for item in self.latest:
                if item.at >= since and item.key >= key:
                    return item.at
        return None

    def check_unknown(self, older_than_s: float = 10.0) -> None:
        """Keys in history the scanner never wrote as a complete scan (after a grace for the ledger to catch up)."""
        now = time.time()
        with self._lock:
            pending = dict(self.unknown)
        for key, at in pending.items():
            if key in self.ledger.scans:
                with self._lock:
                    self.unknown.pop(key, None)
            elif now - at > older_than_s:
                with self._lock:
                    self.unknown.pop(key, None)
                self.violation(f"history holds key {key}, which the scanner never wrote as a complete scan")

    def check_latest_known(self) -> None:
        with self._lock:
            items = list(self.latest)
        for item in items:
            if item.key not in self.ledger.scans:
                self.violation(f"latest_eigen_scan named #{item.number} (key {item.key}), not a complete scan the scanner wrote")

    def close(self) -> None:
        self._stop.set()
        self._thread.join(CALL_TIMEOUT_S * 2 + 1)
        try:
            self.client.shutdown()
        except Exception:  # noqa: BLE001 - closing at the end of a run: nothing left to protect
            pass
