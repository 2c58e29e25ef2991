"""Failover time (issue 12): from the loss of the active machine to fresh data written by another one.

Two simulated machines (tests/failover_machine.py: a failover daemon's supervisor, its elector and
its bridge, as one process tree each), one real member, a scanner at 2 scans/s of 400 assets (the
simulator's defaults). Each round SIGKILLs the active machine's whole tree, measures until
``latest_eigen_scan`` holds a document written by the other machine (sampled every 20 ms), then
starts the lost machine again as a standby and lets it settle. At the end: every scan on disk is in
history, and latest never moved backwards over the whole run.

    python bench/bench_failover.py --rounds 20            # default lease (5 s, renewed every 1 s)
    python bench/bench_failover.py --rounds 5 --lease 3 --renew 0.5

``--reference-rounds N`` adds, in the same run and on the same member, the path a Prefect user would
otherwise have (bench/_failover_reference.py: one deployment without our failover, two workers as
two machines, flow-run heartbeats and Prefect's documented zombie automation, plus an automation
that runs the deployment again after a crash), N losses of about two minutes each, and the ratio of
the medians:

    python bench/bench_failover.py --rounds 20 --reference-rounds 8     # ~30 min
    python bench/bench_failover.py --rounds 1 --reference-rounds 1      # quick: one of each, ~4 min
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scan_bridge.discovery import scan_number_from_name  # noqa: E402
from scan_bridge.lease import DEFAULT_LEASE_S, DEFAULT_RENEW_S  # noqa: E402
from scan_bridge.localcluster import LocalCluster, free_port_block  # noqa: E402
from scan_bridge.simulate import Simulator  # noqa: E402
from tests.support import View, kill_all, process_tree, sample_latest, unique_maps, wait_for  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from _failover_reference import HISTORY_RETENTION, ReferencePath, kept_by_history, ratio, summarize  # noqa: E402


class Machine:
    def __init__(self, name: str, env: dict[str, str], workdir: Path) -> None:
        self.name, self.env, self.log_path = name, env, workdir / f"{name}.log"
        self.env["SCAN_BRIDGE_MACHINE_NAME"] = name
        self.env["SCAN_BRIDGE_STATE_DIR"] = str(workdir / f"{name}-state")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.log = open(self.log_path, "ab")
        self.log.write(b"--- start\n")
        self.log.flush()
        self.offset = self.log.tell()
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.failover_machine"], env=self.env, cwd=ROOT,
                                     stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    def output(self) -> str:
        with open(self.log_path, "rb") as f:
            f.seek(self.offset)
            return f.read().decode(errors="replace")

    def kill_tree(self) -> None:
        assert self.proc is not None
        processes = process_tree(self.proc.pid)
        if not processes:
            return
        kill_all(processes)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill_tree()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--lease", type=float, default=DEFAULT_LEASE_S)
    parser.add_argument("--renew", type=float, default=DEFAULT_RENEW_S)
    parser.add_argument("--rate", type=float, default=2.0)
    parser.add_argument("--assets", type=int, default=400)
    parser.add_argument("--reference-rounds", type=int, default=0,
                        help="also measure Prefect's own path (zombie automation, a new run on another worker), after ours")
    args = parser.parse_args()
    print(f"command: python bench/bench_failover.py {' '.join(sys.argv[1:])}", flush=True)
    print(f"commit: {_commit()}", flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="bench-failover-"))
    cluster = LocalCluster(f"bench-{uuid.uuid4().hex[:8]}", free_port_block(1), workdir / "member", heap="1g").start()
    scans = workdir / "scans"
    scans.mkdir()
    env = {**os.environ, "SCAN_BRIDGE_HAZELCAST_MEMBERS": ",".join(cluster.members),
           "SCAN_BRIDGE_HAZELCAST_CLUSTER_NAME": cluster.cluster_name, **unique_maps(),
           "SCAN_BRIDGE_WATCH_DIR": str(scans), "SCAN_BRIDGE_FAILOVER": "true",
           "SCAN_BRIDGE_LEASE_S": f"{args.lease:g}", "SCAN_BRIDGE_LEASE_RENEW_S": f"{args.renew:g}",
           "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    view = View(env)
    simulator = Simulator(scans, rate=args.rate, assets=args.assets, log=lambda _line: None)
    threading.Thread(target=simulator.run, daemon=True).start()
    samples: list[tuple[float, str, str | None]] = []
    stop = threading.Event()

    def sample() -> None:
        sample_latest(env, stop, lambda document: samples.append(
            (time.monotonic(), document["timestamp"], document.get("bridge", {}).get("host"))))

    threading.Thread(target=sample, daemon=True).start()
    machines = {name: Machine(name, dict(env), workdir) for name in ("machine-0", "machine-1")}
    times: list[float] = []
    try:
        machines["machine-0"].start()
        wait_for(lambda: samples and samples[-1][2] == "machine-0", 60, "machine-0 writing")
        machines["machine-1"].start()
        wait_for(lambda: "Standing by" in machines["machine-1"].output(), 60, "machine-1 standing by")
        time.sleep(2 * args.lease)
        for round_ in range(1, args.rounds + 1):
            active = samples[-1][2]
            assert active in machines, f"latest written by {active!r}"
            other = next(name for name in machines if name != active)
            lost_at = time.monotonic()
            machines[active].kill_tree()
            wait_for(lambda: any(t >= lost_at and h == other for t, _ts, h in samples[-200:]), 60, f"{other} writing")
            took = next(t for t, _ts, h in samples if t >= lost_at and h == other) - lost_at
            times.append(took)
            print(f"round {round_:2d}: {active} lost, {other} wrote after {took:.2f} s", flush=True)
            machines[active].start()  # the lost machine comes back, as a standby
            wait_for(lambda: "Standing by" in machines[active].output(), 60, f"{active} standing by")
            time.sleep(args.lease + 2 * args.renew)  # the new standby has watched a few renewals: the next round starts clean
        simulator.stop()
        on_disk = kept_by_history({scan_number_from_name(p) for p in scans.rglob("*.arrow")}, HISTORY_RETENTION)
        wait_for(lambda: view.history_keys() >= on_disk, 60, "every scan on disk in history")
        missing = on_disk - view.history_keys()
        stamps = [ts for _t, ts, _h in samples]
        backwards = sum(1 for a, b in zip(stamps, stamps[1:]) if b < a)
        stop.set()
        for machine in machines.values():
            machine.stop()
        print(f"\nlease {args.lease:g} s, renewed every {args.renew:g} s; scanner {args.rate:g}/s x {args.assets} assets; {len(times)} losses")
        if times:
            ours = summarize(times)
            print(f"from SIGKILL of the active tree to fresh data by the other machine: median {ours.median:.2f} s, "
                  f"worst {ours.worst:.2f} s, best {ours.best:.2f} s")
            print("per round (s): " + " ".join(f"{t:.2f}" for t in times))
        print(f"scans missing: {len(missing)} of {len(on_disk)}; latest moved backwards: {backwards} times in {len(samples)} samples",
              flush=True)
        reference: list[float] = []
        if args.reference_rounds > 0:
            path = ReferencePath(workdir, {"SCAN_BRIDGE_HAZELCAST_MEMBERS": ",".join(cluster.members),
                                           "SCAN_BRIDGE_HAZELCAST_CLUSTER_NAME": cluster.cluster_name},
                                 args.rate, args.assets, log=lambda line: print(line, flush=True))
            try:
                path.run(args.reference_rounds)
            finally:  # a round that failed still leaves the rounds before it
                reference = [r.took_s for r in path.results]
                print(f"\nreference (Prefect's path): {len(reference)} of {args.reference_rounds} losses; "
                      f"scans missing: {path.missing} of {path.on_disk}")
                if reference:
                    ref = summarize(reference)
                    print(f"from SIGKILL of the active machine to fresh data by the other: median {ref.median:.2f} s, "
                          f"worst {ref.worst:.2f} s, best {ref.best:.2f} s")
                    print("per round (s): " + " ".join(f"{t:.2f}" for t in reference))
                    for name, values in (("kill -> old run Crashed", [r.to_crashed_s for r in path.results]),
                                         ("kill -> new run created", [r.to_new_run_s for r in path.results]),
                                         ("kill -> new run Running", [r.to_running_s for r in path.results])):
                        known = [v for v in values if v is not None]
                        if known:
                            print(f"  {name}: median {statistics.median(known):.1f} s, worst {max(known):.1f} s")
                    if times:
                        print(f"ratio of medians, reference / ours: {ratio(reference, times):.1f}x", flush=True)
    finally:
        stop.set()
        simulator.stop()
        for machine in machines.values():
            machine.stop()
        view.close()
        cluster.stop(kill=True)
    return 0 if not missing and not backwards else 1


def _commit() -> str:
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        return head.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return "?"


if __name__ == "__main__":
    sys.exit(main())
