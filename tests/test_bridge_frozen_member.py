"""A frozen or vanished member never freezes the bridge, and what the docs promise around it.

Real bridge processes against private members started from the jar. A member is frozen with
SIGSTOP on its JVM: to the client that is exactly a network that silently drops packets (an open
connection that never answers), which the client's futures do not time out by themselves.
Deadlines here are for something to happen on a loaded 2-core machine; how fast the bridge
notices is measured in bench/bench_frozen_member.py (docs/performance.md).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scan_bridge.localcluster import LocalCluster
from scan_bridge.simulate import write_scan

from .support import BridgeRunner, View, unique_maps, wait_for

SIGTERM_EXIT_S = 5.0  # the documented promise (docs/bridge.md, Failure behaviour)
SILENT_LINE = "does not answer"


@pytest.fixture
def member(local_cluster_factory: Callable[..., LocalCluster]) -> Iterator[LocalCluster]:
    """A private one-member cluster; never left frozen (a stopped JVM would not die on SIGTERM)."""
    cluster = local_cluster_factory(members=1)
    yield cluster
    pid = cluster.pid(0)
    if pid is not None and cluster.alive(0):
        os.kill(pid, signal.SIGCONT)


def env_for(cluster: LocalCluster, **extra: str) -> dict[str, str]:
    return {
        "SCAN_BRIDGE_HAZELCAST_MEMBERS": ",".join(cluster.members),
        "SCAN_BRIDGE_HAZELCAST_CLUSTER_NAME": cluster.cluster_name,
        **unique_maps(),
        **extra,
    }


def write(root: Path, number: int, timestamp: datetime | None = None) -> Path:
    folder = root / "2026-03-24"
    folder.mkdir(parents=True, exist_ok=True)
    return write_scan(folder / f"scan_{number:06d}_120000.arrow", number, 20, timestamp=timestamp)


def _stopped(pid: int) -> bool:
    """Every thread of ``pid`` in state T (a group stop reaches threads one by one)."""
    states = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            states.append((task / "stat").read_text().rsplit(")", 1)[1].split()[0])
        except OSError:  # a thread that just ended
            pass
    return bool(states) and all(state == "T" for state in states)


def freeze(cluster: LocalCluster) -> None:
    """SIGSTOP the member's JVM and wait until the kernel reports it stopped."""
    pid = cluster.pid(0)
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    wait_for(lambda: _stopped(pid), 10, f"member {pid} stopped")


def thaw(cluster: LocalCluster) -> None:
    pid = cluster.pid(0)
    assert pid is not None
    os.kill(pid, signal.SIGCONT)


def settled(env: dict[str, str], expected: set[int], timeout: float, what: str) -> None:
    """History holds exactly ``expected`` and latest is its newest, seen by a fresh client."""
    view = View(env)
    try:
        wait_for(lambda: view.history_keys() == expected, timeout, f"{what}: history == {len(expected)} scans")
        wait_for(lambda: (view.latest() or {}).get("scan_number") == max(expected), 15, f"{what}: latest #{max(expected)}")
    finally:
        view.close()


def sigterm_within_promise(bridge: BridgeRunner) -> float:
    """SIGTERM; the bridge must exit 0 by itself (its 'Stopped' line, not the hard deadline) within 5 s."""
    assert bridge.proc is not None
    started = time.monotonic()
    bridge.proc.send_signal(signal.SIGTERM)
    code = bridge.proc.wait(30)  # generous: a failure should say how long it took, not time out here
    took = time.monotonic() - started
    bridge.stop()
    messages = bridge.messages()
    assert code == 0
    assert took < SIGTERM_EXIT_S, f"SIGTERM took {took:.1f} s"
    assert not any("Shutdown deadline passed" in m for m in messages), "the loop was stuck in a call"
    assert "Stopped" in messages[-1], messages[-5:]
    return took


def frozen_while_pushing(bridge: BridgeRunner, scans: Path, env: dict[str, str], member: LocalCluster) -> str:
    """Scans 1-10 pushed, then the member frozen while 11-20 are written (their pushes start, and hang):
    the bridge's one line that the member went silent."""
    bridge.wait_logged("Watching", 60)
    for n in range(1, 11):
        write(scans, n)
    settled(env, set(range(1, 11)), 30, "before the freeze")
    freeze(member)
    for n in range(11, 21):
        write(scans, n)
    return bridge.wait_logged(SILENT_LINE, 60)


def test_frozen_member_is_logged_once_and_caught_up_exactly_on_thaw(tmp_path, scans, member):
    env = env_for(member)
    address = member.members[0]
    with BridgeRunner(scans, env, tmp_path / "bridge.log") as bridge:
        line = frozen_while_pushing(bridge, scans, env, member)
        assert address in line
        for n in range(21, 31):  # noticed: the bridge watches and queues on
            write(scans, n)
        assert bridge.proc.poll() is None
        # Still responsive while the member stays frozen: its loop reads (and here rejects) a new file.
        bad = scans / "2026-03-24" / "scan_000500_120000.arrow"
        bad.write_bytes(b"this is not an arrow file\n" * 100)
        bridge.wait_logged(f"Rejected {bad}", 20)

        thaw(member)
        settled(env, set(range(1, 31)), 90, "after the thaw")
        for n in range(31, 36):  # and it goes on live
            write(scans, n)
        settled(env, set(range(1, 36)), 30, "live after the thaw")
        assert bridge.proc.poll() is None
        assert sum(SILENT_LINE in m for m in bridge.messages()) == 1, "logged once, not per call"


def test_frozen_then_replaced_member_gets_every_scan(tmp_path, scans, member):
    env = env_for(member)
    with BridgeRunner(scans, env, tmp_path / "bridge.log") as bridge:
        frozen_while_pushing(bridge, scans, env, member)
        member.stop_member(0, kill=True)  # SIGKILL reaches a stopped process
        for n in range(21, 26):
            write(scans, n)
        member.start_member(0)  # a new, empty member on the same address
        settled(env, set(range(1, 26)), 120, "in the replacement member")
        assert bridge.proc.poll() is None


@pytest.mark.parametrize("phase", ["connecting", "pushing"])
def test_sigterm_exits_within_5s_while_a_call_hangs_on_a_frozen_member(tmp_path, scans, member, phase):
    # A long call timeout, so that the call is certainly still hanging when SIGTERM comes.
    env = env_for(member, SCAN_BRIDGE_HAZELCAST_CALL_TIMEOUT_S="60", SCAN_BRIDGE_HAZELCAST_CONNECT_TIMEOUT_S="60")
    bridge = BridgeRunner(scans, env, tmp_path / "bridge.log", "--log-level", "DEBUG")
    if phase == "connecting":
        freeze(member)  # the client's constructor would wait for the thaw
        bridge.start()
        bridge.wait_logged("Starting scan bridge", 60)
    else:
        bridge.start()
        bridge.wait_logged("Watching", 60)
        write(scans, 1)
        settled(env, {1}, 30, "before the freeze")
        freeze(member)
        write(scans, 2)
        bridge.wait_logged("pushing 1 scans (#2..#2)", 30)  # the push that now waits for the member
    try:
        sigterm_within_promise(bridge)
    finally:
        thaw(member)
    # What was not pushed is caught up by the next bridge.
    expected = {1, 2} if phase == "pushing" else set()
    if expected:
        with BridgeRunner(scans, env, tmp_path / "bridge2.log") as again:
            again.wait_logged("Watching", 60)
            settled(env, expected, 60, "after the restart")


def test_sigterm_exits_within_5s_when_the_member_vanishes_mid_push(tmp_path, scans, member):
    env = env_for(member, SCAN_BRIDGE_HAZELCAST_CALL_TIMEOUT_S="60")
    with BridgeRunner(scans, env, tmp_path / "bridge.log", "--log-level", "DEBUG") as bridge:
        bridge.wait_logged("Watching", 60)
        write(scans, 1)
        settled(env, {1}, 30, "before")
        freeze(member)  # the push below hangs ...
        write(scans, 2)
        bridge.wait_logged("pushing 1 scans (#2..#2)", 30)
        member.stop_member(0, kill=True)  # ... and then the member is gone for good
        sigterm_within_promise(bridge)


@pytest.mark.parametrize("drop", ["member-restarted-empty", "connection-timed-out-member-kept-data"])
def test_late_older_scan_after_a_reconnect_leaves_latest_alone(tmp_path, scans, member, drop):
    env = env_for(member, SCAN_BRIDGE_HAZELCAST_HEARTBEAT_TIMEOUT_S="4")
    with BridgeRunner(scans, env, tmp_path / "bridge.log") as bridge:
        bridge.wait_logged("Watching", 60)
        for n in range(100, 111):
            write(scans, n)
        settled(env, set(range(100, 111)), 30, "before the drop")
        if drop == "member-restarted-empty":
            member.stop_member(0)
            bridge.wait_logged("Lost connection", 60)
            member.start_member(0)  # the reconcile refills it: latest is pushed again
        else:
            freeze(member)  # silent past the client's heartbeat timeout: it closes the connection
            bridge.wait_logged("Lost connection", 60)
            thaw(member)  # same member, same data: the reconcile pushes nothing, latest is re-read
        bridge.wait_logged("Reconnected", 90)
        settled(env, set(range(100, 111)), 90, "after the reconnect")
        write(scans, 95, datetime.now(UTC) - timedelta(hours=1))  # late, and older (stamped earlier) than latest
        view = View(env)
        try:
            wait_for(lambda: 95 in view.history_keys(), 30, "late scan 95 in history")
            assert view.history_keys() == {95, *range(100, 111)}
            assert view.latest()["scan_number"] == 110
        finally:
            view.close()


def test_backlog_larger_than_a_batch_is_caught_up_exactly(tmp_path, scans, hazelcast_cluster):
    env = {**hazelcast_cluster.env(), **unique_maps()}
    written = {n for n in range(1, 51)}
    for n in sorted(written):  # the bridge is down while these land
        write(scans, n)
    with BridgeRunner(scans, env, tmp_path / "bridge.log", "--batch-size", "7") as bridge:
        settled(env, written, 60, "backlog of 50 in batches of 7")
        assert bridge.wait_logged("Caught up 50 scans")


# -- the episode logic alone: one member of several frozen ----------------------------------------


class _HalfFrozenSink:
    """The sink as the bridge sees it when the heartbeat's partition answers but reads time out.

    Only the bridge's decisions are under test here (a clock it is given, futures we complete);
    the real client against real frozen members is what the tests above run.
    """

    def __init__(self) -> None:
        from hazelcast.future import Future

        self._future_class = Future
        self.latest_number = None
        self.heartbeats: list = []
        self.refreshes = 0
        self.answers = False

    def heartbeat(self, **_fields):
        future = self._future_class()
        self.heartbeats.append(future)
        return future

    def refresh(self) -> set[int]:
        from scan_bridge.hzcall import CallTimedOut

        self.refreshes += 1
        if not self.answers:
            raise CallTimedOut("key_set of H: no answer within 5.0 s")
        return set()

    def retention_floor(self):
        return None


def test_silence_is_logged_once_while_probes_answer_and_reconciles_still_time_out(scans, caplog):
    from scan_bridge.service import Bridge
    from scan_bridge.settings import BridgeSettings

    now = [1000.0]
    bridge = Bridge(BridgeSettings(watch_dir=scans, hazelcast_members=["10.0.0.7:5701"]), clock=lambda: now[0])
    sink = _HalfFrozenSink()
    bridge.sink, bridge.connected = sink, True  # type: ignore[assignment]
    caplog.set_level("INFO", logger="scan_bridge.service")

    bridge._heartbeat()
    now[0] += 6  # the heartbeat went unanswered past the 5 s call timeout
    bridge._tick()
    assert not bridge.usable
    for _round in range(4):  # every probe is answered, every reconcile still times out
        for future in sink.heartbeats:
            if not future.done():
                future.set_result(None)
        now[0] += 2.5
        bridge._tick()
    assert sink.refreshes >= 2, "answered probes lead to new attempts"
    assert sink.refreshes < 5, "with back-off, not one attempt per probe"
    sink.answers = True
    for _round in range(20):
        for future in sink.heartbeats:
            if not future.done():
                future.set_result(None)
        now[0] += 2.5
        bridge._tick()
        if bridge.usable:
            break
    assert bridge.usable
    messages = [r.getMessage() for r in caplog.records]
    assert sum("does not answer" in m for m in messages) == 1, messages
    assert sum("10.0.0.7:5701 answers again" in m for m in messages) == 1, messages
