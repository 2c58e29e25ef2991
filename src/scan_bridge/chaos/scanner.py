"""The harness's scanner: writes a realistic folder and keeps a ledger of every byte it wrote.

What a real scanner's folder looks like, on purpose all at once:

* date folders named by the *scanner's* local date, with a midnight rollover early in the run (the
  scanner's clock is offset so that its local midnight falls ``midnight_in_s`` after the start);
  the timestamps inside the files stay true UTC, so data age means what it says;
* non-date folders beside them (``logs/`` with a growing log, ``notes/``), which are never scans;
* writers of both kinds: temp name + rename, and in place in flushed chunks (a watcher sees partial
  files); both Arrow formats (file and stream);
* on request (the faults): a pause, a burst of many files at once, hostile files of every kind the
  bridge rejects, and a file that stays incomplete for good.

The ledger is what the referee judges against: for every complete scan its number, its history key
(microseconds since the epoch of its UTC timestamp, computed here, not by the bridge's code), when
it became visible, and a digest of its bytes (to check at the end that nobody changed it).
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ..document import format_timestamp
from ..simulate import Market, scan_table, table_bytes
from . import hostile

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: The in-place writer's chunks: the file is visible (and incomplete) for a few tens of ms.
IN_PLACE_CHUNKS = 4


def history_key(when: datetime) -> int:
    """Microseconds since the epoch of ``when`` (UTC): the key the bridge must store this scan under."""
    return (when.astimezone(UTC) - _EPOCH) // timedelta(microseconds=1)


def digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


@dataclass(slots=True)
class Written:
    """One file the scanner wrote."""

    path: Path
    number: int
    key: int | None  # None: not a complete scan (hostile or incomplete), must never reach history
    timestamp: datetime
    visible_at: float  # time.time() when the complete file was there under its final name
    size: int
    digest: str
    kind: str  # "scan", "burst", or the hostile kind / "incomplete"


@dataclass
class Ledger:
    """Everything written, by key (complete scans) and in order (all files). Thread-safe appends."""

    scans: dict[int, Written] = field(default_factory=dict)
    files: list[Written] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, item: Written) -> None:
        with self.lock:
            self.files.append(item)
            if item.key is not None:
                self.scans[item.key] = item

    def complete_scans(self) -> list[Written]:
        with self.lock:
            return list(self.scans.values())


class ChaosScanner:
    """Writes ``rate`` scans of ``assets`` assets a second into ``root`` until stopped; see the module doc."""

    def __init__(
        self,
        root: Path,
        rate: float,
        assets: int,
        rng: random.Random,
        midnight_in_s: float = 60.0,
        in_place_share: float = 0.3,
        stream_share: float = 0.3,
        log: Callable[[str], None] = print,
    ) -> None:
        self.root = Path(root)
        self.rate = rate
        self.rng = rng
        self.market = Market(assets, random.Random(rng.random()))
        self.in_place_share = in_place_share
        self.stream_share = stream_share
        self.log = log
        self.ledger = Ledger()
        self.number = 1
        # The scanner's local clock: UTC plus an offset that puts its midnight midnight_in_s from now.
        now = datetime.now(UTC)
        self.clock_offset = (now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)) - (
            now + timedelta(seconds=midnight_in_s)
        )
        self.folders: set[str] = set()
        self._stop = threading.Event()
        self._running = threading.Event()
        self._running.set()
        self._lock = threading.Lock()  # one writer at a time: the loop, a burst, a hostile batch
        self._thread: threading.Thread | None = None
        self.errors: list[str] = []
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        (self.root / "notes").mkdir(parents=True, exist_ok=True)
        (self.root / "notes" / "README.txt").write_text("Scanner output. Date folders are the scanner's local date.\n")

    # -- the steady writer ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="chaos-scanner", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._running.set()
        if self._thread is not None:
            self._thread.join(30)

    def pause(self) -> None:
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    @property
    def paused(self) -> bool:
        return not self._running.is_set()

    def _run(self) -> None:
        period = 1.0 / self.rate
        next_at = time.monotonic()
        while not self._stop.is_set():
            if not self._running.is_set():
                self._running.wait()
                next_at = time.monotonic()
                continue
            delay = next_at - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                break
            if time.monotonic() - next_at > 2 * period:  # fell behind (a loaded machine): no catch-up burst
                next_at = time.monotonic()
            next_at += period
            if not self._running.is_set():
                continue
            try:
                self.write_one()
            except OSError as exc:  # a full disk must show in the report, not kill the run silently
                self.errors.append(f"{datetime.now(UTC):%H:%M:%S} write failed: {exc}")
                self.log(f"scanner: write failed: {exc}")

    def _local(self, when: datetime) -> datetime:
        return when + self.clock_offset

    def current_folder(self) -> Path:
        """The folder the next scan goes into (by the scanner's clock; created if new)."""
        with self._lock:
            return self._folder(datetime.now(UTC))

    def _folder(self, when: datetime) -> Path:
        name = f"{self._local(when):%Y-%m-%d}"
        folder = self.root / name
        if name not in self.folders:
            folder.mkdir(parents=True, exist_ok=True)
            if self.folders:
                self.log(f"scanner: midnight (scanner's clock): new folder {name}")
            self.folders.add(name)
            with open(self.root / "logs" / "scanner.log", "a") as log:
                log.write(f"{when.isoformat()} new day folder {name}\n")
        return folder

    def write_one(self, kind: str = "scan", in_place: bool | None = None, fmt: str | None = None) -> Written:
        """Write the next scan (the writer style and format chosen at random unless given) and record it."""
        with self._lock:
            when = datetime.now(UTC)
            number = self.number
            self.number += 1
            table = scan_table(self.market, number, when)
            fmt = fmt or ("stream" if self.rng.random() < self.stream_share else "file")
            data = table_bytes(table, fmt)
            if in_place is None:
                in_place = self.rng.random() < self.in_place_share
            path = self._folder(when) / f"scan_{number:06d}_{self._local(when):%H%M%S}.arrow"
            if in_place:
                bounds = [len(data) * i // IN_PLACE_CHUNKS for i in range(IN_PLACE_CHUNKS + 1)]
                with open(path, "wb") as handle:
                    for i in range(IN_PLACE_CHUNKS):
                        handle.write(data[bounds[i] : bounds[i + 1]])
                        handle.flush()
                        if i < IN_PLACE_CHUNKS - 1:
                            time.sleep(0.005)
            else:
                temp = path.with_name(f".{path.name}.tmp")
                with open(temp, "wb") as handle:
                    handle.write(data)
                os.replace(temp, path)
            item = Written(path, number, history_key(when), when, time.time(), len(data), digest(data), kind)
            self.ledger.add(item)
            return item

    # -- faults ------------------------------------------------------------------------------------

    def burst(self, count: int) -> list[Written]:
        """``count`` scans as fast as they can be written (renamed into place), as a scanner catching up would.

        One market step renumbered and restamped per file: stepping a 400-asset market in Python takes
        longer than writing the file, and a burst must be a burst on a loaded machine too.
        """
        out = []
        with self._lock:
            table = scan_table(self.market, self.number, datetime.now(UTC))
            metadata = dict(table.schema.metadata)
            for _ in range(count):
                when = datetime.now(UTC)
                number = self.number
                self.number += 1
                metadata[b"scan_number"] = str(number).encode()
                metadata[b"timestamp"] = format_timestamp(when).encode()
                data = table_bytes(table.replace_schema_metadata(metadata), "file")
                path = self._folder(when) / f"scan_{number:06d}_{self._local(when):%H%M%S}.arrow"
                temp = path.with_name(f".{path.name}.tmp")
                temp.write_bytes(data)
                os.replace(temp, path)
                item = Written(path, number, history_key(when), when, time.time(), len(data), digest(data), "burst")
                self.ledger.add(item)
                out.append(item)
        return out

    def hostile_files(self) -> list[Written]:
        """One file of every kind the bridge rejects (:mod:`.hostile`), among the good scans."""
        out = []
        with self._lock:
            folder = self._folder(datetime.now(UTC))
            for name, (data, _reason) in hostile.rejected_cases().items():
                self.number += 1  # a number of its own, as a real scanner's broken file would have
                path = folder / f"scan_{self.number:06d}_bad_{name}.arrow"
                temp = path.with_name(f".{path.name}.tmp")
                temp.write_bytes(data)
                os.replace(temp, path)
                item = Written(path, self.number, None, datetime.now(UTC), time.time(), len(data), digest(data), name)
                self.ledger.add(item)
                out.append(item)
            self.number += 1
        return out

    def incomplete_file(self) -> Written:
        """The first half of a valid scan under its final name, never finished (a scanner that died mid-write)."""
        with self._lock:
            when = datetime.now(UTC)
            number = self.number
            self.number += 1
            data = table_bytes(scan_table(self.market, number, when), "file")
            half = data[: len(data) // 2]
            path = self._folder(when) / f"scan_{number:06d}_{self._local(when):%H%M%S}.arrow"
            path.write_bytes(half)
            item = Written(path, number, None, when, time.time(), len(half), digest(half), "incomplete")
            self.ledger.add(item)
            return item

    def changed_files(self) -> list[str]:
        """Files the scanner wrote that are gone or differ from what it wrote (must be none)."""
        bad = []
        with self.ledger.lock:
            files = list(self.ledger.files)
        for item in files:
            try:
                data = item.path.read_bytes()
            except OSError as exc:
                bad.append(f"{item.path}: {exc.strerror or exc}")
                continue
            if len(data) != item.size or digest(data) != item.digest:
                bad.append(f"{item.path}: {len(data)} bytes now, {item.size} written, content differs")
        return bad
