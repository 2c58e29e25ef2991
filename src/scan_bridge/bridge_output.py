"""Reading the bridge's output, as the daemon does: levels, messages, and the records it acts on.

The bridge writes one JSON object per line (``--log-format json``, :class:`~scan_bridge.logs.JsonFormatter`).
The daemon forwards each line at the bridge's level, and acts on a few records, recognised by their
structured fields (markers in :mod:`.names`), never by their message text, which a file name can forge.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from . import names
from .bridge_process import BridgeProcess, Line
from .logs import printable

_LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING, "ERROR": logging.ERROR,
           "CRITICAL": logging.CRITICAL}

#: Bridge log records that become daemon events: ``fields.event`` in the bridge's JSON line -> event name
#: (``scan-bridge.<name>``). Read from the record's fields, never from its message text.
BRIDGE_EVENTS = {names.COUNTER_RESET: names.COUNTER_RESET_EVENT}


def bridge_event(text: str) -> tuple[str, dict[str, Any]] | None:
    """(event name, the record's fields) for a bridge JSON line whose ``fields.event`` is in :data:`BRIDGE_EVENTS`."""
    if '"event"' not in text:  # cheap: most lines are not events
        return None
    payload = bridge_payload(text)
    fields = payload.get("fields") if payload is not None else None
    if not isinstance(fields, dict):
        return None
    name = BRIDGE_EVENTS.get(str(fields.get("event")))
    return (name, fields) if name is not None else None


def bridge_payload(text: str) -> dict[str, Any] | None:
    """The JSON object of one line of bridge output (``--log-format json``); None for any other line."""
    if not text.startswith("{"):
        return None
    try:
        payload = json.loads(text)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) and "message" in payload else None


def bridge_line(text: str, stream: str) -> tuple[int, str]:
    """The level and message of one line of bridge output (JSON from ``--log-format json``, else raw).

    The message is made :func:`~scan_bridge.logs.printable`: the JSON line carries file names with
    their newlines and escapes decoded, and the Prefect log (and the worker's console) must show one
    line per bridge line, never a line a file name forged.
    """
    payload = bridge_payload(text)
    if payload is not None:
        level = _LEVELS.get(str(payload.get("level", "INFO")).upper(), logging.INFO)
        return level, printable(str(payload["message"]))
    return (logging.WARNING if stream == "stderr" else logging.INFO), printable(text)


def crashed_reader_file(text: str) -> tuple[str, str] | None:
    """(file, reason) when a bridge line reports a file that crashed a reader (a previous bridge died
    reading it, and the bridge now skips it for good); None for any other line.

    Read from the line's structured fields (``event``, ``crashed_reader``, ``file``, ``reason``, see
    names.FILE_REJECTED), never from its message text, which a file name can forge.
    """
    payload = bridge_payload(text)
    found = payload.get("fields") if payload is not None else None
    if not isinstance(found, dict) or found.get("event") != names.FILE_REJECTED or found.get("crashed_reader") is not True:
        return None
    return str(found.get("file", "")), str(found.get("reason", ""))


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
