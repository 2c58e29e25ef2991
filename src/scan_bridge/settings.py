"""Configuration for the bridge and the daemon, from flags and ``SCAN_BRIDGE_*`` environment variables.

pydantic-settings gives us one declaration per setting that serves as the environment variable,
the command-line flag (kebab case) and the validated, typed value: a wrong value fails before any
I/O, with the field's name in the message, so the operator is told what to fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ObserverKind = Literal["auto", "native", "polling"]
LogFormat = Literal["human", "json"]


def _split_members(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _check_address(address: str) -> str:
    host, sep, port = address.rpartition(":")
    if not sep:
        host, port = address, "5701"
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{address!r} is not host:port (example: 127.0.0.1:5701)")
    return f"{host}:{port}"


class HazelcastSettings(BaseSettings):
    """Where the cluster is and how to talk to it; shared by the bridge, the health check and the daemon."""

    model_config = SettingsConfigDict(env_prefix="SCAN_BRIDGE_", extra="ignore", cli_kebab_case=True)

    hazelcast_members: Annotated[list[str], NoDecode] = Field(
        default=["127.0.0.1:5701"],
        description="Comma-separated host:port of one or more members of the cluster.",
    )
    hazelcast_cluster_name: str = Field(default="dev", min_length=1, description="Cluster name.")
    hazelcast_username: str | None = Field(default=None, description="Client credentials (Enterprise clusters).")
    hazelcast_password: SecretStr | None = Field(default=None, description="Client password; never logged.")
    hazelcast_ssl_enabled: bool = Field(default=False, description="TLS to the cluster (Enterprise clusters).")
    hazelcast_ssl_cafile: Path | None = Field(default=None, description="CA bundle for TLS.")
    hazelcast_ssl_certfile: Path | None = Field(default=None, description="Client certificate for mutual TLS.")
    hazelcast_ssl_keyfile: Path | None = Field(default=None, description="Client key for mutual TLS.")
    hazelcast_ssl_password: SecretStr | None = Field(default=None, description="Password of the client key.")
    hazelcast_connect_timeout_s: float = Field(
        default=10.0, gt=0, description="Give up connecting at start after this long (a wrong address must not hang)."
    )
    hazelcast_invocation_timeout_s: float = Field(
        default=10.0, gt=0, description="An operation fails after this long without a cluster."
    )

    features_map: str = Field(default="DOLPHIN_FEATURES", min_length=1, description="Map holding the latest scan.")
    latest_key: str = Field(default="latest_eigen_scan", min_length=1, description="Key of the latest scan.")
    heartbeat_key: str = Field(default="scan_bridge_heartbeat", min_length=1, description="Key of the bridge heartbeat.")
    history_map: str = Field(default="DOLPHIN_EIGEN_SCANS", min_length=1, description="Map of every scan, by number.")
    scan_topic: str = Field(
        default="DOLPHIN_EIGEN_SCAN_EVENTS",
        description="Reliable topic announcing each new latest scan ({scan_number, timestamp, asset_count, pushed_at}); empty: off.",
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
        return [_check_address(address) for address in value]

    def client_config(self) -> dict[str, Any]:
        """Keyword arguments for ``hazelcast.HazelcastClient``; secrets are unwrapped only here."""
        config: dict[str, Any] = {
            "cluster_name": self.hazelcast_cluster_name,
            "cluster_members": list(self.hazelcast_members),
            "cluster_connect_timeout": self.hazelcast_connect_timeout_s,
            "invocation_timeout": self.hazelcast_invocation_timeout_s,
            # Our writes are idempotent (same key, same document), so a retry after a dropped connection is safe.
            "redo_operation": True,
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


class BridgeSettings(HazelcastSettings):
    """Everything ``python -m scan_bridge.service`` needs."""

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
    max_file_bytes: int = Field(default=256 * 1024 * 1024, gt=0, description="Files larger than this are rejected.")
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


class DaemonSettings(HazelcastSettings):
    """The daemon's own knobs, beside the bridge's (which it passes on through the environment)."""

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
    metrics_port: int | None = Field(
        default=None, ge=0, le=65535, description="Serve Prometheus metrics on this port (off when unset)."
    )
    metrics_addr: str = Field(default="127.0.0.1", description="Address the Prometheus endpoint binds to.")


def describe_validation_error(error: ValidationError) -> str:
    """One line per problem, naming the setting as both flag and environment variable."""
    lines = []
    for problem in error.errors():
        field = ".".join(str(part) for part in problem["loc"]) or "settings"
        flag = "--" + field.replace("_", "-")
        env = "SCAN_BRIDGE_" + field.upper()
        message = problem["msg"].removeprefix("Value error, ")
        lines.append(f"invalid setting {flag} / {env}: {message}")
    return "; ".join(lines)
