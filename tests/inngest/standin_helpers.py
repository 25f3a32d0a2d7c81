"""Helpers for the Inngest stand-in and module tests.

The stand-in runs as its own process on a free port, exactly as the lab runs it. A small HTTP app in the
test process plays the registered worker, so runs really go RUNNING and COMPLETED, fail, or hang.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "lab" / "services" / "inngest" / "server.py"


def http(method: str, url: str, body=None, headers: dict | None = None, timeout: float = 10):
    """``(status, parsed JSON or text, content type)``; non-2xx answers are returned, not raised."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw, content_type = response.status, response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        status, raw, content_type = exc.code, exc.read(), exc.headers.get("Content-Type", "")
    text = raw.decode()
    try:
        return status, json.loads(text) if text else None, content_type
    except ValueError:
        return status, text, content_type


class StandIn:
    """A running stand-in process."""

    def __init__(self, env: dict[str, str]):
        self.process = subprocess.Popen(
            [sys.executable, str(SERVER), "--host", "127.0.0.1", "--port", "0"],
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        line = self.process.stdout.readline()
        if "listening on" not in line:
            self.process.kill()
            raise RuntimeError(f"stand-in did not start: {line!r}")
        self.url = line.split()[-1]
        self.signing_key = env.get("INNGEST_SIGNING_KEY")
        self.event_key = env.get("INNGEST_EVENT_KEY", "test-event-key")

    def call(self, method: str, path: str, body=None, auth: bool = True, **kwargs):
        headers = {"Authorization": f"Bearer {self.signing_key}"} if auth and self.signing_key else {}
        return http(method, self.url + path, body, headers, **kwargs)

    def register(self, app_url: str, functions: list[dict], app: str = "synap"):
        status, body = self.call("POST", "/fn/register", {"url": app_url, "appName": app, "functions": functions})[:2]
        assert (status, body) == (200, {"ok": True})

    def send(self, events):
        status, body = self.call("POST", f"/e/{self.event_key}", events)[:2]
        assert status == 200, body
        return body["ids"]

    def queue_depth(self) -> int:
        text = self.call("GET", "/metrics")[1]
        return int(next(line.split()[1] for line in text.splitlines() if line.startswith("inngest_queue_depth ")))

    def runs(self, status: str | None = None) -> list[dict]:
        query = "/v2/runs?limit=1000&from=2000-01-01T00:00:00Z" + (f"&status={status}" if status else "")
        body = self.call("GET", query)[1]
        return body["data"]

    def wait_for(self, predicate, timeout: float = 10, what: str = "condition"):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()


class WorkerServer(ThreadingHTTPServer):
    # The stand-in may open a hundred dispatch connections at once; the default backlog of 5 would refuse some.
    request_queue_size = 256


class WorkerApp:
    """The registered app: answers 200, fails with 500, or hangs until released, per ``mode``."""

    def __init__(self):
        self.mode = "ok"
        self.requests: list[dict] = []
        self.release = threading.Event()
        app = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                app.requests.append({"path": self.path, "body": body})
                if app.mode == "hang":
                    app.release.wait(60)
                status = 500 if app.mode == "fail" else 200
                raw = json.dumps({"ok": status == 200, "fn": body["ctx"]["fn_id"]}).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                except OSError:
                    pass

        self.server = WorkerServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/inngest"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


VALIDATOR = {
    "id": "global-validator",
    "name": "Global Validator & Proposal Router",
    "triggers": [{"event": "entities.create.requested"}, {"event": "*.*.requested"}],
    "retries": 2,
}
EXECUTOR = {"id": "entities-executor", "name": "Entities Executor", "triggers": [{"event": "entities.*.validated"}],
            "retries": 0}
