"""The reader against a seeded mutation fuzz of valid scans (tests/fuzz.py), each read in a child process.

Against the reader before issue 16 the same files gave, for seed 1, 3 SIGSEGV and 8 uncaught
exceptions (UnicodeDecodeError, IndexError), for seed 2, 5 (SystemError, IndexError,
UnicodeDecodeError); the long run (bench/fuzz_reader.py, docs/reliability.md)
gave 19 SIGSEGV, 10 SIGABRT and 217 exceptions in 10,000 files.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from . import fuzz, hostile

FILES = 360  # 40 per style x compression; about 2 s


@pytest.mark.parametrize("seed", [1, 2])
def test_every_mutated_scan_is_read_or_rejected_with_a_reason_and_never_kills_the_reader(tmp_path, seed):
    results = fuzz.run(seed, FILES, workdir=tmp_path, env=dict(os.environ), keep_crashers=tmp_path / "kept")
    summary = results.summary()
    assert results.files == FILES
    assert not results.signals, f"files killed the reader: {results.crashed} ({summary})"
    assert not results.exceptions, f"exceptions escaped the reader: {summary}"
    assert not results.foreign, f"documents carry bytes that were not in their file: {results.foreign[:3]}"
    assert results.outcomes["no-reason"] == 0
    assert results.oracle_crashes == 0
    # The fuzz is worth something only if it reaches both ends.
    assert results.outcomes["read"] >= FILES // 20 and results.outcomes["rejected"] >= FILES // 4, summary


def test_the_oracle_flags_bytes_that_are_not_in_the_file(tmp_path):
    path = tmp_path / "scan.arrow"
    path.write_bytes(hostile.scan_with_number(3))
    hay = fuzz.haystack(path)
    good = {"scan_number": 3, "timestamp": "x", "assets": ["A", "B"], "columns": {"x": [1.0, 2.0]}}
    assert fuzz.foreign_strings(good, hay) == []
    memory = os.urandom(64)
    leaked = {**good, "columns": {"x": [base64.b64encode(memory).decode()]}}
    assert fuzz.foreign_strings(leaked, hay) == [base64.b64encode(memory).decode()]
    assert fuzz.foreign_strings({**good, "assets": ["A", "secret-from-the-heap"]}, hay) == ["secret-from-the-heap"]
    assert fuzz.foreign_strings({**good, "regime\ufffd": 1}, hay) == ["regime\ufffd"]


CRASHERS = sorted((Path(__file__).parent / "fixtures" / "crashers").glob("*.arrow"))


def test_files_that_killed_the_old_reader_are_rejected_now(tmp_path):
    # Found by the fuzz (seed 1, bench/fuzz_reader.py --keep): each killed the reader before issue 16
    # with the signal in its name, three times out of three (SIGSEGV_..., SIGABRT_...), in every style.
    assert len(CRASHERS) == 8
    worker = fuzz.Worker(dict(os.environ))
    try:
        for path in CRASHERS:
            answer, phase, code = worker.read(path)
            assert code is None, f"{path.name} killed the reader ({code}) in {phase}"
            assert answer["outcome"] == "rejected" and answer["reason"], (path.name, answer)
    finally:
        worker.close()
