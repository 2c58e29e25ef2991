"""How long the threaded Hazelcast client (5.7.0) takes to notice a frozen member, per setting.

    python bench/bench_frozen_member.py            # all variants (~4 min)
    python bench/bench_frozen_member.py --quick    # skips the two 60 s default-heartbeat variants

A real member from the jar, frozen with SIGSTOP (what a network that silently drops packets looks
like to the client, too). For each client configuration: connect, freeze the member, start one
``set`` (not retryable by itself, so ``redo_operation`` matters) and record, from the freeze:

* when the client's lifecycle says DISCONNECTED (the client closed the silent connection);
* when the ``set`` future completed, and how (its exception type, or ``ok``);
* after SIGCONT, how long until a new ``get`` answers.

Then two things the bridge needs to know before it trusts any of these settings: whether the
client *constructor* returns against a frozen member (``cluster_connect_timeout`` 5 s, sync start),
and how long ``client.shutdown()`` takes while the member is frozen.

Last, the bridge itself at its defaults (a real process, a scan written every 0.2 s): from the
freeze to its "does not answer" line, and from SIGCONT to every scan written during the freeze
being in history; once for a freeze shorter than ``hazelcast_heartbeat_timeout_s`` (the member
answers the bridge's heartbeat probe) and once longer (the client closed the connection first and
reconnects).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import hazelcast

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Bridge, hazelcast_member, log, md_table, member_env, print_header, unique_maps  # noqa: E402

from scan_bridge.simulate import write_scan  # noqa: E402

logging.getLogger("hazelcast").setLevel(logging.CRITICAL)

CAP_S = 90.0  # a variant that has not noticed by then is reported as "> 90 s"


def _client(cluster: Any, **settings: Any) -> tuple[hazelcast.HazelcastClient, dict[str, float]]:
    events: dict[str, float] = {}

    def on_state(state: str) -> None:
        events.setdefault(state, time.perf_counter())  # the first time each state is seen

    config = dict(cluster_name=cluster.cluster_name, cluster_members=cluster.members, cluster_connect_timeout=30)
    config.update(settings)
    client = hazelcast.HazelcastClient(**config, lifecycle_listeners=[on_state])
    events.clear()
    return client, events


def freeze(pid: int) -> None:
    """SIGSTOP and wait until the kernel reports the JVM stopped (state T), so no call sneaks in first."""
    os.kill(pid, signal.SIGSTOP)
    while not all(
        (task / "stat").read_text().rsplit(")", 1)[1].split()[0] == "T" for task in Path(f"/proc/{pid}/task").iterdir()
    ):
        time.sleep(0.01)


def _wait_done(future: Any, timeout: float) -> bool:
    done = threading.Event()
    future.add_done_callback(lambda _f: done.set())
    return done.wait(timeout)


def _outcome(future: Any) -> str:
    try:
        future.result()
        return "ok"
    except Exception as exc:  # noqa: BLE001 - the type is the measurement
        return type(exc).__name__


def _fmt(seconds: float | None) -> str:
    return f"> {CAP_S:g} s" if seconds is None else f"{seconds:.1f} s"


def measure_variant(cluster: Any, name: str, settings: dict[str, Any]) -> list[Any]:
    pid = cluster.pid(0)
    client, events = _client(cluster, **settings)
    features = client.get_map("frozen-bench")
    features.set("k", "before").result()
    freeze(pid)
    frozen_at = time.perf_counter()
    future = features.set("k", "during")
    deadline = frozen_at + CAP_S
    set_done = None
    while time.perf_counter() < deadline:
        if set_done is None and future.done():
            set_done = time.perf_counter() - frozen_at
        if set_done is not None and "DISCONNECTED" in events:
            break
        time.sleep(0.05)
    disconnected = events.get("DISCONNECTED")
    outcome = _outcome(future) if future.done() else "still waiting"
    os.kill(pid, signal.SIGCONT)
    thawed_at = time.perf_counter()
    answered = None
    while time.perf_counter() - thawed_at < 60:
        probe = features.get("k")
        if _wait_done(probe, 5) and _outcome(probe) == "ok":
            answered = time.perf_counter() - thawed_at
            break
        time.sleep(0.2)
    late = _outcome(future) if future.done() else "still waiting"
    client.shutdown()
    row = [
        name,
        _fmt(None if disconnected is None else disconnected - frozen_at),
        _fmt(set_done),
        outcome,
        late if outcome == "still waiting" else "",
        "-" if answered is None else f"{answered:.1f} s",
    ]
    log(" | ".join(row))
    return row


def measure_constructor(cluster: Any, cap: float = 30.0) -> str:
    """Does a sync-start constructor with cluster_connect_timeout=5 return against a frozen member?"""
    pid = cluster.pid(0)
    freeze(pid)
    result: dict[str, Any] = {}

    def construct() -> None:
        started = time.perf_counter()
        try:
            c = hazelcast.HazelcastClient(
                cluster_name=cluster.cluster_name, cluster_members=cluster.members, cluster_connect_timeout=5
            )
            result["outcome"] = "connected"
            result["client"] = c
        except Exception as exc:  # noqa: BLE001
            result["outcome"] = type(exc).__name__
        result["took"] = time.perf_counter() - started

    thread = threading.Thread(target=construct, daemon=True)
    thread.start()
    thread.join(cap)
    returned = "took" in result
    os.kill(pid, signal.SIGCONT)
    thread.join(60)  # after the thaw it completes; shut that client down
    if "client" in result:
        result["client"].shutdown()
    if returned:
        return f"returned after {result['took']:.1f} s ({result['outcome']})"
    return f"did not return within {cap:g} s; after SIGCONT: {result.get('outcome', 'still waiting')}"


def measure_async_start(cluster: Any) -> str:
    """An async_start client against a frozen member: the constructor returns; CONNECTED after the thaw."""
    pid = cluster.pid(0)
    freeze(pid)
    connected = threading.Event()
    started = time.perf_counter()
    client = hazelcast.HazelcastClient(
        cluster_name=cluster.cluster_name,
        cluster_members=cluster.members,
        cluster_connect_timeout=5,
        async_start=True,
        lifecycle_listeners=[lambda s: connected.set() if s == "CONNECTED" else None],
    )
    returned = time.perf_counter() - started
    was_connected = connected.wait(10)
    shutdown_started = time.perf_counter()
    client.shutdown()
    shutdown = time.perf_counter() - shutdown_started
    os.kill(pid, signal.SIGCONT)
    return (
        f"constructor returned in {returned * 1000:.0f} ms; connected within 10 s: {was_connected}; "
        f"shutdown() while frozen took {shutdown * 1000:.0f} ms"
    )


def measure_shutdown_connected(cluster: Any) -> str:
    """shutdown() of a connected client (one call in flight) while the member is frozen."""
    pid = cluster.pid(0)
    client, _events = _client(cluster)
    features = client.get_map("frozen-bench")
    features.set("k", "x").result()
    freeze(pid)
    features.set("k", "y")
    time.sleep(1.0)  # the scenario: a call has been hanging for a second
    started = time.perf_counter()
    client.shutdown()
    took = time.perf_counter() - started
    os.kill(pid, signal.SIGCONT)
    return f"shutdown() with a call hanging on a frozen member took {took * 1000:.0f} ms"


def _history(client: hazelcast.HazelcastClient, name: str) -> set[int]:
    """The scan numbers in history: from the documents, since keys are the scans' times (issue 14)."""
    return {int(json.loads(v.to_string())["scan_number"]) for v in client.get_map(name).values().result()}


def measure_bridge(cluster: Any, tmp: Path, freeze_s: float, round_: int) -> list[Any]:
    """The bridge at its defaults: detection of the freeze, and catch-up after the thaw."""
    pid = cluster.pid(0)
    watch = tmp / f"scans-{round_}"
    folder = watch / "2026-03-24"
    folder.mkdir(parents=True)
    maps = unique_maps()
    env = {**member_env(cluster), **maps}
    number = 0

    def write_one() -> int:
        nonlocal number
        number += 1
        write_scan(folder / f"scan_{number:06d}_120000.arrow", number, 20)
        return number

    viewer = hazelcast.HazelcastClient(cluster_name=cluster.cluster_name, cluster_members=cluster.members)
    try:
        with Bridge(watch, env, tmp / f"bridge-{round_}.log") as bridge:
            bridge.wait_logged("Watching", 60)
            for _ in range(5):
                write_one()
                time.sleep(0.2)  # the scanner's pace
            while _history(viewer, maps["SCAN_BRIDGE_HISTORY_MAP"]) != set(range(1, number + 1)):
                time.sleep(0.05)
            freeze(pid)
            frozen_wall = time.time()
            while time.time() - frozen_wall < freeze_s:
                write_one()
                time.sleep(0.2)
            line = bridge.find("does not answer")
            detected = None if line is None else _wall(line) - frozen_wall
            os.kill(pid, signal.SIGCONT)
            thawed = time.perf_counter()
            expected = set(range(1, number + 1))
            while _history(viewer, maps["SCAN_BRIDGE_HISTORY_MAP"]) != expected:
                if time.perf_counter() - thawed > 120:
                    raise TimeoutError(f"not caught up after 120 s: {bridge.tail()}")
                time.sleep(0.05)
            caught_up = time.perf_counter() - thawed
            path = "reconnect" if bridge.find("Reconnected") else "heartbeat probe answered"
    finally:
        viewer.shutdown()
    row = [f"{freeze_s:g} s", _fmt(detected), path, f"{caught_up:.1f} s", number]
    log(" | ".join(str(c) for c in row))
    return row


def _wall(line: dict[str, Any]) -> float:
    from datetime import datetime

    return datetime.fromisoformat(line["time"]).timestamp()


VARIANTS: list[tuple[str, dict[str, Any], bool]] = [
    ("defaults (heartbeat_timeout 60, invocation_timeout 120, redo off)", {}, True),
    ("invocation_timeout 5", {"invocation_timeout": 5.0}, True),
    ("heartbeat_timeout 15, invocation_timeout 10, redo off", {"heartbeat_timeout": 15.0, "invocation_timeout": 10.0}, False),
    (
        "heartbeat_timeout 15, invocation_timeout 10, redo on",
        {"heartbeat_timeout": 15.0, "invocation_timeout": 10.0, "redo_operation": True},
        False,
    ),
    (
        "heartbeat_timeout 15, invocation_timeout 30, redo on",
        {"heartbeat_timeout": 15.0, "invocation_timeout": 30.0, "redo_operation": True},
        False,
    ),
    ("heartbeat_timeout 5, heartbeat_interval 1", {"heartbeat_timeout": 5.0, "heartbeat_interval": 1.0}, False),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="skip the variants that wait the default 60 s heartbeat")
    args = parser.parse_args(argv)
    print_header("Frozen member: what the client notices, and when")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-frozen-") as tmp, hazelcast_member(Path(tmp), heap="1g") as cluster:
        constructor = measure_constructor(cluster)
        log(f"constructor: {constructor}")
        async_start = measure_async_start(cluster)
        log(f"async_start: {async_start}")
        shutdown = measure_shutdown_connected(cluster)
        log(shutdown)
        for name, settings, slow in VARIANTS:
            if args.quick and slow:
                continue
            rows.append(measure_variant(cluster, name, settings))
        bridge_rows = [measure_bridge(cluster, Path(tmp), freeze_s, i) for i, freeze_s in enumerate((10.0, 30.0))]
    print()
    print(
        md_table(
            [
                "client settings",
                "DISCONNECTED after",
                "set() completed after",
                "set() outcome",
                "set() after SIGCONT",
                "get() answers after SIGCONT",
            ],
            rows,
        )
    )
    print()
    print("The bridge at its defaults (hazelcast_call_timeout_s 5, hazelcast_heartbeat_timeout_s 15), one scan every 0.2 s:")
    print()
    print(
        md_table(
            ["freeze", "'does not answer' logged after", "back through", "all scans in history after SIGCONT", "scans written"],
            bridge_rows,
        )
    )
    print()
    print(f"- sync-start constructor (cluster_connect_timeout 5 s) against a frozen member: {constructor}")
    print(f"- async_start constructor against a frozen member: {async_start}")
    print(f"- {shutdown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
