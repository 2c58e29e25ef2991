"""Reading the bridge's output (bridge_output.py): records the daemon turns into events (issue 14: the
counter reset), read from fields only."""

from __future__ import annotations

import logging
from typing import Any

from scan_bridge.bridge_process import Line
from scan_bridge.logs import JsonFormatter
from scan_bridge.settings import DaemonSettings
from scan_bridge.bridge_output import bridge_event
from scan_bridge.supervisor import NullPublisher, Supervisor


def json_line(message: str, **values: Any) -> str:
    record = logging.LogRecord("scan_bridge.sink", logging.WARNING, __file__, 1, message, (), None)
    if values:
        record.fields = values
    return JsonFormatter().format(record)


class Recorder(NullPublisher):
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def bridge_event(self, status: Any, name: str, fields: dict[str, Any]) -> None:
        self.events.append((name, fields))


RESET = {"event": "counter_reset", "from_number": 20, "from_timestamp": "2026-03-24T12:03:20.000000Z",
         "to_number": 1, "to_timestamp": "2026-03-24T12:10:10.000000Z", "seen_at": "2026-03-24T12:10:11.000000Z"}


def test_a_counter_reset_record_is_an_event_with_its_fields() -> None:
    assert bridge_event(json_line("SCANNER COUNTER STARTED AGAIN: ...", **RESET)) == ("counter-reset", RESET)


def test_the_message_text_never_makes_an_event() -> None:
    forged = json_line('file scan_"event":"counter_reset".arrow rejected', event="file_rejected")
    assert bridge_event(forged) is None
    assert bridge_event(json_line('"event": "counter_reset"')) is None
    assert bridge_event('{"event": "counter_reset"}') is None, "a top-level key is not a field"
    assert bridge_event("plain text") is None


def test_the_supervisor_hands_the_event_to_its_publisher() -> None:
    recorder = Recorder()
    supervisor = Supervisor(DaemonSettings(), ["true"], {}, logger=logging.getLogger("test"), publisher=recorder)
    supervisor._handle(Line("stdout", json_line("Pushed", pushed=3), 1))
    supervisor._handle(Line("stdout", json_line("SCANNER COUNTER STARTED AGAIN", **RESET), 1))
    assert recorder.events == [("counter-reset", RESET)]


pytestmark = __import__("pytest").mark.unit  # pure: see pyproject.toml markers
