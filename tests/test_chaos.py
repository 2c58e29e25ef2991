"""The chaos harness: its pure parts, its referee against a real member, and the short seeded CI run.

The CI run is the real thing end to end (a member from the jar, a Prefect server, the daemon and
the bridges it supervises, the scanner), every fault kind once, with the profile's generous
bounds: it must leave no process behind and exit 0. Its figures are not asserted beyond that (a
loaded 2-core machine); the published figures come from the long run in docs/reliability.md.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import hazelcast
import psutil
import pytest
from hazelcast.config import IntType

from scan_bridge.chaos.harness import Fault, Harness, Options
from scan_bridge.chaos.plan import KINDS, PROFILES, fault_order, parse_kinds
from scan_bridge.chaos.processes import RUN_VARIABLE
from scan_bridge.chaos.referee import Referee
from scan_bridge.chaos.scanner import ChaosScanner, Ledger, Written, history_key

from .support import unique_maps, wait_for

ROOT = Path(__file__).resolve().parents[1]


# -- pure -------------------------------------------------------------------------------------------


def test_every_kind_comes_first_once_and_the_order_is_the_seeds():
    kinds = [k for k in KINDS if k != "lose-member"]
    first = fault_order(random.Random(3), kinds, PROFILES["long"].weights)
    head = [next(first) for _ in range(len(kinds) + 200)]
    assert sorted(head[: len(kinds)]) == sorted(kinds)
    again = fault_order(random.Random(3), kinds, PROFILES["long"].weights)
    assert [next(again) for _ in range(len(head))] == head
    # After the first round the weights rule: kill-bridge (20) outnumbers the others (1 each).
    rest = head[len(kinds) :]
    assert rest.count("kill-bridge") > len(rest) / 2


def test_fault_kinds_are_checked():
    assert "lose-member" not in parse_kinds("all", members=1)
    assert "lose-member" in parse_kinds("all", members=2)
    with pytest.raises(ValueError, match="unknown fault kind.*kill-bridgee"):
        parse_kinds("kill-bridgee", members=1)
    with pytest.raises(ValueError, match="needs --members 2"):
        parse_kinds("lose-member", members=1)


def test_a_scan_is_due_a_bound_after_the_last_fault_that_overlapped_it(tmp_path: Path):
    harness = Harness(Options(PROFILES["ci"], ["kill-bridge"], 1, 0, workdir=tmp_path))
    bound = PROFILES["ci"].bound_s
    scan = Written(tmp_path / "x", 1, 1, datetime.now(UTC), 1000.0, 0, "", "scan")
    assert harness._due(scan, now=1001) == 1000 + bound  # no fault
    harness.faults.append(Fault(1, "freeze-member", start=990.0, end=1010.0))
    assert harness._due(scan, now=1011) == 1010 + bound  # hidden by the freeze: due after it ended
    harness.faults.append(Fault(2, "kill-bridge", start=1020.0))
    assert harness._due(scan, now=1021) is None  # a fault is on: nothing is due
    harness.faults[-1].end = 1030.0
    assert harness._due(scan, now=1031) == 1030 + bound


def test_the_scanner_writes_a_realistic_folder_and_its_ledger_knows_every_byte(tmp_path: Path):
    scanner = ChaosScanner(tmp_path, rate=50, assets=5, rng=random.Random(1), midnight_in_s=0.5, log=lambda _l: None)
    first = scanner.write_one(in_place=True, fmt="stream")
    time.sleep(0.6)
    second = scanner.write_one(in_place=False, fmt="file")
    bad = scanner.hostile_files()
    incomplete = scanner.incomplete_file()
    # Midnight on the scanner's clock fell between the two scans: two date folders, a day apart.
    days = sorted(scanner.folders)
    assert len(days) == 2 and first.path.parent.name == days[0] and second.path.parent.name == days[1]
    assert datetime.fromisoformat(days[1]) - datetime.fromisoformat(days[0]) == timedelta(days=1)
    assert (tmp_path / "logs" / "scanner.log").is_file() and (tmp_path / "notes" / "README.txt").is_file()
    assert first.key == history_key(first.timestamp) and set(scanner.ledger.scans) == {first.key, second.key}
    assert all(item.key is None for item in [*bad, incomplete]) and len(bad) >= 9
    assert scanner.changed_files() == []
    second.path.write_bytes(second.path.read_bytes()[:-1] + b"x")
    incomplete.path.unlink()
    changed = scanner.changed_files()
    assert len(changed) == 2 and any("content differs" in c for c in changed)


def test_alerts_expected_are_one_per_state_change_per_daemon():
    from scan_bridge.chaos.alerting import Received, expected_alerts, judge
    from scan_bridge.chaos.processes import Verdict

    v = [Verdict(0, s, c, d) for s, c, d in [
        ("healthy", None, 1), ("warning", None, 1), ("warning", None, 1), ("stale", "scanner silent", 1),
        ("stale", "bridge busy", 1), ("healthy", None, 1), ("error", None, 1),
        ("error", None, 2), ("healthy", None, 2),  # a new daemon: its first verdict is a change of its own
        ("down", None, 2), ("healthy", None, 2),  # a killed bridge, restarted: "down" alerts nothing, its end recovers
    ]]
    assert expected_alerts(v) == {"warning": 1, "stale": 2, "recovered": 3, "hazelcast-unavailable": 2}
    twice = [Received(0, "warning", "scan-bridge.warning", "t1"), Received(1, "warning", "scan-bridge.warning", "t1")]
    result = judge(v[:2], twice)
    assert result["duplicates"] == ["warning (scan-bridge.warning at t1) x2"] and result["more_than_expected"] == {"warning": 1}



def test_the_receiver_reads_what_arrives_as_alerts():
    import urllib.request

    from scan_bridge.chaos.alerting import Receiver

    receiver = Receiver()
    try:
        assert receiver.url.endswith("/alert")
        alert = {"alert": "warning", "event": "scan-bridge.warning", "occurred": "t1", "message": "WARNING: ..."}
        for body in (json.dumps(alert).encode(), b"not json", b"[1, 2]"):
            urllib.request.urlopen(urllib.request.Request(receiver.url, data=body, method="POST"), timeout=10).close()
        assert [(r.alert, r.event, r.occurred) for r in receiver.received] == [
            ("warning", "scan-bridge.warning", "t1"), ("unreadable", "not json", ""), ("unreadable", "[1, 2]", "")
        ]
        assert [m.path for m in receiver.messages] == ["/alert"] * 3
    finally:
        receiver.close()

# -- the referee against a real member ---------------------------------------------------------------


def _scan(number: int, when: datetime) -> Written:
    return Written(Path(f"scan_{number}.arrow"), number, history_key(when), when, when.timestamp(), 0, "", "scan")


def _document(scan: Written) -> hazelcast.core.HazelcastJsonValue:
    return hazelcast.core.HazelcastJsonValue(
        json.dumps({"scan_number": scan.number, "timestamp": scan.timestamp.isoformat().replace("+00:00", "Z")})
    )


def test_the_referee_flags_latest_moving_backwards_and_keys_nobody_wrote(hazelcast_cluster):
    maps = unique_maps()
    ledger = Ledger()
    now = datetime.now(UTC)
    older, newer = _scan(1, now - timedelta(seconds=1)), _scan(2, now)
    ledger.add(older)
    ledger.add(newer)
    found: list[str] = []
    referee = Referee(
        hazelcast_cluster.cluster_name, hazelcast_cluster.members, ledger, found.append,
        features_map=maps["SCAN_BRIDGE_FEATURES_MAP"], history_map=maps["SCAN_BRIDGE_HISTORY_MAP"], poll_s=0.2,
    )
    writer = hazelcast.HazelcastClient(**hazelcast_cluster.client_config(), default_int_type=IntType.LONG)
    try:
        features = writer.get_map(maps["SCAN_BRIDGE_FEATURES_MAP"]).blocking()
        history = writer.get_map(maps["SCAN_BRIDGE_HISTORY_MAP"]).blocking()
        history.set(older.key, _document(older))
        history.set(newer.key, _document(newer))
        features.set("latest_eigen_scan", _document(newer))
        wait_for(lambda: {older.key, newer.key} <= set(referee.seen) and referee.latest_key_now() == newer.key, 30, "the referee sees both")
        assert found == []
        features.set("latest_eigen_scan", _document(older))
        wait_for(lambda: any("moved backwards" in f for f in found), 30, "latest moving backwards flagged")
        phantom = history_key(now + timedelta(seconds=5))
        history.set(phantom, _document(_scan(3, now + timedelta(seconds=5))))
        wait_for(lambda: phantom in referee.seen, 30, "the referee sees the phantom key")
        referee.check_unknown(older_than_s=0)
        assert any(f"key {phantom}" in f and "never wrote" in f for f in found)
    finally:
        referee.close()
        for proxy in (features, history):
            proxy.destroy()
        writer.shutdown()


# -- the CI run -------------------------------------------------------------------------------------


@pytest.mark.extended  # ~2.5 min (every fault once, under a real worker): CI only, see pyproject.toml
def test_a_short_seeded_chaos_run_injects_every_fault_and_breaks_no_invariant(tmp_path: Path):
    report = tmp_path / "chaos.md"
    env = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    env.pop("PREFECT_API_URL", None)
    env.pop(RUN_VARIABLE, None)
    started = time.monotonic()
    result = subprocess.run(
        # No --workdir: the harness's own temp folder (removed by it), not pytest's, which a concurrent
        # pytest session may prune while this long test runs.
        # Under a real worker (the production path; the long run in docs/reliability.md is standalone).
        [sys.executable, "-m", "scan_bridge.chaos", "--profile", "ci", "--prefect", "server", "--alerts", "--seed", "1",
         "--report", str(report)],
        capture_output=True, text=True, timeout=600, env=env, cwd=ROOT,
    )
    took = time.monotonic() - started
    detail = f"exit {result.returncode} after {took:.0f} s\n{result.stdout}\n{result.stderr[-6000:]}"
    assert result.returncode == 0, detail
    figures = json.loads(report.with_suffix(".json").read_text())
    expected = set(parse_kinds("all", members=1))
    assert set(figures["by_kind"]) == expected, detail
    assert figures["violations"] == [] and figures["scans_missing"] == 0, detail
    assert figures["scans_in_history"] == figures["scans_written"] > 0
    assert len(figures["scanner_folders"]) >= 2, "the scanner's midnight did not happen"
    assert figures["most_bridges_at_once"] == 1
    assert figures["prefect"] == "server" and figures["daemon_incarnations"] >= 2
    alerts = figures["alerts"]
    assert alerts["duplicates"] == [] and alerts["more_than_expected"] == {}, alerts
    assert sum(alerts["received"].values()) > 0, alerts
    # Nothing of the run is left (the harness checked by pid; this checks its mark from outside).
    leftovers = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.environ().get(RUN_VARIABLE) == figures["run_id"]:
                leftovers.append(proc.pid)
        except (psutil.Error, OSError):
            continue
    assert leftovers == []
