"""What the daemon relies on in Prefect, checked on whichever Prefect is installed (3.8.x and 3.9.x).

Prefect 3.9 changed things a long-running supervised flow can feel (release notes, and the installed
source): flows that *return* Failed are retried when ``retries`` is set; events, automations and the
runner were reworked. These tests pin down, against a real Prefect server, what the daemon needs,
so that an upgrade that breaks one of them fails here with a clear message instead of showing up as
a silent alert months later. The slower end-to-end checks of the same points (SIGTERM, cancellation,
automations) are the daemon, alert and end-to-end tests, which run on both versions (README).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import prefect
import pytest
from packaging.version import Version
from prefect import flow
from prefect.events import emit_event
from prefect.settings import PREFECT_API_URL, temporary_settings
from prefect.states import Failed

from scan_bridge.daemon_flow import _emit_without_run_context, scan_bridge_daemon_flow

from .prefect_support import PrefectServer
from .support import wait_for

PREFECT = Version(prefect.__version__)


@pytest.fixture(scope="module")
def api(prefect_server: PrefectServer) -> Iterator[str]:
    """In-process flows of this module report to the module's real server."""
    with temporary_settings({PREFECT_API_URL: prefect_server.api_url}):
        yield prefect_server.api_url


def _events(api: str, name: str, resource_id: str) -> list[dict]:
    response = httpx.post(f"{api}/events/filter", json={"filter": {"event": {"name": [name]},
                                                                   "resource": {"id": [resource_id]}}, "limit": 10},
                          timeout=10)
    response.raise_for_status()
    return response.json()["events"]


def test_the_light_heartbeat_goes_without_the_run_context_and_others_keep_it(api: str) -> None:
    """The heartbeat event is posted to the public ``POST /api/events`` (no Prefect internals): stored,
    with no related resources; an event emitted the usual way in the same run still gets the run
    attached (what the state-change events' alert templates use)."""
    resource = {"prefect.resource.id": "scan-bridge.daemon.compat-test"}

    @flow(persist_result=False)
    def emits() -> None:
        _emit_without_run_context("scan-bridge.heartbeat", resource, {"status": "healthy"})
        emit_event(event="scan-bridge.healthy", resource=resource, payload={})

    emits()
    beat = wait_for(lambda: _events(api, "scan-bridge.heartbeat", resource["prefect.resource.id"]), 30, "the heartbeat event")
    assert beat[0]["related"] == [] and beat[0]["payload"] == {"status": "healthy"}
    change = wait_for(lambda: _events(api, "scan-bridge.healthy", resource["prefect.resource.id"]), 30, "the state event")
    roles = {related["prefect.resource.role"] for related in change[0]["related"]}
    assert {"flow-run", "flow"} <= roles, f"Prefect no longer attaches the run to events emitted in a flow: {roles}"


def test_a_daemon_run_that_gave_up_is_not_retried(api: str) -> None:
    """The daemon returns Failed when it gives up. Prefect 3.9 retries a flow that *returns* Failed
    when ``retries`` is set (3.8 did not): the daemon sets none, so a run that gave up ends FAILED
    once, and the operator's alert fires once, on every version."""
    assert not scan_bridge_daemon_flow.retries, "a retried daemon would restart a bridge that gave up"

    calls: list[int] = []

    def gives_up() -> object:
        calls.append(1)
        return Failed(message="gave up")

    like_ours = flow(gives_up, name="gives-up-like-the-daemon", persist_result=False,
                     retries=scan_bridge_daemon_flow.retries, retry_delay_seconds=0)
    state = like_ours(return_state=True)
    assert state.is_failed() and len(calls) == 1

    calls.clear()
    with_retries = flow(gives_up, name="gives-up-with-retries", persist_result=False, retries=1, retry_delay_seconds=0)
    state = with_retries(return_state=True)
    if PREFECT >= Version("3.9"):
        assert state.is_failed() and len(calls) == 2, f"Prefect {PREFECT}: returned Failed with retries=1: {state}, ran {len(calls)}x"
    else:  # 3.8 proposed AwaitingRetry and returned without running the flow again
        assert len(calls) == 1, f"Prefect {PREFECT}: returned Failed with retries=1 ran {len(calls)} times"
