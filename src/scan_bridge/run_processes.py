"""The processes of one flow run on this machine, for ``deploy.py stop --force``.

A process worker starts a flow run as ``python -m prefect.engine`` with ``PREFECT__FLOW_RUN_ID`` in
its environment, and the daemon passes its environment on to the bridge: so every process of a run
carries the run's id, whatever became of the worker that started it (a SIGKILLed worker leaves the
flow process running, reparented, and that flow process would restart a bridge killed under it).
Matching the environment, not a name or a pidfile, also finds a daemon between two bridges and
never touches another run's processes or a reused pid. Only processes of the user running
``deploy.py`` are visible (another user's environment cannot be read).
"""

from __future__ import annotations

import os

import psutil

RUN_ID_VARIABLE = "PREFECT__FLOW_RUN_ID"
BRIDGE_MODULE = "scan_bridge.service"


def run_processes(run_id: str) -> list[psutil.Process]:
    """Live processes of this user whose environment names flow run ``run_id`` (never this process)."""
    found = []
    me = os.getpid()
    for proc in psutil.process_iter(["pid"]):
        if proc.pid == me:
            continue
        try:
            if proc.environ().get(RUN_ID_VARIABLE) == run_id and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.Error, OSError):  # gone meanwhile, or another user's
            continue
    return found


def is_bridge(proc: psutil.Process) -> bool:
    try:
        return any(BRIDGE_MODULE in part for part in proc.cmdline())
    except psutil.Error:
        return False


def stop_run_processes(run_id: str, wait_s: float) -> list[int]:
    """SIGKILL run ``run_id``'s processes here (daemon first, then bridges); the pids found.

    SIGKILL, not SIGTERM: Prefect's engine answers SIGTERM (without a worker to say "cancel") by
    forcing the run to Crashed, which would undo the CANCELLED just set and fire the "crashed"
    alert for a deliberate stop. A SIGKILLed daemon takes its bridge along (parent-death signal);
    the bridge's writes are idempotent and the next start catches up, so nothing is lost. Waits up
    to ``wait_s`` for them to be gone, and sweeps once more for a bridge started in the meantime.
    """
    found: list[int] = []
    for _sweep in range(2):
        procs = sorted(run_processes(run_id), key=is_bridge)  # daemons first: no restart after
        for proc in procs:
            try:
                proc.kill()
            except psutil.Error:
                continue
            found.append(proc.pid)
        if not procs:
            break
        psutil.wait_procs(procs, timeout=wait_s)
    return found
