"""LocalCluster starts real members, survives losing one, and leaves no JVM behind."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import hazelcast
import psutil
import pytest

from scan_bridge.localcluster import LocalCluster, LocalClusterError, find_jar, free_port_block


def _client(cluster: LocalCluster) -> hazelcast.HazelcastClient:
    return hazelcast.HazelcastClient(
        cluster_name=cluster.cluster_name,
        cluster_members=cluster.members,
        cluster_connect_timeout=30,
        invocation_timeout=30,
        # A read sent on the killed member's connection before the client noticed fails with
        # TargetDisconnectedError (seen under load); what is tested is that the member kept every entry.
        redo_operation=True,
    )


def _wait_gone(pid: int, timeout_s: float = 30) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            proc = psutil.Process(pid)
            if proc.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def test_free_port_block_gives_distinct_free_ports() -> None:
    ports = free_port_block(5)
    assert len(set(ports)) == 5
    assert all(1024 < port < 32768 for port in ports)


def test_hazelcast_jar_env_must_exist(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HAZELCAST_JAR", str(tmp_path / "missing.jar"))
    with pytest.raises(LocalClusterError, match="HAZELCAST_JAR"):
        find_jar()


def test_one_member_serves_put_and_get(local_cluster_factory: Callable[..., LocalCluster]) -> None:
    cluster = local_cluster_factory(1)
    assert cluster.alive(0)
    assert cluster.members == [f"127.0.0.1:{cluster.ports[0]}"]
    client = _client(cluster)
    try:
        scans = client.get_map("scans").blocking()
        scans.put("latest", "scan 1")
        assert scans.get("latest") == "scan 1"
    finally:
        client.shutdown()


def test_two_members_lose_no_entry_when_one_is_killed(local_cluster_factory: Callable[..., LocalCluster]) -> None:
    cluster = local_cluster_factory(2)
    client = _client(cluster)
    try:
        scans = client.get_map("scans").blocking()
        scans.put_all({i: f"scan {i}" for i in range(100)})
        assert scans.size() == 100

        cluster.stop_member(0, kill=True)
        assert not cluster.alive(0)
        assert cluster.alive(1)

        assert scans.get_all(list(range(100))) == {i: f"scan {i}" for i in range(100)}
        assert scans.size() == 100
    finally:
        client.shutdown()


def test_restarted_lone_member_comes_back_empty(local_cluster_factory: Callable[..., LocalCluster]) -> None:
    cluster = local_cluster_factory(1)
    client = _client(cluster)
    try:
        client.get_map("scans").blocking().put("k", "v")
    finally:
        client.shutdown()
    cluster.stop_member(0)
    assert not cluster.alive(0)
    cluster.start_member(0)
    assert cluster.alive(0)
    client = _client(cluster)
    try:
        assert client.get_map("scans").blocking().size() == 0
    finally:
        client.shutdown()


def test_stop_leaves_no_java_process(local_cluster_factory: Callable[..., LocalCluster]) -> None:
    cluster = local_cluster_factory(2)
    pids = [cluster.pid(i) for i in range(2)]
    assert all(pid is not None and psutil.pid_exists(pid) for pid in pids)
    cluster.stop()
    for pid in pids:
        assert pid is not None
        assert not psutil.pid_exists(pid), f"java member {pid} still running after stop()"
    assert not cluster.alive(0) and not cluster.alive(1)


def test_member_dies_with_a_killed_parent(tmp_path: Path) -> None:
    """A test run killed with SIGKILL (no atexit, no finally) still leaves no JVM: PR_SET_PDEATHSIG."""
    port = free_port_block(1)[0]
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from scan_bridge.localcluster import LocalCluster
        cluster = LocalCluster("orphan-check", [{port}], Path({str(tmp_path)!r}))
        cluster.start()
        print(cluster.pid(0), flush=True)
        time.sleep(600)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        line = parent.stdout.readline()
        assert line.strip().isdigit(), f"child did not report a member pid: {line!r}"
        member_pid = int(line)
        assert psutil.pid_exists(member_pid)
    finally:
        parent.kill()
        parent.wait()
    assert _wait_gone(member_pid), f"member {member_pid} outlived its killed parent"


def test_a_member_that_cannot_start_is_reported(tmp_path: Path) -> None:
    jar = tmp_path / "not-a-jar.jar"
    jar.write_bytes(b"nope")
    cluster = LocalCluster("broken", free_port_block(1), tmp_path / "work", jar=jar)
    with pytest.raises(LocalClusterError, match="exited with code"):
        cluster.start(timeout_s=30)
    assert not cluster.alive(0)


def test_shared_cluster_fixture_answers(hazelcast_cluster, unique_names: dict[str, str]) -> None:
    env = hazelcast_cluster.env()
    assert env["SCAN_BRIDGE_HAZELCAST_MEMBERS"] == ",".join(hazelcast_cluster.members)
    assert env["SCAN_BRIDGE_HAZELCAST_CLUSTER_NAME"] == hazelcast_cluster.cluster_name
    client = hazelcast.HazelcastClient(**hazelcast_cluster.client_config())
    try:
        features = client.get_map(unique_names["features_map"]).blocking()
        features.set("latest", os.urandom(4).hex())
        assert features.size() == 1
    finally:
        client.shutdown()
