"""`synap-play serve` running scenarios: a webhook runs its scenario once through `synap-play alert` (real
ansible-runner, the fixture playbooks), repeats and resolutions are noted on the open incident, the queue is
capped, SIGTERM records the run in flight as interrupted, and a restart picks up what is open or still waiting."""

from __future__ import annotations

import time

import pytest
from processes import playbook_processes
from serve_helpers import metric, webhook

pytestmark = pytest.mark.slow

P0 = {"name": "FixtureAlert", "severity": "page", "fingerprint": "73d499566d87aece"}  # the disruptive fix runs
P3 = {"name": "FixtureAlert", "severity": "info", "fingerprint": "73d499566d87aece"}  # it needs approval


def test_a_webhook_runs_its_scenario_once_and_a_firing_after_it_closed_opens_a_new_incident(start_serve, tmp_path):
    serve = start_serve()
    first = serve.post(webhook(P0))
    assert first.status == 202, first.body
    # The handler's own time (Server-Timing): queueing answers at once, the run comes after.
    assert first.handler_ms < 100, first.headers
    [queued] = first.body["queued"]
    incident_id = queued["incident"]
    assert queued == {"incident": incident_id, "scenario": "fixture-flag", "severity": "P0", "alerts": ["FixtureAlert"]}
    assert incident_id.startswith(time.strftime("%Y%m%dT", time.gmtime())) and "-fixture-flag-" in incident_id

    # Alertmanager sends the group again (group_interval): the incident is open (queued or running), so it is noted.
    again = serve.post(webhook(P0))
    assert again.status == 202
    assert again.body["queued"] == []
    assert [r["incident"] for r in again.body["repeats"]] == [incident_id]

    record = serve.wait_for_record(incident_id)
    assert (record["status"], record["exit_code"], record["severity"]) == ("resolved", 0, "P0")
    assert [a["fingerprint"] for a in record["alerts"]] == ["73d499566d87aece"]
    assert record["started_at"] == "2026-12-02T06:07:35Z"
    assert (tmp_path / "flag").read_text() == "flag raised\n"
    assert [f.name for f in serve.folders()] == [incident_id]
    # The repeat came while the run was queued or already started: noted either way, never run.
    events = [n["event"] for n in serve.notes(incident_id)]
    assert events in (["queued", "started", "repeat", "ended"], ["queued", "repeat", "started", "ended"])

    shown = serve.get(f"/api/incidents/{incident_id}")
    assert shown.status == 200
    assert {k: shown.body[k] for k in ("id", "status", "state", "open", "pending_approval")} == \
        {"id": incident_id, "status": "resolved", "state": "ended", "open": False, "pending_approval": []}
    assert shown.body["actions"] == record["actions"]  # the record itself, merged with serve's notes
    assert [n["event"] for n in shown.body["serve_notes"]] == events

    metrics = serve.get("/metrics").body
    assert metric(metrics, "synap_play_serve_alerts_received_total", alertname="FixtureAlert", status="firing") == 2
    assert metric(metrics, "synap_play_serve_incidents_total", scenario="fixture-flag", outcome="resolved") == 1
    for what in ("diagnosis", "mitigation", "verification"):
        assert metric(metrics, f"synap_play_serve_alert_to_{what}_seconds_count", scenario="fixture-flag") == 1, what

    # The incident closed (resolved): Alertmanager re-sending the same firing (same startsAt) is noted on it, while
    # the alert firing again (a new startsAt) is a new incident, run again.
    resend = serve.post(webhook(P0))
    assert resend.body["queued"] == [] and resend.body["repeats"][0]["after_close"] is True
    refire = serve.post(webhook({**P0, "starts_at": "2026-12-02T07:00:00Z"}))
    assert refire.status == 202
    [requeued] = refire.body["queued"]
    assert requeued["incident"] != incident_id
    second = serve.wait_for_record(requeued["incident"])
    assert second["status"] == "healthy"  # the flag is there now: nothing to do
    assert len(serve.folders()) == 2


def test_an_incident_needing_approval_takes_repeats_across_a_restart_until_its_alert_resolves(start_serve):
    serve = start_serve()
    [queued] = serve.post(webhook(P3)).body["queued"]
    incident_id = queued["incident"]
    record = serve.wait_for_record(incident_id)
    # No terminal: what the P3 policy would ask about is recorded as needing approval, and the incident stays open.
    assert (record["status"], record["exit_code"]) == ("needs approval", 3)
    shown = serve.get(f"/api/incidents/{incident_id}").body
    assert shown["open"] is True
    assert shown["pending_approval"] == [{
        "step": 1, "task": "Mitigate | Create the flag file", "host": "fixture-host", "class": "disruptive",
        "why": "the flag file is missing", "reason": "P3 policy does not run disruptive actions without --yes",
        "plan": ["ansible.builtin.lineinfile: line added"], "at": shown["pending_approval"][0]["at"]}]

    assert serve.stop() == 0
    # A new serve reads what is open from the records: the repeat is noted on the same incident, nothing runs.
    serve = start_serve()
    listed = serve.get("/api/incidents").body
    assert [i["id"] for i in listed["open"]] == [incident_id]
    assert listed["open"][0]["status"] == "needs approval" and listed["open"][0]["pending_approval"] == 1
    repeat = serve.post(webhook(P3))
    assert repeat.status == 202
    assert repeat.body["queued"] == [] and [r["incident"] for r in repeat.body["repeats"]] == [incident_id]

    resolved = serve.post(webhook(P3, status="resolved"))
    assert resolved.body["resolved"] == [{"incident": incident_id, "alert": "FixtureAlert",
                                          "fingerprint": "73d499566d87aece"}]
    notes = serve.notes(incident_id)
    assert [n["event"] for n in notes] == ["queued", "started", "ended", "repeat", "resolved"]
    assert notes[-1]["alerts"] == [{"name": "FixtureAlert", "fingerprint": "73d499566d87aece",
                                    "ends_at": "2026-12-02T06:30:00Z"}]
    shown = serve.get(f"/api/incidents/{incident_id}").body
    assert shown["alert_states"] == {"73d499566d87aece": "resolved"} and shown["open"] is False

    # Its alert resolved, so the incident takes no more repeats: a firing now is a new incident.
    refire = serve.post(webhook({**P3, "starts_at": "2026-12-02T07:00:00Z"}))
    [new] = refire.body["queued"]
    assert new["incident"] != incident_id
    assert serve.wait_for_record(new["incident"])["status"] == "needs approval"


def test_a_more_severe_alert_on_an_open_incident_runs_the_scenario_again_at_its_severity(start_serve, tmp_path):
    # The first alert, at P3, opens an incident whose fix waits for a person; a second alert of the same scenario at
    # P0 is not its repeat: a run at P0 follows the first (one run per scenario at a time), and its policy runs the
    # fix at once.
    serve = start_serve()
    [low] = serve.post(webhook(P3)).body["queued"]
    raised = serve.post(webhook({**P0, "fingerprint": "0123456789abcdef"}))
    assert raised.status == 202 and raised.body["repeats"] == []
    [high] = raised.body["queued"]
    assert (low["severity"], high["severity"]) == ("P3", "P0")
    first = serve.wait_for_record(low["incident"])
    assert (first["severity"], first["status"]) == ("P3", "needs approval")
    second = serve.wait_for_record(high["incident"])
    assert (second["severity"], second["status"]) == ("P0", "resolved")
    assert (tmp_path / "flag").read_text() == "flag raised\n"
    started = {n["event"]: n["at"] for n in serve.notes(high["incident"])}["started"]
    assert started >= first["ended_at"]
    raised_note = next(n for n in serve.notes(low["incident"]) if n["event"] == "raised")
    assert (raised_note["severity"], raised_note["run"]) == ("P0", high["incident"])
    # Each incident's page links the other.
    page = serve.get(f"/incidents/{low['incident']}").body
    assert f'raised to P0 by FixtureAlert: run <a href="/incidents/{high["incident"]}">' in page, page
    page = serve.get(f"/incidents/{high['incident']}").body
    assert f'raising <a href="/incidents/{low["incident"]}">{low["incident"]}</a> from P3' in page, page
    # The P3 incident no longer waits for a person: the P0 run took it over, and its fix resolved both.
    listed = serve.get("/api/incidents").body
    assert listed["open"] == []
    assert next(i for i in listed["recent"] if i["id"] == low["incident"])["raised_to"] == high["incident"]
    # Alertmanager re-sending the P3 firing meanwhile is noted on the incident that ran for it, not run again.
    repeat = serve.post(webhook(P3))
    assert repeat.body["queued"] == [] and [r["incident"] for r in repeat.body["repeats"]] == [low["incident"]]


def test_a_full_queue_gets_503_sigterm_records_the_run_in_flight_and_a_restart_runs_what_waited(start_serve):
    serve = start_serve("--max-parallel", "1", "--queue-size", "1")
    slow = serve.post(webhook({"name": "FixtureSlow", "fingerprint": "5105"})).body["queued"][0]["incident"]
    record = serve.wait_for_record(slow, ended=False)
    deadline = time.monotonic() + 120
    while record.get("runner", {}).get("running_task") != "Assess | Take a long time":
        assert time.monotonic() < deadline, serve.output()
        time.sleep(0.2)
        record = serve.record(slow)
    waiting = serve.post(webhook(P0)).body["queued"][0]["incident"]  # one slot: it waits

    full = serve.post(webhook({"name": "FixtureBroken", "fingerprint": "b0"}))
    assert full.status == 503
    assert full.body["error"] == ("the run queue is full (1 runs waiting, --queue-size 1); not queued: fixture-fail; "
                                  "retry later")
    assert full.headers["Retry-After"] == "30"
    assert serve.get("/healthz").body == {"status": "ok", "runs_in_flight": 1, "queued": 1, "max_parallel": 1,
                                          "queue_size": 1}
    metrics = serve.get("/metrics").body
    assert metric(metrics, "synap_play_serve_runs_in_flight") == 1
    assert metric(metrics, "synap_play_serve_queue_length") == 1

    # The run's private folder is named by its incident: other tests' slow playbooks running alongside are not it.
    assert playbook_processes(slow), "the playbook is not running"
    # SIGTERM: the run in flight is stopped through its own stop path and its record closed; serve exits 0.
    sent = time.monotonic()
    assert serve.stop() == 0, serve.output()
    assert time.monotonic() - sent < 30
    stopped = serve.record(slow)
    assert (stopped["status"], stopped["exit_code"]) == ("interrupted", 143)
    assert stopped["ended_at"] and stopped["runner"]["running_task"] == "Assess | Take a long time"
    assert playbook_processes(slow) == []
    assert [n["event"] for n in serve.notes(slow)] == ["queued", "started", "ended"]
    # The waiting run never started: no record, and a note saying it waits for the next start.
    assert serve.record(waiting) is None
    assert [n["event"] for n in serve.notes(waiting)] == ["queued", "deferred"]

    serve = start_serve("--max-parallel", "1", "--queue-size", "1")
    resumed = serve.wait_for_record(waiting)
    assert resumed["status"] == "resolved" and resumed["id"] == waiting
    assert [n["event"] for n in serve.notes(waiting)] == ["queued", "deferred", "requeued", "started", "ended"]
    # The interrupted run gave no verdict, so the slow alert firing again runs it again.
    refire = serve.post(webhook({"name": "FixtureSlow", "fingerprint": "5105"}))
    assert refire.status == 202 and refire.body["queued"][0]["incident"] != slow


def test_scenarios_of_one_webhook_run_side_by_side_up_to_the_limit(start_serve, tmp_path):
    serve = start_serve("--max-parallel", "2")
    reply = serve.post(webhook({"name": "FixtureSlow", "fingerprint": "5105"}, P0))
    assert reply.status == 202
    queued = {q["scenario"]: q["incident"] for q in reply.body["queued"]}
    assert set(queued) == {"fixture-slow", "fixture-flag"}
    # The flag scenario does not wait for the slow one: it is resolved while the slow one still runs.
    assert serve.wait_for_record(queued["fixture-flag"])["status"] == "resolved"
    assert serve.wait_for_record(queued["fixture-slow"], ended=False)["status"] == "running"
    assert serve.get("/healthz").body["runs_in_flight"] == 1
    assert serve.stop() == 0
    assert serve.record(queued["fixture-slow"])["status"] == "interrupted"
