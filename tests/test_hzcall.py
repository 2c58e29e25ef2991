"""The deadline helpers, on the client's own Future class (no cluster needed: nothing crosses a process)."""

from __future__ import annotations

import threading
import time

import pytest
from hazelcast.future import Future

from scan_bridge.hzcall import CallAbandoned, CallTimedOut, wait_future


def test_an_answered_call_returns_its_result() -> None:
    future: Future = Future()
    threading.Timer(0.05, lambda: future.set_result(42)).start()
    assert wait_future(future, 5, "get") == 42


def test_a_failed_call_raises_what_the_client_raised() -> None:
    future: Future = Future()
    future.set_exception(OSError("connection closed"))
    with pytest.raises(OSError, match="connection closed"):
        wait_future(future, 5, "get")


def test_an_unanswered_call_times_out_naming_the_call() -> None:
    started = time.monotonic()
    with pytest.raises(CallTimedOut, match=r"key_set of H: no answer within 0\.3 s"):
        wait_future(Future(), 0.3, "key_set of H")
    assert time.monotonic() - started < 3  # a deadline, not a hang (generous for a loaded machine)


def test_abandon_gives_up_long_before_the_deadline() -> None:
    stop = [False]
    threading.Timer(0.1, lambda: stop.__setitem__(0, True)).start()
    started = time.monotonic()
    with pytest.raises(CallAbandoned):
        wait_future(Future(), 60, "put_all", abandon=lambda: stop[0])
    assert time.monotonic() - started < 10


pytestmark = pytest.mark.unit  # pure: see pyproject.toml markers
