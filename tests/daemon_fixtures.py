"""Fixtures for tests that run the daemon as a real process against a real Prefect server and member.

Shared by test_daemon and test_alerts; each module gets its own Prefect server (module scope). The
member's maps (``hz_env``/``env``), the scanner's folder (``scans``) and a consumer's ``view`` of the
maps are shared by the bridge tests too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from scan_bridge.simulate import Simulator

from .postgres_support import PostgresError, PostgresServer
from .prefect_support import DaemonRunner, PrefectServer, alive, clean_env
from .support import View, unique_maps, wait_for

# Short everything: a check a second, heartbeats twice a second, a summary line a second.
FAST = {
    "SCAN_BRIDGE_HEALTH_INTERVAL_S": "1",
    "SCAN_BRIDGE_HEALTH_TIMEOUT_S": "2",
    "SCAN_BRIDGE_HEARTBEAT_INTERVAL_S": "0.5",
    "SCAN_BRIDGE_SUMMARY_INTERVAL_S": "1",
    "SCAN_BRIDGE_START_GRACE_S": "2",
    "SCAN_BRIDGE_RESTART_DELAY_S": "1",
    "PREFECT_LOGGING_TO_API_BATCH_INTERVAL": "0.5",
}


#: A test module that sets ``PREFECT_SERVER_DATABASE = "postgresql"`` gets a Prefect server backed by
#: its own database on the session's PostgreSQL server (tests/test_on_postgres.py); others SQLite.
DATABASE_ATTRIBUTE = "PREFECT_SERVER_DATABASE"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session; a failure to start it fails the tests that need it."""
    try:
        server = PostgresServer().start()
    except PostgresError as exc:
        pytest.fail(f"no PostgreSQL for the tests: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def prefect_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    root = tmp_path_factory.mktemp("prefect-server")
    database = getattr(request.module, DATABASE_ATTRIBUTE, "sqlite")
    database_url = request.getfixturevalue("postgres_server").create_database() if database == "postgresql" else None
    server = PrefectServer(root / "home", root / "server.log", database_url=database_url).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def client(prefect_server: PrefectServer):
    with prefect_server.client() as c:
        yield c


@pytest.fixture
def scans(tmp_path: Path) -> Path:
    folder = tmp_path / "scans"
    folder.mkdir()
    return folder


class Scanner:
    """The simulator in a thread: 5 scans of 20 assets a second."""

    def __init__(self, out: Path) -> None:
        self.simulator = Simulator(out, rate=5, assets=20, log=lambda _line: None)
        self.thread = threading.Thread(target=self.simulator.run, name="simulated-scanner", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.simulator.stop()
        self.thread.join(10)
        assert not self.thread.is_alive(), "simulator did not stop"


@pytest.fixture
def scanner(scans: Path) -> Iterator[Scanner]:
    s = Scanner(scans)
    yield s
    s.stop()


@pytest.fixture
def hz_env(hazelcast_cluster) -> dict[str, str]:
    """The shared member, with maps only this test uses."""
    return {**hazelcast_cluster.env(), **unique_maps()}


@pytest.fixture
def env(hz_env: dict[str, str]) -> dict[str, str]:
    """A bridge's environment in the bridge tests: the same member and maps as ``hz_env`` (and ``view``)."""
    return hz_env


@pytest.fixture
def start_daemon(prefect_server: PrefectServer, tmp_path: Path, scans: Path) -> Iterator[Callable[..., DaemonRunner]]:
    runners: list[DaemonRunner] = []

    def start(hazelcast_env: dict[str, str], **settings: str) -> DaemonRunner:
        env = clean_env(
            PREFECT_API_URL=prefect_server.api_url,
            PREFECT_HOME=str(tmp_path / "daemon-prefect-home"),
            SCAN_BRIDGE_WATCH_DIR=str(scans),
        )
        env.update(hazelcast_env)
        env.update(FAST)
        env.update(settings)
        runner = DaemonRunner(env, tmp_path).start()
        runners.append(runner)
        return runner

    yield start
    for runner in runners:
        runner.stop()
        print(f"--- daemon output (pid {runner.pid}, exit {runner.proc.returncode if runner.proc else None}) ---")
        print(runner.output()[-6000:])
    left = [pid for runner in runners for pid in runner.seen_bridges if alive(pid)]
    assert not left, f"bridges left running after the test: {left}"


def wait_connected(view: View, pid: int, timeout: float = 60) -> None:
    """The bridge ``pid`` has connected: its heartbeat is in the map."""
    wait_for(lambda: (view.heartbeat() or {}).get("pid") == pid, timeout, f"heartbeat of bridge {pid}", 0.1)


@pytest.fixture
def view(hz_env: dict[str, str]) -> Iterator[View]:
    v = View(hz_env)
    yield v
    v.destroy_maps()
    v.close()
