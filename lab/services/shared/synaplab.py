"""What the lab's api, jobs and hub stand-ins share: settings, log lines, the database pool, HTTP helpers.

Mounted read-only at /srv/shared in every lab container (PYTHONPATH).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import urllib.error
import urllib.request
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DATABASE_URL = os.environ.get("DATABASE_URL", "postgresql://synap:lab-db-pass-7c41@postgres:5432/synap")
INNGEST_URL = os.environ.get("INNGEST_URL", "http://inngest:8288").rstrip("/")
INNGEST_EVENT_KEY = os.environ.get("INNGEST_EVENT_KEY", "")
INNGEST_SIGNING_KEY = os.environ.get("INNGEST_SIGNING_KEY", "")
INNGEST_APP = os.environ.get("INNGEST_APP", "synap")

_log_lock = threading.Lock()


def log(level: str, component: str, message: str, **fields) -> None:
    """One line per event, `<time> <LEVEL> <component> <message> key=value...`, so `grep ERROR` finds failures."""
    extra = " ".join(f"{key}={value}" for key, value in fields.items())
    line = f"{datetime.now(UTC).isoformat(timespec='milliseconds')} {level} {component} {message} {extra}".rstrip()
    with _log_lock:
        print(line, file=sys.stdout, flush=True)


def make_pool(application_name: str, min_size: int, max_size: int):
    """The service's connection pool; connections carry the application name that pg_stat_activity shows."""
    from psycopg_pool import ConnectionPool

    pool = ConnectionPool(
        DATABASE_URL,
        min_size=min_size,
        max_size=max_size,
        kwargs={"application_name": application_name, "autocommit": True},
        timeout=5,
        open=False,
    )
    # Do not wait: the service starts (and reports unhealthy) even while PostgreSQL is down.
    pool.open(wait=False)
    return pool


def http_json(method: str, url: str, body=None, headers: dict | None = None, timeout: float = 5.0):
    """Send a request, return (status, parsed JSON or raw text). Network errors raise OSError."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    try:
        return status, json.loads(raw or b"null")
    except ValueError:
        return status, raw.decode(errors="replace")


def send_events(events: list[dict]) -> list[str]:
    """Send events to the lab's Inngest; return their ids."""
    status, answer = http_json("POST", f"{INNGEST_URL}/e/{INNGEST_EVENT_KEY}", events)
    if status != 200:
        raise OSError(f"Inngest refused the events: HTTP {status} {answer}")
    return answer.get("ids", [])


class JsonHandler(BaseHTTPRequestHandler):
    """Request handler with JSON helpers; subclasses route in `handle_request(method)`."""

    protocol_version = "HTTP/1.1"
    server_version = "synap-lab"

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        pass  # access logs would drown the lines that matter

    def read_json(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw else None

    def send_json(self, status: int, payload) -> None:
        self.send_text(status, json.dumps(payload, default=str).encode(), "application/json")

    def send_text(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.handle_request("GET")

    def do_POST(self):
        self.handle_request("POST")

    def do_DELETE(self):
        self.handle_request("DELETE")

    def handle_request(self, method: str) -> None:
        raise NotImplementedError


def serve(handler: type[JsonHandler], port: int, component: str) -> None:
    server = ThreadingHTTPServer(("0.0.0.0", port), handler)
    server.daemon_threads = True
    log("INFO", component, "listening", port=port)
    server.serve_forever()
