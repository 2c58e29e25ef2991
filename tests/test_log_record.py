"""The bridge's JSON log line (log_record.py): what logs.py writes, bridge_output.py reads back field
for field, through the one set of keys both import."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from scan_bridge import names
from scan_bridge.bridge_output import bridge_line, bridge_record, crashed_reader_file
from scan_bridge.log_record import EVENT_IN_LINE, BridgeRecord, CrashedReader, Field, Key
from scan_bridge.logs import JsonFormatter, fields


@pytest.fixture
def bridge_log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger of the bridge's that writes JSON lines, as ``--log-format json`` does, into a buffer."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("scan_bridge.test_log_record")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    try:
        yield logger, out
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def test_a_line_written_by_logs_is_read_back_field_for_field(bridge_log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = bridge_log
    name = 'scan_000007 "message":"forged"\n[OK] Pushed.arrow'
    try:
        raise ValueError("bad footer")
    except ValueError:
        logger.warning("Rejected %s: %s", name, "bad footer", exc_info=True,
                       extra=fields(**BridgeRecord.rejected_fields(name, "bad footer", crashed_reader=True),
                                    size=12, path=Path("/scans/x.arrow")))
    [line] = out.getvalue().splitlines()
    written = json.loads(line)
    assert list(written) == [str(key) for key in Key], "every key, in the order they are declared"

    record = bridge_record(line)
    assert record is not None
    assert record.time == written["time"] and record.time.endswith("+00:00")
    assert record.level == "WARNING"
    assert record.message == f"Rejected {name}: bad footer"
    assert record.fields == {"file": name, "reason": "bad footer", "event": "file_rejected", "crashed_reader": True,
                             "size": 12, "path": "/scans/x.arrow"}
    assert record.exception is not None and record.exception.startswith("Traceback") and "ValueError: bad footer" in record.exception
    assert record.event == names.FILE_REJECTED
    assert crashed_reader_file(line) == CrashedReader(name, "bad footer")
    assert bridge_line(line, "stdout") == (logging.WARNING, "Rejected scan_000007 \"message\":\"forged\"\\n[OK] Pushed.arrow: bad footer")
    assert BridgeRecord.from_json(record.to_json()) == record, "written again, read again: the same record"


def test_a_line_without_fields_or_traceback_has_neither(bridge_log: tuple[logging.Logger, io.StringIO]) -> None:
    logger, out = bridge_log
    logger.info("Pushed %d", 3)
    logger.info("No fields", extra=fields())
    lines = out.getvalue().splitlines()
    assert [list(json.loads(line)) for line in lines] == [[Key.TIME, Key.LEVEL, Key.MESSAGE]] * 2
    record = bridge_record(lines[0])
    assert record is not None and (record.level, record.message, record.fields, record.exception) == ("INFO", "Pushed 3", {}, None)
    assert record.event is None and record.crashed_reader() is None


def test_the_line_is_what_the_daemon_has_always_read() -> None:
    """The bytes on the wire did not change when the keys got one home: a daemon of the previous release reads them."""
    record = logging.LogRecord("scan_bridge.service", logging.ERROR, __file__, 1, "Fenced: %s", ("epoch 3",), None)
    record.created = 1_764_633_600.25
    record.fields = {"event": names.FENCED, "epoch": 3}
    assert JsonFormatter().format(record) == (
        '{"time":"2025-12-02T00:00:00.250+00:00","level":"ERROR","message":"Fenced: epoch 3",'
        '"fields":{"event":"fenced","epoch":3}}'
    )


@pytest.mark.parametrize(
    "line",
    [
        "plain text",
        "{not json",
        '["a list"]',
        '{"level": "INFO"}',  # no message
    ],
)
def test_a_line_that_is_not_a_record_is_none(line: str) -> None:
    assert bridge_record(line) is None and BridgeRecord.from_json(line) is None


def test_a_lenient_reader_for_what_the_line_lacks() -> None:
    record = BridgeRecord.from_json('{"message": "m", "fields": "not an object"}')
    assert record == BridgeRecord(time="", level="INFO", message="m", fields={}, exception=None)


def test_the_keys_the_daemon_reads_are_declared_once() -> None:
    """The daemon's reader and the bridge's writer name no key of their own (each comes from log_record)."""
    import inspect

    from scan_bridge import bridge_output, logs

    for module in (bridge_output, logs):
        source = inspect.getsource(module)
        for key in (*Key, *Field):
            assert f'"{key}"' not in source or (module is logs and key is Key.FIELDS), f"{module.__name__} spells {key!r}"
    assert EVENT_IN_LINE == '"event"'


pytestmark = pytest.mark.unit  # pure: see pyproject.toml markers
