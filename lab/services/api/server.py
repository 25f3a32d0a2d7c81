"""Stand-in for Synap's API (port 3000): real PostgreSQL reads and writes through a connection pool, events
to the lab's Inngest, a search that depends on the Hub Protocol service, and Prometheus metrics under both
the runbook's name (`api_request_duration`) and Synap's (`synap_http_*`).

The release (the code that renders responses) is loaded at start from the deploy checkout at /srv/deploy,
so a bad commit there followed by recreating the container is a real bad deploy, and `git revert` plus
recreating it is a real rollback.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import re
import subprocess
import threading
import time
import urllib.parse
import uuid

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from synaplab import JsonHandler, http_json, log, make_pool, send_events, serve

DEPLOY_DIR = os.environ.get("SYNAP_DEPLOY_DIR", "/srv/deploy")
HUB_URL = os.environ.get("HUB_URL", "http://hub:3100").rstrip("/")
HUB_TIMEOUT = float(os.environ.get("HUB_TIMEOUT", "2"))
ENTITY_TYPES = ("note", "task", "project", "page", "habit", "event", "person", "file")
LABELS = ("method", "route", "status_code")

REQUEST_DURATION = Histogram("api_request_duration", "API request duration in seconds (runbook name)", LABELS)
HTTP_DURATION = Histogram("synap_http_request_duration_seconds", "HTTP request duration in seconds", LABELS)
HTTP_REQUESTS = Counter("synap_http_requests_total", "HTTP requests", LABELS)
APPLICATION_ERRORS = Counter("synap_application_errors_total", "Unhandled application errors", ["route"])
POOL_SIZE = Gauge("synap_db_connection_pool_size", "Database connection pool size", ["state"])
EVENTS_SENT = Counter("synap_events_sent_total", "Events sent to Inngest", ["name"])

ROUTES = [
    ("GET", re.compile(r"^/health$"), "/health"),
    ("GET", re.compile(r"^/metrics$"), "/metrics"),
    ("GET", re.compile(r"^/api/workspaces$"), "/api/workspaces"),
    ("GET", re.compile(r"^/api/workspaces/(?P<id>[0-9a-f-]{36})/overview$"), "/api/workspaces/:id/overview"),
    ("GET", re.compile(r"^/api/search$"), "/api/search"),
    ("POST", re.compile(r"^/api/entities$"), "/api/entities"),
    ("GET", re.compile(r"^/api/proposals$"), "/api/proposals"),
    ("GET", re.compile(r"^/admin/integrations$"), "/admin/integrations"),
    ("POST", re.compile(r"^/admin/integrations/(?P<name>[a-z0-9-]+)$"), "/admin/integrations/:name"),
    ("POST", re.compile(r"^/admin/faults/connection-exhaustion$"), "/admin/faults/connection-exhaustion"),
]


class HttpError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def load_release():
    """Import release.py from the deploy checkout and note the commit it came from."""
    path = os.path.join(DEPLOY_DIR, "release.py")
    spec = importlib.util.spec_from_file_location("synap_release", path)
    release = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(release)
    try:
        commit = subprocess.run(
            ["git", "-c", "safe.directory=*", "-C", DEPLOY_DIR, "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    return release, commit


RELEASE, COMMIT = load_release()
POOL = make_pool("synap-api", min_size=2, max_size=int(os.environ.get("API_POOL_MAX", "10")))
INTEGRATIONS = {"hub-protocol": True}
LEAKED_CONNECTIONS: list = []


def query(sql: str, params=()):
    with POOL.connection() as conn:
        return conn.execute(sql, params).fetchall()


def workspace_overview(workspace_id: str) -> dict:
    rows = query("SELECT id, name, settings FROM workspaces WHERE id = %s", (workspace_id,))
    if not rows:
        raise HttpError(404, "workspace not found")
    workspace = {"id": str(rows[0][0]), "name": rows[0][1], "settings": rows[0][2]}
    # One count per type, as the real overview does (an N+1 that is cheap only while the index exists).
    counts = {
        entity_type: query(
            "SELECT count(*) FROM entities WHERE workspace_id = %s AND type = %s AND deleted_at IS NULL",
            (workspace_id, entity_type),
        )[0][0]
        for entity_type in ENTITY_TYPES
    }
    pending = query(
        "SELECT count(*) FROM proposals WHERE workspace_id = %s AND status = 'pending'", (workspace_id,)
    )[0][0]
    return RELEASE.render_overview(workspace, counts, pending)


def search(params: dict) -> dict:
    workspace_id = params.get("workspace_id", [""])[0]
    term = params.get("q", [""])[0]
    rows = query(
        "SELECT id, title FROM entities WHERE workspace_id = %s ORDER BY updated_at DESC LIMIT 10", (workspace_id,)
    )
    result = {"results": [{"id": str(row[0]), "title": row[1]} for row in rows], "suggestions": []}
    if INTEGRATIONS["hub-protocol"]:
        try:
            status, answer = http_json("GET", f"{HUB_URL}/v1/search?{urllib.parse.urlencode({'q': term})}",
                                       timeout=HUB_TIMEOUT)
        except OSError as error:
            raise HttpError(502, f"hub-protocol unreachable: {error}") from error
        if status != 200:
            raise HttpError(502, f"hub-protocol answered HTTP {status}")
        result["suggestions"] = answer.get("suggestions", [])
    return result


def create_entity(body: dict) -> dict:
    if not isinstance(body, dict) or not body.get("workspace_id"):
        raise HttpError(400, "workspace_id is required")
    rows = query("SELECT owner_id FROM workspaces WHERE id = %s", (body["workspace_id"],))
    if not rows:
        raise HttpError(404, "workspace not found")
    event = {
        "name": "entities.create.requested",
        "data": {
            "workspace_id": body["workspace_id"],
            "user_id": body.get("user_id", rows[0][0]),
            "entity_type": body.get("type", "note"),
            "title": body.get("title", "Untitled"),
            "source": body.get("source", "user"),
            "target_id": str(uuid.uuid4()),
        },
        "user": {"id": body.get("user_id", rows[0][0])},
    }
    try:
        ids = send_events([event])
    except OSError as error:
        raise HttpError(502, f"inngest unreachable: {error}") from error
    EVENTS_SENT.labels(event["name"]).inc()
    return {"status": "requested", "eventId": ids[0] if ids else None, "targetId": event["data"]["target_id"]}


def list_proposals(params: dict) -> dict:
    workspace_id = params.get("workspace_id", [""])[0]
    status = params.get("status", ["pending"])[0]
    rows = query(
        "SELECT id, target_type, target_id, status, created_at FROM proposals "
        "WHERE workspace_id = %s AND status = %s ORDER BY created_at DESC LIMIT 50",
        (workspace_id, status),
    )
    keys = ("id", "target_type", "target_id", "status", "created_at")
    return {"proposals": [dict(zip(keys, row, strict=True)) for row in rows]}


def leak_connections() -> None:
    """The connection-exhaustion fault: a code path that borrows pool connections and never gives them back,
    while the pool is allowed to grow, until PostgreSQL refuses new clients."""
    POOL.resize(min_size=POOL.min_size, max_size=500)
    log("WARN", "api", "connection pool limit raised to 500")
    while True:
        try:
            LEAKED_CONNECTIONS.append(POOL.getconn(timeout=10))
        except Exception as error:  # noqa: BLE001 - the pool's own error is what the log must show
            log("ERROR", "api", "cannot get a database connection", error=repr(str(error)),
                held=len(LEAKED_CONNECTIONS))
            time.sleep(5)


def render_metrics() -> bytes:
    stats = POOL.get_stats()
    POOL_SIZE.labels("total").set(stats.get("pool_size", 0))
    POOL_SIZE.labels("idle").set(stats.get("pool_available", 0))
    POOL_SIZE.labels("waiting").set(stats.get("requests_waiting", 0))
    return generate_latest()


class ApiHandler(JsonHandler):
    def handle_request(self, method: str) -> None:
        started = time.perf_counter()
        parsed = urllib.parse.urlsplit(self.path)
        params = urllib.parse.parse_qs(parsed.query)
        route, match = "unknown", None
        for route_method, pattern, name in ROUTES:
            found = pattern.match(parsed.path)
            if found and route_method == method:
                route, match = name, found
                break
        status = 500
        try:
            if match is None:
                raise HttpError(404, "not found")
            status = self.dispatch(route, match, params)
        except HttpError as error:
            status = error.status
            if status >= 500:
                log("ERROR", "api", "request failed", route=route, status=status, error=repr(str(error)))
            self.send_json(status, {"error": str(error)})
        except Exception as error:  # noqa: BLE001 - any failure is a 500 with a log line, as in production
            status = 500
            APPLICATION_ERRORS.labels(route).inc()
            log("ERROR", "api", "unhandled error", route=route, release=RELEASE.VERSION,
                error=f"{type(error).__name__}: {error}")
            self.send_json(500, {"error": "internal server error"})
        finally:
            if route != "/metrics":
                elapsed = time.perf_counter() - started
                labels = (method, route, str(status))
                REQUEST_DURATION.labels(*labels).observe(elapsed)
                HTTP_DURATION.labels(*labels).observe(elapsed)
                HTTP_REQUESTS.labels(*labels).inc()

    def dispatch(self, route: str, match, params: dict) -> int:
        if route == "/health":
            try:
                query("SELECT 1")
            except Exception as error:  # noqa: BLE001 - reported, not raised
                self.send_json(503, {"status": "degraded", "database": str(error), "release": RELEASE.VERSION})
                return 503
            self.send_json(200, {"status": "ok", "release": RELEASE.VERSION, "commit": COMMIT})
            return 200
        if route == "/metrics":
            self.send_text(200, render_metrics(), CONTENT_TYPE_LATEST)
            return 200
        if route == "/api/workspaces":
            limit = min(int(params.get("limit", ["100"])[0]), 1000)
            rows = query("SELECT id FROM workspaces ORDER BY created_at DESC LIMIT %s", (limit,))
            payload = {"workspaces": [str(row[0]) for row in rows]}
        elif route == "/api/workspaces/:id/overview":
            payload = workspace_overview(match["id"])
        elif route == "/api/search":
            payload = search(params)
        elif route == "/api/entities":
            self.send_json(202, create_entity(self.read_json()))
            return 202
        elif route == "/api/proposals":
            payload = list_proposals(params)
        elif route == "/admin/integrations":
            payload = {"integrations": INTEGRATIONS}
        elif route == "/admin/integrations/:name":
            if match["name"] not in INTEGRATIONS:
                raise HttpError(404, f"unknown integration {match['name']}")
            body = self.read_json() or {}
            INTEGRATIONS[match["name"]] = bool(body.get("enabled", True))
            log("INFO", "api", "integration switched", name=match["name"], enabled=INTEGRATIONS[match["name"]])
            payload = {"integrations": INTEGRATIONS}
        else:  # /admin/faults/connection-exhaustion
            threading.Thread(target=leak_connections, daemon=True).start()
            payload = {"leaking": True}
        self.send_json(200, payload)
        return 200


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s api %(name)s %(message)s")
    parser = argparse.ArgumentParser(description="Synap API stand-in")
    parser.add_argument("--port", type=int, default=3000)
    log("INFO", "api", "release loaded", release=RELEASE.VERSION, commit=COMMIT)
    serve(ApiHandler, parser.parse_args().port, "api")
