"""One simulated "machine" for the failover tests: a failover daemon's supervisor, without Prefect.

``python -m tests.failover_machine`` with ``SCAN_BRIDGE_FAILOVER=true`` and ``SCAN_BRIDGE_MACHINE_NAME``:
the same Supervisor, elector and bridge the Prefect flow runs (:func:`scan_bridge.daemon_child.failover_elector`),
with plain logging to stdout instead of Prefect's run logger and publishers, so a test can run
several machines as separate process trees and SIGKILL or SIGSTOP one whole tree.
"""

from __future__ import annotations

import logging
import signal
import sys

from scan_bridge.daemon_child import bridge_command, bridge_environment, failover_elector
from scan_bridge.settings import DaemonSettings
from scan_bridge.supervisor import Supervisor


def main() -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(name)s %(message)s", force=True)
    settings = DaemonSettings()
    supervisor = Supervisor(
        settings, bridge_command(), bridge_environment(settings),
        logger=logging.getLogger(f"machine.{settings.machine_name}"), elector=failover_elector(settings),
    )
    signal.signal(signal.SIGTERM, lambda *_: supervisor.stop("SIGTERM"))
    supervisor.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
