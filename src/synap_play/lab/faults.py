"""The ten runbook faults the lab can inject. Each really happens (a commit, a stopped container, held locks,
leaked connections, an event storm...) and each clear undoes it the way an operator would. On Synap's real backend
a fault happens through the real application where it has a counterpart there (the injections below that differ
ask runs_real_backend), and is refused where it has none (standin_only says why)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from synap_play.lab import LabError, access, backend, real_app
from synap_play.lab.access import API_URL, INNGEST_URL
from synap_play.lab.stack import Lab

BAD_DEPLOY_MESSAGE = "release 2026.11.3: show plan and seats on the workspace overview"
REAL_BAD_DEPLOY_MESSAGE = "release 2026.12.1: log the workspace each query is for"
LATENCY_INDEX = "entities_workspace_id_idx"
REAL_LATENCY_INDEX = "idx_entities_workspace_id"


@dataclass(frozen=True)
class Fault:
    name: str
    summary: str
    inject: Callable[[Lab], None]
    clear: Callable[[Lab], None]
    active: Callable[[Lab], bool]
    # The alert it fires in the lab's Prometheus (monitoring/README.md), and what must keep arriving meanwhile for
    # the alert to see it: "requests" (`synap-play lab load`), "events" (AI requests the hung worker cannot take),
    # or nothing.
    alert: str
    traffic: str = ""
    # Why the fault cannot happen on Synap's real backend; empty when it can.
    standin_only: str = ""

    def possible(self, lab: Lab) -> bool:
        """Whether it can happen on LAB: everywhere but on the real backend when it has no counterpart there."""
        return not (self.standin_only and runs_real_backend(lab))


def runs_real_backend(lab: Lab) -> bool:
    running = lab.running_backend()
    return running is not None and running.kind == backend.REAL


def _running(lab: Lab, service: str) -> bool:
    return lab.services().get(service, {}).get("state") == "running"


def _recorded(lab: Lab) -> set[str]:
    path = lab.state_dir / "faults.json"
    return set(json.loads(path.read_text())) if path.is_file() else set()


def _record(lab: Lab, name: str, active: bool) -> None:
    names = _recorded(lab)
    names = names | {name} if active else names - {name}
    lab.state_dir.mkdir(parents=True, exist_ok=True)
    (lab.state_dir / "faults.json").write_text(json.dumps(sorted(names)))


def _sessions(application_name: str) -> int:
    return access.sql("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", (application_name,))[0][0]


def _terminate(application_name: str) -> None:
    access.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
               (application_name,))


def ai_requests(count: int) -> list[dict]:
    """AI entity requests from workspace owners whose workspaces need review (the proposal path), one workspace
    after the other."""
    rows = access.review_workspaces(count)
    return [{"name": "entities.create.requested",
             "data": {"workspace_id": workspace_id, "user_id": owner, "entity_type": "note",
                      "title": f"AI note {index}", "source": "ai", "target_id": f"lab-{time.time_ns()}-{index}"},
             "user": {"id": owner}}
            for index, (workspace_id, owner) in ((index, rows[index % len(rows)]) for index in range(count))]


def request_validations(lab: Lab, count: int) -> None:
    """COUNT AI requests that global-validator must review: events to Inngest for the stand-ins, proposals.submit
    through the API for the real backend (which sends the events itself)."""
    if runs_real_backend(lab):
        real_app.submit_ai_proposals(count)
    else:
        access.send_events(ai_requests(count))


# --- bad-deploy ------------------------------------------------------------------------------------------

def _bad_deploy_active(lab: Lab) -> bool:
    return lab.deploy.exists() and lab.deploy.git("log", "-1", "--format=%s") in (BAD_DEPLOY_MESSAGE,
                                                                                  REAL_BAD_DEPLOY_MESSAGE)


def _inject_bad_deploy(lab: Lab) -> None:
    if not _bad_deploy_active(lab):
        if runs_real_backend(lab):
            _write_bad_real_release(lab)
            message = REAL_BAD_DEPLOY_MESSAGE
        else:
            (lab.deploy.path / "release.py").write_text((lab.lab_dir / "deploy" / "release-bad-deploy.py").read_text())
            message = BAD_DEPLOY_MESSAGE
        lab.deploy.git("commit", "-q", "-a", "-m", message)
    lab.progress("deploying the new release (recreating api)")
    lab.recreate("api")
    lab.wait_healthy(["api"])


# The real backend's bad release: every tRPC query is logged with the workspace it is for, which assumes every
# query names one. Those that do not (health.ready, a user's own lists) now fail with a TypeError: 500.
REAL_RELEASE_FILE = "dist/index.js"
REAL_RELEASE_ANCHOR = 'app.use("/trpc/*", async (c, next) => {\n    const path = c.req.path;\n'
REAL_RELEASE_CHANGE = """    // Which workspace each query is for, in the request log.
    if (c.req.method === "GET") {
        const input = JSON.parse(c.req.query("input") ?? "{}");
        apiLogger.info({ path, workspace: input.json.workspaceId.slice(0, 8) }, "query");
    }
"""


def _write_bad_real_release(lab: Lab) -> None:
    path = lab.deploy.path / REAL_RELEASE_FILE
    code = path.read_text(encoding="utf-8")
    if REAL_RELEASE_ANCHOR not in code:
        raise LabError(f"bad-deploy: {REAL_RELEASE_FILE} of this backend has no tRPC middleware to change "
                       "(another revision of Synap's backend?)")
    path.write_text(code.replace(REAL_RELEASE_ANCHOR, REAL_RELEASE_ANCHOR + REAL_RELEASE_CHANGE, 1), encoding="utf-8")


def _clear_bad_deploy(lab: Lab) -> None:
    if _bad_deploy_active(lab):
        lab.deploy.git("revert", "--no-edit", "HEAD")
    lab.progress("rolling back (recreating api)")
    lab.recreate("api")
    lab.wait_healthy(["api"])


# --- external-down ---------------------------------------------------------------------------------------

def _inject_external_down(lab: Lab) -> None:
    lab.compose("stop", "hub")


def _clear_external_down(lab: Lab) -> None:
    lab.start_service("hub")
    lab.wait_healthy(["hub"])
    # A mitigation may have switched the integration off; the healthy lab has it on.
    if _running(lab, "api"):
        access.http("POST", f"{API_URL}/admin/integrations/hub-protocol", {"enabled": True})


# --- queue-backup ----------------------------------------------------------------------------------------

def _queue_depth() -> float:
    status, text = access.http("GET", f"{INNGEST_URL}/metrics", timeout=3)
    for line in str(text).splitlines():
        if line.startswith("inngest_queue_depth"):
            return float(line.split()[-1])
    return 0.0


def _inject_queue_backup(lab: Lab) -> None:
    lab.start_service("event-storm")
    access.wait_for("the queue to back up past 100", lambda: _queue_depth() > 100, timeout=60)


def _clear_queue_backup(lab: Lab) -> None:
    lab.compose("rm", "--stop", "--force", "event-storm")
    # The stand-in keeps its queue in memory: a restart drops the storm's backlog.
    lab.compose("restart", "inngest")
    lab.wait_healthy(["inngest"])
    access.wait_for("the jobs worker to register again", access.functions_registered, timeout=30)


# --- worker-stuck ----------------------------------------------------------------------------------------

def _inject_worker_stuck(lab: Lab) -> None:
    if runs_real_backend(lab):
        # The jobs instance's Node process stops (SIGSTOP, as a process wedged in a tight loop or a debugger would):
        # Inngest's calls to it are accepted by the kernel and never answered, so their runs stay RUNNING.
        lab.compose("exec", "-T", "jobs", "pkill", "-STOP", "-f", "node /srv/deploy/dist/index.js")
    else:
        lab.compose("kill", "--signal", "SIGUSR1", "jobs")
    request_validations(lab, 8)


def _clear_worker_stuck(lab: Lab) -> None:
    lab.compose("restart", "jobs")
    lab.wait_healthy(["jobs"])


# --- db-slow ---------------------------------------------------------------------------------------------

def _inject_db_slow(lab: Lab) -> None:
    lab.start_service("reports")
    access.wait_for("the long queries to start", lambda: _sessions("synap-reports") >= 3, timeout=30)


def _clear_db_slow(lab: Lab) -> None:
    _terminate("synap-reports")
    lab.compose("rm", "--stop", "--force", "reports")


# --- postgres-down ---------------------------------------------------------------------------------------

def _inject_postgres_down(lab: Lab) -> None:
    lab.compose("stop", "postgres")


def _clear_postgres_down(lab: Lab) -> None:
    lab.start_service("postgres")
    lab.wait_healthy(["postgres"])
    access.wait_for("the api to reach the database again", access.api_answers, timeout=60)


# --- connection-exhaustion -------------------------------------------------------------------------------

def _max_client_connections() -> int:
    row = access.sql("SELECT current_setting('max_connections')::int - current_setting('superuser_reserved_connections')"
                     "::int")
    return row[0][0]


def _client_sessions() -> int:
    # Every role's sessions fill the slots, the superusers' too (the exporter, this check): the application role is
    # refused once fewer than the reserved slots are free.
    return access.sql("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'")[0][0]


# On the real backend, how far above max_connections the api's pool and the piled-up requests go.
ABOVE_MAX_CONNECTIONS = 20


def _inject_connection_exhaustion(lab: Lab) -> None:
    limit = _max_client_connections()
    if runs_real_backend(lab):
        # The real pool (postgres.js) opens a connection per waiting query up to DB_POOL_SIZE: set above
        # max_connections, requests piling up behind a held row lock take every slot PostgreSQL has.
        more = str(access.sql("SELECT current_setting('max_connections')::int")[0][0] + ABOVE_MAX_CONNECTIONS)
        lab.progress("recreating the api with a pool larger than max_connections")
        lab.recreate("api", settings={"LAB_API_DB_POOL_SIZE": more})
        lab.start_service("pile-up", settings={"LAB_PILE_UP_REQUESTS": more})
    else:
        status, answer = access.http("POST", f"{API_URL}/admin/faults/connection-exhaustion")
        if status != 200:
            raise LabError(f"the api did not start leaking connections: HTTP {status}")
    access.wait_for("the api's pool to exhaust max_connections", lambda: _client_sessions() >= limit, timeout=90)
    _record(lab, "connection-exhaustion", True)


def _clear_connection_exhaustion(lab: Lab) -> None:
    if runs_real_backend(lab):
        lab.compose("rm", "--stop", "--force", "pile-up")
        _terminate("synap-admin")
        lab.recreate("api")  # with Synap's default pool size again
    else:
        lab.compose("restart", "api")
    lab.wait_healthy(["api"])
    _record(lab, "connection-exhaustion", False)


def _connection_exhaustion_active(lab: Lab) -> bool:
    return "connection-exhaustion" in _recorded(lab)


# --- connection-leak -------------------------------------------------------------------------------------

def _inject_connection_leak(lab: Lab) -> None:
    before = _sessions("synap-jobs")
    lab.compose("kill", "--signal", "SIGUSR2", "jobs")
    access.wait_for("the leaked connections", lambda: _sessions("synap-jobs") >= before + 10, timeout=30)
    _record(lab, "connection-leak", True)


def _clear_connection_leak(lab: Lab) -> None:
    # The leaked sessions live in the worker process; restarting it closes them all.
    lab.compose("restart", "jobs")
    lab.wait_healthy(["jobs"])
    _record(lab, "connection-leak", False)


def _connection_leak_active(lab: Lab) -> bool:
    return "connection-leak" in _recorded(lab)


# --- latency ---------------------------------------------------------------------------------------------

def _latency_index(lab: Lab) -> str:
    # Synap's real schema names the index its views' entity queries use idx_entities_workspace_id.
    return REAL_LATENCY_INDEX if runs_real_backend(lab) else LATENCY_INDEX


def _index_present(lab: Lab) -> bool:
    return bool(access.sql("SELECT 1 FROM pg_indexes WHERE tablename = 'entities' AND indexname = %s",
                           (_latency_index(lab),)))


def _inject_latency(lab: Lab) -> None:
    # A migration that "cleaned up" an index the workspace overview's per-type counts (the real backend: its views'
    # entity queries) depend on.
    access.sql(f"DROP INDEX IF EXISTS {_latency_index(lab)}", admin=False)


def _clear_latency(lab: Lab) -> None:
    access.sql(f"CREATE INDEX IF NOT EXISTS {_latency_index(lab)} ON entities (workspace_id)", admin=False, timeout=60)


# --- proposals-stuck -------------------------------------------------------------------------------------

def _inject_proposals_stuck(lab: Lab) -> None:
    lab.start_service("proposal-admin")
    access.wait_for("the row locks on proposals", lambda: access.sql(
        "SELECT 1 FROM pg_stat_activity WHERE application_name = 'synap-admin' AND state = 'idle in transaction'"),
        timeout=30)
    # New AI requests now queue behind the locks in the validator's create-proposal step.
    request_validations(lab, 6)


def _clear_proposals_stuck(lab: Lab) -> None:
    _terminate("synap-admin")
    lab.compose("rm", "--stop", "--force", "proposal-admin")


FAULTS: dict[str, Fault] = {
    fault.name: fault
    for fault in (
        Fault("bad-deploy", "a new commit in the deploy checkout makes the api fail a share of requests",
              _inject_bad_deploy, _clear_bad_deploy, _bad_deploy_active, "HighErrorRate", "requests"),
        Fault("external-down", "the Hub Protocol service the api's search depends on is stopped",
              _inject_external_down, _clear_external_down, lambda lab: not _running(lab, "hub"),
              "HighErrorRate", "requests",
              standin_only="the real backend calls no external service while answering requests (its Hub Protocol "
                           "client serves the Intelligence Hub's webhooks, and the validator's broadcast swallows "
                           "failures)"),
        Fault("queue-backup", "an event storm (bulk import) floods Inngest: hundreds of queued runs",
              _inject_queue_backup, _clear_queue_backup, lambda lab: _running(lab, "event-storm"),
              "WorkerQueueBackup"),
        Fault("worker-stuck", "the jobs worker hangs: its runs stay RUNNING",
              _inject_worker_stuck, _clear_worker_stuck, lambda lab: "worker-stuck" in _recorded(lab),
              "WorkerQueueBackup", "events"),
        Fault("db-slow", "reporting queries run for an hour and hold on",
              _inject_db_slow, _clear_db_slow, lambda lab: _running(lab, "reports"), "PostgresSlowQueries"),
        Fault("postgres-down", "the postgres container is stopped",
              _inject_postgres_down, _clear_postgres_down, lambda lab: not _running(lab, "postgres"),
              "DatabaseConnectionFailure"),
        Fault("connection-exhaustion", "the api's pool takes connections until max_connections is reached "
              "(on the real backend: a pool larger than max_connections, requests piling up behind a held row)",
              _inject_connection_exhaustion, _clear_connection_exhaustion, _connection_exhaustion_active,
              "PostgresConnectionPoolExhausted"),
        Fault("connection-leak", "the jobs worker leaves idle connections open past the idle threshold",
              _inject_connection_leak, _clear_connection_leak, _connection_leak_active,
              "PostgresConnectionLeak",
              standin_only="the real backend's pool (postgres.js) holds at most DB_POOL_SIZE connections and closes "
                           "one idle for 20 s; leaking one needs a change to its code"),
        Fault("latency", "a missing index turns the overview's per-type counts into sequential scans",
              _inject_latency, _clear_latency, lambda lab: not _index_present(lab), "ElevatedLatency", "requests"),
        Fault("proposals-stuck", "a stalled admin transaction holds row locks on pending proposals; "
              "the validator fails", _inject_proposals_stuck, _clear_proposals_stuck,
              lambda lab: _running(lab, "proposal-admin"), "ProposalSystemFailure"),
    )
}


def get(name: str) -> Fault:
    try:
        return FAULTS[name]
    except KeyError:
        raise LabError(f"unknown fault {name!r}; 'synap-play lab faults' lists the ten") from None


def inject(lab: Lab, name: str) -> None:
    fault = get(name)
    if not fault.possible(lab):
        raise LabError(f"{name} has no counterpart on Synap's real backend: {fault.standin_only}; bring the lab up "
                       f"with {backend.CHOICE_ENV}=standin for it")
    fault.inject(lab)
    _record(lab, name, True)


def clear(lab: Lab, name: str) -> None:
    fault = get(name)
    if fault.possible(lab):  # one that cannot happen here is not in effect
        fault.clear(lab)
    _record(lab, name, False)


def active(lab: Lab) -> list[str]:
    """Faults in effect now: the ones the lab can see, plus the ones recorded as injected."""
    found = []
    for fault in FAULTS.values():
        if not fault.possible(lab):
            continue
        try:
            if fault.active(lab) or fault.name in _recorded(lab):
                found.append(fault.name)
        except LabError:
            # Checks that need the database cannot run while it is down; the recorded state still counts.
            if fault.name in _recorded(lab):
                found.append(fault.name)
    return found
