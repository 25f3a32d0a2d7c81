"""synap.ops Inngest modules against the running stand-in: check mode, real run, and run again."""

from __future__ import annotations

import json
import socket
import time

from standin_helpers import EXECUTOR, VALIDATOR

SIGNING_KEY = "signkey-7f3a9c"
EVENT_KEY = "eventkey-51b2d0"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_no_secrets(*results):
    for result in results:
        text = json.dumps(result)
        assert SIGNING_KEY not in text and EVENT_KEY not in text


def hang_runs(standin, worker, count, running=None):
    """``count`` runs of which ``running`` (default all) stay RUNNING, because the worker never answers."""
    running = count if running is None else running
    worker.mode = "hang"
    standin.register(worker.url, [VALIDATOR, EXECUTOR])
    standin.send([{"name": "entities.create.requested", "data": {"n": n}} for n in range(count)])
    return standin.wait_for(lambda: len(standin.runs("RUNNING")) >= running and standin.runs("RUNNING"),
                            what=f"{running} running runs")


def test_info_reports_health_queue_functions_and_stuck_runs(module, start_standin, worker):
    standin = start_standin(inngest_concurrency=2, inngest_signing_key=SIGNING_KEY)
    hang_runs(standin, worker, 5, running=2)
    time.sleep(1.2)
    args = {"url": standin.url, "signing_key": SIGNING_KEY, "stuck_threshold": 1}
    result = module("inngest_info", args)
    assert result["changed"] is False and result["healthy"] is True and result["failures"] == {}
    assert result["reachable"] is True and result["failure"] is None
    assert result["queue_depth"] == 3
    assert [f["slug"] for f in result["functions"]] == ["synap-global-validator", "synap-entities-executor"]
    assert result["functions"][0]["triggers"] == ["entities.create.requested", "*.*.requested"]
    assert result["run_counts"] == {"QUEUED": 3, "RUNNING": 2}
    assert result["stuck_count"] == 2
    stuck = result["stuck_runs"][0]
    assert stuck["status"] == "RUNNING" and stuck["running_seconds"] >= 1
    assert stuck["function_slug"] == "synap-global-validator"
    sent = {e["id"] for e in standin.call("GET", "/v1/events")[1]["data"]}
    assert all(len(run["event_ids"]) == 1 and run["event_ids"][0] in sent
               for run in result["runs"] + result["stuck_runs"])
    assert result["msg"].startswith("Inngest healthy: queue depth 3, 2 functions (synap), 3 QUEUED, 2 RUNNING, "
                                    "2 stuck > 1 s")
    checked = module("inngest_info", args, check=True)
    assert checked["changed"] is False and checked["run_counts"] == result["run_counts"]
    assert [r["id"] for r in checked["stuck_runs"]] == [r["id"] for r in result["stuck_runs"]]
    # A longer threshold: nothing is stuck yet.
    assert module("inngest_info", {**args, "stuck_threshold": 3600, "gather": ["runs"]})["stuck_count"] == 0
    # A wrong key is a finding per section, never a failure, and never echoed.
    wrong = module("inngest_info", {**args, "signing_key": "not-the-key"})
    assert not wrong.get("failed") and wrong["healthy"] is True
    assert "HTTP 401" in wrong["failures"]["functions"] and "not-the-key" not in json.dumps(wrong)
    assert wrong["reachable"] is False and wrong["failure"] == "auth_failed"
    assert wrong["functions"] is None and wrong["app_registered"] is None and wrong["queue_depth"] == 3
    assert_no_secrets(result, wrong)


def test_info_lists_the_events_of_failed_runs_over_pages_and_they_replay(module, start_standin, worker):
    standin = start_standin(inngest_concurrency=8, inngest_signing_key=SIGNING_KEY, inngest_event_key=EVENT_KEY)
    standin.register(worker.url, [{**VALIDATOR, "retries": 0}])
    worker.mode = "fail"  # the worker answers 500: every run ends FAILED
    failing = standin.send([{"name": "entities.create.requested", "id": f"bad-{n}"} for n in range(105)])
    standin.wait_for(lambda: len(standin.runs("FAILED")) == 105, what="105 failed runs")
    worker.mode = "ok"
    [good] = standin.send([{"name": "entities.create.requested", "id": "good-1"}])
    standin.wait_for(lambda: len(standin.runs("COMPLETED")) == 1, what="a completed run")

    keys = {"url": standin.url, "signing_key": SIGNING_KEY}
    args = {**keys, "gather": ["runs"], "run_statuses": ["FAILED", "COMPLETED"], "max_listed": 5}
    result = module("inngest_info", args)
    assert result["failures"] == {} and result["run_counts"] == {"FAILED": 105, "COMPLETED": 1}
    assert sorted(result["failed_event_ids"]) == sorted(failing)  # more than one /v2/runs page
    assert good not in result["failed_event_ids"]
    assert len(result["runs"]) == 5
    assert all(len(run["event_ids"]) == 1 and run["event_ids"][0] in failing for run in result["runs"])
    assert "105 events behind FAILED runs" in result["msg"]
    checked = module("inngest_info", args, check=True)
    assert checked["changed"] is False and checked["failed_event_ids"] == result["failed_event_ids"]
    assert module("inngest_info", {**keys, "gather": ["runs"]})["failed_event_ids"] is None

    # The playbook's next step: replay those events as new ones; with a working worker their runs complete.
    replay_args = {**keys, "event_key": EVENT_KEY, "replay_ids": result["failed_event_ids"][:3],
                   "replay_suffix": "INC-9"}
    replayed = module("inngest_event", replay_args)
    assert replayed["changed"] is True
    assert replayed["sent_ids"] == [f"{event_id}-INC-9" for event_id in result["failed_event_ids"][:3]]
    standin.wait_for(lambda: len(standin.runs("COMPLETED")) == 4, what="runs of the three replays")
    assert module("inngest_event", replay_args)["changed"] is False
    assert_no_secrets(result, checked, replayed)


def test_info_html_trap_and_unreachable_are_findings(module, standin):
    trap = module("inngest_info", {"url": standin.url + "/api"})
    assert not trap.get("failed") and trap["reachable"] is False and trap["healthy"] is False
    assert trap["failure"] == "not_understood" and trap["queue_depth"] is None and trap["stuck_count"] is None
    assert "HTML page" in trap["error"] and "/api/health trap" in trap["msg"]
    port = free_port()
    gone = module("inngest_info", {"url": f"http://127.0.0.1:{port}"})
    assert not gone.get("failed") and gone["reachable"] is False and gone["healthy"] is None
    assert gone["failure"] == "refused"
    assert gone["msg"].startswith(f"Inngest at http://127.0.0.1:{port} unreachable (refused): cannot reach Inngest at")


def test_info_counts_recent_events_by_name_over_pages(module, standin, worker):
    standin.register(worker.url, [VALIDATOR])
    standin.send([{"name": "entities.create.requested", "data": {"n": n}} for n in range(70)])
    standin.send([{"name": "proposals.update.requested"} for _copy in range(5)])
    standin.send([{"name": "entities.create.validated"} for _copy in range(3)])
    result = module("inngest_info", {"url": standin.url, "gather": ["events"], "event_pattern": "*.requested",
                                     "max_listed": 10})
    assert result["event_counts"] == {"entities.create.requested": 70, "proposals.update.requested": 5}
    assert result["events_matched"] == 75 and result["events_scanned"] == 78 and not result["events_truncated"]
    assert len(result["events"]) == 10 and result["events"][0]["name"] == "proposals.update.requested"
    assert "75 events matching *.requested in 3600 s (most: entities.create.requested 70)" in result["msg"]
    capped = module("inngest_info", {"url": standin.url, "gather": ["events"], "max_events": 60})
    assert capped["events_truncated"] is True and capped["events_scanned"] == 60


def test_runs_cancels_stuck_runs_over_pages_with_a_cap(module, start_standin, worker):
    standin = start_standin(inngest_concurrency=105, inngest_signing_key=SIGNING_KEY)
    hang_runs(standin, worker, 105)
    time.sleep(1.1)
    args = {"url": standin.url, "signing_key": SIGNING_KEY, "stuck": True, "stuck_threshold": 1}

    plan = module("inngest_runs", {**args, "max_runs": 200}, check=True)
    assert plan["changed"] is False and len(plan["actions"]) == 105  # more than one GraphQL page
    assert plan["actions"][0]["description"].startswith(f"cancel run {plan['actions'][0]['run_id']} "
                                                        "(synap-global-validator, running ")
    assert plan["cancelled"] == [] and len(standin.runs("RUNNING")) == 105
    assert plan["msg"] == "would cancel 105 stuck run(s) (> 1 s)"

    first = module("inngest_runs", {**args, "max_runs": 60})
    assert first["changed"] is True and len(first["cancelled"]) == 60 and len(first["left_over"]) == 45
    assert first["cancelled"] == [a["run_id"] for a in plan["actions"][:60]]  # oldest first, as planned
    assert len(standin.runs("CANCELLED")) == 60
    second = module("inngest_runs", {**args, "max_runs": 60})
    assert second["changed"] is True and len(second["cancelled"]) == 45 and second["left_over"] == []
    again = module("inngest_runs", {**args, "max_runs": 60})
    assert again["changed"] is False and again["actions"] == []
    assert again["msg"] == "no stuck run(s) (> 1 s) to cancel"
    assert len(standin.runs("CANCELLED")) == 105
    assert_no_secrets(plan, first, second, again)


def test_runs_by_id_treats_an_ended_run_as_done(module, standin, worker):
    [run] = hang_runs(standin, worker, 1)
    args = {"url": standin.url, "run_ids": [run["id"]]}
    plan = module("inngest_runs", args, check=True)
    assert [a["run_id"] for a in plan["actions"]] == [run["id"]] and plan["changed"] is False
    assert standin.runs("RUNNING")[0]["id"] == run["id"]
    done = module("inngest_runs", args)
    assert done["changed"] is True and done["cancelled"] == [run["id"]]
    again = module("inngest_runs", {**args, "run_ids": [run["id"], "01NOSUCHRUN"]})
    assert again["changed"] is False and again["already_ended"] == [run["id"]]
    assert again["not_found"] == ["01NOSUCHRUN"]
    assert "1 had already ended, 1 unknown" in again["msg"]
    nothing = module("inngest_runs", {"url": standin.url})
    assert nothing["failed"]
    assert nothing["msg"] == "nothing to cancel: give run_ids, or stuck=true to cancel every stuck run"


def test_event_send_and_replay_check_real_again(module, start_standin, worker):
    standin = start_standin(inngest_signing_key=SIGNING_KEY, inngest_event_key=EVENT_KEY)
    standin.register(worker.url, [VALIDATOR])
    keys = {"url": standin.url, "signing_key": SIGNING_KEY, "event_key": EVENT_KEY}
    probe = {"name": "entities.create.requested", "id": "probe-1", "data": {"workspaceId": "w9"}}

    plan = module("inngest_event", {**keys, "events": [probe]}, check=True)
    assert plan["changed"] is False
    assert plan["actions"][0]["description"] == "send event entities.create.requested as probe-1"
    assert standin.call("GET", "/v1/events")[1]["data"] == []
    sent = module("inngest_event", {**keys, "events": [probe]})
    assert sent["changed"] is True and sent["sent_ids"] == ["probe-1"]
    again = module("inngest_event", {**keys, "events": [probe]})
    assert again["changed"] is False and again["already_sent"] == ["probe-1"]
    assert again["msg"] == "no events to send; 1 already received"

    replay_args = {**keys, "replay_ids": ["probe-1"], "replay_suffix": "INC-7"}
    replay_plan = module("inngest_event", replay_args, check=True)
    assert replay_plan["actions"] == [
        {"description": "replay event probe-1 (entities.create.requested) as probe-1-INC-7",
         "name": "entities.create.requested", "id": "probe-1-INC-7", "replay_of": "probe-1"}
    ]
    replayed = module("inngest_event", replay_args)
    assert replayed["changed"] is True and replayed["sent_ids"] == ["probe-1-INC-7"]
    assert replayed["msg"] == "sent 1 event(s) (1 replays)"
    events = standin.call("GET", "/v1/events?name=entities.create.requested")[1]["data"]
    assert [(e["id"], e["data"]) for e in events] == [("probe-1-INC-7", {"workspaceId": "w9"}),
                                                      ("probe-1", {"workspaceId": "w9"})]
    standin.wait_for(lambda: len(standin.runs("COMPLETED")) == 2, what="a run for the original and the replay")
    assert module("inngest_event", replay_args)["changed"] is False
    assert_no_secrets(plan, sent, again, replay_plan, replayed)


def test_event_errors_are_one_actionable_line(module, start_standin):
    standin = start_standin(inngest_event_key=EVENT_KEY)
    bad = module("inngest_event", {"url": standin.url, "event_key": EVENT_KEY, "events": [{"data": {}}]})
    assert bad["failed"]
    assert bad["msg"] == "event 1 has no name: every event needs a name such as entities.create.requested"
    wrong_key = {"url": standin.url, "event_key": "wrong-key", "events": [{"name": "a.b.requested"}]}
    wrong = module("inngest_event", wrong_key)
    assert wrong["failed"] and "POST /e/<event key>" in wrong["msg"] and "HTTP 401: Event key not found" in wrong["msg"]
    assert "wrong-key" not in json.dumps(wrong)
    missing = module("inngest_event", {"url": standin.url, "replay_ids": ["nope"], "window": 60})
    assert missing["failed"] and missing["msg"] == ("event(s) nope not received in the last 60 s: check the ids "
                                                    "or raise window")
    no_key = module("inngest_event", {"url": standin.url, "events": [{"name": "a.b.requested"}]})
    assert no_key["failed"] and "set INNGEST_EVENT_KEY" in no_key["msg"]
