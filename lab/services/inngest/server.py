# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An Inngest-compatible stand-in for the rehearsal lab: the HTTP server and its routes.

The open-source Inngest server cannot be installed from any package index, so the lab runs this instead.
It answers exactly the request and response shapes that synap-play relies on (see the Inngest API notes
in the project's references) and keeps a real queue: received events and cron schedules create runs, dispatch
workers call the registered app (the Inngest SDK's execution protocol, or the lab worker's simple POST), and
their states change because the app answered, failed or hung.

Standard library only, so it runs on the host (``python3 server.py --port 0``) and in the lab image alike.
Beside this file: ``common`` (shared helpers), ``functions`` (registration), ``runs`` (the run store and its
queue), ``execution`` (the dispatch workers and the SDK protocol), ``schedule`` (cron triggers), ``events``
(event intake and listing), ``graphql`` (``POST /v0/gql``).

Environment:
  INNGEST_SIGNING_KEY       if set, /v1/*, /v2/* and /v0/runs/* require ``Authorization: Bearer <key>``, and
                            calls to SDK functions are signed with it (``X-Inngest-Signature``)
  INNGEST_EVENT_KEY         if set, ``POST /e/{key}`` must use it, else 401
  INNGEST_CONCURRENCY       calls to apps made at once (default 4)
  INNGEST_DISPATCH_TIMEOUT  seconds to wait for the app's answer (default 3600: a hung worker stays RUNNING)
  INNGEST_RETRY_BACKOFF     seconds before an SDK function's first retry, doubling after (default 10)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
import urllib.parse
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import events
import graphql
from common import ALL_STATUSES, RequestError, decode_cursor, encode_cursor, now, parse_time, rfc3339
from execution import Dispatcher
from runs import Store, v1_run, v2_run
from schedule import Scheduler

V2_TIME_FIELDS = {"queuedAt": "queued_at", "startedAt": "started_at", "endedAt": "ended_at"}
JSON = "application/json"

# What the real server's web UI answers for any path it does not route: a 200 that proves nothing.
UI_PAGE = b"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Inngest Server</title></head>
<body><div id="root">Inngest Server</div><script src="/assets/index.js"></script></body></html>
"""


def one(params: dict[str, list[str]], key: str) -> str | None:
    """The first value of a query parameter."""
    values = params.get(key)
    return values[0] if values else None


def v2_error(status: int, code: str, message: str) -> RequestError:
    return RequestError(status, {"errors": [{"code": code, "message": message}]})


class Handler(BaseHTTPRequestHandler):
    server_version = "inngest-standin/1.0"
    store: Store
    events: events.Events
    signing_key: str | None
    event_key: str | None

    def log_message(self, format, *args):  # noqa: A002 - the base class names it so
        sys.stderr.write(f"{self.address_string()} {format % args}\n")

    # -- plumbing

    def _send(self, status: int, body: object = None, content_type: str = JSON) -> None:
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
        for methods, pattern, handler in ROUTES:
            match = pattern.fullmatch(path)
            if match and self.command in methods:
                result = handler(self, params, *match.groups())
                self._send(200, *(result if isinstance(result, tuple) else (result,)))
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

    # -- endpoints: each returns the body of a 200 or (body, content type), or raises RequestError

    def health(self, params):
        return {"status": 200, "message": "OK"}

    def metrics(self, params):
        lines = [
            "# HELP inngest_queue_depth Number of items in the queue (backlog and ready).",
            "# TYPE inngest_queue_depth gauge",
            f"inngest_queue_depth {self.store.queue_depth()}",
            "# HELP inngest_runs Runs known to this server by status.",
            "# TYPE inngest_runs gauge",
        ]
        lines += [f'inngest_runs{{status="{status}"}} {count}' for status, count in self.store.status_counts().items()]
        return ("\n".join(lines) + "\n").encode(), "text/plain; version=0.0.4; charset=utf-8"

    def register(self, params):
        try:
            payload = self._body()
        except RequestError:
            payload = None  # answered in the sync-error shape the SDK reads, like any other bad body
        return self.store.register(payload, self.headers.get("X-Inngest-Expected-Server-Kind"))

    def send_events(self, params, key):
        if self.event_key and key != self.event_key:
            raise RequestError(401, {"status": 401, "error": "Event key not found"})
        return {"ids": self.events.receive(events.checked(self._body())), "status": 200}

    def list_events(self, params):
        try:
            limit = int(one(params, "limit") or events.LIST_DEFAULT)
        except ValueError:
            limit = 0
        if not 1 <= limit <= events.LIST_MAX:
            raise RequestError(400, {"error": f"limit must be between 1 and {events.LIST_MAX}"})
        try:
            before = parse_time(one(params, "received_before")) if one(params, "received_before") else now()
            after = (parse_time(one(params, "received_after")) if one(params, "received_after")
                     else before - timedelta(hours=1))
        except ValueError:
            raise RequestError(400, {"error": "received_after/received_before must be RFC 3339 times"}) from None
        page = self.events.page(one(params, "name"), limit, one(params, "cursor"), after, before)
        return {"data": [events.v1_event(e) for e in page], "metadata": {"fetched_at": rfc3339(now())}}

    def v1_functions(self, params, app_name):
        app = self.store.find_app(urllib.parse.unquote(app_name))
        if app is None:
            raise RequestError(404, {"error": "app not found"})
        return [
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

    def v2_functions(self, params, app_id):
        app = self.store.find_app(urllib.parse.unquote(app_id))
        if app is None:
            raise v2_error(404, "not_found", "app not found")
        return {"data": [
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
        ]}

    def graphql(self, params):
        return graphql.answer(self.store, self._body())

    def v1_run(self, params, run_id):
        return {"data": v1_run(self.store.get_run(run_id)), "metadata": {"fetched_at": rfc3339(now())}}

    def v1_cancel(self, params, run_id):
        self.store.cancel(run_id)
        return None

    def v2_cancel(self, params, run_id):
        try:
            cancelled = self.store.cancel(run_id)
        except RequestError:
            raise v2_error(404, "not_found", f"run {run_id} not found") from None
        if not cancelled:
            raise v2_error(409, "conflict", "run already ended or cancelled")
        return {"data": {"runId": run_id}}

    def v2_rerun(self, params, run_id):
        try:
            run = self.store.rerun(run_id)
        except RequestError:
            raise v2_error(404, "not_found", f"run {run_id} not found") from None
        return {"data": {"runId": run["id"]}}

    def v2_runs(self, params):
        statuses = {s.upper() for value in params.get("status", []) for s in value.split(",") if s}
        if statuses - set(ALL_STATUSES):
            raise v2_error(400, "bad_request", f"status must be among {', '.join(ALL_STATUSES)}")
        time_field = V2_TIME_FIELDS.get(one(params, "timeField") or "queuedAt")
        if time_field is None:
            raise v2_error(400, "bad_request", f"timeField must be one of {', '.join(V2_TIME_FIELDS)}")
        try:
            until = parse_time(one(params, "until")) if one(params, "until") else None
            start = parse_time(one(params, "from")) if one(params, "from") else now() - timedelta(days=1)
            limit = int(one(params, "limit") or 40)
        except ValueError:
            raise v2_error(400, "bad_request", "from/until must be RFC 3339 times and limit a number") from None
        if not 1 <= limit <= 1000:
            raise v2_error(400, "bad_request", "limit must be between 1 and 1000")
        runs = sorted(self.store.select_runs(statuses, time_field, start, until),
                      key=lambda r: (r[time_field], r["id"]))
        if one(params, "cursor"):
            # The cursor marks a place in the order, not a member of the list: it stays valid when its run
            # changes status (dispatched, cancelled) between two pages, as a paging client expects.
            try:
                anchor = self.store.get_run(decode_cursor(one(params, "cursor")))
            except (ValueError, RequestError):
                raise v2_error(400, "bad_request", "cursor does not name a run") from None
            if anchor[time_field] is None:
                raise v2_error(400, "bad_request",
                               f"cursor does not belong to a listing by {one(params, 'timeField') or 'queuedAt'}")
            position = (anchor[time_field], anchor["id"])
            runs = [r for r in runs if (r[time_field], r["id"]) > position]
        page = runs[:limit]
        return {
            "data": [v2_run(r) for r in page],
            "page": {"cursor": encode_cursor(page[-1]) if page else None, "hasMore": len(runs) > limit,
                     "limit": limit},
        }

    def cancellations(self, params):
        # The open-source server routes bulk cancellation but has no store behind it.
        if not isinstance(self._body(), dict):
            raise RequestError(404, {"error": "not found"})
        raise RequestError(500, {"error": "cancellations are not supported by this server"})


ROUTES = [
    (("GET",), re.compile(r"/health"), Handler.health),
    (("GET",), re.compile(r"/metrics"), Handler.metrics),
    (("POST", "PUT"), re.compile(r"/fn/register"), Handler.register),
    (("POST",), re.compile(r"/e/([^/]+)"), Handler.send_events),
    (("GET",), re.compile(r"/v1/events"), Handler.list_events),
    (("GET",), re.compile(r"/v1/apps/([^/]+)/functions"), Handler.v1_functions),
    (("GET",), re.compile(r"/v2/apps/([^/]+)/functions"), Handler.v2_functions),
    (("POST",), re.compile(r"/v0/gql"), Handler.graphql),
    (("GET",), re.compile(r"/v1/runs/([^/]+)"), Handler.v1_run),
    (("DELETE",), re.compile(r"/v1/runs/([^/]+)"), Handler.v1_cancel),
    (("GET",), re.compile(r"/v2/runs"), Handler.v2_runs),
    (("POST",), re.compile(r"/v2/runs/([^/]+)/cancel"), Handler.v2_cancel),
    (("POST",), re.compile(r"/v2/runs/([^/]+)/rerun"), Handler.v2_rerun),
    (("POST",), re.compile(r"/v1/cancellations"), Handler.cancellations),
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
        backoff = float(os.environ.get("INNGEST_RETRY_BACKOFF", "10"))
    except ValueError:
        parser.error("INNGEST_CONCURRENCY, INNGEST_DISPATCH_TIMEOUT and INNGEST_RETRY_BACKOFF must be numbers")
    if concurrency < 1:
        parser.error("INNGEST_CONCURRENCY must be at least 1")

    signing_key = os.environ.get("INNGEST_SIGNING_KEY") or None
    store = Store()
    handler = type("BoundHandler", (Handler,), {
        "store": store,
        "events": events.Events(store),
        "signing_key": signing_key,
        "event_key": os.environ.get("INNGEST_EVENT_KEY") or None,
    })
    server = StandInServer((args.host, args.port), handler)
    dispatcher = Dispatcher(store, dispatch_timeout, signing_key, backoff)
    for number in range(concurrency):
        threading.Thread(target=dispatcher.work_forever, name=f"dispatch-{number}", daemon=True).start()
    scheduler = Scheduler(store)
    scheduler.start()
    host, port = server.server_address[:2]
    print(f"inngest stand-in listening on http://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        scheduler.stop()
        store.stop()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
