"""``deploy.py start``: the Prefect worker in the foreground, ended within a bound by Ctrl+C or SIGTERM.

Prefect's worker answers the first SIGINT by stopping gracefully and only a *second* one with
SIGKILL. systemd, tmux scripts and our own tests send one signal and wait; a worker whose graceful
stop hangs (seen a few times with Prefect 3.9 on a loaded machine, cause not found) would then keep
its terminal, or its unit, for good. So the launcher forwards the signal once, and if the worker has
not ended ``grace_s`` later it ends it with SIGABRT. The worker runs with Python's faulthandler on,
so that SIGABRT first writes every thread's stack to the worker's stderr: the next person sees where
it hung instead of a bare kill. The flow runs the worker started are not touched (Prefect does not
forward a worker's SIGINT to them either); ``deploy.py stop`` is what ends a run.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType

#: Seconds from the first stop signal to SIGABRT. A healthy Prefect worker stops in 1-3 s.
WORKER_STOP_GRACE_S = 20.0
#: Seconds a worker gets to die of SIGABRT (faulthandler writes its stacks first) before SIGKILL.
ABORT_GRACE_S = 10.0
#: Exit statuses that mean "stopped because we asked": 0, killed by or exited after SIGINT/SIGTERM.
_ASKED = {0, -signal.SIGINT, -signal.SIGTERM, 128 + signal.SIGINT, 128 + signal.SIGTERM}


def prefect_worker_argv(pool: str, name: str | None) -> list[str]:
    """``python -X faulthandler -m prefect worker start --pool POOL [--name NAME]`` with our Python."""
    argv = [sys.executable, "-X", "faulthandler", "-m", "prefect", "worker", "start", "--pool", pool]
    if name:
        argv += ["--name", name]
    return argv


def run_until_stopped(
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    grace_s: float = WORKER_STOP_GRACE_S,
) -> int:
    """Run ``argv`` in the foreground; forward SIGINT/SIGTERM once; SIGABRT it ``grace_s`` later.

    Returns 0 when the child ended because it was asked to (gracefully, by a signal, or by our
    SIGABRT), else the child's own exit status: a worker that fails on its own is not hidden.
    """
    child = subprocess.Popen(list(argv), env=dict(env), cwd=cwd, process_group=0)
    stop_at: float | None = None

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal stop_at
        if child.poll() is None:
            child.send_signal(signal.SIGTERM if signum == signal.SIGHUP else signum)
        if stop_at is None:
            stop_at = time.monotonic() + grace_s

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        while True:
            # A bounded wait, not wait(): a blocking waitpid is resumed after the handler runs, so
            # the deadline set by a signal would never be looked at.
            try:
                code = child.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                pass
            if stop_at is not None and time.monotonic() >= stop_at:
                print(
                    f"deploy.py start: the worker (pid {child.pid}) was still running {grace_s:g} s after the"
                    " stop signal; ending it with SIGABRT (its threads' stacks are printed above)",
                    file=sys.stderr,
                    flush=True,
                )
                child.send_signal(signal.SIGABRT)
                try:
                    child.wait(timeout=ABORT_GRACE_S)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
                return 0
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0 if code in _ASKED else code
