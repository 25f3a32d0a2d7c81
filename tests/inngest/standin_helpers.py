"""Helpers for the Inngest stand-in and module tests.

The stand-in runs as its own process on a free port, exactly as the lab runs it. A small HTTP app in the
test process plays the registered worker, so runs really go RUNNING and COMPLETED, fail, or hang: ``WorkerApp``
speaks the simple form (the lab's Python worker), ``SdkPeer`` the Inngest SDK's execution protocol.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
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
        # The dev server's sync reply: {"ok": true, "modified": true, ...} or, for the same functions again, {"ok": true}.
        assert status == 200 and body["ok"] is True, body
        return body

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


# ------------------------------------------------------------------------------ the SDK's side of the protocol

SDK_FIXTURE = Path(__file__).with_name("sdk_register_payload.json")
SDK_HEADERS = {"X-Inngest-Req-Version": "1", "X-Inngest-SDK": "inngest-js:v3.22.13", "X-Inngest-Framework": "hono"}


def step_hash(step_id: str) -> str:
    """The id a step goes by on the wire: SHA-1 of the id the function gave it, as the SDK hashes it."""
    return hashlib.sha1(step_id.encode()).hexdigest()


class NonRetriable(Exception):
    """What the SDK's NonRetriableError does: the run fails without retries."""


class RetryAfter(Exception):
    """What the SDK's RetryAfterError does: retry, but not before ``seconds``."""

    def __init__(self, message: str, seconds: int):
        super().__init__(message)
        self.seconds = seconds


class StepFailed(Exception):
    """A step whose retries are spent: the SDK throws its stored error into the function."""

    def __init__(self, step_id: str, error: dict):
        super().__init__(f"{step_id}: {error.get('message')}")
        self.error = error


class _Answer(Exception):
    """Unwinds the function when the call's answer is known (a step ran, or steps were found)."""

    def __init__(self, status: int, body, headers: dict | None = None):
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def _serialised(exc: Exception) -> dict:
    return {"name": "NonRetriableError" if isinstance(exc, NonRetriable) else "Error", "message": str(exc),
            "stack": f"Error: {exc}\n    at peer"}


class Steps:
    """The ``step`` tools of one call: memoised results come back, the first new step runs or is reported."""

    def __init__(self, peer: SdkPeer, state: dict, requested: str | None, plan_only: bool):
        self.peer, self.state, self.requested, self.plan_only = peer, state, requested, plan_only
        self.used: set[str] = set()

    def run(self, step_id: str, fn):
        return self.run_all([(step_id, fn)])[0]

    def send_event(self, step_id: str, payload):
        # As in SDK 3.22: a step named sendEvent that posts the events itself and returns {"ids": [...]}.
        return self.run_all([(step_id, lambda: self.peer.post_events(payload))], name="sendEvent")[0]

    def run_all(self, specs: list[tuple], name: str | None = None) -> list:
        """``Promise.all`` of ``step.run``s: found together, so more than one new step is planned, not run."""
        found = []
        for original, fn in specs:
            step_id, index = original, 0
            while step_id in self.used:  # the SDK's indexing of a repeated id: "id:1", "id:2", ...
                index += 1
                step_id = f"{original}:{index}"
            self.used.add(step_id)
            found.append((step_id, step_hash(step_id), fn))
        new = [(step_id, hashed, fn) for step_id, hashed, fn in found if hashed not in self.state]
        if new:
            if self.requested:
                match = next((step for step in new if step[1] == self.requested), None)
                if match is None:
                    raise _Answer(500, {"error": f"Could not find step {self.requested!r} to run; timed out"},
                                  {"X-Inngest-No-Retry": "false"})
                raise self._execute(*match, name)
            if len(new) == 1 and not self.plan_only:
                raise self._execute(*new[0], name)
            raise _Answer(206, [{"id": hashed, "op": "StepPlanned", "name": name or step_id, "displayName": step_id}
                                for step_id, hashed, _fn in new])
        results = []
        for step_id, hashed, _fn in found:
            stored = self.state[hashed]
            if isinstance(stored, dict) and set(stored) == {"error"}:
                raise StepFailed(step_id, stored["error"])
            results.append(stored["data"] if isinstance(stored, dict) and set(stored) == {"data"} else stored)
        return results

    def _execute(self, step_id: str, hashed: str, fn, name: str | None) -> _Answer:
        op = {"id": hashed, "name": name or step_id, "displayName": step_id}
        try:
            return _Answer(206, [{**op, "op": "StepRun", "data": fn()}])
        except Exception as exc:  # noqa: BLE001 - a step's error is reported, as the SDK reports it
            no_retry = "true" if isinstance(exc, NonRetriable) else "false"
            return _Answer(206, [{**op, "op": "StepError", "error": _serialised(exc)}], {"X-Inngest-No-Retry": no_retry})


class SdkPeer:
    """A stand-in for the Inngest JS SDK (3.22.13, execution version 1) behind ``serve()`` at ``/api/inngest``.

    This is the boundary the lab exercises for real, with Synap's own backend; here a Python peer speaks the same
    protocol so the server's side can be tested in a second: it answers each call as the SDK's InngestCommHandler
    and v1 execution do (206 with StepRun/StepError/StepPlanned ops, 200 with the function's output, 500 or 400 with
    ``X-Inngest-No-Retry`` and ``Retry-After``), and ``send_event`` posts to the event API itself as SDK 3.22 does.
    Functions are ``handler(ctx, step)`` with ``ctx = {"event", "events", "run_id", "attempt"}``. ``hook(request)``
    may answer a call instead (``(status, headers, body)``), or return ``"hang"`` to hold it until ``release``.
    """

    def __init__(self, standin: StandIn | None = None):
        self.standin = standin
        self.functions: dict[str, object] = {}
        self.requests: list[dict] = []
        self.hook = None
        self.release = threading.Event()
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                raw = self.rfile.read(int(self.headers["Content-Length"]))
                parts = urllib.parse.urlsplit(self.path)
                request = {"path": parts.path, "query": dict(urllib.parse.parse_qsl(parts.query)), "raw": raw,
                           "body": json.loads(raw), "headers": {k.lower(): v for k, v in self.headers.items()},
                           "at": time.monotonic()}
                peer.requests.append(request)
                status, headers, body = peer.answer(request)
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                try:
                    self.send_response(status)
                    for key, value in {"Content-Type": "application/json", **SDK_HEADERS, **headers}.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass

        self.server = WorkerServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/inngest"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def function(self, fn_id: str, handler) -> None:
        self.functions[fn_id] = handler

    def registration(self) -> dict:
        """The real SDK's register body (trimmed; the fixture beside this file), pointing at this peer."""
        text = SDK_FIXTURE.read_text().replace("http://127.0.0.1:3000/api/inngest", self.url)
        return json.loads(text)

    def answer(self, request: dict) -> tuple[int, dict, object]:
        if self.hook is not None:
            verdict = self.hook(request)
            if verdict == "hang":
                self.release.wait(30)
            elif verdict is not None:
                return verdict
        body = request["body"]
        handler = self.functions.get(request["query"].get("fnId"))
        if handler is None:
            return 500, {}, {"type": "internal", "message": f"Could not find function with ID {request['query']}"}
        requested = request["query"].get("stepId")
        ctx = body.get("ctx") or {}
        steps = Steps(self, body.get("steps") or {}, None if requested in (None, "step") else requested,
                      bool(ctx.get("disable_immediate_execution")))
        try:
            output = handler({"event": body["event"], "events": body["events"], "run_id": ctx.get("run_id"),
                              "attempt": ctx.get("attempt", 0)}, steps)
        except _Answer as answer:
            return answer.status, answer.headers, answer.body
        except (NonRetriable, StepFailed) as exc:
            return 400, {"X-Inngest-No-Retry": "true"}, _serialised(exc)
        except RetryAfter as exc:
            return 500, {"X-Inngest-No-Retry": "false", "Retry-After": str(exc.seconds)}, _serialised(exc)
        except Exception as exc:  # noqa: BLE001 - the function threw: a retriable failure
            return 500, {"X-Inngest-No-Retry": "false"}, _serialised(exc)
        return 200, {}, output

    def post_events(self, payload) -> dict:
        events = payload if isinstance(payload, list) else [payload]
        events = [{**event, "ts": event.get("ts") or int(time.time() * 1000), "data": event.get("data") or {}}
                  for event in events]
        status, body, _type = http("POST", f"{self.standin.url}/e/{self.standin.event_key}", events)
        if status != 200:
            raise RuntimeError(f"event API answered {status}: {body}")
        return {"ids": body["ids"]}

    def calls(self, fn_id: str) -> list[dict]:
        return [r for r in self.requests if r["query"].get("fnId") == fn_id]

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
