"""Names and texts from files are escaped wherever people read them: the bridge's human log, the lines the
daemon forwards into Prefect, the alert texts (tests/test_alerts.py renders those).

A real bridge against a real member, a file whose name holds a newline, a forged "[OK] Pushed" line,
an ANSI escape and a Unicode line separator.
"""

from __future__ import annotations

import logging

import pytest

from scan_bridge.logs import HumanFormatter, printable
from scan_bridge.simulate import write_scan
from scan_bridge.supervisor import bridge_line

from .support import BridgeRunner, View, wait_for

FORGED = "2026-12-01 00:00:00 INFO    [OK] Pushed 1 scans. Latest: #999999"
HOSTILE = f"scan_000005_120000\n{FORGED}\x1b[2J\u2028x.arrow"


@pytest.fixture
def scans(tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    (folder / HOSTILE).write_bytes(b"this is not an Arrow file" * 10)
    return folder


def run_until_rejected(tmp_path, scans, env, fmt: str) -> str:
    """Run a bridge until it has rejected the hostile file and pushed a good scan after it; its whole output."""
    view = View(env)
    try:
        with BridgeRunner(scans, {**env, "SCAN_BRIDGE_LOG_FORMAT": fmt}, tmp_path / f"bridge-{fmt}.log") as bridge:
            wait_for(lambda: "Rejected" in bridge.log_path.read_text(errors="replace"), 60, "the rejection")
            write_scan(scans / "scan_000006_120000.arrow", 6, 5)
            wait_for(lambda: 6 in view.history_keys(), 60, "the good scan after the hostile one")
        return bridge.log_path.read_bytes().decode("utf-8")
    finally:
        view.close()


def test_human_log_has_no_forged_line(tmp_path, scans, env) -> None:
    text = run_until_rejected(tmp_path, scans, env, "human")
    assert "\x1b" not in text and "\u2028" not in text
    lines = text.split("\n")
    assert not any(line.startswith(FORGED) for line in lines), text
    rejected = [line for line in lines if "Rejected /" in line]
    assert rejected and all("\\n" + FORGED + "\\x1b[2J\\u2028x.arrow" in line for line in rejected), rejected
    assert all("#999999" not in line for line in lines if "Rejected /" not in line)


def test_daemon_forwards_one_escaped_line_per_bridge_line(tmp_path, scans, env) -> None:
    """The JSON log carries the name exactly (JSON escapes it); what the daemon logs into Prefect is one line."""
    text = run_until_rejected(tmp_path, scans, env, "json")
    forwarded = [bridge_line(raw, "stdout") for raw in text.splitlines() if raw]
    messages = [message for _, message in forwarded]
    rejected = [m for m in messages if m.startswith("Rejected ")]
    assert rejected, messages
    for message in messages:
        assert message.isprintable(), message
    assert "\\n" + FORGED in rejected[0]


def test_printable_and_the_human_formatter() -> None:
    assert printable("plain é 中 text") == "plain é 中 text"
    assert printable("a\nb\r\tc\x1b[0m\x7f\x85\u2028\u202e\udcff") == "a\\nb\\r\\tc\\x1b[0m\\x7f\\x85\\u2028\\u202e\\udcff"
    record = logging.LogRecord("scan_bridge", logging.WARNING, __file__, 1, "Rejected %s: %s", (HOSTILE, "bad"), None)
    line = HumanFormatter("%(levelname)s %(message)s").format(record)
    assert "\n" not in line and line.startswith("WARNING Rejected scan_000005_120000\\n2026")
