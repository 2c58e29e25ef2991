"""The tests' webhook receiver: :mod:`scan_bridge.webhook_receiver` (shared with the chaos harness)."""

from scan_bridge.webhook_receiver import Received, WebhookReceiver

__all__ = ["Received", "WebhookReceiver"]
