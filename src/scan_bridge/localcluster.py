"""A real Hazelcast member on demand: for the tests, and for a local demo without Docker.

Mocks of the client hide exactly what the bridge has to survive (a member dying, a cluster coming
back empty, a wrong cluster name), so the tests run against real members. Docker is not available
everywhere the tests run, but Java is, so we start the open-source member straight from its Maven
jar (``com.hazelcast:hazelcast``), as the Python client's own test suite does.

Every member gets its own cluster name, loopback-only networking, a fixed port and a tcp-ip member
list: two test runs on one machine (or a developer's own cluster on 5701) can never join each other.
Member processes die with the Python process that started them (``PR_SET_PDEATHSIG``) and are
stopped at interpreter exit, so an interrupted test run leaves no JVM behind.

Command line (for the local demo)::

    python -m scan_bridge.localcluster --port 5701 --cluster-name dev [--members 1]
    python -m scan_bridge.localcluster --fetch-only
"""

from __future__ import annotations

import argparse
import atexit
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from .parent_death import die_with_parent

__all__ = [
    "HAZELCAST_VERSION",
    "LocalCluster",
    "LocalClusterError",
    "find_jar",
    "free_port_block",
    "main",
]

#: The member version we test against; 5.7.0 community starts without a licence key.
HAZELCAST_VERSION = "5.7.0"

_STARTED_MARKER = b"is STARTED"
_PORT_IN_USE_MARKERS = (b"already in use", b"Address already in use", b"BindException")
_MAIN_CLASS = "com.hazelcast.core.server.HazelcastMemberStarter"

# Java 17 prints a long warning (and some metrics are missing) without these; they are what the
# Hazelcast distribution's own start script passes.
_JAVA_MODULE_FLAGS = (
    "--add-modules",
    "java.se",
    "--add-exports",
    "java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens",
    "java.base/java.lang=ALL-UNNAMED",
    "--add-opens",
    "java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens",
    "java.management/sun.management=ALL-UNNAMED",
    "--add-opens",
    "jdk.management/com.sun.management.internal=ALL-UNNAMED",
)

# Small heap, serial GC and C1 only: a test member holds a few thousand entries, and several of
# them may run beside the test suite on a small CI machine; start-up time matters more than peak speed.
_JVM_FLAGS = (
    "-Xms64m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-Djava.net.preferIPv4Stack=true",
    "-Dhazelcast.logging.type=jdk",
    # SIGTERM = leave the cluster gracefully (hand partitions over first), so stop_member() without
    # kill loses nothing in a multi-member cluster.
    "-Dhazelcast.shutdownhook.policy=GRACEFUL",
    "-Dhazelcast.phone.home.enabled=false",
)


class LocalClusterError(RuntimeError):
    """A member could not be had: no Java, no Maven, no jar, or a member that did not start."""


# --------------------------------------------------------------------------------------------------
# The jar


def _m2_jar(version: str) -> Path:
    return Path.home() / ".m2" / "repository" / "com" / "hazelcast" / "hazelcast" / version / f"hazelcast-{version}.jar"


def find_jar(version: str | None = None) -> Path:
    """Path of the Hazelcast member jar, fetching it with Maven only when it is not on disk yet.

    Order: ``$HAZELCAST_JAR`` (an explicit choice must exist, we do not fall back silently), then the
    local Maven repository, then ``mvn dependency:get``. The fetch is non-transitive on purpose: the
    member jar is self-contained, and one of its declared transitive dependencies lives in a
    repository that is not always reachable, which would fail the whole resolution.
    """
    explicit = os.environ.get("HAZELCAST_JAR")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise LocalClusterError(f"HAZELCAST_JAR={explicit} does not exist (unset it to use the Maven copy)")
        return path

    version = version or HAZELCAST_VERSION
    cached = _m2_jar(version)
    if cached.is_file():
        return cached

    mvn = shutil.which("mvn")
    if mvn is None:
        raise LocalClusterError(
            f"Hazelcast {version} jar not found at {cached} and 'mvn' is not on PATH to fetch it "
            "(install Maven, or set HAZELCAST_JAR to a hazelcast-<version>.jar)"
        )
    command = [
        mvn,
        "-q",
        "-B",
        "dependency:get",
        f"-Dartifact=com.hazelcast:hazelcast:{version}",
        "-Dtransitive=false",
    ]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    except subprocess.TimeoutExpired as exc:
        raise LocalClusterError(f"fetching Hazelcast {version} with Maven took over 10 minutes") from exc
    if result.returncode != 0 or not cached.is_file():
        tail = (result.stdout + result.stderr).strip().splitlines()[-5:]
        raise LocalClusterError(
            f"could not fetch com.hazelcast:hazelcast:{version} with Maven (exit {result.returncode}): " + " | ".join(tail)
        )
    return cached


def _find_java() -> str:
    java = shutil.which("java")
    if java is None:
        raise LocalClusterError("'java' is not on PATH: a local Hazelcast member needs Java 17 or later")
    return java


# --------------------------------------------------------------------------------------------------
# Ports


def _port_free(port: int) -> socket.socket | None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        return None
    return sock


def free_port_block(count: int) -> list[int]:
    """``count`` distinct loopback ports that are free right now.

    We probe below the kernel's ephemeral range (which starts at 32768), from a random point, so a
    port we pick is not handed out to some outgoing connection a moment later, and two test runs
    started together rarely probe the same ports. The sockets are held until all are found, so the
    ports are distinct; there is still a short window before the JVM binds them, which is why
    ``LocalCluster.start`` reports a port clash as such and callers may retry with fresh ports.
    """
    if count < 1:
        raise ValueError("count must be at least 1")
    low, high = 15701, 32000
    held: list[socket.socket] = []
    try:
        start = random.randrange(low, high)
        for offset in range(high - low):
            port = low + (start - low + offset) % (high - low)
            sock = _port_free(port)
            if sock is not None:
                held.append(sock)
                if len(held) == count:
                    return [s.getsockname()[1] for s in held]
        raise LocalClusterError(f"no {count} free loopback ports between {low} and {high}")
    finally:
        for sock in held:
            sock.close()


def free_port() -> int:
    """One loopback port that is free right now (see :func:`free_port_block`): for a member, a Prefect
    server, a webhook receiver; the one home of "a free port" for the package, the tests and the benchmarks."""
    return free_port_block(1)[0]


# --------------------------------------------------------------------------------------------------
# Parent-death signal

def _die_with_parent(parent_pid: int) -> None:
    """preexec_fn: SIGKILL this child when its parent dies, so a killed test run leaves no JVM.

    Start members from a thread that outlives them (the main thread, normally): see :mod:`.parent_death`.
    """
    die_with_parent(parent_pid)


# --------------------------------------------------------------------------------------------------
# The cluster


def _member_yaml(cluster_name: str, port: int, all_ports: Sequence[int]) -> str:
    members = ", ".join(f"127.0.0.1:{p}" for p in all_ports)
    return f"""\
hazelcast:
  cluster-name: {cluster_name}
  properties:
    hazelcast.phone.home.enabled: false
    hazelcast.logging.type: jdk
  map:
    default:
      # By default a member parses every JSON value it stores to build query metadata: for ~100 KB
      # scans that is ~0.4 MB of garbage per scan, and GC pauses of 60-90 ms at 50 scans/s
      # (docs/performance.md). Queries on JSON fields still work without it.
      metadata-policy: OFF
  network:
    port: {{port: {port}, auto-increment: false}}
    interfaces: {{enabled: true, interfaces: [127.0.0.1]}}
    join:
      multicast: {{enabled: false}}
      tcp-ip: {{enabled: true, member-list: [{members}]}}
"""


class LocalCluster:
    """One or more Hazelcast members on 127.0.0.1, each a JVM started from the member jar.

    The members form a private cluster (``cluster_name``; the tcp-ip member list names exactly
    ``ports``). Each member logs to ``workdir/member-<index>.log``, which is never a pipe: a member's
    output that nobody reads would eventually block it.
    """

    def __init__(
        self,
        cluster_name: str,
        ports: Sequence[int],
        workdir: Path,
        jar: Path | None = None,
        *,
        die_with_parent: bool = True,
        heap: str = "256m",
    ) -> None:
        if not ports:
            raise ValueError("a cluster needs at least one port")
        if len(set(ports)) != len(ports):
            raise ValueError(f"ports must be distinct: {list(ports)}")
        self.cluster_name = cluster_name
        self.ports: list[int] = list(ports)
        self.workdir = Path(workdir)
        self.jar = jar
        self.die_with_parent = die_with_parent
        self.heap = heap  # -Xmx: 256m for tests; a demo holding 1,000 400-asset scans needs about 1g
        self._procs: list[subprocess.Popen[bytes] | None] = [None] * len(self.ports)
        self._log_offsets: list[int] = [0] * len(self.ports)
        self._lock = threading.Lock()
        self._atexit_registered = False

    # -- properties ---------------------------------------------------------------------------------

    @property
    def members(self) -> list[str]:
        """Addresses of all members, as ``SCAN_BRIDGE_HAZELCAST_MEMBERS`` wants them."""
        return [f"127.0.0.1:{port}" for port in self.ports]

    def config_path(self, index: int) -> Path:
        """The member's YAML configuration (written at its start)."""
        return self.workdir / f"member-{index}.yaml"

    def log_path(self, index: int) -> Path:
        """The member's log; restarts append, so it tells the member's whole story."""
        return self.workdir / f"member-{index}.log"

    def pid(self, index: int) -> int | None:
        """PID of the member's JVM, or None if it was never started."""
        proc = self._procs[index]
        return proc.pid if proc is not None else None

    def alive(self, index: int) -> bool:
        """True while the member's JVM is running."""
        proc = self._procs[index]
        return proc is not None and proc.poll() is None

    # -- start --------------------------------------------------------------------------------------

    def start(self, timeout_s: float = 90) -> LocalCluster:
        """Start every member that is not running and wait until the cluster serves clients.

        Ready means: each member's log says "is STARTED", a client using the cluster name can
        connect, and it sees all members (so they formed one cluster rather than several).
        On failure every member is stopped again and LocalClusterError says why.
        """
        deadline = time.monotonic() + timeout_s
        try:
            for index in range(len(self.ports)):
                if not self.alive(index):
                    self._spawn(index)
            for index in range(len(self.ports)):
                self._wait_started(index, deadline)
            self._wait_client(deadline, expected_members=len(self.ports))
        except BaseException:
            self.stop(kill=True)
            raise
        return self

    def start_member(self, index: int, timeout_s: float = 90) -> None:
        """(Re)start one member and wait until its log says it is STARTED.

        A member restarted alone in a cluster of one comes back empty, with a new cluster id.
        """
        deadline = time.monotonic() + timeout_s
        if self.alive(index):
            return
        self._spawn(index)
        try:
            self._wait_started(index, deadline)
        except BaseException:
            self.stop_member(index, kill=True)
            raise

    def _spawn(self, index: int) -> None:
        java = _find_java()
        jar = self.jar or find_jar()
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = self.config_path(index)
        config.write_text(_member_yaml(self.cluster_name, self.ports[index], self.ports), encoding="utf-8")
        log_path = self.log_path(index)
        command = [
            java,
            f"-Xmx{self.heap}",
            *_JVM_FLAGS,
            *_JAVA_MODULE_FLAGS,
            f"-Dhazelcast.config={config}",
            "-cp",
            str(jar),
            _MAIN_CLASS,
        ]
        parent = os.getpid()
        with self._lock:
            with open(log_path, "ab") as log:
                log.write(f"--- starting member {index} on port {self.ports[index]}\n".encode())
                log.flush()
                self._log_offsets[index] = log.tell()
                self._procs[index] = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self.workdir,
                    preexec_fn=(lambda: _die_with_parent(parent)) if self.die_with_parent else None,
                )
            if not self._atexit_registered:
                atexit.register(self.stop)
                self._atexit_registered = True

    def _new_log(self, index: int) -> bytes:
        try:
            with open(self.log_path(index), "rb") as log:
                log.seek(self._log_offsets[index])
                return log.read()
        except OSError:
            return b""

    def _log_tail(self, index: int, lines: int = 15) -> str:
        text = self._new_log(index).decode("utf-8", "replace").strip().splitlines()
        return "\n".join(text[-lines:])

    def _wait_started(self, index: int, deadline: float) -> None:
        port = self.ports[index]
        while True:
            output = self._new_log(index)
            if _STARTED_MARKER in output:
                return
            proc = self._procs[index]
            if proc is None or proc.poll() is not None:
                code = None if proc is None else proc.returncode
                if any(marker in output for marker in _PORT_IN_USE_MARKERS):
                    raise LocalClusterError(f"member {index}: port {port} is already in use")
                raise LocalClusterError(
                    f"member {index} (port {port}) exited with code {code} before it started; "
                    f"log {self.log_path(index)}:\n{self._log_tail(index)}"
                )
            if time.monotonic() > deadline:
                raise LocalClusterError(
                    f"member {index} (port {port}) not STARTED in time; log {self.log_path(index)}:\n{self._log_tail(index)}"
                )
            time.sleep(0.1)

    def _wait_client(self, deadline: float, expected_members: int) -> None:
        import hazelcast  # imported late: find_jar and the CLI's --fetch-only do not need the client

        remaining = max(deadline - time.monotonic(), 1.0)
        try:
            client = hazelcast.HazelcastClient(
                cluster_name=self.cluster_name,
                cluster_members=self.members,
                cluster_connect_timeout=remaining,
            )
        except Exception as exc:  # the client raises IllegalStateError and friends
            raise LocalClusterError(f"no client could connect to {self.members} ({self.cluster_name}): {exc}") from exc
        try:
            while True:
                seen = len(client.cluster_service.get_members())
                if seen >= expected_members:
                    return
                if time.monotonic() > deadline:
                    raise LocalClusterError(
                        f"the client sees {seen} of {expected_members} members: they did not form one cluster"
                    )
                time.sleep(0.1)
        finally:
            client.shutdown()

    # -- stop ---------------------------------------------------------------------------------------

    def stop_member(self, index: int, kill: bool = False, timeout_s: float = 60) -> None:
        """Stop one member: gracefully (SIGTERM, it hands its partitions over) or SIGKILL (a crash).

        A graceful stop that overruns ``timeout_s`` is finished with SIGKILL.
        """
        proc = self._procs[index]
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        else:
            proc.wait()

    def stop(self, kill: bool = False, timeout_s: float = 60) -> None:
        """Stop every member (SIGTERM to all at once, then wait; SIGKILL what overruns)."""
        running = [proc for proc in self._procs if proc is not None and proc.poll() is None]
        for proc in running:
            try:
                proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + timeout_s
        for proc in running:
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for proc in self._procs:
            if proc is not None:
                proc.wait()
        if self._atexit_registered:
            atexit.unregister(self.stop)
            self._atexit_registered = False

    # -- context manager ----------------------------------------------------------------------------

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"LocalCluster({self.cluster_name!r}, members={self.members})"


# --------------------------------------------------------------------------------------------------
# Command line


def main(argv: Sequence[str] | None = None) -> int:
    """Run member(s) in the foreground until Ctrl+C / SIGTERM; or just fetch the jar."""
    parser = argparse.ArgumentParser(
        prog="python -m scan_bridge.localcluster",
        description="Run a local Hazelcast cluster from the member jar (no Docker needed).",
    )
    parser.add_argument("--port", type=int, default=5701, help="Port of the first member; others follow (default 5701).")
    parser.add_argument("--cluster-name", default="dev", help="Cluster name (default dev).")
    parser.add_argument("--members", type=int, default=1, help="How many members (default 1).")
    parser.add_argument("--workdir", type=Path, default=None, help="Where configs and logs go (default: a temp dir).")
    parser.add_argument("--version", dest="hz_version", default=HAZELCAST_VERSION, help="Hazelcast version.")
    parser.add_argument("--heap", default="1g", help="Member heap, as for -Xmx (default 1g: 1,000 scans of 400 assets fit).")
    parser.add_argument("--timeout", type=float, default=120, help="Seconds to wait for the cluster to start.")
    parser.add_argument("--fetch-only", action="store_true", help="Only make sure the jar is there; print its path.")
    args = parser.parse_args(argv)

    try:
        jar = find_jar(args.hz_version)
        if args.fetch_only:
            print(jar)
            return 0
        if args.members < 1:
            parser.error("--members must be at least 1")
        _find_java()
        import tempfile

        workdir = args.workdir or Path(tempfile.mkdtemp(prefix="scan-bridge-hz-"))
        ports = [args.port + i for i in range(args.members)]
        cluster = LocalCluster(args.cluster_name, ports, workdir, jar=jar, heap=args.heap)

        stop = threading.Event()

        def _on_signal(signum: int, frame: object) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, _on_signal)
        signal.signal(signal.SIGINT, _on_signal)
        print(f"starting {args.members} member(s) of cluster {args.cluster_name!r}; logs in {workdir}", flush=True)
        cluster.start(timeout_s=args.timeout)
        try:
            print(f"ready: cluster {args.cluster_name!r} members {','.join(cluster.members)}", flush=True)
            while not stop.wait(0.5):
                dead = [i for i in range(len(ports)) if not cluster.alive(i)]
                if dead:
                    print(f"member(s) {dead} exited; see {workdir}", file=sys.stderr, flush=True)
                    return 1
        finally:
            print("stopping", flush=True)
            cluster.stop()
        return 0
    except LocalClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
