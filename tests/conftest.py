"""Shared fixtures: a real Hazelcast cluster for every test that talks to one.

Where the cluster comes from, in order:

1. ``SCAN_BRIDGE_TEST_HAZELCAST_MEMBERS`` (and ``SCAN_BRIDGE_TEST_HAZELCAST_CLUSTER_NAME``, default
   ``dev``): a cluster someone already runs; we only check that it answers.
2. ``SCAN_BRIDGE_TEST_USE_DOCKER=1`` and a Docker daemon that answers: a ``hazelcast/hazelcast``
   container through testcontainers.
3. Otherwise: a one-member ``LocalCluster`` from the member jar, on free loopback ports.

A test that needs a cluster and cannot get one fails; it is never skipped, because in CI a
missing member is a broken environment, not an optional feature.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from scan_bridge.localcluster import HAZELCAST_VERSION, LocalCluster, LocalClusterError, find_jar, free_port_block

# Prefect server, daemon and scanner fixtures, for the modules that run the daemon.
pytest_plugins = ["tests.daemon_fixtures"]

_CONNECT_TIMEOUT_S = 15.0
_START_ATTEMPTS = 3  # fresh ports each time: another process may grab a probed port before the JVM binds it


@dataclass
class ClusterInfo:
    """What a test needs to reach the shared cluster."""

    members: list[str]
    cluster_name: str
    source: str = "local"
    _closers: list[Callable[[], None]] = field(default_factory=list, repr=False)

    def env(self) -> dict[str, str]:
        """Environment for a bridge/daemon subprocess pointed at this cluster."""
        return {
            "SCAN_BRIDGE_HAZELCAST_MEMBERS": ",".join(self.members),
            "SCAN_BRIDGE_HAZELCAST_CLUSTER_NAME": self.cluster_name,
        }

    def client_config(self) -> dict[str, Any]:
        """Keyword arguments for a ``hazelcast.HazelcastClient`` that gives up instead of hanging."""
        return {
            "cluster_name": self.cluster_name,
            "cluster_members": list(self.members),
            "cluster_connect_timeout": _CONNECT_TIMEOUT_S,
        }


def _check_reachable(members: list[str], cluster_name: str) -> None:
    import hazelcast

    client = hazelcast.HazelcastClient(
        cluster_name=cluster_name, cluster_members=members, cluster_connect_timeout=_CONNECT_TIMEOUT_S
    )
    client.shutdown()


def _start_local_cluster(workdir: Path, members: int, cluster_name: str) -> LocalCluster:
    jar = find_jar()
    last: LocalClusterError | None = None
    for attempt in range(_START_ATTEMPTS):
        cluster = LocalCluster(cluster_name, free_port_block(members), workdir / f"attempt-{attempt}", jar=jar)
        try:
            return cluster.start()
        except LocalClusterError as exc:
            last = exc
            if "already in use" not in str(exc):
                raise
    assert last is not None
    raise last


def _docker_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=3)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:
        return False


def _docker_cluster(cluster_name: str) -> tuple[list[str], Callable[[], None]]:
    """A member in Docker. testcontainers 4.15 has no Hazelcast module, so a generic container.

    The host port is fixed before start and advertised as the member's public address, so a
    smart client connects to what it is told rather than to the container's internal IP.
    """
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    port = free_port_block(1)[0]
    container = (
        DockerContainer(f"hazelcast/hazelcast:{HAZELCAST_VERSION}")
        .with_bind_ports(5701, port)
        .with_env("HZ_CLUSTERNAME", cluster_name)
        .with_env("JAVA_OPTS", "-Xmx256m -Dhazelcast.phone.home.enabled=false")
        .waiting_for(LogMessageWaitStrategy("is STARTED").with_startup_timeout(180))
    )
    try:  # known before start when the daemon is reached directly (the usual case)
        host = container.get_container_host_ip()
        container.with_env("HZ_NETWORK_PUBLICADDRESS", f"{host}:{port}")
    except Exception:  # inside a container: the gateway is known only after start
        host = None
    container.start()
    if host is None:
        host = container.get_container_host_ip()
        port = container.get_exposed_port(5701)
    try:
        _check_reachable([f"{host}:{port}"], cluster_name)
    except BaseException:
        container.stop()
        raise
    return [f"{host}:{port}"], container.stop


@pytest.fixture(scope="session")
def hazelcast_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterInfo]:
    """The cluster shared by the whole session; tests keep apart through their own map names."""
    existing = os.environ.get("SCAN_BRIDGE_TEST_HAZELCAST_MEMBERS", "").strip()
    if existing:
        members = [part.strip() for part in existing.split(",") if part.strip()]
        name = os.environ.get("SCAN_BRIDGE_TEST_HAZELCAST_CLUSTER_NAME", "dev")
        try:
            _check_reachable(members, name)
        except Exception as exc:
            pytest.fail(f"SCAN_BRIDGE_TEST_HAZELCAST_MEMBERS={existing} ({name}) does not answer: {exc}", pytrace=False)
        yield ClusterInfo(members, name, source="existing")
        return

    name = f"test-{uuid.uuid4().hex[:10]}"
    if os.environ.get("SCAN_BRIDGE_TEST_USE_DOCKER") == "1" and _docker_answers():
        try:
            members, closer = _docker_cluster(name)
        except Exception as exc:
            pytest.fail(f"Hazelcast container did not start: {exc}", pytrace=False)
        try:
            yield ClusterInfo(members, name, source="docker")
        finally:
            closer()
        return

    try:
        cluster = _start_local_cluster(tmp_path_factory.mktemp("hazelcast"), 1, name)
    except LocalClusterError as exc:
        pytest.fail(f"no Hazelcast member for the tests: {exc}", pytrace=False)
    try:
        yield ClusterInfo(cluster.members, name, source="local")
    finally:
        cluster.stop()


@pytest.fixture
def local_cluster_factory(tmp_path: Path) -> Iterator[Callable[..., LocalCluster]]:
    """Make private, started clusters (from the jar) for tests that stop and restart members."""
    clusters: list[LocalCluster] = []

    def make(members: int = 1) -> LocalCluster:
        name = f"private-{uuid.uuid4().hex[:10]}"
        try:
            cluster = _start_local_cluster(tmp_path / f"{name}", members, name)
        except LocalClusterError as exc:
            pytest.fail(f"private Hazelcast cluster did not start: {exc}", pytrace=False)
        clusters.append(cluster)
        return cluster

    yield make
    for cluster in clusters:
        cluster.stop(kill=True)


@pytest.fixture
def unique_names() -> dict[str, str]:
    """Settings overrides naming maps only this test uses on the shared cluster."""
    suffix = uuid.uuid4().hex[:10]
    return {"features_map": f"features_{suffix}", "history_map": f"history_{suffix}"}


# -- markers: which tests are pure (see pyproject.toml; `pytest -m unit` runs those alone) -----------------

#: Fixtures that start a real Prefect server (and the daemon); a test using one is marked ``prefect``.
_PREFECT_FIXTURES = frozenset({"prefect_server", "client", "start_daemon"})
#: Fixtures that give a real Hazelcast member; a test using one (and none of the above) is marked ``member``.
_MEMBER_FIXTURES = frozenset({"hazelcast_cluster", "local_cluster_factory", "hz_env", "env", "view"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test by the real parts its fixtures start; a ``unit`` test (declared by its module)
    that asks for one is an error, so ``-m unit`` never starts a member or a server by surprise."""
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        heavy = "prefect" if used & _PREFECT_FIXTURES else "member" if used & _MEMBER_FIXTURES else None
        if heavy is None:
            continue
        if item.get_closest_marker("unit") is not None:
            raise pytest.UsageError(f"{item.nodeid} is marked unit but uses {sorted(used & (_PREFECT_FIXTURES | _MEMBER_FIXTURES))}")
        item.add_marker(heavy)
