"""Stopping a child process in order: a polite signal, a grace period, then SIGKILL.

One home for the sequence every owner of a child uses (the standalone daemon's Prefect server, the
local stack, the chaos harness, the tests' bridge runner): a child that ignores the signal, or hangs
in its shutdown, is still gone when the grace runs out, and every wait has a deadline.
"""

from __future__ import annotations

import signal
import subprocess


def stop_child(
    proc: subprocess.Popen[bytes], grace_s: float, kill_wait_s: float | None = 30.0, sig: int = signal.SIGTERM
) -> int | None:
    """Send ``sig`` to a running ``proc``, wait up to ``grace_s``, then SIGKILL and wait up to ``kill_wait_s``
    (None: until it is gone). Its exit code; a child that had exited already is only reaped."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(kill_wait_s)
    return proc.returncode
