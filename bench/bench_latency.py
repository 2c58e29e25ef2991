"""Latency: from a scan file being complete (``os.replace`` returned) to its scan being in Hazelcast.

    python bench/bench_latency.py            # the real figures (~4 min)
    python bench/bench_latency.py --quick    # smoke run (~20 s)

A real member, and a real bridge process per observer setting (native inotify; polling at 1.0 s,
the default interval; polling at 0.1 s). Scans of 400 assets are written into the bridge's
watched date folder at a fixed rate (5 and 50 per second) on a monotonic schedule, each to a hidden
temp file and renamed (what ``simulate.write_scan`` does); the Arrow bytes are generated before
the clock starts, so the writer keeps its pace. "In Hazelcast" is the moment an entry listener on
the history map (in this process, ``_common.KeyEvents``) hears the scan being added (with its value,
from which it takes the scan number, since keys are times):
the member has stored it, any reader would get it. Both instants are ``perf_counter`` in this
process, so no clocks are compared across processes.

Each bridge first gets 10 warm-up scans (not counted). Target: p99 under 20 ms with the native observer.

Two member configurations (``--member-config``): the member's default, where ``metadata-policy``
CREATE_ON_UPDATE makes it parse every ~104 KB JSON document it stores (about 1.5 MB of garbage per
scan, so a young-generation GC pause every couple of seconds at 50 scans/s, which the scans
arriving during it wait out), and ``metadata-policy: OFF``, where what is left is the bridge's own
path. All observers run on the first; the native observer alone on the second.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    Bridge,
    KeyEvents,
    client,
    hazelcast_member,
    log,
    md_table,
    member_env,
    percentile,
    pregenerate_scans,
    print_header,
    unique_maps,
    write_atomic,
)

ASSETS = 400
WARMUP = 10
TARGET_P99_MS = 20.0


def parse_observer(text: str) -> tuple[str, list[str]]:
    """``native`` or ``polling:INTERVAL`` → (label, bridge flags)."""
    if text == "native":
        return "native (inotify)", ["--observer", "native"]
    kind, _, interval = text.partition(":")
    if kind != "polling":
        raise argparse.ArgumentTypeError(f"observer must be native or polling:SECONDS, not {text!r}")
    interval = interval or "1.0"
    return f"polling, --poll-interval-s {interval}", ["--observer", "polling", "--poll-interval-s", interval]


def run_phase(folder: Path, events: KeyEvents, scans: list[bytes], first: int, rate: float, settle_s: float) -> dict:
    """Write ``len(scans)`` files at ``rate``/s; wait for their events; latency per scan in ms."""
    period = 1.0 / rate
    done: dict[int, float] = {}
    slips = []
    anchor = time.perf_counter() + 0.05
    for i, data in enumerate(scans):
        target = anchor + i * period
        now = time.perf_counter()
        if target > now:
            time.sleep(target - now)
        slips.append(time.perf_counter() - target)
        number = first + i
        done[number] = write_atomic(folder / f"scan_{number:06d}_120000.arrow", data)
    last_write = max(done.values())
    first_write = min(done.values())
    events.wait(lambda seen: all(n in seen for n in done), settle_s)
    latencies = [(events.seen[n] - t) * 1000 for n, t in done.items() if n in events.seen]
    return {
        "timeline": [(n, t - anchor, (events.seen[n] - t) * 1000 if n in events.seen else None) for n, t in done.items()],
        "latencies": latencies,
        "missing": len(done) - len(latencies),
        "achieved_rate": (len(done) - 1) / (last_write - first_write) if len(done) > 1 else float("nan"),
        "max_slip_ms": max(slips) * 1000,
    }


def measure_observer(cluster, hz, tmp: Path, index: int, label: str, flags: list[str], config: str,
                     scans: list[bytes], rates: list[float], counts: list[int], dump: list) -> list[list]:
    """One bridge with one observer setting: warm-up, then each rate in turn; a table row per rate."""
    rows = []
    maps = unique_maps()
    watch = tmp / f"scans-{index}"
    folder = watch / "2026-03-24"
    folder.mkdir(parents=True)
    events = KeyEvents(hz, maps["SCAN_BRIDGE_HISTORY_MAP"])
    poll = float(flags[-1]) if "polling" in flags else 0.0
    settle = 5.0 + 2 * poll
    bridge = Bridge(watch, {**member_env(cluster), **maps}, tmp / f"bridge-{index}.log", *flags)
    with bridge:
        bridge.wait_logged("Watching", 60)
        log(f"{config} / {label}: warm-up")
        run_phase(folder, events, scans[:WARMUP], 1, 10.0, settle)
        number = 1 + WARMUP
        for rate, count in zip(rates, counts):
            time.sleep(1.0)
            log(f"{config} / {label}: {count} scans at {rate:g}/s")
            result = run_phase(folder, events, scans[number - 1 : number - 1 + count], number, rate, settle)
            number += count
            dump.append({"member": config, "observer": label, "rate": rate, "timeline": result["timeline"]})
            lat = result["latencies"]
            rows.append(
                [
                    config,
                    label,
                    f"{rate:g}",
                    f"{result['achieved_rate']:.2f}",
                    len(lat),
                    f"{percentile(lat, 50):.1f}",
                    f"{percentile(lat, 90):.1f}",
                    f"{percentile(lat, 99):.1f}",
                    f"{max(lat) if lat else float('nan'):.1f}",
                    result["missing"],
                    f"{result['max_slip_ms']:.1f}",
                ]
            )
    events.close()
    for name in maps.values():
        hz.get_map(name).destroy()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: few scans, two observers")
    parser.add_argument("--rates", default="5,50", help="scans per second, comma-separated (default 5,50)")
    parser.add_argument(
        "--seconds",
        default=None,
        help="seconds written per rate, comma-separated, aligned with --rates (default 40,12: 200 and 600 scans)",
    )
    parser.add_argument(
        "--observers",
        default=None,
        help="comma-separated: native, polling:SECONDS (default native,polling:1.0,polling:0.1)",
    )
    parser.add_argument("--dump", type=Path, default=None, help="write every scan's latency (JSON) here, for diagnosis")
    parser.add_argument(
        "--member-config",
        default=None,
        help="comma-separated member configurations: default (metadata-policy CREATE_ON_UPDATE), metadata-off; "
        "the observers run on the first, the native observer alone on the others (default default,metadata-off)",
    )
    args = parser.parse_args(argv)
    configs = (args.member_config or ("default" if args.quick else "default,metadata-off")).split(",")
    rates = [float(r) for r in args.rates.split(",")]
    seconds_text = args.seconds or ("2,1" if args.quick else "40,12")
    seconds = [float(s) for s in seconds_text.split(",")]
    if len(seconds) != len(rates):
        parser.error("--seconds needs one value per rate")
    observers_text = args.observers or ("native,polling:0.2" if args.quick else "native,polling:1.0,polling:0.1")
    observers = [parse_observer(o) for o in observers_text.split(",")]
    counts = [max(2, int(r * s)) for r, s in zip(rates, seconds)]

    total = WARMUP + sum(counts)
    log(f"pre-generating {total} scans of {ASSETS} assets")
    scans = pregenerate_scans(1, total, ASSETS)
    rows = []
    dump = []
    plan = [(config, observers if i == 0 else [parse_observer("native")]) for i, config in enumerate(configs)]
    for config, config_observers in plan:
        with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp_text:
            tmp = Path(tmp_text)
            with hazelcast_member(tmp, json_metadata=config != "metadata-off") as cluster:
                hz = client(cluster)
                try:
                    for index, (label, flags) in enumerate(config_observers):
                        rows.extend(measure_observer(cluster, hz, tmp, index, label, flags, config, scans, rates, counts, dump))
                finally:
                    hz.shutdown()

    if args.dump:
        args.dump.write_text(json.dumps(dump))
    print_header("Latency: file complete → scan in Hazelcast")
    print(f"{ASSETS} assets per scan (~50 KB Arrow, ~104 KB JSON); {WARMUP} warm-up scans per bridge not counted.\n")
    headers = ["member", "observer", "rate /s", "achieved /s", "n", "p50 ms", "p90 ms", "p99 ms", "max ms", "missing", "writer max slip ms"]
    print(md_table(headers, rows))
    print()
    for config in configs:
        native = [row for row in rows if row[0] == config and row[1].startswith("native")]
        if native:
            worst = max(float(row[7]) for row in native)
            verdict = "met" if worst < TARGET_P99_MS and all(row[9] == 0 for row in native) else "NOT met"
            print(
                f"Target p99 < {TARGET_P99_MS:g} ms with the native observer, member {config}: {verdict} "
                f"(worst native p99 {worst:.1f} ms)."
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
