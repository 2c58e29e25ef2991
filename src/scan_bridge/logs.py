"""Log output for people (short lines) and for the daemon (one JSON object per line).

The daemon forwards the bridge's output into Prefect at the bridge's own level, so the JSON form
carries the level and the structured fields separately from the message; people get the message.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone
from typing import Any

LOGGER_NAME = "scan_bridge"


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "message", "fields"}``: one line, parseable whatever the message holds."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            payload["fields"] = fields
        if record.exc_info:
            payload["exception"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str, separators=(",", ":"))


def setup_logging(fmt: str = "human", level: str = "INFO") -> logging.Logger:
    """Send every record to stdout in the chosen form, and quiet the Hazelcast client's own chatter."""
    handler = logging.StreamHandler(sys.stdout)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(message)s", "%Y-%m-%d %H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The client logs every connection attempt (with tracebacks) at INFO and WARNING; our own
    # state-change lines say what matters, once.
    logging.getLogger("hazelcast").setLevel(logging.CRITICAL)
    return logging.getLogger(LOGGER_NAME)


def fields(**values: Any) -> dict[str, Any]:
    """``extra=`` for a log call whose structured fields should travel with the JSON line."""
    return {"fields": values}
