# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An Inngest-compatible stand-in for the rehearsal lab.

The open-source Inngest server cannot be installed from any package index, so the lab runs this instead.
It answers exactly the request and response shapes that synap-play relies on (see the Inngest API notes
in the project's references) and keeps a real queue: received events create runs, dispatch workers POST
them to the registered app, and their states change because the app answered, failed or hung.

Standard library only, so it runs on the host (``python3 server.py --port 0``) and in the lab image alike.

Environment:
  INNGEST_SIGNING_KEY       if set, /v1/*, /v2/* and /v0/runs/* require ``Authorization: Bearer <key>``
  INNGEST_EVENT_KEY         if set, ``POST /e/{key}`` must use it, else 401
  INNGEST_CONCURRENCY       runs dispatched at once (default 4)
  INNGEST_DISPATCH_TIMEOUT  seconds to wait for the app's answer (default 3600: a hung worker stays RUNNING)
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import fnmatch
import json
import os
import re
import secrets
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import deque
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ENDED = frozenset({"COMPLETED", "FAILED", "CANCELLED", "SKIPPED"})
ALL_STATUSES = ("QUEUED", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "SKIPPED")
# The v1 REST API spells run states differently from GraphQL and v2.
V1_STATUS = {
    "QUEUED": "Scheduled",
    "RUNNING": "Running",
    "COMPLETED": "Completed",
    "FAILED": "Failed",
    "CANCELLED": "Cancelled",
    "SKIPPED": "Skipped",
}
TIME_FIELDS = {"QUEUED_AT": "queued_at", "STARTED_AT": "started_at", "ENDED_AT": "ended_at"}
V2_TIME_FIELDS = {"queuedAt": "queued_at", "startedAt": "started_at", "endedAt": "ended_at"}
EVENT_LIST_MAX = 51
EVENT_LIST_DEFAULT = 20

# What the real server's web UI answers for any path it does not route: a 200 that proves nothing.
UI_PAGE = b"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Inngest Server</title></head>
<body><div id="root">Inngest Server</div><script src="/assets/index.js"></script></body></html>
"""

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_ulid() -> str:
    """A ULID (48-bit millisecond time, 80 random bits), the id format Inngest uses for runs and events."""
    value = (int(time.time() * 1000) << 80) | secrets.randbits(80)
    chars = []
    for _position in range(26):
        chars.append(CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def rfc3339(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    """RFC 3339 (``Z`` or an offset); a naive time is taken as UTC."""
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def now() -> datetime:
    return datetime.now(UTC)


class RequestError(Exception):
    """An answer other than 200, with the status and the JSON body to send."""

    def __init__(self, status: int, body: object):
        super().__init__(status)
        self.status = status
        self.body = body


# --------------------------------------------------------------------------------------------- state


class Store:
    """Apps, events and runs in memory, guarded by one lock; a condition wakes the dispatch workers."""

    def __init__(self, dispatch_timeout: float):
        self.lock = threading.Lock()
        self.ready = threading.Condition(self.lock)
        self.dispatch_timeout = dispatch_timeout
        self.env_id = str(uuid.uuid4())
        self.apps: dict[str, dict] = {}  # app name -> {id, name, url, functions: [...]}
        self.events: list[dict] = []  # in arrival order
        self.event_ids: set[str] = set()
        self.runs: dict[str, dict] = {}  # run id -> run, in creation order
        self.queue: deque[str] = deque()
        self.stopping = False

    # -- apps

    def register(self, payload: dict) -> None:
        url = payload.get("url")
        app_name = payload.get("appName") or payload.get("app_name")
        functions = payload.get("functions")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise RequestError(400, {"error": "url must be the app's http(s) endpoint"})
        if not isinstance(app_name, str) or not app_name:
            raise RequestError(400, {"error": "appName is required"})
        if not isinstance(functions, list):
            raise RequestError(400, {"error": "functions must be a list"})
        with self.lock:
            previous = self.apps.get(app_name)
            known = {fn["id"]: fn for fn in previous["functions"]} if previous else {}
            registered = []
            for spec in functions:
                if not isinstance(spec, dict) or not isinstance(spec.get("id"), str):
                    raise RequestError(400, {"error": "every function needs a string id"})
                triggers = [t for t in spec.get("triggers") or [] if isinstance(t, dict)]
                old = known.get(spec["id"])
                registered.append(
                    {
                        # Keep internal ids stable across re-registration, as the real server does.
                        "internal_id": old["internal_id"] if old else str(uuid.uuid4()),
                        "created_at": old["created_at"] if old else now(),
                        "id": spec["id"],
                        "slug": f"{app_name}-{spec['id']}",
                        "name": spec.get("name") or spec["id"],
                        "triggers": triggers,
                        "retries": int(spec.get("retries", 3)),
                        "config": {k: v for k, v in spec.items() if k not in ("id", "name", "triggers")},
                    }
                )
            self.apps[app_name] = {
                "id": previous["id"] if previous else str(uuid.uuid4()),
                "name": app_name,
                "url": url,
                "functions": registered,
            }

    def find_app(self, key: str) -> dict | None:
        with self.lock:
            if key in self.apps:
                return self.apps[key]
            return next((app for app in self.apps.values() if app["id"] == key), None)

    # -- events

    def receive(self, events: list[dict]) -> list[str]:
        """Store events and create one QUEUED run per matching function; a repeated id is deduplicated."""
        ids = []
        with self.lock:
            for raw in events:
                event_id = raw.get("id") or new_ulid()
                ids.append(event_id)
                if event_id in self.event_ids:
                    continue
                received = now()
                event = {
                    "id": event_id,
                    "internal_id": new_ulid(),
                    "name": raw["name"],
                    "data": raw.get("data") or {},
                    "user": raw.get("user") or {},
                    "ts": int(raw.get("ts") or received.timestamp() * 1000),
                    "v": raw.get("v"),
                    "received_at": received,
                }
                self.event_ids.add(event_id)
                self.events.append(event)
                for app in self.apps.values():
                    for fn in app["functions"]:
                        if any(fnmatch.fnmatchcase(event["name"], t.get("event", "")) for t in fn["triggers"]):
                            self._create_run(app, fn, event)
            self.ready.notify_all()
        return ids

    def _create_run(self, app: dict, fn: dict, event: dict) -> dict:
        run = {
            "id": new_ulid(),
            "status": "QUEUED",
            "app": app,
            "function": fn,
            "event": event,
            "queued_at": now(),
            "started_at": None,
            "ended_at": None,
            "attempt": 0,
            "output": None,
        }
        self.runs[run["id"]] = run
        self.queue.append(run["id"])
        return run

    def list_events(self, name, limit, cursor, after, before) -> list[dict]:
        with self.lock:
            # Newest first; the cursor is the id of the last event of the previous page.
            events = list(reversed(self.events))
        if cursor:
            position = next((i for i, e in enumerate(events) if cursor in (e["id"], e["internal_id"])), None)
            if position is None:
                raise RequestError(400, {"error": "cursor is not a known event id"})
            events = events[position + 1 :]
        selected = [
            e for e in events if (name is None or e["name"] == name) and after <= e["received_at"] <= before
        ]
        return selected[:limit]

    # -- runs

    def queue_depth(self) -> int:
        with self.lock:
            return len(self.queue)

    def get_run(self, run_id: str) -> dict:
        with self.lock:
            run = self.runs.get(run_id)
        if run is None:
            raise RequestError(404, {"error": f"run {run_id} not found"})
        return run

    def cancel(self, run_id: str) -> bool:
        """Cancel a QUEUED or RUNNING run at once. False when it had already ended."""
        run = self.get_run(run_id)
        with self.lock:
            if run["status"] in ENDED:
                return False
            if run["status"] == "QUEUED":
                with contextlib.suppress(ValueError):
                    self.queue.remove(run_id)
            run["status"] = "CANCELLED"
            run["ended_at"] = now()
            return True

    def rerun(self, run_id: str) -> dict:
        old = self.get_run(run_id)
        with self.lock:
            run = self._create_run(old["app"], old["function"], old["event"])
            self.ready.notify_all()
            return run

    def select_runs(self, statuses, time_field, start, until, function=None) -> list[dict]:
        with self.lock:
            runs = list(self.runs.values())
        selected = []
        for run in runs:
            if statuses and run["status"] not in statuses:
                continue
            moment = run[time_field]
            if moment is None or (start and moment < start) or (until and moment >= until):
                continue
            if function and function not in (run["function"]["slug"], run["function"]["id"]):
                continue
            selected.append(run)
        return selected

    # -- dispatch

    def next_run(self) -> tuple[dict, str, dict] | None:
        with self.lock:
            while not self.queue and not self.stopping:
                self.ready.wait()
            if self.stopping:
                return None
            run = self.runs[self.queue.popleft()]
            run["status"] = "RUNNING"
            run["attempt"] += 1
            if run["started_at"] is None:
                run["started_at"] = now()
            return run, run["app"]["url"], self._request_body(run)

    @staticmethod
    def _request_body(run: dict) -> dict:
        event = run["event"]
        wire_event = {k: event[k] for k in ("id", "name", "data", "user", "ts")}
        return {
            "event": wire_event,
            "events": [wire_event],
            "ctx": {"run_id": run["id"], "fn_id": run["function"]["id"], "attempt": run["attempt"] - 1},
        }

    def finish(self, run: dict, ok: bool, output: object) -> None:
        with self.lock:
            if run["status"] != "RUNNING":  # cancelled while in flight: the answer no longer counts
                return
            if ok:
                run["status"], run["output"], run["ended_at"] = "COMPLETED", output, now()
            elif run["attempt"] <= run["function"]["retries"]:
                run["status"] = "QUEUED"
                self.queue.append(run["id"])
                self.ready.notify()
            else:
                run["status"], run["output"], run["ended_at"] = "FAILED", output, now()

    def dispatch_forever(self) -> None:
        while True:
            job = self.next_run()
            if job is None:
                return
            run, url, body = job
            query = urllib.parse.urlencode({"fnId": run["function"]["id"], "runId": run["id"]})
            separator = "&" if "?" in url else "?"
            request = urllib.request.Request(
                f"{url}{separator}{query}",
                data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            try:
                with urllib.request.urlopen(request, timeout=self.dispatch_timeout) as response:
                    text = response.read()
                self.finish(run, True, _json_or_text(text))
            except urllib.error.HTTPError as exc:
                self.finish(run, False, {"error": f"HTTP {exc.code}", "body": _json_or_text(exc.read())})
            except (OSError, ValueError) as exc:
                self.finish(run, False, {"error": str(exc)})

    def stop(self) -> None:
        with self.lock:
            self.stopping = True
            self.ready.notify_all()


def _json_or_text(raw: bytes) -> object:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode("utf-8", "replace")


# ------------------------------------------------------------------------------------- representations


def gql_run(run: dict) -> dict:
    return {
        "id": run["id"],
        "status": run["status"],
        "queuedAt": rfc3339(run["queued_at"]),
        "startedAt": rfc3339(run["started_at"]),
        "endedAt": rfc3339(run["ended_at"]),
        "functionID": run["function"]["internal_id"],
        "function": {"id": run["function"]["internal_id"], "slug": run["function"]["slug"],
                     "name": run["function"]["name"]},
        "app": {"id": run["app"]["id"], "externalID": run["app"]["name"], "name": run["app"]["name"]},
        "eventName": run["event"]["name"],
        "output": json.dumps(run["output"]) if run["output"] is not None else None,
    }


def v2_run(run: dict) -> dict:
    return {
        "id": run["id"],
        "function": {"id": run["function"]["internal_id"], "name": run["function"]["name"]},
        "app": {"id": run["app"]["id"]},
        "status": run["status"],
        "queuedAt": rfc3339(run["queued_at"]),
        "startedAt": rfc3339(run["started_at"]),
        "endedAt": rfc3339(run["ended_at"]),
        "trigger": {"eventIds": [run["event"]["id"]], "eventName": run["event"]["name"]},
    }


def v1_run(run: dict) -> dict:
    return {
        "run_id": run["id"],
        "run_started_at": rfc3339(run["started_at"] or run["queued_at"]),
        "function_id": run["function"]["internal_id"],
        "event_id": run["event"]["id"],
        "status": V1_STATUS[run["status"]],
        "ended_at": rfc3339(run["ended_at"]),
        "output": run["output"],
    }


def v1_event(event: dict) -> dict:
    return {
        "id": event["id"],
        "internal_id": event["internal_id"],
        "name": event["name"],
        "data": event["data"],
        "user": event["user"],
        "ts": event["ts"],
        "v": event["v"],
        "received_at": rfc3339(event["received_at"]),
    }


def encode_cursor(run: dict) -> str:
    return base64.urlsafe_b64encode(run["id"].encode()).decode()


def decode_cursor(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor.encode()).decode()
    except ValueError as exc:
        raise RequestError(400, {"errors": [{"message": "invalid cursor"}]}) from exc


def page_after(runs: list[dict], cursor: str | None, limit: int) -> tuple[list[dict], bool]:
    if cursor:
        run_id = decode_cursor(cursor)
        position = next((i for i, r in enumerate(runs) if r["id"] == run_id), None)
        if position is None:
            raise RequestError(400, {"errors": [{"message": "cursor does not match a run"}]})
        runs = runs[position + 1 :]
    return runs[:limit], len(runs) > limit


# ------------------------------------------------------------------------------------ a little GraphQL

TOKEN = re.compile(
    r"""\s*(?:(?P<comment>\#[^\n]*)|(?P<string>"(?:[^"\\]|\\.)*")|(?P<number>-?\d+(?:\.\d+)?)"""
    r"""|(?P<var>\$[A-Za-z_]\w*)|(?P<name>[A-Za-z_]\w*)|(?P<punct>\.\.\.|[{}()\[\]:,!=@]))""",
)


def tokenize(text: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    text = text.rstrip()
    while position < len(text):
        match = TOKEN.match(text, position)
        if not match or match.end() == position:
            raise RequestError(200, {"errors": [{"message": f"syntax error at offset {position}"}]})
        position = match.end()
        kind = match.lastgroup
        if kind != "comment":
            tokens.append((kind, match.group(kind)))
    return tokens


class GraphQL:
    """Just enough GraphQL for the two operations synap-play sends: the runs query and cancelRun/rerun.

    Arguments may be literals or variables; the selection set is not pruned (extra fields are harmless).
    """

    def __init__(self, text: str, variables: dict):
        self.tokens = tokenize(text)
        self.variables = variables or {}
        self.position = 0

    def field_arguments(self, field: str) -> dict | None:
        """Arguments of the first occurrence of ``field(`` in the document, or None if absent."""
        for index, (kind, value) in enumerate(self.tokens):
            if kind == "name" and value == field and index + 1 < len(self.tokens):
                if self.tokens[index + 1] == ("punct", "("):
                    self.position = index + 2
                    return self._arguments()
                # A field used with no arguments.
                return {}
        return None

    def _take(self) -> tuple[str, str]:
        if self.position >= len(self.tokens):
            raise RequestError(200, {"errors": [{"message": "unexpected end of document"}]})
        token = self.tokens[self.position]
        self.position += 1
        return token

    def _arguments(self) -> dict:
        arguments = {}
        while True:
            kind, value = self._take()
            if (kind, value) == ("punct", ")"):
                return arguments
            if kind == "punct" and value == ",":
                continue
            if kind != "name" or self._take() != ("punct", ":"):
                raise RequestError(200, {"errors": [{"message": f"bad argument near {value!r}"}]})
            arguments[value] = self._value()

    def _value(self):
        kind, value = self._take()
        if kind == "var":
            return self.variables.get(value[1:])
        if kind == "string":
            return json.loads(value)
        if kind == "number":
            return float(value) if "." in value else int(value)
        if kind == "name":
            return {"true": True, "false": False, "null": None}.get(value, value)
        if value == "[":
            items = []
            while True:
                if self.tokens[self.position] == ("punct", "]"):
                    self.position += 1
                    return items
                if self.tokens[self.position] == ("punct", ","):
                    self.position += 1
                    continue
                items.append(self._value())
        if value == "{":
            fields = {}
            while True:
                kind, key = self._take()
                if (kind, key) == ("punct", "}"):
                    return fields
                if key == ",":
                    continue
                self._take()  # the colon
                fields[key] = self._value()
        raise RequestError(200, {"errors": [{"message": f"unexpected {value!r}"}]})


def gql_errors(message: str) -> dict:
    return {"errors": [{"message": message}]}


def run_graphql(store: Store, payload: dict) -> dict:
    query = payload.get("query")
    if not isinstance(query, str):
        return gql_errors("query is required")
    variables = payload.get("variables") or {}
    document = GraphQL(query, variables)

    arguments = document.field_arguments("cancelRun")
    if arguments is not None:
        run_id = arguments.get("runID")
        if not run_id:
            return gql_errors("cancelRun needs runID")
        try:
            run = store.get_run(run_id)
        except RequestError:
            return gql_errors(f"run {run_id} not found")
        if not store.cancel(run_id):
            return gql_errors("run already ended")
        return {"data": {"cancelRun": gql_run(run)}}

    arguments = document.field_arguments("rerun")
    if arguments is not None:
        try:
            return {"data": {"rerun": store.rerun(arguments.get("runID") or "")["id"]}}
        except RequestError as exc:
            return gql_errors(exc.body["error"])

    arguments = document.field_arguments("runs")
    if arguments is not None:
        return {"data": {"runs": graphql_runs(store, arguments)}}
    return gql_errors("only the runs query and the cancelRun and rerun mutations are supported")


def graphql_runs(store: Store, arguments: dict) -> dict:
    filters = arguments.get("filter") or {}
    if not filters.get("from"):
        raise RequestError(200, gql_errors("filter.from is required"))
    try:
        start = parse_time(filters["from"])
        until = parse_time(filters["until"]) if filters.get("until") else None
    except (TypeError, ValueError):
        raise RequestError(200, gql_errors("from/until must be RFC 3339 times")) from None
    time_field = TIME_FIELDS.get(filters.get("timeField") or "QUEUED_AT")
    if time_field is None:
        raise RequestError(200, gql_errors(f"timeField must be one of {', '.join(TIME_FIELDS)}"))
    statuses = filters.get("status") or []
    unknown = [s for s in statuses if s not in ALL_STATUSES]
    if unknown:
        raise RequestError(200, gql_errors(f"unknown status {unknown[0]}"))
    first = arguments.get("first") or 40
    if not isinstance(first, int) or not 1 <= first <= 1000:
        raise RequestError(200, gql_errors("first must be between 1 and 1000"))

    runs = store.select_runs(set(statuses), time_field, start, until)
    order = (arguments.get("orderBy") or [{"field": "QUEUED_AT", "direction": "DESC"}])
    order = order[0] if isinstance(order, list) and order else order
    sort_field = TIME_FIELDS.get(order.get("field"), time_field)
    runs.sort(key=lambda r: (r[sort_field] or datetime.min.replace(tzinfo=UTC), r["id"]),
              reverse=order.get("direction") == "DESC")
    page, has_more = page_after(runs, arguments.get("after"), first)
    edges = [{"cursor": encode_cursor(r), "node": gql_run(r)} for r in page]
    return {
        "edges": edges,
        "pageInfo": {
            "hasNextPage": has_more,
            "hasPreviousPage": bool(arguments.get("after")),
            "startCursor": edges[0]["cursor"] if edges else None,
            "endCursor": edges[-1]["cursor"] if edges else None,
        },
        "totalCount": len(runs),
    }


# ------------------------------------------------------------------------------------------- the HTTP


class Handler(BaseHTTPRequestHandler):
    server_version = "inngest-standin/1.0"
    store: Store
    signing_key: str | None
    event_key: str | None

    def log_message(self, format, *args):  # noqa: A002 - the base class names it so
        sys.stderr.write(f"{self.address_string()} {format % args}\n")

    # -- plumbing

    def _send(self, status: int, body: object = None, content_type: str = "application/json") -> None:
        if isinstance(body, bytes):
            raw = body
        elif body is None:
            raw = b""
        else:
            raw = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(raw)

    def _body(self) -> object:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise RequestError(400, {"error": "body is not valid JSON"}) from None

    def _authorised(self) -> bool:
        if not self.signing_key:
            return True
        return self.headers.get("Authorization", "") == f"Bearer {self.signing_key}"

    def _route(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        params = urllib.parse.parse_qs(url.query)
        if path.startswith(("/v1/", "/v2/", "/v0/runs/")) and not self._authorised():
            raise RequestError(401, {"error": "Unauthorized"})
        for method, pattern, handler in ROUTES:
            match = pattern.fullmatch(path)
            if match and method == self.command:
                status, body, content_type = handler(self, params, *match.groups())
                self._send(status, body, content_type)
                return
        if path.startswith("/v1/prom"):
            self._send(501, {"error": "not implemented"})
            return
        # Everything else falls through to the web UI, like the real server.
        self._send(200, UI_PAGE, "text/html; charset=utf-8")

    def _handle(self) -> None:
        try:
            self._route()
        except RequestError as exc:
            self._send(exc.status, exc.body)
        except BrokenPipeError:
            pass

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle

    # -- endpoints

    def health(self, params):
        return 200, {"status": 200, "message": "OK"}, "application/json"

    def metrics(self, params):
        depth = self.store.queue_depth()
        counts = {status: 0 for status in ALL_STATUSES}
        with self.store.lock:
            for run in self.store.runs.values():
                counts[run["status"]] += 1
        lines = [
            "# HELP inngest_queue_depth Number of items in the queue (backlog and ready).",
            "# TYPE inngest_queue_depth gauge",
            f"inngest_queue_depth {depth}",
            "# HELP inngest_runs Runs known to this server by status.",
            "# TYPE inngest_runs gauge",
        ]
        lines += [f'inngest_runs{{status="{status}"}} {count}' for status, count in counts.items()]
        return 200, ("\n".join(lines) + "\n").encode(), "text/plain; version=0.0.4; charset=utf-8"

    def register(self, params):
        payload = self._body()
        if not isinstance(payload, dict):
            raise RequestError(400, {"error": "body must be a JSON object"})
        self.store.register(payload)
        return 200, {"ok": True}, "application/json"

    def send_events(self, params, key):
        if self.event_key and key != self.event_key:
            return 401, {"status": 401, "error": "Event key not found"}, "application/json"
        payload = self._body()
        events = payload if isinstance(payload, list) else [payload]
        for event in events:
            if not isinstance(event, dict) or not isinstance(event.get("name"), str) or not event["name"]:
                return 400, {"status": 400, "error": "every event needs a non-empty string name"}, "application/json"
            if event.get("data") is not None and not isinstance(event["data"], dict):
                return 400, {"status": 400, "error": "event data must be an object"}, "application/json"
            if event.get("id") is not None and not isinstance(event["id"], str):
                return 400, {"status": 400, "error": "event id must be a string"}, "application/json"
        return 200, {"ids": self.store.receive(events), "status": 200}, "application/json"

    def list_events(self, params):
        def one(key):
            values = params.get(key)
            return values[0] if values else None

        try:
            limit = int(one("limit") or EVENT_LIST_DEFAULT)
        except ValueError:
            limit = 0
        if not 1 <= limit <= EVENT_LIST_MAX:
            raise RequestError(400, {"error": f"limit must be between 1 and {EVENT_LIST_MAX}"})
        try:
            before = parse_time(one("received_before")) if one("received_before") else now()
            after = parse_time(one("received_after")) if one("received_after") else before - timedelta(hours=1)
        except ValueError:
            raise RequestError(400, {"error": "received_after/received_before must be RFC 3339 times"}) from None
        events = self.store.list_events(one("name"), limit, one("cursor"), after, before)
        return 200, {"data": [v1_event(e) for e in events], "metadata": {"fetched_at": rfc3339(now())}}, \
            "application/json"

    def v1_functions(self, params, app_name):
        app = self.store.find_app(urllib.parse.unquote(app_name))
        if app is None:
            raise RequestError(404, {"error": "app not found"})
        body = [
            {
                "internal_id": fn["internal_id"],
                "env_id": self.store.env_id,
                "app_id": app["id"],
                "id": fn["slug"],
                "name": fn["name"],
                "config": json.dumps({"triggers": fn["triggers"], "retries": fn["retries"], **fn["config"]}),
                "created_at": rfc3339(fn["created_at"]),
                "archived_at": None,
            }
            for fn in app["functions"]
        ]
        return 200, body, "application/json"

    def v2_functions(self, params, app_id):
        app = self.store.find_app(urllib.parse.unquote(app_id))
        if app is None:
            raise RequestError(404, {"errors": [{"code": "not_found", "message": "app not found"}]})
        body = [
            {
                "id": fn["internal_id"],
                "name": fn["name"],
                "slug": fn["slug"],
                "isPaused": False,
                "isArchived": False,
                "app": {"id": app["id"]},
                "triggers": fn["triggers"],
                "configuration": {"retries": fn["retries"], **fn["config"]},
            }
            for fn in app["functions"]
        ]
        return 200, {"data": body}, "application/json"

    def graphql(self, params):
        payload = self._body()
        if not isinstance(payload, dict):
            return 200, gql_errors("body must be a JSON object with a query"), "application/json"
        try:
            return 200, run_graphql(self.store, payload), "application/json"
        except RequestError as exc:
            return 200, exc.body, "application/json"

    def v1_run(self, params, run_id):
        run = self.store.get_run(run_id)
        return 200, {"data": v1_run(run), "metadata": {"fetched_at": rfc3339(now())}}, "application/json"

    def v1_cancel(self, params, run_id):
        self.store.cancel(run_id)
        return 200, None, "application/json"

    def v2_cancel(self, params, run_id):
        try:
            cancelled = self.store.cancel(run_id)
        except RequestError:
            raise RequestError(404, {"errors": [{"code": "not_found", "message": f"run {run_id} not found"}]}) \
                from None
        if not cancelled:
            raise RequestError(409, {"errors": [{"code": "conflict", "message": "run already ended or cancelled"}]})
        return 200, {"data": {"runId": run_id}}, "application/json"

    def v2_rerun(self, params, run_id):
        try:
            run = self.store.rerun(run_id)
        except RequestError:
            raise RequestError(404, {"errors": [{"code": "not_found", "message": f"run {run_id} not found"}]}) \
                from None
        return 200, {"data": {"runId": run["id"]}}, "application/json"

    def v2_runs(self, params):
        def one(key):
            values = params.get(key)
            return values[0] if values else None

        def fail(message):
            raise RequestError(400, {"errors": [{"code": "bad_request", "message": message}]})

        statuses = {s.upper() for value in params.get("status", []) for s in value.split(",") if s}
        if statuses - set(ALL_STATUSES):
            fail(f"status must be among {', '.join(ALL_STATUSES)}")
        time_field = V2_TIME_FIELDS.get(one("timeField") or "queuedAt")
        if time_field is None:
            fail(f"timeField must be one of {', '.join(V2_TIME_FIELDS)}")
        try:
            until = parse_time(one("until")) if one("until") else None
            start = parse_time(one("from")) if one("from") else now() - timedelta(days=1)
            limit = int(one("limit") or 40)
        except ValueError:
            fail("from/until must be RFC 3339 times and limit a number")
        if not 1 <= limit <= 1000:
            fail("limit must be between 1 and 1000")
        runs = self.store.select_runs(statuses, time_field, start, until)
        runs.sort(key=lambda r: (r[time_field], r["id"]))
        if one("cursor"):
            # The cursor marks a place in the order, not a member of the list: it stays valid when its run
            # changes status (dispatched, cancelled) between two pages, as a paging client expects.
            try:
                anchor = self.store.get_run(decode_cursor(one("cursor")))
            except RequestError:
                fail("cursor does not name a run")
            if anchor[time_field] is None:
                fail(f"cursor does not belong to a listing by {one('timeField') or 'queuedAt'}")
            position = (anchor[time_field], anchor["id"])
            runs = [r for r in runs if (r[time_field], r["id"]) > position]
        page, has_more = runs[:limit], len(runs) > limit
        return 200, {
            "data": [v2_run(r) for r in page],
            "page": {"cursor": encode_cursor(page[-1]) if page else None, "hasMore": has_more, "limit": limit},
        }, "application/json"

    def cancellations(self, params):
        # The open-source server routes bulk cancellation but has no store behind it.
        body = self._body()
        if not isinstance(body, dict):
            raise RequestError(404, {"error": "not found"})
        raise RequestError(500, {"error": "cancellations are not supported by this server"})


ROUTES = [
    ("GET", re.compile(r"/health"), Handler.health),
    ("GET", re.compile(r"/metrics"), Handler.metrics),
    ("POST", re.compile(r"/fn/register"), Handler.register),
    ("PUT", re.compile(r"/fn/register"), Handler.register),
    ("POST", re.compile(r"/e/([^/]+)"), Handler.send_events),
    ("GET", re.compile(r"/v1/events"), Handler.list_events),
    ("GET", re.compile(r"/v1/apps/([^/]+)/functions"), Handler.v1_functions),
    ("GET", re.compile(r"/v2/apps/([^/]+)/functions"), Handler.v2_functions),
    ("POST", re.compile(r"/v0/gql"), Handler.graphql),
    ("GET", re.compile(r"/v1/runs/([^/]+)"), Handler.v1_run),
    ("DELETE", re.compile(r"/v1/runs/([^/]+)"), Handler.v1_cancel),
    ("GET", re.compile(r"/v2/runs"), Handler.v2_runs),
    ("POST", re.compile(r"/v2/runs/([^/]+)/cancel"), Handler.v2_cancel),
    ("POST", re.compile(r"/v2/runs/([^/]+)/rerun"), Handler.v2_rerun),
    ("POST", re.compile(r"/v1/cancellations"), Handler.cancellations),
]


class StandInServer(ThreadingHTTPServer):
    # An event storm opens many connections at once; the default backlog of 5 would refuse some of them.
    request_queue_size = 256
    daemon_threads = True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Inngest-compatible stand-in for the synap-play lab.")
    parser.add_argument("--host", default=os.environ.get("INNGEST_HOST", "0.0.0.0"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("INNGEST_PORT", "8288")),
                        help="0 picks a free port; the bound address is printed on the first line")
    args = parser.parse_args(argv)

    try:
        concurrency = int(os.environ.get("INNGEST_CONCURRENCY", "4"))
        dispatch_timeout = float(os.environ.get("INNGEST_DISPATCH_TIMEOUT", "3600"))
    except ValueError:
        parser.error("INNGEST_CONCURRENCY and INNGEST_DISPATCH_TIMEOUT must be numbers")
    if concurrency < 1:
        parser.error("INNGEST_CONCURRENCY must be at least 1")

    store = Store(dispatch_timeout)
    handler = type("BoundHandler", (Handler,), {
        "store": store,
        "signing_key": os.environ.get("INNGEST_SIGNING_KEY") or None,
        "event_key": os.environ.get("INNGEST_EVENT_KEY") or None,
    })
    server = StandInServer((args.host, args.port), handler)
    for number in range(concurrency):
        threading.Thread(target=store.dispatch_forever, name=f"dispatch-{number}", daemon=True).start()
    host, port = server.server_address[:2]
    print(f"inngest stand-in listening on http://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        store.stop()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
