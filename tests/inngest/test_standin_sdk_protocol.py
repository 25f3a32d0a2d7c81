"""The stand-in runs Inngest SDK functions: register, triggers (names, globs, crons), the step loop, retries, cancel.

The app on the other side is ``SdkPeer``, a Python stand-in for the JS SDK behind Synap's ``serve()``; the lab runs
the same exchange against Synap's real backend. The register body is the real SDK's (a trimmed capture).
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import importlib
import json
import sys
import threading
import time
import types
from datetime import UTC, datetime

import pytest
from standin_helpers import SERVER, NonRetriable, RetryAfter, SdkPeer, StepFailed, http, step_hash

VALIDATOR, EXECUTOR, BROKER, PERSISTENCE = ("synap-global-validator", "synap-entities-executor", "synap-webhook-broker",
                                            "synap-document-persistence")
RUNS = ('query { runs(first: 100, filter: {from: "2000-01-01T00:00:00Z"}) '
        "{ edges { node { id status functionID function { slug } eventName output } } } }")


@pytest.fixture
def sdk_standin(start_standin):
    return start_standin(inngest_retry_backoff=0.05)


@pytest.fixture
def peer(sdk_standin):
    app = SdkPeer(sdk_standin)
    yield app
    app.stop()


def register(standin, peer):
    status, body = standin.call("POST", "/fn/register", peer.registration())[:2]
    assert status == 200 and body["ok"] is True, body


def runs(standin, slug=None) -> list[dict]:
    edges = standin.call("POST", "/v0/gql", {"query": RUNS})[1]["data"]["runs"]["edges"]
    return [e["node"] for e in edges if slug is None or e["node"]["function"]["slug"] == slug]


def wait_run(standin, slug, status, count=1) -> list[dict]:
    return standin.wait_for(lambda: len(found := [r for r in runs(standin, slug) if r["status"] == status]) >= count
                            and found, timeout=5, what=f"{count} {status} run(s) of {slug}")


def two_steps(ctx, step):
    perms = step.run("check-permissions", lambda: {"ok": True, "user": ctx["event"]["data"].get("user_id")})
    policy = step.run("check-policy", lambda: {"decision": "validated"})
    return {"decision": policy["decision"], "user": perms["user"]}


def test_register_takes_the_sdk_payload_as_the_dev_server_does(sdk_standin, peer):
    payload = peer.registration()
    status, body = sdk_standin.call("POST", "/fn/register", payload)[:2]
    assert status == 200 and body["ok"] is True and body["modified"] is True and body["app_id"] and body["sync_id"]
    # The same functions again: nothing changed, as the dev server answers (the SDK then reports modified false).
    assert sdk_standin.call("POST", "/fn/register", payload)[:2] == (200, {"ok": True})
    listed = sdk_standin.call("GET", "/v1/apps/synap/functions")[1]
    assert [f["id"] for f in listed] == [VALIDATOR, EXECUTOR, BROKER, PERSISTENCE]  # the SDK's ids are the slugs
    v2 = sdk_standin.call("GET", "/v2/apps/synap/functions")[1]["data"]
    assert v2[0]["slug"] == VALIDATOR and v2[0]["triggers"] == [{"event": "entities.create.requested"},
                                                               {"event": "*.*.requested"}]
    assert [f["configuration"]["retries"] for f in v2] == [2, 0, 3, 3]  # retries.attempts, else Inngest's default
    assert v2[3]["triggers"] == [{"cron": "*/5 * * * *"}]

    # Refused as the real server refuses them, with the status and error the SDK reads from the body.
    seconds = copy.deepcopy(payload)
    seconds["functions"][3]["triggers"] = [{"cron": "*/10 * * * * *"}]
    status, body = sdk_standin.call("POST", "/fn/register", seconds)[:2]
    assert status == 400 and body["status"] == 400
    assert body["error"] == ("At least one function is invalid: synap-document-persistence: "
                             "'*/10 * * * * *' isn't a valid cron schedule")
    no_runtime = copy.deepcopy(payload)
    del no_runtime["functions"][0]["steps"]["step"]["runtime"]
    assert sdk_standin.call("POST", "/fn/register", no_runtime)[0] == 400
    too_many = copy.deepcopy(payload)
    too_many["functions"][0]["steps"]["step"]["retries"] = {"attempts": 21}
    assert sdk_standin.call("POST", "/fn/register", too_many)[1]["error"].endswith("retries must be a whole number from 0 to 20")
    cloud = http("POST", sdk_standin.url + "/fn/register", payload, {"X-Inngest-Expected-Server-Kind": "cloud"})
    assert cloud[0] == 400 and cloud[1]["error"] == "Expected server kind dev, got cloud"


def test_an_event_runs_two_steps_through_the_206_loop_then_completes(sdk_standin, peer):
    peer.function(VALIDATOR, two_steps)
    register(sdk_standin, peer)
    [event_id] = sdk_standin.send({"name": "entities.create.requested", "data": {"user_id": "u1"}})
    [run] = wait_run(sdk_standin, VALIDATOR, "COMPLETED")
    assert json.loads(run["output"]) == {"decision": "validated", "user": "u1"}
    assert run["eventName"] == "entities.create.requested"

    first, second, third = peer.calls(VALIDATOR)
    assert first["path"] == "/api/inngest" and first["query"] == {"fnId": VALIDATOR, "stepId": "step"}
    assert "x-inngest-signature" not in first["headers"]  # no signing key, nothing signed (as the dev server)
    body = first["body"]
    assert body["event"]["id"] == event_id and body["event"]["data"] == {"user_id": "u1"}
    assert body["events"] == [body["event"]] and body["steps"] == {} and body["version"] == -1
    assert body["ctx"] == {"fn_id": run["functionID"], "run_id": run["id"], "env": "", "step_id": "step", "attempt": 0,
                           "stack": {"stack": [], "current": 0}, "disable_immediate_execution": False,
                           "use_api": False}
    permissions, policy = step_hash("check-permissions"), step_hash("check-policy")
    assert second["body"]["steps"] == {permissions: {"data": {"ok": True, "user": "u1"}}}
    assert second["body"]["ctx"]["stack"] == {"stack": [permissions], "current": 1}
    assert second["body"]["version"] == 1  # what the SDK named in X-Inngest-Req-Version
    assert third["body"]["steps"] == {permissions: {"data": {"ok": True, "user": "u1"}},
                                      policy: {"data": {"decision": "validated"}}}
    assert third["body"]["ctx"]["stack"] == {"stack": [permissions, policy], "current": 2}
    assert sdk_standin.queue_depth() == 0


def test_send_event_starts_the_function_it_triggers(sdk_standin, peer):
    def validate(ctx, step):
        step.run("check-permissions", lambda: True)
        sent = step.send_event("emit-validated", {"name": "entities.create.validated", "data": ctx["event"]["data"]})
        return {"sent": sent["ids"]}

    peer.function(VALIDATOR, validate)
    peer.function(EXECUTOR, lambda ctx, step: step.run("insert-entity", lambda: {"title": ctx["event"]["data"]["title"]}))
    register(sdk_standin, peer)
    sdk_standin.send({"name": "entities.create.requested", "data": {"title": "Note"}})
    [executed] = wait_run(sdk_standin, EXECUTOR, "COMPLETED")
    assert json.loads(executed["output"]) == {"title": "Note"} and executed["eventName"] == "entities.create.validated"
    [validated] = wait_run(sdk_standin, VALIDATOR, "COMPLETED")
    [sent_id] = json.loads(validated["output"])["sent"]
    listed = sdk_standin.call("GET", "/v1/events?name=entities.create.validated")[1]["data"]
    assert [e["id"] for e in listed] == [sent_id] and listed[0]["data"] == {"title": "Note"}
    # The step's result is what the event API answered, stored like any step.run result.
    assert peer.calls(VALIDATOR)[-1]["body"]["steps"][step_hash("emit-validated")] == {"data": {"ids": [sent_id]}}


def test_glob_triggers_match_event_names(sdk_standin, peer):
    peer.function(VALIDATOR, lambda ctx, step: ctx["event"]["name"])
    peer.function(EXECUTOR, lambda ctx, step: ctx["event"]["name"])
    register(sdk_standin, peer)
    sdk_standin.send([{"name": "proposals.update.requested"}, {"name": "entities.create.requested"},
                      {"name": "entities.delete.validated"}, {"name": "entities.create.denied"}])
    validated = wait_run(sdk_standin, VALIDATOR, "COMPLETED", count=2)
    # *.*.requested catches proposals.update.requested; entities.create.requested matches both triggers, one run.
    assert sorted(json.loads(r["output"]) for r in validated) == ["entities.create.requested",
                                                                  "proposals.update.requested"]
    [executed] = wait_run(sdk_standin, EXECUTOR, "COMPLETED")
    assert json.loads(executed["output"]) == "entities.delete.validated"
    time.sleep(0.1)
    assert len(runs(sdk_standin)) == 3  # entities.create.denied triggers nothing


def test_a_500_is_retried_with_backoff_and_a_step_error_is_retried_then_stored(sdk_standin, peer):
    thrown = []

    def flaky(ctx, step):
        if not thrown:
            thrown.append(ctx["attempt"])
            raise RuntimeError("database restarting")  # the function throws: the SDK answers 500
        return step.run("load", lambda: "loaded")

    failures = []

    def failing_step(ctx, step):
        def insert():
            failures.append(ctx["attempt"])
            raise RuntimeError("unique violation")
        try:
            step.run("insert-entity", insert)
        except StepFailed as exc:  # retries spent: the stored error is thrown into the function
            return {"recovered": exc.error["message"]}
        return "inserted"

    peer.function(VALIDATOR, flaky)
    peer.function(EXECUTOR, failing_step)  # retries.attempts 0 in the registration
    register(sdk_standin, peer)
    sdk_standin.send([{"name": "entities.create.requested"}, {"name": "entities.create.validated"}])
    [run] = wait_run(sdk_standin, VALIDATOR, "COMPLETED")
    assert json.loads(run["output"]) == "loaded"
    calls = peer.calls(VALIDATOR)
    assert [c["body"]["ctx"]["attempt"] for c in calls] == [0, 1, 0]  # the attempt counts per step, from 0 again
    assert calls[1]["at"] - calls[0]["at"] >= 0.04  # INNGEST_RETRY_BACKOFF=0.05

    [executed] = wait_run(sdk_standin, EXECUTOR, "COMPLETED")
    assert json.loads(executed["output"]) == {"recovered": "unique violation"} and failures == [0]
    stored = peer.calls(EXECUTOR)[-1]["body"]["steps"][step_hash("insert-entity")]
    assert stored == {"error": {"name": "Error", "message": "unique violation", "stack": "Error: unique violation\n    at peer"}}


def test_a_step_error_within_its_retries_is_called_again(sdk_standin, peer):
    attempts = []

    def step_once_broken(ctx, step):
        def check():
            attempts.append(ctx["attempt"])
            if len(attempts) == 1:
                raise RuntimeError("policy store unavailable")
            return "ok"
        return step.run("check-policy", check)

    peer.function(VALIDATOR, step_once_broken)
    register(sdk_standin, peer)
    sdk_standin.send({"name": "entities.create.requested"})
    [run] = wait_run(sdk_standin, VALIDATOR, "COMPLETED")
    assert json.loads(run["output"]) == "ok" and attempts == [0, 1]
    assert [c["body"]["steps"] for c in peer.calls(VALIDATOR)][:2] == [{}, {}]  # the error was not stored


def test_no_retry_fails_at_once_and_retry_after_is_honoured(sdk_standin, peer):
    def refuse(ctx, step):
        raise NonRetriable("workspace is gone")

    def later(ctx, step):
        if ctx["attempt"] == 0:
            raise RetryAfter("rate limited", 1)
        return "done"

    peer.function(VALIDATOR, refuse)  # retries 2 in the registration: not one is used
    peer.function(EXECUTOR, later)
    register(sdk_standin, peer)
    sdk_standin.send([{"name": "entities.create.requested"}])
    [failed] = wait_run(sdk_standin, VALIDATOR, "FAILED")
    assert json.loads(failed["output"])["message"] == "workspace is gone"
    time.sleep(0.2)
    assert len(peer.calls(VALIDATOR)) == 1

    # A 0-retry function would fail too; give this one a retry to see Retry-After win over the 0.05 s backoff.
    payload = peer.registration()
    payload["functions"][1]["steps"]["step"]["retries"] = {"attempts": 1}
    assert sdk_standin.call("POST", "/fn/register", payload)[0] == 200
    sdk_standin.send({"name": "entities.create.validated"})
    wait_run(sdk_standin, EXECUTOR, "COMPLETED")
    first, second = peer.calls(EXECUTOR)
    assert second["at"] - first["at"] >= 0.95


def test_cancel_stops_the_step_loop(start_standin):
    standin = start_standin(inngest_retry_backoff=30)
    peer = SdkPeer(standin)
    try:
        peer.function(VALIDATOR, two_steps)
        peer.hook = lambda request: "hang" if len(peer.requests) == 2 else None  # the second call hangs
        register(standin, peer)
        standin.send({"name": "entities.create.requested"})
        standin.wait_for(lambda: len(peer.requests) == 2, what="the second call")
        [run] = runs(standin, VALIDATOR)
        assert run["status"] == "RUNNING"
        assert standin.call("POST", f"/v2/runs/{run['id']}/cancel")[:2] == (200, {"data": {"runId": run["id"]}})
        peer.release.set()  # the hung call answers now; the run must not go on
        time.sleep(0.3)
        assert len(peer.requests) == 2 and runs(standin, VALIDATOR)[0]["status"] == "CANCELLED"
        assert standin.queue_depth() == 0

        # Cancelled while it waits for a retry: the queued call goes, nothing more reaches the app.
        peer.hook = None
        peer.function(EXECUTOR, lambda ctx, step: 1 / 0)
        payload = peer.registration()
        payload["functions"][1]["steps"]["step"]["retries"] = {"attempts": 3}
        assert standin.call("POST", "/fn/register", payload)[0] == 200
        standin.send({"name": "entities.create.validated"})
        standin.wait_for(lambda: standin.queue_depth() == 1 and len(peer.calls(EXECUTOR)) == 1, what="a retry queued")
        [waiting] = runs(standin, EXECUTOR)
        assert waiting["status"] == "RUNNING"
        mutation = {"query": 'mutation { cancelRun(runID: "' + waiting["id"] + '") { id } }'}
        assert standin.call("POST", "/v0/gql", mutation)[1]["data"]["cancelRun"]["status"] == "CANCELLED"
        assert standin.queue_depth() == 0 and len(peer.calls(EXECUTOR)) == 1
    finally:
        peer.stop()


def test_a_hung_call_keeps_the_run_running(start_standin):
    standin = start_standin(inngest_concurrency=1)
    peer = SdkPeer(standin)
    try:
        peer.function(VALIDATOR, two_steps)
        peer.hook = lambda request: "hang"  # the validator hangs: the lab's stuck-worker fault
        register(standin, peer)
        standin.send([{"name": "entities.create.requested"}, {"name": "entities.create.requested"}])
        standin.wait_for(lambda: len(peer.requests) == 1, what="the first call")
        time.sleep(0.3)
        assert sorted(r["status"] for r in runs(standin, VALIDATOR)) == ["QUEUED", "RUNNING"]
        assert standin.queue_depth() == 1 and len(peer.requests) == 1
        metrics = standin.call("GET", "/metrics")[1]
        assert "inngest_queue_depth 1" in metrics and 'inngest_runs{status="RUNNING"} 1' in metrics
    finally:
        peer.stop()


def test_parallel_steps_are_planned_then_run_one_call_each(sdk_standin, peer):
    def broker(ctx, step):
        subscriptions = step.run("load-subscriptions", lambda: ["a", "b", "c"])
        results = step.run_all([(f"deliver-{s}", lambda s=s: {"sub": s, "status": 200}) for s in subscriptions])
        done = step.run("record", lambda: len(results))
        return {"delivered": done}

    peer.function(BROKER, broker)
    register(sdk_standin, peer)
    sdk_standin.send({"name": "api/event.logged"})
    [run] = wait_run(sdk_standin, BROKER, "COMPLETED")
    assert json.loads(run["output"]) == {"delivered": 3}
    calls = peer.calls(BROKER)
    planned = {step_hash(f"deliver-{s}") for s in "abc"}
    assert {c["query"]["stepId"] for c in calls if c["query"]["stepId"] != "step"} >= planned
    assert all(c["body"]["ctx"]["disable_immediate_execution"] for c in calls[2:])  # from the plan on
    last = calls[-1]["body"]
    assert set(last["steps"]) == planned | {step_hash("load-subscriptions"), step_hash("record")}
    assert last["ctx"]["stack"]["stack"][0] == step_hash("load-subscriptions") and len(last["ctx"]["stack"]["stack"]) == 5


def test_signed_calls_unsupported_ops_and_streamed_answers(start_standin):
    standin = start_standin(inngest_retry_backoff=0.05, inngest_signing_key="signkey-test-8d2f4c1e")
    peer = SdkPeer(standin)
    try:
        peer.function(VALIDATOR, two_steps)
        answers = {EXECUTOR: (206, {}, [{"id": step_hash("nap"), "op": "Sleep", "name": "1h", "displayName": "nap"}]),
                   BROKER: (201, {}, b"   " + json.dumps({"status": 200, "headers": {}, "body": '{"streamed": true}',
                                                           "version": 1}).encode())}
        peer.hook = lambda request: answers.get(request["query"]["fnId"])
        register(standin, peer)
        standin.send([{"name": "entities.create.requested", "data": {"score": 0.5, "text": "é\n"}},
                      {"name": "entities.create.validated"}, {"name": "api/event.logged"}])
        wait_run(standin, VALIDATOR, "COMPLETED")
        for call in peer.calls(VALIDATOR):
            # The SDK's check: HMAC-SHA256 over the body and the timestamp, keyed by the key without its prefix.
            stamp, mac = (part.split("=", 1)[1] for part in call["headers"]["x-inngest-signature"].split("&"))
            assert hmac.compare_digest(mac, hmac.new(b"8d2f4c1e", call["raw"] + stamp.encode(), hashlib.sha256).hexdigest())
            assert abs(int(stamp) - time.time()) < 60
            # Signed bytes are canonical JSON (sorted keys, no spaces): what the SDK re-serialises before hashing.
            assert call["raw"] == json.dumps(call["body"], sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
        [slept] = wait_run(standin, EXECUTOR, "FAILED")
        assert json.loads(slept["output"])["error"] == "step.sleep (Sleep) is not supported by the lab's Inngest stand-in"
        [streamed] = wait_run(standin, BROKER, "COMPLETED")
        assert json.loads(streamed["output"]) == {"streamed": True}
    finally:
        peer.stop()


# ------------------------------------------------------------------- cron triggers, in-process with a set clock


@pytest.fixture
def modules():
    """The stand-in's modules imported into the test process (they import each other by plain name)."""
    names = ("common", "functions", "schedule", "runs", "execution")
    path = str(SERVER.parent)
    saved = {name: sys.modules.pop(name) for name in names if name in sys.modules}
    sys.path.insert(0, path)
    try:
        yield types.SimpleNamespace(**{name: importlib.import_module(name) for name in names})
    finally:
        sys.path.remove(path)
        for name in names:
            sys.modules.pop(name, None)
        sys.modules.update(saved)


def test_cron_schedules_parse_as_inngest_reads_them(modules):
    cron = modules.schedule.Cron
    at = lambda *parts: datetime(*parts, tzinfo=UTC)  # noqa: E731
    assert cron("*/5 * * * *").matches(at(2026, 3, 2, 9, 5)) and not cron("*/5 * * * *").matches(at(2026, 3, 2, 9, 6))
    assert cron("0,30 8-10 * * *").matches(at(2026, 3, 2, 10, 30)) and not cron("0,30 8-10 * * *").matches(at(2026, 3, 2, 11, 0))
    assert cron("15/20 * * * *").minutes == {15, 35, 55}
    assert cron("0 9 * JAN-mar mon-fri").matches(at(2026, 3, 2, 9, 0))  # a Monday in March
    assert not cron("0 9 * * SAT,SUN").matches(at(2026, 3, 2, 9, 0))
    # Both day fields restricted: either may match (the 1st of the month, or any Friday).
    assert cron("0 0 1 * 5").matches(at(2026, 3, 6, 0, 0)) and cron("0 0 1 * 5").matches(at(2026, 4, 1, 0, 0))
    assert not cron("0 0 1 * *").matches(at(2026, 3, 6, 0, 0))
    assert cron("TZ=UTC 30 9 * * *").matches(at(2026, 3, 2, 9, 30))
    for bad in ("*/10 * * * * *", "* * * *", "@daily", "60 * * * *", "* * * * 7", "5-1 * * * *", "*/0 * * * *", "x * * * *"):
        with pytest.raises(ValueError, match="isn't a valid cron schedule"):
            cron(bad)


def test_a_cron_trigger_starts_a_run_when_its_minute_comes(modules):
    store = modules.runs.Store()
    dispatcher = modules.execution.Dispatcher(store, timeout=5, backoff=0.05)
    threading.Thread(target=dispatcher.work_forever, daemon=True).start()
    clock = types.SimpleNamespace(now=datetime(2026, 3, 2, 9, 3, 30, tzinfo=UTC))
    scheduler = modules.schedule.Scheduler(store, clock=lambda: clock.now)
    peer = SdkPeer()
    try:
        peer.function(PERSISTENCE, lambda ctx, step: step.run("persist", lambda: {"persisted": 2, "event": ctx["event"]}))
        store.register(peer.registration())
        assert scheduler.check() == 0  # like cron: nothing for the minute already under way
        clock.now = datetime(2026, 3, 2, 9, 4, 59, tzinfo=UTC)
        assert scheduler.check() == 0
        clock.now = datetime(2026, 3, 2, 9, 5, 1, tzinfo=UTC)
        assert scheduler.check() == 1
        clock.now = datetime(2026, 3, 2, 9, 5, 40, tzinfo=UTC)
        assert scheduler.check() == 0  # once per minute
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and [r["status"] for r in store.runs.values()] != ["COMPLETED"]:
            time.sleep(0.02)
        [run] = store.runs.values()
        assert run["status"] == "COMPLETED" and run["function"]["slug"] == PERSISTENCE
        assert run["output"]["persisted"] == 2
        assert run["output"]["event"]["name"] == "inngest/scheduled.timer"
        assert run["output"]["event"]["data"] == {"cron": "*/5 * * * *"}
        # A host asleep for an hour starts one run on waking, not twelve.
        clock.now = datetime(2026, 3, 2, 10, 7, 0, tzinfo=UTC)
        assert scheduler.check() == 1
    finally:
        store.stop()
        peer.stop()
