"""Hostile scan files, one function per way a file once stopped the bridge or leaked its memory (issue 16).

Each returns the file's bytes. They are built from valid tables and then damaged the way the
mutation fuzz found (tests/fuzz.py): buffers made with ``Array.from_buffers`` (no validation), or
bytes patched in the written file.
"""

from __future__ import annotations

import functools
import struct
from datetime import UTC, datetime

import pyarrow as pa

META = {"scan_number": "1", "timestamp": "2026-03-24T12:00:00Z"}


def ipc_bytes(table: pa.Table, fmt: str = "stream", compression: str | None = None) -> bytes:
    sink = pa.BufferOutputStream()
    opener = pa.ipc.new_file if fmt == "file" else pa.ipc.new_stream
    with opener(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression=compression)) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _table(columns: dict[str, pa.Array], number: int = 1) -> pa.Table:
    return pa.table(columns).replace_schema_metadata({**META, "scan_number": str(number)})


def _strings(values: list[bytes], offsets: list[int] | None = None, type_: pa.DataType = pa.string()) -> pa.Array:
    data = b"".join(values)
    if offsets is None:
        offsets = [0]
        for value in values:
            offsets.append(offsets[-1] + len(value))
    return pa.Array.from_buffers(
        type_, len(offsets) - 1, [None, pa.py_buffer(struct.pack(f"<{len(offsets)}i", *offsets)), pa.py_buffer(data)]
    )


def invalid_utf8_asset(number: int = 1) -> bytes:
    """The asset column holds bytes that are not UTF-8 (was: UnicodeDecodeError out of the reader)."""
    return ipc_bytes(_table({"asset": _strings([b"ASSET\xff\xfe"]), "x": pa.array([1.0])}, number))


def invalid_utf8_column_name(number: int = 1) -> bytes:
    """A column name that is not UTF-8 (was: UnicodeDecodeError)."""
    data = ipc_bytes(_table({"asset": pa.array(["A"]), "momentum": pa.array([1.0])}, number))
    assert data.count(b"momentum") == 1
    return data.replace(b"momentum", b"\xffomentum")


def offsets_backwards(number: int = 1) -> bytes:
    """String offsets that run backwards (was: SystemError)."""
    assets = _strings([b"AB", b"C"], offsets=[0, 2, 1, 3])
    return ipc_bytes(_table({"asset": assets, "x": pa.array([1.0, 2.0, 3.0])}, number))


def header_out_of_bounds(number: int = 1) -> bytes:
    """A stream whose first message header points a field past its end (was: struct.error)."""
    data = bytearray(ipc_bytes(_table({"asset": pa.array(["A"]), "x": pa.array([1.0])}, number)))
    assert data[:4] == b"\xff\xff\xff\xff"
    base = 8
    table = base + struct.unpack_from("<I", data, base)[0]
    vtable = table - struct.unpack_from("<i", data, table)[0]
    struct.pack_into("<H", data, vtable + 4, 0xFFF0)  # Message.version: far outside the header
    return bytes(data)


def memory_leak(number: int = 1) -> bytes:
    """A binary column whose offsets (beside a null) span 200 KB of a 4-byte buffer.

    The old reader pushed 200 KB of its own memory, base64-encoded, as this column's first value.
    """
    note = ipc_bytes(_table({"asset": pa.array(["A", "B"]), "note": pa.array([b"xyzq", None], pa.binary())}, number))
    data = bytearray(note)
    at = data.find(struct.pack("<3i", 0, 4, 4))
    assert at > 0
    struct.pack_into("<2i", data, at + 4, 200_000, 200_000)
    return bytes(data)


def zstd_bomb(decoded_bytes: int = 40 * 1024 * 1024, number: int = 1) -> bytes:
    """A few KB of zstd that decode to ``decoded_bytes`` (one binary value of zeros)."""
    value = pa.array([b"\x00" * decoded_bytes], pa.large_binary())
    return ipc_bytes(_table({"asset": pa.array(["A"]), "blob": value}, number), "file", "zstd")


def many_rows(rows: int = 2_000_000, number: int = 1) -> bytes:
    """Two million assets, compressed: small on disk, far above ``max_scan_rows``."""
    assets = pa.array(["A"] * rows).dictionary_encode()
    return ipc_bytes(_table({"asset": assets, "x": pa.array([0.0] * rows)}, number), "stream", "zstd")


def many_values(values: int = 20_000_000, number: int = 1) -> bytes:
    """One asset whose list of nulls has 20 million entries: no buffers at all, 100 MB of ``null`` in JSON."""
    nulls = pa.nulls(values)
    lists = pa.ListArray.from_arrays(pa.array([0, values], pa.int32()), nulls)
    return ipc_bytes(_table({"asset": pa.array(["A"]), "l": lists}, number))


def scan_with_number(number: int, timestamp: datetime | None = None) -> bytes:
    """A small valid scan with the given number (and timestamp)."""
    when = (timestamp or datetime(2026, 3, 24, 12, tzinfo=UTC)).isoformat()
    table = pa.table({"asset": pa.array(["A", "B"]), "x": pa.array([1.0, 2.0])})
    return ipc_bytes(table.replace_schema_metadata({"scan_number": str(number), "timestamp": when}))


@functools.cache
def rejected_cases() -> dict[str, tuple[bytes, str]]:
    """name -> (bytes, the start of the rejection reason); the bridge tests put them among good scans."""
    return {
        "invalid_utf8_asset": (invalid_utf8_asset(), "corrupt Arrow stream"),
        "invalid_utf8_column_name": (invalid_utf8_column_name(), "a column name is not UTF-8"),
        "offsets_backwards": (offsets_backwards(), "corrupt Arrow stream"),
        "header_out_of_bounds": (header_out_of_bounds(), "corrupt Arrow stream"),
        "memory_leak": (memory_leak(), "corrupt Arrow stream"),
        "zstd_bomb": (zstd_bomb(), "too large: decodes to"),
        "many_rows": (many_rows(), "too large: 2000000 rows"),
        "many_values": (many_values(), "too large: 20000002 values"),
        "scan_number_2_63": (scan_with_number(2**63), "invalid scan_number"),
    }
