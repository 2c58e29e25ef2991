"""The daemon's own CPU (% of one core) and RSS while all is healthy, at the default intervals.

    python bench/bench_daemon_cpu.py            # the real figure: one 120 s window (~3.5 min)
    python bench/bench_daemon_cpu.py --quick    # smoke run: one 20 s window (~1.5 min)

``python -m scan_bridge.daemon_flow`` against a real Prefect server (``prefect server start``, own
PREFECT_HOME and SQLite DB), with its defaults: health check every 30 s, the bridge's summary every
30 s, artifact at most every 300 s. A real member; a scanner writes 1 scan/s of 400 assets
(a full-size latest document for the health check to read). The window opens 5 s after the first
health line (so start-up is excluded) and lasts ``--window`` seconds.

CPU is the delta of psutil's ``cpu_times()`` user + system of the daemon process itself (all its
threads; not ``children_*``, so the bridge child is excluded) over the window, divided by the window.
RSS is sampled once a second. For scale the same window measures the bridge (the daemon's child)
and the Prefect server (``prefect server start`` and its uvicorn child), which the daemon talks to.
Target: the daemon under 2 % of one core.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import log, md_table, median, prefect_server, print_header  # noqa: E402
from bench_daemon_restart import DAEMON_HEALTH, DAEMON_PID, DaemonProc, world  # noqa: E402

import re  # noqa: E402

BRIDGE_LINE = re.compile(r"\[Bridge\] ")
TARGET_PCT = 2.0


def cpu_s(p: psutil.Process) -> float:
    t = p.cpu_times()
    return t.user + t.system


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 20 s window, no wait for the first health check")
    parser.add_argument("--window", type=float, default=120.0, help="measurement window in seconds (default 120)")
    parser.add_argument("--rate", type=float, default=1.0, help="scans per second written (default 1)")
    parser.add_argument("--assets", type=int, default=400, help="assets per scan (default 400)")
    args = parser.parse_args()
    if args.quick:
        args.window = 20.0
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"

    workdir = Path(tempfile.mkdtemp(prefix="bench-daemon-cpu-"))
    log(f"workdir {workdir}")
    with world(workdir, prefill=100, rate=args.rate, assets=args.assets) as w, prefect_server(workdir) as server:
        daemon = DaemonProc("daemon", w.bridge_env, server.env(), {}, workdir / "daemon.log").start()
        try:
            assert daemon.tap is not None and daemon.proc is not None
            _, match, _ = daemon.tap.wait_for(DAEMON_PID, 0, 120)
            bridge = psutil.Process(int(match.group(1)))
            if args.quick:
                daemon.tap.wait_for(re.compile(r"\[Bridge\] Watching "), 0, 120)
            else:
                daemon.tap.wait_for(DAEMON_HEALTH, 0, 120)
            time.sleep(5)
            procs = {
                "daemon": psutil.Process(daemon.proc.pid),
                "bridge (its child)": bridge,
                "prefect server (+uvicorn)": [psutil.Process(pid) for pid in server.pids()],
            }

            def total(p: psutil.Process | list[psutil.Process]) -> float:
                return sum(cpu_s(x) for x in p) if isinstance(p, list) else cpu_s(p)

            def rss(p: psutil.Process | list[psutil.Process]) -> int:
                return sum(x.memory_info().rss for x in p) if isinstance(p, list) else p.memory_info().rss

            log(f"window of {args.window:g} s opens")
            mark = daemon.tap.mark()
            start_cpu = {name: total(p) for name, p in procs.items()}
            samples: dict[str, list[int]] = {name: [] for name in procs}
            started = time.perf_counter()
            end = started + args.window
            while True:
                for name, p in procs.items():
                    samples[name].append(rss(p))
                left = end - time.perf_counter()
                if left <= 0:
                    break
                time.sleep(min(1.0, left))
            elapsed = time.perf_counter() - started
            end_cpu = {name: total(p) for name, p in procs.items()}
            threads = procs["daemon"].num_threads()
            end_mark = daemon.tap.mark()
            health_lines = daemon.tap.count(DAEMON_HEALTH, mark, end_mark)
            bridge_lines = daemon.tap.count(BRIDGE_LINE, mark, end_mark)
            restarts = daemon.tap.count(DAEMON_PID, 0)
            unhealthy = daemon.tap.count(re.compile(r"Health: (?!HEALTHY)"), mark, end_mark)
        finally:
            daemon.stop()

    print_header("Daemon CPU and RSS while healthy (default intervals)")
    print(f"window {elapsed:.1f} s; scanner {args.rate:g} scans/s of {args.assets} assets; in the window the daemon "
          f"logged {health_lines} health lines ({unhealthy} not HEALTHY) and forwarded {bridge_lines} bridge lines; "
          f"bridge starts in the whole run: {restarts}; daemon threads at the end: {threads}.\n")
    rows = []
    for name in procs:
        pct = 100.0 * (end_cpu[name] - start_cpu[name]) / elapsed
        rows.append([name, f"{pct:.2f}", f"{median(samples[name]) / 2**20:.0f}", f"{max(samples[name]) / 2**20:.0f}"])
    print(md_table(["process", "CPU % of one core", "RSS median MiB", "RSS max MiB"], rows))
    daemon_pct = 100.0 * (end_cpu["daemon"] - start_cpu["daemon"]) / elapsed
    print(f"\nTarget: daemon under {TARGET_PCT:g} % of one core: {'met' if daemon_pct < TARGET_PCT else 'NOT met'} "
          f"({daemon_pct:.2f} %).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
