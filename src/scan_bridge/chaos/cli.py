"""Command line of the chaos harness."""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import replace
from pathlib import Path

from . import report
from .harness import Harness, Options
from .plan import KINDS, PROFILES, parse_kinds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m scan_bridge.chaos",
        description="Run the real member, daemon, bridge and a simulated scanner; inject seeded faults; "
        "referee the result. Exit 0 when no invariant was broken, 1 otherwise, 2 on bad arguments.",
    )
    parser.add_argument("--profile", choices=sorted(PROFILES), default="ci", help="ci: short everything (default); long: the published run's settings.")
    parser.add_argument("--seed", type=int, default=1, help="Seed of the fault order, gaps and the scanner's choices (default 1).")
    parser.add_argument("--duration", type=float, default=None, help="Seconds of faults (default: 0 for ci, i.e. one round of every kind; 3600 for long); a run always injects every kind once.")
    parser.add_argument("--faults", default="all", help=f"Comma-separated fault kinds, or 'all' (default). Known: {', '.join(KINDS)}.")
    parser.add_argument("--weights", default="", help="kind=weight,... the chance of each kind after the first round (default: the profile's).")
    parser.add_argument("--members", type=int, default=None, help="Members in the cluster (default 1; lose-member needs 2).")
    parser.add_argument("--rate", type=float, default=None, help="Scans a second (default: the profile's, 5).")
    parser.add_argument("--assets", type=int, default=None, help="Assets a scan (default: the profile's: 20 ci, 400 long).")
    parser.add_argument("--prefect", choices=("standalone", "server"), default="standalone",
                        help="standalone: python -m scan_bridge.daemon_flow against the run's Prefect server (default); "
                        "server: the daemon as a deployment on a process work pool, run by a real worker.")
    parser.add_argument("--alerts", action="store_true",
                        help="Install the alert automations (alerts.install_alerts, kind generic) and check one alert per state change.")
    parser.add_argument("--report", type=Path, default=None, help="Write the markdown report here and its JSON beside it (.json).")
    parser.add_argument("--workdir", type=Path, default=None, help="Run folder (kept); default a temp folder, removed at the end.")
    parser.add_argument("--keep", action="store_true", help="Keep the temp run folder (logs, scans) at the end.")
    args = parser.parse_args(argv)

    profile = PROFILES[args.profile]
    changes = {k: v for k, v in {"members": args.members, "rate": args.rate, "assets": args.assets}.items() if v is not None}
    if args.weights:
        weights = dict(profile.weights)
        try:
            for part in args.weights.split(","):
                kind, _, value = part.partition("=")
                if kind.strip() not in KINDS:
                    raise ValueError(f"unknown fault kind {kind.strip()!r}")
                weights[kind.strip()] = float(value)
        except ValueError as exc:
            parser.error(f"--weights: {exc}")
        changes["weights"] = weights
    profile = replace(profile, **changes)
    try:
        kinds = parse_kinds(args.faults, profile.members)
    except ValueError as exc:
        parser.error(f"--faults: {exc}")
    duration = args.duration if args.duration is not None else (0.0 if profile.name == "ci" else 3600.0)
    options = Options(profile, kinds, args.seed, duration, workdir=args.workdir, keep=args.keep, prefect=args.prefect, alerts=args.alerts,
                      log=lambda line: print(line, file=sys.stderr, flush=True))
    harness = Harness(options)
    code = harness.run()
    command = shlex.join(["python", "-m", "scan_bridge.chaos", *(sys.argv[1:] if argv is None else argv)])
    figures = harness.figures()
    text = report.markdown(figures, command)
    print(text)
    if args.report is not None:
        report.write(figures, command, args.report)
    if code and harness._owned_dir and not args.keep:
        print(f"(run folder kept for the violations: {harness.dir})", file=sys.stderr)
    else:
        harness.cleanup()
    return code
