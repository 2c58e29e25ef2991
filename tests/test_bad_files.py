"""Hostile files against a real bridge and a real member (issue 16): the bridge stays alive, the good
scans after the bad ones arrive, a restart on the same folder does not crash-loop, and a file that
kills the reader in native code is skipped after the restart and reported once."""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path


from scan_bridge.simulate import write_scan

from . import hostile
from .support import BridgeRunner, wait_for


def scan_path(root: Path, number: int) -> Path:
    folder = root / "2026-03-24"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"scan_{number:06d}_120000.arrow"


def good(root: Path, number: int) -> Path:
    return write_scan(scan_path(root, number), number, 20)


def rejections(bridge: BridgeRunner) -> list[dict]:
    return [line["fields"] for line in bridge.lines() if line.get("fields", {}).get("event") == "file_rejected"]


def test_bad_files_among_good_ones_are_rejected_and_the_bridge_goes_on_also_after_a_restart(tmp_path, scans, env, view):
    cases = hostile.rejected_cases()
    bad: dict[Path, str] = {}
    number = 1
    for name, (data, reason) in sorted(cases.items()):  # good, bad, good, bad, ...: a catch-up batch holds both
        good(scans, number)
        path = scan_path(scans, number + 1)
        path.write_bytes(data)
        bad[path] = reason
        number += 2
    good(scans, number)
    expected = set(range(1, number + 1, 2))
    with BridgeRunner(scans, env, tmp_path / "bridge.log") as bridge:
        wait_for(lambda: view.history_keys() == expected, 60, "every good scan of the backlog")
        wait_for(lambda: len(rejections(bridge)) == len(bad), 10, "one rejection per bad file")
        got = {Path(f["file"]): f["reason"] for f in rejections(bridge)}
        assert set(got) == set(bad)
        for path, reason in bad.items():
            assert got[path].startswith(reason), (path.name, got[path])
        assert not any(f["crashed_reader"] for f in rejections(bridge))
        # Live, after the bad ones: a new bad file and a new good one.
        scan_path(scans, number + 1).write_bytes(hostile.memory_leak(number + 1))
        good(scans, number + 2)
        wait_for(lambda: number + 2 in view.history_keys(), 30, "a good scan written after the bad ones")
        wait_for(lambda: len(rejections(bridge)) == len(bad) + 1, 10, "the live bad file rejected")
        wait_for(lambda: (view.heartbeat() or {}).get("rejected_total") == len(bad) + 1, 10, "rejected_total")
        assert bridge.proc.poll() is None
        assert bridge.stop() == 0
    # The same folder again: every bad file is met again during start-up reconciliation.
    with BridgeRunner(scans, env, tmp_path / "bridge2.log") as again:
        again.wait_logged("Watching", 60)
        good(scans, number + 4)
        wait_for(lambda: number + 4 in view.history_keys(), 30, "a good scan after the restart")
        assert again.proc.poll() is None
        assert again.stop() == 0
    assert view.history_keys() == expected | {number + 2, number + 4}


def test_scan_numbers_beyond_32_bits_are_pushed_trimmed_and_read_as_longs(tmp_path, scans, env, view):
    # Before: keys were sent as 32-bit Java ints; #2**31 failed to serialise, was never rejected,
    # and every catch-up batch holding it failed for ever.
    base = 2**31
    T0 = datetime(2026, 3, 24, 12, tzinfo=UTC)  # distinct times: two scans claiming one instant are one slot (issue 14)
    for offset in range(5):
        scan_path(scans, offset).write_bytes(hostile.scan_with_number(base + offset, T0 + timedelta(seconds=offset)))
    with BridgeRunner(scans, env, tmp_path / "bridge.log", "--retention", "3") as bridge:
        # Retention 3: the start pushes the newest 3 (older ones would be trimmed at once).
        wait_for(lambda: view.history_keys() == {base + i for i in range(2, 5)}, 60, "numbers from 2**31 in history")
        assert view.latest()["scan_number"] == base + 4
        assert view.scan(base + 4)["scan_number"] == base + 4  # looked up with a long key
        for offset in range(5, 20):  # one at a time: a burst above retention would push only its newest 3
            scan_path(scans, offset).write_bytes(hostile.scan_with_number(base + offset, T0 + timedelta(seconds=offset)))
            wait_for(lambda: base + offset in view.history_keys(), 30, f"#2**31+{offset}")
        # Retention trims with predicate.less("__key", a long): it must compare the long keys.
        wait_for(lambda: len(view.history_keys()) <= 3 + 10, 10, "history trimmed")
        assert min(view.history_keys()) >= base + 19 - 13
        huge = 2**62
        scan_path(scans, 99).write_bytes(hostile.scan_with_number(huge, T0 + timedelta(seconds=99)))
        wait_for(lambda: (view.latest() or {}).get("scan_number") == huge, 30, "a 63-bit scan number as latest")
        assert not rejections(bridge)
        assert bridge.stop() == 0


#: Makes the reader segfault on the file named by CRASH_ON_FILE (a test hook, not in the product);
#: also used as a sitecustomize for the bridge the daemon starts (tests/test_daemon_reader.py).
CRASH_PATCH = """
import ctypes, os
import scan_bridge.scanfile as scanfile

target = os.environ["CRASH_ON_FILE"]
parse = scanfile._parse

def crash_on_target(path, *args, **kwargs):
    if str(path) == target:
        ctypes.string_at(0)  # a real SIGSEGV in native code, as a malformed file gave pyarrow
    return parse(path, *args, **kwargs)

scanfile._parse = crash_on_target
"""

CRASHING_BRIDGE = CRASH_PATCH + """
import sys
from scan_bridge import service
sys.exit(service.main(sys.argv[1:]))
"""


class CrashingBridge(BridgeRunner):
    """The real bridge, with its parser made to segfault on one file (a test hook, not in the product)."""

    def __init__(self, watch_dir: Path, env: dict[str, str], log_path: Path, crash_on: Path) -> None:
        super().__init__(watch_dir, env, log_path)
        self.env["CRASH_ON_FILE"] = str(crash_on)

    def start(self) -> CrashingBridge:
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CRASHING_BRIDGE], env=self.env, stdout=self._log, stderr=subprocess.STDOUT
        )
        return self


def test_a_file_that_crashes_the_reader_twice_is_skipped_after_the_restart_and_reported_once(tmp_path, scans, env, view):
    for n in (1, 2, 3):
        good(scans, n)
    poison = good(scans, 4)
    state = tmp_path / "state"
    env = {**env, "SCAN_BRIDGE_STATE_DIR": str(state)}
    first = CrashingBridge(scans, env, tmp_path / "bridge1.log", poison).start()
    assert first.proc.wait(60) == -signal.SIGSEGV  # died in the catch-up, while reading #4
    first.stop()
    for n in (5, 6):
        good(scans, n)
    # One death may be a kill -9 that landed mid-read: the next bridge reads #4 once more, and dies too.
    retry = CrashingBridge(scans, env, tmp_path / "bridge1b.log", poison).start()
    assert retry.proc.wait(60) == -signal.SIGSEGV
    assert any("reading it once more" in x["message"] for x in retry.lines())
    retry.stop()
    assert 4 not in view.history_keys()
    # The same folder, the same crashing parser: after two deaths #4 is not read again, and everything else arrives.
    second = CrashingBridge(scans, env, tmp_path / "bridge2.log", poison).start()
    try:
        wait_for(lambda: view.history_keys() == {1, 2, 3, 5, 6}, 60, "the good scans around the crashing one")
        (line,) = rejections(second)
        assert line["file"] == str(poison)
        assert line["crashed_reader"] is True
        assert "died while reading it" in line["reason"]
        level = next(x["level"] for x in second.lines() if x.get("fields", {}).get("event") == "file_rejected")
        assert level == "WARNING"  # the daemon forwards it as a warning
        wait_for(lambda: (view.heartbeat() or {}).get("rejected_total") == 1, 10, "rejected_total 1")
        good(scans, 7)
        wait_for(lambda: 7 in view.history_keys(), 30, "a live scan after the restart")
        assert second.stop() == 0
    finally:
        second.stop()
    # Reported once: a third start skips it silently, and still never reads it.
    third = CrashingBridge(scans, env, tmp_path / "bridge3.log", poison).start()
    try:
        third.wait_logged("Watching", 60)
        good(scans, 8)
        wait_for(lambda: 8 in view.history_keys(), 30, "a live scan at the third start")
        assert rejections(third) == []
        assert third.proc.poll() is None
        assert 4 not in view.history_keys()
    finally:
        assert third.stop() == 0
    marker_dir = next(state.glob("reader-*"))
    assert oct(marker_dir.stat().st_mode & 0o777) == "0o700"
    assert not any(scans.rglob("*reading*")), "nothing is written into the scanner's folder"


def test_a_push_failure_is_one_line_and_the_java_stack_trace_is_kept_for_debug(tmp_path, scans, caplog):
    from scan_bridge.service import Bridge
    from scan_bridge.settings import BridgeSettings

    bridge = Bridge(BridgeSettings(watch_dir=scans, state_dir=tmp_path / "state"))
    java = "com.hazelcast.nio.serialization.HazelcastSerializationException: cannot serialise\n" + "\tat com.hazelcast.X.y(X.java:1)\n" * 38
    with caplog.at_level("DEBUG", logger="scan_bridge.service"):
        bridge._push_failed(RuntimeError(java))
    (warning,) = [r for r in caplog.records if r.levelname == "WARNING"]
    assert "\n" not in warning.getMessage()
    assert warning.getMessage().endswith("cannot serialise); will catch up from disk")
    (debug,) = [r for r in caplog.records if r.levelname == "DEBUG"]
    assert debug.exc_info is not None  # the whole trace, for whoever turns debug on


def test_a_good_scan_a_bridge_was_killed_reading_is_read_again_not_skipped(tmp_path, scans, env, view):
    # kill -9 (the daemon restarting a bridge it took for stuck, the OOM killer, a container restart)
    # can land while a good scan is being read: the marker then names a good file. Before, the next
    # bridge rejected it as a crasher and that scan was lost for good.
    from scan_bridge.read_guard import MARKER_NAME, guard_dir, make_private_dir

    for n in (1, 2, 3):
        good(scans, n)
    state = tmp_path / "state"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    folder = make_private_dir(guard_dir(state, scans))
    (folder / f"{MARKER_NAME}-{dead.pid}").write_bytes(bytes(scan_path(scans, 2)))  # what a killed bridge leaves
    with BridgeRunner(scans, {**env, "SCAN_BRIDGE_STATE_DIR": str(state)}, tmp_path / "bridge.log") as bridge:
        wait_for(lambda: view.history_keys() == {1, 2, 3}, 60, "every scan, #2 included")
        assert not rejections(bridge)
        assert any("reading it once more" in line["message"] for line in bridge.lines())
        assert bridge.stop() == 0
