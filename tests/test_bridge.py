"""The bridge as users run it: a real process, real files, a real Hazelcast member."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from scan_bridge.chaos.processes import unprivileged
from scan_bridge.simulate import write_scan

from .support import BridgeRunner, View, wait_for, write_many_scans


def scan_path(root: Path, number: int, day: str = "2026-03-24") -> Path:
    folder = root / day
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"scan_{number:06d}_120000.arrow"


def write(root: Path, number: int, **kwargs) -> Path:
    return write_scan(scan_path(root, number, kwargs.pop("day", "2026-03-24")), number, kwargs.pop("assets", 20), **kwargs)


def test_scans_written_while_running_reach_history_and_latest(tmp_path, scans, env, view):
    with BridgeRunner(scans, env, tmp_path / "bridge.log") as bridge:
        bridge.wait_logged("Watching")
        for n in range(1, 21):
            write(scans, n)
        wait_for(lambda: view.history_keys() == set(range(1, 21)), 30, "scans 1..20 in history")
        latest = wait_for(lambda: (lambda d: d if d and d["scan_number"] == 20 else None)(view.latest()), 10, "latest #20")
        assert latest["asset_count"] == 20
        assert len(latest["assets"]) == 20
        assert latest["bridge"]["file"].endswith("scan_000020_120000.arrow")
        assert latest["timestamp"].endswith(("Z", "+00:00"))
        heartbeat = wait_for(view.heartbeat, 10, "heartbeat")
        assert heartbeat["pid"] == bridge.proc.pid
        assert wait_for(lambda: any("[OK] Pushed" in m for m in bridge.messages()), 10, "summary line")
        assert bridge.stop() == 0


def test_backlog_on_disk_is_caught_up_on_start_oldest_first(tmp_path, scans, env, view):
    for n in range(1, 61):
        write(scans, n, day="2026-03-23" if n <= 30 else "2026-03-24")
    with BridgeRunner(scans, env, tmp_path / "bridge.log") as bridge:
        wait_for(lambda: view.history_keys() == set(range(1, 61)), 60, "backlog of 60 in history")
        assert view.latest()["scan_number"] == 60
        assert bridge.wait_logged("Caught up 60 scans")
        # One catch-up line, not one line per file.
        assert sum("Caught up" in m for m in bridge.messages()) == 1


def test_a_catch_up_of_several_batches_never_walks_latest_through_old_scans(tmp_path, scans, env, view):
    """Found by the chaos harness (issue 10): a member restarted empty was refilled oldest first, one
    batch at a time, and each batch moved latest to its own newest scan: consumers who had seen #803
    then saw #200, #400, ... Now the newest is pushed in the first batch and latest is written once."""
    write_many_scans(scans, 450, time.time() - 60)  # more than two batches of 200
    seen: list[int] = []
    features = view.client.get_map(env.get("SCAN_BRIDGE_FEATURES_MAP", "DOLPHIN_FEATURES"))
    features.add_entry_listener(
        include_value=True, key="latest_eigen_scan",
        added_func=lambda e: seen.append(json.loads(e.value.to_string())["scan_number"]),
        updated_func=lambda e: seen.append(json.loads(e.value.to_string())["scan_number"]),
    ).result()
    with BridgeRunner(scans, env, tmp_path / "bridge.log") as bridge:
        bridge.wait_logged("Caught up 450 scans", timeout=120)
        wait_for(lambda: seen and seen[-1] == 450, 30, "latest #450")
    assert seen == [450], f"latest walked through {seen}"
    assert len(view.history_keys()) == 450


def test_scans_written_during_the_first_catch_up_all_arrive(tmp_path, scans, env, view):
    """Found by the chaos harness (issue 10): the watch started only after the first reconcile, and
    files that landed while it ran were looked for among the newest 50 only: after a 16 s catch-up at
    5 scans/s, 30 scans never reached history. Now the watch starts first and events carry them."""
    import random

    from scan_bridge.document import format_timestamp
    from scan_bridge.simulate import Market, scan_table, table_bytes

    table = scan_table(Market(400, random.Random(3)), 1)  # big scans: a catch-up that lasts a while
    metadata = dict(table.schema.metadata)
    start = datetime.now(UTC) - timedelta(hours=2)

    def put(number: int, folder: Path) -> None:
        metadata[b"scan_number"] = str(number).encode()
        metadata[b"timestamp"] = format_timestamp(start + timedelta(seconds=number)).encode()
        path = folder / f"scan_{number:06d}_000000.arrow"
        temp = path.with_name("." + path.name)
        temp.write_bytes(table_bytes(table.replace_schema_metadata(metadata), "file"))
        os.replace(temp, path)

    backlog = scans / "2026-03-24"
    backlog.mkdir()
    for number in range(1, 1001):
        put(number, backlog)
    with BridgeRunner(scans, env, tmp_path / "bridge.log", "--rescan-interval-s", "600") as bridge:
        bridge.wait_logged("Connected to Hazelcast", timeout=60)
        late = scans / "2026-03-25"
        late.mkdir()
        for number in range(1001, 1301):  # while the catch-up of 1,000 runs: more than the newest 50 land after its listing
            put(number, late)
        assert not any("Caught up" in m for m in bridge.messages()), "the catch-up ended before the new files: no test"
        wait_for(lambda: len(view.history_keys()) == 1000, 60, "history trimmed to the newest 1,000")
        wait_for(lambda: set(range(1001, 1301)) <= view.history_keys(), 20, "every scan written during the catch-up")


def test_kill_9_mid_stream_then_restart_loses_nothing(tmp_path, scans, env, view):
    stop = threading.Event()
    written: list[int] = []

    def scanner() -> None:
        n = 1
        while not stop.is_set() and n <= 400:
            write(scans, n)
            written.append(n)
            n += 1
            stop.wait(0.01)

    log = tmp_path / "bridge.log"
    first = BridgeRunner(scans, env, log).start()
    first.wait_logged("Watching")
    thread = threading.Thread(target=scanner)
    thread.start()
    wait_for(lambda: len(view.history_keys()) >= 30, 30, "some scans pushed")
    first.kill9()
    wait_for(lambda: len(written) >= len(view.history_keys()) + 20, 30, "scanner goes on while the bridge is dead")
    with BridgeRunner(scans, env, log):
        thread.join(60)
        stop.set()
        expected = set(written)
        wait_for(lambda: view.history_keys() == expected, 60, f"all {len(expected)} scans after restart")
        wait_for(lambda: view.latest()["scan_number"] == max(expected), 10, "latest is the newest")


@pytest.mark.parametrize("outage_s", [0, 12], ids=["brief-outage", "outage-longer-than-connect-timeout"])
def test_member_restart_empty_is_refilled_from_disk(tmp_path, scans, local_cluster_factory, outage_s):
    cluster = local_cluster_factory(members=1)
    env = {
        "SCAN_BRIDGE_HAZELCAST_MEMBERS": ",".join(cluster.members),
        "SCAN_BRIDGE_HAZELCAST_CLUSTER_NAME": cluster.cluster_name,
        "SCAN_BRIDGE_HAZELCAST_CONNECT_TIMEOUT_S": "4",
    }
    with BridgeRunner(scans, env, tmp_path / "bridge.log") as bridge:
        bridge.wait_logged("Watching")
        for n in range(1, 11):
            write(scans, n)
        view = View(env)
        wait_for(lambda: view.history_keys() == set(range(1, 11)), 30, "first 10")
        view.close()
        cluster.stop_member(0)
        bridge.wait_logged("Lost connection", 30)
        for n in range(11, 31):  # written while the cluster is away
            write(scans, n)
        time.sleep(outage_s)  # the scenario: the cluster stays away this long
        assert bridge.proc.poll() is None, "the bridge must outlive an outage"
        cluster.start_member(0)  # a new, empty member
        view = View(env)
        try:
            wait_for(lambda: view.history_keys() == set(range(1, 31)), 90, "all 30 after the member came back empty")
            assert view.latest()["scan_number"] == 30
        finally:
            view.close()
        for n in range(31, 36):  # and it goes on
            write(scans, n)
        view = View(env)
        try:
            wait_for(lambda: set(range(31, 36)) <= view.history_keys(), 30, "new scans after the outage")
        finally:
            view.close()
        assert bridge.proc.poll() is None
        assert sum("Lost connection" in m for m in bridge.messages()) == 1, "state change logged once, not per file"


def test_two_member_cluster_losing_one_member_loses_no_scan(tmp_path, scans, local_cluster_factory):
    cluster = local_cluster_factory(members=2)
    env = {
        "SCAN_BRIDGE_HAZELCAST_MEMBERS": ",".join(cluster.members),
        "SCAN_BRIDGE_HAZELCAST_CLUSTER_NAME": cluster.cluster_name,
    }
    view = View(env)
    try:
        with BridgeRunner(scans, env, tmp_path / "bridge.log") as bridge:
            bridge.wait_logged("Watching")
            for n in range(1, 51):
                write(scans, n)
                if n == 25:
                    cluster.stop_member(0, kill=True)
            wait_for(lambda: view.history_keys() == set(range(1, 51)), 60, "all 50 with one member gone")
            assert view.latest()["scan_number"] == 50
    finally:
        view.close()


def test_slow_in_place_writer_is_pushed_once_complete(tmp_path, scans, env, view):
    target = scan_path(scans, 7)
    with BridgeRunner(scans, env, tmp_path / "bridge.log") as bridge:
        bridge.wait_logged("Watching")
        # Write the bytes of a real scan in place, slowly, the way a scanner without rename does.
        staging = write_scan(tmp_path.parent / "staging.arrow", 7, 400)
        data = staging.read_bytes()
        with open(target, "wb") as out:
            for i in range(0, len(data), len(data) // 8 + 1):
                out.write(data[i : i + len(data) // 8 + 1])
                out.flush()
                time.sleep(0.05)  # a slow writer, not synchronisation
        wait_for(lambda: view.history_keys() == {7}, 30, "scan 7 pushed")
        assert view.scan(7)["asset_count"] == 400
        assert not any(m.startswith("Rejected ") for m in bridge.messages())


def test_polling_observer_sees_new_scans_and_new_date_folders(tmp_path, scans, env, view):
    write(scans, 1, day="2026-03-23")
    with BridgeRunner(scans, env, tmp_path / "bridge.log", "--observer", "polling", "--poll-interval-s", "0.2") as bridge:
        bridge.wait_logged("polling observer")
        write(scans, 2, day="2026-03-23")
        write(scans, 3, day="2026-03-24")  # a folder that did not exist at start
        write(scans, 4, day="2026-03-24")
        wait_for(lambda: view.history_keys() == {1, 2, 3, 4}, 30, "scans from old and new folders")


def _bad_files(root: Path) -> dict[str, Path]:
    day = root / "2026-03-24"
    day.mkdir(parents=True, exist_ok=True)
    bad: dict[str, Path] = {}
    bad["zero"] = day / "scan_000101_000000.arrow"
    bad["zero"].write_bytes(b"")
    good = write_scan(root.parent / "good.arrow", 102, 50)
    bad["truncated"] = day / "scan_000102_000000.arrow"
    bad["truncated"].write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    bad["not_arrow"] = day / "scan_000103_000000.arrow"
    bad["not_arrow"].write_bytes(b"this is not an arrow file\n" * 100)
    table = pa.table({"asset": ["A", "B"], "x": [1.0, 2.0]})
    bad["no_scan_number"] = day / "scan_000104_000000.arrow"
    _write_table(bad["no_scan_number"], table.replace_schema_metadata({"timestamp": "2026-03-24T12:00:00Z"}))
    table = pa.table({"asset": ["A", "B"], "scan_number": [105, 106], "timestamp": ["2026-03-24T12:00:00Z"] * 2})
    bad["inconsistent"] = day / "scan_000105_000000.arrow"
    _write_table(bad["inconsistent"], table)
    bad["too_large"] = write_scan(day / "scan_000106_000000.arrow", 106, 5000)
    bad["unreadable"] = day / "scan_000107_000000.arrow"
    os.symlink(root.parent / "does-not-exist.arrow", bad["unreadable"])  # root ignores chmod; a dangling link cannot be read
    return bad


def _write_table(path: Path, table: pa.Table) -> None:
    with pa.ipc.new_file(str(path), table.schema) as writer:
        writer.write_table(table)


def test_bad_files_are_rejected_one_line_each_and_the_bridge_goes_on(tmp_path, scans, env, view):
    args = ("--complete-deadline-s", "1", "--max-file-bytes", str(200_000))
    with BridgeRunner(scans, env, tmp_path / "bridge.log", *args) as bridge:
        bridge.wait_logged("Watching")
        bad = _bad_files(scans)
        before = {name: (p.lstat().st_size, p.lstat().st_mtime) for name, p in bad.items()}
        write(scans, 200)
        wait_for(lambda: 200 in view.history_keys(), 30, "the good scan after the bad ones")
        rejected = wait_for(
            lambda: (lambda r: r if len(r) >= len(bad) else None)([l for l in bridge.lines() if l.get("message", "").startswith("Rejected ")]),
            30,
            "one rejection per bad file",
        )
        by_file = {line["fields"]["file"]: line["fields"]["reason"] for line in rejected}
        assert set(by_file) == {str(p) for p in bad.values()}, by_file
        assert "200000" in by_file[str(bad["too_large"])] or "larger" in by_file[str(bad["too_large"])]
        assert "scan_number" in by_file[str(bad["no_scan_number"])]
        for line in rejected:
            assert "\n" not in line["message"]
        assert view.history_keys() == {200}
        # The scanner's files are untouched.
        assert {name: (p.lstat().st_size, p.lstat().st_mtime) for name, p in bad.items()} == before
        # Skipped for good: no second rejection of the same file.
        write(scans, 201)
        wait_for(lambda: 201 in view.history_keys(), 30, "another good scan")
        assert len([l for l in bridge.lines() if l.get("message", "").startswith("Rejected ")]) == len(bad)
        assert bridge.proc.poll() is None


def test_latest_never_moves_backwards_but_late_scans_fill_history(tmp_path, scans, env, view):
    # "Late" means stamped earlier (issue 14: the scanner's time orders scans, not the numbers): scan n at T0 + n s.
    t0 = datetime(2026, 3, 24, 12, 0, tzinfo=UTC)

    def write(root: Path, number: int) -> Path:
        return write_scan(scan_path(root, number), number, 20, timestamp=t0 + timedelta(seconds=number))

    with BridgeRunner(scans, env, tmp_path / "bridge.log") as bridge:
        bridge.wait_logged("Watching")
        write(scans, 100)
        wait_for(lambda: (view.latest() or {}).get("scan_number") == 100, 30, "latest #100")
        write(scans, 90)  # turns up late
        wait_for(lambda: 90 in view.history_keys(), 30, "late scan 90 in history")
        assert view.latest()["scan_number"] == 100
    # While the bridge is down: newer scans (the restart's reconcile must push them) and a late one.
    for n in range(101, 111):
        write(scans, n)
    write(scans, 95)
    expected = {90, 95, *range(100, 111)}
    with BridgeRunner(scans, env, tmp_path / "bridge2.log") as bridge:
        wait_for(lambda: view.history_keys() == expected, 30, "the reconcile pushed exactly what landed while down")
        wait_for(lambda: view.latest()["scan_number"] == 110, 10, "latest #110")
        bridge.wait_logged("Caught up 11 scans")
        bridge.wait_logged("Watching")
        write(scans, 96)  # late, after the restart: history, never latest
        wait_for(lambda: 96 in view.history_keys(), 30, "late scan 96 in history")
        assert view.history_keys() == expected | {96}
        assert view.latest()["scan_number"] == 110
    # A restart with nothing to catch up: the bridge knows latest only from the cluster.
    with BridgeRunner(scans, env, tmp_path / "bridge3.log") as bridge:
        bridge.wait_logged("Watching")
        write(scans, 97)
        wait_for(lambda: 97 in view.history_keys(), 30, "late scan 97 in history")
        assert view.latest()["scan_number"] == 110
        # Nothing re-pushed: the watch starts before the start-up reconcile lists the folder, so 97 may
        # land in that listing ("Caught up 1 scans"), but no scan the cluster already held (CI saw that 1).
        caught_up = [int(m.split()[3]) for m in bridge.messages() if m.startswith("[OK] Caught up ")]
        assert all(n <= 1 for n in caught_up), bridge.messages()


@pytest.mark.skipif(os.geteuid() != 0, reason="writes into a folder the bridge may not read: needs root (CI runs as root)")
def test_a_folder_unreadable_for_a_while_loses_no_scan(tmp_path, scans, env, view):
    # The folder being written turns chmod 000 (an operator, a mount's rights) while the scanner writes on.
    # The bridge (without root's power to read past permission bits, as in production) says so once,
    # is not restarted or stopped, and pushes every scan of it once it is readable again. It used to
    # forget each file's event (its folder hid the file) and lose the scans until its next restart.
    write(scans, 1)
    folder = scan_path(scans, 1).parent
    with BridgeRunner(scans, env, tmp_path / "bridge.log", prefix=unprivileged([])) as bridge:
        wait_for(lambda: view.history_keys() == {1}, 30, "scan 1")
        folder.chmod(0)
        try:
            for n in range(2, 7):
                write(scans, n)  # we are root: we may
            wait_for(lambda: any("Cannot read scans in" in m for m in bridge.messages()), 30, "the warning")
            assert view.history_keys() == {1}, "read what it may not: the test tests nothing"
        finally:
            folder.chmod(0o755)
        wait_for(lambda: view.history_keys() == set(range(1, 7)), 60, "scans 2..6 once the folder is readable")
        bridge.wait_logged("Scans readable again in")
        warnings = [m for m in bridge.messages() if "Cannot read scans in" in m]
        assert len(warnings) == 1 and str(folder) in warnings[0], warnings
        assert bridge.proc.poll() is None


def test_history_keeps_only_the_newest_scans(tmp_path, scans, env, view):
    retention = 20
    with BridgeRunner(scans, env, tmp_path / "bridge.log", "--retention", str(retention)) as bridge:
        bridge.wait_logged("Watching")
        for n in range(1, 81):
            write(scans, n)
        wait_for(lambda: set(range(61, 81)) <= view.history_keys(), 30, "the newest 20")
        slack = max(10, retention // 20)
        wait_for(lambda: len(view.history_keys()) <= retention + slack, 10, "history trimmed")
        assert min(view.history_keys()) > 80 - retention - slack


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--watch-dir", "/nonexistent/scans"], "--watch-dir / SCAN_BRIDGE_WATCH_DIR"),
        (["--hazelcast-members", "localhost:notaport"], "--hazelcast-members"),
        (["--poll-interval-s", "-1"], "--poll-interval-s"),
    ],
)
def test_wrong_configuration_exits_2_with_one_line(tmp_path, scans, args, expected):
    env = {**os.environ, "SCAN_BRIDGE_WATCH_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "scan_bridge.service", *args], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr


def test_unreachable_cluster_is_reported_within_the_connect_timeout(tmp_path, scans):
    env = {"SCAN_BRIDGE_HAZELCAST_MEMBERS": "127.0.0.1:1", "SCAN_BRIDGE_HAZELCAST_CLUSTER_NAME": "nobody",
           "SCAN_BRIDGE_HAZELCAST_CONNECT_TIMEOUT_S": "2"}
    bridge = BridgeRunner(scans, env, tmp_path / "bridge.log").start()
    try:
        started = time.monotonic()
        line = bridge.wait_logged("cannot reach Hazelcast cluster 'nobody' at 127.0.0.1:1", 15)
        assert time.monotonic() - started < 15
        assert "SCAN_BRIDGE_HAZELCAST_MEMBERS" in line
    finally:
        assert bridge.stop(timeout=10) == 0


def test_sigterm_exits_0_promptly(tmp_path, scans, env, view):
    bridge = BridgeRunner(scans, env, tmp_path / "bridge.log").start()
    bridge.wait_logged("Watching")
    write(scans, 1)
    wait_for(lambda: view.history_keys() == {1}, 30, "scan 1")
    bridge.proc.send_signal(signal.SIGTERM)
    assert bridge.proc.wait(5) == 0
    bridge.stop()
    assert "Stopped" in bridge.messages()[-1]


def test_human_log_format_by_default(tmp_path, scans, env):
    runner = BridgeRunner(scans, {**env, "SCAN_BRIDGE_LOG_FORMAT": "human"}, tmp_path / "bridge.log")
    with runner:
        wait_for(lambda: "Connected to Hazelcast" in runner.log_path.read_text(), 30, "human line")
        first = runner.log_path.read_text().splitlines()[0]
        assert not first.startswith("{")


def test_no_busy_loop_while_the_cluster_is_away(scans):
    """A push that failed as the cluster went away must not make the loop spin until it returns."""
    from scan_bridge.service import Bridge
    from scan_bridge.settings import BridgeSettings

    now = [1000.0]
    bridge = Bridge(BridgeSettings(watch_dir=scans), clock=lambda: now[0])
    bridge.connected = False
    bridge._push_failed(OSError("cluster gone"))  # schedules a catch-up retry
    now[0] += 60  # the retry time has long passed, the cluster is still away
    bridge._tick()
    assert bridge._next_due() > now[0], "the loop would wait with a zero timeout, i.e. spin"


def _mixed_tree(root: Path) -> None:
    """A scanner's folder as found in the wild: date folders beside folders that are not dates."""
    for name in ("logs", "archive", "quarantine", "tmp", "zzz", "bad"):
        (root / name).mkdir()
    (root / "logs" / "scanner.log").write_text("started\n")
    write(root, 1, day="2026-03-22")
    write(root, 2, day="2026-03-23")
    write(root, 3, day="2026-03-24")


@pytest.mark.parametrize("observer", ["native", "polling"])
def test_new_scans_anywhere_reach_hazelcast_whatever_the_folders_are_called(tmp_path, scans, env, view, observer):
    _mixed_tree(scans)
    outside = tmp_path / "outside" / "2026-03-27"
    args = ("--observer", observer, "--poll-interval-s", "0.2")
    with BridgeRunner(scans, env, tmp_path / "bridge.log", *args) as bridge:
        bridge.wait_logged(f"{observer} observer")
        wait_for(lambda: view.history_keys() == {1, 2, 3}, 30, "the backlog")
        steps: list[tuple[str, Callable[[], None], set[int]]] = [
            ("today's date folder, beside logs/ and zzz/", lambda: [write(scans, n) for n in (4, 5)], {4, 5}),
            ("a non-date folder created mid-run", lambda: ((scans / "zzzz").mkdir(), write(scans, 6)), {6}),
            ("midnight: a new date folder", lambda: write(scans, 7, day="2026-03-25"), {7}),
            ("nested YYYY/MM/DD", lambda: write(scans, 8, day="2026/03/25"), {8}),
            ("flat, at the top", lambda: write_scan(scans / "scan_000009_120000.arrow", 9, 20), {9}),
            ("a folder moved in full", lambda: (
                [write(outside.parent, n, day="2026-03-27") for n in (10, 11)],
                shutil.move(str(outside), str(scans / "2026-03-27")),
            ), {10, 11}),
            ("a folder renamed", lambda: ((scans / "2026-03-27").rename(scans / "2026-03-28"), write(scans, 12, day="2026-03-28")), {12}),
        ]
        expected = {1, 2, 3}
        for what, act, numbers in steps:
            act()
            expected |= numbers
            wait_for(lambda: expected <= view.history_keys(), 30, f"scans {sorted(numbers)}: {what}")
        assert view.latest()["scan_number"] == 12
        assert bridge.proc.poll() is None


def test_the_periodic_rescan_recovers_a_scan_whose_event_was_lost(tmp_path, scans, env, view):
    # A poller that never polls stands for a watcher that missed the file: only the rescan can find it.
    args = ("--observer", "polling", "--poll-interval-s", "3600", "--rescan-interval-s", "1")
    with BridgeRunner(scans, env, tmp_path / "bridge.log", *args) as bridge:
        bridge.wait_logged("Watching")
        write(scans, 1)
        wait_for(lambda: view.history_keys() == {1}, 30, "the scan found by the rescan")
        write(scans, 2, day="2026/03/25")
        wait_for(lambda: view.history_keys() == {1, 2}, 30, "a nested one too")


def _puts(bridge: BridgeRunner) -> list[int]:
    """Sizes of the bridge's put_all calls (its debug line per put)."""
    return [line["fields"]["put_all"] for line in bridge.lines() if "put_all" in line.get("fields", {})]


@pytest.mark.parametrize("observer", ["native", "polling"])
def test_a_full_folder_moved_in_is_pushed_like_a_catch_up(tmp_path, scans, env, view, observer):
    """A day's folder moved in at once: batches of batch_size, and only what retention keeps."""
    retention, batch = 150, 40
    outside = tmp_path / "outside"
    for n in range(1, 401):
        write(outside, n, day="2026-03-20", assets=5)
    args = ("--observer", observer, "--poll-interval-s", "0.2", "--retention", str(retention),
            "--batch-size", str(batch), "--log-level", "DEBUG")
    with BridgeRunner(scans, env, tmp_path / "bridge.log", *args) as bridge:
        bridge.wait_logged("Watching")
        shutil.move(str(outside / "2026-03-20"), str(scans / "2026-03-20"))
        newest = set(range(401 - retention, 401))
        wait_for(lambda: newest <= view.history_keys(), 60, "the newest `retention` scans of the moved-in folder")
        wait_for(lambda: (view.heartbeat() or {}).get("pushed_total") == retention, 10, "the heartbeat's count")
        puts = _puts(bridge)
        assert sum(puts) == retention, f"only what retention keeps is pushed: {puts}"
        assert max(puts) <= batch, f"batches of at most batch_size: {puts}"
        assert view.latest()["scan_number"] == 400


def test_an_inotify_queue_overflow_triggers_a_full_reconcile(tmp_path, scans, env, view):
    """More events at once than the kernel queues (fs.inotify.max_queued_events, 16,384): the scans
    among them must all arrive, not just the newest 50 the periodic rescan looks at."""
    retention = 300
    staging = tmp_path / "staging"
    for n in range(1, retention + 1):
        write(staging, n, day="d", assets=5)
    (scans / "2026-03-24").mkdir()
    (scans / "junk").mkdir()
    args = ("--observer", "native", "--retention", str(retention))
    with BridgeRunner(scans, env, tmp_path / "bridge.log", *args) as bridge:
        bridge.wait_logged("Watching")
        # The bridge is stopped (SIGSTOP) while the burst happens, so nobody reads its inotify queue:
        # 20,000 names (40,000 events) overflow it for certain, and the scans linked in after them
        # have no event at all. It reads the queue again after SIGCONT.
        bridge.proc.send_signal(signal.SIGSTOP)
        try:
            subprocess.run(
                f"cd {scans / 'junk'} && seq 1 20000 | sed 's/$/.tmp/' | xargs touch && cp -l {staging / 'd'}/*.arrow {scans / '2026-03-24'}/",
                shell=True, check=True, timeout=120,
            )
        finally:
            bridge.proc.send_signal(signal.SIGCONT)
        wait_for(lambda: view.history_keys() == set(range(1, retention + 1)), 60, f"all {retention} scans of the burst")
        assert bridge.wait_logged("File events may have been lost (inotify event queue overflowed); reconciling from disk", 5)
        assert bridge.proc.poll() is None


def test_the_obsolete_watch_recent_dirs_is_accepted_with_a_warning(tmp_path, scans, env, view):
    (scans / "zzz").mkdir()
    with BridgeRunner(scans, {**env, "SCAN_BRIDGE_WATCH_RECENT_DIRS": "1"}, tmp_path / "bridge.log") as bridge:
        assert "obsolete and ignored" in bridge.wait_logged("SCAN_BRIDGE_WATCH_RECENT_DIRS")
        bridge.wait_logged("Watching")
        write(scans, 1)
        wait_for(lambda: view.history_keys() == {1}, 30, "a scan beside zzz/ with the old setting given")
