"""``deploy.py stop --force``'s process sweep: only the named run's processes, daemon and bridge alike."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator

import pytest

from scan_bridge.run_processes import RUN_ID_VARIABLE, run_processes, stop_run_processes

from .e2e_support import gone_or_zombie

SLEEPER = "import time\ntime.sleep(600)\n"


@pytest.fixture
def spawn() -> Iterator:
    started: list[subprocess.Popen[bytes]] = []

    def start(run_id: str | None, *extra: str) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if k != RUN_ID_VARIABLE}
        if run_id is not None:
            env[RUN_ID_VARIABLE] = run_id
        proc = subprocess.Popen([sys.executable, "-c", SLEEPER, *extra], env=env)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


def test_only_the_named_runs_processes_are_stopped(spawn) -> None:
    ours, theirs = str(uuid.uuid4()), str(uuid.uuid4())
    daemon = spawn(ours)
    bridge = spawn(ours, "scan_bridge.service")  # the module name in its command line: a bridge
    other_run = spawn(theirs)
    no_run = spawn(None)

    assert sorted(p.pid for p in run_processes(ours)) == sorted([daemon.pid, bridge.pid])
    stopped = stop_run_processes(ours, wait_s=10)

    assert stopped == [daemon.pid, bridge.pid], "the daemon first, so it cannot restart the bridge"
    for proc in (daemon, bridge):
        proc.wait(10)
        assert gone_or_zombie(proc.pid)
    assert other_run.poll() is None and no_run.poll() is None, "another run's process, or none's, untouched"
    assert run_processes(ours) == []
    assert stop_run_processes(ours, wait_s=1) == []
