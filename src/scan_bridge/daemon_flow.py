"""The daemon: a long-running Prefect flow that keeps the bridge alive and says how fresh the data is.

The flow is a thin shell around :class:`~scan_bridge.supervisor.Supervisor`: it supplies Prefect's
run logger (so every ``[Bridge]`` line shows in the UI), publishes the health figures
(:mod:`.daemon_publisher`: the artifact of :mod:`.daemon_artifact`, events), and turns "gave up"
into a Failed run. How the bridge is started and never left behind: :mod:`.daemon_child`.

This module's path is the deployments' entrypoint (``scan_bridge.daemon_flow:scan_bridge_daemon_flow``,
:data:`~scan_bridge.names.FLOW_ENTRYPOINT`, in ``prefect.yaml``), so it stays, and so do the names it
has always offered (``render_markdown``, ``PrefectPublisher``, ...), imported from their modules.

Database footprint: the daemon runs for months, so it creates no task runs at all; Prefect's log
gets a health line on every change and once per summary interval (every check goes to the console),
the bridge's output arrives as periodic summaries at the same interval (issue 13).
"""

from __future__ import annotations

import os
import signal
import sys
from functools import partial
from typing import Any

from prefect import flow, get_run_logger
from prefect.context import get_run_context
from prefect.states import Failed

from . import names
from .daemon_artifact import (
    ARTIFACT_INTERVAL_S,
    ARTIFACT_KEY,
    artifact_key,
    figures,
    figures_from_markdown,
    history_from_markdown,
    previous_history,
    render_markdown,
)
from .daemon_child import bridge_command, bridge_environment, bridge_pidfile, failover_elector, kill_bridge_hook
from .daemon_publisher import PrefectPublisher, heartbeat_payload
from .settings import DaemonSettings
from .supervisor import DaemonStatus, GaveUp, Publishers, Supervisor

__all__ = [
    "ARTIFACT_INTERVAL_S",
    "ARTIFACT_KEY",
    "PrefectPublisher",
    "artifact_key",
    "bridge_command",
    "bridge_environment",
    "figures",
    "figures_from_markdown",
    "heartbeat_payload",
    "history_from_markdown",
    "main",
    "previous_history",
    "render_markdown",
    "scan_bridge_daemon_flow",
    "survive_lost_console",
]


def survive_lost_console() -> int:
    """Make Prefect's console log handlers go quiet, not exit, when the console's pipe breaks; how many.

    A process worker reads the flow process's output through a pipe. When the worker dies (SIGKILL,
    OOM) the next log line hits a broken pipe, and rich, which Prefect's console handler writes
    through, answers that with ``SystemExit(1)`` (``Console.on_broken_pipe``), which ``logging`` does
    not catch: it ended the daemon mid-check and its run Crashed, by accident of whichever line came
    first. rich documents overriding ``on_broken_pipe`` for this; ours keeps rich's silencing and
    drops the exit, so the daemon goes on supervising the bridge and logging to the API, and
    ``deploy.py stop --force`` ends it deliberately (docs/operations.md).
    """
    import logging

    from rich.console import Console

    loggers = [logging.getLogger()] + [
        logger for logger in logging.Logger.manager.loggerDict.values() if isinstance(logger, logging.Logger)
    ]
    patched = 0
    for logger in loggers:
        for handler in logger.handlers:
            console = getattr(handler, "console", None)
            if isinstance(console, Console) and not getattr(console, "_scan_bridge_quiet_on_broken_pipe", False):
                console.on_broken_pipe = partial(setattr, console, "quiet", True)  # type: ignore[method-assign]
                console._scan_bridge_quiet_on_broken_pipe = True  # type: ignore[attr-defined]
                patched += 1
    return patched


@flow(
    name=names.FLOW_NAME,
    description="Runs the scan bridge, forwards its logs, checks data freshness, restarts it when that helps.",
    on_cancellation=[kill_bridge_hook],
    on_crashed=[kill_bridge_hook],
    persist_result=False,
)
def scan_bridge_daemon_flow(
    watch_dir: str | None = None,
    hazelcast_members: str | None = None,
    hazelcast_cluster_name: str | None = None,
    health_interval_s: float | None = None,
    warn_after_s: float | None = None,
    stale_after_s: float | None = None,
    max_restarts: int | None = None,
    restart_delay_s: float | None = None,
    restart_window_s: float | None = None,
    restart_on_any_stale: bool | None = None,
) -> Any:
    """Parameters left empty come from ``SCAN_BRIDGE_*`` environment variables (then the defaults)."""
    survive_lost_console()
    logger = get_run_logger()
    overrides = {
        name: value
        for name, value in {
            "watch_dir": watch_dir,
            "hazelcast_members": hazelcast_members,
            "hazelcast_cluster_name": hazelcast_cluster_name,
            "health_interval_s": health_interval_s,
            "warn_after_s": warn_after_s,
            "stale_after_s": stale_after_s,
            "max_restarts": max_restarts,
            "restart_delay_s": restart_delay_s,
            "restart_window_s": restart_window_s,
            "restart_on_any_stale": restart_on_any_stale,
        }.items()
        if value is not None
    }
    settings = DaemonSettings(**overrides)
    context = get_run_context()
    flow_run = getattr(context, "flow_run", None)
    run_id = str(flow_run.id) if flow_run is not None else f"local-{os.getpid()}"
    deployment = settings.daemon_name or os.environ.get("PREFECT__DEPLOYMENT_NAME") or (
        names.DEPLOYMENT_NAME if flow_run is not None and flow_run.deployment_id else None
    )
    publishers: list[Any] = [PrefectPublisher.resume(logger, deployment, (settings.warn_after_s, settings.stale_after_s))]
    metrics = None
    if settings.metrics_port is not None:
        from .metrics import DaemonMetrics

        metrics = DaemonMetrics()
        metrics.update(DaemonStatus())
        try:
            metrics.serve(settings.metrics_port, settings.metrics_addr)
        except OSError as exc:  # supervising the bridge matters more than the metrics: go on without them
            logger.error(
                "Prometheus metrics not served: cannot listen on %s:%d (%s); set SCAN_BRIDGE_METRICS_PORT to a free port",
                settings.metrics_addr, settings.metrics_port, exc.strerror or exc,
            )
            metrics = None
        else:
            logger.info("Prometheus metrics on http://%s:%d/metrics", settings.metrics_addr, metrics.port)
            publishers.append(metrics)
    supervisor = Supervisor(
        settings,
        bridge_command(),
        bridge_environment(settings),
        logger=logger,
        publisher=Publishers(publishers),
        pidfile=bridge_pidfile(run_id, logger),
        elector=failover_elector(settings),
    )
    try:
        status = supervisor.run()
    except GaveUp as exc:
        return Failed(message=str(exc))
    finally:
        if metrics is not None:
            metrics.close()
    return figures(status)


def _on_sigterm(signum: int, frame: Any) -> None:
    """SIGTERM while no flow run holds it: stop as on Ctrl+C.

    During the run Prefect's own handler raises ``TerminationSignal`` (the supervisor stops the bridge
    as it propagates); after reporting the run, Prefect sends the signal again to the handler that
    was there before, expecting the default action. Dying by that signal would exit 143 and lose
    the run's last log lines (still in the batch for the API), so this handler takes that second
    delivery and lets the ``TerminationSignal`` already on its way reach :func:`main`.
    """
    if type(sys.exc_info()[1]).__name__ == "TerminationSignal":
        return
    raise SystemExit(0)


def main() -> int:
    """``python -m scan_bridge.daemon_flow``: 0 when stopped by Ctrl+C or SIGTERM, 1 when the run failed.

    Without ``PREFECT_API_URL`` it first starts a Prefect server of its own that dies with it
    (:mod:`scan_bridge.prefect_server`), instead of Prefect's temporary one that outlived a SIGKILL.
    """
    from .prefect_server import ServerStartError, ensure_api

    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        ensure_api()  # no PREFECT_API_URL: a server of our own that dies with us, not Prefect's temporary one
        state = scan_bridge_daemon_flow(return_state=True)
    except ServerStartError as exc:
        print(f"scan-bridge daemon: {exc}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, SystemExit):
        return 0
    except BaseException as exc:  # Prefect's TerminationSignal on SIGTERM
        if type(exc).__name__ == "TerminationSignal":
            return 0
        raise
    if state.is_completed() or state.is_cancelled():
        return 0
    print(f"scan-bridge daemon ended {state.type.value}: {state.message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
