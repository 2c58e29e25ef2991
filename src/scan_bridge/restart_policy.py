"""When to restart the bridge, and when to stop trying: pure rules, no I/O, no clock of its own.

Times are floats the caller reads from ``time.monotonic()``; nothing here sleeps or looks at the
wall clock, so a month of restarts is tested in microseconds.

Two lessons shape the rules:

* A restart must be able to help. The bridge restarts when it exited or is *stuck* (its heartbeat
  stopped, or a complete scan file sits on disk unpushed). Stale data from a *silent scanner* and an
  unreachable Hazelcast do not restart it: the first is not its fault, the second it survives by
  reconnecting, and either would only spend the restart budget and end in "gave up".
* The budget is a sliding window (like systemd's ``StartLimitBurst``/``StartLimitIntervalSec``), not a
  lifetime count: a daemon that runs for months survives a crash now and then, and gives up only on
  a crash loop.

Process states are supervisord's (``STOPPED``, ``STARTING``, ``RUNNING``, ``BACKOFF``, ``STOPPING``,
``EXITED``, ``FATAL``), so an operator who knows supervisord reads the daemon's log without a glossary.
"""

from __future__ import annotations

import signal
from collections import deque
from dataclasses import dataclass
from enum import Enum

from .health_classify import FreshnessReport, HealthStatus, StaleCause
from .settings import DaemonSettings

__all__ = [
    "Action",
    "Decision",
    "ProcessState",
    "RestartBudget",
    "decide",
    "describe_exit",
    "settled_state",
]


class ProcessState(str, Enum):
    """The bridge process's state, named as in supervisord's documentation."""

    STOPPED = "STOPPED"  # not started yet, or stopped on purpose
    STARTING = "STARTING"  # started less than start_grace_s ago: health reports do not restart it yet
    RUNNING = "RUNNING"
    BACKOFF = "BACKOFF"  # exited; waiting restart_delay_s before the restart already decided on
    STOPPING = "STOPPING"  # we asked it to stop
    EXITED = "EXITED"  # exited on its own; a decision is due
    FATAL = "FATAL"  # we gave up


class Action(str, Enum):
    """What the daemon should do now."""

    NONE = "none"
    RESTART = "restart"
    GIVE_UP = "give up"


@dataclass(frozen=True)
class Decision:
    """An action and the one line the daemon logs with it.

    ``for_file`` is set when the restart is for an unpushed file while the heartbeat is fresh; the
    caller passes it back as ``restarted_for_file`` so the same file does not cause a second restart.
    """

    action: Action
    reason: str
    for_file: str | None = None

    def __str__(self) -> str:
        return f"{self.action.value}: {self.reason}"


class RestartBudget:
    """At most ``max_restarts`` restarts within any ``window_s`` seconds (a sliding window).

    A restart recorded at ``t`` counts while ``now - t < window_s``. The caller records a restart
    when it performs one (:meth:`record`); asking (:meth:`allows`) never changes the budget.
    """

    def __init__(self, max_restarts: int, window_s: float) -> None:
        if max_restarts < 0:
            raise ValueError("max_restarts must be >= 0")
        if window_s <= 0:
            raise ValueError("window_s must be > 0")
        self.max_restarts = max_restarts
        self.window_s = window_s
        self._times: deque[float] = deque()

    @classmethod
    def from_settings(cls, settings: DaemonSettings) -> RestartBudget:
        """The daemon's configured budget (``max_restarts`` within ``restart_window_s``)."""
        return cls(settings.max_restarts, settings.restart_window_s)

    def _counted(self, now: float) -> list[float]:
        return [t for t in self._times if now - t < self.window_s]

    def used(self, now: float) -> int:
        """Restarts that still count at ``now``."""
        return len(self._counted(now))

    def remaining(self, now: float) -> int:
        """Restarts still allowed at ``now``."""
        return max(self.max_restarts - self.used(now), 0)

    def allows(self, now: float) -> bool:
        """True if one more restart at ``now`` stays within the budget."""
        return self.used(now) < self.max_restarts

    def record(self, now: float) -> None:
        """Count a restart performed at ``now``; restarts out of the window are forgotten (months of uptime)."""
        while self._times and now - self._times[0] >= self.window_s:
            self._times.popleft()
        self._times.append(now)

    def next_allowed_at(self, now: float) -> float | None:
        """When the budget allows a restart again (``now`` if it does already; None if it never will)."""
        if self.max_restarts == 0:
            return None
        counted = sorted(self._counted(now))
        if len(counted) < self.max_restarts:
            return now
        return counted[len(counted) - self.max_restarts] + self.window_s


def describe_exit(returncode: int | None) -> str:
    """``exit code 1``, ``killed by SIGKILL`` (Popen's negative codes), or ``exited`` when unknown."""
    if returncode is None:
        return "exited"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    return f"exit code {returncode}"


#: A bridge that has not written a heartbeat of its own this long after its start is RUNNING anyway
#: (and so judged: its predecessor's heartbeat then makes it stuck): one hung before connecting.
START_TIMEOUT_S = 120.0


def settled_state(
    state: ProcessState, started_at: float, now: float, start_grace_s: float, beaten: bool = True
) -> ProcessState:
    """STARTING becomes RUNNING once the bridge has lived ``start_grace_s`` (supervisord's startsecs)
    and has written a heartbeat of its own (``beaten``), or after :data:`START_TIMEOUT_S` regardless.

    Until then a new bridge is starting, connecting and catching up, and a health report must not
    restart it. Without ``beaten``, a bridge whose start outlasted the grace (16 s from fork to its
    first line on a loaded 2-core machine) was judged by its predecessor's heartbeat, called stuck
    and killed, again and again (found by the chaos harness, issue 10).
    """
    if state is not ProcessState.STARTING:
        return state
    age = now - started_at
    if (age >= start_grace_s and beaten) or age >= max(START_TIMEOUT_S, start_grace_s):
        return ProcessState.RUNNING
    return state


def _restart_or_give_up(why: str, budget: RestartBudget, now: float, for_file: str | None = None) -> Decision:
    used = budget.used(now)
    if budget.allows(now):
        return Decision(
            Action.RESTART,
            f"{why} (restart {used + 1} of {budget.max_restarts} allowed within {budget.window_s:g}s)",
            for_file,
        )
    return Decision(
        Action.GIVE_UP,
        f"{why}; {used} restarts within the last {budget.window_s:g}s already (limit {budget.max_restarts})",
    )


def decide(
    state: ProcessState,
    report: FreshnessReport | None = None,
    *,
    budget: RestartBudget,
    now: float,
    returncode: int | None = None,
    restart_on_any_stale: bool = False,
    restarted_for_file: str | None = None,
) -> Decision:
    """What to do about the bridge, given its state and the latest health report (or its exit).

    * EXITED: restart (``returncode`` only words the reason).
    * STARTING or RUNNING with a report: restart when the report says DOWN or ``bridge_stuck``; do
      nothing for a silent scanner (STALE, SCANNER_SILENT), a bridge catching up (STALE, BRIDGE_BUSY), an unreachable Hazelcast (ERROR),
      MISSING, WARNING or HEALTHY. A STARTING bridge is never restarted on a report (see
      :func:`settled_state`). ``restart_on_any_stale`` restarts on every STALE, as the original
      design did.
    * A stuck bridge whose only symptom is an unpushed file (heartbeat fresh) is restarted once per
      file: if ``restarted_for_file`` is that file, the bridge is alive and still does not push it
      (most likely it rejected it as invalid), and restarting again cannot help.
    * STOPPED, STOPPING, BACKOFF, FATAL: nothing (stopped on purpose, restart already scheduled, gave up).
    * A wanted restart beyond the budget is GIVE_UP. The caller records restarts in ``budget``.
    """
    if state is ProcessState.EXITED:
        return _restart_or_give_up(f"bridge {describe_exit(returncode)}", budget, now)
    if state in (ProcessState.STOPPED, ProcessState.STOPPING):
        return Decision(Action.NONE, f"bridge {state.value.lower()} on purpose")
    if state is ProcessState.BACKOFF:
        return Decision(Action.NONE, "restart already scheduled")
    if state is ProcessState.FATAL:
        return Decision(Action.NONE, "gave up earlier")

    if report is None:
        return Decision(Action.NONE, "no health report yet")
    if report.status is HealthStatus.DOWN:
        return _restart_or_give_up("health check: bridge process not running", budget, now)
    if report.status is HealthStatus.ERROR:
        return Decision(Action.NONE, f"Hazelcast not readable; the bridge reconnects by itself ({report.detail})")

    wants: str | None = None
    for_file: str | None = None
    if report.bridge_stuck:
        if (
            not report.heartbeat_stale
            and report.unpushed_file is not None
            and report.unpushed_file == restarted_for_file
        ):
            return Decision(
                Action.NONE,
                f"already restarted for {report.unpushed_file}; the bridge is alive (heartbeat fresh) and still does "
                "not push it (rejected?): not restarting again",
            )
        wants = f"bridge stuck: {report.stuck_reason}"
        for_file = None if report.heartbeat_stale else report.unpushed_file
    elif report.status is HealthStatus.STALE and restart_on_any_stale:
        cause = report.cause.value if report.cause is not None else "unknown cause"
        wants = f"data stale ({cause}) and restart_on_any_stale is set"

    if wants is None:
        if report.status is HealthStatus.STALE and report.cause is StaleCause.SCANNER_SILENT:
            return Decision(Action.NONE, "scanner silent: nothing newer on disk, so restarting the bridge cannot help")
        if report.status is HealthStatus.STALE and report.cause is StaleCause.DISK_UNREADABLE:
            return Decision(Action.NONE, "disk not readable: the bridge cannot read it either, so restarting it cannot help")
        if report.status is HealthStatus.STALE and report.cause is StaleCause.BRIDGE_BUSY:
            return Decision(Action.NONE, "bridge busy catching up (heartbeat fresh): a restart would only start it over")
        return Decision(Action.NONE, report.status.value)
    if state is ProcessState.STARTING:
        return Decision(Action.NONE, f"bridge still starting; not acting yet on: {wants}")
    return _restart_or_give_up(wants, budget, now, for_file)
