"""Reading one scan file: is it complete, is it a valid scan, and its document body as JSON.

The contract (``docs/scan-format.md``): one scan per file, Arrow IPC *file* format (or the IPC
*stream* format, told apart by content, never by name); one row per asset, named by the string
column ``asset``; ``scan_number`` and ``timestamp`` in the schema metadata (or as columns holding one
value for every row); everything else passes through.

:func:`read_scan` answers in three ways, and the watcher acts on each differently:

* a :class:`ScanRecord`: push it;
* :class:`ScanFileIncomplete`: the writer is not done (empty file, no footer / end-of-stream marker
  yet, a message cut short): try again later, and give up after a deadline;
* :class:`ScanFileRejected`: bad for good (not Arrow, no scan number, ...): log the reason once.

Nothing else ever leaves :func:`read_scan`: any other exception from decoding or converting becomes
a rejection with its type and text. Before decoding, the cost of the scan is read from its IPC
metadata (:func:`measure`: rows, values, decompressed bytes) and checked against
:class:`ScanLimits`, so a few KB of zstd cannot expand to gigabytes; after decoding, pyarrow's full
validation runs before any value is converted, so bad offsets can neither crash native code nor
read (and push) the process's own memory.

Completeness is decided from a few small reads before anything is parsed: the IPC file format must
start with ``ARROW1`` and end with its footer and ``ARROW1``; the stream format is walked message by
message (each message's length prefix and the body length from its flatbuffer header: a few bytes
per message) and must end with the end-of-stream marker right where the last message ends. Walking
matters: a stream cut in the middle of a body often *ends* with four zero bytes (an int column, padding),
so "the last bytes look like the end-of-stream marker" alone would parse a half-written file and reject it.

The file is read with ordinary reads into memory, not memory-mapped: a scan is small (~50 KB), a
read is cheaper than mapping it (0.02 ms against 0.14 ms for ``pa.memory_map``), and a mapped file
that a writer truncates while we read it kills the process with SIGBUS, which a read cannot do (it
only returns fewer bytes, which we detect).

Speed: the body is serialised once, column by column (``{"columns": {"x": [...]}}``), never row by
row: each column becomes one list (``to_pylist``) that orjson writes, about ten times faster than
row dicts and ``json``. float64 and integer columns go to orjson as numpy arrays instead (numpy is a
dependency, pyproject.toml), which skips making a Python object per value (the columns take less than
half the time) and writes the same text. NaN and ±inf become ``null`` either way (orjson's rule for
non-finite floats, which JSON cannot express), and so do nulls.
"""

from __future__ import annotations

import errno
import math
import os
import stat
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, tzinfo
from typing import Any, Literal

import pyarrow as pa


from .document import (
    DEFAULT_MAX_DOCUMENT_BYTES,
    DEFAULT_MAX_FILE_BYTES,
    DEFAULT_MAX_SCAN_COLUMNS,
    DEFAULT_MAX_SCAN_ROWS,
    decode_metadata,
    encode_body,
    format_timestamp,
    parse_scan_number,
    parse_scan_time,
    replace_body_timestamp,
    timestamp_from_epoch,
)
from .discovery import scan_number_from_name
from .ordering import ScanId, history_key

#: Numeric columns go to orjson as numpy arrays (numpy is a dependency); False writes them as lists,
#: the plain path, which the tests compare it with: the text must be the same.
NUMPY_COLUMNS = True

ARROW_MAGIC = b"ARROW1"
CONTINUATION = b"\xff\xff\xff\xff"
ASSET_COLUMN = "asset"
# Smallest possible IPC file: magic + padding, a schema message, a footer, its length, magic.
_MIN_FILE_BYTES = len(ARROW_MAGIC) + 2 + 4 + len(ARROW_MAGIC)
# A message's flatbuffer header is small (the schema, plus its metadata); anything larger is not a header.
_MAX_HEADER_BYTES = 64 * 1024 * 1024
# MessageHeader union (Message.fbs): 1 Schema, 2 DictionaryBatch, 3 RecordBatch, 4 Tensor, 5 SparseTensor.
_HEADER_SCHEMA = 1
_HEADER_TYPES = range(1, 6)
_MAX_METADATA_VERSION = 4  # V1..V5 are 0..4

ScanFormat = Literal["file", "stream"]


class ScanFileError(Exception):
    """What reading a scan file can end in besides a record: the file's ``path`` (a ``str``) and a ``reason``."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(reason)
        self.path: str = os.fspath(path)
        self.reason = reason


class ScanFileIncomplete(ScanFileError):
    """The file is not (yet) a complete Arrow file or stream: try again later.

    ``str(exc)`` is ``incomplete: <reason>``, without the path (the caller logs that beside it).
    """

    def __str__(self) -> str:
        return f"incomplete: {self.reason}"


class ScanFileDenied(ScanFileIncomplete):
    """The file (or its folder) may not be read now: a permission, not the file's content.

    An operator's ``chmod``, a mount exported with other rights: it says nothing about the scan, and
    it can end at any moment, so the file is read again later, never rejected (rejecting it lost the
    scan: chaos harness, issue 10). ``str(exc)`` is ``not readable: <reason>``.
    """

    def __str__(self) -> str:
        return f"not readable: {self.reason}"


#: Errors of ``open`` that are about rights, not about the file: :class:`ScanFileDenied`.
DENIED_ERRNOS = frozenset({errno.EACCES, errno.EPERM})


class ScanFileRejected(ScanFileError):
    """The file is not a valid scan and will not become one: ``rejected <path>: <reason>``."""

    def __str__(self) -> str:
        return f"rejected {self.path}: {self.reason}"


@dataclass(frozen=True, slots=True)
class ScanRecord:
    """One valid scan, ready to push: its identity and its document body, serialised once.

    ``path`` is a ``str``, as everywhere on the bridge's path from file event to push: a
    ``pathlib.Path`` interns every part of its path (``sys.intern``), and the table of interned
    strings, shared by the whole interpreter, grew (and once doubled) with the file names alive and
    churned by every file: the bridge's one step of RSS in an hour (issue 17, docs/performance.md).
    """

    path: str
    scan_number: int
    timestamp: datetime  # tz-aware, UTC
    asset_count: int
    body_json: bytes  # the document as a JSON object, without the "bridge" block
    size_bytes: int
    mtime: float
    #: The other reading of an ambiguous naive local time (the repeated autumn hour), else None; the
    #: bridge picks one with :func:`scan_bridge.ordering.resolve_fold` and :func:`restamped`.
    timestamp_alt: datetime | None = None

    @property
    def scan_id(self) -> ScanId:
        """What ordering needs: the timestamp and the number."""
        return ScanId(self.timestamp, self.scan_number)

    @property
    def key(self) -> int:
        """The scan's history key (:func:`scan_bridge.ordering.history_key`)."""
        return history_key(self.timestamp)


def restamped(record: ScanRecord, timestamp: datetime) -> ScanRecord:
    """``record`` read at ``timestamp`` instead (the second reading of an ambiguous local time): body included."""
    if timestamp == record.timestamp:
        return replace(record, timestamp_alt=None)
    body = replace_body_timestamp(record.body_json, record.scan_number, record.timestamp, timestamp)
    return replace(record, timestamp=timestamp, body_json=body, timestamp_alt=None)


@dataclass(frozen=True, slots=True)
class ScanLimits:
    """Bounds on what one scan may cost to decode and push (settings ``max_scan_rows`` and friends)."""

    max_rows: int = DEFAULT_MAX_SCAN_ROWS
    max_columns: int = DEFAULT_MAX_SCAN_COLUMNS
    max_document_bytes: int = DEFAULT_MAX_DOCUMENT_BYTES


def read_scan(
    path: str | os.PathLike[str], max_bytes: int, limits: ScanLimits | None = None, zone: tzinfo = UTC
) -> ScanRecord:
    """Read and validate one scan file; raises :class:`ScanFileIncomplete` or :class:`ScanFileRejected`.

    ``zone`` is the scanner's time zone (setting ``scanner_timezone``): how a timestamp without an
    offset (ISO text, or an Arrow timestamp column without a time zone) is read. Epoch seconds are
    absolute and never shifted.

    Nothing else: any other exception from decoding or converting a complete file (pyarrow's, or
    Python's own for data no valid file holds) becomes a :class:`ScanFileRejected` with its type and text.
    """
    path = os.fspath(path)  # a str from here on: never a Path per file (issue 17, see ScanRecord.path)
    label = "data"  # until the format is known
    try:
        data, fmt, size, mtime = _read_complete(path, max_bytes)
        label = fmt
        return _parse(path, data, fmt, size, mtime, limits or ScanLimits(), zone)
    except (ScanFileRejected, ScanFileIncomplete):
        raise
    except Exception as exc:  # noqa: BLE001 - "a file can fail in exactly one way": rejected, with the reason
        raise ScanFileRejected(path, f"corrupt Arrow {label} ({type(exc).__name__}: {_one_line(exc)})") from None


# -- completeness and reading ---------------------------------------------------------------------


def _os_reason(exc: OSError) -> str:
    name = type(exc).__name__
    text = exc.strerror or (errno.errorcode.get(exc.errno, "") if exc.errno else "") or str(exc)
    return f"unreadable ({name}: {text})"


def _read_complete(path: str, max_bytes: int) -> tuple[bytes, ScanFormat, int, float]:
    # O_NONBLOCK: opening a FIFO must not wait for a writer; it changes nothing for regular files.
    # O_NOFOLLOW: a symlink may point anywhere (outside the watched folder): scans are files, not links.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise ScanFileRejected(path, "a symbolic link (not followed: it may point outside the watched folder)") from None
        if exc.errno in DENIED_ERRNOS:
            raise ScanFileDenied(path, _os_reason(exc)) from None
        raise ScanFileRejected(path, _os_reason(exc)) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "a FIFO" if stat.S_ISFIFO(info.st_mode) else "special"
            raise ScanFileRejected(path, f"not a regular file ({kind})")
        size = info.st_size
        if size > max_bytes:
            raise ScanFileRejected(path, f"larger than limit ({size} bytes > {max_bytes} bytes)")
        if size == 0:
            raise ScanFileIncomplete(path, "empty file (the writer may have just created it)")
        fmt = _check_complete(path, fd, size, max_bytes)
        data = _pread_exact(path, fd, size, 0)
        if fmt == "file" and not data.endswith(ARROW_MAGIC):  # rewritten in place since the check
            raise ScanFileIncomplete(path, f"Arrow file of {size} bytes has no footer yet")
    except OSError as exc:
        raise ScanFileRejected(path, _os_reason(exc)) from None
    finally:
        os.close(fd)
    return data, fmt, size, info.st_mtime


def _pread_exact(path: str, fd: int, length: int, offset: int) -> bytes:
    data = os.pread(fd, length, offset)
    if len(data) < length:  # network file systems may return short reads
        parts = [data]
        got = len(data)
        while got < length:
            more = os.pread(fd, length - got, offset + got)
            if not more:
                raise ScanFileIncomplete(path, "file shrank while it was being read")
            parts.append(more)
            got += len(more)
        data = b"".join(parts)
    return data


def _check_complete(path: str, fd: int, size: int, max_bytes: int) -> ScanFormat:
    """Which format the file is in, once it is complete; raises while it is not (or is not Arrow)."""
    head = _pread_exact(path, fd, min(size, 8), 0)
    if head.startswith(ARROW_MAGIC):
        if size < _MIN_FILE_BYTES:
            raise ScanFileIncomplete(path, f"Arrow file of {size} bytes has no footer yet")
        tail = _pread_exact(path, fd, 10, size - 10)
        if tail[4:] != ARROW_MAGIC:
            raise ScanFileIncomplete(path, f"Arrow file of {size} bytes has no footer yet")
        (footer_len,) = struct.unpack("<i", tail[:4])
        if not 0 < footer_len <= size - _MIN_FILE_BYTES:
            raise ScanFileRejected(path, f"corrupt Arrow file (footer length {footer_len} in a {size}-byte file)")
        return "file"
    if size < len(ARROW_MAGIC) and (ARROW_MAGIC.startswith(head) or CONTINUATION.startswith(head)):
        raise ScanFileIncomplete(path, f"only {size} bytes written so far")
    if head.startswith(CONTINUATION):
        _walk_stream(path, fd, size, max_bytes, legacy_head=False)
        return "stream"
    if len(head) >= 4 and 8 <= struct.unpack("<i", head[:4])[0] <= _MAX_HEADER_BYTES:
        # Pre-0.15 ("legacy") streams have no continuation marker: a plain length first.
        _walk_stream(path, fd, size, max_bytes, legacy_head=True)
        return "stream"
    raise ScanFileRejected(path, "not Arrow (neither the IPC file nor the stream format)")


def message_header(meta: bytes) -> tuple[int, int]:
    """``(header_type, body_length)`` of an IPC message's flatbuffer metadata (``Message`` in Message.fbs).

    Reads just the two fields the framing needs, with every offset bounds-checked; raises ``ValueError``
    for bytes that are not such a flatbuffer.
    """
    message = _root(meta, 0, len(meta))
    version = message.scalar(0, "<h")
    header_type = message.scalar(1, "<B")
    body_length = message.scalar(3, "<q")
    if not 0 <= version <= _MAX_METADATA_VERSION:
        raise ValueError(f"unknown metadata version {version}")
    if header_type not in _HEADER_TYPES:
        raise ValueError(f"unknown message type {header_type}")
    if body_length < 0:
        raise ValueError(f"bad body length {body_length}")
    return header_type, body_length


def _walk_stream(path: str, fd: int, size: int, max_bytes: int, *, legacy_head: bool) -> None:
    """Follow the stream's message framing to its end-of-stream marker; raise while it is not there yet."""
    pos = 0
    first = True
    while True:
        if pos + 4 > size:
            raise ScanFileIncomplete(path, f"Arrow stream of {size} bytes has no end-of-stream marker yet")
        word = _pread_exact(path, fd, 4, pos)
        if word == CONTINUATION:
            if pos + 8 > size:
                raise ScanFileIncomplete(path, f"Arrow stream of {size} bytes has no end-of-stream marker yet")
            (length,) = struct.unpack("<i", _pread_exact(path, fd, 4, pos + 4))
            prefix = 8
        else:
            (length,) = struct.unpack("<i", word)
            prefix = 4
        if length == 0:
            if first:
                raise ScanFileRejected(path, "corrupt Arrow stream (ends before its schema)")
            return  # end-of-stream marker: 0xFFFFFFFF 0x00000000, or the legacy 0x00000000
        if not 0 < length <= _MAX_HEADER_BYTES:
            raise ScanFileRejected(path, f"corrupt Arrow stream (message length {length} at byte {pos})")
        end = pos + prefix + length
        if end > max_bytes:
            raise ScanFileRejected(path, f"corrupt Arrow stream (message at byte {pos} ends past the size limit)")
        if end > size:
            raise ScanFileIncomplete(path, f"Arrow stream of {size} bytes ends inside a message")
        try:
            header_type, body_length = message_header(_pread_exact(path, fd, length, pos + prefix))
            if first and header_type != _HEADER_SCHEMA:
                raise ValueError("does not start with a schema")
        except ValueError as exc:
            if legacy_head and first:
                raise ScanFileRejected(path, "not Arrow (neither the IPC file nor the stream format)") from None
            raise ScanFileRejected(path, f"corrupt Arrow stream (message at byte {pos}: {exc})") from None
        end += body_length
        if end > max_bytes:
            raise ScanFileRejected(path, f"corrupt Arrow stream (message at byte {pos} ends past the size limit)")
        if end > size:
            raise ScanFileIncomplete(path, f"Arrow stream of {size} bytes ends inside a message body")
        pos = end
        first = False


# -- parsing --------------------------------------------------------------------------------------


def read_table(path: str | os.PathLike[str], max_bytes: int, limits: ScanLimits | None = None) -> pa.Table:
    """The file's Arrow table, complete, within ``limits`` and fully validated; for readers other than :func:`read_scan`.

    Raises :class:`ScanFileIncomplete` or :class:`ScanFileRejected`, nothing else (the health check
    uses it for a scan number held in a column).
    """
    path = os.fspath(path)
    try:
        data, fmt, _size, _mtime = _read_complete(path, max_bytes)
        return _decode(path, data, fmt, limits or ScanLimits())
    except (ScanFileRejected, ScanFileIncomplete):
        raise
    except Exception as exc:  # noqa: BLE001 - as in read_scan
        raise ScanFileRejected(path, f"corrupt Arrow data ({type(exc).__name__}: {_one_line(exc)})") from None


def _decode(path: str, data: bytes, fmt: ScanFormat, limits: ScanLimits) -> pa.Table:
    """Complete bytes to a validated table: cost checked from the metadata first, then decoded, then fully validated."""
    try:
        cost = measure(data, fmt)
    except (ValueError, struct.error) as exc:
        raise ScanFileRejected(path, f"corrupt Arrow {fmt} ({_one_line(exc)})") from None
    _check_cost(path, cost, limits)
    buffer = pa.py_buffer(data)
    try:
        if fmt == "file":
            reader: Any = pa.ipc.open_file(buffer)
        else:
            reader = pa.ipc.open_stream(buffer)
        schema = reader.schema
        try:
            schema.names  # noqa: B018 - pyarrow decodes the names here
        except UnicodeDecodeError:
            raise ScanFileRejected(path, "a column name is not UTF-8") from None
        if len(schema) > limits.max_columns:
            raise ScanFileRejected(path, f"too large: {len(schema)} columns > limit {limits.max_columns} (max_scan_columns)")
        table = reader.read_all()
        # Full validation before any value is looked at: offsets within their buffers, UTF-8 strings,
        # dictionary indices in range. Without it, bad offsets read (and pushed) the process's own memory,
        # and worse ones crash native code.
        table.validate(full=True)
    except (pa.ArrowException, ValueError, OSError) as exc:
        raise ScanFileRejected(path, f"corrupt Arrow {fmt} ({_one_line(exc)})") from None
    return table


def _parse(
    path: str, data: bytes, fmt: ScanFormat, size: int, mtime: float, limits: ScanLimits, zone: tzinfo = UTC
) -> ScanRecord:
    table = _decode(path, data, fmt, limits)
    schema = table.schema
    names = table.column_names
    if len(set(names)) != len(names):
        duplicate = next(name for name in names if names.count(name) > 1)
        raise ScanFileRejected(path, f"duplicate column name {duplicate!r}")
    if ASSET_COLUMN not in names:
        raise ScanFileRejected(path, "no 'asset' column")
    asset_column = table.column(ASSET_COLUMN)
    if not _is_string_type(asset_column.type):
        raise ScanFileRejected(path, f"'asset' column holds {asset_column.type}, not strings")
    assets = asset_column.to_pylist()
    if asset_column.null_count:
        raise ScanFileRejected(path, f"'asset' column has {asset_column.null_count} null names")

    metadata = decode_metadata(schema.metadata)
    consumed = {ASSET_COLUMN}
    scan_number = _scan_level(path, "scan_number", metadata, table, consumed, parse_scan_number)
    timestamp, timestamp_alt = _scan_level(
        path, "timestamp", metadata, table, consumed, lambda value: parse_scan_time(value, zone)
    )

    try:
        columns = {name: column_values(col) for name, col in zip(names, table.columns) if name not in consumed}
        body = encode_body(scan_number, timestamp, assets, columns, metadata)
    except (pa.ArrowException, ValueError, TypeError, OverflowError) as exc:
        raise ScanFileRejected(path, f"cannot serialise ({_one_line(exc)})") from None
    if len(body) > limits.max_document_bytes:
        raise ScanFileRejected(
            path, f"too large: a document of {len(body)} bytes > limit {limits.max_document_bytes} (max_document_bytes)"
        )
    return ScanRecord(
        path=path,
        scan_number=scan_number,
        timestamp=timestamp,
        asset_count=len(assets),
        body_json=body,
        size_bytes=size,
        mtime=mtime,
        timestamp_alt=timestamp_alt,
    )


# -- cost, from the metadata alone ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScanCost:
    """What decoding a scan would take, read from its IPC metadata before anything is decoded.

    ``decoded_bytes`` is the sum of every buffer's size once decompressed (a compressed buffer
    starts with its uncompressed length; an uncompressed body counts as its length), ``values`` the sum of every field node's length (the
    values of all columns, nested children and dictionaries included), ``rows`` the record
    batches' lengths.
    """

    rows: int
    values: int
    decoded_bytes: int


def _check_cost(path: str, cost: ScanCost, limits: ScanLimits) -> None:
    if cost.rows > limits.max_rows:
        raise ScanFileRejected(path, f"too large: {cost.rows} rows > limit {limits.max_rows} (max_scan_rows)")
    if cost.decoded_bytes > limits.max_document_bytes:
        raise ScanFileRejected(
            path,
            f"too large: decodes to {cost.decoded_bytes} bytes of Arrow data > limit {limits.max_document_bytes} (max_document_bytes)",
        )
    # Every JSON value takes at least two bytes (a digit or bracket, and a separator).
    if 2 * cost.values > limits.max_document_bytes:
        raise ScanFileRejected(
            path,
            f"too large: {cost.values} values make a document of at least {2 * cost.values} bytes "
            f"> limit {limits.max_document_bytes} (max_document_bytes)",
        )


class _Table:
    """One flatbuffer table inside ``data[lo:hi]``, every read bounds-checked (``ValueError`` otherwise)."""

    __slots__ = ("data", "lo", "hi", "pos", "vtable", "vt_size")

    def __init__(self, data: bytes, pos: int, lo: int, hi: int) -> None:
        if not lo <= pos <= hi - 4:
            raise ValueError("flatbuffer table out of bounds")
        vtable = pos - struct.unpack_from("<i", data, pos)[0]
        if not lo <= vtable <= hi - 4:
            raise ValueError("flatbuffer vtable out of bounds")
        (vt_size,) = struct.unpack_from("<H", data, vtable)
        if vt_size < 4 or vtable + vt_size > hi:  # (the table's own size is not checked: fields are, one by one)
            raise ValueError("flatbuffer vtable out of bounds")
        self.data, self.lo, self.hi, self.pos, self.vtable, self.vt_size = data, lo, hi, pos, vtable, vt_size

    def _at(self, index: int, size: int) -> int:
        slot = 4 + 2 * index
        if slot + 2 > self.vt_size:
            return 0
        offset = struct.unpack_from("<H", self.data, self.vtable + slot)[0]
        if not offset:
            return 0
        at = self.pos + offset
        if at + size > self.hi:
            raise ValueError("flatbuffer field out of bounds")
        return at

    def scalar(self, index: int, fmt: str) -> int:
        at = self._at(index, struct.calcsize(fmt))
        return struct.unpack_from(fmt, self.data, at)[0] if at else 0

    def table(self, index: int) -> _Table | None:
        at = self._at(index, 4)
        return _Table(self.data, at + struct.unpack_from("<I", self.data, at)[0], self.lo, self.hi) if at else None

    def structs(self, index: int, fmt: str) -> Iterator[tuple[Any, ...]]:
        """The values of a vector of fixed-size structs (``fmt``: one struct's layout)."""
        at = self._at(index, 4)
        if not at:
            return iter(())
        vector = at + struct.unpack_from("<I", self.data, at)[0]
        if not self.lo <= vector <= self.hi - 4:
            raise ValueError("flatbuffer vector out of bounds")
        count = struct.unpack_from("<I", self.data, vector)[0]
        start = vector + 4
        end = start + count * struct.calcsize(fmt)
        if end > self.hi:
            raise ValueError("flatbuffer vector out of bounds")
        return struct.iter_unpack(fmt, memoryview(self.data)[start:end])


def _root(data: bytes, lo: int, hi: int) -> _Table:
    if hi - lo < 8:
        raise ValueError("flatbuffer too short")
    return _Table(data, lo + struct.unpack_from("<I", data, lo)[0], lo, hi)


_RECORD_BATCH = 3
_DICTIONARY_BATCH = 2


def _message_cost(data: bytes, meta_lo: int, meta_hi: int, body_lo: int | None) -> tuple[int, int, int, int]:
    """(rows, values, decoded bytes, body length) of one IPC message; ``body_lo`` None: right after the metadata."""
    message = _root(data, meta_lo, meta_hi)
    header_type = message.scalar(1, "<B")
    body_length = message.scalar(3, "<q")
    if body_length < 0:
        raise ValueError(f"bad body length {body_length}")
    body_lo = meta_hi if body_lo is None else body_lo
    body_hi = body_lo + body_length
    if body_hi > len(data):
        raise ValueError("message body past the end of the file")
    if header_type not in (_RECORD_BATCH, _DICTIONARY_BATCH):
        return 0, 0, 0, body_length
    header = message.table(2)
    if header is None:
        return 0, 0, 0, body_length
    batch = header if header_type == _RECORD_BATCH else header.table(1)
    if batch is None:
        return 0, 0, 0, body_length
    rows = batch.scalar(0, "<q") if header_type == _RECORD_BATCH else 0
    values = 0
    for length, _nulls in batch.structs(1, "<qq"):  # FieldNode {length: long, null_count: long}
        if length < 0:
            raise ValueError(f"negative field length {length}")
        values += length
    if batch.table(3) is None:  # not compressed: buffers are slices of the body, nothing more is allocated
        return rows, values, body_length, body_length
    decoded = 0
    for offset, length in batch.structs(2, "<qq"):  # Buffer {offset: long, length: long}
        # pyarrow skips buffers it does not need (an empty one; a validity bitmap when nothing is
        # null) and fails on, or truncates to the body, one that runs past the body: count what it
        # could load, from what the body holds, never less.
        if length <= 0 or not 0 <= offset < body_length:
            continue
        stored = min(length, body_length - offset)
        if stored >= 8:
            (raw,) = struct.unpack_from("<q", data, body_lo + offset)  # uncompressed length; -1: stored as is
            decoded += stored - 8 if raw == -1 else max(raw, 0)
        else:
            decoded += stored
    if rows < 0:
        raise ValueError(f"negative row count {rows}")
    return rows, values, decoded, body_length


def _framed(data: bytes, pos: int) -> tuple[int, int]:
    """(metadata start, metadata length) of the message framed at ``pos`` (continuation marker or legacy)."""
    if data[pos : pos + 4] == CONTINUATION:
        (length,) = struct.unpack_from("<i", data, pos + 4)
        return pos + 8, length
    (length,) = struct.unpack_from("<i", data, pos)
    return pos + 4, length


def measure(data: bytes, fmt: ScanFormat) -> ScanCost:
    """The :class:`ScanCost` of a complete file or stream, from its message metadata (``ValueError`` if unreadable).

    The IPC file format is measured through its footer's blocks (what pyarrow's file reader reads),
    the stream through its message framing.
    """
    rows = values = decoded = 0
    n = len(data)
    if fmt == "file":
        (footer_length,) = struct.unpack_from("<i", data, n - 10)
        footer_lo = n - 10 - footer_length
        if footer_lo < 0:
            raise ValueError("footer out of bounds")
        footer = _root(data, footer_lo, n - 10)
        for index in (2, 3):  # dictionaries, recordBatches: Block {offset: long, metaDataLength: int, bodyLength: long}
            for offset, meta_length, _body_length in footer.structs(index, "<qi4xq"):
                if offset < 0 or meta_length < 8 or offset + meta_length > n:
                    raise ValueError("block out of bounds")
                meta_lo, length = _framed(data, offset)
                if length < 0 or meta_lo + length > offset + meta_length:
                    raise ValueError("block metadata out of bounds")
                r, v, d, _ = _message_cost(data, meta_lo, meta_lo + length, offset + meta_length)
                rows, values, decoded = rows + r, values + v, decoded + d
        return ScanCost(rows, values, decoded)
    pos = 0
    while pos + 4 <= n:
        meta_lo, length = _framed(data, pos)
        if length == 0:
            break
        if length < 0 or meta_lo + length > n:
            raise ValueError(f"message at byte {pos} out of bounds")
        r, v, d, body_length = _message_cost(data, meta_lo, meta_lo + length, None)
        rows, values, decoded = rows + r, values + v, decoded + d
        pos = meta_lo + length + body_length
    return ScanCost(rows, values, decoded)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300] or type(exc).__name__


def _is_string_type(type_: pa.DataType) -> bool:
    if pa.types.is_dictionary(type_):
        type_ = type_.value_type
    return (
        pa.types.is_string(type_)
        or pa.types.is_large_string(type_)
        or pa.types.is_string_view(type_)
    )


def _scan_level(path: str, name: str, metadata: dict[str, Any], table: pa.Table, consumed: set[str], parse: Any) -> Any:
    """``scan_number`` or ``timestamp``: from the schema metadata, else from a column with one value for all rows.

    When the metadata has it, a column of that name is an ordinary per-asset column and passes through.
    """
    if name in metadata:
        raw = metadata.pop(name)
        try:
            return parse(raw)
        except ValueError as exc:
            raise ScanFileRejected(path, f"invalid {name} in schema metadata ({exc})") from None
    if name not in table.column_names:
        raise ScanFileRejected(path, f"missing {name} (neither schema metadata nor column)")
    column = table.column(name)
    consumed.add(name)
    if len(column) == 0:
        raise ScanFileRejected(path, f"missing {name} (the {name} column has no rows)")
    try:
        distinct = column.unique()
    except pa.ArrowException as exc:
        raise ScanFileRejected(path, f"invalid {name} column of type {column.type} ({_one_line(exc)})") from None
    if len(distinct) != 1:
        raise ScanFileRejected(path, f"{name} differs between rows ({len(distinct)} distinct values in the {name} column)")
    if distinct.null_count:
        raise ScanFileRejected(path, f"invalid {name} (the {name} column is null)")
    try:
        if pa.types.is_timestamp(distinct.type):
            value: Any = timestamp_from_epoch(distinct.cast(pa.int64())[0].as_py(), distinct.type.unit)
            if distinct.type.tz is None:  # wall-clock time: the scanner's zone (setting scanner_timezone) says where
                value = value.replace(tzinfo=None)
        else:
            value = distinct[0].as_py()
        return parse(value)
    except (ValueError, pa.ArrowException) as exc:
        raise ScanFileRejected(path, f"invalid {name} column ({_one_line(exc)})") from None


def column_values(column: pa.ChunkedArray | pa.Array) -> Sequence[Any]:
    """One column as a JSON-ready sequence, aligned with the rows (a list, or a numpy array for numbers).

    * numbers: ints and floats; NaN, ±inf and nulls become ``null`` in JSON;
    * timestamps: ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` text (no time zone → UTC; ns truncated to µs);
    * durations: seconds (float); dates: ``YYYY-MM-DD``; times: ``HH:MM:SS[.ffffff]``;
    * decimals: text (exact; a float would round); binary: base64 text;
    * strings, bools, lists, structs (objects), maps (``[[key, value], ...]``) as ``to_pylist`` gives them;
    * anything ``to_pylist`` cannot convert (e.g. nanosecond times): Arrow's own text for each value.
    """
    if isinstance(column, pa.ChunkedArray):
        if column.num_chunks == 1:
            array = column.chunk(0)
        elif column.num_chunks == 0:
            array = pa.array([], type=column.type)
        else:
            array = pa.concat_arrays(column.chunks)
    else:
        array = column
    type_ = array.type
    if pa.types.is_dictionary(type_):
        array = array.dictionary_decode()
        type_ = array.type
    if NUMPY_COLUMNS and type_.id in _NUMPY_TYPE_IDS:
        # orjson writes numpy arrays straight from their buffer, with the same text as for Python
        # floats/ints (float32/float16 excluded: orjson would print them at their own precision).
        if array.null_count:
            if type_.id != _FLOAT64_ID:
                return array.to_pylist()
            array = array.fill_null(math.nan)  # NaN is written as null, like a null
        return array.to_numpy(zero_copy_only=False)
    if pa.types.is_timestamp(type_):
        unit = type_.unit
        return [
            None if value is None else format_timestamp(timestamp_from_epoch(value, unit))
            for value in array.cast(pa.int64()).to_pylist()
        ]
    if pa.types.is_duration(type_):
        scale = _UNIT_SCALE[type_.unit]
        return [None if value is None else value / scale for value in array.cast(pa.int64()).to_pylist()]
    try:
        return array.to_pylist()
    except (pa.ArrowException, ValueError):
        return array.cast(pa.string()).to_pylist()


_UNIT_SCALE = {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}
_FLOAT64_ID = pa.float64().id
_NUMPY_TYPE_IDS = frozenset(
    t.id
    for t in (pa.float64(), pa.int8(), pa.int16(), pa.int32(), pa.int64(), pa.uint8(), pa.uint16(), pa.uint32(), pa.uint64())
)


def scan_number_of_file(path: str | os.PathLike[str]) -> int | None:
    """The scan number of one file: from its name, else from its Arrow schema (or first row).

    For the freshness check's look at files that may still be written (:mod:`.health_disk`); the
    bridge reads whole scans with :func:`read_scan`.

    Reading the schema is cheap: the IPC file format's footer, or the stream's first message. The
    number may also be a column (the scan contract allows both); then the file is read the way the
    bridge reads it (validated, its decoded size bounded before decoding). Any problem
    (a file being written, not Arrow) gives None: the caller then cannot compare, and says nothing.
    """
    number = scan_number_from_name(path)
    if number is not None:
        return number
    try:
        with pa.OSFile(str(path), "rb") as source:
            reader: Any
            try:
                reader = pa.ipc.open_file(source)
            except pa.ArrowInvalid:  # not the file format: the stream format, or not Arrow
                source.seek(0)
                reader = pa.ipc.open_stream(source)
            metadata = decode_metadata(reader.schema.metadata)
            if "scan_number" in metadata:
                return parse_scan_number(metadata["scan_number"])
            column = "scan_number" in reader.schema.names
    except (pa.ArrowException, OSError, ValueError, TypeError):
        return None
    if column:  # decoding data: only through the bridge's reader (validated, its size bounded before decoding)
        try:
            values = read_table(path, DEFAULT_MAX_FILE_BYTES).column("scan_number")
            return parse_scan_number(values[0].as_py()) if len(values) else None
        except (ScanFileIncomplete, ScanFileRejected, ValueError):
            return None
    return None
