"""A local stand-in for the PagerDuty Events API v2, for the pagerduty_event and notify tests.

``POST /v2/enqueue`` checks the event as the API documents it and answers as the API does:
- 202 ``{"status": "success", "message": "Event processed", "dedup_key": ...}`` for a valid event;
- 400 ``{"status": "invalid event", "message": "Event object is invalid", "errors": [...]}`` for an invalid one;
- 429 (rate limited) or a 5xx for the next N events when told to (``rate_limit``, ``fail``), with ``Retry-After``
  when asked.
Every request is kept in ``received`` with the status it got, when it came and, when ``watch`` is set, what
``watch()`` saw at that moment (the state of whatever the run changes). Bound to 127.0.0.1 on a free port.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from local_server import LocalServer

ACTIONS = ("trigger", "acknowledge", "resolve")
SEVERITIES = ("critical", "error", "warning", "info")
ROUTING_KEY_LENGTH = 32


def problems(event) -> list[str]:
    """What is wrong with an event, in the words of the API's ``errors``; empty when it is valid."""
    if not isinstance(event, dict):
        return ["Event object must be a JSON object"]
    errors = []
    key = event.get("routing_key")
    if not isinstance(key, str) or not key:
        errors.append("'routing_key' is missing or blank")
    elif len(key) != ROUTING_KEY_LENGTH:
        errors.append(f"Length of 'routing_key' is incorrect (should be {ROUTING_KEY_LENGTH} characters)")
    action = event.get("event_action")
    if action not in ACTIONS:
        errors.append("'event_action' is invalid (must be one of the following: 'trigger', 'acknowledge' or 'resolve')")
    dedup_key = event.get("dedup_key")
    if dedup_key is not None and (not isinstance(dedup_key, str) or len(dedup_key) > 255):
        errors.append("'dedup_key' must be a string of at most 255 characters")
    if action in ("acknowledge", "resolve") and not dedup_key:
        errors.append("'dedup_key' is missing or blank")
    if action == "trigger":
        payload = event.get("payload")
        if not isinstance(payload, dict):
            errors.append("'payload' is missing or not an object")
        else:
            for field in ("summary", "source"):
                if not isinstance(payload.get(field), str) or not payload[field]:
                    errors.append(f"'payload.{field}' is missing or blank")
            if isinstance(payload.get("summary"), str) and len(payload["summary"]) > 1024:
                errors.append("'payload.summary' is longer than 1024 characters")
            if payload.get("severity") not in SEVERITIES:
                errors.append("'payload.severity' is invalid (must be one of the following: 'critical', 'warning', "
                              "'error' or 'info')")
            if "custom_details" in payload and not isinstance(payload["custom_details"], dict):
                errors.append("'payload.custom_details' must be an object")
    return errors


class PagerDutyReceiver(LocalServer):
    """The Events API v2 on a free local port: ``url`` is its enqueue endpoint."""

    def __init__(self):
        self.received: list[dict] = []
        self._lock = threading.Lock()
        self._refusals: list[tuple[int, str | None]] = []  # the answers owed to the next events: (status, Retry-After)
        self.watch: Callable[[], Any] | None = None
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    event = json.loads(raw or b"null")
                except ValueError:
                    event = raw.decode("utf-8", "replace")
                seen = receiver.watch() if receiver.watch else None
                status, body, retry_after = receiver._answer(self.path, event)
                with receiver._lock:
                    receiver.received.append({"path": self.path, "at": time.monotonic(), "event": event,
                                              "content_type": self.headers.get("Content-Type"), "status": status,
                                              "seen": seen})
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if retry_after is not None:
                    self.send_header("Retry-After", retry_after)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        super().__init__(Handler)
        self.base_url = self.url
        self.url = self.base_url + "/v2/enqueue"

    def rate_limit(self, times: int, retry_after: str | None = None) -> None:
        """Answer the next ``times`` events 429, with this ``Retry-After`` header if given."""
        with self._lock:
            self._refusals += [(429, retry_after)] * times

    def fail(self, times: int, status: int = 503) -> None:
        """Answer the next ``times`` events with a server error."""
        with self._lock:
            self._refusals += [(status, None)] * times

    def accepted(self) -> list[dict]:
        """The events answered 202, in the order they came."""
        return [r["event"] for r in self.received if r["status"] == 202]

    def seen(self) -> list[tuple[str, Any]]:
        """Each accepted event's action and what ``watch()`` saw as it came."""
        return [(r["event"]["event_action"], r["seen"]) for r in self.received if r["status"] == 202]

    def _answer(self, path, event):
        if path != "/v2/enqueue":
            return 404, {"status": "not found", "message": f"no route for {path}"}, None
        with self._lock:
            refusal = self._refusals.pop(0) if self._refusals else None
        if refusal is not None:
            status, retry_after = refusal
            message = "Rate limit exceeded" if status == 429 else "Internal server error"
            return status, {"status": "throttle event" if status == 429 else "error", "message": message}, retry_after
        errors = problems(event)
        if errors:
            return 400, {"status": "invalid event", "message": "Event object is invalid", "errors": errors}, None
        dedup_key = event.get("dedup_key") or uuid.uuid4().hex
        return 202, {"status": "success", "message": "Event processed", "dedup_key": dedup_key}, None
