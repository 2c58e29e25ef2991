"""Resources: the bridge process's CPU (% of one core) and RSS, idle and while receiving 5 scans/s.

    python bench/bench_resources.py            # the real figures: 30 s windows (~1.5 min)
    python bench/bench_resources.py --quick    # smoke run: 5 s windows

A real member and a real bridge process with its default settings (observer ``auto``, which is
inotify on a local disk; heartbeat every 2 s; summary every 30 s). CPU is the delta of psutil's
``cpu_times()`` (user + system, all threads) over each window divided by the window's length;
RSS is sampled once a second through the window (median and max).

For scale, the same windows measure a bare hazelcast-python-client process that only connects and
sleeps (the client's reactor thread wakes every 10 ms by design, so this is the floor any process
holding a client pays), and the member's JVM.

Windows: idle (5 s after "Watching", no files), then 5 scans/s of 400 assets written atomically
into the watched date folder (3 s of warm-up before the window opens). Target: idle under 1 % of a core.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    Bridge,
    client,
    cpu_seconds,
    hazelcast_member,
    log,
    md_table,
    member_env,
    pregenerate_scans,
    print_header,
    unique_maps,
    write_atomic,
)

ASSETS = 400
RATE = 5.0
TARGET_IDLE_PCT = 1.0

BARE_CLIENT = """
import sys, time, hazelcast
c = hazelcast.HazelcastClient(cluster_name=sys.argv[1], cluster_members=sys.argv[2].split(","), cluster_connect_timeout=30)
print("connected", flush=True)
time.sleep(3600)
"""


def thread_cpu(proc: psutil.Process) -> dict[int, float]:
    return {t.id: t.user_time + t.system_time for t in proc.threads()}


def window(procs: dict[str, psutil.Process], seconds: float) -> dict[str, dict]:
    """CPU % of one core and RSS samples of each process over ``seconds``."""
    start_cpu = {name: cpu_seconds(p) for name, p in procs.items()}
    start_threads = thread_cpu(procs["bridge"])
    rss: dict[str, list[int]] = {name: [] for name in procs}
    started = time.perf_counter()
    end = started + seconds
    while True:
        for name, p in procs.items():
            rss[name].append(p.memory_info().rss)
        left = end - time.perf_counter()
        if left <= 0:
            break
        time.sleep(min(1.0, left))
    elapsed = time.perf_counter() - started
    out = {}
    for name, p in procs.items():
        out[name] = {
            "cpu_pct": (cpu_seconds(p) - start_cpu[name]) / elapsed * 100,
            "rss_median_mb": statistics.median(rss[name]) / 2**20,
            "rss_max_mb": max(rss[name]) / 2**20,
        }
    end_threads = thread_cpu(procs["bridge"])
    per_thread = sorted(
        ((end_threads[t] - start_threads.get(t, 0.0)) / elapsed * 100 for t in end_threads), reverse=True
    )
    out["bridge"]["threads"] = per_thread
    out["bridge"]["elapsed"] = elapsed
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 5 s windows")
    parser.add_argument("--window-s", type=float, default=None, help="length of each window (default 30)")
    args = parser.parse_args(argv)
    seconds = args.window_s or (5.0 if args.quick else 30.0)

    count = int(RATE * (seconds + 3 + 2)) + 5
    scans = pregenerate_scans(1, count, ASSETS)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bench-resources-") as tmp_text:
        tmp = Path(tmp_text)
        with hazelcast_member(tmp) as cluster:
            member = psutil.Process(cluster.pid(0))
            maps = unique_maps()
            watch = tmp / "scans"
            folder = watch / "2026-03-24"
            folder.mkdir(parents=True)
            bare = subprocess.Popen(
                [sys.executable, "-c", BARE_CLIENT, cluster.cluster_name, ",".join(cluster.members)],
                stdout=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
            )
            try:
                assert bare.stdout is not None
                bare.stdout.readline()
                bridge = Bridge(watch, {**member_env(cluster), **maps}, tmp / "bridge.log")
                with bridge:
                    watching = bridge.wait_logged("Watching", 60)
                    observer = watching.get("fields", {}).get("observer", "?")
                    procs = {"bridge": psutil.Process(bridge.pid), "bare client": psutil.Process(bare.pid), "member JVM": member}
                    time.sleep(5)
                    log(f"idle window of {seconds:g} s ({observer} observer)")
                    results["idle"] = window(procs, seconds)

                    stop = threading.Event()
                    written = [0]

                    def writer() -> None:
                        period = 1 / RATE
                        anchor = time.perf_counter()
                        for i, data in enumerate(scans):
                            target = anchor + i * period
                            if stop.wait(max(0.0, target - time.perf_counter())):
                                return
                            write_atomic(folder / f"scan_{i + 1:06d}_120000.arrow", data)
                            written[0] += 1

                    thread = threading.Thread(target=writer, daemon=True)
                    thread.start()
                    time.sleep(3)
                    log(f"window of {seconds:g} s at {RATE:g} scans/s")
                    before = written[0]
                    results["5 scans/s"] = window(procs, seconds)
                    during = written[0] - before
                    stop.set()
                    thread.join()
                    hz = client(cluster)
                    try:
                        in_history = hz.get_map(maps["SCAN_BRIDGE_HISTORY_MAP"]).size().result()
                    finally:
                        hz.shutdown()
            finally:
                bare.kill()
                bare.wait()

    print_header("Resources of the bridge process")
    print(f"bridge with default settings ({observer} observer, heartbeat 2 s); {seconds:g} s windows; CPU in % of one core.\n")
    rows = []
    for phase, res in results.items():
        b = res["bridge"]
        rows.append(
            [
                phase,
                f"{b['cpu_pct']:.2f}",
                f"{b['rss_median_mb']:.0f} / {b['rss_max_mb']:.0f}",
                f"{res['bare client']['cpu_pct']:.2f}",
                f"{res['member JVM']['cpu_pct']:.1f}",
                ", ".join(f"{t:.2f}" for t in b["threads"][:3]),
            ]
        )
    print(
        md_table(
            ["phase", "bridge CPU %", "bridge RSS MB (median / max)", "bare idle client CPU % (same window)", "member JVM CPU %", "bridge's 3 busiest threads %"],
            rows,
        )
    )
    print(f"\n{during} scans written during the loaded window; {in_history} of {written[0]} written in history at the end.")
    idle = results["idle"]["bridge"]["cpu_pct"]
    verdict = "met" if idle < TARGET_IDLE_PCT else "NOT met"
    print(f"\nTarget idle CPU < {TARGET_IDLE_PCT:g} % of a core: {verdict} ({idle:.2f} %).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
