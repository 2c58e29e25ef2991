"""The daemon as it runs: a real Prefect server, ``python -m scan_bridge.daemon_flow`` as a real process,
a real bridge under it, a real Hazelcast member, a simulated scanner; short intervals.

Everything is observed from outside: processes by pid (psutil), the run's state, logs and artifact
through the Prefect API. One Prefect server serves the whole module.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import signal
import socket
import time
import xml.etree.ElementTree as ET

import httpx
import psutil
import pytest
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

from scan_bridge.daemon_flow import ARTIFACT_KEY

from .daemon_fixtures import FAST, wait_connected
from .e2e_support import descendants, mentioning, still_running
from .prefect_support import FINAL_STATES, DaemonRunner, RunReader, alive, clean_env, free_port
from .support import View, unique_maps, wait_for


# --------------------------------------------------------------------------------------------------


def test_bridge_lines_health_and_artifact_reach_prefect(client, scanner, hz_env, start_daemon):
    daemon = start_daemon(hz_env)
    run = RunReader(client, daemon.wait_flow_run_id())
    pid = daemon.bridge_pid()

    run.wait_logged("[Bridge] Connected to Hazelcast")
    run.wait_logged("[Bridge] [OK] ")
    healthy = run.wait_logged("Health: HEALTHY")
    assert f"(pid {pid})" in run.logs()[healthy], "the health line names the bridge's heartbeat pid"

    def healthy_artifact():
        artifact = run.health_artifact(ARTIFACT_KEY)
        return artifact if artifact is not None and "## Scan bridge: HEALTHY" in (artifact.data or "") else None

    artifact = wait_for(healthy_artifact, 30, "a HEALTHY health artifact", 0.3)
    assert artifact.type == "markdown"
    assert f"| bridge pid | {pid} |" in artifact.data
    assert "| bridge state | RUNNING |" in artifact.data or "| bridge state | STARTING |" in artifact.data
    # The chart: an SVG as a base64 data-URI image above the tables, with the checks so far on it.
    image = re.search(r"!\[[^\]]*\]\(data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)\)", artifact.data)
    assert image is not None and image.start() < artifact.data.index("| Figure | Value |")
    svg = ET.fromstring(base64.b64decode(image.group(1)))
    ns = {"svg": "http://www.w3.org/2000/svg"}
    assert len(svg.findall(".//svg:g[@id='thresholds']/svg:line", ns)) == 2
    assert svg.findall(".//svg:g[@id='median']/svg:polyline", ns), "the first checks are drawn"
    assert svg.find(".//svg:g[@id='band']/svg:path[@class='healthy']", ns) is not None
    assert run.state_type() == "RUNNING"


def test_killed_bridge_is_restarted(client, scanner, hz_env, view, start_daemon):
    daemon = start_daemon(hz_env, SCAN_BRIDGE_RESTART_DELAY_S="1")
    run = RunReader(client, daemon.wait_flow_run_id())
    old = daemon.bridge_pid()
    wait_connected(view, old)

    os.kill(old, signal.SIGKILL)
    new = daemon.bridge_pid(timeout=1 + 2, other_than=old)  # restart_delay_s + 2 s

    assert not alive(old)
    wait_connected(view, new)
    run.wait_logged("Bridge killed by SIGKILL")
    line = run.logs()[run.wait_logged("Restarting the bridge")]
    assert "bridge killed by SIGKILL" in line and "restart 1 of 3" in line
    run.wait_logged(f"(pid {new})")  # a health check of the new bridge: no stale report about the old one killed it
    assert daemon.bridges() == [new]
    assert run.count("Restarting the bridge") == 1


def test_crash_loop_ends_the_run_failed(client, scanner, hz_env, view, start_daemon):
    daemon = start_daemon(
        hz_env,
        SCAN_BRIDGE_MAX_RESTARTS="3",
        SCAN_BRIDGE_RESTART_DELAY_S="0.5",
        SCAN_BRIDGE_RESTART_WINDOW_S="600",
    )
    run = RunReader(client, daemon.wait_flow_run_id())
    previous = None
    for _crash in range(4):
        pid = daemon.bridge_pid(timeout=30, other_than=previous)
        wait_connected(view, pid)  # it said something first: its last lines go into the message
        os.kill(pid, signal.SIGKILL)
        previous = pid

    code = daemon.wait(60)
    assert code == 1, "docs/daemon.md: a run that ends Failed exits 1"
    assert "scan-bridge daemon ended FAILED" in daemon.output()
    assert not [pid for pid in daemon.seen_bridges if alive(pid)], "no bridge left"

    state = wait_for(lambda: (lambda r: r.state if r.state and r.state.is_final() else None)(run.flow_run()), 30,
                     "a final state", 0.3)
    assert state.type.value == "FAILED"
    message = state.message or ""
    # Given up on the fourth exit, not on a health check begun while the third bridge was down
    # (that one would have killed the fourth bridge as it started, and quoted none of its lines).
    assert message.startswith("Gave up on the bridge: bridge killed by SIGKILL; 3 restarts within the last 600s")
    assert "3 restarts in all" in message
    assert "last exit: killed by SIGKILL" in message
    assert "Connected to Hazelcast" in message, "the bridge's last lines (as messages, not JSON)"
    assert '{"time"' not in message
    run.wait_logged("Gave up on the bridge")
    assert len(daemon.seen_bridges) == 4
    assert run.count("Restarting the bridge") == 3


def test_frozen_bridge_is_replaced(client, scanner, hz_env, view, start_daemon):
    daemon = start_daemon(
        hz_env,
        SCAN_BRIDGE_HEARTBEAT_STALE_AFTER_S="3",
        SCAN_BRIDGE_HEALTH_INTERVAL_S="1",
        SCAN_BRIDGE_START_GRACE_S="2",
        SCAN_BRIDGE_RESTART_DELAY_S="0.5",
    )
    run = RunReader(client, daemon.wait_flow_run_id())
    old = daemon.bridge_pid()
    wait_connected(view, old)

    os.kill(old, signal.SIGSTOP)
    # heartbeat stale after 3 s, a check every second (each up to the 2 s timeout), then 0.5 s delay
    new = daemon.bridge_pid(timeout=15, other_than=old)

    wait_for(lambda: not alive(old), 5, f"frozen bridge {old} gone")
    wait_connected(view, new)
    line = run.logs()[run.wait_logged("Restarting the bridge")]
    assert "bridge stuck" in line and "heartbeat" in line


def test_silent_scanner_goes_stale_without_restart(client, scanner, hz_env, start_daemon):
    daemon = start_daemon(hz_env, SCAN_BRIDGE_STALE_AFTER_S="4", SCAN_BRIDGE_WARN_AFTER_S="2")
    run = RunReader(client, daemon.wait_flow_run_id())
    pid = daemon.bridge_pid()
    run.wait_logged("Health: HEALTHY")

    scanner.stop()
    first = run.wait_logged("Health: STALE (scanner silent)", timeout=30)
    wait_for(lambda: run.count("Health: STALE (scanner silent)") >= 4, 30, "four silent-scanner checks", 0.3)

    assert daemon.bridges() == [pid], "same bridge: restarting it cannot help"
    lines = run.logs()
    assert not [line for line in lines if "Restarting" in line]
    assert all("Health: STALE (scanner silent)" in line or "Health:" not in line for line in lines[first:]), (
        "stays STALE (scanner silent)"
    )
    artifact = wait_for(
        lambda: (lambda a: a if a is not None and "STALE (scanner silent)" in (a.data or "") else None)(
            run.health_artifact(ARTIFACT_KEY)
        ),
        15,
        "the artifact saying STALE (scanner silent)",
        0.3,
    )
    assert f"| bridge pid | {pid} |" in artifact.data


def test_member_outage_is_an_error_not_a_restart(client, scanner, local_cluster_factory, start_daemon):
    cluster = local_cluster_factory(members=1)
    env = {
        "SCAN_BRIDGE_HAZELCAST_MEMBERS": ",".join(cluster.members),
        "SCAN_BRIDGE_HAZELCAST_CLUSTER_NAME": cluster.cluster_name,
        **unique_maps(),
    }
    daemon = start_daemon(env, SCAN_BRIDGE_HAZELCAST_CONNECT_TIMEOUT_S="4")
    run = RunReader(client, daemon.wait_flow_run_id())
    pid = daemon.bridge_pid()
    run.wait_logged("Health: HEALTHY")

    cluster.stop_member(0)
    first_error = run.wait_logged("Health: ERROR", timeout=30)
    wait_for(lambda: run.count("Health: ERROR") >= 3, 30, "three ERROR checks", 0.3)
    assert daemon.bridges() == [pid], "the bridge reconnects by itself: no restart"

    cluster.start_member(0)  # a new, empty member
    last_error = max(i for i, line in enumerate(run.logs()) if "Health: ERROR" in line)
    run.wait_logged("Health: HEALTHY", timeout=60, after=last_error + 1)

    assert daemon.bridges() == [pid]
    assert not [line for line in run.logs() if "Restarting" in line]
    assert first_error < last_error
    view = View(env)
    try:  # refilled from disk by the same bridge
        assert view.heartbeat()["pid"] == pid
        assert min(view.history_keys()) == 1, "scans written before the outage are back"
    finally:
        view.close()


@pytest.mark.parametrize(
    ("signame", "group"),
    [
        ("SIGTERM", False),
        ("SIGTERM", True),  # a process worker's cancel: SIGTERM to the process group
        ("SIGINT", False),
        ("SIGINT", True),  # Ctrl+C in a terminal: SIGINT to the foreground process group
    ],
    ids=["sigterm-daemon", "sigterm-group", "sigint-daemon", "sigint-group"],
)
def test_signal_stops_daemon_and_bridge_cleanly(client, scanner, hz_env, start_daemon, record_property, signame, group):
    daemon = start_daemon(hz_env)
    run = RunReader(client, daemon.wait_flow_run_id())
    pid = daemon.bridge_pid()
    run.wait_logged("[Bridge] Watching")

    daemon.signal(getattr(signal, signame), group=group)
    assert daemon.wait(30) == 0, "standalone contract: stopped by a signal is exit 0"
    assert not alive(pid), "no bridge left"

    state = wait_for(lambda: (lambda s: s if s in FINAL_STATES else None)(run.state_type()), 15, "a final state", 0.3)
    record_property("final_state", state)
    # Prefect ends a standalone run stopped by a signal Crashed (docs/alerts.md, docs/performance.md:
    # the "crashed" alert fires for it), naming the signal; the exit code above says it was deliberate.
    message = run.flow_run().state.message
    assert (state, message) == ("CRASHED", {
        "SIGTERM": "Execution was aborted by a termination signal.",
        "SIGINT": "Execution was aborted by an interrupt signal.",
    }[signame]), (state, message)
    # The last lines reach the API (the daemon flushed them before exiting) and say the bridge exited by itself.
    run.wait_logged(f"Stopping the bridge ({signame})", timeout=10)
    run.wait_logged("[Bridge] Stopped", timeout=10)
    run.wait_logged("Bridge stopped (exit code 0)", timeout=10)


def test_sigkilled_daemon_takes_the_bridge_along(client, scanner, hz_env, view, start_daemon, record_property):
    daemon = start_daemon(hz_env)
    run = RunReader(client, daemon.wait_flow_run_id())
    pid = daemon.bridge_pid()
    wait_connected(view, pid)

    started = time.monotonic()
    daemon.signal(signal.SIGKILL)
    daemon.wait(10)
    wait_for(lambda: not alive(pid), 5, f"bridge {pid} gone after its daemon was SIGKILLed")
    record_property("bridge_gone_after_s", round(time.monotonic() - started, 2))
    # Nobody is left to tell the API: the run stays RUNNING (docs/alerts.md: "daemon silent" catches it).
    assert run.state_type() == "RUNNING"


def _scrape(port: int) -> dict[str, float]:
    """``/metrics`` as {'name{label="v"}': value}, parsed by prometheus_client's own parser."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(sample.labels.items()))
            samples[sample.name + (f"{{{labels}}}" if labels else "")] = sample.value
    return samples


def test_metrics_endpoint_follows_health_and_restarts(client, scanner, hz_env, view, start_daemon):
    port = free_port()
    daemon = start_daemon(hz_env, SCAN_BRIDGE_METRICS_PORT=str(port), SCAN_BRIDGE_RESTART_DELAY_S="0.5")
    old = daemon.bridge_pid()
    wait_connected(view, old)

    healthy = wait_for(lambda: (lambda m: m if m.get('scan_bridge_health_state{scan_bridge_health_state="healthy"}') == 1
                                and m.get("scan_bridge_scans_pushed_total", 0) > 0 else None)(_scrape(port)),
                       30, "healthy metrics with pushes", 0.3)
    assert healthy["scan_bridge_bridge_up"] == 1
    assert healthy["scan_bridge_restarts_total"] == 0
    assert healthy["scan_bridge_assets"] == 20
    assert 0 <= healthy["scan_bridge_data_age_seconds"] < 5
    assert healthy["scan_bridge_scan_number"] > 0
    assert abs(healthy["scan_bridge_last_check_timestamp_seconds"] - time.time()) < 10

    os.kill(old, signal.SIGKILL)
    new = daemon.bridge_pid(timeout=10, other_than=old)
    wait_connected(view, new)
    after = wait_for(lambda: (lambda m: m if m.get("scan_bridge_restarts_total") == 1
                              and m.get("scan_bridge_scans_pushed_total", 0) > healthy["scan_bridge_scans_pushed_total"]
                              and m.get("scan_bridge_bridge_up") == 1 else None)(_scrape(port)),
                     30, "one restart counted and pushes going on", 0.3)
    # The new bridge's own counter started at 0: the daemon's counter went on from where it was.
    assert after["scan_bridge_scans_pushed_total"] >= healthy["scan_bridge_scans_pushed_total"]
    assert after["scan_bridge_files_rejected_total"] == 0

    daemon.signal(signal.SIGTERM)
    assert daemon.wait(30) == 0
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_health_history_continues_across_daemon_runs_without_a_version_per_update(client, scanner, hz_env, start_daemon):
    first = start_daemon(hz_env)
    run = RunReader(client, first.wait_flow_run_id())
    run.wait_logged("Health: HEALTHY")
    first.signal(signal.SIGTERM)
    assert first.wait(30) == 0
    stopped = wait_for(lambda: (lambda a: a if a is not None and "daemon stopped: SIGTERM" in (a.data or "") else None)(
        run.health_artifact(ARTIFACT_KEY)), 15, "the first run's artifact noting its stop", 0.3)
    assert "### Last 24 hours, by hour (UTC)" in stopped.data

    second = start_daemon(hz_env)
    run2 = RunReader(client, second.wait_flow_run_id())
    run2.wait_logged("Health: HEALTHY")
    wait_for(lambda: run2.count("Health: HEALTHY") >= 3, 30, "three healthy checks", 0.2)
    artifact = wait_for(lambda: (lambda a: a if a is not None and "## Scan bridge: HEALTHY" in (a.data or "") else None)(
        run2.health_artifact(ARTIFACT_KEY)), 15, "the second run's artifact", 0.3)
    assert "daemon stopped: SIGTERM" in artifact.data, "the first run's history carried over"
    # Several state changes and updates, yet one version per run (a new one only at an hour boundary).
    versions = client.read_artifacts(artifact_filter=ArtifactFilter(
        key=ArtifactFilterKey(any_=[ARTIFACT_KEY]), flow_run_id=ArtifactFilterFlowRunId(any_=[run2.id])))
    assert 1 <= len(versions) <= 2


def test_metrics_port_in_use_is_one_error_line_and_the_daemon_goes_on(client, scanner, hz_env, start_daemon):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        daemon = start_daemon(hz_env, SCAN_BRIDGE_METRICS_PORT=str(port))
        run = RunReader(client, daemon.wait_flow_run_id())
        run.wait_logged("Health: HEALTHY")
        errors = [line for line in run.logs() if "Prometheus metrics not served" in line]
        assert len(errors) == 1
        assert f"cannot listen on 127.0.0.1:{port}" in errors[0] and "SCAN_BRIDGE_METRICS_PORT" in errors[0]


# SIGKILL (the bridge dies with its parent) is ~20 s: -m extended, CI only; SIGTERM runs by default.
@pytest.mark.parametrize("signame", [pytest.param("SIGKILL", marks=pytest.mark.extended), "SIGTERM"])
def test_standalone_daemon_leaves_no_process_behind(scanner, scans, hz_env, view, tmp_path, signame):
    """Without PREFECT_API_URL the daemon needs a Prefect server of its own; it must go with the daemon.

    Prefect's temporary server (``SubprocessASGIServer``) is a plain child with an ``atexit`` stop: a
    SIGKILLed daemon left it running for ever. Every process the daemon caused to start is collected
    while it runs (its descendants, and anything carrying its private PREFECT_HOME in its
    environment), then the daemon is signalled and each of them must be gone.
    """
    home = tmp_path / "standalone-prefect-home"
    env = clean_env(PREFECT_HOME=str(home), SCAN_BRIDGE_WATCH_DIR=str(scans), **hz_env, **FAST)
    assert "PREFECT_API_URL" not in env
    daemon = DaemonRunner(env, tmp_path).start()
    seen: dict[int, tuple[float, str]] = {}
    try:
        daemon.wait_flow_run_id(timeout=180)  # the first start creates the server's database
        pid = daemon.bridge_pid(timeout=120)
        wait_connected(view, pid)
        seen.update(descendants(daemon.pid))
        seen.update(mentioning([str(home)]))
        seen.pop(daemon.pid, None)
        commands = "\n".join(cmd for _, cmd in seen.values())
        assert "scan_bridge.service" in commands, commands
        assert "prefect server start" in commands, f"not the daemon's own Prefect server:\n{commands}"
        assert "started a Prefect server for this daemon at http://127.0.0.1:" in daemon.output()

        daemon.signal(getattr(signal, signame))
        code = daemon.wait(30)
        assert code == (-signal.SIGKILL if signame == "SIGKILL" else 0), daemon.output()[-3000:]
        try:
            wait_for(lambda: not still_running(seen), 30, "every process the daemon started to be gone", 0.2)
        except AssertionError:
            raise AssertionError(f"left behind by the daemon after {signame}: {still_running(seen)}") from None
    finally:
        daemon.stop()
        for left in still_running(seen):
            with contextlib.suppress(psutil.Error):
                psutil.Process(left).kill()
