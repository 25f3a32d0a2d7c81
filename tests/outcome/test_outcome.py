"""The run's outcome is its verification's: three-valued checks, declined steps, unknown sources, several hosts."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
from ansible_collections.synap.ops.plugins.plugin_utils import incident_outcome
from ansible_collections.synap.ops.plugins.plugin_utils.incident_events import EventTranslator, TaskEvent
from ansible_collections.synap.ops.plugins.plugin_utils.incident_record import IncidentRecord
from ansible_collections.synap.ops.plugins.plugin_utils.protocol import ExitCode

record_action = importlib.import_module("ansible_collections.synap.ops.plugins.action.record")
EXIT_CODES = {code.value: (code.label, code.meaning) for code in ExitCode}


class Incident:
    """The record, the translation of task results into it, and its end, as the incident callback composes them."""

    def __init__(self, **fields):
        self.record = IncidentRecord.open(**fields)
        self.data = self.record.data
        self._translator = EventTranslator(self.record)

    def observe(self, runner_event):
        data = runner_event["event_data"]
        self._translator.observe(TaskEvent(kind=runner_event["event"].removeprefix("runner_on_"), task=data["task"],
                                           host=data["host"], action=data["resolved_action"], result=data["res"]))

    def finish(self, *, runner_status, runner_rc):
        return incident_outcome.close(self.record, playbook_status=runner_status, rc=runner_rc)


def verification(*checks):
    """What the synap.ops.record action records for these checks."""
    return record_action.ActionModule._verification(list(checks))


def new_incident(tmp_path, check_mode=False):
    return Incident(incident_id="20261202T000000Z-x-000000", folder=tmp_path, scenario="x", title="x", severity="P1",
                    inventory="lab", operator="test", check_mode=check_mode, approve_all=False, limit=None,
                    follow_ups=[])


def event(kind, task, host, action, res):
    return {"event": kind, "event_data": {"task": task, "host": host, "resolved_action": action, "res": res}}


def verify(incident, host, *checks):
    incident.observe(event("runner_on_ok", "Resolve | Verify the scenario is resolved", host, "synap.ops.record",
                           {"record": {"phase": "resolve", "verification": verification(*checks)}, "msg": "resolve"}))


def gate(incident, host, task, decision, changed=False, plan=("end 3 sessions",)):
    incident.observe(event("runner_on_ok", f"Mitigate | {task}", host, "synap.ops.mitigate",
                           {"gate": {"decision": decision, "class": "disruptive", "module": "m"}, "changed": changed,
                            "actions": [{"description": p} for p in plan]}))


OK = {"name": "headroom", "ok": True}
FAILED = {"name": "headroom", "ok": False}
UNKNOWN = {"name": "no long queries", "ok": True, "known": False, "unknown_because": "PostgreSQL refused"}


def test_a_check_that_is_not_known_is_unknown_whatever_ok_says():
    result = verification(OK, UNKNOWN)
    assert [c["state"] for c in result["checks"]] == ["ok", "unknown"]
    assert result["checks"][1]["ok"] is False
    assert result["state"] == "unverified" and result["resolved"] is False


def test_a_failed_check_outweighs_an_unknown_one():
    assert verification(FAILED, UNKNOWN)["state"] == "unresolved"


def test_unknown_checks_keys_are_refused():
    from ansible.errors import AnsibleActionFail

    with pytest.raises(AnsibleActionFail, match="unsupported key"):
        verification({"name": "x", "ok": True, "knwon": False})


def test_the_verdict_line_names_unknown_checks_and_why():
    line = record_action._verdict_line(verification(FAILED, UNKNOWN))
    assert line == "unresolved: failing: headroom; unknown: no long queries (PostgreSQL refused)"


def test_resolved_although_optional_steps_were_declined_is_exit_0(tmp_path):
    """Regression: every check verified, optional steps declined, and the run still ended 'needs approval', exit 3."""
    incident = new_incident(tmp_path)
    gate(incident, "h", "Restart the API to release its connections (pool exhausted)", "run", changed=True)
    gate(incident, "h", "Raise max_connections (pool exhausted, temporary)", "declined")
    verify(incident, "h", OK, {"name": "API healthy", "ok": True})
    assert incident.finish(runner_status="successful", runner_rc=0) == 0
    assert incident.data["status"] == "resolved"
    assert [a["status"] for a in incident.data["actions"]] == ["done", "declined"]


def test_healthy_with_a_declined_step_and_nothing_changed_is_healthy(tmp_path):
    incident = new_incident(tmp_path)
    gate(incident, "h", "Scale", "declined")
    verify(incident, "h", OK)
    assert incident.finish(runner_status="successful", runner_rc=0) == 0
    assert incident.data["status"] == "healthy"


def test_needs_approval_only_while_the_problem_is_still_there(tmp_path):
    incident = new_incident(tmp_path)
    gate(incident, "h", "Restart the API", "needs_approval")
    verify(incident, "h", FAILED)
    assert incident.finish(runner_status="successful", runner_rc=0) == 3
    assert incident.data["status"] == "needs approval"


def test_a_problem_with_nothing_to_do_about_it_is_unresolved(tmp_path):
    incident = new_incident(tmp_path)
    verify(incident, "h", FAILED)
    assert incident.finish(runner_status="successful", runner_rc=0) == 3
    assert incident.data["status"] == "unresolved"


def test_an_unknown_check_never_lets_a_run_pass(tmp_path):
    """Regression: a database never reached gave '✓ no queries running longer than 3 s' and exit 0."""
    incident = new_incident(tmp_path)
    verify(incident, "h", OK, UNKNOWN)
    assert incident.finish(runner_status="successful", runner_rc=0) == 6
    assert incident.data["status"] == "could not verify"
    assert EXIT_CODES[6][0] == "could not verify"


def test_check_mode_with_a_problem_is_diagnosed(tmp_path):
    incident = new_incident(tmp_path, check_mode=True)
    gate(incident, "h", "Restart the API", "planned")
    verify(incident, "h", FAILED)
    assert incident.finish(runner_status="successful", runner_rc=0) == 3
    assert incident.data["status"] == "diagnosed"


def test_every_host_has_its_own_verdict_and_the_worst_is_the_run(tmp_path):
    incident = new_incident(tmp_path)
    verify(incident, "a", OK)
    verify(incident, "b", OK, UNKNOWN)
    verify(incident, "c", FAILED)
    assert incident.finish(runner_status="successful", runner_rc=0) == 3
    assert incident.data["hosts"] == {"a": {"status": "healthy", "exit_code": 0},
                                      "b": {"status": "could not verify", "exit_code": 6},
                                      "c": {"status": "unresolved", "exit_code": 3}}
    assert {c["host"] for c in incident.data["verification"]["checks"]} == {"a", "b", "c"}
    assert incident.data["verification"]["state"] == "unresolved"


def test_a_record_written_before_three_valued_checks_still_reads(tmp_path):
    incident = new_incident(tmp_path)
    incident.data["verification"] = {"resolved": False, "checks": [{"name": "x", "ok": False}]}
    assert incident.finish(runner_status="successful", runner_rc=0) == 3


def test_the_help_lists_every_exit_code():
    from synap_play.cli import EXIT_CODES_HELP

    for code in EXIT_CODES:
        assert f"\n  {code:<4} " in EXIT_CODES_HELP


def test_a_result_dropped_for_its_size_fails_the_run(tmp_path):
    """ansible-runner empties a result over MAX_EVENT_RES: the run must not pass on the gap."""
    incident = new_incident(tmp_path)
    incident.observe(event("runner_on_ok", "Assess | Look", "h", "synap.ops.diagnose", {}))
    assert incident.finish(runner_status="successful", runner_rc=0) == 4
    assert "too large to reach the record" in incident.data["errors"][0]["msg"]


def test_module_messages_quote_a_bounded_excerpt():
    gather = importlib.import_module("ansible_collections.synap.ops.plugins.module_utils.gather")
    failures = gather.PartFailures()
    failures.add("runs", "not_understood", "x" * 1_000_000)
    result = gather.shaped({"msg": "y" * 1_000_000}, ["runs"], failures)
    assert len(result["failures"]["runs"]) < 600 and result["failures"]["runs"].endswith("(999500 more characters)")
    assert len(result["msg"]) < 2100


def test_the_readme_exit_code_table_is_the_enum():
    """One ExitCode: the README's table says what the enum says, code for code."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = readme.split("| code | meaning |\n|---|---|\n", 1)[1].split("\n\n", 1)[0]
    rows = [line.strip("|").split("|", 1) for line in table.splitlines()]
    assert [(int(code), meaning.strip(" |")) for code, meaning in rows] == [(c.value, c.meaning) for c in ExitCode]
