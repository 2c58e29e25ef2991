"""Configuration for the bridge and the daemon, from flags and ``SCAN_BRIDGE_*`` environment variables.

pydantic-settings gives us one declaration per setting that serves as the environment variable,
the command-line flag (kebab case) and the validated, typed value: a wrong value fails before any
I/O, with the field's name in the message, so the operator is told what to fix.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
from collections.abc import Sequence
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from .document import (
    DEFAULT_MAX_DOCUMENT_BYTES,
    DEFAULT_MAX_FILE_BYTES,
    DEFAULT_MAX_SCAN_COLUMNS,
    DEFAULT_MAX_SCAN_ROWS,
    HISTORY_KEY_INT_TYPE,
)
from .lease import DEFAULT_LEASE_S, DEFAULT_RENEW_S, check_timing

ObserverKind = Literal["auto", "native", "polling"]
LogFormat = Literal["human", "json"]


DEFAULT_PORT = 5701
ENV_PREFIX = "SCAN_BRIDGE_"
#: Longest secret read from a ``..._file`` setting (a password file is a line, not a dump).
MAX_SECRET_FILE_BYTES = 64 * 1024
_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")
_EXAMPLE = "(example: 127.0.0.1:5701, hz-1.example.com:5701, [::1]:5701)"


def flag(field: str) -> str:
    """The command-line flag of a setting: ``hazelcast_password`` → ``--hazelcast-password``."""
    return "--" + field.replace("_", "-")


def env_var(field: str) -> str:
    """The environment variable of a setting: ``hazelcast_password`` → ``SCAN_BRIDGE_HAZELCAST_PASSWORD``."""
    return ENV_PREFIX + field.upper()


def _split_members(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _valid_host(host: str) -> bool:
    """An IPv4 address or a DNS name (labels of letters, digits, ``-`` and ``_``)."""
    try:
        ipaddress.IPv4Address(host)
        return True
    except ValueError:
        pass
    if len(host) > 253 or host.replace(".", "").isdigit():
        return False
    return all(_HOST_LABEL.match(label) for label in host.removesuffix(".").split("."))


def check_address(address: str) -> str:
    """``host:port`` (port 1-65535; 5701 when left out), ``[ipv6]:port``; normalised, or ValueError saying why.

    A scheme (``http://``), a path, a space or an empty host never reaches the client, where it
    would only show up as a connection that never succeeds.
    """
    if "://" in address or "/" in address:
        raise ValueError(f"{address!r} is not host:port: no scheme or path {_EXAMPLE}")
    if address.startswith("["):
        inside, sep, rest = address[1:].partition("]")
        try:
            ipaddress.IPv6Address(inside)
        except ValueError:
            raise ValueError(f"{address!r} is not [ipv6]:port {_EXAMPLE}") from None
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"{address!r} is not [ipv6]:port {_EXAMPLE}")
        host, port = f"[{inside}]", rest[1:] if rest else str(DEFAULT_PORT)
    else:
        host, sep, port = address.rpartition(":")
        if not sep:
            host, port = address, str(DEFAULT_PORT)
        if ":" in host:
            raise ValueError(f"{address!r}: write an IPv6 address in brackets {_EXAMPLE}")
        if not host:
            raise ValueError(f"{address!r} has no host {_EXAMPLE}")
        if not _valid_host(host):
            raise ValueError(f"{address!r}: {host!r} is not a host name or IPv4 address {_EXAMPLE}")
    if not port.isascii() or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{address!r}: the port must be a number from 1 to 65535 {_EXAMPLE}")
    return f"{host}:{int(port)}"


#: The scanner's time zone when none is set: naive timestamps are UTC, as the scan contract always said.
DEFAULT_SCANNER_TIMEZONE = "UTC"
_SCANNER_TIMEZONE_HELP = (
    "Time zone of the scanner's timestamps that carry no offset: an IANA name such as Europe/Amsterdam "
    "(default UTC). Documents in Hazelcast always carry UTC."
)


def check_timezone(value: str) -> str:
    """An IANA time zone name the system knows (``Europe/Amsterdam``, ``UTC``), or ValueError saying so."""
    name = value.strip()
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{value!r} is not an IANA time zone name (examples: UTC, Europe/Amsterdam, America/New_York)"
        ) from None
    return name


def scanner_zone(name: str) -> tzinfo:
    """The ``tzinfo`` of a ``scanner_timezone`` setting; ``UTC`` is :data:`datetime.UTC` (nothing to resolve)."""
    return UTC if name in ("UTC", "Etc/UTC") else ZoneInfo(name)


def _not_empty_path(value: Any) -> Any:
    """An empty path would mean the current directory: never what an operator meant."""
    if isinstance(value, str) and not value.strip():
        raise ValueError("is empty (that would mean the current directory); name the scanner's directory")
    return value


def _read_secret_file(path: Path, field: str) -> SecretStr:
    """The secret in ``path`` (one trailing newline dropped); ValueError naming the setting otherwise."""
    name = f"{flag(field)} / {env_var(field)}"
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_SECRET_FILE_BYTES + 1)
    except OSError as exc:
        raise ValueError(f"{name}: cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_SECRET_FILE_BYTES:
        raise ValueError(f"{name}: {path} is larger than {MAX_SECRET_FILE_BYTES} bytes; it should hold the secret only")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{name}: {path} is not UTF-8 text") from None
    text = text.removesuffix("\n").removesuffix("\r")
    if not text:
        raise ValueError(f"{name}: {path} is empty")
    return SecretStr(text)


#: Secret settings that can also come from a file (``<name>_file``), and must not come from a flag.
SECRET_FIELDS = ("hazelcast_password", "hazelcast_ssl_password")


def command_line_secret_warnings(argv: Sequence[str]) -> list[str]:
    """One warning per secret given as a command-line flag: every user of the machine sees it in ``ps``."""
    warnings = []
    for field in SECRET_FIELDS:
        option = flag(field)
        if any(arg == option or arg.startswith(option + "=") for arg in argv):
            warnings.append(
                f"{option} on the command line is visible to every user of this machine (ps, /proc); "
                f"use {env_var(field)} or {flag(field + '_file')} / {env_var(field + '_file')} instead"
            )
    return warnings


#: Every settings class reads ``SCAN_BRIDGE_*``, takes kebab-case flags, and refuses ``inf``/``nan``
#: (a timeout of "inf" is an error, not a wait for ever).
_CONFIG = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", cli_kebab_case=True, allow_inf_nan=False)


class HazelcastSettings(BaseSettings):
    """Where the cluster is and how to talk to it; shared by the bridge, the health check and the daemon."""

    model_config = _CONFIG

    hazelcast_members: Annotated[list[str], NoDecode] = Field(
        default=["127.0.0.1:5701"],
        description="Comma-separated host:port of one or more members of the cluster.",
    )
    hazelcast_cluster_name: str = Field(default="dev", min_length=1, description="Cluster name.")
    hazelcast_username: str | None = Field(default=None, description="Client credentials (Enterprise clusters).")
    hazelcast_password: SecretStr | None = Field(
        default=None,
        description="Client password; never logged. Prefer the environment variable or --hazelcast-password-file: a flag shows in ps.",
    )
    hazelcast_password_file: Path | None = Field(
        default=None, description="File holding the client password (one trailing newline ignored)."
    )
    hazelcast_ssl_enabled: bool = Field(default=False, description="TLS to the cluster (Enterprise clusters).")
    hazelcast_ssl_cafile: Path | None = Field(default=None, description="CA bundle for TLS.")
    hazelcast_ssl_certfile: Path | None = Field(default=None, description="Client certificate for mutual TLS.")
    hazelcast_ssl_keyfile: Path | None = Field(default=None, description="Client key for mutual TLS.")
    hazelcast_ssl_password: SecretStr | None = Field(
        default=None, description="Password of the client key; never logged. Prefer the environment or --hazelcast-ssl-password-file."
    )
    hazelcast_ssl_password_file: Path | None = Field(
        default=None, description="File holding the password of the client key (one trailing newline ignored)."
    )
    hazelcast_connect_timeout_s: float = Field(
        default=10.0, gt=0, description="Give up connecting at start after this long (a wrong address must not hang)."
    )
    hazelcast_invocation_timeout_s: float = Field(
        default=10.0, gt=0, description="An operation fails after this long without a cluster."
    )
    hazelcast_call_timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="A call the member does not answer within this long (a catch-up batch gets more, by size) means it is frozen or the network silent.",
    )
    hazelcast_heartbeat_timeout_s: float = Field(
        default=15.0,
        gt=0,
        description="The client closes a connection that stayed silent this long, and reconnects (the client's heartbeat_timeout).",
    )

    features_map: str = Field(default="DOLPHIN_FEATURES", min_length=1, description="Map holding the latest scan.")
    latest_key: str = Field(default="latest_eigen_scan", min_length=1, description="Key of the latest scan.")
    heartbeat_key: str = Field(default="scan_bridge_heartbeat", min_length=1, description="Key of the bridge heartbeat.")
    history_map: str = Field(default="DOLPHIN_EIGEN_SCANS", min_length=1, description="Map of every scan, keyed by its UTC time in microseconds (a long).")
    scan_topic: str = Field(
        default="DOLPHIN_EIGEN_SCAN_EVENTS",
        description="Reliable topic announcing each new latest scan ({scan_number, timestamp, history_key, asset_count, pushed_at}); empty: off.",
    )

    @field_validator("hazelcast_members", mode="before")
    @classmethod
    def _members_from_csv(cls, value: Any) -> Any:
        return _split_members(value)

    @field_validator("hazelcast_members")
    @classmethod
    def _members_valid(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one member address is needed (example: 127.0.0.1:5701)")
        return [check_address(address) for address in value]

    @model_validator(mode="after")
    def _secrets_from_files(self) -> HazelcastSettings:
        """``<secret>_file`` → ``<secret>``. Both given is an error, unless they agree (a copy of settings already read)."""
        for field in SECRET_FIELDS:
            path = getattr(self, field + "_file")
            if path is None:
                continue
            secret = _read_secret_file(path, field + "_file")
            given = getattr(self, field)
            if given is not None and given.get_secret_value() != secret.get_secret_value():
                raise ValueError(
                    f"{flag(field)} / {env_var(field)} and {flag(field + '_file')} / {env_var(field + '_file')} "
                    "are both set; give one of them"
                )
            setattr(self, field, secret)
        return self

    def client_config(self) -> dict[str, Any]:
        """Keyword arguments for ``hazelcast.HazelcastClient``; secrets are unwrapped only here."""
        config: dict[str, Any] = {
            "cluster_name": self.hazelcast_cluster_name,
            "cluster_members": list(self.hazelcast_members),
            "cluster_connect_timeout": self.hazelcast_connect_timeout_s,
            "invocation_timeout": self.hazelcast_invocation_timeout_s,
            "heartbeat_timeout": self.hazelcast_heartbeat_timeout_s,
            # No redo of a write that was in flight on a dropped connection: the client would resend
            # it a second later, possibly after the reconcile has moved latest_eigen_scan further, and
            # move it back. The reconcile on reconnect re-pushes from disk instead (docs/bridge.md).
            "redo_operation": False,
            # Scan numbers (history keys) are Java longs for every client of ours: see document.HISTORY_KEY_INT_TYPE.
            "default_int_type": HISTORY_KEY_INT_TYPE,
        }
        if self.hazelcast_username is not None:
            config["creds_username"] = self.hazelcast_username
        if self.hazelcast_password is not None:
            config["creds_password"] = self.hazelcast_password.get_secret_value()
        if self.hazelcast_ssl_enabled:
            config["ssl_enabled"] = True
            for name in ("cafile", "certfile", "keyfile"):
                value = getattr(self, f"hazelcast_ssl_{name}")
                if value is not None:
                    config[f"ssl_{name}"] = str(value)
            if self.hazelcast_ssl_password is not None:
                config["ssl_password"] = self.hazelcast_ssl_password.get_secret_value()
        return config


def default_state_dir() -> Path:
    """``$XDG_STATE_HOME/scan-bridge``, else ``~/.local/state/scan-bridge``: the user's, never the scanner's folder."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "scan-bridge"


class ScannerSettings(BaseSettings):
    """What the bridge and the daemon both know of the scanner: its clock, and that its folder is named.

    A base of both, so the setting, its check and its resolved zone have one home (each class
    declares ``watch_dir`` itself: the bridge needs one, the daemon may go without).
    """

    model_config = _CONFIG

    scanner_timezone: str = Field(default=DEFAULT_SCANNER_TIMEZONE, description=_SCANNER_TIMEZONE_HELP)

    @field_validator("scanner_timezone")
    @classmethod
    def _timezone_known(cls, value: str) -> str:
        return check_timezone(value)

    @field_validator("watch_dir", mode="before", check_fields=False)
    @classmethod
    def _watch_dir_not_empty(cls, value: Any) -> Any:
        return _not_empty_path(value)

    @property
    def scanner_zone(self) -> tzinfo:
        """The scanner's time zone, resolved (the bridge and the health check read file timestamps with it)."""
        return scanner_zone(self.scanner_timezone)


class FailoverSettings(BaseSettings):
    """What the bridge and the daemon both know of failover (docs/high-availability.md): this machine's name."""

    model_config = _CONFIG

    machine_name: str = Field(
        default_factory=socket.gethostname,
        min_length=1,
        description="This machine's name in the failover lease and in each document's bridge block (default: the host name).",
    )


class BridgeSettings(ScannerSettings, HazelcastSettings, FailoverSettings):
    """Everything ``python -m scan_bridge.service`` needs."""

    lease_epoch: int | None = Field(
        default=None,
        ge=1,
        description="Failover: the lease epoch this bridge writes under, set by its daemon (unset: one machine, no fencing).",
    )

    watch_dir: Path = Field(description="Directory the scanner writes Arrow files into (date folders allowed).")
    observer: ObserverKind = Field(
        default="auto",
        description="native (inotify; local disks), polling (network mounts: CIFS/NFS), auto (polling on network mounts).",
    )
    poll_interval_s: float = Field(default=1.0, gt=0, description="Polling observer: seconds between looks.")
    watch_recent_dirs: int | None = Field(
        default=None,
        ge=1,
        description="Obsolete, ignored (a warning is logged): every folder under the watch dir is followed.",
    )
    rescan_interval_s: float = Field(
        default=60.0,
        gt=0,
        description="Seconds between looks at the newest files on disk, a safety net for lost file events.",
    )
    complete_deadline_s: float = Field(
        default=30.0, gt=0, description="How long a file may stay incomplete (still being written) before it is rejected."
    )
    max_file_bytes: int = Field(default=DEFAULT_MAX_FILE_BYTES, gt=0, description="Files larger than this are rejected.")
    max_scan_rows: int = Field(
        default=DEFAULT_MAX_SCAN_ROWS, gt=0, description="Scans with more rows (assets) than this are rejected, before they are decoded."
    )
    max_scan_columns: int = Field(default=DEFAULT_MAX_SCAN_COLUMNS, gt=0, description="Scans with more columns than this are rejected.")
    max_document_bytes: int = Field(
        default=DEFAULT_MAX_DOCUMENT_BYTES,
        gt=0,
        description="Largest scan document (JSON) pushed; a scan whose decoded Arrow data alone exceeds it is rejected before decoding.",
    )
    state_dir: Path = Field(
        default_factory=default_state_dir,
        description="Private folder (mode 0700) for the bridge's own state: which file it is reading, files that crashed it.",
    )
    retention: int = Field(default=1000, ge=1, description="How many of the newest scans the history map keeps.")
    batch_size: int = Field(default=200, ge=1, description="Scans per put_all when catching up.")
    heartbeat_interval_s: float = Field(default=2.0, gt=0, description="Seconds between heartbeat writes.")
    summary_interval_s: float = Field(default=30.0, gt=0, description="Seconds between '[OK] Pushed N scans' lines.")
    log_format: LogFormat = Field(default="human", description="human lines, or one JSON object per line.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(default="INFO", description="Lowest level logged.")

    @field_validator("watch_dir")
    @classmethod
    def _watch_dir_exists(cls, value: Path) -> Path:
        if not value.is_dir():
            raise ValueError(f"{value} is not a directory (create it, or point SCAN_BRIDGE_WATCH_DIR elsewhere)")
        return value.resolve()


class DaemonSettings(ScannerSettings, HazelcastSettings, FailoverSettings):
    """The daemon's own knobs, beside the bridge's (which it passes on through the environment)."""

    failover: bool = Field(
        default=False,
        description="Run as one of several machines: the holder of the lease in Hazelcast runs the bridge, the others stand by.",
    )
    lease_s: float = Field(
        default=DEFAULT_LEASE_S, gt=0, description="Failover: a lease not renewed for this long is taken over by a standby."
    )
    lease_renew_s: float = Field(
        default=DEFAULT_RENEW_S, gt=0, description="Failover: how often the active renews the lease and standbys look at it."
    )
    lease_key: str = Field(
        default="scan_bridge_lease", min_length=1, description="Failover: key of the lease entry in the features map."
    )

    watch_dir: Path | None = Field(default=None, description="Scanner directory; the health check looks at it.")
    health_interval_s: float = Field(default=30.0, gt=0, description="Seconds between health checks.")
    warn_after_s: float = Field(default=30.0, gt=0, description="Data older than this is a warning.")
    stale_after_s: float = Field(default=60.0, gt=0, description="Data older than this is stale.")
    heartbeat_stale_after_s: float = Field(
        default=15.0, gt=0, description="A bridge heartbeat older than this means the bridge is stuck."
    )
    max_restarts: int = Field(default=3, ge=0, description="Restarts allowed within the restart window.")
    restart_delay_s: float = Field(default=5.0, ge=0, description="Seconds between a bridge exit and its restart.")
    restart_window_s: float = Field(default=600.0, gt=0, description="Window over which restarts are counted.")
    restart_on_any_stale: bool = Field(
        default=False, description="Restart on every stale result, as the original design did (also when the scanner is silent)."
    )
    stop_grace_s: float = Field(default=5.0, gt=0, description="SIGTERM to SIGKILL grace when stopping the bridge.")
    health_timeout_s: float = Field(default=3.0, gt=0, description="Hazelcast unreachable after this long is 'error'.")
    newer_file_grace_s: float = Field(
        default=10.0,
        ge=0,
        description="A scan file on disk counts as complete (and the bridge as stuck if it is not pushed) once unmodified this long.",
    )
    clock_skew_tolerance_s: float = Field(
        default=2.0, ge=0, description="A scan timestamp at most this far in the future is normal clock noise, not skew."
    )
    start_grace_s: float = Field(
        default=20.0, ge=0, description="A new bridge is STARTING (never restarted for being stuck) for this long."
    )
    daemon_name: str | None = Field(
        default=None,
        description="This daemon's name in events and alerts (resource scan-bridge.daemon.<name>); default: the deployment's name, or 'standalone'.",
    )
    summary_interval_s: float = Field(
        default=300.0,
        gt=0,
        description=(
            "Seconds between summary lines in Prefect's log while nothing changes: a health line (every check still "
            "goes to the console; changes, restarts, warnings and errors always go to Prefect), and the bridge's "
            "'[OK] Pushed N scans' line (passed on to the bridge). Each line is a database row kept for good."
        ),
    )
    metrics_port: int | None = Field(
        default=None, ge=0, le=65535, description="Serve Prometheus metrics on this port (off when unset)."
    )
    metrics_addr: str = Field(default="127.0.0.1", description="Address the Prometheus endpoint binds to.")

    @model_validator(mode="after")
    def _lease_timing(self) -> DaemonSettings:
        if self.failover:
            check_timing(self.lease_s, self.lease_renew_s)
        return self


def describe_validation_error(error: ValidationError) -> str:
    """One line for all problems, each naming the setting as both flag and environment variable.

    A problem across settings (a secret given twice) names them in its own message.
    """
    lines = []
    for problem in error.errors():
        message = " ".join(str(problem["msg"]).removeprefix("Value error, ").split())  # one line, whatever it quotes
        loc = [str(part) for part in problem["loc"]]
        if not loc:
            lines.append(f"invalid setting {message}")
            continue
        field = loc[0]
        where = f"{flag(field)} / {env_var(field)}" + ("" if len(loc) == 1 else f" (item {'.'.join(loc[1:])})")
        lines.append(f"invalid setting {where}: {message}")
    return "; ".join(lines)


def describe_settings_error(error: ValidationError | SettingsError) -> str:
    """The one line for any settings problem: a bad value (see :func:`describe_validation_error`) or a
    command line argparse cannot parse (an unknown flag, a flag without its value)."""
    if isinstance(error, ValidationError):
        return describe_validation_error(error)
    message = " ".join(str(error).removeprefix("error parsing CLI: ").split())
    return f"invalid command line: {message} (--help lists the settings)"
