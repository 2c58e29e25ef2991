"""A Prefect server owned by the standalone daemon, for when no ``PREFECT_API_URL`` names one.

Without an API URL, Prefect 3.8 starts a temporary server itself (``SubprocessASGIServer``: a
``python -m uvicorn`` child stopped by an ``atexit`` hook). Nothing stops it when the daemon is
SIGKILLed, OOM-killed or loses its machine's power button to a ``kill -9``: the server then runs
for ever, holding its port and its SQLite database. Prefect offers no setting to tie that child's
life to ours, so the standalone entry point (``python -m scan_bridge.daemon_flow``) starts
``prefect server start`` itself, through :func:`scan_bridge.bridge_process.spawn_dying_with_us`
(the same parent-death signal that takes the bridge along), and points its own Prefect settings at
it before the flow starts. Prefect then never starts a server of its own.

The server is the ordinary one (``prefect server start --no-ui``): the same database
(``PREFECT_HOME``) the temporary server used, plus its background services, so automations
(``deploy.py alerts``) work for a standalone daemon too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import httpx

from .bridge_process import spawn_dying_with_us
from .child_stop import stop_child
from .localcluster import free_port

#: How many ports to try when the one picked is taken between our look and the server's bind.
START_ATTEMPTS = 3
#: Deadline of one ``/health`` request while waiting for the server.
PROBE_TIMEOUT_S = 2.0
#: SIGTERM to SIGKILL when stopping the server.
STOP_GRACE_S = 10.0


class ServerStartError(RuntimeError):
    """The server did not answer in time, or exited at start; the message says which and how to avoid it."""


def needs_own_server() -> bool:
    """True when Prefect would start its temporary server: no API URL configured, ephemeral mode allowed."""
    from prefect.settings import get_current_settings

    settings = get_current_settings()
    return not settings.api.url and bool(settings.server.ephemeral.enabled)


def startup_timeout_s() -> float:
    """Prefect's own knob for its temporary server (``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS``),
    but never below 60 s: the first start creates the database, which takes longer on a busy machine."""
    from prefect.settings import get_current_settings

    return max(60.0, float(get_current_settings().server.ephemeral.startup_timeout_seconds))


class OwnPrefectServer:
    """``prefect server start`` on a free loopback port, as a child that dies with this process."""

    def __init__(self, timeout_s: float | None = None) -> None:
        self.timeout_s = startup_timeout_s() if timeout_s is None else timeout_s
        self.proc: subprocess.Popen[bytes] | None = None
        self.port: int | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def _spawn(self, port: int) -> subprocess.Popen[bytes]:
        env: dict[str, Any] = dict(os.environ)
        env.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
        return spawn_dying_with_us(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port),
             "--no-ui", "--log-level", "WARNING"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,  # the banner; warnings and errors go to our stderr
            env=env,
            close_fds=True,
        )

    def start(self) -> str:
        """Start the server and wait until ``/api/health`` answers; its API URL. Raises ServerStartError."""
        for _attempt in range(START_ATTEMPTS):
            self.port = free_port()
            self.proc = self._spawn(self.port)
            deadline = time.monotonic() + self.timeout_s
            with httpx.Client(timeout=PROBE_TIMEOUT_S) as client:
                while time.monotonic() < deadline:
                    if self.proc.poll() is not None:
                        break  # most likely the port was taken meanwhile: try another
                    try:
                        if client.get(f"{self.api_url}/health").status_code == 200:
                            return self.api_url
                    except httpx.HTTPError:
                        pass
                    time.sleep(0.2)
            if self.proc.poll() is None:
                self.stop()
                raise ServerStartError(
                    f"Prefect server on 127.0.0.1:{self.port} did not answer within {self.timeout_s:g} s; "
                    "raise PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS or set PREFECT_API_URL to a running server"
                )
        code = self.proc.returncode if self.proc is not None else None
        raise ServerStartError(
            f"Prefect server exited at start (exit {code}, {START_ATTEMPTS} attempts); "
            "its output is above; or set PREFECT_API_URL to a running server"
        )

    def stop(self) -> None:
        """SIGTERM, up to ``STOP_GRACE_S``, then SIGKILL; safe to call twice."""
        proc, self.proc = self.proc, None
        if proc is not None:
            stop_child(proc, STOP_GRACE_S, kill_wait_s=5)


def ensure_api() -> OwnPrefectServer | None:
    """Start our own server when Prefect would start its temporary one; point our settings at it.

    Returns the server (stopped at exit, after Prefect's log and event workers have drained: those
    drain in ``threading``'s exit hooks, which run before ``atexit``'s), or None when an API is
    configured (or ephemeral mode is off, where Prefect itself reports the missing URL).
    """
    import atexit

    from prefect.context import refresh_global_settings_context

    if not needs_own_server():
        return None
    server = OwnPrefectServer()
    atexit.register(server.stop)
    url = server.start()
    os.environ["PREFECT_API_URL"] = url
    refresh_global_settings_context()
    print(
        f"No PREFECT_API_URL: started a Prefect server for this daemon at {url} (pid {server.proc.pid if server.proc else '?'}, "
        f"database in {os.environ.get('PREFECT_HOME', '~/.prefect')}); it stops with the daemon",
        file=sys.stderr,
        flush=True,
    )
    return server
