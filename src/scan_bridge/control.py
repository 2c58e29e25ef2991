"""The operator's commands behind ``python deploy.py create|start|run|stop|status|health|alerts``.

Each command prints a short screen and exits with a code a script can test. A Prefect server or a
Hazelcast cluster that cannot be reached gets one line naming the address tried and how to start
it, never a traceback: the operator is usually in the middle of something going wrong already.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from . import names
from .health_status import HealthStatus
from .worker_launcher import prefect_worker_argv, run_until_stopped

POOL = names.WORK_POOL
FLOW = names.FLOW_NAME
DEPLOYMENT = names.DEPLOYMENT_NAME
FULL_NAME = names.DEPLOYMENT_FULL_NAME
ARTIFACT_KEY = names.ARTIFACT_KEY
DEFAULT_API = "http://127.0.0.1:4200/api"
ACTIVE_STATES = ["RUNNING", "PENDING", "CANCELLING", "SCHEDULED"]
FORCED_MESSAGE = "forced by deploy.py stop --force"
#: A run CANCELLING for longer than this (seconds) is reported stuck even with a worker online.
STUCK_CANCELLING_S = 60.0


class Unreachable(Exception):
    """A server we need is not there; the message says which address and how to start it."""


def project_dir() -> Path:
    """The checkout holding prefect.yaml (deploy.py sits beside it)."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "prefect.yaml").is_file():
            return parent
    return Path.cwd()


def api_url() -> str:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or os.environ.get("PREFECT_API_URL") or DEFAULT_API


def require_api() -> str:
    url = api_url()
    try:
        httpx.get(url.rstrip("/") + "/health", timeout=3).raise_for_status()
    except Exception as exc:
        raise Unreachable(
            f"Prefect API not reachable at {url} ({type(exc).__name__}); start a server with "
            f"`prefect server start` or point PREFECT_API_URL at one"
        ) from None
    return url


def _client() -> Any:
    os.environ.setdefault("PREFECT_API_URL", api_url())
    from prefect.client.orchestration import get_client

    return get_client(sync_client=True)


def _ui(url: str) -> str:
    return url.removesuffix("/api").rstrip("/")


# -- create / start -----------------------------------------------------------------------------------


def ensure_pool(client: Any) -> bool:
    """Create the process work pool unless it exists; True when created."""
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.exceptions import ObjectNotFound

    try:
        client.read_work_pool(POOL)
        return False
    except ObjectNotFound:
        client.create_work_pool(WorkPoolCreate(name=POOL, type="process"))
        return True


def cmd_create(args: argparse.Namespace) -> int:
    url = require_api()
    with _client() as client:
        created = ensure_pool(client)
    print(f"work pool {POOL}: {'created' if created else 'exists'}")
    env = {**os.environ, "PREFECT_API_URL": url, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    # prefect.yaml's pull step says `{{ $PWD }}`, which `prefect deploy` fills from this variable, not
    # from its working directory: run from elsewhere, it would record the caller's directory.
    env["PWD"] = str(project_dir())
    result = subprocess.run(
        [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"],
        cwd=project_dir(),
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        print(f"prefect deploy failed (exit {result.returncode}):\n{result.stdout[-2000:]}{result.stderr[-2000:]}", file=sys.stderr)
        return 1
    print(f"deployment {FULL_NAME}: created or updated from {project_dir() / 'prefect.yaml'}")
    machines = args.machine or []
    if machines:
        with _client() as client:
            for machine in machines:
                print(f"deployment {FLOW}/{ensure_machine_deployment(client, machine)}: created or updated "
                      f"(work queue {machine!r}, failover on)")
        print("next, on each machine: python deploy.py start --machine NAME, then python deploy.py run --machine NAME")
        return 0
    print(f"next: python deploy.py start   (a worker on {POOL}), then python deploy.py run")
    return 0


def check_machine(name: str) -> str:
    """A machine name usable as a work queue and in a deployment name: letters, digits, ``-``, ``_``, ``.``."""
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", name):
        raise argparse.ArgumentTypeError(f"{name!r} is not a machine name (letters, digits, '.', '_', '-'; at most 63)")
    return name


def ensure_machine_deployment(client: Any, machine: str) -> str:
    """Failover (docs/high-availability.md): the deployment of ``machine``'s daemon, a copy of the main one.

    Same flow, entrypoint, pull steps and parameters as the deployment ``prefect.yaml`` made; its own
    work queue (``machine``: only that machine's worker runs it), its own concurrency limit of 1, and
    job variables that turn failover on under the machine's name. Safe to repeat (updated in place).
    """
    from prefect.client.schemas.objects import ConcurrencyLimitStrategy, ConcurrencyOptions

    base = client.read_deployment_by_name(FULL_NAME)
    name = names.machine_deployment(machine)
    client.create_deployment(
        flow_id=base.flow_id,
        name=name,
        description=f"The scan bridge daemon on machine {machine}: active or standby (failover, docs/high-availability.md).",
        work_pool_name=POOL,
        work_queue_name=machine,
        entrypoint=base.entrypoint,
        path=base.path,
        pull_steps=base.pull_steps,
        parameter_openapi_schema=base.parameter_openapi_schema,
        parameters=base.parameters,
        tags=[*base.tags, "failover"],
        concurrency_limit=1,
        concurrency_options=ConcurrencyOptions(collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW),
        job_variables={"env": {"SCAN_BRIDGE_FAILOVER": "true", "SCAN_BRIDGE_MACHINE_NAME": machine,
                               "SCAN_BRIDGE_DAEMON_NAME": name}},
    )
    return name


def cmd_start(args: argparse.Namespace) -> int:
    url = require_api()
    env = {**os.environ, "PREFECT_API_URL": url, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    argv = prefect_worker_argv(POOL, args.name or args.machine)
    if args.machine:  # failover: this machine's worker runs this machine's deployment only
        argv += ["--work-queue", args.machine]
    return run_until_stopped(argv, env, project_dir())


# -- run / stop ---------------------------------------------------------------------------------------


def _full_name(machine: str | None = None) -> str:
    return FULL_NAME if machine is None else f"{FLOW}/{names.machine_deployment(machine)}"


def _deployment(client: Any, machine: str | None = None) -> Any | None:
    from prefect.exceptions import ObjectNotFound

    try:
        return client.read_deployment_by_name(_full_name(machine))
    except ObjectNotFound:
        return None


def _machine_deployments(client: Any) -> list[Any]:
    """Failover: the per-machine deployments (``deploy.py create --machine``), by name."""
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags

    found = client.read_deployments(deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=["failover"])))
    prefix = names.DEPLOYMENT_NAME + "-"
    return sorted((d for d in found if d.name.startswith(prefix)), key=lambda d: d.name)


def _runs(client: Any, deployment_id: Any, states: list[str] | None = None, limit: int = 10) -> list[Any]:
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterId,
        FlowRunFilter,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.sorting import FlowRunSort

    run_filter = None
    if states:
        run_filter = FlowRunFilter(state=FlowRunFilterState(type=FlowRunFilterStateType(any_=states)))
    return client.read_flow_runs(
        deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
        flow_run_filter=run_filter,
        sort=FlowRunSort.START_TIME_DESC,
        limit=limit,
    )


def cmd_run(args: argparse.Namespace) -> int:
    url = require_api()
    with _client() as client:
        deployment = _deployment(client, args.machine)
        if deployment is None:
            create = "`python deploy.py create" + (f" --machine {args.machine}`" if args.machine else "`")
            print(f"no deployment {_full_name(args.machine)}: run {create} first", file=sys.stderr)
            return 1
        run = client.create_flow_run_from_deployment(deployment.id)
    print(f"flow run {run.name} ({run.id}) scheduled; a worker on {POOL} picks it up")
    print(f"watch it: {_ui(url)}/runs/flow-run/{run.id}")
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    import time

    from prefect.states import Cancelled, Cancelling

    from .run_processes import stop_run_processes
    from .runfiles import kill_bridge_by_pidfile

    require_api()
    with _client() as client:
        deployment = _deployment(client, args.machine)
        if deployment is None:
            print(f"no deployment {_full_name(args.machine)}", file=sys.stderr)
            return 1
        runs = _runs(client, deployment.id, ACTIVE_STATES)
        if not runs:
            print("no active run to stop")
            return 0
        for run in runs:
            if args.force:
                # CANCELLED first (frees the concurrency slot), then the run's daemon and bridge on
                # this machine: a daemon that outlived its worker would otherwise restart the bridge.
                client.set_flow_run_state(run.id, Cancelled(message=FORCED_MESSAGE), force=True)
                stopped = stop_run_processes(str(run.id), args.timeout)
                killed = kill_bridge_by_pidfile(str(run.id))
                found = sorted(set(stopped) | ({killed} if killed else set()))
                print(f"{run.name}: forced to CANCELLED" + (
                    f"; stopped its processes on this machine (pids {', '.join(map(str, found))})" if found else
                    "; no process of it on this machine"))
            elif run.state_type.value == "CANCELLING":
                print(f"{run.name}: already CANCELLING")
            else:
                client.set_flow_run_state(run.id, Cancelling(message="deploy.py stop"))
                print(f"{run.name}: cancelling")
        if args.force:
            return 0
        deadline = time.monotonic() + args.timeout
        pending = {run.id for run in runs}
        while pending and time.monotonic() < deadline:
            for run_id in list(pending):
                if client.read_flow_run(run_id).state_type.value in ("CANCELLED", "COMPLETED", "FAILED", "CRASHED"):
                    pending.discard(run_id)
            if pending:
                time.sleep(0.5)
        if pending:
            print(
                f"{len(pending)} run(s) still not cancelled after {args.timeout:g} s: is its worker gone? "
                "`python deploy.py stop --force` marks it cancelled and frees the concurrency slot",
                file=sys.stderr,
            )
            return 1
        print("stopped")
        return 0


# -- status / health ----------------------------------------------------------------------------------


def _age(when: datetime | None) -> str:
    if when is None:
        return "—"
    seconds = (datetime.now(UTC) - when).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.0f} s"


def health_markdown(client: Any) -> str | None:
    """The markdown of the daemon's latest health artifact, or None if there is none."""
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
    from prefect.client.schemas.sorting import ArtifactSort

    artifacts = client.read_artifacts(
        artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[ARTIFACT_KEY])), sort=ArtifactSort.CREATED_DESC, limit=1
    )
    return str(artifacts[0].data or "") if artifacts else None


def freshness_line(markdown: str | None, now: datetime | None = None, colour: bool = False) -> str | None:
    """The last 24 hours of the artifact's history as one line of blocks and its key; None without a history."""
    from .daemon_artifact import history_from_markdown
    from .health_chart import restarts_in, sparkline, sparkline_legend
    from .settings import DaemonSettings

    history = history_from_markdown(markdown)
    if history.newest is None:
        return None
    now = now or datetime.now(UTC)
    settings = DaemonSettings()  # the thresholds the daemon and `deploy.py health` use
    warn, stale = settings.warn_after_s, settings.stale_after_s
    restarts = restarts_in(history, now)
    return (f"{sparkline(history, now, warn, stale, colour=colour)}  {sparkline_legend(warn, stale)}"
            + (f"; {restarts} restart{'s' if restarts != 1 else ''}" if restarts else ""))


def artifact_figures(client: Any) -> dict[str, Any] | None:
    """The figures the daemon last published (embedded as JSON in its artifact)."""
    text = health_markdown(client)
    if text is None:
        return None
    from .daemon_artifact import figures_from_markdown

    return figures_from_markdown(text)


def cmd_status(args: argparse.Namespace) -> int:
    problems: list[str] = []
    try:
        url = require_api()
    except Unreachable as exc:
        print(f"Prefect API   : {exc}")
        return 1
    print(f"Prefect API   : {url} reachable")
    with _client() as client:
        from prefect.exceptions import ObjectNotFound

        try:
            client.read_work_pool(POOL)
            workers = client.read_workers_for_work_pool(POOL)
            online = [w for w in workers if str(getattr(w.status, "value", w.status)).upper() == "ONLINE"]
            print(f"Work pool     : {POOL}, {len(online)} worker(s) online" + (f" ({', '.join(w.name for w in online)})" if online else ""))
            if not online:
                problems.append(f"no worker online: `python deploy.py start` (or `prefect worker start --pool {POOL}`)")
        except ObjectNotFound:
            print(f"Work pool     : {POOL} missing")
            problems.append("`python deploy.py create`")
            online = []
        deployment = _deployment(client)
        if deployment is None:
            print(f"Deployment    : {FULL_NAME} missing")
            problems.append("`python deploy.py create`")
            runs = []
        else:
            print(f"Deployment    : {FULL_NAME} present")
            runs = _runs(client, deployment.id, limit=1)
        figures = artifact_figures(client) if deployment is not None else None
        freshness = freshness_line(health_markdown(client), colour=sys.stdout.isatty()) if deployment is not None else None
        if runs:
            run = runs[0]
            state = run.state_type.value if run.state_type else "?"
            since = run.state.timestamp if run.state is not None else None
            restarts = figures.get("restarts_total") if figures else None
            print(f"Flow run      : {run.name} {state} since {_age(since)} ago; restarts {restarts if restarts is not None else '—'}")
            if state == "CANCELLING":
                # Only a worker turns CANCELLING into CANCELLED: with none online nobody will.
                waited = (datetime.now(UTC) - since).total_seconds() if since is not None else None
                if not online or (waited is not None and waited > STUCK_CANCELLING_S):
                    problems.append("run stuck in CANCELLING (its worker is gone?): `python deploy.py stop --force`")
                else:
                    problems.append("run is being cancelled")
            elif state != "RUNNING":
                problems.append("no daemon running: `python deploy.py run`")
            if state == "RUNNING" and not online:
                problems.append("run RUNNING but no worker online: `python deploy.py stop --force` on its machine (stops a daemon left behind), then start a worker")
        elif deployment is not None:
            print("Flow run      : none yet")
            problems.append("`python deploy.py run`")
        # Failover: the machines' deployments (copies of the main one, so only where it exists).
        machines = _machine_deployments(client) if deployment is not None else []
        for machine in machines:
            last = _runs(client, machine.id, limit=1)
            state = last[0].state_type.value if last and last[0].state_type else "no run"
            print(f"Machine       : {machine.name.removeprefix(names.DEPLOYMENT_NAME + '-')} (work queue {machine.work_queue_name}): {state}")
        print(f"Alerts        : {_alerts_line(client)}")
    report = _health_report()
    print(f"Health        : {_headline(report)}")
    print(
        f"                data age {_fmt(report.data_age_s, ' s')}, scan #{report.scan_number if report.scan_number is not None else '—'}, "
        f"{report.asset_count if report.asset_count is not None else '—'} assets"
    )
    if freshness:  # the daemon's last 24 hours, as one line
        print(f"Last 24 h     : {freshness}")
    # Only with machines deployed (one machine's screen is what it always was), and not while Hazelcast is away.
    failover = _failover_line() if machines and report.status is not HealthStatus.ERROR else None
    if failover is not None:
        print(f"Failover      : {failover}")
    if report.status is not HealthStatus.HEALTHY:
        problems.append("health is not healthy (see above)")
    for problem in dict.fromkeys(problems):
        print(f"  ! {problem}")
    return 1 if problems else 0


def _alerts_line(client: Any) -> str:
    """How many of our automations exist and are on; not a problem when none (alerts are optional)."""
    from . import alerts

    ours = alerts.ours(client)
    if not ours:
        return "none set up (`python deploy.py alerts --webhook URL --kind slack|discord|pagerduty|generic`)"
    off = [a.name.removeprefix(alerts.NAME_PREFIX) for a in ours if not a.enabled]
    line = f"{len(ours) - len(off)} of {len(ours)} automations enabled"
    return line + (f" (paused: {', '.join(off)})" if off else "")


def _headline(report: Any) -> str:
    """The report's headline (status once, cause, figures), on one line: it may quote a scan file's name."""
    from .logs import printable

    return printable(report.headline)


def _fmt(value: float | None, unit: str) -> str:
    return "—" if value is None else f"{value:.1f}{unit}"


def _failover_line() -> str | None:
    """Failover (docs/high-availability.md): the lease's holder, epoch and since; None when there is no lease."""
    from .lease_store import describe_lease, read_lease
    from .settings import DaemonSettings

    settings = DaemonSettings()
    try:
        return describe_lease(read_lease(settings, settings.lease_key, settings.health_timeout_s))
    except Exception as exc:  # noqa: BLE001 - the health line above already says when Hazelcast is away
        return None if isinstance(exc, TimeoutError) else f"lease not readable ({type(exc).__name__})"


def _health_report() -> Any:
    from .health import check_hazelcast_data_freshness

    return check_hazelcast_data_freshness()


def cmd_health(args: argparse.Namespace) -> int:
    report = _health_report()
    if args.json:
        print(report.model_dump_json())
    else:
        hint = ""
        if report.status is HealthStatus.ERROR:  # one line, like the API's: the address tried and how to start one
            hint = "; start a local member with `python -m scan_bridge.localcluster`, or set SCAN_BRIDGE_HAZELCAST_MEMBERS"
        print(_headline(report) + hint)
    return int(report.status.exit_code)


def cmd_alerts(args: argparse.Namespace) -> int:
    """Notification block and automations for the daemon's events; the URL is a secret, never printed."""
    from pydantic import SecretStr

    from . import alerts

    require_api()
    os.environ.setdefault("PREFECT_API_URL", api_url())
    if args.remove:
        removed = alerts.remove_alerts()
        for name in removed:
            print(f"automation removed: {name}")
        print(f"{len(removed)} automation(s) removed; block {alerts.BLOCK_NAME!r} deleted if it existed.")
        return 0
    raw = args.webhook or os.environ.get("SCAN_BRIDGE_ALERT_WEBHOOK_URL", "")
    source = "--webhook" if args.webhook else "SCAN_BRIDGE_ALERT_WEBHOOK_URL"
    if not raw:
        print("alerts: give --webhook URL (or set SCAN_BRIDGE_ALERT_WEBHOOK_URL)", file=sys.stderr)
        return 2
    if not raw.startswith(("http://", "https://")):
        print(f"alerts: {source} is not an http(s) URL (value not shown: it is a secret)", file=sys.stderr)
        return 2
    key = args.routing_key or os.environ.get("SCAN_BRIDGE_ALERT_ROUTING_KEY")
    interval = args.health_interval
    if interval is None:
        from .settings import DaemonSettings

        interval = DaemonSettings().health_interval_s
    try:
        installed = alerts.install_alerts(
            SecretStr(raw), args.kind, health_interval_s=interval, routing_key=SecretStr(key) if key else None
        )
    except ValueError as exc:
        print(f"alerts: {exc}", file=sys.stderr)
        return 2
    for line in alerts.describe(installed, args.kind):
        print(line)
    print(f"'daemon silent' fires after {alerts.silent_after_s(interval):g} s without a health check "
          f"(health interval {interval:g} s). See docs/alerts.md.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python deploy.py", description="Deploy and operate the scan bridge daemon.")
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="create the work pool (if missing) and the deployment from prefect.yaml; safe to repeat",
                            description="Create the work pool (if missing) and the deployment from prefect.yaml; safe to repeat.")
    create.add_argument("--machine", action="append", type=check_machine, metavar="NAME",
                        help="failover: also a deployment for machine NAME (its own work queue; repeat for each machine; docs/high-availability.md)")
    create.set_defaults(func=cmd_create)
    start = sub.add_parser("start", help=f"run a worker on {POOL} in the foreground (Ctrl+C stops it)",
                           description=f"Run a worker on {POOL} in the foreground, like `prefect worker start --pool {POOL}`; Ctrl+C stops it.")
    start.add_argument("--name", help="worker name")
    start.add_argument("--machine", type=check_machine, metavar="NAME", help="failover: serve machine NAME's work queue only (worker named NAME)")
    start.set_defaults(func=cmd_start)
    run = sub.add_parser("run", help="start a flow run of the deployment", description="Start a flow run of the deployment.")
    run.add_argument("--machine", type=check_machine, metavar="NAME", help="failover: run machine NAME's deployment")
    run.set_defaults(func=cmd_run)
    stop = sub.add_parser("stop", help="cancel the running daemon (its bridge goes with it)",
                          description="Cancel the active run(s) of the deployment; the bridge goes with them.")
    stop.add_argument("--force", action="store_true", help="mark runs CANCELLED without a worker (a run whose worker died), freeing the concurrency slot, and stop the run's daemon and bridge if they still run on this machine")
    stop.add_argument("--machine", type=check_machine, metavar="NAME", help="failover: stop machine NAME's daemon")
    stop.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the cancellation (with --force: for the run's killed processes to be gone) (default 30)")
    stop.set_defaults(func=cmd_stop)
    sub.add_parser("status", help="one screen: API, pool and workers, deployment, run, health; exit 1 if anything is wrong",
                   description="One screen: Prefect API, work pool and workers, deployment, the current or last run, the latest health. Exit 1 when something is wrong.").set_defaults(func=cmd_status)
    health = sub.add_parser("health", help="check data freshness once; exit 0 healthy, 1 warning, 2 stale/missing/down, 3 error",
                            description="Check data freshness once. Exit 0 healthy, 1 warning, 2 stale, missing or down, 3 error (Hazelcast unreachable).")
    health.add_argument("--json", action="store_true", help="print the report as JSON")
    health.set_defaults(func=cmd_health)
    alert = sub.add_parser("alerts", help="set up the notification block and automations that alert on the daemon's events; safe to repeat",
                           description="Save a notification block and the Prefect automations that send alerts on warning, stale, "
                           "missing, Hazelcast unavailable, gave up, a Failed or Crashed daemon run, a silent daemon (or failover standby), a "
                           "failover standby that cannot reach Hazelcast, and recovery messages. Under failover only the active machine "
                           "alerts about the data. Safe to repeat. The webhook URL is stored as a secret and never printed.")
    alert.add_argument("--webhook", metavar="URL", help="incoming-webhook URL (or SCAN_BRIDGE_ALERT_WEBHOOK_URL, which keeps it out of shell history)")
    alert.add_argument("--kind", choices=["slack", "discord", "pagerduty", "generic"], default="generic",
                       help="message format (default generic JSON); pagerduty posts Events API v2 messages")
    alert.add_argument("--routing-key", help="PagerDuty integration (routing) key (or SCAN_BRIDGE_ALERT_ROUTING_KEY)")
    alert.add_argument("--health-interval", type=float, help="the daemon's health interval in seconds (default: SCAN_BRIDGE_HEALTH_INTERVAL_S or 30); 'daemon silent' and 'standby silent' fire after two")
    alert.add_argument("--remove", action="store_true", help="remove the automations and the block instead")
    alert.set_defaults(func=cmd_alerts)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except Unreachable as exc:
        print(exc, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
