"""The JSON document a scan becomes in Hazelcast, and the pure helpers that shape it.

A document is one JSON object (see ``docs/scan-format.md``)::

    {"scan_number": 4228, "timestamp": "2024-05-01T12:00:00.000000Z", "asset_count": 400,
     <other scan-level metadata, in file order>,
     ["metadata": {<metadata keys that collide with the names above>},]
     "assets": ["ASSET0001", ...], "columns": {"eigenvalue": [...], ...},
     "bridge": {"pushed_at": "...Z", "file": "/data/scans/...", "lag_s": 0.123, "bridge_version": "0.1.0"}}

The reader serialises everything but the ``bridge`` block once, when it reads the file
(:func:`encode_body`); :func:`document_json` splices the bridge block in at push time, so a retried
or re-pushed scan never serialises its columns again.

Choices, all documented in ``docs/scan-format.md``:

* Timestamps are always ``YYYY-MM-DDTHH:MM:SS.ffffffZ``: UTC, a ``Z`` suffix (what Java's
  ``Instant.parse``, JavaScript's ``Date`` and Python's ``fromisoformat`` all read), and always six
  fractional digits, so the text has one fixed shape. Nanoseconds are truncated to microseconds.
* Scan-level metadata keys named like a reserved top-level key (:data:`RESERVED_KEYS`) are not
  dropped and do not make the scan invalid: they move, unchanged, into a ``"metadata"`` object.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta, tzinfo
from importlib import metadata as _importlib_metadata
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from .scanfile import ScanRecord

try:
    BRIDGE_VERSION: str = _importlib_metadata.version("scan-bridge")
except _importlib_metadata.PackageNotFoundError:  # running from a source tree that is not installed
    BRIDGE_VERSION = "0.1.0"

#: Top-level keys the bridge writes itself. A scan metadata key with one of these names goes under
#: ``"metadata"`` instead (``scan_number`` and ``timestamp`` are consumed, normalised, as the scan's own).
RESERVED_KEYS: frozenset[str] = frozenset({"asset_count", "assets", "columns", "bridge", "metadata"})

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: History keys are Java ``long`` (64-bit signed): since issue 14 the scan's UTC timestamp in
#: microseconds since the epoch (:func:`scan_bridge.ordering.history_key`), before that its number.
#: A Java consumer looks them up with ``map.get(1714564800000000L)``, a Python one with a client whose
#: ``default_int_type`` is :data:`HISTORY_KEY_INT_TYPE` (``HazelcastSettings.client_config`` sets it).
#: The one place that decides the key type. Scan numbers still fit a long (the document's field).
HISTORY_KEY_INT_TYPE = "LONG"
SCAN_NUMBER_MAX = 2**63 - 1

#: Default bounds on one scan (settings ``max_scan_rows``, ``max_scan_columns``, ``max_document_bytes``):
#: a simulator scan has 400 rows, 15 columns and a ~104 KB document; a member holds documents in its
#: heap, and a 40 MB one was enough to drop a 512 MB member's connection.
DEFAULT_MAX_FILE_BYTES = 256 * 1024 * 1024
DEFAULT_MAX_SCAN_ROWS = 100_000
DEFAULT_MAX_SCAN_COLUMNS = 10_000
DEFAULT_MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
_INTEGER_TEXT = re.compile(r"[+]?\d+")
_NUMBER_TEXT = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")

#: orjson options for the body: naive datetimes are UTC, written with ``Z``; numpy arrays (the reader's
#: fast path for numeric columns) are written from their buffers.
ORJSON_OPTIONS = orjson.OPT_NAIVE_UTC | orjson.OPT_UTC_Z | orjson.OPT_SERIALIZE_NUMPY


def format_timestamp(value: datetime) -> str:
    """``2024-05-01T12:00:00.000000Z``: the one shape every timestamp the bridge writes has (naive means UTC).

    The year always has four digits (``0001-01-01T...``): ``strftime("%Y")`` writes year 1 as ``1``
    on Linux, which no ISO-8601 reader (our own health check included) accepts.
    """
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    else:
        value = value.astimezone(UTC)
    return (
        f"{value.year:04d}-{value.month:02d}-{value.day:02d}T"
        f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}.{value.microsecond:06d}Z"
    )


def parse_timestamp(value: object, zone: tzinfo = UTC) -> datetime:
    """A scan timestamp as a tz-aware UTC datetime.

    Accepts a ``datetime`` (naive means wall-clock time in ``zone``), a ``date`` (midnight UTC), epoch
    seconds as ``int`` or ``float`` (or text holding such a number), and ISO-8601 text (``Z`` or any
    offset; no offset means ``zone``). ``zone`` is the scanner's time zone (setting
    ``scanner_timezone``, default UTC); an ambiguous local time (the hour that repeats in autumn) is
    read as its first occurrence here: :func:`parse_scan_time` gives both readings.
    Raises ``ValueError`` with a short reason for anything else (bools, NaN, out-of-range numbers, other text).
    """
    return parse_scan_time(value, zone)[0]


def parse_scan_time(value: object, zone: tzinfo = UTC) -> tuple[datetime, datetime | None]:
    """(UTC instant, the other UTC instant when the text is an ambiguous naive local time, else None).

    See :func:`parse_timestamp`; the bridge picks between the two readings with
    :func:`scan_bridge.ordering.resolve_fold`.
    """
    if isinstance(value, datetime):
        return _in_zone(value, zone) if value.tzinfo is None else (value.astimezone(UTC), None)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC), None
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{value!r} is not a timestamp")
    if isinstance(value, (int, float)):
        return _from_epoch_seconds(value), None
    if isinstance(value, str):
        text = value.strip()
        if _NUMBER_TEXT.fullmatch(text):
            return _from_epoch_seconds(float(text) if any(c in text for c in ".eE") else int(text)), None
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{value!r} is neither ISO-8601 nor epoch seconds") from None
        return _in_zone(parsed, zone) if parsed.tzinfo is None else (parsed.astimezone(UTC), None)
    raise ValueError(f"{type(value).__name__} {value!r} is not a timestamp")


def _in_zone(naive: datetime, zone: tzinfo) -> tuple[datetime, datetime | None]:
    """A naive wall-clock time in ``zone`` as UTC; the second reading too when the time repeats (DST end)."""
    if zone is UTC:
        return naive.replace(tzinfo=UTC), None
    try:
        first = naive.replace(tzinfo=zone, fold=0).astimezone(UTC)
        second = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    except OverflowError:
        raise ValueError(f"{naive.isoformat()} in {zone} is out of range") from None
    # fold=1 differs from fold=0 in the repeated hour (later instant) and in the spring gap (earlier instant).
    return first, (second if second > first else None)


def _from_epoch_seconds(seconds: float) -> datetime:
    if isinstance(seconds, float) and not math.isfinite(seconds):
        raise ValueError(f"{seconds!r} is not a timestamp")
    try:
        if isinstance(seconds, int):
            return EPOCH + timedelta(seconds=seconds)
        return EPOCH + timedelta(microseconds=round(seconds * 1_000_000))
    except OverflowError:
        raise ValueError(f"epoch seconds {seconds!r} out of range") from None


def timestamp_from_epoch(value: int, unit: str) -> datetime:
    """An Arrow timestamp's stored integer (``unit`` one of s/ms/us/ns since the epoch) as a UTC datetime.

    Arrow stores instants since the Unix epoch whatever the column's time zone, and a column without
    one holds wall-clock times that the scan contract defines as UTC, so both read the same way.
    Nanoseconds are truncated (towards the past) to microseconds.
    """
    if unit == "s":
        micros = value * 1_000_000
    elif unit == "ms":
        micros = value * 1_000
    elif unit == "us":
        micros = value
    elif unit == "ns":
        micros = value // 1_000
    else:
        raise ValueError(f"unknown timestamp unit {unit!r}")
    try:
        return EPOCH + timedelta(microseconds=micros)
    except OverflowError:
        raise ValueError(f"timestamp {value} {unit} out of range") from None


def parse_scan_number(value: object) -> int:
    """A scan number: an integer from 0 to :data:`SCAN_NUMBER_MAX`, given as int, integral float or decimal text."""
    number: int
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{value!r} is not an integer")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"{value!r} is not an integer")
        number = int(value)
    elif isinstance(value, str) and _INTEGER_TEXT.fullmatch(value.strip()):
        number = int(value.strip())
    else:
        raise ValueError(f"{value!r} is not an integer")
    if number < 0:
        raise ValueError(f"{number} is negative")
    if number > SCAN_NUMBER_MAX:
        raise ValueError(f"{number} does not fit a history key (a 64-bit Java long; at most {SCAN_NUMBER_MAX})")
    return number


def decode_metadata_value(raw: bytes) -> Any:
    """A schema metadata value: decoded as JSON where the whole value parses, else the UTF-8 text.

    ``b'42'`` → 42, ``b'{"a": 1}'`` → dict, ``b'"x"'`` → ``"x"``, ``b'2024-05-01T12:00:00Z'`` and
    ``b'BULL'`` → unchanged text, ``b'NaN'`` → ``"NaN"`` (not JSON). Bytes that are not UTF-8 are
    decoded with U+FFFD replacement characters.
    """
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw.decode("utf-8", errors="replace")


def decode_metadata(raw: Mapping[bytes, bytes] | None) -> dict[str, Any]:
    """Schema key/value metadata as a dict of decoded values, in file order."""
    if not raw:
        return {}
    return {key.decode("utf-8", errors="replace"): decode_metadata_value(value) for key, value in raw.items()}


def _default(value: Any) -> Any:
    """orjson fallback for values a column's ``to_pylist`` can hold and JSON has no type for."""
    from decimal import Decimal

    if isinstance(value, Decimal):
        return str(value)  # lossless; a float would round prices and sizes
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray, memoryview)):
        import base64

        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, tuple):  # named tuples (e.g. Arrow's MonthDayNano): orjson takes plain tuples only
        return list(value)
    return str(value)  # anything else exotic: its text rather than losing the scan


def encode_body(
    scan_number: int,
    timestamp: datetime,
    assets: list[str],
    columns: Mapping[str, Sequence[Any]],
    metadata: Mapping[str, Any] | None = None,
) -> bytes:
    """The document without its ``bridge`` block, as JSON bytes (an object: starts ``{``, ends ``}``).

    ``metadata`` is the scan-level metadata other than ``scan_number`` and ``timestamp``; keys in
    :data:`RESERVED_KEYS` go under ``"metadata"``. ``columns`` must already hold JSON-ready values
    aligned with ``assets``. Raises ``ValueError`` when a value cannot be serialised.
    """
    document: dict[str, Any] = {
        "scan_number": scan_number,
        "timestamp": format_timestamp(timestamp),
        "asset_count": len(assets),
    }
    moved: dict[str, Any] = {}
    for key, value in (metadata or {}).items():
        if key in RESERVED_KEYS:
            moved[key] = value
        elif key not in document:  # scan_number / timestamp: the normalised value above wins
            document[key] = value
    if moved:
        document["metadata"] = moved
    document["assets"] = assets
    document["columns"] = columns
    try:
        return orjson.dumps(document, default=_default, option=ORJSON_OPTIONS)
    except orjson.JSONEncodeError as exc:
        raise ValueError(f"cannot serialise the scan as JSON: {exc}") from None


def replace_body_timestamp(body: bytes, scan_number: int, old: datetime, new: datetime) -> bytes:
    """``body`` (from :func:`encode_body`) with its ``timestamp`` changed from ``old`` to ``new``, nothing else touched.

    :func:`encode_body` always starts a body ``{"scan_number":N,"timestamp":"..."``; a body that does
    not is a programming error (ValueError), never silently left with the wrong time.
    """
    head = b'{"scan_number":%d,"timestamp":"%s"' % (scan_number, format_timestamp(old).encode())
    if not body.startswith(head):
        raise ValueError("body does not start with its scan_number and timestamp")
    return b'{"scan_number":%d,"timestamp":"%s"' % (scan_number, format_timestamp(new).encode()) + body[len(head):]


def _path_text(path: os.PathLike[str] | str) -> str:
    # Non-UTF-8 file names hold lone surrogates in Python, which JSON cannot carry.
    return os.fsencode(path).decode("utf-8", errors="replace")


def bridge_block(record: ScanRecord, pushed_at: datetime, writer: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The ``bridge`` block: when the bridge pushed the scan, from which file, and how late.

    ``lag_s`` is ``pushed_at`` minus the scan's ``timestamp`` in seconds (microsecond resolution);
    it is negative when the scanner's clock runs ahead of the bridge's. ``writer`` (failover only:
    ``{"host": <machine>, "epoch": <lease epoch>}``) says which machine wrote it under which lease.
    """
    pushed = parse_timestamp(pushed_at)
    block = {
        "pushed_at": format_timestamp(pushed),
        "file": _path_text(record.path),
        "lag_s": round((pushed - record.timestamp).total_seconds(), 6),
        "bridge_version": BRIDGE_VERSION,
    }
    if writer:
        block.update(writer)
    return block


def document_json(record: ScanRecord, pushed_at: datetime, writer: Mapping[str, Any] | None = None) -> str:
    """The full document text: the record's body with the ``bridge`` block spliced in before its closing brace.

    ``pushed_at`` should be tz-aware; a naive one is taken as UTC.
    """
    body = record.body_json
    if not body.endswith(b"}"):
        raise ValueError("body_json is not a JSON object")
    bridge = orjson.dumps(bridge_block(record, pushed_at, writer))
    return (body[:-1] + b',"bridge":' + bridge + b"}").decode("utf-8")

