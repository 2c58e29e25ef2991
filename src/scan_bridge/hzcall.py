"""Deadlines around the threaded Hazelcast client: the one place that knows how to bound its calls.

Why this exists (measured in bench/bench_frozen_member.py, docs/performance.md): against a member
frozen with SIGSTOP, or behind a network that silently drops packets, the threaded client
(hazelcast-python-client 5.7.0) never raises by itself within a useful time:

* the constructor with ``async_start=False`` does not return at all, whatever ``cluster_connect_timeout``
  says (the authentication future it waits on has no timeout);
* a ``Future.result()`` has no timeout, and ``invocation_timeout`` only counts once a call has
  *failed*, so a call on an open but silent connection waits until ``heartbeat_timeout`` closes it;
* ``client.shutdown()`` does not wait for the member (a few ms even while it is frozen); we still
  bound it, because it is one more call we cannot afford to wait on during a SIGTERM.

So every caller here starts clients with ``async_start=True`` and waits on an event with a deadline,
and waits on futures through :func:`wait_future`. The bridge and the health check both use this module.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["CLOSE_DEADLINE_S", "CallAbandoned", "CallTimedOut", "StartedClient", "shutdown_client", "wait_future"]

_SLICE_S = 0.1  # how often a wait looks at its abandon() hook: a SIGTERM is heard within this
#: ``client.shutdown()`` takes milliseconds even with the member frozen (bench/bench_frozen_member.py);
#: bounded anyway, well inside the bridge's 4.5 s SIGTERM deadline.
CLOSE_DEADLINE_S = 2.0


class CallTimedOut(TimeoutError):
    """A call to Hazelcast got no answer within its deadline: a frozen member or a silent network."""


class CallAbandoned(Exception):
    """The caller gave up waiting (the process is stopping); the call may still complete later."""


def _never() -> bool:
    return False


def wait_future(future: Any, timeout_s: float, what: str, abandon: Callable[[], bool] = _never) -> Any:
    """``future.result()`` within ``timeout_s`` seconds.

    Raises :class:`CallTimedOut` (naming ``what``) when the deadline passes, :class:`CallAbandoned`
    as soon as ``abandon()`` turns true (checked every 0.1 s; it must be cheap and signal-safe,
    e.g. reading a flag), and whatever the call itself raised.
    """
    if abandon():
        raise CallAbandoned(what)
    if not future.done():
        done = threading.Event()
        future.add_done_callback(lambda _f: done.set())
        deadline = time.monotonic() + timeout_s
        while not done.wait(min(_SLICE_S, max(deadline - time.monotonic(), 0.0))):
            if abandon():
                raise CallAbandoned(what)
            if time.monotonic() >= deadline:
                raise CallTimedOut(f"{what}: no answer within {timeout_s:.1f} s")
    return future.result()


def shutdown_client(client: Any, timeout_s: float) -> bool:
    """``client.shutdown()`` in a daemon thread; True if it finished within ``timeout_s``.

    A client that does not finish in time is left to its daemon threads (they die with the process).
    """
    finished = threading.Event()

    def run() -> None:
        try:
            client.shutdown()
        except Exception:  # noqa: BLE001 - a client that cannot shut down cleanly is dropped anyway
            pass
        finally:
            finished.set()

    threading.Thread(target=run, name="hazelcast-shutdown", daemon=True).start()
    return finished.wait(timeout_s)


class StartedClient:
    """A ``HazelcastClient`` started with ``async_start=True``: the constructor returns at once.

    ``connected`` is set on CONNECTED and cleared on DISCONNECTED; SHUTDOWN sets it too, to wake a
    waiter, who then finds the client not running (:meth:`wait_connected` returns False).
    """

    def __init__(self, config: dict[str, Any], listeners: Iterable[Callable[[str], None]] = ()) -> None:
        from hazelcast.client import HazelcastClient

        self.connected = threading.Event()
        config = {**config, "async_start": True, "lifecycle_listeners": [self._on_state, *listeners]}
        self.client = HazelcastClient(**config)

    def _on_state(self, state: str) -> None:
        from hazelcast.lifecycle import LifecycleState

        if state == LifecycleState.CONNECTED:
            self.connected.set()
        elif state == LifecycleState.DISCONNECTED:
            self.connected.clear()
        elif state == LifecycleState.SHUTDOWN:
            self.connected.set()

    @property
    def running(self) -> bool:
        return bool(self.client.lifecycle_service.is_running())

    def wait_connected(self, timeout_s: float, abandon: Callable[[], bool] = _never) -> bool:
        """True once connected within ``timeout_s`` (False: timed out, abandoned, or the client gave up)."""
        deadline = time.monotonic() + timeout_s
        while not self.connected.wait(min(_SLICE_S, max(deadline - time.monotonic(), 0.0))):
            if abandon() or time.monotonic() >= deadline:
                return False
        return self.running

    def shutdown(self, timeout_s: float) -> bool:
        """Shut the client down within ``timeout_s`` (see :func:`shutdown_client`)."""
        return shutdown_client(self.client, timeout_s)
