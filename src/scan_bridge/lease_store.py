"""The failover lease in Hazelcast: read, take, renew and release one map entry, every call with a deadline.

The rules (who may take it, when to renew) are pure, in :mod:`scan_bridge.lease`; this module only
moves the entry, and only by compare-and-set: ``put_if_absent`` when there is none, else
``replace_if_same`` against the exact text last seen. The member compares the stored bytes, so the
value is a plain string (:meth:`LeaseRecord.to_json` writes one fixed text per record), not a
``HazelcastJsonValue``: what is compared is then exactly what was written.

Why a map entry and not the CP subsystem's ``FencedLock``: docs/high-availability.md ("The lease").
Every call goes through :func:`scan_bridge.hzcall.wait_future`: a frozen member makes a call raise
:class:`~scan_bridge.hzcall.CallTimedOut` within ``call_timeout_s`` instead of holding the daemon.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .hzcall import CLOSE_DEADLINE_S, StartedClient, wait_future
from .lease import LeaseRecord
from .settings import HazelcastSettings

__all__ = ["LeaseStore", "describe_lease", "read_lease"]


def _never() -> bool:
    return False


class LeaseStore:
    """One lease entry (``key`` in ``imap``, a non-blocking map proxy of the Python client)."""

    def __init__(self, imap: Any, key: str, call_timeout_s: float, abandon: Callable[[], bool] = _never) -> None:
        self.map = imap
        self.key = key
        self.call_timeout_s = call_timeout_s
        self._abandon = abandon

    def _wait(self, future: Any, what: str) -> Any:
        return wait_future(future, self.call_timeout_s, f"{what} lease {self.key!r}", self._abandon)

    def read(self) -> str | None:
        """The entry's text, None when absent. A value that is not text (someone else's) comes back as its repr."""
        value = self._wait(self.map.get(self.key), "reading")
        return value if value is None or isinstance(value, str) else repr(value)

    def swap(self, expected: str | None, record: LeaseRecord) -> tuple[bool, str | None]:
        """Compare-and-set from ``expected`` (None: absent) to ``record``: (done, the text written or found).

        When refused, the second item is what the entry holds now (None if it vanished meanwhile),
        so the caller can tell who won.
        """
        text = record.to_json()
        if expected is None:
            previous = self._wait(self.map.put_if_absent(self.key, text), "taking")
            if previous is None:
                return True, text
            return False, previous if isinstance(previous, str) else repr(previous)
        if self._wait(self.map.replace_if_same(self.key, expected, text), "replacing"):
            return True, text
        return False, self.read()

    def erase(self) -> None:
        """Remove the entry whatever it holds (tests and an operator's reset only; never the daemon)."""
        self._wait(self.map.delete(self.key), "erasing")


def read_lease(settings: HazelcastSettings, key: str, timeout_s: float) -> str | None:
    """The lease entry's text from a client of its own (for ``deploy.py status``), within ``timeout_s`` in all.

    None when there is no lease (one machine, failover off). Raises TimeoutError (or what the call
    raised) when the cluster does not answer in time.
    """
    config = settings.client_config()
    config.update(cluster_connect_timeout=timeout_s, invocation_timeout=timeout_s)
    started = StartedClient(config)
    try:
        if not started.wait_connected(timeout_s):
            raise TimeoutError(f"no Hazelcast cluster at {', '.join(settings.hazelcast_members)} within {timeout_s:g} s")
        return LeaseStore(started.client.get_map(settings.features_map), key, timeout_s).read()
    finally:
        started.shutdown(CLOSE_DEADLINE_S)


def describe_lease(text: str | None) -> str | None:
    """One line for an operator: who is active, under which epoch, since when; None without a lease."""
    if text is None:
        return None
    try:
        record = LeaseRecord.from_json(text)
    except ValueError as exc:
        return f"lease entry unreadable ({exc})"
    if record.holder is None:
        return f"no machine active: lease released at epoch {record.epoch} (a standby takes it within a renewal)"
    return f"{record.holder} active since {record.since or '?'} (lease epoch {record.epoch}: the last takeover)"
