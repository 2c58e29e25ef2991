"""Reading the bridge's output, as the daemon does: levels, messages, and the records it acts on.

The bridge writes one JSON object per line (``--log-format json``, :class:`~scan_bridge.logs.JsonFormatter`),
read back here as the same typed :class:`~scan_bridge.log_record.BridgeRecord` (its keys' one home).
The daemon forwards each line at the bridge's level, and acts on a few records, recognised by their
structured fields (markers in :mod:`.names`), never by their message text, which a file name can forge.
"""

from __future__ import annotations

import logging
from typing import Any

from . import names
from .bridge_process import BridgeProcess, Line
from .log_record import EVENT_IN_LINE, BridgeRecord, CrashedReader
from .logs import printable

_LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING, "ERROR": logging.ERROR,
           "CRITICAL": logging.CRITICAL}

#: Bridge log records that become daemon events: ``fields.event`` in the bridge's JSON line -> event name
#: (``scan-bridge.<name>``). Read from the record's fields, never from its message text.
BRIDGE_EVENTS = {names.COUNTER_RESET: names.COUNTER_RESET_EVENT}


def bridge_event(text: str) -> tuple[str, dict[str, Any]] | None:
    """(event name, the record's fields) for a bridge JSON line whose ``fields.event`` is in :data:`BRIDGE_EVENTS`."""
    if EVENT_IN_LINE not in text:  # cheap: most lines are not events
        return None
    record = bridge_record(text)
    name = BRIDGE_EVENTS.get(record.event or "") if record is not None else None
    return None if record is None or name is None else (name, record.fields)


def bridge_record(text: str) -> BridgeRecord | None:
    """The record of one line of bridge output (``--log-format json``); None for any other line."""
    return BridgeRecord.from_json(text)


def bridge_line(text: str, stream: str) -> tuple[int, str]:
    """The level and message of one line of bridge output (JSON from ``--log-format json``, else raw).

    The message is made :func:`~scan_bridge.logs.printable`: the JSON line carries file names with
    their newlines and escapes decoded, and the Prefect log (and the worker's console) must show one
    line per bridge line, never a line a file name forged.
    """
    record = bridge_record(text)
    if record is not None:
        return _LEVELS.get(record.level.upper(), logging.INFO), printable(record.message)
    return (logging.WARNING if stream == "stderr" else logging.INFO), printable(text)


def crashed_reader_file(text: str) -> CrashedReader | None:
    """(file, reason) when a bridge line reports a file that crashed a reader (a previous bridge died
    reading it, and the bridge now skips it for good); None for any other line.

    Read from the line's structured fields (:meth:`~scan_bridge.log_record.BridgeRecord.crashed_reader`),
    never from its message text, which a file name can forge.
    """
    record = bridge_record(text)
    return record.crashed_reader() if record is not None else None


def announces_stop(message: Any, pid: int) -> bool:
    """The bridge's own "Stopping (SIGTERM)" line (service.py logs it as soon as it handles a signal)."""
    if not isinstance(message, Line) or message.pid != pid:
        return False
    return bridge_line(message.text, message.stream)[1].startswith(names.STOPPING_PREFIX)


def tail_text(process: BridgeProcess) -> str:
    """The bridge's last lines as messages (not its JSON), stderr lines marked: for the "gave up" message."""
    return "\n".join(
        ("! " if line.stream == "stderr" else "  ") + bridge_line(line.text, line.stream)[1] for line in process.last_lines()
    )
