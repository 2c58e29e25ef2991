"""Memory over time: the RSS slope of the daemon and of its bridge, in MB per hour.

    python bench/bench_memory.py                  # the real figure: 60 min, slope over minutes 10-60
    python bench/bench_memory.py --minutes 20     # shorter (the slope then covers minutes 10-20)
    python bench/bench_memory.py --quick          # smoke run: 3 min, slope over minutes 1-3

``python -m scan_bridge.daemon_flow`` (standalone, all settings at their defaults: health check
every 30 s, artifact at most every 300 s, the bridge's summary every 60 s) against a real Prefect
server (``prefect server start``, own PREFECT_HOME and SQLite DB), a real member, and a scanner
(``python -m scan_bridge.simulate``) writing 5 scans/s of 100 assets: the setup of issue 17.
Time is not compressed: the default intervals, in real time. (The growth of issue 17 was per
look at the disk, and its size per look grew with the files in today's folder, so shorter intervals
would not have compressed it: the folder grows with wall time.)

RSS (psutil ``memory_info().rss``) of the daemon process and of the bridge (its child; the newest
one if it was restarted) is sampled every ``--every`` seconds; the slope is the least-squares line
through the samples after the first ``--skip`` minutes (start-up, imports, first artifact and
caches filling), in MB (2**20 bytes) per hour: ``scan_bridge.rss_slope``, the same computation as
the chaos harness's report. Every sample goes to ``samples.csv`` in the workdir.
Target: under 1 MB per hour for both.

``--trace`` runs the daemon under ``bench/_memtrace.py`` (tracemalloc, snapshot diffs written to
``<workdir>/trace``) to find what grows; such a run is for diagnosis only, not for the figures.
``--health-interval`` shortens the check interval (``SCAN_BRIDGE_HEALTH_INTERVAL_S``) to compress
per-check growth into less time (a diagnosis aid; the figures use the default).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import command_line, log, md_table, prefect_server, print_header  # noqa: E402
from bench_daemon_restart import DAEMON_HEALTH, DAEMON_PID, PYTHON, DaemonProc, world  # noqa: E402

from scan_bridge.rss_slope import MB, TARGET_MB_PER_H, rss_slope_mb_per_h  # noqa: E402


class TracedDaemon(DaemonProc):
    """The daemon under bench/_memtrace.py."""

    def __init__(self, *args: object, trace_dir: Path, trace_every_s: float, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.trace_dir = trace_dir
        self.trace_every_s = trace_every_s

    def start(self) -> DaemonProc:
        wrapper = Path(__file__).resolve().parent / "_memtrace.py"
        self._popen([PYTHON, str(wrapper), str(self.trace_dir), f"{self.trace_every_s:g}", "scan_bridge.daemon_flow"],
                    self.env, self.log_path)
        return self


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="length of the run after the first health check (default 60)")
    parser.add_argument("--skip", type=float, default=10.0, help="minutes left out of the slope (default 10)")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between RSS samples (default 10)")
    parser.add_argument("--rate", type=float, default=5.0, help="scans per second written (default 5)")
    parser.add_argument("--assets", type=int, default=100, help="assets per scan (default 100)")
    parser.add_argument("--health-interval", type=float, default=None, help="SCAN_BRIDGE_HEALTH_INTERVAL_S (default: the daemon's own)")
    parser.add_argument("--trace", action="store_true", help="run the daemon under tracemalloc (diagnosis only)")
    parser.add_argument("--trace-every", type=float, default=300.0, help="seconds between tracemalloc diffs (default 300)")
    parser.add_argument("--daemon-env", action="append", default=[], metavar="NAME=VALUE", help="extra environment for the daemon")
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 minutes, slope after the first minute")
    args = parser.parse_args()
    if args.quick:
        args.minutes, args.skip = 3.0, 1.0
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    daemon_env = dict(item.split("=", 1) for item in args.daemon_env)
    if args.health_interval is not None:
        daemon_env["SCAN_BRIDGE_HEALTH_INTERVAL_S"] = f"{args.health_interval:g}"

    workdir = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    log(f"workdir {workdir}")
    csv_path = workdir / "samples.csv"
    with world(workdir, prefill=10, rate=args.rate, assets=args.assets) as w, prefect_server(workdir) as server:
        if args.trace:
            daemon: DaemonProc = TracedDaemon("daemon", w.bridge_env, server.env(), daemon_env, workdir / "daemon.log",
                                              trace_dir=workdir / "trace", trace_every_s=args.trace_every)
            log(f"tracemalloc diffs in {workdir / 'trace'}")
        else:
            daemon = DaemonProc("daemon", w.bridge_env, server.env(), daemon_env, workdir / "daemon.log")
        daemon.start()
        try:
            assert daemon.tap is not None and daemon.proc is not None
            daemon.tap.wait_for(DAEMON_PID, 0, 900 if args.trace else 180)
            daemon.tap.wait_for(DAEMON_HEALTH, 0, 900 if args.trace else 180)
            daemon_p = psutil.Process(daemon.proc.pid)
            samples: dict[str, list[tuple[float, int]]] = {"daemon": [], "bridge": []}  # (s, RSS bytes)
            bridge_pids: list[int] = []
            started = time.monotonic()
            end = started + args.minutes * 60
            log(f"sampling RSS every {args.every:g} s for {args.minutes:g} min")
            with open(csv_path, "w") as csv:
                csv.write("t_s,daemon_rss_mb,bridge_rss_mb,bridge_pid,daemon_threads\n")
                next_at = started
                while True:
                    if daemon.proc.poll() is not None:
                        raise RuntimeError(f"the daemon exited ({daemon.proc.returncode}); see {daemon.log_path}")
                    last = daemon.tap.last(DAEMON_PID)
                    assert last is not None
                    bridge_pid = int(last[1].group(1))
                    if not bridge_pids or bridge_pids[-1] != bridge_pid:
                        bridge_pids.append(bridge_pid)
                    t = time.monotonic() - started
                    d_bytes = daemon_p.memory_info().rss
                    d = d_bytes / MB
                    try:
                        b_bytes: int | None = psutil.Process(bridge_pid).memory_info().rss
                    except psutil.NoSuchProcess:
                        b_bytes = None
                    b = b_bytes / MB if b_bytes is not None else float("nan")
                    samples["daemon"].append((t, d_bytes))
                    if b_bytes is not None:
                        samples["bridge"].append((t, b_bytes))
                    csv.write(f"{t:.1f},{d:.2f},{b:.2f},{bridge_pid},{daemon_p.num_threads()}\n")
                    csv.flush()
                    if len(samples["daemon"]) % max(1, int(300 / args.every)) == 1:
                        log(f"t={t / 60:5.1f} min  daemon {d:6.1f} MB  bridge {b:6.1f} MB  threads {daemon_p.num_threads()}")
                    next_at += args.every
                    if next_at > end:
                        break
                    time.sleep(max(0.0, next_at - time.monotonic()))
            health_lines = daemon.tap.count(DAEMON_HEALTH)
            unhealthy = daemon.tap.count(re.compile(r"Health: (?!HEALTHY)"))
            threads = daemon_p.num_threads()
        finally:
            daemon.stop()

    skip_s = args.skip * 60
    print_header("Daemon and bridge RSS over time (issue 17)")
    print(f"command: `{command_line()}`; run of {args.minutes:g} min after the first health check, RSS every "
          f"{args.every:g} s, slope over minutes {args.skip:g}-{args.minutes:g}; scanner {args.rate:g} scans/s of "
          f"{args.assets} assets; health interval {args.health_interval or 'default (30 s)'}; "
          f"{'daemon under tracemalloc; ' if args.trace else ''}health lines {health_lines} ({unhealthy} not HEALTHY); "
          f"bridge processes {len(bridge_pids)}; daemon threads at the end {threads}; samples in {csv_path}.\n")
    rows = []
    met = True
    for name, values in samples.items():
        late = [(t, v / MB) for t, v in values if t >= skip_s]
        found = rss_slope_mb_per_h(values, start=0.0, skip_s=skip_s, min_span_s=0.0)  # the run's length is printed above
        slope = float("nan") if found is None else found
        met = met and slope < TARGET_MB_PER_H
        at_skip = late[0][1] if late else float("nan")
        rows.append([name, f"{values[0][1] / MB:.1f}", f"{at_skip:.1f}", f"{values[-1][1] / MB:.1f}", f"{slope:+.2f}"])
    print(md_table(["process", "RSS at start MB", f"RSS at {args.skip:g} min MB", "RSS at end MB", "slope MB/hour"], rows))
    print(f"\nTarget: both under {TARGET_MB_PER_H:g} MB/hour: {'met' if met else 'NOT met'}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
