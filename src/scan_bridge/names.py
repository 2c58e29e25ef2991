"""Every name another program, an operator or an automation knows us by, in one place.

Prefect finds the daemon by its flow and deployment names, ``deploy.py status`` finds its figures
under the artifact key, automations match its event names, and the daemon recognises a few of the
bridge's log records by their markers. A name changed here changes everywhere it is used; the one
place that cannot import it, ``prefect.yaml``, is checked against it by ``tests/test_names.py``.
"""

from __future__ import annotations

#: The daemon's flow, its deployment, and its name in events and alerts (``prefect.yaml`` says it too).
DAEMON_NAME = "scan-bridge-daemon"
FLOW_NAME = DAEMON_NAME
DEPLOYMENT_NAME = DAEMON_NAME
#: ``flow/deployment``, as Prefect's client and CLI name a deployment.
DEPLOYMENT_FULL_NAME = f"{FLOW_NAME}/{DEPLOYMENT_NAME}"
#: The daemon's name when it runs outside a deployment (``python -m scan_bridge.daemon_flow``).
STANDALONE_NAME = "standalone"
def machine_deployment(machine: str) -> str:
    """Failover: the deployment of one machine's daemon (``deploy.py create --machine NAME``); its work queue is ``machine``."""
    return f"{DEPLOYMENT_NAME}-{machine}"


#: The process work pool ``deploy.py create`` makes and ``prefect.yaml`` names.
WORK_POOL = "dolphin-daemon-pool"
#: The module path of the flow a deployment runs (``prefect.yaml``'s entrypoint). Kept working for
#: deployments created before any move of the code (docs/architecture.md, "The layout").
FLOW_ENTRYPOINT = "scan_bridge.daemon_flow:scan_bridge_daemon_flow"

#: The health artifact's key (the deployment's and a standalone daemon's; others get a suffix).
ARTIFACT_KEY = "scan-bridge-health"

# -- events (``scan-bridge.<name>``), what automations match -------------------------------------------
EVENT_PREFIX = "scan-bridge."
#: Resource id of a daemon's events: ``scan-bridge.daemon.<daemon name>``.
DAEMON_RESOURCE_PREFIX = EVENT_PREFIX + "daemon."
#: One light event per health check. Which one says the daemon's role, because an alert on the silence
#: of one role must be armed by that role's events alone (a trigger cannot match payload fields):
#: ``heartbeat`` from the active daemon (and a single machine), ``standby-heartbeat`` from a failover
#: standby (docs/alerts.md, "Who watches the watcher"; docs/high-availability.md, "Alerts by role").
HEARTBEAT_EVENT = "heartbeat"
STANDBY_HEARTBEAT_EVENT = "standby-heartbeat"
BRIDGE_RESTARTED_EVENT = "bridge-restarted"
GAVE_UP_EVENT = "gave-up"
DAEMON_STOPPED_EVENT = "daemon-stopped"
#: Failover (docs/high-availability.md): this daemon took the lease and started its bridge / lost it and stopped it.
TOOK_OVER_EVENT = "took-over"
STEPPED_DOWN_EVENT = "stepped-down"
#: A scan file that crashed the bridge's reader (skipped for good).
FILE_CRASHED_READER_EVENT = "file-crashed-reader"
COUNTER_RESET_EVENT = "counter-reset"
#: Labels on state-change events (a trigger can match labels, not payload fields).
STATUS_LABEL = EVENT_PREFIX + "status"
PREVIOUS_STATUS_LABEL = EVENT_PREFIX + "previous-status"
CAUSE_LABEL = EVENT_PREFIX + "cause"
#: The daemon's role when it checked: ``active`` or ``standby`` (``lease.Role``'s values) under failover,
#: :data:`SINGLE_MACHINE_ROLE` on a single machine. The alerts about the data match ``active`` and
#: ``single`` alone (``state_events.RESPONSIBLE_ROLES``; docs/high-availability.md, "Alerts by role").
ROLE_LABEL = EVENT_PREFIX + "role"
SINGLE_MACHINE_ROLE = "single"


def event(name: str) -> str:
    """The full event name: ``heartbeat`` -> ``scan-bridge.heartbeat``."""
    return EVENT_PREFIX + name


# -- markers in the bridge's log records, matched by the daemon -----------------------------------------
#: ``fields.event`` of the bridge's line for a file it rejected for good (with ``fields.crashed_reader``
#: true: a bridge died reading it).
FILE_REJECTED = "file_rejected"
#: ``fields.event`` of the bridge's line for a scanner counter that started again; also the key in
#: the bridge's heartbeat document that describes the last one.
COUNTER_RESET = "counter_reset"
#: The bridge's first line when it handles a stop signal: ``Stopping (SIGTERM)``.
STOPPING_PREFIX = "Stopping ("
#: ``fields.event`` of the bridge's line when it finds a newer lease epoch on ``latest_eigen_scan`` (failover).
FENCED = "fenced"
#: The bridge's exit code then: it lost the lease; its daemon steps down rather than restart it.
FENCED_EXIT_CODE = 4
#: ``fields.event`` of the bridge's line for scans it may not read (a folder or file's rights), said
#: once per folder until they are readable again (``fields.event`` ``READABLE_AGAIN`` then).
NOT_READABLE = "not_readable"
READABLE_AGAIN = "readable_again"


# -- notes in the health history's change list, read back by the chart ---------------------------------
#: ``restart: <reason>``: the daemon restarted the bridge (a marker on the chart).
RESTART_NOTE = "restart"
#: ``takeover: <reason>``: a standby daemon took over (failover; a marker on the chart once it exists).
TAKEOVER_NOTE = "takeover"
#: ``daemon stopped: <reason>``: the daemon ended on purpose; until the next run's first check no
#: daemon ran (grey on the chart).
STOPPED_NOTE = "daemon stopped"
