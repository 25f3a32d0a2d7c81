#!/usr/bin/env python3
"""Check a built backend tree on this host (no docker) against a throwaway PostgreSQL 15 and the Inngest stand-in.

    lab/backend/verify.py [TREE] [--metrics] [--keep] [--save-register FILE]

Without TREE it runs `lab/backend/build` (cached) and checks the tree it prints. What it checks:
migrations on an empty database and a no-op second run; `node dist/index.js` starting with dummy Ory settings;
GET /health; tRPC health.ready; GET and PUT /api/inngest, the PUT registering with the lab's Inngest stand-in
(lab/services/inngest/server.py, started here on a free port as INNGEST_BASE_URL), which then lists app `synap`
and its 30 functions; a proposal created with `proposals.submit` and a mock session cookie: its event as the
stand-in received it, the real global-validator run by the stand-in through the SDK execution protocol to
COMPLETED, the proposals row in PostgreSQL, then approve; a user-sourced request approved at once; the event
processor's re-sends; GET /metrics (empty HTTP families without --metrics, samples with it: the lab's
middleware, on with SYNAP_LAB_HTTP_METRICS=1). Everything Inngest-side is read from the stand-in's own API
(GET /v1/apps/synap/functions, GET /v1/events, POST /v0/gql runs) and its log of calls to the app.
Prints one line per check and `N passed, N failed`; exit 1 on a failure.
PostgreSQL runs as the `postgres` user when started as root. Ports are picked free on 127.0.0.1. The scratch
directory holds pg/, app.log and inngest.log (the stand-in's request log and its calls to the app); --keep keeps
it. --save-register FILE writes the registration as the stand-in kept it (GET /v1/apps/synap/functions), trimmed
to four functions: the functions as the SDK sent them, without the SDK's top-level v/sdk/deployType/framework/
capabilities, which the stand-in does not expose.
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
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
STANDIN = HERE.parent / "services" / "inngest" / "server.py"
RUN_WAIT = 60.0  # seconds to wait for a run of the stand-in to end
ENDED = {"COMPLETED", "FAILED", "CANCELLED", "SKIPPED"}
RUNS_QUERY = """query Runs($from: Time!) {
  runs(filter: {from: $from}, orderBy: [{field: QUEUED_AT, direction: ASC}], first: 200) {
    edges { node { id status eventName output function { slug } } }
  }
}"""
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


class StandIn:
    """The lab's Inngest stand-in as a subprocess on a free port; its stderr (the request log and one line per call
    to the app, as its README documents) goes to `log`. Everything is read back through its HTTP API."""

    def __init__(self, log_path: Path) -> None:
        # No keys: the app in dev mode sends events to /e/NO_EVENT_KEY_SET and checks no signature.
        env = {k: v for k, v in os.environ.items() if k not in ("INNGEST_SIGNING_KEY", "INNGEST_EVENT_KEY")}
        self.log_path = log_path
        with open(log_path, "w") as log:
            self.process = subprocess.Popen([sys.executable, str(STANDIN), "--host", "127.0.0.1", "--port", "0"],
                                            env=env, stdout=subprocess.PIPE, stderr=log, text=True)
        self.line = self.process.stdout.readline().strip()  # "" if it exited first
        match = re.fullmatch(r"inngest stand-in listening on (http://\S+)", self.line)
        self.url = match[1] if match else ""

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()

    def get(self, path: str, **params: object) -> tuple[int, object]:
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        status, text = http("GET", f"{self.url}{path}{'?' + query if query else ''}")
        try:
            return status, json.loads(text)
        except ValueError:
            return status, text

    def events(self, since: str, name: str | None = None) -> list[dict]:
        """GET /v1/events received since `since`, oldest first (it pages newest first, 51 at most a page)."""
        found: list[dict] = []
        while True:
            cursor = found[-1]["id"] if found else None
            status, body = self.get("/v1/events", received_after=since, name=name, limit=51, cursor=cursor)
            page = body["data"] if status == 200 and isinstance(body, dict) else []
            found += page
            if len(page) < 51:
                return found[::-1]

    def runs(self, since: str) -> list[dict]:
        """POST /v0/gql, the runs query: runs queued since `since`, oldest first."""
        status, text = http("POST", f"{self.url}/v0/gql", {"query": RUNS_QUERY, "variables": {"from": since}})
        body = json.loads(text) if status == 200 else {}
        return [e["node"] for e in (body.get("data") or {}).get("runs", {}).get("edges", [])]

    def calls(self, run_id: str) -> list[str]:
        """The outcome of each call the stand-in made to the app for one run, from its log lines
        `call <slug> run <id> stepId=... attempt N: HTTP 206`."""
        lines = self.log_path.read_text(errors="replace").splitlines()
        return [line.rpartition(": ")[2] for line in lines if line.startswith("call ") and f" run {run_id} " in line]


def stamp() -> str:
    """Now, in RFC 3339: the stand-in's received_after / filter.from (same host, same clock)."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def wait_for(probe, timeout: float = RUN_WAIT, every: float = 0.5):
    """Call `probe` until it returns (True, value) or `timeout` passes; the last value either way."""
    deadline = time.monotonic() + timeout
    while True:
        done, value = probe()
        if done or time.monotonic() >= deadline:
            return value
        time.sleep(every)


def validator_run(inngest: StandIn, since: str, event_name: str) -> tuple[dict | None, object]:
    """Wait for the stand-in's run of synap-global-validator for an event received since `since` to end:
    (run or None, its output parsed)."""
    def probe() -> tuple[bool, dict | None]:
        runs = [r for r in inngest.runs(since)
                if r["function"]["slug"] == "synap-global-validator" and r["eventName"] == event_name]
        return bool(runs) and runs[0]["status"] in ENDED, runs[0] if runs else None
    run = wait_for(probe)
    output = json.loads(run["output"]) if run and run.get("output") else None
    return run, output


def run_detail(inngest: StandIn, run: dict | None, output: object) -> str:
    if run is None:
        return f"no run of synap-global-validator within {RUN_WAIT:.0f} s"
    calls = inngest.calls(run["id"])
    return f"{run['status']} after {len(calls)} calls ({', '.join(calls)}), output {json.dumps(output)[:160]}"


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
    wanted = {"proposals", "workspaces", "workspace_members", "entities", "users", "skills", "background_tasks"}
    missing = wanted - tables
    detail = f"missing {sorted(missing)}" if missing else ""
    check(not missing, f"{len(tables)} tables incl. proposals, skills, background_tasks", detail)

    inngest = StandIn(scratch / "inngest.log")
    try:
        if not check(bool(inngest.url), "Inngest stand-in (lab/services/inngest/server.py --port 0) listening",
                     inngest.line or f"exited {inngest.process.poll()}, see inngest.log"):
            return
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
            "INNGEST_BASE_URL": inngest.url,
            # Nothing listens there: the validator's broadcast step fails fast instead of leaving the machine.
            "REALTIME_URL": "http://127.0.0.1:65535",
            **({"SYNAP_LAB_HTTP_METRICS": "1"} if metrics else {}),
        }
        with open(scratch / "app.log", "w") as log:
            run_app(tree, app_env, log, base, pg, inngest, metrics, save_register)
    finally:
        inngest.stop()


def run_app(tree: Path, app_env: dict, log, base: str, pg: Postgres, inngest: StandIn, metrics: bool,
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


def save_registration(path: Path, functions: list[dict], base: str) -> None:
    """Write the registration as the stand-in kept it (GET /v1/apps/synap/functions), trimmed to EXAMPLE_FUNCTIONS.
    The stand-in keeps each function's spec (id, name, triggers, steps, ...) but not the SDK's top-level fields
    (v, sdk, deployType, framework, capabilities); the url is the runtime URL without its query."""
    specs = []
    for fn in functions:
        config = json.loads(fn["config"])
        if "steps" in config:
            config.pop("retries", None)  # the stand-in's own field: the SDK's retries are in steps.step.retries
        specs.append({"id": fn["id"], "name": fn["name"], **config})
    urls = [s["steps"]["step"]["runtime"]["url"] for s in specs if "steps" in s]
    example = {"url": urls[0].partition("?")[0] if urls else None, "appName": "synap",
               "functions": [s for s in specs if s["id"] in EXAMPLE_FUNCTIONS]}
    path.write_text(json.dumps(example, indent=2).replace(base, "http://127.0.0.1:3000") + "\n")
    print(f"     register example (as the stand-in kept it) written to {path}")


def verify_app(base: str, pg: Postgres, inngest: StandIn, metrics: bool, save_register: Path | None) -> None:
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
    check(status == 200 and "Successfully registered" in text,
          "PUT /api/inngest registers with the stand-in (<INNGEST_BASE_URL>/fn/register)", text[:120])
    status, functions = inngest.get("/v1/apps/synap/functions")
    ids = [fn["id"] for fn in functions] if status == 200 and isinstance(functions, list) else []
    check(len(ids) == 30 and "synap-global-validator" in ids,
          "the stand-in knows app synap: 30 functions incl. synap-global-validator (GET /v1/apps/synap/functions)",
          f"HTTP {status}, {len(ids)} functions")
    if save_register and ids:
        save_registration(save_register, functions, base)

    # A user, a workspace and its owner membership: the validator's permission check reads workspace_members.
    user = ("INSERT INTO users (id, email, name, kratos_identity_id) "
            f"VALUES ('{USER_ID}', 'lab@example.invalid', 'Lab', 'k-1')")
    workspace = f"INSERT INTO workspaces (owner_id, name, type) VALUES ('{USER_ID}', 'Lab', 'team') RETURNING id"
    ws = pg.psql("synap", "synap", user, workspace).splitlines()[-1]
    member = f"INSERT INTO workspace_members (workspace_id, user_id, role) VALUES ('{ws}', '{USER_ID}', 'owner')"
    pg.psql("synap", "synap", member)

    since = stamp()
    payload = {"targetType": "entity", "changeType": "create", "reasoning": "lab check",
               "data": {"workspaceId": ws, "source": "ai", "type": "note", "title": "Lab proposal"}}
    status, body = trpc(base, "proposals.submit", payload)
    check(status == 200, "proposals.submit with mock-session-cookie", json.dumps(body)[:200])
    sent = [e["name"] for e in inngest.events(since)]
    check(sent == ["entitys.create.requested"], "the stand-in received one event, entitys.create.requested (sic)",
          json.dumps(sent)[:300])

    # The stand-in runs the real global-validator by the SDK protocol: the run completes, the proposal row appears
    # (its create-proposal step writes it before the run ends).
    run, output = validator_run(inngest, since, "entitys.create.requested")
    latest = "SELECT id, workspace_id, target_type, status FROM proposals ORDER BY created_at DESC LIMIT 1"
    row = wait_for(lambda: ((r := pg.psql("synap", "synap", latest)).endswith("|entity|pending"), r))
    proposal_id = row.split("|")[0]
    check(run is not None and run["status"] == "COMPLETED" and isinstance(output, dict)
          and output.get("status") == "proposal_created",
          "the stand-in ran synap-global-validator to COMPLETED, output proposal_created",
          run_detail(inngest, run, output))
    made = isinstance(output, dict) and output.get("proposalId") == proposal_id
    check(row.endswith("|entity|pending") and ws in row and made,
          "proposals row (id|workspace_id|target_type|status), id = the run's proposalId", row)

    status, body = trpc(base, f"proposals.list?input={urllib.request.quote(json.dumps({'json': {'workspaceId': ws}}))}")
    listed = isinstance(body, dict) and [p["id"] for p in body["result"]["data"]["json"]["proposals"]]
    check(status == 200 and listed == [proposal_id], "proposals.list shows it (status pending)")

    since = stamp()
    status, body = trpc(base, "proposals.approve", {"proposalId": proposal_id, "comment": "ok"})
    state = pg.psql("synap", "synap", f"SELECT status, reviewed_by FROM proposals WHERE id = '{proposal_id}'")
    sent = [e["name"] for e in inngest.events(since)]
    check(status == 200 and state == f"validated|{USER_ID}" and sent == ["entitys.create.validated"],
          "proposals.approve: status validated, the stand-in received entitys.create.validated", f"{state} {sent}")

    # Non-AI source: the validator approves at once (its emit-validated step sends the event) and writes nothing.
    payload["data"] = {**payload["data"], "source": "user"}
    since = stamp()
    trpc(base, "proposals.submit", payload)
    run, output = validator_run(inngest, since, "entitys.create.requested")
    sent = [e["name"] for e in inngest.events(since)]
    check(run is not None and run["status"] == "COMPLETED" and isinstance(output, dict)
          and output.get("status") == "validated" and sent == ["entitys.create.requested", "entitys.create.validated"],
          f"user-sourced request: validator run COMPLETED, validated; events {sent}", run_detail(inngest, run, output))
    count = pg.psql("synap", "synap", "SELECT count(*) FROM proposals")
    check(count == "1", "no proposals row for it", count)

    # workspaces.create goes through emitRequestEvent: it sends the event and appends it to the events table, and
    # the API's event processor re-sends the latest 100 *.requested / *.validated rows of that table every 5 s.
    # Neither send carries an id, so the stand-in (which drops a repeated id) keeps each as a new event and starts
    # a new global-validator run for it: the count is the direct send plus the re-sends.
    since = stamp()
    trpc(base, "workspaces.create", {"name": "Second"})
    time.sleep(11)
    received = inngest.events(since, "workspaces.create.requested")
    distinct = len({e["id"] for e in received})
    runs = [r for r in inngest.runs(since) if r["eventName"] == "workspaces.create.requested"]
    check(distinct == len(received) >= 2,
          f"event processor re-sends stored request events ({len(received)}x workspaces.create.requested in 11 s: "
          f"the direct send + {len(received) - 1} re-sends, {distinct} distinct ids, {len(runs)} validator runs)")

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
    parser.add_argument("--save-register", type=Path,
                        help="write the registration as the stand-in kept it, trimmed to four functions, here")
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
