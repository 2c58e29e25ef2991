"""deploy.py's command line for failover (pure): machine names, and --machine where it belongs."""

from __future__ import annotations

import argparse

import pytest

from scan_bridge import names
from scan_bridge.control import build_parser, check_machine

pytestmark = pytest.mark.unit  # pure: see pyproject.toml markers


@pytest.mark.parametrize("name", ["hz-a", "machine_2", "host.example.com", "A"])
def test_machine_names_that_make_a_work_queue_and_a_deployment(name: str) -> None:
    assert check_machine(name) == name
    assert names.machine_deployment(name) == f"scan-bridge-daemon-{name}"


@pytest.mark.parametrize("name", ["", "two words", "-dash-first", "a/b", "x" * 64])
def test_other_machine_names_are_refused_naming_the_value(name: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="is not a machine name"):
        check_machine(name)


def test_machine_on_create_start_run_and_stop() -> None:
    parser = build_parser()
    assert parser.parse_args(["create", "--machine", "a", "--machine", "b"]).machine == ["a", "b"]
    assert parser.parse_args(["create"]).machine is None
    for command in ("start", "run", "stop"):
        assert parser.parse_args([command, "--machine", "a"]).machine == "a"
        assert parser.parse_args([command]).machine is None
