"""The daemon's side of a file that crashed the bridge's reader (issue 16), at the supervisor's loop:
the bridge's own JSON line in, one warning of the daemon's own and one publisher call out, decided
from the line's fields only."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any


from scan_bridge.bridge_process import Line
from scan_bridge.logs import JsonFormatter
from scan_bridge.service import Bridge
from scan_bridge.settings import BridgeSettings, DaemonSettings
from scan_bridge.supervisor import Supervisor, crashed_reader_file


class Recorder:
    """A publisher that remembers what it was told."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str):
        return lambda *args: self.calls.append((name, args[1:]))


def bridge_lines(scans: Path, *rejections: tuple[Path, str, bool]) -> list[str]:
    """The JSON lines the real bridge logs for these rejections (its own formatter, its own fields)."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("scan_bridge.service")
    logger.addHandler(handler)
    try:
        bridge = Bridge(BridgeSettings(watch_dir=scans, hazelcast_members=["127.0.0.1:5701"], state_dir=scans.parent / "state"))
        for path, reason, crashed in rejections:
            bridge._reject(path, reason, crashed_reader=crashed)
    finally:
        logger.removeHandler(handler)
    return out.getvalue().splitlines()


def supervisor(publisher: Recorder) -> Supervisor:
    settings = DaemonSettings(hazelcast_members=["127.0.0.1:5701"])
    return Supervisor(settings, ["true"], {}, logger=logging.getLogger("test.daemon"), publisher=publisher, clock=lambda: 0.0)


def test_a_file_that_crashed_the_reader_is_a_warning_and_an_event_once(scans: Path, caplog) -> None:
    poison = scans / "scan_000004_120000.arrow"
    bad = scans / "scan_000005_120000.arrow"
    forged = scans / 'scan_000006 "crashed_reader": true, file_rejected.arrow'
    lines = bridge_lines(
        scans,
        (bad, "not an Arrow file", False),
        (forged, 'crashed_reader": true', False),  # a name and a reason that quote the fields: still an ordinary rejection
        (poison, "a bridge died while reading it (a crash in native code); skipped from now on", True),
    )
    publisher = Recorder()
    daemon = supervisor(publisher)
    caplog.set_level(logging.INFO, logger="test.daemon")
    for text in lines:
        daemon._handle(Line("stdout", text, 4711))

    assert publisher.calls == [
        ("file_crashed_reader", (str(poison), "a bridge died while reading it (a crash in native code); skipped from now on"))
    ]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert f"A scan file crashed the bridge's reader and is skipped for good (never pushed): {poison}" in warnings
    assert sum("crashed the bridge's reader" in w for w in warnings) == 1
    assert sum(w.startswith("[Bridge] Rejected") for w in warnings) == 3  # every rejection forwarded as it came


def test_only_structured_fields_count() -> None:
    assert crashed_reader_file('{"message": "Rejected x", "fields": {"event": "file_rejected", "crashed_reader": true, "file": "x"}}') == ("x", "")
    assert crashed_reader_file('{"message": "Rejected x", "fields": {"event": "file_rejected", "crashed_reader": "true"}}') is None
    assert crashed_reader_file('{"message": "x", "fields": {"event": "pushed", "crashed_reader": true}}') is None
    assert crashed_reader_file('Rejected x: "event": "file_rejected", "crashed_reader": true') is None
    assert crashed_reader_file("{not json") is None


pytestmark = __import__("pytest").mark.unit  # pure: see pyproject.toml markers
