"""The daemon and the bridge's reader (issue 16), with a real Prefect server, a real member, the real
daemon process and its real bridge:

* a file that crashes the reader in native code: the bridge dies once, the next one skips the file,
  and the daemon turns its report into a warning and a ``scan-bridge.file-crashed-reader`` event;
* a catch-up that lasts longer than the health check's heartbeat limit: the bridge beats between
  files (marked busy), and the daemon does not restart it.

The crash is injected into the daemon's bridge only, through a ``sitecustomize`` on the test's
PYTHONPATH that applies test_bad_files' parser patch in ``python -m scan_bridge.service``.
"""

from __future__ import annotations

import os
import re
import textwrap
import time
from pathlib import Path

import httpx
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

from scan_bridge.names import FILE_CRASHED_READER_EVENT

from .prefect_support import RunReader
from .support import wait_for, write_many_scans
from .test_bad_files import CRASH_PATCH, good

CRASH_WARNING = "A scan file crashed the bridge's reader and is skipped for good"


def events(api_url: str, name: str) -> list[dict]:
    response = httpx.post(f"{api_url}/events/filter", json={"filter": {"event": {"name": [name]}}, "limit": 50}, timeout=10)
    response.raise_for_status()
    return response.json()["events"]


def line_with(run: RunReader, fragment: str) -> str | None:
    return next((line for line in run.logs() if fragment in line), None)


def crash_hook(folder: Path) -> str:
    """A PYTHONPATH whose sitecustomize makes the bridge (not the daemon) segfault on CRASH_ON_FILE."""
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(
        'import os, sys\nif "scan_bridge.service" in sys.orig_argv and os.environ.get("CRASH_ON_FILE"):\n'
        + textwrap.indent(CRASH_PATCH, "    ")
    )
    return os.pathsep.join(p for p in (str(folder), os.environ.get("PYTHONPATH", "")) if p)


def test_a_file_that_crashed_the_reader_is_an_event_and_a_warning(
    prefect_server, client, hz_env, view, scans, start_daemon, tmp_path
):
    for n in (1, 2, 3):
        good(scans, n)
    poison = good(scans, 4)
    good(scans, 5)  # not the newest: a skipped newest file is restarted for once (docs/daemon.md), not the point here
    daemon = start_daemon(
        hz_env,
        CRASH_ON_FILE=str(poison),
        PYTHONPATH=crash_hook(tmp_path / "hook"),
        SCAN_BRIDGE_STATE_DIR=str(tmp_path / "bridge-state"),
        SCAN_BRIDGE_START_GRACE_S="15",  # a loaded machine: the restarted bridge may take seconds to connect
    )
    run = RunReader(client, daemon.wait_flow_run_id())
    run.wait_logged("Bridge killed by SIGSEGV", 60)  # the first bridge died reading #4 (the second will too)
    warning = wait_for(lambda: line_with(run, CRASH_WARNING), 60, "the daemon's warning")  # the next bridge skipped it
    assert warning.endswith(str(poison))

    def crashed_events() -> list[dict]:
        return [e for e in events(prefect_server.api_url, f"scan-bridge.{FILE_CRASHED_READER_EVENT}")
                if e["payload"].get("file") == str(poison)]

    (event,) = wait_for(crashed_events, 30, "the file-crashed-reader event")
    assert event["resource"]["prefect.resource.id"] == "scan-bridge.daemon.standalone"
    assert "died while reading it" in event["payload"]["reason"]
    assert event["payload"]["bridge_pid"] == daemon.bridge_pid()
    levels = {
        log.message: log.level
        for log in client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id])), limit=200)
    }
    assert levels[warning] == 30, "a WARNING in the flow's log"

    wait_for(lambda: {1, 2, 3, 5} <= view.history_keys(), 30, "the good scans")
    good(scans, 6)
    wait_for(lambda: 6 in view.history_keys(), 30, "a live scan after the crash")
    run.wait_logged("Health: HEALTHY", 30, after=run.logs().index(warning))
    assert 4 not in view.history_keys()
    assert run.count(CRASH_WARNING) == 1
    assert run.count("Bridge killed by SIGSEGV") == 2  # read once more after the first death (a kill -9 may land mid-read)
    assert run.count("Restarting the bridge") == 2  # the two crashes, then no more: no crash loop


FILES = 30000  # long enough to outlast the bounds on a quiet machine too (12,000 took 4.6 s there)


def test_a_busy_bridge_is_not_restarted(client, hz_env, view, scans, start_daemon):
    folder = scans / "2026-03-24"
    folder.mkdir()
    write_many_scans(folder, FILES, time.time() - 60)  # complete long ago, as after an outage
    daemon = start_daemon(
        hz_env,
        SCAN_BRIDGE_RETENTION=str(FILES),
        SCAN_BRIDGE_HEARTBEAT_INTERVAL_S="0.1",
        # 30 beats: a loaded 2-core machine paused the beat for 1.7 s once (limit 1.5 s then), during this catch-up
        SCAN_BRIDGE_HEARTBEAT_STALE_AFTER_S="3",
        SCAN_BRIDGE_NEWER_FILE_GRACE_S="1",
    )
    run = RunReader(client, daemon.wait_flow_run_id())
    pid = daemon.bridge_pid()
    done = wait_for(lambda: line_with(run, "[Bridge] [OK] Caught up"), 180, "the end of the catch-up", 0.3)
    took = float(re.search(r"from disk in ([0-9.]+) s", done).group(1))
    assert took > 5, f"the catch-up took {took} s: too short to outlast the start grace and a few checks"
    logs = run.logs()
    assert any(line.startswith("Health:") and ", busy" in line for line in logs), "a health check saw the busy bridge"
    assert run.count("Restarting the bridge") == 0, [line for line in logs if "Restarting" in line]
    assert daemon.bridges() == [pid]
    wait_for(lambda: len(view.history_keys()) == FILES, 30, "every scan pushed")
