"""Direct access to a running lab's PostgreSQL, Inngest and API: what the fault machinery, `lab reset` and the lab's
tests use to cause and see a fault without going through synap-play's own modules."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import psycopg

from synap_play.lab import LabError

# The gateway publishes the api at API_URL and spreads requests over its replicas (`--scale api=N`).
API_URL = "http://127.0.0.1:3000"
INNGEST_URL = "http://127.0.0.1:8288"
HUB_URL = "http://127.0.0.1:3100"
# The lab's own throwaway credentials, the same values compose.yaml and inventory/lab carry.
DATABASE_URL = "postgresql://synap:lab-db-pass-7c41@127.0.0.1:25432/synap"
ADMIN_DATABASE_URL = "postgresql://postgres@127.0.0.1:25432/synap"
INNGEST_EVENT_KEY = "lab-event-key-3f1a"
INNGEST_SIGNING_KEY = "signkey-lab-8d2f4c1e6a7b9053"


def sql(statement: str, params=(), admin: bool = True, timeout: float = 10, database: str = "synap"):
    """Run one statement on the lab database (or another DATABASE of its cluster); rows or [] for statements
    without a result."""
    url = ADMIN_DATABASE_URL if admin else DATABASE_URL
    try:
        with psycopg.connect(url, dbname=database, autocommit=True, connect_timeout=timeout,
                             application_name="synap-lab-cli") as conn:
            # No parameters: a % in the statement (the seed's) is SQL, not a placeholder.
            cursor = conn.execute(statement, params or None)
            return cursor.fetchall() if cursor.description else []
    except psycopg.Error as error:
        raise LabError(f"lab database: {str(error).strip().splitlines()[0]}") from error


def review_workspaces(count: int) -> list[tuple[str, str]]:
    """(workspace id, owner) of up to COUNT workspaces whose AI changes need review, oldest first: each AI request
    there makes a proposal. Both backends' schemas keep the setting in workspaces.settings."""
    rows = sql("SELECT id::text, owner_id FROM workspaces WHERE settings->>'aiAutoApprove' = 'false' "
               "ORDER BY created_at LIMIT %s", (count,))
    if not rows:
        raise LabError("the lab has no workspace that needs review; run 'synap-play lab reset'")
    return rows


def http(method: str, url: str, body=None, headers: dict | None = None, timeout: float = 10):
    """(status, the body parsed as JSON or else as text); LabError when nothing answers."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    except OSError as error:
        raise LabError(f"{url}: {error}") from error
    try:
        return status, json.loads(raw or b"null")
    except ValueError:
        return status, raw.decode(errors="replace")


def send_events(events: list[dict]) -> None:
    status, _ = http("POST", f"{INNGEST_URL}/e/{INNGEST_EVENT_KEY}", events)
    if status != 200:
        raise LabError(f"the lab's Inngest refused events: HTTP {status}")


def functions_registered() -> bool:
    try:
        status, answer = http("GET", f"{INNGEST_URL}/v1/apps/synap/functions",
                              headers={"Authorization": f"Bearer {INNGEST_SIGNING_KEY}"}, timeout=3)
    except LabError:
        return False
    return status == 200 and bool(answer)


def api_answers() -> bool:
    status, _ = http("GET", f"{API_URL}/health", timeout=3)
    return status == 200


def wait_for(what: str, condition: Callable[[], bool], timeout: float = 60) -> None:
    """Until CONDITION holds (a LabError meanwhile counts as not yet), or LabError naming WHAT after TIMEOUT s."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except LabError:
            pass
        if time.monotonic() > deadline:
            raise LabError(f"timed out after {int(timeout)} s waiting for {what}")
        time.sleep(0.5)
