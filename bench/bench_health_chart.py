"""What the health chart costs: bytes per artifact version, bytes per day in Prefect's DB, render time.

    python bench/bench_health_chart.py            # 200 renders per day kind (~10 s)
    python bench/bench_health_chart.py --quick    # 20 renders

Pure and in-process (no server): three synthetic 24 h histories ending now, a check every 30 s,
rendered by the daemon's own ``render_markdown`` with and without the chart, and the chart alone
(``health_chart.markdown_image``: SVG and base64) timed in CPU time (``process_time``, what the
daemon pays; the machine's load does not inflate it as it does the wall time, also shown):

* **calm**: all healthy, data age 2 s;
* **flapping**: healthy and warning alternating every 2 minutes (a state change each time, the
  history's 60-change cap full), the worst case the footprint model uses;
* **sample day**: the day of ``scripts/screenshot-health-artifact`` (a silent scanner at night,
  a daemon upgrade, two restarts, a warning).

The per-day model is the one of ``bench_daemon_db.py``: 24 new versions a day (one per UTC hour),
each stored once in the ``artifact`` table (never deleted) and once more in the payload of
Prefect's ``prefect.artifact-collection.updated`` event (deleted after the event retention), each
× 1.14, the allocated/payload ratio that run measured for artifact rows. In-place updates between
versions replace a row and add nothing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from importlib.machinery import SourceFileLoader
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "src"))

from _common import md_table, print_header  # noqa: E402

VERSIONS_PER_DAY = 24
RENDERS_PER_DAY = 86400 // 300 + 24  # in-place updates at most every 300 s, plus the hourly new versions
FILL = 1.14  # allocated / payload of artifact rows (bench_daemon_db.py)
TARGET_BYTES_PER_DAY = 5 * 2**20


def day(kind: str, now: datetime):  # -> HealthHistory
    from scan_bridge.health_history import HealthHistory

    if kind == "sample day":
        shot = SourceFileLoader("shot", str(ROOT / "scripts/screenshot-health-artifact")).load_module()
        return shot.sample_day(now)[0]
    history = HealthHistory()
    start = now - timedelta(seconds=86400 - 30)
    status, scan = "healthy", 1
    for i in range(86400 // 30):
        at = start + timedelta(seconds=30 * i)
        if kind == "flapping" and i % 4 == 0:
            status = "warning" if status == "healthy" else "healthy"
            history.record_change(at, status, "state change", 31.0, scan)
        scan += 6
        history.record_check(at, status, 31.0 if status == "warning" else 2.0, scan)
    return history


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20 renders per day kind")
    parser.add_argument("--renders", type=int, default=200)
    args = parser.parse_args()
    renders = 20 if args.quick else args.renders

    from scan_bridge import health_chart
    from scan_bridge.daemon_artifact import render_markdown
    from scan_bridge.daemon_status import DaemonStatus

    print_header("The health chart's cost")
    rows, model, per_day = [], [], []
    now = datetime.now(UTC)
    for kind in ("calm", "flapping", "sample day"):
        history = day(kind, now)
        svg = health_chart.render_svg(history, now, 30, 60)
        image = health_chart.markdown_image(history, now, 30, 60)
        with_chart = len(render_markdown(DaemonStatus(), history).encode())
        without = with_chart - len(image.encode()) - 2  # the image line and its blank line
        times, cpu = [], []
        for _ in range(renders):
            started, started_cpu = time.perf_counter(), time.process_time()
            health_chart.markdown_image(history, now, 30, 60)
            times.append(time.perf_counter() - started)
            cpu.append(time.process_time() - started_cpu)
        rows.append([kind, without, with_chart, len(svg.encode()), len(image.encode()),
                     f"{statistics.median(cpu) * 1e3:.2f}", f"{statistics.median(times) * 1e3:.2f}",
                     f"{max(times) * 1e3:.2f}"])
        per_day.append(statistics.median(cpu) * RENDERS_PER_DAY)
        added = len(image.encode()) * FILL * VERSIONS_PER_DAY
        model.append([kind, f"{added / 2**20:.3f}", f"{added / 2**20:.3f}",
                      f"{100 * added / TARGET_BYTES_PER_DAY:.1f} %"])
    print(md_table(["day", "artifact version without chart B", "with chart B", "SVG B", "data-URI image B",
                    "render CPU ms (median)", "render wall ms (median)", "render wall ms (max)"], rows))
    print()
    print(md_table(["day", "added permanent growth MiB/day (artifact rows)", "added to the 7-day event window MiB/day",
                    "permanent growth added, share of the 5 MB/day target"], model))
    print(f"\n{renders} renders per day kind; model: {VERSIONS_PER_DAY} versions/day × bytes × {FILL}.")
    print(f"CPU: at most {RENDERS_PER_DAY} renders a day (an update every 300 s, plus the hourly versions) × the "
          f"median CPU per render = {max(per_day):.2f} s a day at most, {100 * max(per_day) / 86400:.4f} % of one core "
          "(state changes add one render each).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
