"""A downstream flow that waits for the bridge before it "trades", and a topic subscriber.

    python examples/paper_trade_flow.py                # wait for a scan at most 30 s old, then paper-trade it
    python examples/paper_trade_flow.py --subscribe    # print each scan number as the bridge pushes it (Ctrl-C ends)

The cluster and names come from the ``SCAN_BRIDGE_*`` environment, as for the bridge
(SCAN_BRIDGE_HAZELCAST_MEMBERS, SCAN_BRIDGE_FEATURES_MAP, SCAN_BRIDGE_SCAN_TOPIC, ...).
"""

from __future__ import annotations

import argparse
import json
import threading
from typing import Any

from prefect import flow, get_run_logger

from scan_bridge.downstream import wait_for_fresh_scan_task
from scan_bridge.settings import HazelcastSettings

RANK_BY = "eigenvalue"  # the simulator's first feature column; any numeric per-asset column works


def top_assets(scan: dict[str, Any], column: str = RANK_BY, n: int = 5) -> list[tuple[str, Any]]:
    """The ``n`` assets with the largest ``column`` value (None values last)."""
    values = scan.get("columns", {}).get(column) or [None] * len(scan.get("assets", []))
    pairs = [(asset, value) for asset, value in zip(scan.get("assets", []), values, strict=False)]
    return sorted(pairs, key=lambda p: (p[1] is None, -(p[1] or 0)))[:n]


@flow(name="paper-trade")
def paper_trade_flow(
    max_age_s: float = 30, timeout_s: float = 120, settings: HazelcastSettings | None = None
) -> dict[str, Any]:
    """Wait for fresh data (StaleScanError fails the run if none comes), then log the would-be trades."""
    logger = get_run_logger()
    scan = wait_for_fresh_scan_task(max_age_s=max_age_s, timeout_s=timeout_s, settings=settings)
    picks = top_assets(scan)
    for asset, value in picks:
        logger.info("paper BUY %s (%s %s) from scan #%s", asset, RANK_BY, value, scan["scan_number"])
    return {"scan_number": scan["scan_number"], "timestamp": scan["timestamp"], "buys": [a for a, _ in picks]}


def subscribe(settings: HazelcastSettings | None = None, stop: threading.Event | None = None) -> None:
    """Print each scan's number as the bridge announces it on the scan topic, until ``stop`` is set (or Ctrl-C)."""
    import hazelcast

    s = settings if settings is not None else HazelcastSettings()
    if not s.scan_topic:
        raise SystemExit("scan_topic is empty (SCAN_BRIDGE_SCAN_TOPIC): the bridge publishes no events")
    client = hazelcast.HazelcastClient(**s.client_config())
    try:
        topic = client.get_reliable_topic(s.scan_topic).blocking()

        def on_message(message: Any) -> None:
            event = json.loads(message.message)
            print(f"scan #{event['scan_number']} at {event['timestamp']} ({event['asset_count']} assets)", flush=True)

        registration = topic.add_listener(on_message)
        print(f"listening on {s.scan_topic} at {','.join(s.hazelcast_members)}; Ctrl-C to stop", flush=True)
        try:
            (stop or threading.Event()).wait()
        except KeyboardInterrupt:
            pass
        finally:
            topic.remove_listener(registration)
    finally:
        client.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--subscribe", action="store_true", help="print scan numbers as they arrive")
    parser.add_argument("--max-age-s", type=float, default=30)
    parser.add_argument("--timeout-s", type=float, default=120)
    args = parser.parse_args()
    if args.subscribe:
        subscribe()
    else:
        print(paper_trade_flow(max_age_s=args.max_age_s, timeout_s=args.timeout_s))


if __name__ == "__main__":
    main()
