"""The lab's Inngest stand-in answers the documented shapes, with a real queue and real run states."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from standin_helpers import EXECUTOR, VALIDATOR

from synap_play.project import collections_path

# The stand-in must answer the very runs query the modules send.
sys.path.insert(0, str(collections_path(Path(__file__).resolve().parents[2])))
from ansible_collections.synap.ops.plugins.module_utils.inngest_runs_api import RUNS_QUERY  # noqa: E402


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def runs_query(first, statuses):
    return RUNS_QUERY % {"first": first, "time_field": "STARTED_AT", "statuses": statuses}


def gql_runs(standin, statuses="RUNNING", first=100, until=None, after=None):
    variables = {"from": "2000-01-01T00:00:00Z", "until": until, "after": after}
    query = {"query": runs_query(first, statuses), "variables": variables}
    status, body = standin.call("POST", "/v0/gql", query, auth=False)[:2]
    assert status == 200
    return body


def test_health_is_json_and_unknown_paths_answer_html(standin):
    assert standin.call("GET", "/health")[:2] == (200, {"status": 200, "message": "OK"})
    for path in ("/api/health", "/api/functions", "/"):
        status, body, content_type = standin.call("GET", path)
        assert status == 200 and content_type.startswith("text/html") and "<html" in body
    assert standin.call("GET", "/v1/prom/metrics")[0] == 501


def test_runs_complete_through_the_registered_app(standin, worker):
    standin.register(worker.url, [VALIDATOR, EXECUTOR])
    [event_id] = standin.send({"name": "entities.create.requested", "data": {"workspaceId": "w1"}})
    done = standin.wait_for(lambda: standin.runs("COMPLETED"), what="a completed run")
    assert len(done) == 1  # the trigger matched twice (exact and glob) but it is one function
    request = worker.requests[0]
    assert request["path"].startswith(f"/api/inngest?fnId=global-validator&runId={done[0]['id']}")
    assert request["body"]["event"]["id"] == event_id
    assert request["body"]["event"]["data"] == {"workspaceId": "w1"}
    assert request["body"]["ctx"] == {"run_id": done[0]["id"], "fn_id": "global-validator", "attempt": 0}
    v1 = standin.call("GET", f"/v1/runs/{done[0]['id']}")[1]
    assert v1["data"]["status"] == "Completed"
    assert v1["data"]["event_id"] == event_id
    assert v1["data"]["output"] == {"ok": True, "fn": "global-validator"}


def test_failing_app_is_retried_then_failed(standin, worker):
    worker.mode = "fail"
    standin.register(worker.url, [VALIDATOR])
    standin.send({"name": "entities.create.requested"})
    [failed] = standin.wait_for(lambda: standin.runs("FAILED"), what="a failed run")
    assert len(worker.requests) == 1 + VALIDATOR["retries"]
    assert [r["body"]["ctx"]["attempt"] for r in worker.requests] == [0, 1, 2]
    assert failed["endedAt"]


def test_hung_app_keeps_runs_running_and_the_queue_fills(start_standin, worker):
    standin = start_standin(inngest_concurrency=2)
    worker.mode = "hang"
    standin.register(worker.url, [VALIDATOR])
    standin.send([{"name": "proposals.update.requested"} for _copy in range(7)])
    standin.wait_for(lambda: len(standin.runs("RUNNING")) == 2, what="two running runs")
    assert standin.queue_depth() == 5
    assert len(standin.runs("QUEUED")) == 5
    # Cancelling a running run frees nothing, but it is CANCELLED at once; a queued one leaves the queue.
    running, queued = standin.runs("RUNNING")[0], standin.runs("QUEUED")[0]
    assert standin.call("POST", f"/v2/runs/{running['id']}/cancel")[:2] == (200, {"data": {"runId": running["id"]}})
    assert standin.call("DELETE", f"/v1/runs/{queued['id']}")[:2] == (200, None)
    assert standin.queue_depth() == 4
    assert standin.call("GET", f"/v1/runs/{running['id']}")[1]["data"]["status"] == "Cancelled"
    # Already ended: 409, and the GraphQL mutation reports an error.
    status, body = standin.call("POST", f"/v2/runs/{running['id']}/cancel")[:2]
    assert status == 409 and body["errors"][0]["message"]
    mutation = {"query": 'mutation { cancelRun(runID: "' + running["id"] + '") { id } }'}
    assert "errors" in standin.call("POST", "/v0/gql", mutation)[1]
    assert standin.call("POST", "/v2/runs/NOPE/cancel")[0] == 404
    other = standin.runs("RUNNING")[0]
    mutation = {"query": 'mutation { cancelRun(runID: "' + other["id"] + '") { id } }'}
    cancelled = standin.call("POST", "/v0/gql", mutation)
    assert cancelled[1]["data"]["cancelRun"]["id"] == other["id"]
    assert cancelled[1]["data"]["cancelRun"]["status"] == "CANCELLED"


def test_graphql_runs_pages_filter_and_count(start_standin, worker):
    standin = start_standin(inngest_concurrency=7)
    worker.mode = "hang"
    standin.register(worker.url, [VALIDATOR])
    standin.send([{"name": "entities.create.requested"} for _copy in range(9)])
    standin.wait_for(lambda: len(standin.runs("RUNNING")) == 7, what="seven running runs")

    seen, after = [], None
    while True:
        body = gql_runs(standin, first=3, after=after)
        runs = body["data"]["runs"]
        assert runs["totalCount"] == 7
        seen += [edge["node"] for edge in runs["edges"]]
        if not runs["pageInfo"]["hasNextPage"]:
            break
        after = runs["pageInfo"]["endCursor"]
    assert len(seen) == 7 and len({n["id"] for n in seen}) == 7
    assert [n["startedAt"] for n in seen] == sorted(n["startedAt"] for n in seen)
    node = seen[0]
    assert node["status"] == "RUNNING" and node["eventName"] == "entities.create.requested"
    assert node["function"] == {"id": node["functionID"], "slug": "synap-global-validator",
                                "name": VALIDATOR["name"]}
    assert node["app"]["externalID"] == "synap"

    # until excludes runs started later; QUEUED runs have no startedAt so a STARTED_AT filter skips them.
    assert gql_runs(standin, until=iso(datetime.now(UTC) - timedelta(hours=1)))["data"]["runs"]["totalCount"] == 0
    assert gql_runs(standin, statuses="QUEUED")["data"]["runs"]["totalCount"] == 0
    assert gql_runs(standin, statuses="BOGUS")["errors"][0]["message"]
    missing_from = {"query": runs_query(10, "RUNNING"), "variables": {}}
    assert "errors" in standin.call("POST", "/v0/gql", missing_from)[1]


def test_v2_runs_pages(start_standin, worker):
    standin = start_standin(inngest_concurrency=1)
    standin.register(worker.url, [VALIDATOR])
    standin.send([{"name": "entities.create.requested"} for _copy in range(5)])
    standin.wait_for(lambda: len(standin.runs("COMPLETED")) == 5, what="five completed runs")
    status, body = standin.call("GET", "/v2/runs?status=COMPLETED&timeField=startedAt&limit=2")[:2]
    assert status == 200 and len(body["data"]) == 2 and body["page"]["hasMore"] and body["page"]["limit"] == 2
    run = body["data"][0]
    assert set(run) == {"id", "function", "app", "status", "queuedAt", "startedAt", "endedAt", "trigger"}
    assert run["trigger"]["eventName"] == "entities.create.requested" and len(run["trigger"]["eventIds"]) == 1
    ids = [r["id"] for r in body["data"]]
    cursor = body["page"]["cursor"]
    while body["page"]["hasMore"]:
        body = standin.call("GET", f"/v2/runs?status=COMPLETED&limit=2&cursor={cursor}")[1]
        ids += [r["id"] for r in body["data"]]
        cursor = body["page"]["cursor"]
    assert len(set(ids)) == 5
    status, body = standin.call("GET", "/v2/runs?status=NOPE")[:2]
    assert status == 400 and body["errors"][0]["code"]
    rerun = standin.call("POST", f"/v2/runs/{ids[0]}/rerun")[1]["data"]["runId"]
    standin.wait_for(lambda: standin.call("GET", f"/v1/runs/{rerun}")[1]["data"]["status"] == "Completed",
                     what="the rerun")


def test_v2_runs_cursor_survives_its_run_changing_status(start_standin, worker):
    standin = start_standin(inngest_concurrency=1)
    worker.mode = "hang"
    standin.register(worker.url, [VALIDATOR])
    standin.send([{"name": "entities.create.requested", "id": f"e{n}"} for n in range(5)])
    standin.wait_for(lambda: len(standin.runs("QUEUED")) == 4, what="four queued runs")
    first = standin.call("GET", "/v2/runs?status=QUEUED&limit=2")[1]
    assert [r["trigger"]["eventIds"] for r in first["data"]] == [["e1"], ["e2"]]
    # The run the cursor points at leaves the QUEUED listing before the next page is read.
    assert standin.call("POST", f"/v2/runs/{first['data'][-1]['id']}/cancel")[0] == 200
    status, second = standin.call("GET", f"/v2/runs?status=QUEUED&limit=2&cursor={first['page']['cursor']}")[:2]
    assert status == 200 and [r["trigger"]["eventIds"] for r in second["data"]] == [["e3"], ["e4"]]
    assert second["page"]["hasMore"] is False
    status, body = standin.call("GET", "/v2/runs?status=QUEUED&cursor=bm9zdWNocnVu")[:2]
    assert status == 400 and body["errors"][0]["code"] == "bad_request"


def test_events_are_deduplicated_by_id_and_listed(start_standin, worker):
    standin = start_standin(inngest_event_key="evk", inngest_signing_key="sk")
    standin.register(worker.url, [VALIDATOR])
    assert standin.send({"name": "entities.create.requested", "id": "same"}) == ["same"]
    assert standin.send([{"name": "entities.create.requested", "id": "same"}]) == ["same"]
    standin.wait_for(lambda: standin.runs("COMPLETED"), what="the run")
    assert len(standin.runs()) == 1

    status, body = standin.call("POST", "/e/wrong", {"name": "a.b.requested"})[:2]
    assert (status, body) == (401, {"status": 401, "error": "Event key not found"})
    status, body = standin.call("POST", "/e/evk", {"data": {}})[:2]
    assert status == 400 and body["error"]

    standin.send([{"name": "workspaces.update.requested", "data": {"n": n}} for n in range(60)])
    status, body = standin.call("GET", "/v1/events?limit=51")[:2]
    assert status == 200 and len(body["data"]) == 51
    newest = body["data"][0]
    assert {"id", "name", "data", "user", "ts", "received_at"} <= set(newest) and newest["data"] == {"n": 59}
    rest = standin.call("GET", f"/v1/events?limit=51&cursor={body['data'][-1]['id']}")[1]["data"]
    assert len(rest) == 10 and rest[-1]["id"] == "same"
    only = standin.call("GET", "/v1/events?name=entities.create.requested")[1]["data"]
    assert [e["id"] for e in only] == ["same"]
    later = iso(datetime.now(UTC) + timedelta(minutes=1))
    assert standin.call("GET", f"/v1/events?received_after={later}")[1]["data"] == []
    old_window = iso(datetime.now(UTC) - timedelta(hours=2))
    assert standin.call("GET", f"/v1/events?received_before={old_window}")[1]["data"] == []
    assert standin.call("GET", "/v1/events?limit=52")[0] == 400

    # The signing key guards /v1 and /v2, not /health, /metrics or /v0/gql.
    assert standin.call("GET", "/v1/events", auth=False)[0] == 401
    assert standin.call("GET", "/v2/runs", auth=False)[0] == 401
    assert standin.call("GET", "/metrics", auth=False)[0] == 200


def test_functions_of_an_app(standin, worker):
    standin.register(worker.url, [VALIDATOR, EXECUTOR])
    status, body = standin.call("GET", "/v1/apps/synap/functions")[:2]
    assert status == 200 and [f["id"] for f in body] == ["synap-global-validator", "synap-entities-executor"]
    assert set(body[0]) == {"internal_id", "env_id", "app_id", "id", "name", "config", "created_at", "archived_at"}
    status, v2 = standin.call("GET", "/v2/apps/synap/functions")[:2]
    first = v2["data"][0]
    assert first["slug"] == "synap-global-validator" and first["isPaused"] is False
    assert first["triggers"] == VALIDATOR["triggers"] and first["app"]["id"] == body[0]["app_id"]
    assert standin.call("GET", f"/v2/apps/{body[0]['app_id']}/functions")[1] == v2
    assert standin.call("GET", "/v1/apps/nope/functions")[0] == 404
    # Re-registering replaces the function list and keeps ids.
    standin.register(worker.url, [VALIDATOR])
    again = standin.call("GET", "/v1/apps/synap/functions")[1]
    assert [f["internal_id"] for f in again] == [body[0]["internal_id"]]


def test_bulk_cancellation_does_not_work(standin):
    assert standin.call("POST", "/v1/cancellations", {"app_id": "synap", "function_id": "x"})[0] == 500
    assert standin.call("POST", "/v1/cancellations")[0] == 404
