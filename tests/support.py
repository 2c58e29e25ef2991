"""Helpers shared by the tests that run real bridges against real members."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import hazelcast
from hazelcast import predicate, projection

from scan_bridge.child_stop import stop_child
from scan_bridge.document import HISTORY_KEY_INT_TYPE
from scan_bridge.settings import env_var

T = TypeVar("T")


def wait_for(check: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
        except Exception as exc:  # a check may race a starting server
            last = exc
        if last and not isinstance(last, Exception):
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")
        time.sleep(interval)


def unique_maps() -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return {
        "SCAN_BRIDGE_FEATURES_MAP": f"F_{suffix}",
        "SCAN_BRIDGE_HISTORY_MAP": f"H_{suffix}",
    }


#: The settings that name a test's member and maps (``hazelcast_cluster.env()`` and :func:`unique_maps`).
MEMBER_SETTINGS = ("hazelcast_members", "hazelcast_cluster_name", "features_map", "history_map")


def member_settings(env: dict[str, str]) -> dict[str, str]:
    """Keyword arguments for a settings class (``DaemonSettings(**member_settings(env), ...)``): the member
    and maps a test's environment names, read from their variables."""
    return {name: env[env_var(name)] for name in MEMBER_SETTINGS}


class View:
    """A plain client looking at what the bridge wrote, the way a consumer would."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.client = hazelcast.HazelcastClient(
            cluster_name=env["SCAN_BRIDGE_HAZELCAST_CLUSTER_NAME"],
            cluster_members=env["SCAN_BRIDGE_HAZELCAST_MEMBERS"].split(","),
            cluster_connect_timeout=30,
            default_int_type=HISTORY_KEY_INT_TYPE,  # history keys are Java longs
        )
        self.features = self.client.get_map(env.get("SCAN_BRIDGE_FEATURES_MAP", "DOLPHIN_FEATURES")).blocking()
        self.history = self.client.get_map(env.get("SCAN_BRIDGE_HISTORY_MAP", "DOLPHIN_EIGEN_SCANS")).blocking()

    def history_keys(self) -> set[int]:
        """The scan NUMBERS in history (keys are the scans' times since issue 14; see :meth:`raw_keys`)."""
        return {int(n) for n in self.history.project(projection.single_attribute("scan_number"))}

    def raw_keys(self) -> set[int]:
        """The history keys themselves: microseconds since the epoch of each scan's UTC timestamp."""
        return {int(k) for k in self.history.key_set()}

    def scans(self) -> list[dict[str, Any]]:
        """Every document in history, oldest key (time) first."""
        entries = sorted(self.history.entry_set(), key=lambda kv: int(kv[0]))
        return [json.loads(value.to_string()) for _key, value in entries]

    def latest(self) -> dict[str, Any] | None:
        value = self.features.get("latest_eigen_scan")
        return None if value is None else json.loads(value.to_string())

    def heartbeat(self) -> dict[str, Any] | None:
        value = self.features.get("scan_bridge_heartbeat")
        return None if value is None else json.loads(value.to_string())

    def scan(self, number: int) -> dict[str, Any] | None:
        """The newest scan numbered ``number`` (looked up by the document's field: keys are times)."""
        values = self.history.values(predicate.equal("scan_number", number))
        documents = [json.loads(value.to_string()) for value in values]
        return max(documents, key=lambda d: d["timestamp"]) if documents else None

    def destroy_maps(self) -> None:
        """Free what the test wrote: the shared member (256 MB heap) serves the whole suite."""
        for proxy in (self.features, self.history):
            try:
                proxy.destroy()
            except Exception:  # noqa: BLE001 - a test that stopped the member leaves nothing to free
                pass

    def close(self) -> None:
        self.client.shutdown()


class BridgeRunner:
    """``python -m scan_bridge.service`` as a real child process, its output in a file we can read.

    The one bridge runner of the tests and the benchmarks (``bench/_common.Bridge`` adds its timing).
    """

    #: Settings a bridge runs with unless ``env`` says otherwise: JSON lines to read, and for tests
    #: quick summaries and heartbeats (the benchmarks keep the bridge's own defaults).
    DEFAULTS: dict[str, str] = {
        "SCAN_BRIDGE_LOG_FORMAT": "json",
        "SCAN_BRIDGE_SUMMARY_INTERVAL_S": "1",
        "SCAN_BRIDGE_HEARTBEAT_INTERVAL_S": "0.5",
    }

    def __init__(self, watch_dir: Path, env: dict[str, str], log_path: Path, *args: str,
                 prefix: Sequence[str] = ()) -> None:
        self.watch_dir = watch_dir
        self.prefix = list(prefix)  # e.g. chaos.processes.unprivileged's setpriv, before the interpreter
        self.env = {**os.environ, **env, "SCAN_BRIDGE_WATCH_DIR": str(watch_dir)}
        for name, value in self.DEFAULTS.items():
            self.env.setdefault(name, value)
        self.env.setdefault("SCAN_BRIDGE_STATE_DIR", str(log_path.parent / "bridge-state"))  # not the user's own
        self.log_path = log_path
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> BridgeRunner:
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [*self.prefix, sys.executable, "-m", "scan_bridge.service", *self.args],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        return self

    def lines(self) -> list[dict[str, Any]]:
        """The JSON log lines written so far (non-JSON lines come back as {"raw": ...})."""
        out = []
        for raw in self.log_path.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(raw))
            except ValueError:
                out.append({"raw": raw})
        return out

    def messages(self) -> list[str]:
        return [line.get("message", line.get("raw", "")) for line in self.lines()]

    def wait_logged(self, fragment: str, timeout: float = 30) -> str:
        return wait_for(
            lambda: next((m for m in self.messages() if fragment in m), None), timeout, f"log line with {fragment!r}"
        )

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 10) -> int:
        assert self.proc is not None
        code = stop_child(self.proc, timeout, kill_wait_s=None)
        self._log.close()
        return code

    def __enter__(self) -> BridgeRunner:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.stop()


def write_many_scans(folder: Path, count: int, mtime: float) -> None:
    """``count`` small scans ``scan_000001…`` in ``folder``, each with its own number and its own time
    (one second apart: two scans claiming one instant are one slot), all modified at ``mtime``.

    One 5-asset table, renumbered and restamped: 0.2 ms a file, where ``write_scan`` takes 1 ms; for
    tests that need thousands of files (a long catch-up).
    """
    import random
    from datetime import UTC, datetime, timedelta

    from scan_bridge.document import format_timestamp
    from scan_bridge.simulate import Market, scan_table, table_bytes

    table = scan_table(Market(5, random.Random(16)), 1)
    metadata = dict(table.schema.metadata)
    start = datetime(2026, 3, 24, tzinfo=UTC)
    for number in range(1, count + 1):
        metadata[b"scan_number"] = str(number).encode()
        metadata[b"timestamp"] = format_timestamp(start + timedelta(seconds=number)).encode()
        path = folder / f"scan_{number:06d}_120000.arrow"
        path.write_bytes(table_bytes(table.replace_schema_metadata(metadata), "file"))
        os.utime(path, (mtime, mtime))


def process_tree(pid: int) -> list[Any]:
    """``pid`` and all its descendants (psutil processes); empty when it is gone."""
    import psutil

    try:
        parent = psutil.Process(pid)
        return [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def kill_all(processes: Sequence[Any], timeout: float = 10.0) -> None:
    """A machine lost: SIGKILL every one of ``processes`` at once, then wait for them (up to ``timeout``)."""
    import psutil

    for p in processes:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(list(processes), timeout=timeout)


def sample_latest(env: dict[str, str], stop: Any, record: Callable[[dict[str, Any]], None], every: float = 0.02) -> None:
    """Until ``stop`` (an Event) is set: read ``latest_eigen_scan`` every ``every`` s with a client of its own,
    each document to ``record`` (a failed read is skipped: the cluster may be what is being broken)."""
    sampler = View(env)
    try:
        while not stop.wait(every):
            try:
                value = sampler.features.get("latest_eigen_scan")
            except Exception:  # noqa: BLE001
                continue
            if value is not None:
                record(json.loads(value.to_string()))
    finally:
        sampler.close()
