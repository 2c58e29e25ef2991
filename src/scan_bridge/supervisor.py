"""The daemon's loop: one queue, one decider, the bridge process and the health check as its inputs.

After honcho's manager: the bridge's output readers, its exit waiter, the health-check thread and
stop requests only put typed messages on one queue; this loop alone changes state and acts. The
decisions themselves (restart or not, budget) are pure functions in :mod:`restart_policy`, the
classification in :mod:`.health_classify`; this module only wires them to processes and time. Its
inputs live beside it: :mod:`.bridge_process` (the child), :mod:`.bridge_output` (reading its
lines), :mod:`.health_ticker` (the check's thread); its state and outputs in :mod:`.daemon_status`.

Nothing here knows Prefect: the daemon flow passes a logger and a :class:`Publisher`, so the loop is
tested with plain logging and real processes, and runs under Prefect unchanged.
"""

from __future__ import annotations

import logging
import queue
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .bridge_output import (
    BRIDGE_EVENTS,
    announces_stop,
    bridge_event,
    bridge_line,
    bridge_record,
    crashed_reader_file,
    tail_text,
)
from .bridge_process import BridgeProcess, Exited, Line, Started
from .daemon_status import DaemonStatus, NullPublisher, Publisher, Publishers, status_changed
from .health_check import FreshnessChecker
from .health_classify import FreshnessReport
from .health_status import HealthStatus
from .health_ticker import HealthResult, HealthTicker
from .lease import Role
from .lease_elector import SteppedDown, TookOver
from .logs import CONSOLE_ONLY, printable
from .names import FENCED_EXIT_CODE
from .restart_policy import Action, Decision, ProcessState, RestartBudget, decide, describe_exit, settled_state
from .settings import DaemonSettings, env_var

__all__ = [  # the loop; and, under their old import path, the types it is wired with
    "BRIDGE_EVENTS",
    "DaemonStatus",
    "GaveUp",
    "HealthResult",
    "HealthTicker",
    "NullPublisher",
    "ProcessFactory",
    "Publisher",
    "Publishers",
    "StopRequest",
    "Supervisor",
    "bridge_event",
    "bridge_line",
    "bridge_record",
    "crashed_reader_file",
]

#: Makes the bridge process: ``(argv, env=..., events=..., pidfile=...)``; a fake one in the loop's unit tests.
ProcessFactory = Callable[..., BridgeProcess]

#: How long a stop caused by a signal looks for the bridge announcing it is stopping on its own (see _stop_bridge).
SELF_STOP_NOTICE_S = 0.5
#: How long a stop waits for the bridge's last lines once it is gone (its readers reach EOF at once, normally).
LAST_LINES_WAIT_S = 2.0

@dataclass(frozen=True, slots=True)
class StopRequest:
    reason: str


class GaveUp(Exception):
    """The restart budget is spent; the message names the restarts, the last exit and the last lines."""


class Supervisor:
    """Keeps one bridge process running; ``run()`` returns on :meth:`stop` or raises :class:`GaveUp`."""

    def __init__(
        self,
        settings: DaemonSettings,
        argv: Sequence[str],
        env: Mapping[str, str],
        *,
        logger: logging.Logger | logging.LoggerAdapter[Any],
        publisher: Publisher | None = None,
        pidfile: Path | None = None,
        start_grace_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        process_factory: ProcessFactory = BridgeProcess,
        elector: Any | None = None,
    ) -> None:
        """``elector`` (failover, a :class:`~scan_bridge.lease_elector.LeaseElector`): start as a standby and
        run the bridge only while this machine holds the lease; None: one machine, the bridge at once."""
        self.settings = settings
        self.argv = list(argv)
        self.env = dict(env)
        self.log = logger
        self.publisher = publisher or NullPublisher()
        self.pidfile = pidfile
        # The setting is the one home of the default (a second default here once disagreed: 10 vs 20 s).
        self.start_grace_s = settings.start_grace_s if start_grace_s is None else start_grace_s
        self.clock = clock
        self.process_factory = process_factory
        self.events: queue.Queue[Any] = queue.Queue()
        self.budget = RestartBudget.from_settings(settings)
        self.status = DaemonStatus()
        self.process: BridgeProcess | None = None
        self._restart_at: float | None = None
        self._restarted_for_file: str | None = None
        self._ticker: HealthTicker | None = None
        self._checks_unsent = 0  # health lines since the last one sent to Prefect's log
        self.elector = elector

    # -- public -------------------------------------------------------------------------------------

    def stop(self, reason: str = "stop requested") -> None:
        """Thread-safe: the loop stops the bridge and returns."""
        self.events.put(StopRequest(reason))

    def run(self) -> DaemonStatus:
        self.log.info(
            "Scan bridge daemon starting: health every %gs, stale after %gs, at most %d restarts in %gs, %gs apart",
            self.settings.health_interval_s,
            self.settings.stale_after_s,
            self.settings.max_restarts,
            self.settings.restart_window_s,
            self.settings.restart_delay_s,
        )
        self._ticker = HealthTicker(
            FreshnessChecker(self.settings),
            self.settings.health_interval_s,
            self.events.put,
            self._bridge_running,
            lambda: self.process.pid if self.process is not None else None,
        )
        reason, signalled = "stop requested", False
        try:
            if self.elector is None:
                self._start_bridge()
            else:
                self._stand_by()
            self._ticker.start()
            while True:
                try:
                    message = self.events.get(timeout=self._timeout())
                except queue.Empty:
                    continue  # a restart fell due; _timeout() starts it
                if isinstance(message, StopRequest):
                    reason = message.reason
                if self._handle(message):
                    return self.status
        except BaseException as exc:
            reason, signalled = _stop_reason(exc)
            raise
        finally:
            try:
                self._stop_bridge(reason, signalled)  # first: the ticker's stop may wait out a check in progress
            finally:
                if self.elector is not None:
                    self.elector.stop(release=True)  # only once the bridge is gone: never two writers
                self._ticker.stop()
                self._refresh_status()
                self.publisher.stopped(self.status, reason)

    # -- the loop -----------------------------------------------------------------------------------

    def _timeout(self) -> float | None:
        while True:
            if self._restart_at is None:
                return None
            remaining = self._restart_at - self.clock()
            if remaining > 0:
                return remaining
            self._restart_at = None
            self._start_bridge()

    def _handle(self, message: Any) -> bool:
        """Act on one message; True when the loop should end."""
        match message:
            case Line(stream=stream, text=text):
                event = bridge_event(text) if stream == "stdout" else None
                level, shown = bridge_line(text, stream)
                self.log.log(level, "[Bridge] %s", shown)
                crashed = crashed_reader_file(text)
                if crashed is not None:
                    self._on_crashed_reader(*crashed)
                if event is not None:
                    self.publisher.bridge_event(self.status, *event)
            case Started(pid=pid):
                self.log.info("Bridge started (pid %d)", pid)
            case Exited(pid=pid, returncode=code):
                if self.process is None or pid != self.process.pid:
                    return False
                self.status.last_exit_code = code
                if self.status.state in (ProcessState.STOPPING, ProcessState.BACKOFF):
                    if self._standing_by():
                        self.status.state = ProcessState.STOPPED
                    return False  # we stopped it ourselves
                self.status.state = ProcessState.EXITED
                if code == FENCED_EXIT_CODE and self.elector is not None:
                    # Not a crash: a newer epoch wrote latest. Restarting would only be fenced again; the
                    # elector's next renewal is refused and steps this daemon down (docs/high-availability.md).
                    self.status.state = ProcessState.STOPPED  # not EXITED: the next health check would restart it
                    self.log.warning("Bridge fenced: another machine holds a newer lease; not restarting it")
                    self._refresh_status()
                    return False
                self.log.warning("Bridge %s", describe_exit(code))
                self._act(decide(ProcessState.EXITED, budget=self.budget, now=self.clock(), returncode=code))
            case HealthResult(report=report, pid=pid):
                self._on_report(report, pid)
            case TookOver(epoch=epoch, reason=reason):
                self._took_over(epoch, reason)
            case SteppedDown(reason=reason):
                self._stepped_down(reason)
            case StopRequest():
                return True  # run() stops the bridge, and says so
        return False

    def _on_report(self, report: FreshnessReport, pid: int | None = None) -> None:
        previous = self.status.report
        self.status.report = report
        if self.process is not None and self.status.state is ProcessState.STARTING:
            assert self.process.started_monotonic is not None
            self.status.state = settled_state(
                self.status.state, self.process.started_monotonic, self.clock(), self.start_grace_s,
                beaten=report.heartbeat_pid == self.process.pid,  # its own heartbeat, not its predecessor's
            )
        level = logging.INFO if report.status is HealthStatus.HEALTHY else logging.WARNING
        # Every check to the console; to Prefect's log (a row kept for good) only a change and one line
        # per summary interval (counted in checks, so a late check never skips its turn): issue 13.
        self._checks_unsent += 1
        if status_changed(previous, report) or self._checks_unsent >= summary_every(self.settings):
            self._checks_unsent = 0
            self.log.log(level, "Health: %s", printable(report.headline))
        else:
            self.log.log(level, "Health: %s", printable(report.headline), extra=CONSOLE_ONLY)
        if self._standing_by():
            # The data is another machine's to keep fresh: a standby reports, never restarts anything.
            self._refresh_status()
            self.publisher.health(self.status, previous)
            return
        decision = decide(
            self.status.state,
            report,
            budget=self.budget,
            now=self.clock(),
            restart_on_any_stale=self.settings.restart_on_any_stale,
            restarted_for_file=self._restarted_for_file,
        )
        self._refresh_status()
        self.publisher.health(self.status, previous)
        current = self.process.pid if self.process is not None else None
        if decision.action is not Action.NONE and pid != current:
            # Begun before this bridge was started (or while it was being started: no pid yet), so a DOWN
            # it reports is about the previous one; acting on it would kill the new bridge.
            self.log.info("Not acting on a health check begun before bridge pid %s started: %s", current, printable(decision.reason))
            return
        if decision.action is not Action.NONE:
            self._act(decision)

    def _on_crashed_reader(self, file: str, reason: str) -> None:
        """A file crashed a bridge's reader; the bridge now skips it for good (it reports each such file once).

        A warning of the daemon's own (the scan is never pushed) and an event for automations. The
        crash itself was an exit like any other: restarted within the budget.
        """
        self.log.warning(
            "A scan file crashed the bridge's reader and is skipped for good (never pushed): %s", printable(file)
        )
        self._refresh_status()
        self.publisher.file_crashed_reader(self.status, file, reason)

    def _act(self, decision: Decision) -> None:
        decision = replace(decision, reason=printable(decision.reason))  # it may quote a file name
        self.status.last_decision = decision.reason
        now = self.clock()
        if decision.action is Action.RESTART:
            self.status.state = ProcessState.BACKOFF  # set first: the kill's Exited is ours, not a crash
            if self.process is not None and self.process.is_running():
                # Stuck (frozen, or alive but not pushing): SIGKILL works on a SIGSTOPped process too.
                self.process.kill()
            self.budget.record(now)
            self.status.restarts_total += 1
            self._restarted_for_file = getattr(decision, "for_file", None)
            self._restart_at = now + self.settings.restart_delay_s
            self.log.warning("Restarting the bridge in %gs: %s", self.settings.restart_delay_s, decision.reason)
            self._refresh_status()
            self.publisher.restarted(self.status, decision.reason)
        elif decision.action is Action.GIVE_UP:
            self.status.state = ProcessState.FATAL
            self._refresh_status()
            tail = tail_text(self.process) if self.process is not None else ""
            message = (
                f"Gave up on the bridge: {decision.reason}. "
                f"{self.status.restarts_total} restarts in all, last exit: {describe_exit(self.status.last_exit_code)}. "
                f"Last lines:\n{tail}"
            )
            self.log.error(message)
            self.publisher.gave_up(self.status, message)
            raise GaveUp(message)

    # -- failover (docs/high-availability.md) ----------------------------------------------------------

    def _standing_by(self) -> bool:
        return self.elector is not None and self.status.role is not Role.ACTIVE

    def _bridge_running(self) -> bool | None:
        """For the health check: None while standing by (the running bridge is another machine's)."""
        if self._standing_by():
            return None
        return self.process is not None and self.process.is_running()

    def _stand_by(self) -> None:
        assert self.elector is not None
        self.status.role = Role.STANDBY
        self.elector.on_took_over = lambda epoch, reason: self.events.put(TookOver(epoch, reason))
        self.elector.on_stepped_down = lambda reason: self.events.put(SteppedDown(reason))
        self.log.info(
            "Standing by as machine %r: the bridge starts when this machine holds the lease (lease %gs, renewed every %gs)",
            self.settings.machine_name, self.settings.lease_s, self.settings.lease_renew_s,
        )
        self.elector.start()

    def _took_over(self, epoch: int, reason: str) -> None:
        """This machine holds the lease: start the bridge under its epoch. Not a restart: the budget is untouched."""
        from datetime import UTC, datetime

        self.status.role, self.status.epoch = Role.ACTIVE, epoch
        self.status.takeovers_total += 1
        self.status.active_since = datetime.now(UTC).isoformat(timespec="seconds")
        self.env[env_var("lease_epoch")] = str(epoch)
        self.env[env_var("machine_name")] = self.settings.machine_name
        self._restart_at = None
        self.log.warning("Took over as the active machine %r (lease epoch %d): %s; starting the bridge",
                         self.settings.machine_name, epoch, printable(reason))
        if self.process is not None and self.process.is_running():
            self.status.state = ProcessState.STOPPING
            self.process.kill()  # a bridge of an earlier epoch, fenced or not: never two of ours
        self._start_bridge()
        self._refresh_status()
        self.publisher.took_over(self.status, reason)

    def _stepped_down(self, reason: str) -> None:
        """This machine lost the lease: SIGKILL the bridge (it must write nothing more), stand by again."""
        self.status.role, self.status.epoch, self.status.active_since = Role.STANDBY, None, None
        self._restart_at = None
        killed = ""
        if self.process is not None and self.process.is_running():
            self.status.state = ProcessState.STOPPING  # its Exited is ours, not a crash
            killed = f" (bridge pid {self.process.pid} killed)"
            self.process.kill()
        else:
            self.status.state = ProcessState.STOPPED
        self.log.warning("Stepped down to standby%s: %s", killed, printable(reason))
        self._refresh_status()
        self.publisher.stepped_down(self.status, reason)

    # -- the bridge process -------------------------------------------------------------------------

    def _start_bridge(self) -> None:
        self.process = self.process_factory(self.argv, env=self.env, events=self.events, pidfile=self.pidfile)
        self.process.start()
        self.status.state = ProcessState.STARTING
        self._refresh_status()

    def _stop_bridge(self, reason: str, signalled: bool = False) -> None:
        """Stop a running bridge (SIGTERM, then SIGKILL after ``stop_grace_s``) and log its last lines.

        The loop no longer reads the queue here, so this forwards the bridge's lines itself: without
        that its own "Stopping"/"Stopped" lines were lost. When the daemon stops because of a signal
        (``signalled``), the bridge has often had the same one: Ctrl+C in a terminal and a Prefect
        worker's cancel signal the whole process group. It is then stopping already, and a second
        signal can land after its interpreter has restored the default handlers on its way out,
        which kills it ("killed by SIGTERM" instead of its exit code 0). So for a moment we look for
        its "Stopping (...)" line, and if it comes we only wait for it (escalating after the grace).
        """
        process = self.process
        if process is None or process.pid is None or not process.is_running():
            return
        pid = process.pid
        if self.status.state is not ProcessState.FATAL:
            self.status.state = ProcessState.STOPPING
        self.log.info("Stopping the bridge (%s)", reason)
        grace = self.settings.stop_grace_s
        if signalled and self._forward_lines(
            pid, SELF_STOP_NOTICE_S, lambda m: announces_stop(m, pid) or (isinstance(m, Exited) and m.pid == pid)
        ):
            process.wait(grace)
        code = process.stop(grace)  # signals only if still running
        self._forward_lines(pid, LAST_LINES_WAIT_S, lambda m: isinstance(m, Exited) and m.pid == pid)
        self.log.info("Bridge stopped (%s)", describe_exit(code))

    def _forward_lines(self, pid: int, timeout_s: float, until: Callable[[Any], bool]) -> bool:
        """Log the queued lines of bridge ``pid`` for up to ``timeout_s``; True as soon as ``until(message)``."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                message = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return False
            if isinstance(message, Line) and message.pid == pid:
                self._handle(message)
            if until(message):
                return True

    def _refresh_status(self) -> None:
        now = self.clock()
        self.status.pid = self.process.pid if self.process is not None else None
        self.status.uptime_s = self.process.uptime_s() if self.process is not None else None
        self.status.restarts_in_window = self.budget.used(now)


def summary_every(settings: DaemonSettings) -> int:
    """Health checks per health line sent to Prefect's log while nothing changes (at least 1)."""
    return max(1, round(settings.summary_interval_s / settings.health_interval_s))


def _stop_reason(exc: BaseException) -> tuple[str, bool]:
    """Why the loop ended on an exception, for the log; and whether a signal caused it."""
    if isinstance(exc, KeyboardInterrupt):
        return "SIGINT", True
    number = getattr(exc, "signal", None)  # Prefect's TerminationSignal (SIGTERM), without importing Prefect
    if isinstance(number, int):
        try:
            return signal.Signals(number).name, True
        except ValueError:
            return f"signal {number}", True
    if isinstance(exc, GaveUp):
        return "gave up", False
    return f"{type(exc).__name__}: {exc}", False


