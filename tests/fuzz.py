"""A seeded mutation fuzz of the scan reader: valid scans, mutated, each read in a child process.

Used by ``tests/test_fuzz.py`` (a few hundred files in CI) and ``bench/fuzz_reader.py`` (the long run,
results in docs/reliability.md). Why a child process: a file that makes native code crash (SIGSEGV,
SIGABRT) must be *observed*, not take pytest down with it. One worker process reads many files in a
row (starting Python and pyarrow per file would cost ~0.4 s each); when it dies, the file it was
reading is charged with the signal and a new worker takes over.

What is asserted about each file (:func:`classify`): the reader answered (a record, or rejected /
incomplete with a reason), it did not raise anything else, the process survived, and the document
carries no bytes that were not in the file (:func:`foreign_strings`).

"No foreign bytes", soundly: a mutated file whose string offsets run past their buffer made the old
reader push 256 KB of its own memory. Every string in the document (keys and values, at any depth)
must therefore come from the file: each piece between U+FFFD replacement characters (the documented
decoding of metadata that is not UTF-8), as UTF-8, must occur in the *haystack*: the file's bytes
plus every Arrow buffer pyarrow decoded from it (a compressed file's strings are only in its
decompressed buffers). A buffer is the region the file's metadata declares, so text read through
offsets that run past it is not in it. Strings the bridge *generates* from numbers (timestamps,
dates, times, decimals) are recognised by their shape; binary values are base64 and are decoded
before the lookup. Numbers cannot be checked this way and are not.
"""

from __future__ import annotations

import base64
import json
import random
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

#: (format, legacy framing): the IPC file, the stream, and the pre-0.15 stream.
STYLES: tuple[tuple[str, bool], ...] = (("file", False), ("stream", False), ("stream", True))
COMPRESSIONS: tuple[str | None, ...] = (None, "lz4", "zstd")
MAX_BYTES = 256 * 1024 * 1024

# -- making files -----------------------------------------------------------------------------------


def seed_scan(rng: random.Random, fmt: str, legacy: bool, compression: str | None) -> bytes:
    """One valid scan as the simulator writes it (a few assets, so a mutation often lands in metadata)."""
    import pyarrow as pa

    from scan_bridge.simulate import Market, scan_table

    market = Market(rng.randint(1, 12), rng=random.Random(rng.random()))
    table = scan_table(market, rng.randint(1, 10**6), datetime(2026, 3, 24, 12, 0, tzinfo=UTC))
    if rng.random() < 0.3:  # a dictionary-encoded asset column, and a list column: more native code paths
        assets = table.column("asset").combine_chunks().dictionary_encode()
        table = table.set_column(0, pa.field("asset", assets.type), assets)
        tags = pa.array([[i, i + 1] for i in range(table.num_rows)], pa.list_(pa.int32()))
        table = table.append_column("tags", tags)
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(use_legacy_format=legacy, compression=compression)
    opener = pa.ipc.new_file if fmt == "file" else pa.ipc.new_stream
    with opener(sink, table.schema, options=options) as writer:
        writer.write_table(table, max_chunksize=rng.choice([None, 4]))
    return sink.getvalue().to_pybytes()


_INTERESTING_32 = (0, 1, -1, 0x7FFFFFFF, -0x80000000, 0xFFFF, 8, 64, 4096)
_INTERESTING_64 = (0, 1, -1, 2**63 - 1, -(2**63), 2**32, 2**31, 10**9)


def mutate(data: bytes, rng: random.Random) -> bytes:
    """1 to 4 random edits that mostly keep the length (a shorter file is merely incomplete)."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.random()
        n = len(buf)
        if n < 16:
            break
        at = rng.randrange(n)
        if kind < 0.25:
            buf[at] ^= 1 << rng.randrange(8)
        elif kind < 0.45:
            buf[at] = rng.randrange(256)
        elif kind < 0.65:
            at -= at % 4
            if at + 4 <= n:
                buf[at : at + 4] = rng.choice(_INTERESTING_32).to_bytes(4, "little", signed=True)
        elif kind < 0.8:
            at -= at % 8
            if at + 8 <= n:
                buf[at : at + 8] = rng.choice(_INTERESTING_64).to_bytes(8, "little", signed=True)
        elif kind < 0.92:
            length = rng.randint(1, 32)
            src = rng.randrange(n)
            chunk = buf[src : src + length]
            buf[at : at + len(chunk)] = chunk
            del buf[n:]
        else:
            buf[at] = 0xC3 if rng.random() < 0.5 else 0xFF  # invalid UTF-8 lead bytes, in names and values
    return bytes(buf)


@dataclass(frozen=True)
class Case:
    index: int
    style: str
    compression: str
    data: bytes


def cases(seed: int, count: int) -> Iterator[Case]:
    """``count`` mutated scans, cycling through every style and compression; the same for the same seed."""
    rng = random.Random(seed)
    combos = [(fmt, legacy, comp) for fmt, legacy in STYLES for comp in COMPRESSIONS]
    seeds: dict[tuple[str, bool, str | None], list[bytes]] = {}
    for index in range(count):
        fmt, legacy, comp = combos[index % len(combos)]
        pool = seeds.setdefault((fmt, legacy, comp), [])
        if len(pool) < 8:
            pool.append(seed_scan(rng, fmt, legacy, comp))
        style = "legacy-stream" if legacy else fmt
        yield Case(index, style, comp or "none", mutate(rng.choice(pool), rng))


# -- the oracle ---------------------------------------------------------------------------------------

_GENERATED = re.compile(
    r"-?\d{4,}-\d{2}-\d{2}(T\d{2}:\d{2}:\d{2}(\.\d+)?Z?)?"  # timestamps and dates
    r"|\d{2}:\d{2}:\d{2}(\.\d+)?"  # times
    r"|[+-]?\d+(\.\d+)?([eE][+-]?\d+)?"  # decimals as text
)


def haystack(path: Path) -> bytes:
    """The file's bytes and every buffer pyarrow decodes from it (call only for a file the reader accepted)."""
    import pyarrow as pa

    data = path.read_bytes()
    parts = [data]
    buffer = pa.py_buffer(data)
    try:
        table = pa.ipc.open_file(buffer).read_all()
    except pa.ArrowInvalid:
        table = pa.ipc.open_stream(buffer).read_all()

    def add(array: Any) -> None:
        parts.extend(b.to_pybytes() for b in array.buffers() if b is not None)
        if pa.types.is_dictionary(array.type):
            add(array.dictionary)

    for column in table.columns:
        for chunk in column.chunks:
            add(chunk)
    return b"\x00".join(parts)


#: Top-level keys the bridge writes itself (their values are checked, their names are ours).
_OWN_KEYS = frozenset({"scan_number", "timestamp", "asset_count", "assets", "columns", "metadata", "bridge"})


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _found(text: str, hay: bytes) -> bool:
    for piece in text.split("\ufffd"):
        if not piece:
            continue
        raw = piece.encode("utf-8", "surrogatepass")
        if raw in hay:
            continue
        if json.dumps(piece)[1:-1].encode() in hay:  # a JSON metadata value written with escapes
            continue
        return False
    return True


def foreign_strings(document: dict[str, Any], hay: bytes) -> list[str]:
    """Strings of ``document`` (without its bridge block) that are neither in the file nor generated from numbers."""
    strings: set[str] = set()
    for key, value in document.items():
        if key not in _OWN_KEYS:
            strings.add(key)
        if key not in ("bridge", "timestamp"):  # the bridge's block, and the scan time it normalised
            strings.update(_strings(value))
    foreign = []
    for text in strings:
        if _found(text, hay) or _GENERATED.fullmatch(text):
            continue
        try:
            decoded = base64.b64decode(text, validate=True)
        except ValueError:
            decoded = None
        if decoded is not None and (not decoded or decoded in hay):
            continue
        foreign.append(text)
    return foreign


# -- the worker (a child process) ---------------------------------------------------------------------


def _read_one(path: Path) -> dict[str, Any]:
    from scan_bridge.document import document_json
    from scan_bridge.scanfile import ScanFileIncomplete, ScanFileRejected, read_scan

    try:
        record = read_scan(path, MAX_BYTES)
        text = document_json(record, datetime.now(UTC))
    except ScanFileRejected as exc:
        return {"outcome": "rejected", "reason": exc.reason}
    except ScanFileIncomplete as exc:
        return {"outcome": "incomplete", "reason": exc.reason}
    except Exception as exc:  # noqa: BLE001 - this is what the fuzz is looking for
        return {"outcome": "exception", "reason": f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"}
    print(json.dumps({"phase": "oracle"}), flush=True)  # a crash from here on is the oracle's, not the reader's
    document = json.loads(text)
    foreign = foreign_strings(document, haystack(path))
    return {"outcome": "read", "foreign": foreign[:5], "document_bytes": len(text)}


def worker_main() -> None:
    """Read one path per stdin line; answer one JSON line each (``phase`` lines precede risky steps)."""
    for line in sys.stdin:
        path = Path(line.rstrip("\n"))
        print(json.dumps({"phase": "reader"}), flush=True)
        print(json.dumps(_read_one(path)), flush=True)


# -- the parent ----------------------------------------------------------------------------------------


@dataclass
class Results:
    outcomes: Counter[str] = field(default_factory=Counter)
    signals: Counter[str] = field(default_factory=Counter)
    exceptions: Counter[str] = field(default_factory=Counter)
    foreign: list[tuple[int, str, list[str]]] = field(default_factory=list)
    crashed: list[tuple[int, str]] = field(default_factory=list)  # (index, signal) of files that killed the reader
    oracle_crashes: int = 0
    files: int = 0
    seconds: float = 0.0
    worker_max_rss_mb: float = 0.0  # the largest a reading child grew (ru_maxrss of waited-for children)

    def summary(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "outcomes": dict(self.outcomes),
            "signals": dict(self.signals),
            "exceptions": dict(self.exceptions.most_common(10)),
            "foreign": len(self.foreign),
            "oracle_crashes": self.oracle_crashes,
            "seconds": round(self.seconds, 1),
            "worker_max_rss_mb": round(self.worker_max_rss_mb, 1),
        }


class Worker:
    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.env = env
        self.proc: subprocess.Popen[str] | None = None

    def _start(self) -> subprocess.Popen[str]:
        if self.proc is None or self.proc.poll() is not None:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); import fuzz; fuzz.worker_main()",
                 str(Path(__file__).parent)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                env=self.env,
            )
        return self.proc

    def read(self, path: Path) -> tuple[dict[str, Any] | None, str, int | None]:
        """(answer, phase reached, signal number if the worker died)."""
        proc = self._start()
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(f"{path}\n")
        proc.stdin.flush()
        phase = "start"
        while True:
            line = proc.stdout.readline()
            if not line:
                code = proc.wait()
                return None, phase, -code if code < 0 else code
            message = json.loads(line)
            if "phase" in message:
                phase = message["phase"]
                continue
            return message, phase, None

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            self.proc.wait(30)


def run(seed: int, count: int, workdir: Path | None = None, env: dict[str, str] | None = None,
        keep_crashers: Path | None = None) -> Results:
    """Fuzz ``count`` files; the files live in ``workdir`` (a temp dir when None) one at a time."""
    results = Results()
    started = time.perf_counter()
    worker = Worker(env)
    with tempfile.TemporaryDirectory() as tmp:
        folder = workdir or Path(tmp)
        try:
            for case in cases(seed, count):
                path = folder / f"fuzz_{case.index:06d}.arrow"
                path.write_bytes(case.data)
                answer, phase, code = worker.read(path)
                results.files += 1
                if answer is None:
                    if phase == "oracle":
                        results.oracle_crashes += 1
                        results.outcomes["read"] += 1
                    else:
                        name = signal.Signals(code).name if code and code in signal.Signals._value2member_map_ else f"exit {code}"
                        results.signals[name] += 1
                        results.outcomes["crash"] += 1
                        results.crashed.append((case.index, name))
                        if keep_crashers is not None:
                            keep_crashers.mkdir(parents=True, exist_ok=True)
                            (keep_crashers / f"{name}_{seed}_{case.index:06d}_{case.style}_{case.compression}.arrow").write_bytes(case.data)
                else:
                    results.outcomes[answer["outcome"]] += 1
                    if answer["outcome"] == "exception":
                        results.exceptions[answer["reason"].split(":")[0]] += 1
                    if answer.get("foreign"):
                        results.foreign.append((case.index, f"{case.style}/{case.compression}", answer["foreign"]))
                        if keep_crashers is not None:
                            keep_crashers.mkdir(parents=True, exist_ok=True)
                            (keep_crashers / f"foreign_{seed}_{case.index:06d}.arrow").write_bytes(case.data)
                    if answer["outcome"] in ("rejected", "incomplete") and not answer.get("reason"):
                        results.outcomes["no-reason"] += 1
                path.unlink()
        finally:
            worker.close()
    results.seconds = time.perf_counter() - started
    results.worker_max_rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return results


if __name__ == "__main__":
    if sys.argv[1:] == ["--worker"]:
        worker_main()
