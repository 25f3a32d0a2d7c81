# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Inngest's function runs as the synap.ops modules read and cancel them: the GraphQL listing, GET /v2/runs (which
has each run's triggering events), one run by id, and cancelling one, all through the one client of inngest.py."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import quote

from ansible_collections.synap.ops.plugins.module_utils.inngest import (
    InngestError,
    rfc3339,
    seconds_since,
    utc_now,
)

RUN_STATUSES = ["QUEUED", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "SKIPPED"]
ACTIVE_RUN_STATUSES = ("QUEUED", "RUNNING")
RUNS_PAGE_SIZE = 100
GRAPHQL_TIME_FIELDS = {"queued_at": "QUEUED_AT", "started_at": "STARTED_AT", "ended_at": "ENDED_AT"}
V2_TIME_FIELDS = {"queued_at": "queuedAt", "started_at": "startedAt", "ended_at": "endedAt"}

RUNS_QUERY = """query($from: Time!, $until: Time, $after: String) {
  runs(first: %(first)d, after: $after, orderBy: [{field: %(time_field)s, direction: ASC}],
       filter: {from: $from, until: $until, timeField: %(time_field)s, status: [%(statuses)s]}) {
    edges {
      cursor
      node { id status queuedAt startedAt endedAt functionID function { slug name } app { externalID } eventName }
    }
    pageInfo { hasNextPage endCursor }
    totalCount
  }
}"""


class InngestRuns:
    """The runs of the Inngest server ``client`` (an InngestClient) speaks to."""

    def __init__(self, client):
        self.client = client

    def runs(self, statuses, start, until=None, time_field="queued_at"):
        """Every run (all GraphQL pages) with one of ``statuses`` whose ``time_field`` is in [start, until)."""
        query = RUNS_QUERY % {"first": RUNS_PAGE_SIZE, "time_field": GRAPHQL_TIME_FIELDS[time_field],
                              "statuses": ", ".join(statuses)}
        variables = {"from": rfc3339(start), "until": rfc3339(until) if until else None, "after": None}
        runs, seen_cursors = [], set()
        while True:
            status, body = self.client.request("POST", "/v0/gql", body={"query": query, "variables": variables},
                                               authenticated=False)
            if not isinstance(body, dict):
                raise InngestError(f"POST /v0/gql at {self.client.shown_url} did not answer a JSON object",
                                   kind="not_understood")
            if body.get("errors"):
                raise InngestError("the GraphQL runs query at {} failed: {}".format(
                    self.client.shown_url, _first_error(body["errors"])), kind="query_failed")
            connection = (body.get("data") or {}).get("runs") or {}
            runs.extend(_run_from_node(edge["node"]) for edge in connection.get("edges") or [])
            page = connection.get("pageInfo") or {}
            cursor = page.get("endCursor")
            if not page.get("hasNextPage") or not cursor or cursor in seen_cursors:
                return runs
            seen_cursors.add(cursor)
            variables["after"] = cursor

    def v2_runs(self, status, start, until=None, time_field="queued_at"):
        """Yield the entries of ``GET /v2/runs`` for one ``status`` over every page.

        The GraphQL runs query has no trigger; this listing has ``trigger: {eventIds, eventName}``.
        """
        query = {"status": status, "from": rfc3339(start), "timeField": V2_TIME_FIELDS[time_field],
                 "limit": RUNS_PAGE_SIZE}
        if until:
            query["until"] = rfc3339(until)
        seen_cursors = set()
        while True:
            status_code, body = self.client.request("GET", "/v2/runs", query=query)
            entries = body.get("data") if isinstance(body, dict) else None
            if not isinstance(entries, list):
                raise InngestError(f"GET /v2/runs at {self.client.shown_url} did not answer {{\"data\": [...]}}",
                                   kind="not_understood")
            yield from entries
            page = body.get("page") or {}
            cursor = page.get("cursor")
            if not page.get("hasMore") or not cursor or cursor in seen_cursors:
                return
            seen_cursors.add(cursor)
            query["cursor"] = cursor

    def attach_event_ids(self, runs, start, until=None, time_field="queued_at"):
        """Set ``event_ids`` on each of ``runs`` (the runs of one GraphQL listing over the same window).

        Each status is read from /v2/runs until every run asked for is found; a run that changed status in
        between is asked for by id (``GET /v1/runs/{id}`` has its ``event_id``).
        """
        missing = {run["id"]: run for run in runs}
        for status in sorted({run["status"] for run in runs}):
            wanted = {run_id for run_id, run in missing.items() if run["status"] == status}
            for entry in self.v2_runs(status, start, until, time_field):
                if entry.get("id") in wanted:
                    missing.pop(entry["id"])["event_ids"] = list((entry.get("trigger") or {}).get("eventIds") or [])
                    wanted.discard(entry["id"])
                    if not wanted:
                        break
        for run_id, run in missing.items():
            event_id = self.run_event_id(run_id)
            run["event_ids"] = [event_id] if event_id else []
        return runs

    def event_ids_of_runs(self, status, start, until=None, time_field="ended_at"):
        """Unique ids of the events that triggered runs with ``status`` in the window, oldest run first."""
        event_ids = {}
        for entry in self.v2_runs(status, start, until, time_field):
            for event_id in (entry.get("trigger") or {}).get("eventIds") or []:
                event_ids.setdefault(event_id, None)
        return list(event_ids)

    def stuck_runs(self, threshold, window, function=None, now=None):
        """RUNNING runs started more than ``threshold`` seconds ago (and within ``window`` seconds)."""
        now = now or utc_now()
        runs = self.runs(["RUNNING"], now - timedelta(seconds=window), now - timedelta(seconds=threshold),
                         time_field="started_at")
        for run in runs:
            run["running_seconds"] = seconds_since(run["started_at"], now)
        if function:
            runs = [r for r in runs if function_matches(r, function)]
        return runs

    def run_status(self, run_id):
        """The GraphQL-style status of one run (GET /v1/runs/{id}), or None if the server does not know it."""
        data = self._run_data(run_id)
        if data is None:
            return None
        value = (data.get("status") or "").upper()
        return "QUEUED" if value == "SCHEDULED" else value

    def run_event_id(self, run_id):
        """The id of the event that triggered one run (GET /v1/runs/{id}), or None if the server does not know it."""
        data = self._run_data(run_id)
        return None if data is None else data.get("event_id")

    def _run_data(self, run_id):
        """The ``data`` of GET /v1/runs/{id} (``{}`` when it has none), or None if the server does not know the run."""
        known, body = self.client.get_unless_missing("/v1/runs/{}".format(quote(run_id, safe="")))
        return ((body or {}).get("data") or {}) if known else None

    def cancel_run(self, run_id):
        """Cancel one run: ``"cancelled"``, ``"already_ended"`` (409: done already) or ``"not_found"``."""
        try:
            self.client.request("POST", "/v2/runs/{}/cancel".format(quote(run_id, safe="")))
        except InngestError as exc:
            if exc.status == 409:
                return "already_ended"
            if exc.status == 404:
                return "not_found"
            raise
        return "cancelled"


def function_matches(run, function):
    """A run belongs to ``function`` given as its slug (``synap-global-validator``), id or name."""
    slug = run.get("function_slug") or ""
    return function in (slug, run.get("function_name")) or slug.endswith("-" + function)


def describe_run(run):
    parts = [run.get("function_slug") or run.get("function_name") or "unknown function"]
    if run.get("running_seconds") is not None:
        parts.append(f"running {run['running_seconds']:.0f} s")
    if run.get("event_name"):
        parts.append(run["event_name"])
    return "{} ({})".format(run["id"], ", ".join(parts))


def _run_from_node(node):
    return {
        "id": node.get("id"),
        "status": node.get("status"),
        "queued_at": node.get("queuedAt"),
        "started_at": node.get("startedAt"),
        "ended_at": node.get("endedAt"),
        "function_slug": (node.get("function") or {}).get("slug"),
        "function_name": (node.get("function") or {}).get("name"),
        "app": (node.get("app") or {}).get("externalID"),
        "event_name": node.get("eventName"),
    }


def _first_error(errors):
    first = errors[0] if isinstance(errors, list) and errors else errors
    return first.get("message") if isinstance(first, dict) else first
