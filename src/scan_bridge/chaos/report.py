"""The run's report: figures per fault kind and overall, as JSON and as markdown for docs/reliability.md."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..rss_slope import MB, rss_slope_mb_per_h
from .plan import KINDS

if TYPE_CHECKING:
    from .harness import Harness, Sample


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def _slope_mb_per_h(samples: list[Sample]) -> float | None:
    """RSS slope of one process's life in MB (2**20) an hour: the memory benchmark's (issue 17), the same code
    (:mod:`scan_bridge.rss_slope`): after its first 10 minutes, None for a life with less than 10 more sampled."""
    return rss_slope_mb_per_h((s.at, s.rss) for s in samples)


def _process_figures(samples: list[Sample]) -> dict[str, Any]:
    by_pid: dict[int, list[Sample]] = {}
    for sample in samples:
        by_pid.setdefault(sample.pid, []).append(sample)
    if not by_pid:
        return {}
    longest = max(by_pid.values(), key=lambda s: s[-1].at - s[0].at)
    span = longest[-1].at - longest[0].at
    cpu = (longest[-1].cpu_s - longest[0].cpu_s) / span * 100 if span > 0 else None
    return {
        "incarnations_sampled": len(by_pid),
        "longest_lived_s": _round(span, 0),
        "rss_first_mb": _round(longest[0].rss / MB),
        "rss_last_mb": _round(longest[-1].rss / MB),
        "rss_max_mb": _round(max(s.rss for s in samples) / MB),
        "rss_slope_mb_per_h": _round(_slope_mb_per_h(longest), 2),
        "cpu_percent": _round(cpu, 1),
    }


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True,
                               timeout=10, cwd=Path(__file__).resolve().parent)
        if out.returncode != 0 or not out.stdout.strip():
            return os.environ.get("SCAN_BRIDGE_CHAOS_COMMIT", "unknown (not a git checkout; set SCAN_BRIDGE_CHAOS_COMMIT)")
        return out.stdout.strip() + (" (with uncommitted changes)" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def figures(h: Harness) -> dict[str, Any]:
    scans = h.scanner.ledger.complete_scans() if h.scanner is not None else []
    seen = h.referee.seen if h.referee is not None else {}
    kinds: dict[str, Any] = {}
    for kind in KINDS:
        faults = [f for f in h.faults if f.kind == kind]
        if not faults:
            continue
        fresh = [f.fresh_s for f in faults if f.fresh_s is not None]
        caught = [f.caught_up_s for f in faults if f.caught_up_s is not None]
        kinds[kind] = {
            "injected": len(faults),
            "fresh_again_median_s": _round(statistics.median(fresh)) if fresh else None,
            "fresh_again_worst_s": _round(max(fresh)) if fresh else None,
            "never_fresh": len(faults) - len(fresh),
            "caught_up_median_s": _round(statistics.median(caught)) if caught else None,
            "caught_up_worst_s": _round(max(caught)) if caught else None,
            "scans_hidden": sum(f.hidden for f in faults),
            "scans_missing": sum(f.missing for f in faults),
            "unneeded_restarts": sum(f.unneeded_restarts for f in faults),
        }
    restarts = [s for s in h.daemon.starts if not s.first] if h.daemon is not None else []
    return {
        "run_id": h.run_id,
        "commit": git_commit(),
        "profile": h.p.name,
        "prefect": h.o.prefect,
        "seed": h.o.seed,
        "faults_enabled": h.o.kinds,
        "started": datetime.fromtimestamp(h.started_at, UTC).isoformat(timespec="seconds") if h.started_at else None,
        "duration_s": _round(h.ended_at - h.started_at, 0) if h.started_at else None,
        "scan_rate": h.p.rate,
        "assets": h.p.assets,
        "members": h.p.members,
        "daemon_settings": h.p.daemon_env(),
        "scans_written": len(scans),
        "scans_in_history": sum(1 for w in scans if w.key in seen),
        "scans_missing": sum(1 for w in scans if w.key not in seen),
        "other_files_written": (len(h.scanner.ledger.files) - len(scans)) if h.scanner is not None else 0,
        "scanner_folders": sorted(h.scanner.folders) if h.scanner is not None else [],
        "scanner_errors": h.scanner.errors if h.scanner is not None else [],
        "faults_injected": len(h.faults),
        "bridge_restarts": len(restarts),
        "daemon_incarnations": h.daemon.incarnation if h.daemon is not None else 0,
        "worst_staleness_s": _round(h.worst_staleness),
        "worst_staleness_outside_faults_s": _round(h.worst_staleness_calm),
        "most_bridges_at_once": h.max_bridges,
        "referee_poll_failures": h.referee.poll_failures if h.referee is not None else 0,
        "by_kind": kinds,
        "daemon": _process_figures(h.samples["daemon"]),
        "bridge": _process_figures(h.samples["bridge"]),
        "alerts": h.alerts,
        "violations": [
            {"at": datetime.fromtimestamp(v.at, UTC).isoformat(timespec="seconds"), "what": v.what, "fault": v.fault}
            for v in h.violations
        ],
        "faults": [
            {
                "index": f.index,
                "kind": f.kind,
                "start": datetime.fromtimestamp(f.start, UTC).isoformat(timespec="seconds"),
                "duration_s": _round((f.end or f.start) - f.start),
                "detail": f.detail,
                "fresh_s": _round(f.fresh_s),
                "caught_up_s": _round(f.caught_up_s),
                "hidden": f.hidden,
                "missing": f.missing,
                "unneeded_restarts": f.unneeded_restarts,
                "notes": f.notes,
            }
            for f in h.faults
        ],
    }


def _cell(value: Any) -> str:
    return "–" if value is None else str(value)


def markdown(fig: dict[str, Any], command: str) -> str:
    verdict = "PASSED" if not fig["violations"] else f"FAILED: {len(fig['violations'])} violation(s)"
    lines = [
        f"# Chaos run {fig['run_id']}: {verdict}",
        "",
        f"`{command}` on commit {fig['commit']}, started {fig['started']}, {fig['duration_s']} s; "
        f"{fig['scan_rate']:g} scans/s of {fig['assets']} assets, {fig['members']} member(s).",
        "",
        f"Scans written {fig['scans_written']}, in history {fig['scans_in_history']}, **missing {fig['scans_missing']}**; "
        f"other files (hostile, incomplete) {fig['other_files_written']}; faults {fig['faults_injected']}; "
        f"bridge restarts {fig['bridge_restarts']}; daemon incarnations {fig['daemon_incarnations']}; "
        f"most bridges at once {fig['most_bridges_at_once']}; worst staleness {fig['worst_staleness_s']} s "
        f"({fig['worst_staleness_outside_faults_s']} s outside faults and their recovery); "
        f"scanner folders {', '.join(fig['scanner_folders'])}.",
        "",
        "| fault | injected | fresh again, median / worst (s) | all hidden scans in history, median / worst (s) | scans hidden | missing | restarts not needed |",
        "|---|---|---|---|---|---|---|",
    ]
    for kind, k in fig["by_kind"].items():
        lines.append(
            f"| {kind} | {k['injected']} | {_cell(k['fresh_again_median_s'])} / {_cell(k['fresh_again_worst_s'])}"
            + (f" ({k['never_fresh']} never)" if k["never_fresh"] else "")
            + f" | {_cell(k['caught_up_median_s'])} / {_cell(k['caught_up_worst_s'])} | {k['scans_hidden']} | {k['scans_missing']} | {k['unneeded_restarts']} |"
        )
    lines.append("")
    for name in ("daemon", "bridge"):
        p = fig[name]
        if p:
            lines.append(
                f"{name}: RSS {p['rss_first_mb']} → {p['rss_last_mb']} MB over its longest life ({p['longest_lived_s']} s; "
                f"slope {_cell(p['rss_slope_mb_per_h'])} MB/h, max {p['rss_max_mb']} MB), CPU {_cell(p['cpu_percent'])} %, "
                f"{p['incarnations_sampled']} incarnation(s) sampled."
            )
    if fig.get("alerts"):
        a = fig["alerts"]
        lines.append(
            "alerts (expected from state changes / received): "
            + ", ".join(f"{k} {a['expected'][k]}/{a['received'][k]}" for k in a["expected"])
            + f"; daemon silent {a['daemon_silent']}; duplicates {len(a['duplicates'])}."
        )
    lines.append("")
    if fig["violations"]:
        lines += ["## Violations", ""]
        lines += [f"- {v['at']} ({v['fault'] or 'no fault'}): {v['what']}" for v in fig["violations"]]
        lines.append("")
    return "\n".join(lines)


def write(fig: dict[str, Any], command: str, path: Path) -> None:
    """``path`` (markdown) and ``path`` with ``.json``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown(fig, command))
    path.with_suffix(".json").write_text(json.dumps({**fig, "command": command}, indent=1))
