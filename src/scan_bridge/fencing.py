"""Fencing with the lease's epoch (failover, docs/high-availability.md): pure helpers the sink uses.

Every document a bridge writes under a lease names its machine and epoch in its ``bridge`` block
(``"host"``, ``"epoch"``). ``latest_eigen_scan`` only ever moves by compare-and-set against the
exact value the bridge last knew, and a bridge that finds there a value of a *higher* epoch has
lost the lease: it raises :class:`Fenced` and writes nothing more.

A new active *claims* the pointer as its first write (:func:`claimed`): the same document with
``"fenced_by_epoch": <its epoch>`` added to the bridge block. Every older active's next
compare-and-set then fails, even when no new scan arrived since the takeover, so an old active
thawing after a freeze cannot slip one more write in. History entries are keyed by the scan's time
and hold the same scan whoever writes them; they are not compare-and-set (see the limits in
docs/high-availability.md).
"""

from __future__ import annotations

import json
from typing import Any

__all__ = [
    "EPOCH_FIELD", "FENCED_BY_FIELD", "FENCE_RECHECK_S", "HOST_FIELD", "Fenced", "claim_latest", "claimed", "writer_epoch",
    "writer_host",
]

#: A bridge that has not confirmed its epoch on latest for this long (seconds: idle, or frozen and thawed)
#: reads latest before its next write. A freeze long enough for a takeover (at least the lease, which
#: must be longer than this) is always noticed before the thawed bridge writes anything.
FENCE_RECHECK_S = 1.0

#: Fields of a document's ``bridge`` block under failover.
HOST_FIELD = "host"
EPOCH_FIELD = "epoch"
FENCED_BY_FIELD = "fenced_by_epoch"


class Fenced(Exception):
    """A newer lease epoch has written ``latest_eigen_scan``: this bridge lost the lease and must stop writing."""

    def __init__(self, message: str, epoch: int = 0) -> None:
        super().__init__(message)
        self.epoch = epoch  # the newer epoch found

def _text(value: Any) -> str | None:
    if value is None:
        return None
    to_string = getattr(value, "to_string", None)  # HazelcastJsonValue
    return to_string() if callable(to_string) else str(value)


def _bridge(value: Any) -> dict[str, Any]:
    text = _text(value)
    if text is None:
        return {}
    try:
        document = json.loads(text)
    except ValueError:
        return {}
    block = document.get("bridge") if isinstance(document, dict) else None
    return block if isinstance(block, dict) else {}


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def writer_epoch(value: Any) -> int:
    """The highest epoch a latest document speaks for: its writer's, or the active's that claimed it; 0 if none."""
    block = _bridge(value)
    return max(_int(block.get(EPOCH_FIELD)), _int(block.get(FENCED_BY_FIELD)))


def writer_host(value: Any) -> str | None:
    """The machine that wrote a document (failover only), else None."""
    host = _bridge(value).get(HOST_FIELD)
    return host if isinstance(host, str) else None


def claim_latest(imap: Any, key: str, epoch: int, wait: Any, attempts: int = 5) -> Any:
    """Mark latest (``key`` in ``imap``, a non-blocking map proxy) as claimed by ``epoch``; returns it as now held.

    ``wait(future, what)`` waits with a deadline. Raises :class:`Fenced` when latest speaks for a higher
    epoch. Used by the daemon right after it wins the lease (so the window in which an old active can
    still move latest is one round trip, not a bridge's start) and by the bridge's first refresh.
    """
    from hazelcast.core import HazelcastJsonValue

    latest = wait(imap.get(key), f"get {key}")
    for _ in range(attempts):
        theirs = writer_epoch(latest)
        if theirs > epoch:
            raise Fenced(f"{key} holds epoch {theirs} (written by {writer_host(latest) or 'another machine'}); "
                         f"this bridge's lease epoch {epoch} is over: it writes nothing more", theirs)
        if latest is None or theirs == epoch:
            return latest
        try:
            mine = HazelcastJsonValue(claimed(_text(latest) or "", epoch))
        except ValueError:
            return latest  # not a document of ours: our first move replaces it, compare-and-set
        if wait(imap.replace_if_same(key, latest, mine), f"claiming {key}"):
            return mine
        latest = wait(imap.get(key), f"get {key}")
    raise RuntimeError(f"{key} kept changing while epoch {epoch} claimed it")


def claimed(text: str, epoch: int) -> str:
    """``text`` (a scan document) with ``bridge.fenced_by_epoch`` set to ``epoch``; everything else unchanged.

    ValueError when ``text`` is not a JSON object (a latest value nobody of ours wrote).
    """
    document = json.loads(text)
    if not isinstance(document, dict):
        raise ValueError("latest value is not a JSON object")
    block = document.get("bridge")
    if not isinstance(block, dict):
        block = {}
    document["bridge"] = {**block, FENCED_BY_FIELD: epoch}
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)
