"""The names in :mod:`scan_bridge.names` are the ones the places that cannot import them use too."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from scan_bridge import names
from scan_bridge.daemon_flow import scan_bridge_daemon_flow

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]


def test_prefect_yaml_names_the_deployment_pool_and_entrypoint_of_names_py() -> None:
    config = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    (deployment,) = config["deployments"]
    assert deployment["name"] == names.DEPLOYMENT_NAME
    assert deployment["work_pool"]["name"] == names.WORK_POOL
    # A deployment created before any move of the code keeps working: the entrypoint path never moves.
    assert deployment["entrypoint"] == names.FLOW_ENTRYPOINT


def test_the_entrypoint_resolves_to_the_flow_of_that_name() -> None:
    module, _, attribute = names.FLOW_ENTRYPOINT.partition(":")
    import importlib

    assert getattr(importlib.import_module(module), attribute) is scan_bridge_daemon_flow
    assert scan_bridge_daemon_flow.name == names.FLOW_NAME
