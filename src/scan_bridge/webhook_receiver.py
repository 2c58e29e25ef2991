"""A webhook receiver on 127.0.0.1 standing in for Slack, Discord or PagerDuty: it records what arrives.

The one receiver of the alert tests (tests/test_alerts.py) and the chaos harness's alert check
(:mod:`.chaos.alerting`); it lives in the package because the harness ships in it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True, slots=True)
class Received:
    at: float  # time.monotonic() on arrival
    path: str
    content_type: str | None
    body: Any  # parsed JSON (None if the body was not JSON)
    raw: str


class WebhookReceiver:
    """Every POST, in order of arrival (:attr:`messages`); waits on arrivals, never by sleeping."""

    def __init__(self) -> None:
        self.messages: list[Received] = []
        self._changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode("utf-8", "replace")
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                with receiver._changed:
                    receiver.messages.append(Received(time.monotonic(), self.path, self.headers.get("Content-Type"), body, raw))
                    receiver._changed.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def matching(self, predicate: Callable[[Received], bool]) -> list[Received]:
        with self._changed:
            return [m for m in self.messages if predicate(m)]

    def wait(self, predicate: Callable[[Received], bool], timeout: float, what: str, count: int = 1) -> list[Received]:
        """Block until ``count`` messages match (an event, not a sleep); fail naming ``what``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [m for m in self.messages if predicate(m)]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raw = [m.raw[:300] for m in self.messages]
                    raise AssertionError(f"timed out after {timeout} s waiting for {what}; received: {raw}")
                self._changed.wait(remaining)

    def assert_none(self, predicate: Callable[[Received], bool], until: float, what: str) -> float:
        """No message matches, watched until ``until`` (a ``time.monotonic()`` deadline); the seconds watched.

        The caller fixes ``until`` from when the window really starts (a kill, a stop, the first
        alert), not from when it gets round to asking. The window is waited out in full, and a match
        at any time (before the call too: every message is kept) fails at once. A window already over
        when this is called is still checked, completely: everything that arrived in it is recorded.
        """
        started = time.monotonic()
        with self._changed:
            while True:
                found = [m for m in self.messages if predicate(m)]
                if found:
                    raise AssertionError(f"{what}: received {[m.raw[:300] for m in found]}")
                remaining = until - time.monotonic()
                if remaining <= 0:
                    return time.monotonic() - started
                self._changed.wait(remaining)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
