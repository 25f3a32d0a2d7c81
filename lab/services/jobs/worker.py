"""Stand-in for Synap's Inngest worker functions (`jobs`): serves `global-validator` and `entities-executor`
at /api/inngest for the lab's Inngest, which POSTs one run at a time per request.

global-validator does what Synap's does: check-permissions (the requester must own the workspace, else
`X.Y.denied`), check-policy (an AI request in a workspace without `aiAutoApprove` needs review: a `pending`
proposal that supersedes older pending proposals for the same target; otherwise `X.Y.validated`), then
broadcast-proposal. entities-executor inserts the entity on `entities.create.validated`.

Signals (how the lab's faults reach a running worker, as a real bug would):
  SIGUSR1  hang: every run from now on blocks forever (runs stay RUNNING until the worker restarts)
  SIGUSR2  leak: open JOBS_LEAK_CONNECTIONS connections and leave them idle
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
import time
import urllib.parse

import psycopg
from synaplab import (
    DATABASE_URL,
    INNGEST_APP,
    INNGEST_SIGNING_KEY,
    INNGEST_URL,
    JsonHandler,
    http_json,
    log,
    make_pool,
    send_events,
    serve,
)

JOBS_URL = os.environ.get("JOBS_URL", "http://jobs:3001/api/inngest")
BROADCAST_SECONDS = float(os.environ.get("JOBS_BROADCAST_SECONDS", "0.2"))
LOCK_TIMEOUT = os.environ.get("JOBS_LOCK_TIMEOUT", "15s")
LEAK_CONNECTIONS = int(os.environ.get("JOBS_LEAK_CONNECTIONS", "12"))
PENDING_QUOTA = int(os.environ.get("JOBS_PENDING_QUOTA", "500"))
FUNCTIONS = [
    {
        "id": "global-validator",
        "name": "Global Validator & Proposal Router",
        "triggers": [{"event": "entities.create.requested"}, {"event": "*.*.requested"}],
        "retries": 2,
    },
    {
        "id": "entities-executor",
        "name": "Entities Executor",
        "triggers": [{"event": "entities.*.validated"}],
        "retries": 2,
    },
]

POOL = make_pool("synap-jobs", min_size=1, max_size=int(os.environ.get("JOBS_POOL_MAX", "6")))
# Runs one replica works on at once: the worker's capacity, which scaling the service multiplies.
CAPACITY = threading.BoundedSemaphore(int(os.environ.get("JOBS_CONCURRENCY", "4")))
HANG = threading.Event()
LEAKED: list = []


def event_prefix(name: str) -> str:
    """`entities.create.requested` -> `entities.create`."""
    return name.rsplit(".", 1)[0]


def global_validator(event: dict, run_id: str) -> dict:
    data = event.get("data") or {}
    prefix = event_prefix(event.get("name", "unknown.unknown.requested"))
    fields = {"run": run_id, "event": event.get("name")}
    with POOL.connection() as conn:
        conn.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
        log("INFO", "global-validator", "step check-permissions", **fields)
        row = conn.execute(
            "SELECT owner_id, coalesce((settings->>'aiAutoApprove')::boolean, false) FROM workspaces WHERE id = %s",
            (data.get("workspace_id"),),
        ).fetchone()
        if row is None or row[0] != data.get("user_id"):
            log("INFO", "global-validator", "step emit-denied", **fields)
            send_events([{"name": f"{prefix}.denied", "data": {**data, "reason": "not the workspace owner"}}])
            return {"decision": "denied"}
        auto_approve = row[1]
        log("INFO", "global-validator", "step check-policy", auto_approve=auto_approve, **fields)
        if data.get("source") != "ai" or auto_approve:
            log("INFO", "global-validator", "step emit-validated", **fields)
            send_events([{"name": f"{prefix}.validated", "data": data}])
            return {"decision": "validated"}
        log("INFO", "global-validator", "step create-proposal", **fields)
        target_type, target_id = "entity", data.get("target_id") or ""
        with conn.transaction():
            # Proposal creation is serialised per workspace by locking its pending proposals (the quota check);
            # these are the rows a held row lock on proposals blocks.
            pending = len(conn.execute(
                "SELECT id FROM proposals WHERE workspace_id = %s AND status = 'pending' FOR UPDATE",
                (data["workspace_id"],),
            ).fetchall())
            if pending >= PENDING_QUOTA:
                raise RuntimeError(f"workspace has {pending} pending proposals (quota {PENDING_QUOTA})")
            proposal_id = conn.execute(
                "INSERT INTO proposals (workspace_id, target_type, target_id, request) VALUES (%s, %s, %s, %s) "
                "RETURNING id",
                (data["workspace_id"], target_type, target_id,
                 psycopg.types.json.Jsonb({"type": prefix, "source": "ai", "data": data})),
            ).fetchone()[0]
    log("INFO", "global-validator", "step broadcast-proposal", proposal=proposal_id, **fields)
    time.sleep(BROADCAST_SECONDS)
    return {"decision": "pending", "proposal": str(proposal_id)}


def entities_executor(event: dict, run_id: str) -> dict:
    data = event.get("data") or {}
    with POOL.connection() as conn:
        entity_id = conn.execute(
            "INSERT INTO entities (user_id, workspace_id, type, title, metadata) VALUES (%s, %s, %s, %s, %s) "
            "RETURNING id",
            (data.get("user_id"), data.get("workspace_id"), data.get("entity_type", "note"), data.get("title"),
             psycopg.types.json.Jsonb({"source": data.get("source", "user")})),
        ).fetchone()[0]
    log("INFO", "entities-executor", "entity created", run=run_id, entity=entity_id)
    time.sleep(BROADCAST_SECONDS)
    return {"entity": str(entity_id)}


HANDLERS = {"global-validator": global_validator, "entities-executor": entities_executor}


class WorkerHandler(JsonHandler):
    def handle_request(self, method: str) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        if parsed.path == "/health" and method == "GET":
            self.send_json(200, {"status": "ok", "functions": [fn["id"] for fn in FUNCTIONS]})
            return
        if parsed.path != "/api/inngest" or method != "POST":
            self.send_json(404, {"error": "not found"})
            return
        params = urllib.parse.parse_qs(parsed.query)
        function_id = params.get("fnId", [""])[0]
        run_id = params.get("runId", [""])[0]
        payload = self.read_json() or {}
        handler = HANDLERS.get(function_id)
        if handler is None:
            self.send_json(404, {"error": f"unknown function {function_id}"})
            return
        if HANG.is_set():
            # The stuck worker: the request is accepted and never answered.
            threading.Event().wait()
        try:
            with CAPACITY:
                output = handler(payload.get("event") or {}, run_id)
        except Exception as error:  # noqa: BLE001 - a failed step is reported to Inngest, which retries
            log("ERROR", function_id, "run failed", run=run_id, error=f"{type(error).__name__}: {error}")
            self.send_json(500, {"error": str(error)})
            return
        self.send_json(200, output)


def keep_registered() -> None:
    """Register the functions, and again whenever the (in-memory) Inngest has forgotten them."""
    headers = {"Authorization": f"Bearer {INNGEST_SIGNING_KEY}"} if INNGEST_SIGNING_KEY else {}
    registration = {"url": JOBS_URL, "appName": INNGEST_APP, "functions": FUNCTIONS}
    while True:
        try:
            status, known = http_json("GET", f"{INNGEST_URL}/v1/apps/{INNGEST_APP}/functions", headers=headers)
            if status != 200 or not known:
                status, answer = http_json("POST", f"{INNGEST_URL}/fn/register", registration, headers=headers)
                log("INFO" if status == 200 else "ERROR", "jobs", "registered functions", status=status,
                    functions=",".join(fn["id"] for fn in FUNCTIONS))
        except OSError as error:
            log("WARN", "jobs", "inngest unreachable", error=repr(str(error)))
        time.sleep(3)


def hang(signum, frame) -> None:
    HANG.set()


def leak(signum, frame) -> None:
    def open_idle_connections():
        for _ in range(LEAK_CONNECTIONS):
            LEAKED.append(psycopg.connect(DATABASE_URL, application_name="synap-jobs", autocommit=True))
        log("INFO", "jobs", "opened connections", count=len(LEAKED))

    threading.Thread(target=open_idle_connections, daemon=True).start()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Synap jobs worker stand-in")
    parser.add_argument("--port", type=int, default=3001)
    signal.signal(signal.SIGUSR1, hang)
    signal.signal(signal.SIGUSR2, leak)
    threading.Thread(target=keep_registered, daemon=True).start()
    serve(WorkerHandler, parser.parse_args().port, "jobs")
