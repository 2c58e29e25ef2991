"""Diagnostic: the bridge's CPU while the cluster is away, before and after a scan file arrives.

    python bench/bench_outage_cpu.py            # 10 s windows (~45 s)
    python bench/bench_outage_cpu.py --quick    # 4 s windows

A real member and bridge (native observer, ``--hazelcast-connect-timeout-s 60`` so the client is
still reconnecting during the windows). Windows, CPU in % of one core: connected and idle; member
killed, no new file; member still away, one scan file written. A bridge that only waits for the
cluster should stay near its idle figure in all three.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Bridge, cpu_percent, hazelcast_member, log, md_table, member_env, print_header, unique_maps  # noqa: E402

from scan_bridge.simulate import write_scan  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 4 s windows")
    parser.add_argument("--window-s", type=float, default=None, help="length of each window (default 10)")
    args = parser.parse_args(argv)
    seconds = args.window_s or (4.0 if args.quick else 10.0)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-outage-") as tmp_text:
        tmp = Path(tmp_text)
        watch = tmp / "scans"
        (watch / "2026-03-24").mkdir(parents=True)
        with hazelcast_member(tmp) as cluster:
            env = {**member_env(cluster), **unique_maps(), "SCAN_BRIDGE_HAZELCAST_CONNECT_TIMEOUT_S": "60"}
            with Bridge(watch, env, tmp / "bridge.log", "--observer", "native") as bridge:
                bridge.wait_logged("Watching", 60)
                proc = psutil.Process(bridge.pid)

                def cpu() -> float:
                    return cpu_percent(proc, seconds)

                time.sleep(2)
                rows.append(["connected, idle", f"{cpu():.1f}"])
                cluster.stop_member(0, kill=True)
                bridge.wait_logged("Lost connection", 30)
                rows.append(["cluster away, no new file", f"{cpu():.1f}"])
                write_scan(watch / "2026-03-24" / "scan_000001_120000.arrow", 1, 20)
                time.sleep(0.5)
                rows.append(["cluster away, one file written", f"{cpu():.1f}"])
                log(" | ".join(f"{a}: {b} %" for a, b in rows))
    print_header("Bridge CPU during a cluster outage")
    print(f"{seconds:g} s windows; CPU in % of one core.\n")
    print(md_table(["phase", "bridge CPU %"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
