"""Shared plumbing for the bridge benchmarks: a real member, a real bridge process, timing helpers.

Nothing here is measured itself; every benchmark script imports it from ``bench/`` (they put
their own folder on ``sys.path``). Conventions all scripts follow:

* a real Hazelcast member from the jar (:class:`scan_bridge.localcluster.LocalCluster`), unique
  cluster name, free loopback port, workdir in a temp dir, stopped at the end;
* the bridge as a real child process (``python -m scan_bridge.service --log-format json``),
  pointed at the member through ``SCAN_BRIDGE_HAZELCAST_*``, with its own map names;
* wall times with ``time.perf_counter`` in this process; the bridge's own log times (wall clock,
  millisecond resolution) are converted against the ``time.time()`` taken when it was started.

The member runs with the test flags of ``localcluster`` except for two that would distort a
benchmark: its heap (256 MB cannot hold 5,000 documents of ~100 KB) and the C1-only JIT.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hazelcast

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # the tests' plumbing (tests/support.py) is the benchmarks' too
    sys.path.insert(0, str(ROOT))

from scan_bridge import localcluster  # noqa: E402
from scan_bridge.localcluster import (  # noqa: E402
    HAZELCAST_VERSION,
    LocalCluster,
    LocalClusterError,
    find_jar,
    free_port_block,
)
from tests.support import BridgeRunner  # noqa: E402
from tests.support import unique_maps as unique_maps  # noqa: E402  (the benchmarks import it from here)

if TYPE_CHECKING:
    from tests.prefect_support import PrefectServer

CACHE_ROOT = Path(tempfile.gettempdir()) / "scan-bridge-bench-cache"



def bench_jvm_flags(heap: str = "2g") -> tuple[str, ...]:
    """The member's flags for benchmarks: the test flags, a heap that holds the data, and the full JIT."""
    flags = tuple(
        {"-Xms64m": "-Xms512m"}.get(flag, flag)
        for flag in localcluster._JVM_FLAGS
        if flag != "-XX:TieredStopAtLevel=1"
    )
    # For diagnosis only (e.g. "-Xlog:gc:file=/tmp/gc.log"); the figures in docs/performance.md use none.
    return flags + tuple(os.environ.get("BENCH_MEMBER_JVM_FLAGS", "").split())


BENCH_JVM_FLAGS = bench_jvm_flags()

#: localcluster's members run without per-entry JSON metadata; ``json_metadata=True`` restores the
#: member's own default, to measure what a cluster configured by its defaults does.
_METADATA_OFF = "metadata-policy: OFF"
_METADATA_DEFAULT = "metadata-policy: CREATE_ON_UPDATE"


# -- output ----------------------------------------------------------------------------------------


def command_line() -> str:
    """The exact command that produced this output, to paste into docs/performance.md."""
    script = os.path.relpath(sys.argv[0], Path(__file__).resolve().parents[1])
    return shlex.join(["python", script, *sys.argv[1:]])


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (numpy's default), ``q`` in 0..100."""
    data = sorted(values)
    if not data:
        return float("nan")
    pos = (len(data) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (pos - low)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def log(text: str) -> None:
    """Progress on stderr, so stdout holds only the report."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def machine() -> dict[str, str]:
    import numpy
    import orjson
    import psutil
    import pyarrow
    import watchdog.version

    try:
        java = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30).stderr.splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        java = "?"
    freq = psutil.cpu_freq()
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": _cpu_model() + (f" ({freq.max:.0f} MHz max)" if freq and freq.max else ""),
        "memory": f"{psutil.virtual_memory().total / 2**30:.1f} GiB",
        "kernel": platform.release(),
        "python": sys.version.split()[0],
        "pyarrow": pyarrow.__version__,
        "hazelcast-python-client": hazelcast.__version__,
        "hazelcast member": f"{HAZELCAST_VERSION} (jar, 1 member, {' '.join(f for f in BENCH_JVM_FLAGS if f.startswith(('-Xm', '-XX')))} unless stated)",
        "java": java,
        "watchdog": watchdog.version.VERSION_STRING,
        "numpy / orjson": f"{numpy.__version__} / {orjson.__version__}",
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def print_header(title: str) -> None:
    print(f"## {title}\n")
    print(f"command: `{command_line()}`\n")
    print(", ".join(f"{k} {v}" for k, v in machine().items()) + "\n")


# -- the member ------------------------------------------------------------------------------------


@contextlib.contextmanager
def hazelcast_member(workdir: Path, heap: str = "2g", json_metadata: bool = True) -> Iterator[LocalCluster]:
    """One started member with the benchmark flags; stopped (and its JVM gone) on exit.

    ``json_metadata=False`` keeps localcluster's ``metadata-policy: OFF`` on every map; True restores the
    member's default (CREATE_ON_UPDATE). By default
    the member parses each HazelcastJsonValue on every write to keep query metadata beside it,
    which for ~100 KB scan documents costs several times the document in heap and most of the
    member's CPU per put.
    """
    jar = find_jar()
    saved_flags, saved_yaml = localcluster._JVM_FLAGS, localcluster._member_yaml
    # Both are read by _spawn; restored right after the start.
    localcluster._JVM_FLAGS = bench_jvm_flags(heap)
    if json_metadata:
        localcluster._member_yaml = lambda *a: saved_yaml(*a).replace(_METADATA_OFF, _METADATA_DEFAULT)
    try:
        cluster = None
        for attempt in range(3):  # a probed port can be taken before the JVM binds it
            candidate = LocalCluster(
                f"bench-{uuid.uuid4().hex[:10]}", free_port_block(1), workdir / f"hz-{attempt}", jar=jar, heap=heap
            )
            try:
                cluster = candidate.start(timeout_s=120)
                break
            except LocalClusterError as exc:
                if "already in use" not in str(exc) or attempt == 2:
                    raise
    finally:
        localcluster._JVM_FLAGS, localcluster._member_yaml = saved_flags, saved_yaml
    assert cluster is not None
    try:
        yield cluster
    finally:
        cluster.stop()


# -- the Prefect server ----------------------------------------------------------------------------


@contextlib.contextmanager
def prefect_server(workdir: Path, database_url: str | None = None) -> Iterator[PrefectServer]:
    """The tests' Prefect server (tests/prefect_support.py), home and log in ``workdir``; stopped on exit.

    Its ``env()`` is what a daemon needs to talk to it; ``database_url`` puts its database elsewhere
    (PostgreSQL) instead of the SQLite ``db_path`` in its home.
    """
    from tests.prefect_support import PrefectServer  # imports Prefect's client: only for the benches that need it

    server = PrefectServer(workdir / "prefect-home", workdir / "prefect-server.log", database_url=database_url)
    started = time.monotonic()
    server.start()
    try:
        log(f"prefect server on {server.api_url} ({time.monotonic() - started:.1f} s), DB {database_url or server.db_path}")
        yield server
    finally:
        server.stop()


def member_env(cluster: LocalCluster) -> dict[str, str]:
    return {
        "SCAN_BRIDGE_HAZELCAST_MEMBERS": ",".join(cluster.members),
        "SCAN_BRIDGE_HAZELCAST_CLUSTER_NAME": cluster.cluster_name,
    }


def client(cluster: LocalCluster) -> hazelcast.HazelcastClient:
    """A client of the bench's member, with the bridge's ``default_int_type`` (history keys are Java longs)."""
    import logging

    from scan_bridge.document import HISTORY_KEY_INT_TYPE

    logging.getLogger("hazelcast").setLevel(logging.WARNING)
    return hazelcast.HazelcastClient(
        cluster_name=cluster.cluster_name,
        cluster_members=cluster.members,
        cluster_connect_timeout=30,
        default_int_type=HISTORY_KEY_INT_TYPE,
    )


class KeyEvents:
    """Entry listener on a history map: when (perf_counter, this process) each scan number arrived."""

    def __init__(self, hz: hazelcast.HazelcastClient, map_name: str) -> None:
        self.map = hz.get_map(map_name)
        self.seen: dict[int, float] = {}
        self._cond = threading.Condition()
        # Keys are scan times since issue 14: the scan number comes from the value (one more ~100 KB
        # per event to this listener; the bridge's own path is unchanged).
        self._registration = self.map.add_entry_listener(
            include_value=True, added_func=self._on, updated_func=self._on
        ).result()

    def _on(self, event: Any) -> None:
        now = time.perf_counter()
        key = int(json.loads(event.value.to_string())["scan_number"])
        with self._cond:
            self.seen.setdefault(key, now)
            self._cond.notify_all()

    def wait(self, keys: Callable[[dict[int, float]], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not keys(self.seen):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.map.remove_entry_listener(self._registration).result()


# -- the bridge --------------------------------------------------------------------------------------


class Bridge(BridgeRunner):
    """The tests' bridge runner (``tests/support.py``) with the bridge's own defaults, and timing:
    when it was started, by this process's clocks, to measure its log lines against."""

    DEFAULTS = {"SCAN_BRIDGE_LOG_FORMAT": "json"}  # summaries and heartbeats at the bridge's own defaults

    def __init__(self, watch_dir: Path, env: dict[str, str], log_path: Path, *args: str) -> None:
        super().__init__(watch_dir, env, log_path, *args)
        self.started_perf = 0.0
        self.started_wall = 0.0

    def start(self) -> Bridge:
        self.started_wall = time.time()
        self.started_perf = time.perf_counter()
        super().start()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def find(self, fragment: str) -> dict[str, Any] | None:
        return next((line for line in self.lines() if fragment in line.get("message", line.get("raw", ""))), None)

    def wait_logged(self, fragment: str, timeout: float = 60) -> dict[str, Any]:  # type: ignore[override]
        """The first line containing ``fragment`` (the whole JSON line); fails at once if the bridge exits first."""
        deadline = time.monotonic() + timeout
        while True:
            line = self.find(fragment)
            if line is not None:
                return line
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"bridge exited ({self.proc.returncode}) before logging {fragment!r}: {self.tail()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"bridge did not log {fragment!r} within {timeout} s: {self.tail()}")
            time.sleep(0.02)

    def since_start(self, line: dict[str, Any]) -> float:
        """Seconds from our start of the process to a log line's own timestamp (ms resolution)."""
        return datetime.fromisoformat(line["time"]).timestamp() - self.started_wall

    def tail(self, n: int = 5) -> str:
        return " | ".join(line.get("message", line.get("raw", "")) for line in self.lines()[-n:])

    def stop(self, timeout: float = 10) -> int | None:  # type: ignore[override]
        return None if self.proc is None else super().stop(timeout)

    def __exit__(self, *exc: object) -> None:
        self.stop()


def cpu_seconds(proc: Any) -> float:
    """user + system CPU seconds of a psutil.Process (all its threads)."""
    times = proc.cpu_times()
    return times.user + times.system


def cpu_percent(proc: Any, seconds: float) -> float:
    """The CPU ``proc`` (a psutil.Process) uses over the next ``seconds``, in % of one core (waits that long)."""
    before, started = cpu_seconds(proc), time.perf_counter()
    time.sleep(seconds)
    return (cpu_seconds(proc) - before) / (time.perf_counter() - started) * 100


def write_atomic(path: Path, data: bytes) -> float:
    """Write ``data`` to a hidden temp beside ``path`` and rename it; returns perf_counter right after the rename."""
    temp = path.with_name(f".{path.name}.tmp")
    with open(temp, "wb") as handle:
        handle.write(data)
    os.replace(temp, path)
    return time.perf_counter()


def pregenerate_scans(first: int, count: int, assets: int, seed: int = 7) -> list[bytes]:
    """Arrow file bytes of ``count`` consecutive simulated scans (one market stepping), numbered from ``first``.

    Generated ahead so the writer's pace is not set by the simulator's Python loops. Their
    ``timestamp`` metadata is the time of generation (so ``bridge.lag_s`` is meaningless here).
    """
    import random

    from scan_bridge.simulate import Market, scan_table, table_bytes

    market = Market(assets, random.Random(seed))
    return [table_bytes(scan_table(market, first + i)) for i in range(count)]
