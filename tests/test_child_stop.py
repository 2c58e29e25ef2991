"""Stopping a child (child_stop.py), with real child processes: the polite signal first, SIGKILL
only after the grace, and an exited child only reaped."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from scan_bridge.child_stop import stop_child

IGNORES_TERM = "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(60)"


def _child(code: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"  # its handlers are in place
    return proc


def test_a_child_that_obeys_stops_on_the_signal() -> None:
    proc = _child("import time; print('ready', flush=True); time.sleep(60)")
    started = time.monotonic()
    assert stop_child(proc, grace_s=30) == -signal.SIGTERM
    assert time.monotonic() - started < 10


def test_the_signal_can_be_another() -> None:
    proc = _child("import signal, sys, time; signal.signal(signal.SIGINT, lambda *_: sys.exit(7)); print('ready', flush=True); time.sleep(60)")
    assert stop_child(proc, grace_s=30, sig=signal.SIGINT) == 7


def test_a_child_that_ignores_it_is_killed_after_the_grace() -> None:
    proc = _child(IGNORES_TERM)
    started = time.monotonic()
    assert stop_child(proc, grace_s=0.5, kill_wait_s=10) == -signal.SIGKILL
    assert time.monotonic() - started >= 0.5


def test_an_exited_child_is_only_reaped() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    proc.wait(30)
    assert stop_child(proc, grace_s=0.1) == 3
