"""The supervisor's loop, decision by decision: scripted messages, a fake process factory, a fake clock.

After honcho's ``test/unit/test_manager.py``: the loop only reads typed messages from one queue, so a
script of messages (started, output, exited, health results, stop) and of clock steps drives it
through every decision, and the test asserts what it did (processes started, killed and stopped,
states, restarts, what it told the publisher) with no process, no thread that matters and no time.
The real bridge process and a real member are tested elsewhere (test_bridge_process, test_daemon).
"""

from __future__ import annotations

import queue
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from scan_bridge.bridge_process import Exited, Line, Started
from scan_bridge.health import FreshnessReport, HealthStatus, StaleCause
from scan_bridge.restart_policy import ProcessState
from scan_bridge.settings import DaemonSettings
from scan_bridge.supervisor import GaveUp, HealthResult, StopRequest, Supervisor

pytestmark = pytest.mark.unit

SETTINGS = DaemonSettings(
    health_interval_s=3600.0,  # the real ticker thread never fires: health results come from the script
    start_grace_s=20.0,
    restart_delay_s=5.0,
    max_restarts=2,
    restart_window_s=600.0,
    stop_grace_s=7.0,
)


@dataclass(frozen=True)
class Advance:
    """A script step: this many seconds pass on the fake clock (the loop sees a queue timeout)."""

    seconds: float


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Exit:
    """A script step: bridge number ``index`` (0 first) exits with ``code``; resolved when read, so
    it names the process the loop has made by then."""

    def __init__(self, harness: Harness, index: int, code: int) -> None:
        self.harness, self.index, self.code = harness, index, code

    def resolve(self) -> Exited:
        return self.harness.processes[self.index].exit(self.code)


class ScriptedQueue:
    """The loop's queue: what the fake processes put comes first, then the script's next step.

    An :class:`Advance` moves the clock and answers ``queue.Empty``, as a timeout would. Once the
    script is done, the loop may only be stopping (forwarding the bridge's last lines): an empty
    queue then answers ``queue.Empty``; while it still runs, an empty script is a test error.
    """

    def __init__(self, clock: Clock, script: list[Any]) -> None:
        self.clock = clock
        self.script = list(script)
        self.inbox: list[Any] = []
        self.stopping = False

    def put(self, message: Any) -> None:
        self.inbox.append(message)

    def get(self, timeout: float | None = None) -> Any:
        if self.inbox:
            return self.inbox.pop(0)
        if self.script:
            step = self.script.pop(0)
            if isinstance(step, Advance):
                self.clock.now += step.seconds
                raise queue.Empty
            if isinstance(step, StopRequest):
                self.stopping = True
            return step.resolve() if isinstance(step, Exit) else step
        if self.stopping:
            raise queue.Empty
        raise AssertionError("the script ended while the loop still runs")


class History(list):  # type: ignore[type-arg]
    """Everything the fakes saw, in order: ("start", pid), ("kill", pid), ("stop", pid, grace), publisher calls."""


class FakeProcess:
    """What the supervisor uses of BridgeProcess, recording each call; pids 101, 102, ..."""

    next_pid = 101

    def __init__(self, argv: list[str], *, env: dict[str, str], events: ScriptedQueue, pidfile: Any, history: History, clock: Clock) -> None:
        self.events, self.history, self.clock = events, history, clock
        self.pid: int | None = None
        self.started_monotonic: float | None = None
        self.returncode: int | None = None

    def start(self) -> int:
        self.pid, FakeProcess.next_pid = FakeProcess.next_pid, FakeProcess.next_pid + 1
        self.started_monotonic = self.clock()
        self.history.append(("start", self.pid))
        self.events.put(Started(self.pid, ("bridge",), datetime.now(UTC)))
        return self.pid

    def is_running(self) -> bool:
        return self.pid is not None and self.returncode is None

    def exit(self, code: int) -> Exited:
        """The script's way to make this bridge exit on its own."""
        assert self.pid is not None
        self.returncode = code
        return Exited(self.pid, code)

    def kill(self) -> None:
        assert self.pid is not None
        self.history.append(("kill", self.pid))
        self.returncode = -9
        self.events.put(Exited(self.pid, -9))

    def stop(self, grace_s: float, kill_wait_s: float = 5.0) -> int | None:
        assert self.pid is not None
        self.history.append(("stop", self.pid, grace_s))
        if self.returncode is None:
            self.returncode = 0
            self.events.put(Exited(self.pid, 0))
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        return self.returncode

    def uptime_s(self) -> float | None:
        return None if self.started_monotonic is None else self.clock() - self.started_monotonic

    def last_lines(self) -> list[Line]:
        return [Line("stderr", "Traceback: boom", self.pid or 0)]


class RecordingPublisher:
    def __init__(self, history: History) -> None:
        self.history = history

    def health(self, status: Any, previous: FreshnessReport | None) -> None:
        assert status.report is not None
        self.history.append(("health", status.report.status.value, None if previous is None else previous.status.value, status.state))

    def restarted(self, status: Any, reason: str) -> None:
        self.history.append(("restarted", status.restarts_total, status.state))

    def gave_up(self, status: Any, message: str) -> None:
        self.history.append(("gave_up", status.state))

    def stopped(self, status: Any, reason: str) -> None:
        self.history.append(("stopped", reason))

    def file_crashed_reader(self, status: Any, file: str, reason: str) -> None:
        self.history.append(("file_crashed_reader", file))

    def bridge_event(self, status: Any, name: str, fields: dict[str, Any]) -> None:
        self.history.append(("bridge_event", name))


class Harness:
    """A supervisor wired to the fakes; ``run(script)`` plays the script through its loop."""

    def __init__(self) -> None:
        import logging

        FakeProcess.next_pid = 101
        self.clock = Clock()
        self.history = History()
        self.processes: list[FakeProcess] = []
        self.logger = logging.getLogger("test-supervisor-loop")
        self.supervisor = Supervisor(
            SETTINGS, ["bridge"], {}, logger=self.logger, publisher=RecordingPublisher(self.history),
            clock=self.clock, process_factory=self._make,
        )

    def _make(self, argv: list[str], *, env: dict[str, str], events: Any, pidfile: Any) -> FakeProcess:
        process = FakeProcess(argv, env=env, events=events, pidfile=pidfile, history=self.history, clock=self.clock)
        self.processes.append(process)
        return process

    def run(self, script: list[Any]) -> Any:
        self.supervisor.events = ScriptedQueue(self.clock, script)  # type: ignore[assignment]
        return self.supervisor.run()


def report(status: HealthStatus, *, cause: StaleCause | None = None, stuck: bool = False) -> FreshnessReport:
    return FreshnessReport(status=status, cause=cause, detail="scripted", checked_at=datetime.now(UTC), bridge_stuck=stuck)


def checked(result: FreshnessReport, pid: int) -> HealthResult:
    """A check begun while bridge ``pid`` ran, which read that bridge's own heartbeat."""
    return HealthResult(result.model_copy(update={"heartbeat_pid": pid}), pid)


HEALTHY = report(HealthStatus.HEALTHY)
STUCK = report(HealthStatus.STALE, cause=StaleCause.BRIDGE_STUCK, stuck=True)
SILENT = report(HealthStatus.STALE, cause=StaleCause.SCANNER_SILENT)
DOWN = report(HealthStatus.DOWN)


def test_starts_one_bridge_reports_health_and_stops_it_with_the_grace() -> None:
    h = Harness()
    status = h.run([checked(HEALTHY, 101), checked(HEALTHY, 101), StopRequest("test over")])
    assert h.history == [
        ("start", 101),
        ("health", "healthy", None, ProcessState.STARTING),  # first report: previous None (a change)
        ("health", "healthy", "healthy", ProcessState.STARTING),  # the publisher gets the previous report
        ("stop", 101, SETTINGS.stop_grace_s),
        ("stopped", "test over"),
    ]
    # The exit a stop causes is logged, not recorded as the bridge's last exit (that is for crashes).
    assert status.state is ProcessState.STOPPING and status.restarts_total == 0 and status.last_exit_code is None


def test_a_bridge_becomes_running_after_the_start_grace_of_the_settings() -> None:
    """The grace is the setting's (20 s), not a second default (the Supervisor's own said 10)."""
    h = Harness()
    h.run([Advance(19.0), checked(HEALTHY, 101), Advance(1.0), checked(HEALTHY, 101), StopRequest("over")])
    states = [entry[3] for entry in h.history if entry[0] == "health"]
    assert states == [ProcessState.STARTING, ProcessState.RUNNING]


def test_a_bridge_is_not_running_on_its_predecessors_heartbeat() -> None:
    """Past the grace, a check that read another bridge's heartbeat (the one before it, under load a
    start longer than the grace) leaves it STARTING: judged by that heartbeat, it was killed in a loop
    (chaos harness, issue 10). Its own heartbeat settles it."""
    h = Harness()
    h.run([Advance(25.0), HealthResult(HEALTHY.model_copy(update={"heartbeat_pid": 99}), 101),
           checked(HEALTHY, 101), StopRequest("over")])
    states = [entry[3] for entry in h.history if entry[0] == "health"]
    assert states == [ProcessState.STARTING, ProcessState.RUNNING]


def test_an_exit_is_restarted_after_the_delay_and_counted() -> None:
    h = Harness()
    status = h.run([Advance(30.0), Exit(h, 0, 1), Advance(4.9), Advance(0.1), checked(HEALTHY, 102), StopRequest("over")])
    assert h.history == [
        ("start", 101),
        ("restarted", 1, ProcessState.BACKOFF),
        ("start", 102),  # only once the delay (5 s) has passed on the clock
        ("health", "healthy", None, ProcessState.STARTING),
        ("stop", 102, SETTINGS.stop_grace_s),
        ("stopped", "over"),
    ]
    assert status.restarts_total == 1 and status.last_exit_code == 1


def test_a_stuck_bridge_is_killed_and_restarted_once_settled_but_not_while_starting() -> None:
    h = Harness()
    h.run([
        checked(STUCK, 101),  # STARTING: never restarted on a report
        Advance(20.0), checked(STUCK, 101),  # RUNNING now: kill, then restart after the delay
        Advance(5.0), checked(HEALTHY, 102),
        StopRequest("over"),
    ])
    assert h.history == [
        ("start", 101),
        ("health", "stale", None, ProcessState.STARTING),
        ("health", "stale", "stale", ProcessState.RUNNING),
        ("kill", 101),
        ("restarted", 1, ProcessState.BACKOFF),
        ("start", 102),
        ("health", "healthy", "stale", ProcessState.STARTING),
        ("stop", 102, SETTINGS.stop_grace_s),
        ("stopped", "over"),
    ]


def test_a_silent_scanner_is_never_a_reason_to_restart() -> None:
    h = Harness()
    h.run([Advance(25.0)] + [checked(SILENT, 101)] * 5 + [StopRequest("over")])
    assert [e for e in h.history if e[0] in ("kill", "restarted", "start")] == [("start", 101)]


def test_a_report_begun_before_the_current_bridge_started_is_not_acted_on() -> None:
    """A DOWN about bridge 101 must not kill its successor 102."""
    h = Harness()
    h.run([Advance(25.0), Exit(h, 0, 1), Advance(5.0), Advance(25.0), checked(DOWN, 101), StopRequest("over")])
    assert ("kill", 102) not in h.history
    assert [e for e in h.history if e[0] == "start"] == [("start", 101), ("start", 102)]


def test_an_exit_of_a_previous_bridge_is_ignored() -> None:
    h = Harness()
    h.run([Advance(25.0), Exit(h, 0, 1), Advance(5.0), Exited(101, 1), StopRequest("over")])
    assert [e for e in h.history if e[0] == "restarted"] == [("restarted", 1, ProcessState.BACKOFF)]


def test_the_loop_gives_up_when_the_budget_is_spent() -> None:
    h = Harness()
    with pytest.raises(GaveUp) as raised:
        h.run([
            Exit(h, 0, 1), Advance(5.0),
            Exit(h, 1, 1), Advance(5.0),
            Exit(h, 2, 1),  # a third exit within the window: max_restarts is 2
        ])
    assert h.history[-2:] == [("gave_up", ProcessState.FATAL), ("stopped", "gave up")]
    assert [e for e in h.history if e[0] == "start"] == [("start", 101), ("start", 102), ("start", 103)]
    assert "2 restarts within the last 600s already" in str(raised.value) and "Traceback: boom" in str(raised.value)
    assert h.supervisor.status.state is ProcessState.FATAL
