"""What a chaos run does: the fault kinds, the two profiles (CI and long) and the seeded order of faults.

Everything here is pure, so the order of faults is reproducible from the seed alone: the same
``--seed`` and ``--faults`` give the same sequence of kinds and gaps (the timing of what the
processes then do is the machine's).
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

#: Every fault kind, in the order the report lists them. What each does is in docs/reliability.md.
KINDS: tuple[str, ...] = (
    "kill-bridge",  # SIGKILL the bridge; the daemon must start another
    "stop-bridge",  # SIGSTOP the bridge past the heartbeat threshold; the daemon must kill and restart it
    "kill-member",  # SIGKILL every member, start them again empty
    "freeze-member",  # SIGSTOP a member past the client's heartbeat timeout, then SIGCONT; no restart
    "lose-member",  # one member of two killed, a new one started on its address; needs --members 2
    "pause-scanner",  # the scanner writes nothing past the stale threshold; "scanner silent", no restart
    "burst",  # the scanner writes burst_files scans at once
    "kill-daemon",  # SIGKILL the daemon (its bridge dies with it), start it again
    "bad-files",  # one file of every kind the bridge rejects, among good scans
    "incomplete-file",  # half a scan under its final name, never finished
    "unreadable-folder",  # the folder being written made mode 000 past the stale threshold, then restored
)

@dataclass(frozen=True)
class Profile:
    """The knobs of a run. ``ci`` is short everything; ``long`` is the published run's."""

    name: str
    rate: float  # scans a second
    assets: int
    members: int
    # daemon (SCAN_BRIDGE_* of the daemon; passed on to the bridge where they are the bridge's)
    health_interval_s: float
    warn_after_s: float
    stale_after_s: float
    heartbeat_stale_after_s: float
    newer_file_grace_s: float
    restart_delay_s: float
    start_grace_s: float
    health_timeout_s: float
    # bridge
    heartbeat_interval_s: float
    client_heartbeat_timeout_s: float
    call_timeout_s: float
    # faults
    gap_s: tuple[float, float]
    member_down_s: float
    burst_files: int
    bound_s: float  # every complete scan in history within this after the fault that hid it ended
    settle_timeout_s: float  # give up waiting for recovery after this (the overdue check reports it)
    overrun_s: float  # the fault loop ends (a violation) this long after --duration, whatever is left
    weights: dict[str, float] = field(default_factory=dict)

    @property
    def stop_bridge_s(self) -> float:
        """Longest a bridge stays SIGSTOPped: past the heartbeat threshold plus two checks; the daemon should kill it first."""
        return self.heartbeat_stale_after_s + 2 * self.health_interval_s + self.start_grace_s + 10

    @property
    def freeze_member_s(self) -> float:
        """Past the bridge client's heartbeat timeout (it closes the connection), and past a health check."""
        return self.client_heartbeat_timeout_s + max(5.0, self.health_interval_s + self.health_timeout_s)

    @property
    def pause_scanner_s(self) -> float:
        """Past the stale threshold, long enough for two checks to call it stale."""
        return self.stale_after_s + 2 * self.health_interval_s + 3

    @property
    def unreadable_folder_s(self) -> float:
        """As long as a paused scanner: the data goes stale while the scans pile up out of reach."""
        return self.pause_scanner_s

    def daemon_env(self) -> dict[str, str]:
        return {
            "SCAN_BRIDGE_HEALTH_INTERVAL_S": f"{self.health_interval_s:g}",
            "SCAN_BRIDGE_WARN_AFTER_S": f"{self.warn_after_s:g}",
            "SCAN_BRIDGE_STALE_AFTER_S": f"{self.stale_after_s:g}",
            "SCAN_BRIDGE_HEARTBEAT_STALE_AFTER_S": f"{self.heartbeat_stale_after_s:g}",
            "SCAN_BRIDGE_NEWER_FILE_GRACE_S": f"{self.newer_file_grace_s:g}",
            "SCAN_BRIDGE_RESTART_DELAY_S": f"{self.restart_delay_s:g}",
            "SCAN_BRIDGE_START_GRACE_S": f"{self.start_grace_s:g}",
            "SCAN_BRIDGE_HEALTH_TIMEOUT_S": f"{self.health_timeout_s:g}",
            # Every bridge fault is a wanted restart: the budget (a crash-loop guard) must not end the run.
            "SCAN_BRIDGE_MAX_RESTARTS": "1000",
            "SCAN_BRIDGE_RESTART_WINDOW_S": "600",
            "SCAN_BRIDGE_HEARTBEAT_INTERVAL_S": f"{self.heartbeat_interval_s:g}",
            "SCAN_BRIDGE_HAZELCAST_HEARTBEAT_TIMEOUT_S": f"{self.client_heartbeat_timeout_s:g}",
            "SCAN_BRIDGE_HAZELCAST_CALL_TIMEOUT_S": f"{self.call_timeout_s:g}",
        }


_EVERY = {kind: 1.0 for kind in KINDS}

PROFILES: dict[str, Profile] = {
    "ci": Profile(
        name="ci",
        rate=5,
        assets=20,
        members=1,
        health_interval_s=1,
        warn_after_s=3,
        stale_after_s=6,
        heartbeat_stale_after_s=4,
        newer_file_grace_s=3,
        restart_delay_s=0.5,
        # A bridge takes 3-5 s from fork to its first heartbeat on a loaded 2-core machine (Python,
        # pyarrow and the client imported, then connected): a shorter grace kills it while it starts.
        start_grace_s=10,
        health_timeout_s=2,
        heartbeat_interval_s=0.5,
        client_heartbeat_timeout_s=6,
        call_timeout_s=2,
        gap_s=(0.5, 1.5),
        member_down_s=1,
        burst_files=500,
        bound_s=90,
        settle_timeout_s=60,
        overrun_s=300,
        weights=dict(_EVERY),
    ),
    "long": Profile(
        name="long",
        rate=5,
        assets=400,
        members=1,
        health_interval_s=5,
        warn_after_s=10,
        stale_after_s=20,
        heartbeat_stale_after_s=10,
        newer_file_grace_s=5,
        restart_delay_s=1,
        start_grace_s=20,  # the default
        health_timeout_s=3,
        heartbeat_interval_s=2,
        client_heartbeat_timeout_s=15,
        call_timeout_s=5,
        gap_s=(1, 4),
        member_down_s=3,
        burst_files=500,
        bound_s=60,
        settle_timeout_s=120,
        overrun_s=600,
        weights={**_EVERY, "kill-bridge": 20.0},
    ),
}


def fault_order(rng: random.Random, kinds: Sequence[str], weights: dict[str, float]) -> Iterator[str]:
    """Every kind once in a shuffled order (so a short run sees them all), then kinds drawn by weight."""
    first = list(kinds)
    rng.shuffle(first)
    yield from first
    population = list(kinds)
    chances = [weights.get(kind, 1.0) for kind in population]
    while True:
        yield rng.choices(population, chances)[0]


def parse_kinds(text: str, members: int) -> list[str]:
    """``--faults`` (comma-separated, or ``all``) as a list of kinds; a clear error for an unknown one."""
    if text.strip() == "all":
        return [kind for kind in KINDS if kind != "lose-member" or members >= 2]
    kinds = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [kind for kind in kinds if kind not in KINDS]
    if unknown:
        raise ValueError(f"unknown fault kind(s) {', '.join(unknown)}; known: {', '.join(KINDS)}")
    if "lose-member" in kinds and members < 2:
        raise ValueError("lose-member needs --members 2 (one member of two is lost and replaced)")
    if not kinds:
        raise ValueError("--faults names no fault kind")
    return kinds
