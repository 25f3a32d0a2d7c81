"""Approvals through serve's API: a step the P3 policy held back is listed with its number, declined or approved
by POST /api/incidents/<id>/approvals/<step>; an approval queues an approval run (`synap-play approve`, real
ansible-runner, the fixture playbook) that plans the step again and resolves the incident, and the alert's
"resolved" lands on that run."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from serve_helpers import P3_ALERT as P3
from serve_helpers import webhook

pytestmark = pytest.mark.slow



def decide(serve, incident_id, step, body, **kwargs):
    return serve.call("POST", f"/api/incidents/{incident_id}/approvals/{quote(str(step), safe='')}", body, **kwargs)


def test_an_approval_through_the_api_runs_the_step_planned_again_and_resolves(held, tmp_path):
    serve, incident_id = held
    [waiting] = serve.get(f"/api/incidents/{incident_id}").body["pending_approval"]
    assert (waiting["step"], waiting["task"]) == (1, "Mitigate | Create the flag file")

    assert decide(serve, incident_id, 1, {"decision": "approve"}, token=None).status == 401
    assert decide(serve, incident_id, 1, {"decision": "maybe"}).status == 400
    missing = decide(serve, incident_id, 9, {"decision": "approve"})
    assert missing.status == 404 and "no step '9' waits for approval" in missing.body["error"]
    assert decide(serve, "20990101T000000Z-fixture-flag-abcdef", 1, {"decision": "approve"}).status == 404

    approved = decide(serve, incident_id, 1, {"decision": "approve", "by": "team lead"})
    assert approved.status == 202, approved.body
    run_id = approved.body["run"]
    assert [s["task"] for s in approved.body["approved"]] == ["Mitigate | Create the flag file"]
    # A second decision while the approval run is queued or running is refused, not queued twice.
    assert decide(serve, incident_id, 1, {"decision": "approve"}).status in (404, 409)

    # Alertmanager repeats the alert meanwhile: noted on the approval run's incident, which holds the alert now.
    repeat = serve.post(webhook(P3))
    assert repeat.body["queued"] == []

    run = serve.wait_for_record(run_id)
    assert (run["status"], run["severity"]) == ("resolved", "P3")
    assert run["approval_of"]["incident"] == incident_id
    [action] = run["actions"]
    assert action["status"] == "done" and action["reason"].startswith(f"approved for incident {incident_id} by team lead")
    assert (tmp_path / "flag").read_text() == "flag raised\n"

    shown = serve.get(f"/api/incidents/{incident_id}").body
    assert shown["pending_approval"] == []
    assert [(n["event"], n.get("run")) for n in shown["serve_notes"] if n["event"].startswith("approv")] == \
        [("approved", run_id), ("approval_ended", run_id)]
    # The alert resolves: noted on the approval run, the newest incident that holds it.
    resolved = serve.post(webhook(P3, status="resolved"))
    assert [r["incident"] for r in resolved.body["resolved"]] == [run_id]
    assert serve.get("/api/incidents").body["open"] == []


def test_a_declined_step_stays_undone(held, tmp_path):
    serve, incident_id = held
    declined = decide(serve, incident_id, "Mitigate | Create the flag file", {"decision": "decline", "by": "lead"})
    assert declined.status == 200, declined.body
    assert serve.get(f"/api/incidents/{incident_id}").body["pending_approval"] == []
    assert not (tmp_path / "flag").exists()
    assert len(serve.folders()) == 1
    assert decide(serve, incident_id, 1, {"decision": "approve"}).status == 404
