#!/usr/bin/env python3
"""Check a built backend tree on this host (no docker) against a throwaway PostgreSQL 15.

    lab/backend/verify.py [TREE] [--metrics] [--keep] [--save-register FILE]

Without TREE it runs `lab/backend/build` (cached) and checks the tree it prints. What it checks:
migrations on an empty database and a no-op second run; `node dist/index.js` starting with dummy Ory settings;
GET /health; tRPC health.ready; GET and PUT /api/inngest (the SDK's registration, captured by a small
Inngest-like listener started here); a proposal created with `proposals.submit` and a mock session cookie,
global-validator driven step by step through the serve handler as Inngest would, the proposals row in
PostgreSQL, then approve and reject; the event processor's forwarding; GET /metrics (empty HTTP families
without --metrics, samples with it: the lab's middleware, on with SYNAP_LAB_HTTP_METRICS=1).
Prints one line per check and `N passed, N failed`; exit 1 on a failure.
PostgreSQL runs as the `postgres` user when started as root. Ports are picked free on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
DB_PASSWORD = "verify-pw"
USER_ID = "lab-user-1"
# The functions kept in register-example.json: the validator, an executor, a cron function, a multi-trigger one.
EXAMPLE_FUNCTIONS = ["synap-global-validator", "synap-entities-executor", "synap-document-persistence",
                     "synap-thread-context-executor"]

results: list[tuple[bool, str, str]] = []


def check(ok: bool, name: str, detail: str = "") -> bool:
    results.append((ok, name, detail))
    print(f"{'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True)
    return ok


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method: str, url: str, body: object = None, headers: dict | None = None, timeout: float = 30) -> tuple[int, str]:
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()


class FakeInngest:
    """Records what the SDK sends (POST /fn/register, POST /e/{key}) and answers as Inngest would."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - the base class names it so
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                body = json.loads(raw or b"null")
                with outer.lock:
                    outer.requests.append({"method": "POST", "path": self.path, "body": body})
                if self.path.startswith("/e/"):
                    answer = {"ids": [str(uuid.uuid4()) for _ in (body or [])], "status": 200}
                else:
                    answer = {"ok": True}
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self) -> list[dict]:
        with self.lock:
            return [e for r in self.requests if r["path"].startswith("/e/") for e in r["body"]]

    def registrations(self) -> list[dict]:
        with self.lock:
            return [r["body"] for r in self.requests if r["path"] == "/fn/register"]


def drive(serve_url: str, fn_id: str, event: dict) -> tuple[int, object, list[str]]:
    """Run one function to completion through the serve handler, as Inngest's executor does: POST
    {event, events, steps, ctx, version}; on 206 store each returned step's result and call again."""
    steps: dict[str, dict] = {}
    order: list[str] = []
    names: list[str] = []
    run_id = str(uuid.uuid4())
    for _ in range(25):
        body = {"event": event, "events": [event], "steps": steps, "version": 1,
                "ctx": {"run_id": run_id, "attempt": 0, "stack": {"stack": order, "current": len(order)}}}
        status, text = http("POST", f"{serve_url}?fnId={fn_id}&stepId=step", body)
        out = json.loads(text) if text else None
        if status != 206:
            return status, out, names
        for op in out:
            names.append(op.get("displayName") or op.get("name") or op["op"])
            result = {"type": "error", "error": op["error"]} if "error" in op else {"type": "data", "data": op.get("data")}
            steps[op["id"]] = result
            order.append(op["id"])
    return 0, "too many steps", names


class Postgres:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "pgdata"
        self.port = free_port()
        self.as_postgres = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"] if os.geteuid() == 0 else []

    def run(self, *cmd: str) -> None:
        subprocess.run([*self.as_postgres, *cmd], check=True, stdout=subprocess.DEVNULL)

    def start(self) -> None:
        if self.as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self.run(str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8")
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
        self.run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", opts, "-l", str(self.root / "pg.log"), "-w", "start")
        # As the lab does: a non-superuser application role owning the database.
        role = f"CREATE ROLE synap LOGIN PASSWORD '{DB_PASSWORD}'"
        self.psql("postgres", "postgres", role, "CREATE DATABASE synap OWNER synap")
        self.psql("postgres", "synap", "CREATE EXTENSION pg_stat_statements")

    def stop(self) -> None:
        subprocess.run([*self.as_postgres, str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def psql(self, user: str, db: str, *commands: str) -> str:
        cmd = [str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", user, "-d", db, "-X", "-q", "-A", "-t",
               "-v", "ON_ERROR_STOP=1"]
        for c in commands:
            cmd += ["-c", c]
        return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()

    @property
    def url(self) -> str:
        return f"postgresql://synap:{DB_PASSWORD}@127.0.0.1:{self.port}/synap"


def build_tree() -> Path:
    out = subprocess.run([str(HERE / "build")], check=True, stdout=subprocess.PIPE, text=True).stdout.strip().splitlines()
    return Path(out[-1])


def trpc(base: str, proc: str, payload: dict | None = None, cookie: str | None = USER_ID) -> tuple[int, dict | str]:
    headers = {"cookie": f"mock-session-cookie={cookie}"} if cookie else {}
    if payload is None:
        status, text = http("GET", f"{base}/trpc/{proc}", headers=headers)
    else:
        status, text = http("POST", f"{base}/trpc/{proc}", {"json": payload}, headers)
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def verify(tree: Path, scratch: Path, metrics: bool, save_register: Path | None) -> None:
    pg = Postgres(scratch / "pg")
    pg.root.mkdir()
    pg.start()
    try:
        verify_with_db(tree, scratch, pg, metrics, save_register)
    finally:
        pg.stop()


def verify_with_db(tree: Path, scratch: Path, pg: Postgres, metrics: bool, save_register: Path | None) -> None:
    env = {**os.environ, "DATABASE_URL": pg.url}
    for attempt in ("first", "second"):
        started = time.monotonic()
        run = subprocess.run(["node", "lab/migrate.mjs"], cwd=tree, env=env, capture_output=True, text=True)
        took = time.monotonic() - started
        tail = run.stderr.strip().splitlines()[-1] if run.stderr.strip() else ""
        if attempt == "first":
            check(run.returncode == 0 and "applied" in tail, f"migrations on an empty database ({took:.1f} s)", tail)
        else:
            check(run.returncode == 0 and "nothing to do" in tail, f"migrations re-run is a no-op ({took:.1f} s)", tail)
    tables = set(pg.psql("synap", "synap", "SELECT tablename FROM pg_tables WHERE schemaname='public'").split())
    missing = {"proposals", "workspaces", "workspace_members", "entities", "users", "skills", "background_tasks"} - tables
    detail = f"missing {sorted(missing)}" if missing else ""
    check(not missing, f"{len(tables)} tables incl. proposals, skills, background_tasks", detail)

    inngest = FakeInngest()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app_env = {
        **env,
        "PORT": str(port),
        "NODE_ENV": "development",
        "KRATOS_PUBLIC_URL": "http://127.0.0.1:65535",
        "HYDRA_PUBLIC_URL": "http://127.0.0.1:65535",
        "ORY_HYDRA_SECRETS_SYSTEM": "lab-dummy-hydra-secret-0123456789",
        "INNGEST_DEV": "1",
        "INNGEST_BASE_URL": f"http://127.0.0.1:{inngest.port}",
        # Nothing listens there: the validator's broadcast step fails fast instead of leaving the machine.
        "REALTIME_URL": "http://127.0.0.1:65535",
        **({"SYNAP_LAB_HTTP_METRICS": "1"} if metrics else {}),
    }
    with open(scratch / "app.log", "w") as log:
        run_app(tree, app_env, log, base, pg, inngest, metrics, save_register)


def run_app(tree: Path, app_env: dict, log, base: str, pg: Postgres, inngest: FakeInngest, metrics: bool,
            save_register: Path | None) -> None:
    started = time.monotonic()
    app = subprocess.Popen(["node", "dist/index.js"], cwd=tree, env=app_env, stdout=log, stderr=subprocess.STDOUT)
    try:
        up = False
        while time.monotonic() - started < 60 and app.poll() is None:
            try:
                up = http("GET", f"{base}/health", timeout=2)[0] == 200
            except OSError:
                up = False
            if up:
                break
            time.sleep(0.2)
        check(up, f"node dist/index.js answers GET /health 200 ({time.monotonic() - started:.1f} s after start)")
        if not up:
            return
        verify_app(base, pg, inngest, metrics, save_register)
    finally:
        app.terminate()
        try:
            app.wait(10)
        except subprocess.TimeoutExpired:
            app.kill()


def verify_app(base: str, pg: Postgres, inngest: FakeInngest, metrics: bool, save_register: Path | None) -> None:
    status, body = trpc(base, "health.ready", cookie=None)
    ready = isinstance(body, dict) and body.get("result", {}).get("data", {}).get("json", {}).get("status") == "ready"
    check(status == 200 and ready, "tRPC health.ready (no cookie)", json.dumps(body)[:160])
    status, body = trpc(base, "workspaces.list", cookie=None)
    check(status == 401, "protected procedure without a cookie is 401", str(status))

    status, text = http("GET", f"{base}/api/inngest")
    intro = json.loads(text) if status == 200 else {}
    check(status == 200 and intro.get("function_count") == 30 and intro.get("mode") == "dev",
          "GET /api/inngest: dev mode, 30 functions", text[:200])
    status, text = http("PUT", f"{base}/api/inngest")
    regs = inngest.registrations()
    check(status == 200 and len(regs) == 1, "PUT /api/inngest registers with <INNGEST_BASE_URL>/fn/register", text[:120])
    if regs:
        reg = regs[0]
        ids = [f["id"] for f in reg["functions"]]
        check(reg.get("appName") == "synap" and len(ids) == 30 and "synap-global-validator" in ids,
              "registration: app synap, 30 functions incl. synap-global-validator")
        if save_register:
            example = dict(reg)
            example["functions"] = [f for f in reg["functions"] if f["id"] in EXAMPLE_FUNCTIONS]
            text = json.dumps(example, indent=2).replace(base, "http://127.0.0.1:3000")
            save_register.write_text(text + "\n")
            print(f"     register example written to {save_register}")

    # A user, a workspace and its owner membership: the validator's permission check reads workspace_members.
    user = f"INSERT INTO users (id, email, name, kratos_identity_id) VALUES ('{USER_ID}', 'lab@example.invalid', 'Lab', 'k-1')"
    workspace = f"INSERT INTO workspaces (owner_id, name, type) VALUES ('{USER_ID}', 'Lab', 'team') RETURNING id"
    ws = pg.psql("synap", "synap", user, workspace).splitlines()[-1]
    member = f"INSERT INTO workspace_members (workspace_id, user_id, role) VALUES ('{ws}', '{USER_ID}', 'owner')"
    pg.psql("synap", "synap", member)

    before = len(inngest.events())
    payload = {"targetType": "entity", "changeType": "create", "reasoning": "lab check",
               "data": {"workspaceId": ws, "source": "ai", "type": "note", "title": "Lab proposal"}}
    status, body = trpc(base, "proposals.submit", payload)
    check(status == 200, "proposals.submit with mock-session-cookie", json.dumps(body)[:200])
    sent = inngest.events()[before:]
    check(len(sent) == 1 and sent[0]["name"] == "entitys.create.requested",
          "it emits one event, entitys.create.requested (sic)", json.dumps(sent)[:300])
    if not sent:
        return
    event = {**sent[0], "id": str(uuid.uuid4())}
    status, out, names = drive(f"{base}/api/inngest", "synap-global-validator", event)
    check(status == 200 and isinstance(out, dict) and out.get("status") == "proposal_created",
          "global-validator run: " + " -> ".join(names), json.dumps(out)[:200])
    latest = "SELECT id, workspace_id, target_type, status FROM proposals ORDER BY created_at DESC LIMIT 1"
    row = pg.psql("synap", "synap", latest)
    check(row.endswith("|entity|pending") and ws in row, "proposals row (id|workspace_id|target_type|status)", row)
    proposal_id = row.split("|")[0]

    status, body = trpc(base, f"proposals.list?input={urllib.request.quote(json.dumps({'json': {'workspaceId': ws}}))}")
    listed = isinstance(body, dict) and [p["id"] for p in body["result"]["data"]["json"]["proposals"]]
    check(status == 200 and listed == [proposal_id], "proposals.list shows it (status pending)")

    before = len(inngest.events())
    status, body = trpc(base, "proposals.approve", {"proposalId": proposal_id, "comment": "ok"})
    state = pg.psql("synap", "synap", f"SELECT status, reviewed_by FROM proposals WHERE id = '{proposal_id}'")
    sent = [e["name"] for e in inngest.events()[before:]]
    check(status == 200 and state == f"validated|{USER_ID}" and sent == ["entitys.create.validated"],
          "proposals.approve: status validated, emits entitys.create.validated", f"{state} {sent}")

    # Non-AI source: the validator approves at once and writes nothing.
    payload["data"] = {**payload["data"], "source": "user"}
    before = len(inngest.events())
    trpc(base, "proposals.submit", payload)
    event = {**inngest.events()[before], "id": str(uuid.uuid4())}
    before = len(inngest.events())
    status, out, names = drive(f"{base}/api/inngest", "synap-global-validator", event)
    sent = [e["name"] for e in inngest.events()[before:]]
    check(status == 200 and isinstance(out, dict) and out.get("status") == "validated" and sent == ["entitys.create.validated"],
          "user-sourced request: " + " -> ".join(names) + f", emits {sent}")
    count = pg.psql("synap", "synap", "SELECT count(*) FROM proposals")
    check(count == "1", "no proposals row for it", count)

    # workspaces.create goes through emitRequestEvent: it appends to the events table, and the API's event
    # processor re-sends the latest 100 *.requested / *.validated rows of that table every 5 s.
    before = len(inngest.events())
    trpc(base, "workspaces.create", {"name": "Second"})
    time.sleep(11)
    names = [e["name"] for e in inngest.events()[before:]]
    repeats = names.count("workspaces.create.requested")
    check(repeats >= 2, f"event processor re-sends stored request events ({repeats}x workspaces.create.requested in 11 s)")

    verify_metrics(base, metrics)


def verify_metrics(base: str, metrics: bool) -> None:
    for _ in range(3):
        http("GET", f"{base}/health")
    http("GET", f"{base}/no-such-path")
    status, text = http("GET", f"{base}/metrics")
    families = ("http_requests_total counter", "http_request_duration_seconds histogram")
    declared = all(f"# TYPE synap_{n}" in text for n in families)
    samples = [line for line in text.splitlines() if re.match(r"synap_http_request(s_total|_duration_seconds_count)\{", line)]
    if not metrics:
        check(status == 200 and declared and not samples, "GET /metrics: both HTTP families declared, no samples")
        return
    health = [s for s in samples if s.startswith("synap_http_requests_total{") and 'route="/health"' in s]
    check(status == 200 and declared and bool(health), "GET /metrics: samples recorded", health[0] if health else "none")
    wanted = {'route="/trpc/health.ready",status_code="200"', 'route="/trpc/workspaces.list",status_code="401"',
              'route="unmatched",status_code="404"', 'route="/api/inngest",status_code="200"'}
    found = {w for w in wanted if any(w in s for s in samples)}
    check(found == wanted, "labels method/route/status_code for tRPC, 401, 404 and /api/inngest", f"missing {wanted - found}")
    check(not any('route="/metrics"' in s for s in samples), "/metrics scrapes are not counted")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tree", nargs="?", type=Path, help="built tree (default: build it, cached)")
    parser.add_argument("--metrics", action="store_true",
                        help="run the app with the lab's HTTP metrics middleware on, and expect samples")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (database, app.log)")
    parser.add_argument("--save-register", type=Path, help="write the captured /fn/register payload, trimmed, here")
    args = parser.parse_args()
    tree = (args.tree or build_tree()).resolve()
    scratch = Path(tempfile.mkdtemp(prefix="backend-verify-"))
    scratch.chmod(0o755)  # the postgres user must reach its data directory inside
    try:
        verify(tree, scratch, args.metrics, args.save_register)
    finally:
        if args.keep:
            print(f"     scratch kept: {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    failed = sum(1 for ok, _, _ in results if not ok)
    print(f"{len(results) - failed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
