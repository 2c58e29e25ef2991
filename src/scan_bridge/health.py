"""Is the data in Hazelcast fresh? One check, for scripts and a shell prompt, under the path operators know.

The work is done in modules with one job each; this one holds the one-shot form and the CLI, and
names the rest under their old import path (``from scan_bridge.health import FreshnessChecker``):

* :mod:`.health_status`: the statuses, with exit code, severity and event name;
* :mod:`.health_classify`: the pure rules (an observation in, a report with its headline out);
* :mod:`.health_disk`: the newest scan files on disk;
* :mod:`.health_check`: :class:`FreshnessChecker`, reading Hazelcast and the disk with deadlines.

::

    python -c "from scan_bridge.health import check_hazelcast_data_freshness; print(check_hazelcast_data_freshness())"
    python -m scan_bridge.health [--json]
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from .health_check import FreshnessChecker
from .health_classify import DiskFile, FreshnessReport, Observation, Thresholds, classify
from .health_disk import COMPLETE_COMPARED, probe_disk, scan_id_of_file, scan_number_of_file
from .health_status import HealthStatus, StaleCause
from .logs import printable
from .settings import DaemonSettings

__all__ = [
    "COMPLETE_COMPARED",
    "DiskFile",
    "FreshnessChecker",
    "FreshnessReport",
    "HealthStatus",
    "Observation",
    "StaleCause",
    "Thresholds",
    "check_hazelcast_data_freshness",
    "classify",
    "probe_disk",
    "scan_id_of_file",
    "scan_number_of_file",
]


def check_hazelcast_data_freshness(
    settings: DaemonSettings | None = None,
    *,
    previous: FreshnessReport | None = None,
    bridge_running: bool | None = None,
) -> FreshnessReport:
    """One check with a client of its own (closed after): for scripts and a shell prompt.

    Settings default to ``DaemonSettings()`` (the ``SCAN_BRIDGE_*`` environment). Never raises for
    an unreachable cluster and never waits beyond ``health_timeout_s`` plus a little slack.
    """
    with FreshnessChecker(settings) as checker:
        return checker.check(bridge_running=bridge_running, previous=previous)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m scan_bridge.health [--json]``: print one check; exit with the status's code
    (:attr:`HealthStatus.exit_code`: 0 healthy, 1 warning, 2 stale/missing/down, 3 error)."""
    args = list(sys.argv[1:] if argv is None else argv)
    report = check_hazelcast_data_freshness()
    print(report.model_dump_json(indent=2) if "--json" in args else printable(report.headline))  # a file name is not a line
    return report.status.exit_code


if __name__ == "__main__":
    sys.exit(main())
