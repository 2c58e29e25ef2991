"""Log output for people (short lines) and for the daemon (one JSON object per line).

The daemon forwards the bridge's output into Prefect at the bridge's own level, so the JSON form
carries the level and the structured fields separately from the message; people get the message.
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime, timezone
from typing import Any

from . import names
from .log_record import BridgeRecord

LOGGER_NAME = "scan_bridge"

#: ``fields.event`` of the bridge's line for a file it rejected for good (its home: :mod:`.names`). With
#: ``fields.crashed_reader`` true, a bridge died reading that file (a crash in native code); the daemon
#: turns that line into an event and a warning of its own (:mod:`.bridge_output`), from these fields,
#: never from the message text.
FILE_REJECTED = names.FILE_REJECTED

#: ``extra=`` for a line that goes to the console but not to Prefect's API log (Prefect's
#: ``APILogHandler`` skips records whose ``send_to_api`` is false; plain logging ignores the attribute).
#: The daemon's run never ends, so every line it sends is a database row kept for good
#: (docs/performance.md, section 3): the routine lines stay local, a summary goes every few minutes.
CONSOLE_ONLY: dict[str, Any] = {"send_to_api": False}

#: The attribute :func:`fields` sets on a log record and :class:`JsonFormatter` reads.
_FIELDS_ATTRIBUTE = "fields"

_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str) -> str:
    """``text`` on one line, every character that is not printable written as an escape (``\\n``, ``\\x1b``, ``\\u2028``).

    Names and texts from files end up in log lines, Prefect logs and alert texts; a file name holding
    a newline and a forged "[OK] Pushed ..." must not show as a line of its own, and an ANSI escape
    must not repaint an operator's terminal. Escaped are control characters (C0, C1, DEL), format
    characters such as bidirectional overrides, line and paragraph separators, and the lone
    surrogates that stand for undecodable bytes in a file name (which would fail to encode).
    """
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in text)


def _escape(ch: str) -> str:
    short = _SHORT_ESCAPES.get(ch)
    if short is not None:
        return short
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


class HumanFormatter(logging.Formatter):
    """``time LEVEL message``, the message on one line whatever it quotes (see :func:`printable`).

    A traceback, when there is one, follows on its own lines as usual.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 - logging's name
        record.message = printable(record.message)
        return super().formatMessage(record)


class JsonFormatter(logging.Formatter):
    """One :class:`~scan_bridge.log_record.BridgeRecord` a line: parseable whatever the message holds."""

    def format(self, record: logging.LogRecord) -> str:
        return BridgeRecord(
            time=datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            level=record.levelname,
            message=record.getMessage(),
            fields=getattr(record, _FIELDS_ATTRIBUTE, None) or {},
            exception=self.formatException(record.exc_info) if record.exc_info else None,
        ).to_json()


def setup_logging(fmt: str = "human", level: str = "INFO") -> logging.Logger:
    """Send every record to stdout in the chosen form, and quiet the Hazelcast client's own chatter."""
    handler = logging.StreamHandler(sys.stdout)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(HumanFormatter("%(asctime)s %(levelname)-7s %(message)s", "%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The client logs every connection attempt (with tracebacks) at INFO and WARNING; our own
    # state-change lines say what matters, once.
    logging.getLogger("hazelcast").setLevel(logging.CRITICAL)
    return logging.getLogger(LOGGER_NAME)


def fields(**values: Any) -> dict[str, Any]:
    """``extra=`` for a log call whose structured fields should travel with the JSON line."""
    return {_FIELDS_ATTRIBUTE: values}
