"""The bridge's JSON log line: its keys and the typed record that writes and reads it, in one place.

The bridge writes one JSON object per line (``--log-format json``, :class:`~scan_bridge.logs.JsonFormatter`)
and the daemon reads it back (:mod:`.bridge_output`); both go through :class:`BridgeRecord`, so a key
is spelled once, here, and neither side parses the other's strings. The values of ``fields.event``
the daemon acts on (and the "Stopping (" line) are names others know us by: :mod:`.names`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

from . import names


class Key(StrEnum):
    """The keys of the line's JSON object, in the order the bridge writes them."""

    TIME = "time"
    LEVEL = "level"
    MESSAGE = "message"
    #: The record's structured fields (``extra=logs.fields(...)``): present only when there are some.
    FIELDS = "fields"
    #: The formatted traceback: present only when the record has one.
    EXCEPTION = "exception"


class Field(StrEnum):
    """Keys in ``fields`` that the daemon reads (a record's other fields travel as they are)."""

    #: What happened, for records the daemon acts on: a marker from :mod:`.names` (``file_rejected``, ...).
    EVENT = "event"
    #: On a ``file_rejected`` record: true when a bridge died reading the file (a crash in native code).
    CRASHED_READER = "crashed_reader"
    FILE = "file"
    REASON = "reason"


#: The text an ``event`` field takes in a line; a line without it is no event (a cheap test before parsing).
EVENT_IN_LINE = json.dumps(Field.EVENT.value)


class CrashedReader(NamedTuple):
    """A file that crashed a bridge's reader (the bridge skips it for good), as its record says."""

    file: str
    reason: str


@dataclass(frozen=True, slots=True)
class BridgeRecord:
    """One line of the bridge's JSON log."""

    time: str
    level: str
    message: str
    fields: dict[str, Any] = field(default_factory=dict)
    exception: str | None = None

    def to_json(self) -> str:
        """One line, parseable whatever the message holds (``default=str``: a field of any type is written)."""
        payload: dict[str, Any] = {Key.TIME: self.time, Key.LEVEL: self.level, Key.MESSAGE: self.message}
        if self.fields:
            payload[Key.FIELDS] = self.fields
        if self.exception is not None:
            payload[Key.EXCEPTION] = self.exception
        return json.dumps(payload, default=str, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> BridgeRecord | None:
        """The record of one line of bridge output; None for any other line (not JSON, no message).

        Lenient where the line is: a missing level is INFO, fields that are not an object are none.
        """
        if not text.startswith("{"):
            return None
        try:
            payload = json.loads(text)
        except ValueError:
            return None
        if not isinstance(payload, dict) or Key.MESSAGE not in payload:
            return None
        found = payload.get(Key.FIELDS)
        exception = payload.get(Key.EXCEPTION)
        return cls(
            time=str(payload.get(Key.TIME, "")),
            level=str(payload.get(Key.LEVEL, "INFO")),
            message=str(payload[Key.MESSAGE]),
            fields=found if isinstance(found, dict) else {},
            exception=None if exception is None else str(exception),
        )

    @property
    def event(self) -> str | None:
        """``fields.event``, the marker of a record the daemon may act on; None when there is none."""
        value = self.fields.get(Field.EVENT)
        return None if value is None else str(value)

    @staticmethod
    def rejected_fields(file: str, reason: str, *, crashed_reader: bool) -> dict[str, Any]:
        """The fields of a ``file_rejected`` record, written by the bridge as :meth:`crashed_reader` reads them."""
        return {Field.FILE.value: file, Field.REASON.value: reason, Field.EVENT.value: names.FILE_REJECTED,
                Field.CRASHED_READER.value: crashed_reader}

    def crashed_reader(self) -> CrashedReader | None:
        """The file and reason when this is a bridge's ``file_rejected`` record with ``crashed_reader`` true."""
        if self.event != names.FILE_REJECTED or self.fields.get(Field.CRASHED_READER) is not True:
            return None
        return CrashedReader(str(self.fields.get(Field.FILE, "")), str(self.fields.get(Field.REASON, "")))
