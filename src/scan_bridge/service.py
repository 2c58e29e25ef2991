"""The bridge: every complete Arrow scan in the watched folder goes into Hazelcast, none is lost.

Shape (after honcho's manager): the file watcher, the Hazelcast lifecycle listener, the connector
thread and the signal handlers only put typed messages on one queue; a single loop reads them and
decides. Nothing else touches the bridge's state, so there are no locks and the order of events
is the order of decisions.

Why nothing is lost: files on disk are the source of truth, and every write is idempotent (history
is keyed by the scan's time, :mod:`.ordering`). On start and after every reconnect the bridge *reconciles*: it lists the
newest files (as many as history retains), pushes the ones Hazelcast lacks, oldest first, batched.
While the cluster is away the bridge keeps watching but pushes nothing; the reconcile on return
catches up. A ``kill -9`` at any moment therefore costs at most a second push of the same scans.

A frozen member (SIGSTOP, or a network that silently drops packets) looks connected to the client
but never answers: every call has a deadline (``hazelcast_call_timeout_s``, see :mod:`.hzcall`); the
first call that misses it marks the member *unresponsive* (logged once, naming the address), and
from then on nothing is pushed and the heartbeat write doubles as a probe: when one is answered the
member has thawed, and when the client reconnects (to a thawed or a replacement member) the usual
reconcile catches up.
"""

from __future__ import annotations

import logging
import os
import queue
import signal
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from hazelcast.future import Future
from pydantic import ValidationError
from pydantic_settings import SettingsError

from .discovery import FolderTree, UnreadableFolder, newest_files, newest_first
from .document import format_timestamp
from .fencing import Fenced
from .heap import release_free_memory
from .hzcall import CLOSE_DEADLINE_S, CallAbandoned, CallTimedOut
from .log_record import BridgeRecord
from .logs import fields, setup_logging
from .names import FENCED, FENCED_EXIT_CODE, NOT_READABLE, READABLE_AGAIN, STOPPING_PREFIX
from .ordering import ScanId, is_newer, resolve_fold
from .read_guard import ReadGuard
from .scanfile import ScanFileDenied, ScanFileIncomplete, ScanFileRejected, ScanLimits, ScanRecord, read_scan, restamped
from .settings import BridgeSettings, command_line_secret_warnings, describe_settings_error
from .sink import PendingPush, ScanSink, SinkUnavailable
from .watcher import DirSeen, FileSeen, Overflow, ScanWatcher

log = logging.getLogger("scan_bridge.service")

RESCAN_FILES = 50  # the periodic rescan (every rescan_interval_s) looks at this many of the newest files
RETRY_FIRST_S = 0.01
RETRY_MAX_S = 0.25
REMEMBERED_PATHS = 200_000  # rejected files: grows only with rejections
NOT_READABLE_RETRY_MAX_S = 5.0  # longest wait between reconciles while scans may not be read (see Bridge._look_again)


def remembered_paths(retention: int) -> int:
    """How many files read (or known present) the bridge remembers, to ignore further events for them.

    Only the newest files are ever named again: by the rescan (newest ``RESCAN_FILES``), by the
    reconcile (newest ``retention``) and by the watcher (files being written). Twice the larger of
    those is enough; remembering 200,000 (as before) cost ~0.55 KB a path, so at 5 scans/s the
    bridge's RSS grew ~8 MB an hour for 11 hours, to ~110 MB (issue 17).
    """
    return 2 * max(retention, RESCAN_FILES)
#: A scan stamped further than this from its file's modification time gets one warning (per run):
#: time-zone offsets are whole quarter hours, so a wrong ``scanner_timezone`` is at least 15 min off.
CLOCK_MISMATCH_S = 15 * 60
SHUTDOWN_DEADLINE_S = 4.5


# -- messages on the loop's queue ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SinkReady:
    sink: ScanSink
    generation: int = 0


@dataclass(frozen=True, slots=True)
class SinkFailed:
    reason: str


@dataclass(frozen=True, slots=True)
class ClusterState:
    """A lifecycle state of the Hazelcast client: CONNECTED, DISCONNECTED, SHUTDOWN, ...

    ``generation`` tells which connector's client it came from: a client given up on (it did not
    connect in time) may still report states, which must not be taken for the current one's.
    """

    state: str
    generation: int = 0


@dataclass(frozen=True, slots=True)
class Stop:
    reason: str


Message = FileSeen | DirSeen | Overflow | SinkReady | SinkFailed | ClusterState | Stop


@dataclass(slots=True)
class _Pending:
    first_seen: float
    next_try: float
    delay: float = RETRY_FIRST_S


@dataclass(slots=True)
class Counters:
    pushed_total: int = 0
    rejected_total: int = 0
    pushed_since_summary: int = 0
    rejected_since_summary: int = 0
    catchups: int = 0


class Connector:
    """Connects in its own thread, so that a stop request is heard while a connection attempt waits."""

    def __init__(
        self,
        settings: BridgeSettings,
        post: Callable[[Message], None],
        generation: int = 0,
        abandon: Callable[[], bool] = lambda: False,
    ) -> None:
        self._settings = settings
        self._post = post
        self.generation = generation
        self._abandon = abandon
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self._thread = threading.Thread(target=self._run, name="hazelcast-connector", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        generation = self.generation
        while not self._stop.is_set():
            try:
                sink = ScanSink(
                    self._settings,
                    retention=self._settings.retention,
                    lifecycle_listener=lambda state: self._post(ClusterState(str(state), generation)),
                    abandon=lambda: self._stop.is_set() or self._abandon(),
                    epoch=self._settings.lease_epoch,
                    machine=self._settings.machine_name,
                )
            except SinkUnavailable as exc:
                self._post(SinkFailed(str(exc)))
                self._stop.wait(1.0)
                continue
            if self._stop.is_set():
                sink.close()
                return
            self._post(SinkReady(sink, generation))
            return

    def stop(self) -> None:
        self._stop.set()


class Bridge:
    """The loop. ``run()`` returns the process exit code."""

    def __init__(self, settings: BridgeSettings, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self.queue: queue.SimpleQueue[Message] = queue.SimpleQueue()
        self.counters = Counters()
        self.sink: ScanSink | None = None
        self.connected = False
        self._stop_requested = False  # a plain flag: set from a signal handler, read by waits on the cluster
        self._generation = 0
        self._connector = Connector(settings, self.queue.put, self._generation, self._abandon)
        # A member that stopped answering (frozen, silent network): since when (logged once per episode),
        # whether pushes are held, and the heartbeat write that serves as the probe.
        self._silent_since: float | None = None
        self._holding = False
        self._heartbeat_future: Future[Any] | None = None
        self._heartbeat_sent = 0.0
        self._idle_at = clock()  # when the loop last waited for a message: a heartbeat between files after that is "busy"
        self._watcher: ScanWatcher | None = None
        # Scan files are named by `str` paths throughout, never `pathlib.Path` (which interns every
        # part of every path: the bridge's one RSS step in an hour, issue 17; see discovery's docstring).
        self._pending: dict[str, _Pending] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()  # read or rejected: ignore further events
        self._rejected: OrderedDict[str, None] = OrderedDict()  # bad for good: not even a reconcile reads them again
        self._stopping = False
        self._exit_code = 0  # FENCED_EXIT_CODE once fenced (failover)
        self._guard: ReadGuard | None = None  # opened by run(): remembers the file being read across a crash
        self._suspects: set[str] = set()  # files a predecessor died reading once: forgiven when read to the end
        self._limits = ScanLimits(settings.max_scan_rows, settings.max_scan_columns, settings.max_document_bytes)
        self._zone = settings.scanner_zone
        # Files read, with the mtime read at and their history key (time): the reconcile skips reading
        # a file whose key the cluster holds. (The number in a file name says nothing since keys are times.)
        self._keys: OrderedDict[str, tuple[float, int]] = OrderedDict()
        self._newest_read: ScanId | None = None  # the newest scan read: reference for ambiguous local times
        self._clock_warned = False
        self._reconcile_due: float | None = None
        self._reconcile_delay = 1.0
        # Scans we may not read (a folder's or file's rights): the folders said so far in this episode,
        # the back-off of the reconciles that look again, and how many denials there were (see _not_readable).
        self._not_readable_said: dict[str, str] = {}
        self._not_readable_delay = 1.0
        self._denials = 0
        self._last_unavailable_log = -1e9
        now = clock()
        self._heartbeat_due = now
        self._summary_due = now + settings.summary_interval_s
        self._rescan_due = now + settings.rescan_interval_s

    # -- the loop -----------------------------------------------------------------------------------

    def run(self) -> int:
        s = self.settings
        log.info(
            "Starting scan bridge on %s (cluster %r at %s)",
            s.watch_dir,
            s.hazelcast_cluster_name,
            ",".join(s.hazelcast_members),
            extra=fields(watch_dir=str(s.watch_dir), pid=os.getpid()),
        )
        try:
            self._open_guard()
        except OSError as exc:
            log.error("Cannot use the state folder %s (%s); set SCAN_BRIDGE_STATE_DIR", s.state_dir, exc)
            return 2
        self._connector.start()
        while not self._stopping:
            self._idle_at = self.clock()
            timeout = max(0.0, self._next_due() - self._idle_at)
            try:
                message = self.queue.get(timeout=timeout)
            except queue.Empty:
                message = None
            while message is not None:
                self._handle(message)
                try:
                    message = self.queue.get_nowait()
                except queue.Empty:
                    message = None
            self._tick()
        self._shutdown()
        return self._exit_code

    def request_stop(self, reason: str) -> None:
        """Thread- and signal-safe: ask the loop to finish the file in hand and exit.

        A wait on the cluster in progress gives up within 0.1 s (files on disk are caught up at the next start).
        """
        self._stop_requested = True
        self.queue.put(Stop(reason))

    def _abandon(self) -> bool:
        return self._stop_requested

    @property
    def usable(self) -> bool:
        """Connected, and the member answers: pushes go out (else the reconcile on return catches up)."""
        return self.sink is not None and self.connected and not self._holding

    def _next_due(self) -> float:
        due = [self._heartbeat_due, self._summary_due, self._rescan_due]
        if self._pending:
            due.append(min(p.next_try for p in self._pending.values()))
        if self._reconcile_due is not None and self.usable:
            due.append(self._reconcile_due)  # while disconnected or unresponsive, the return itself reconciles
        return min(due)

    def _handle(self, message: Message) -> None:
        match message:
            case FileSeen(path):
                if path not in self._finished:
                    pending = self._pending.get(path)
                    if pending is None:
                        now = self.clock()
                        self._pending[path] = _Pending(first_seen=now, next_try=now)
                    else:
                        pending.next_try = self.clock()
            case DirSeen(path):
                # Files that landed before the folder's watch did (a folder moved in arrives full);
                # only the newest `retention` can matter, oldest first like a catch-up.
                for file in reversed(newest_files(path, self.settings.retention, tree=FolderTree(path))):
                    self._handle(FileSeen(file))
            case Overflow(reason):
                log.warning("File events may have been lost (%s); reconciling from disk", reason,
                            extra=fields(reason=reason))
                self._reconcile_due = self.clock()
            case SinkReady(sink, generation):
                if generation != self._generation or self._stopping:
                    sink.close()
                    return
                self.sink = sink
                self.connected = True
                self._holding, self._heartbeat_future = False, None
                log.info(
                    "Connected to Hazelcast",
                    extra=fields(cluster=self.settings.hazelcast_cluster_name, members=self.settings.hazelcast_members),
                )
                # At once: the health check must not read the previous bridge's heartbeat. Busy: the
                # reconcile follows, and listing the folder comes before its first file's heartbeat.
                self._heartbeat(busy=True)
                # The watch starts before the first reconcile: files that land while it lists and
                # pushes arrive as events. Started after it, only the newest 50 of them were looked
                # at, and a catch-up of 16 s at 5 scans/s lost 30 scans for good (chaos harness, issue 10).
                if self._watcher is None:
                    self._start_watcher(look_back=False)  # the reconcile right after lists everything
                self._reconcile()
                self._silence_over_if_through()
            case SinkFailed(reason):
                now = self.clock()
                if now - self._last_unavailable_log >= 60.0:
                    log.error("%s; still trying", reason)
                    self._last_unavailable_log = now
            case ClusterState(state, generation):
                if generation == self._generation:
                    self._on_cluster_state(state)
            case Stop(reason):
                log.info("%s%s)", STOPPING_PREFIX, reason)  # the daemon waits for this line (bridge_output)
                self._stopping = True

    def _on_cluster_state(self, state: str) -> None:
        if self.sink is None:
            return
        if state == "DISCONNECTED" and self.connected:
            self.connected = False
            log.warning("Lost connection to Hazelcast; watching on, will catch up when it returns")
        elif state == "CONNECTED" and not self.connected:
            self.connected = True
            self._holding, self._heartbeat_future = False, None
            log.info("Reconnected to Hazelcast")
            self._heartbeat(busy=True)  # at once: the cluster may be a new, empty one; the reconcile follows
            self._reconcile()
            self._silence_over_if_through()
        elif state == "SHUTDOWN" and not self._stopping:
            # The client gives up reconnecting after the connect timeout; start a new one.
            self.connected = False
            self.sink = None
            self._heartbeat_future = None  # a silent member stays silent until the new client connects
            log.warning("Hazelcast client gave up reconnecting; connecting anew")
            self._new_connector()

    def _new_connector(self) -> None:
        self._connector.stop()
        self._generation += 1
        self._connector = Connector(self.settings, self.queue.put, self._generation, self._abandon)
        self._connector.start()

    # -- a member that stops answering ---------------------------------------------------------------

    @property
    def _members(self) -> str:
        return ",".join(self.settings.hazelcast_members)

    def _member_silent(self, exc: BaseException) -> None:
        """A call missed its deadline: hold pushes, and probe with the heartbeat until the member answers.

        Logged once per episode: with one member of several frozen, the heartbeat's partition may
        well answer while pushes still time out; the episode ends only when a reconcile gets through.
        """
        now = self.clock()
        self._holding = True
        if self._silent_since is None:
            self._silent_since = now
            log.warning(
                "Hazelcast member at %s does not answer (%s); frozen or network gone? "
                "Watching on and queueing; will catch up from disk when it answers",
                self._members,
                exc,
                extra=fields(members=self.settings.hazelcast_members, error=str(exc)),
            )
        self._reconcile_due = now + self._reconcile_delay  # the earliest retry once a probe is answered
        self._reconcile_delay = min(self._reconcile_delay * 2, 30.0)

    def _silence_over_if_through(self) -> None:
        """After a reconcile: if it got through (nothing left due), the member answers again; say so once."""
        if self._silent_since is not None and self._reconcile_due is None:
            silent = self.clock() - self._silent_since
            self._silent_since = None
            log.info(
                "Hazelcast member at %s answers again (silent for %.1f s)", self._members, silent,
                extra=fields(members=self.settings.hazelcast_members, silent_s=round(silent, 1)),
            )

    def _watch_heartbeat(self, now: float, *, may_reconcile: bool = True) -> None:
        """The heartbeat write is the probe: unanswered past the call timeout = member silent; answered = try again.

        Between files (``may_reconcile`` False) an answered probe is left for the loop's next tick:
        the reconcile it starts must not run inside the read or catch-up in progress.
        """
        future = self._heartbeat_future
        if future is None:
            return
        if future.done():
            if self._holding and not may_reconcile:
                return
            self._heartbeat_future = None  # the next heartbeat tick sends the next probe
            if future.exception() is not None:
                log.debug("heartbeat failed: %s", future.exception())
            elif self._holding and self.connected and now >= (self._reconcile_due or now):
                self._holding = False
                self._reconcile()
                self._silence_over_if_through()
        elif (
            self.connected
            and not self._holding
            and now - self._heartbeat_sent >= self.settings.hazelcast_call_timeout_s
        ):
            self._member_silent(CallTimedOut(f"heartbeat: no answer within {self.settings.hazelcast_call_timeout_s:g} s"))

    def _tick(self) -> None:
        now = self.clock()
        self._watch_heartbeat(now)
        due = [p for p, pending in self._pending.items() if pending.next_try <= now]
        if len(due) > self.settings.retention:
            due = self._within_retention(due)
        if due:
            # The live path batches like a catch-up: a folder of thousands moved in at once (or a
            # burst after an overflow) is read and pushed batch_size at a time, one batch in flight,
            # and scans below the retention floor are not pushed to be trimmed at once.
            if self.usable and not self._stop_requested:
                self._push_from_disk(due, set())
            else:
                # Held (no cluster, or a silent member): read on, so that a bad file is rejected now;
                # the reconcile on return pushes the good ones from disk.
                self._reconcile_due = self._reconcile_due or now
                for path in due:
                    if path in self._pending:
                        self._try(path, now)
            # What is left (a failed push) is not read again now: the reconcile on reconnect (or the
            # one the failure scheduled) pushes it from disk.
            for path in due:
                pending = self._pending.get(path)
                if pending is not None and pending.next_try <= now:
                    del self._pending[path]
        if self._reconcile_due is not None and now >= self._reconcile_due and self.usable:
            self._reconcile()
        if now >= self._heartbeat_due:
            self._heartbeat_due = now + self.settings.heartbeat_interval_s
            self._heartbeat()
        if now >= self._summary_due:
            self._summary_due = now + self.settings.summary_interval_s
            self._summary()
        if now >= self._rescan_due:
            self._rescan_due = now + self.settings.rescan_interval_s
            release_free_memory()  # once a minute: the RSS follows the live heap (heap.py, issue 17)
            for path in newest_files(self.settings.watch_dir, RESCAN_FILES):
                if path not in self._finished and path not in self._pending:
                    self._handle(FileSeen(path))

    def _within_retention(self, due: list[str]) -> list[str]:
        """Of more files than history keeps, those that can be kept: the newest ``retention``, newest
        as everywhere (discovery.newest_first: modification time, never the number alone). The others
        would be trimmed as soon as pushed; they are dropped unread, as a catch-up never lists them."""
        ordered = newest_first(due)
        for path in ordered[self.settings.retention :]:
            del self._pending[path]
        return list(reversed(ordered[: self.settings.retention]))  # oldest first, like a catch-up

    # -- files ----------------------------------------------------------------------------------------

    def _open_guard(self) -> None:
        """Open the reading marker; a file a previous bridge died reading is rejected now, once, and skipped for good."""
        self._guard = ReadGuard(self.settings.state_dir, self.settings.watch_dir)
        crashed = self._guard.recover()
        for known in self._guard.crashed():
            if known not in crashed:
                self._remember(known.path)
                self._rejected[known.path] = None
        for file in crashed:
            self._reject(
                file.path,
                f"{file.deaths} bridges died while reading it (a crash in native code); skipped from now on",
                crashed_reader=True,
            )
        for file in self._guard.suspects:
            log.warning(
                "The previous bridge died while reading %s (killed, or a crash in native code); reading it once more",
                file.path,
                extra=fields(file=str(file.path)),
            )
        self._suspects = {file.path for file in self._guard.suspects}

    def _try(self, path: str, now: float) -> ScanRecord | None:
        """Read one file: a record, or None when not yet complete (retried with back-off until the deadline) or bad for good."""
        self._beat_while_busy()
        pending = self._pending[path]
        if self._guard is not None:
            self._guard.begin(path)
        try:
            record = read_scan(path, self.settings.max_file_bytes, self._limits, self._zone)
        except ScanFileDenied as exc:
            del self._pending[path]  # not the file's fault: a reconcile reads it once it may
            self._not_readable(os.path.dirname(path), f"{os.path.basename(path)}: {exc.reason}")
            return None
        except ScanFileIncomplete as exc:
            if not os.path.lexists(path):  # a temp file renamed away, or the scanner removed it: nothing to do
                del self._pending[path]
            elif now - pending.first_seen >= self.settings.complete_deadline_s:
                self._reject(path, f"{exc} (still incomplete after {self.settings.complete_deadline_s:g} s)")
            else:
                pending.next_try = now + pending.delay
                pending.delay = min(pending.delay * 2, RETRY_MAX_S)
            return None
        except ScanFileRejected as exc:
            if os.path.lexists(path):
                self._reject(path, exc.reason)
            else:
                del self._pending[path]
            return None
        finally:
            if self._guard is not None:
                self._guard.end()
        del self._pending[path]
        self._remember(path)
        if path in self._suspects and self._guard is not None:
            self._suspects.discard(path)
            self._guard.forgive(path)
        return self._place(record)

    def _place(self, record: ScanRecord) -> ScanRecord:
        """Settle the scan's time: the reading of an ambiguous local time (by number against the newest
        scan known), one warning per run for a time far from the file's mtime; remember its key."""
        if record.timestamp_alt is not None:
            reference = self._newest_read
            latest = self.sink.latest if self.sink is not None else None
            if latest is not None and is_newer(latest, reference):
                reference = latest
            record = restamped(record, resolve_fold(record.timestamp, record.timestamp_alt, record.scan_number, reference))
        if is_newer(record.scan_id, self._newest_read):
            self._newest_read = record.scan_id
        self._keys[record.path] = (record.mtime, record.key)
        self._keys.move_to_end(record.path)
        if len(self._keys) > remembered_paths(self.settings.retention):
            self._keys.popitem(last=False)
        off = record.timestamp.timestamp() - record.mtime
        if abs(off) > CLOCK_MISMATCH_S and not self._clock_warned:
            self._clock_warned = True
            direction = "after" if off > 0 else "before"
            log.warning(
                "%s (#%d) is stamped %s, %.1f h %s its file was written; is SCAN_BRIDGE_SCANNER_TIMEZONE "
                "right (now %s)? (Or the scanner's clock is off, or an old file was copied in.) Said once",
                record.path, record.scan_number, format_timestamp(record.timestamp), abs(off) / 3600, direction,
                self.settings.scanner_timezone,
                extra=fields(event="clock_mismatch", file=str(record.path), offset_s=round(off, 1),
                             scanner_timezone=self.settings.scanner_timezone),
            )
        return record

    def _reject(self, path: str, reason: str, *, crashed_reader: bool = False) -> None:
        """Count and log a file that is bad for good; ``fields.event`` is ``file_rejected`` for every one of them,
        and ``fields.crashed_reader`` is true for a file a bridge died reading (the daemon makes that an event)."""
        self._pending.pop(path, None)
        self._remember(path)
        self._rejected[path] = None
        if len(self._rejected) > REMEMBERED_PATHS:
            self._rejected.popitem(last=False)
        self.counters.rejected_total += 1
        self.counters.rejected_since_summary += 1
        log.warning(
            "Rejected %s: %s",
            path,
            reason,
            extra=fields(**BridgeRecord.rejected_fields(path, reason, crashed_reader=crashed_reader)),
        )

    def _remember(self, path: str) -> None:
        self._finished[path] = None
        self._finished.move_to_end(path)  # read again (a rewritten file): now among the newest remembered
        if len(self._finished) > remembered_paths(self.settings.retention):
            self._finished.popitem(last=False)

    # -- Hazelcast --------------------------------------------------------------------------------

    def _submit(self, records: list[ScanRecord]) -> PendingPush | None:
        if not self.usable or self._stop_requested:
            self._reconcile_due = self._reconcile_due or self.clock()
            return None  # nothing lost: the reconcile on reconnect pushes what is on disk
        assert self.sink is not None
        log.debug("pushing %d scans (#%d..#%d)", len(records), records[0].scan_number, records[-1].scan_number,
                  extra=fields(put_all=len(records)))
        try:
            return self.sink.submit(records)
        except Exception as exc:
            self._push_failed(exc)
            return None

    def _finish(self, pending: PendingPush) -> bool:
        try:
            pending.wait()
        except Exception as exc:
            self._push_failed(exc)
            return False
        self.counters.pushed_total += len(pending)
        self.counters.pushed_since_summary += len(pending)
        return True

    def _push_failed(self, exc: BaseException) -> None:
        if isinstance(exc, CallAbandoned):
            return  # stopping: what was not pushed is caught up at the next start
        if isinstance(exc, Fenced):
            self._fenced(exc)
            return
        if isinstance(exc, CallTimedOut):
            self._member_silent(exc)
            return
        if self._reconcile_due is None:
            # One line: a member's error text can be a whole Java stack trace (kept for debug level).
            text = (str(exc).strip().splitlines() or [""])[0][:300]
            log.warning(
                "Push to Hazelcast failed (%s: %s); will catch up from disk", type(exc).__name__, text,
                extra=fields(error=text),
            )
            log.debug("push failure in full", exc_info=exc)
        self._reconcile_due = self.clock() + self._reconcile_delay
        self._reconcile_delay = min(self._reconcile_delay * 2, 30.0)

    def _fenced(self, exc: Fenced) -> None:
        """Another machine holds a newer lease (failover): write nothing more, exit with FENCED_EXIT_CODE."""
        if self._exit_code != FENCED_EXIT_CODE:
            log.error("Fenced: %s", exc, extra=fields(event=FENCED, epoch=self.settings.lease_epoch))
        self._exit_code = FENCED_EXIT_CODE
        self._stop_requested = True  # every wait on the cluster gives up at once
        self._stopping = True

    def _reconcile(self) -> None:
        """Push every complete scan on disk that the cluster lacks (within retention), oldest first."""
        if not self.usable or self._stop_requested:
            return
        assert self.sink is not None
        started = time.perf_counter()
        try:
            present = self.sink.refresh()
        except Exception as exc:
            self._push_failed(exc)
            return
        unreadable: list[UnreadableFolder] = []
        denials = self._denials
        candidates = newest_files(self.settings.watch_dir, self.settings.retention, unreadable=unreadable)
        missing = []
        for path in reversed(candidates):  # oldest first
            if self._known_present(path, present):
                self._remember(path)
            else:
                missing.append(path)
        # The newest first, then the rest oldest first: each batch moves latest to its newest scan, so
        # a catch-up of several batches into an empty cluster (a member restarted) used to walk latest
        # through old scans (#200, #400, ...) after consumers had seen a newer one (chaos harness, issue 10).
        missing = missing[-1:] + missing[:-1]
        pushed = self._push_from_disk(missing, present)
        if pushed is None:
            return
        self._reconcile_due = None
        self._reconcile_delay = 1.0
        if pushed:
            self.counters.catchups += 1
            log.info(
                "[OK] Caught up %d scans from disk in %.1f s. Latest: #%s",
                pushed,
                time.perf_counter() - started,
                self.sink.latest_number,
                extra=fields(pushed=pushed, latest=self.sink.latest_number),
            )
        for folder in unreadable:
            self._not_readable(folder.path, folder.reason)
        if self._denials != denials:
            self._look_again()  # a file of this pass was denied (its _not_readable ran before the reset above)
        elif self._not_readable_said:
            folders = ", ".join(self._not_readable_said)
            log.info("[OK] Scans readable again in %s; caught up", folders,
                     extra=fields(event=READABLE_AGAIN, folders=list(self._not_readable_said)))
            self._not_readable_said.clear()
            self._not_readable_delay = 1.0

    def _not_readable(self, folder: str, reason: str) -> None:
        """Scans we may not read (``chmod``, a mount's rights): one warning per folder, then a reconcile
        with back-off until they are readable (:meth:`_look_again`). Never a rejection: the scan is fine, only its rights
        are not, and rejecting it (or forgetting its event) lost it until the next restart (issue 10)."""
        self._denials += 1
        if folder not in self._not_readable_said:
            self._not_readable_said[folder] = reason
            log.warning("Cannot read scans in %s (%s); will catch up from disk once they are readable", folder, reason,
                        extra=fields(event=NOT_READABLE, folder=folder, reason=reason))
        self._look_again()

    def _look_again(self) -> None:
        """The next reconcile after a denial: 1, 2, 4, 5, 5 ... s apart while the scans stay out of reach.

        Capped at NOT_READABLE_RETRY_MAX_S, not the 30 s of a failing cluster: the listing of a
        folder that refuses is cheap, and the chaos run's catch-ups after the rights came back took
        up to 30.7 s with a 30 s cap.
        """
        due = self.clock() + self._not_readable_delay
        if self._reconcile_due is None or due < self._reconcile_due:
            self._reconcile_due = due
            self._not_readable_delay = min(self._not_readable_delay * 2, NOT_READABLE_RETRY_MAX_S)

    def _known_present(self, path: str, present: set[int]) -> bool:
        """True when this process read ``path`` (unchanged since) and the cluster holds its key: no need to read it again."""
        cached = self._keys.get(path)
        if cached is None or cached[1] not in present:
            return False
        try:
            return os.stat(path).st_mtime == cached[0]
        except OSError:
            return False

    def _push_from_disk(self, paths: Iterable[str], present: set[int]) -> int | None:
        """Read and push in batches, one batch in flight while the next is read (catch-up and live path).

        Returns how many were pushed, or None if the cluster failed us (the caller retries later).
        """
        batch: list[ScanRecord] = []
        in_flight: PendingPush | None = None
        pushed = 0
        now = self.clock()
        floor = self.sink.retention_floor() if self.sink else None
        for path in paths:
            if path in self._rejected:
                continue
            self._pending.setdefault(path, _Pending(first_seen=now, next_try=now))
            record = self._try(path, now)
            if record is None:
                continue
            if record.key in present or (floor is not None and record.key < floor):
                continue
            batch.append(record)
            if len(batch) < self.settings.batch_size:
                continue
            if in_flight is not None:
                if not self._finish(in_flight):
                    return None
                pushed += len(in_flight)
            in_flight = self._submit(batch)
            if in_flight is None:
                return None
            batch = []
        final = self._submit(batch) if batch else None
        if batch and final is None:
            return None
        for pending in (in_flight, final):
            if pending is not None:
                if not self._finish(pending):
                    return None
                pushed += len(pending)
        return pushed

    def _beat_while_busy(self) -> None:
        """Between files: the heartbeat when it is due, also in the middle of a long catch-up or burst.

        The loop's tick writes it only between messages, and a catch-up of many (or large) files can
        outlast the health check's ``heartbeat_stale_after_s``: the daemon would restart a busy bridge
        as stuck, and the next one would read the same files again. It is written by the loop itself,
        not by a timer thread, so a loop that is stuck (in one file, in a call, SIGSTOPped) stops
        beating as before. ``busy`` says the loop has worked without a break for a heartbeat interval
        or more: the health check then expects files on disk newer than Hazelcast's scan.
        """
        now = self.clock()
        if now < self._heartbeat_due:
            return
        self._heartbeat_due = now + self.settings.heartbeat_interval_s
        self._watch_heartbeat(now, may_reconcile=False)
        self._heartbeat(busy=now - self._idle_at >= self.settings.heartbeat_interval_s)

    def _heartbeat(self, busy: bool = False) -> None:
        """Write the heartbeat without waiting; one at a time, so a silent member collects no pile of them."""
        if self.sink is None or not self.connected or self._heartbeat_future is not None or self._exit_code:
            return  # (fenced: this machine writes nothing more, not even its heartbeat)
        try:
            self._heartbeat_future = self.sink.heartbeat(
                connected=self.connected,
                pushed_total=self.counters.pushed_total,
                rejected_total=self.counters.rejected_total,
                busy=busy,
                member_silent=self._holding,
            )
            self._heartbeat_sent = self.clock()
        except Exception as exc:  # never let the heartbeat take the loop down
            log.debug("heartbeat failed: %s", exc)

    def _summary(self) -> None:
        c = self.counters
        if c.pushed_since_summary or c.rejected_since_summary:
            latest = self.sink.latest_number if self.sink else None
            text = f"[OK] Pushed {c.pushed_since_summary} scans. Latest: #{latest}"
            if c.rejected_since_summary:
                text += f". Rejected {c.rejected_since_summary} files"
            log.info(
                text,
                extra=fields(
                    pushed=c.pushed_since_summary,
                    rejected=c.rejected_since_summary,
                    latest=latest,
                    pushed_total=c.pushed_total,
                    rejected_total=c.rejected_total,
                ),
            )
        c.pushed_since_summary = c.rejected_since_summary = 0

    def _start_watcher(self, look_back: bool = True) -> None:
        s = self.settings
        self._watcher = ScanWatcher(s.watch_dir, self.queue.put, kind=s.observer, poll_interval_s=s.poll_interval_s)
        self._watcher.start()
        log.info(
            "Watching %s (%s observer, %d folders)",
            s.watch_dir,
            self._watcher.kind,
            self._watcher.folders,
            extra=fields(observer=self._watcher.kind, folders=self._watcher.folders),
        )
        # Files that landed before the watch started and that no reconcile will list (a second
        # listing of a large folder here also delayed the busy bridge's next heartbeat).
        if look_back:
            for path in newest_files(s.watch_dir, RESCAN_FILES):
                self._handle(FileSeen(path))

    def _shutdown(self) -> None:
        self._connector.stop()
        if self._watcher is not None:
            self._watcher.stop()
        self._summary()
        if self.sink is not None and not self.sink.close():
            log.warning("Hazelcast client did not shut down within %g s; leaving it", CLOSE_DEADLINE_S)
        if self._guard is not None:
            self._guard.close()
        log.info("Stopped", extra=fields(pushed_total=self.counters.pushed_total))


def _install_signal_handlers(bridge: Bridge) -> None:
    def handler(signum: int, _frame: object) -> None:
        bridge.request_stop(signal.Signals(signum).name)
        # The loop may be inside a call to a cluster that has just gone away; never outstay the deadline.
        timer = threading.Timer(SHUTDOWN_DEADLINE_S, _exit_now)
        timer.daemon = True
        timer.start()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _exit_now() -> None:
    log.warning("Shutdown deadline passed; exiting (files on disk are caught up at the next start)")
    logging.shutdown()
    os._exit(0)


def load_settings(argv: list[str] | None = None) -> BridgeSettings:
    """Settings from flags over environment; raises ValidationError, or SettingsError for a malformed command line."""
    args = sys.argv[1:] if argv is None else argv
    return BridgeSettings(  # type: ignore[call-arg]
        _cli_parse_args=args, _cli_prog_name="python -m scan_bridge.service", _cli_exit_on_error=False
    )


def main(argv: list[str] | None = None) -> int:
    try:
        settings = load_settings(argv)
    except (ValidationError, SettingsError) as exc:
        print(f"scan-bridge: {describe_settings_error(exc)}", file=sys.stderr)
        return 2
    setup_logging(settings.log_format, settings.log_level)
    for warning in command_line_secret_warnings(sys.argv[1:] if argv is None else argv):
        log.warning(warning)
    if settings.watch_recent_dirs is not None:
        log.warning(
            "--watch-recent-dirs / SCAN_BRIDGE_WATCH_RECENT_DIRS is obsolete and ignored: every folder under the watch dir is followed"
        )
    bridge = Bridge(settings)
    _install_signal_handlers(bridge)
    return bridge.run()


if __name__ == "__main__":
    sys.exit(main())
