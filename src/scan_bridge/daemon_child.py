"""The daemon's child: how the bridge is started (command, environment), its pidfile, and the hook
that kills it by that pidfile when the daemon's run is cancelled or crashed.

Three layers make sure the bridge never outlives the daemon, because Prefect has open reports of
cancelled runs leaving subprocesses behind (PrefectHQ/prefect#17593, #20979):

1. ``try/finally`` in the supervisor stops the bridge (SIGTERM, then SIGKILL) on cancellation,
   Ctrl+C, SIGTERM or any error;
2. the bridge carries a parent-death signal (SIGKILL), set from a spawner thread that lives as long
   as the daemon (:mod:`.bridge_process`), so a SIGKILLed daemon takes the bridge with it;
3. ``on_cancellation`` / ``on_crashed`` hooks (:func:`kill_bridge_hook`), which run in a separate
   process after the flow process is gone, kill whatever the pidfile still names.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from .runfiles import clean_stale, kill_bridge_by_pidfile, pidfile_for
from .settings import DaemonSettings, HazelcastSettings, env_var


def bridge_command() -> list[str]:
    """``python -m scan_bridge.service --log-format json``, with this interpreter: JSON lines for :mod:`.bridge_output`."""
    return [sys.executable, "-m", "scan_bridge.service", "--log-format", "json"]


def bridge_environment(settings: DaemonSettings) -> dict[str, str]:
    """The daemon's environment plus its effective Hazelcast and folder settings, for the bridge."""
    env = dict(os.environ)
    # A secret read from a file is passed on as that file, not as its content.
    from_file = {name.removesuffix("_file") for name in HazelcastSettings.model_fields
                 if name.endswith("_file") and getattr(settings, name) is not None}
    for name in HazelcastSettings.model_fields:
        value = getattr(settings, name)
        if name in from_file:
            env.pop(env_var(name), None)
            continue
        if value is None:
            continue
        if isinstance(value, list):
            value = ",".join(value)
        elif hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        env[env_var(name)] = str(value)
    if settings.watch_dir is not None:
        env[env_var("watch_dir")] = str(settings.watch_dir)
    # The bridge reads scan times in the zone the health check reads them in (issue 14).
    env[env_var("scanner_timezone")] = settings.scanner_timezone
    # Each forwarded line is a row in Prefect's database for as long as the run is kept (for ever: the
    # run never ends): under the daemon the bridge summarises at the daemon's summary interval.
    env[env_var("summary_interval_s")] = f"{settings.summary_interval_s:g}"
    return env


def failover_elector(settings: DaemonSettings) -> Any:
    """Failover (``SCAN_BRIDGE_FAILOVER``): the lease elector that decides when this daemon's bridge runs; else None."""
    if not settings.failover:
        return None
    from .lease_elector import LeaseElector

    return LeaseElector(settings, settings.lease_key, settings.machine_name,
                        lease_s=settings.lease_s, renew_s=settings.lease_renew_s)


def bridge_pidfile(run_id: str, logger: Any) -> Path | None:
    """This run's pidfile in the private run-file directory (stale ones cleaned first); None if there is no safe place."""
    try:
        clean_stale()
        return pidfile_for(run_id)
    except (OSError, ValueError) as exc:  # supervising the bridge matters more than the out-of-process kill
        logger.warning("No pidfile (the cancel hooks cannot kill a bridge left behind): %s", exc)
        return None


def kill_bridge_hook(flow: Any, flow_run: Any, state: Any) -> None:
    """Hook for on_cancellation / on_crashed: kills the bridge only if it is still the very process recorded."""
    kill_bridge_by_pidfile(str(flow_run.id))
