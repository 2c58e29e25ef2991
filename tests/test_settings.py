"""Configuration: bad values fail before any I/O with exit 2 and one line naming the setting; secrets from
the environment or a file, and a warning when one is given as a flag."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from scan_bridge.daemon_flow import bridge_environment
from scan_bridge.service import load_settings
from scan_bridge.settings import (
    BridgeSettings,
    DaemonSettings,
    check_address,
    command_line_secret_warnings,
    describe_validation_error,
)

from .support import wait_for


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No SCAN_BRIDGE_* setting from the outside; a real watch dir."""
    for name in list(os.environ):
        if name.startswith("SCAN_BRIDGE_") and not name.startswith("SCAN_BRIDGE_TEST_"):
            monkeypatch.delenv(name)
    watch = tmp_path / "scans"
    watch.mkdir()
    monkeypatch.setenv("SCAN_BRIDGE_WATCH_DIR", str(watch))
    return watch


def problem(args: list[str]) -> str:
    with pytest.raises(ValidationError) as info:
        load_settings(args)
    line = describe_validation_error(info.value)
    assert "\n" not in line
    return line


# -- member addresses ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("127.0.0.1:5701", "127.0.0.1:5701"),
        ("hz-1.example.com:5702", "hz-1.example.com:5702"),
        ("member_1", "member_1:5701"),
        ("[::1]:5701", "[::1]:5701"),
        ("[fe80::1]", "[fe80::1]:5701"),
        ("localhost:065535", "localhost:65535"),
    ],
)
def test_good_member_addresses(given: str, expected: str) -> None:
    assert check_address(given) == expected


@pytest.mark.parametrize(
    "given",
    ["bad addr:5701", "http://h:5701", "h:5701/path", ":5701", "h:", "h:0", "h:65536", "h:port", "::1", "[::1", "[nope]:5701",
     "[::1]x", "-h:5701", "h..x:5701", "h:５７０１", "999.1.1.1.1:5701" + "x"],
)
def test_bad_member_addresses_are_errors_naming_the_setting(given: str) -> None:
    line = problem(["--hazelcast-members", f"127.0.0.1:5701,{given}"])
    assert line.startswith("invalid setting --hazelcast-members / SCAN_BRIDGE_HAZELCAST_MEMBERS: "), line
    assert repr(given) in line


# -- numbers and folders -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "Infinity"])
@pytest.mark.parametrize("setting", ["hazelcast-connect-timeout-s", "hazelcast-invocation-timeout-s", "complete-deadline-s", "poll-interval-s"])
def test_infinite_or_nan_timeouts_are_errors(setting: str, value: str) -> None:
    line = problem([f"--{setting}={value}"])
    assert f"--{setting} / SCAN_BRIDGE_{setting.upper().replace('-', '_')}" in line


def test_infinite_daemon_timeouts_are_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCAN_BRIDGE_HEALTH_TIMEOUT_S", "inf")
    with pytest.raises(ValidationError) as info:
        DaemonSettings()
    assert "--health-timeout-s / SCAN_BRIDGE_HEALTH_TIMEOUT_S: Input should be a finite number" in describe_validation_error(info.value)


def test_an_empty_watch_dir_is_an_error_not_the_current_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    for args in (["--watch-dir", ""], ["--watch-dir", "  "]):
        assert "--watch-dir / SCAN_BRIDGE_WATCH_DIR: is empty" in problem(args)
    monkeypatch.setenv("SCAN_BRIDGE_WATCH_DIR", "")
    assert "SCAN_BRIDGE_WATCH_DIR: is empty" in problem([])
    with pytest.raises(ValidationError, match="is empty"):
        DaemonSettings()


# -- secrets ---------------------------------------------------------------------------------------------


def test_password_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCAN_BRIDGE_HAZELCAST_PASSWORD", "from-env")
    settings = load_settings([])
    assert settings.client_config()["creds_password"] == "from-env"
    assert "from-env" not in repr(settings) and "from-env" not in str(settings.model_dump())


def test_passwords_from_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret, key_secret = tmp_path / "password", tmp_path / "ssl-password"
    secret.write_text('p"a\\ss word\n')
    key_secret.write_text("key-pass")
    monkeypatch.setenv("SCAN_BRIDGE_HAZELCAST_SSL_PASSWORD_FILE", str(key_secret))
    settings = load_settings(["--hazelcast-password-file", str(secret), "--hazelcast-ssl-enabled", "true"])
    config = settings.client_config()
    assert config["creds_password"] == 'p"a\\ss word'  # one trailing newline dropped, nothing else
    assert config["ssl_password"] == "key-pass"


def test_password_file_problems_name_the_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    line = problem(["--hazelcast-password-file", str(tmp_path / "missing")])
    assert line.startswith("invalid setting --hazelcast-password-file / SCAN_BRIDGE_HAZELCAST_PASSWORD_FILE: cannot read"), line
    (tmp_path / "empty").write_text("\n")
    assert "is empty" in problem(["--hazelcast-password-file", str(tmp_path / "empty")])
    (tmp_path / "pw").write_text("one")
    monkeypatch.setenv("SCAN_BRIDGE_HAZELCAST_PASSWORD", "other")
    line = problem(["--hazelcast-password-file", str(tmp_path / "pw")])
    assert "are both set; give one of them" in line and "other" not in line and "one" not in line.replace("one of", "")


def test_secret_flags_are_warned_about() -> None:
    assert command_line_secret_warnings(["--watch-dir", "x", "--hazelcast-password-file", "f"]) == []
    warnings = command_line_secret_warnings(["--hazelcast-password", "s3cret", "--hazelcast-ssl-password=k3y"])
    assert len(warnings) == 2
    assert warnings[0].startswith("--hazelcast-password on the command line is visible")
    assert "SCAN_BRIDGE_HAZELCAST_PASSWORD_FILE" in warnings[0] and "--hazelcast-ssl-password-file" in warnings[1]
    assert not any("s3cret" in w or "k3y" in w for w in warnings)


def test_the_daemon_passes_a_password_file_on_as_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pw").write_text("hidden\n")
    monkeypatch.setenv("SCAN_BRIDGE_HAZELCAST_PASSWORD_FILE", str(tmp_path / "pw"))
    env = bridge_environment(DaemonSettings())
    assert env["SCAN_BRIDGE_HAZELCAST_PASSWORD_FILE"] == str(tmp_path / "pw")
    assert "SCAN_BRIDGE_HAZELCAST_PASSWORD" not in env and "hidden" not in env.values()
    # The bridge reads what the daemon passes on.
    monkeypatch.setattr(os, "environ", {**env})
    assert BridgeSettings().client_config()["creds_password"] == "hidden"


def test_the_daemon_passes_its_scanner_timezone_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The bridge reads scan times in the zone the health check reads them in (issue 14)."""
    env = bridge_environment(DaemonSettings(scanner_timezone="Europe/Amsterdam", watch_dir=tmp_path))
    monkeypatch.setattr(os, "environ", {**env})
    assert str(BridgeSettings().scanner_zone) == "Europe/Amsterdam"


# -- the command -------------------------------------------------------------------------------------------


def run_service(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scan_bridge.service", *args], env=env or dict(os.environ),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--hazelcast-members", "bad addr:5701"], "--hazelcast-members / SCAN_BRIDGE_HAZELCAST_MEMBERS"),
        (["--hazelcast-members", "http://127.0.0.1:5701"], "--hazelcast-members / SCAN_BRIDGE_HAZELCAST_MEMBERS"),
        (["--hazelcast-connect-timeout-s", "inf"], "--hazelcast-connect-timeout-s / SCAN_BRIDGE_HAZELCAST_CONNECT_TIMEOUT_S"),
        (["--watch-dir", ""], "--watch-dir / SCAN_BRIDGE_WATCH_DIR"),
        (["--hazelcast-password-file", "/nonexistent/pw"], "--hazelcast-password-file / SCAN_BRIDGE_HAZELCAST_PASSWORD_FILE"),
    ],
)
def test_service_with_bad_values_exits_2_with_one_line(args: list[str], expected: str) -> None:
    result = run_service(*args)
    assert result.returncode == 2, result
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("scan-bridge: invalid setting ") and expected in lines[0], result.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--no-such-flag"], "unrecognized arguments: --no-such-flag"),
        (["--hazelcast-connect-timeout-s", "-inf"], "argument --hazelcast-connect-timeout-s: expected one argument"),
    ],
)
def test_service_with_a_malformed_command_line_exits_2_with_one_line(args: list[str], expected: str) -> None:
    """argparse's own usage-and-error pair becomes the same single line."""
    result = run_service(*args)
    assert result.returncode == 2, result
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("scan-bridge: invalid command line: ") and expected in lines[0], result.stderr


def test_service_warns_about_a_password_flag_and_never_logs_it(tmp_path: Path) -> None:
    env = {**os.environ, "SCAN_BRIDGE_HAZELCAST_MEMBERS": "127.0.0.1:1", "SCAN_BRIDGE_HAZELCAST_CONNECT_TIMEOUT_S": "1"}
    log = tmp_path / "bridge.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "scan_bridge.service", "--hazelcast-password", "pw-in-ps"],
                                env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: "cannot reach Hazelcast" in log.read_text(), 30, "the bridge trying to connect")
        finally:
            proc.terminate()
            proc.wait(15)
    text = log.read_text()
    assert "WARNING --hazelcast-password on the command line is visible to every user" in text, text
    assert "pw-in-ps" not in text


def test_one_summary_interval_for_prefects_log(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 13: the daemon's health line and the bridge's '[OK] Pushed' line reach Prefect's log (a row
    kept for good) once per summary interval, 300 s by default; the daemon passes it on to the bridge."""
    from scan_bridge.supervisor import summary_every

    monkeypatch.delenv("SCAN_BRIDGE_SUMMARY_INTERVAL_S", raising=False)
    assert bridge_environment(DaemonSettings())["SCAN_BRIDGE_SUMMARY_INTERVAL_S"] == "300"
    assert bridge_environment(DaemonSettings(summary_interval_s=45))["SCAN_BRIDGE_SUMMARY_INTERVAL_S"] == "45"
    assert summary_every(DaemonSettings()) == 10  # a health line every 10th check at the defaults
    assert summary_every(DaemonSettings(health_interval_s=30, summary_interval_s=10)) == 1  # never fewer than every check
