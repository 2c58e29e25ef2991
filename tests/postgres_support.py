"""A real PostgreSQL server for the tests: Debian's ``postgresql`` package, started by the tests themselves.

Prefect recommends PostgreSQL for a server that runs for months; the daemon tests that run on it
(``tests/test_on_postgres.py``) get a Prefect server whose ``PREFECT_API_DATABASE_CONNECTION_URL``
points here. The server is started the way the Hazelcast member is: from the installed binaries, on
a free loopback port, its data directory in a temporary folder, stopped at the end of the session.

PostgreSQL refuses to run as root. Run as root (CI is), ``initdb`` and ``postgres`` run as an
unprivileged user: ``postgres`` (the Debian package creates it) or else ``nobody``; the data
directory is a fresh ``mkdtemp`` folder owned by that user (pytest's own temporary folders are
private to root, so they cannot hold it). A server that cannot be started is a test failure, never a
skip: the README's test command installs the package where it is missing (``scripts/setup``).

Settings: ``SCAN_BRIDGE_TEST_POSTGRES_BINDIR`` names the folder of ``initdb``/``postgres`` when they
are elsewhere than ``/usr/lib/postgresql/<newest>/bin`` or ``PATH``.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import IO

#: What the README's test command installs where the binaries are missing (``scripts/setup``).
DEBIAN_PACKAGE = "postgresql"
_USERS = ("postgres", "nobody")
_SUPERUSER = "scan_bridge"


class PostgresError(RuntimeError):
    """PostgreSQL could not be found or started; the message says what to do."""


def find_bindir() -> Path:
    """The folder holding ``initdb`` and ``postgres``: the setting, Debian's newest version, or ``PATH``."""
    configured = os.environ.get("SCAN_BRIDGE_TEST_POSTGRES_BINDIR", "").strip()
    if configured:
        folder = Path(configured)
        if not (folder / "initdb").is_file() or not (folder / "postgres").is_file():
            raise PostgresError(f"SCAN_BRIDGE_TEST_POSTGRES_BINDIR={configured}: no initdb and postgres there")
        return folder

    def version(folder: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", folder.parent.name)) or (0,)

    debian = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=version, reverse=True)
    for folder in debian:
        if (folder / "initdb").is_file() and (folder / "postgres").is_file():
            return folder
    initdb, postgres = shutil.which("initdb"), shutil.which("postgres")
    if initdb and postgres:
        return Path(initdb).resolve().parent
    raise PostgresError(
        f"PostgreSQL not found (no /usr/lib/postgresql/*/bin/initdb, no initdb on PATH): "
        f"install it with `apt-get install -y {DEBIAN_PACKAGE}` (scripts/setup does, as root), "
        "or set SCAN_BRIDGE_TEST_POSTGRES_BINDIR"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run_as() -> pwd.struct_passwd | None:
    """The unprivileged user to run PostgreSQL as when we are root; None when we are not root."""
    if os.geteuid() != 0:
        return None
    for name in _USERS:
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise PostgresError(f"running as root and none of the users {', '.join(_USERS)} exists to run PostgreSQL as")


class PostgresServer:
    """One PostgreSQL server (``initdb`` + ``postgres``) on ``127.0.0.1:<free port>``, trust auth on loopback only.

    :meth:`create_database` gives each Prefect server its own database, so modules never share rows.
    """

    def __init__(self, bindir: Path | None = None) -> None:
        self.bindir = bindir or find_bindir()
        self.user = _run_as()
        self.root = Path(tempfile.mkdtemp(prefix="scan-bridge-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "socket"
        self.log_path = self.root / "postgres.log"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    # -- processes ----------------------------------------------------------------------------------

    def _popen_kwargs(self) -> dict[str, object]:
        if self.user is None:
            return {}
        return {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = env["LANG"] = "C.UTF-8"
        if self.user is not None:
            env["HOME"] = str(self.root)
        return env

    def start(self, timeout: float = 60) -> PostgresServer:
        for folder in (self.root, self.socket_dir):
            folder.mkdir(exist_ok=True)
            if self.user is not None:
                os.chown(folder, self.user.pw_uid, self.user.pw_gid)
        init = subprocess.run(
            [str(self.bindir / "initdb"), "-D", str(self.data), "-U", _SUPERUSER, "--auth=trust", "-E", "UTF8",
             "--no-sync", "--no-instructions"],
            env=self._env(), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120,
            cwd=self.root, **self._popen_kwargs(),  # type: ignore[arg-type]
        )
        if init.returncode != 0:
            raise PostgresError(f"initdb failed (exit {init.returncode}): {(init.stderr or init.stdout).strip()[-2000:]}")
        last = ""
        for _attempt in range(3):  # fresh port each time: another process may take a probed port first
            self.port = _free_port()
            self._log = open(self.log_path, "ab")
            self.proc = subprocess.Popen(
                [str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port),
                 "-h", "127.0.0.1", "-k", str(self.socket_dir),
                 # A test database: no durability needed, and small shared memory on a shared machine.
                 "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                 "-c", "shared_buffers=32MB", "-c", "max_connections=200"],
                env=self._env(), stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                cwd=self.root, start_new_session=True, **self._popen_kwargs(),  # type: ignore[arg-type]
            )
            try:
                self._wait_ready(timeout)
                return self
            except PostgresError as exc:
                last = str(exc)
                self.stop(remove=False)
                if "already in use" not in last and "could not bind" not in last:
                    break
        self.stop()
        raise PostgresError(last)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise PostgresError(f"postgres exited {self.proc.returncode}: {self.log_tail()}")
            if self._psql("postgres", "SELECT 1", check=False).returncode == 0:
                return
            if time.monotonic() > deadline:
                raise PostgresError(f"postgres not ready within {timeout} s: {self.log_tail()}")
            time.sleep(0.2)

    def _psql(self, database: str, sql: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        psql = self.bindir / "psql"
        result = subprocess.run(
            [str(psql), "-h", "127.0.0.1", "-p", str(self.port), "-U", _SUPERUSER, "-d", database,
             "-v", "ON_ERROR_STOP=1", "-At", "-c", sql],
            env=self._env(), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
        )
        if check and result.returncode != 0:
            raise PostgresError(f"psql {sql!r} failed: {result.stderr.strip()}")
        return result

    def query(self, database: str, sql: str) -> str:
        """``sql``'s output, unaligned (for size measurements and checks)."""
        return self._psql(database, sql).stdout.strip()

    def create_database(self, prefix: str = "prefect") -> str:
        """A new empty database; returns its SQLAlchemy URL for ``PREFECT_API_DATABASE_CONNECTION_URL``."""
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        self._psql("postgres", f'CREATE DATABASE "{name}"')
        return self.url(name)

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://{_SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, remove: bool = True) -> None:
        """SIGINT (PostgreSQL's fast shutdown), then SIGKILL; the temporary folder goes too."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(2)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self._log is not None:
            self._log.close()
            self._log = None
        if remove:
            shutil.rmtree(self.root, ignore_errors=True)
