"""synap.ops.pagerduty_event against a local receiver speaking the PagerDuty Events API v2 (pagerduty_receiver.py):
the event shapes, what is retried and what is not, check mode, and the routing key kept out of everything shown.
The module runs as Ansible runs it, in its own interpreter."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest.mock import ANY

import pytest
from alert_helpers import alertmanager_payload
from ansible_collections.synap.ops.plugins.module_utils.pagerduty import (
    MAX_FINDING_CHARS,
    MAX_FINDINGS,
    MAX_SUMMARY,
    EventError,
    build_event,
    cut_summary,
    finding_lines,
    retry_after_seconds,
)
from click.testing import CliRunner
from pagerduty_receiver import PagerDutyReceiver
from receiver import Receiver

from synap_play.cli import cli
from synap_play.project import collections_path

ROOT = Path(__file__).resolve().parents[2]
CATALOG = Path(__file__).resolve().parent / "data" / "scenarios.yml"
# A scenario whose diagnosis (synap.ops.diagnose) has findings, then two safe mitigations.
FINDINGS_CATALOG = Path(__file__).resolve().parent / "data" / "pagerduty_findings" / "scenarios.yml"
ROUTING_KEY = "pdroutingkey0123456789abcdefABCD"  # 32 characters, as PagerDuty's integration keys
INCIDENT = "20261129T031500Z-database-connection-failure-abc123"
TRIGGER = {"summary": "[P0] database-connection-failure on db-1", "source": "db-1", "severity": "critical",
           "timestamp": "2026-11-29T03:15:00Z", "component": "postgres", "group": "synap",
           "event_class": "database-connection-failure",
           "custom_details": {"findings": ["PostgreSQL refuses connections: too many clients"], "incident_id": INCIDENT}}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(args: dict, *, check: bool = False) -> tuple[dict, str]:
    """The module's result, and everything it printed (stdout and stderr)."""
    module_args = {"routing_key": ROUTING_KEY, "dedup_key": INCIDENT, "retry_delay": 0.01, **args,
                   "_ansible_check_mode": check}
    proc = subprocess.run([sys.executable, "-m", "ansible_collections.synap.ops.plugins.modules.pagerduty_event"],
                          input=json.dumps({"ANSIBLE_MODULE_ARGS": module_args}), capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(collections_path(ROOT))), timeout=60, check=False)
    try:
        return json.loads(proc.stdout), proc.stdout + proc.stderr
    except json.JSONDecodeError as exc:
        raise AssertionError(f"no JSON (rc={proc.returncode}):\n{proc.stdout}\n{proc.stderr}") from exc


def test_a_trigger_carries_the_documented_payload_and_the_incident_id_as_dedup_key():
    with PagerDutyReceiver() as pd:
        result, printed = run({"url": pd.url, "event_action": "trigger", **TRIGGER})
    assert not result.get("failed"), result
    assert (result["changed"], result["status"], result["dedup_key"], result["attempts"]) == (True, 202, INCIDENT, 1)
    assert result["message"] == "Event processed" and result["errors"] == []
    [request] = pd.received
    assert request["content_type"] == "application/json"
    assert request["event"] == {
        "routing_key": ROUTING_KEY, "event_action": "trigger", "dedup_key": INCIDENT,
        "payload": {"summary": TRIGGER["summary"], "source": "db-1", "severity": "critical",
                    "timestamp": "2026-11-29T03:15:00Z", "component": "postgres", "group": "synap",
                    "class": "database-connection-failure", "custom_details": TRIGGER["custom_details"]}}
    assert result["event"]["routing_key"] == "********"
    assert ROUTING_KEY not in printed


@pytest.mark.parametrize("action", ["acknowledge", "resolve"])
def test_acknowledge_and_resolve_carry_only_the_routing_key_the_action_and_the_dedup_key(action):
    with PagerDutyReceiver() as pd:
        # The payload options a role passes anyway are left out: the API takes a payload with a trigger only.
        result, printed = run({"url": pd.url, "event_action": action, **TRIGGER})
    assert (result.get("failed"), result["status"], result["dedup_key"]) == (None, 202, INCIDENT)
    assert [r["event"] for r in pd.received] == [{"routing_key": ROUTING_KEY, "event_action": action,
                                                  "dedup_key": INCIDENT}]
    assert result["msg"] == f"{action} delivered to PagerDuty: Event processed (dedup_key {INCIDENT}, 1 attempt)"
    assert ROUTING_KEY not in printed


def test_a_long_summary_is_cut_to_the_apis_limit():
    with PagerDutyReceiver() as pd:
        result, _ = run({"url": pd.url, "event_action": "trigger", **dict(TRIGGER, summary="x" * 3000)})
    assert result["status"] == 202
    summary = pd.received[0]["event"]["payload"]["summary"]
    assert len(summary) == MAX_SUMMARY and summary.endswith("...")


def test_an_invalid_event_is_not_retried_and_pagerdutys_errors_are_reported():
    with PagerDutyReceiver() as pd:
        result, printed = run({"url": pd.url, "routing_key": "too-short-a-key", "event_action": "resolve",
                               "max_attempts": 5})
    assert result["failed"] is True
    assert (result["status"], result["attempts"], result["statuses"]) == (400, 1, [400])
    assert len(pd.received) == 1
    assert result["errors"] == ["Length of 'routing_key' is incorrect (should be 32 characters)"]
    assert "rejected the event as invalid (Event object is invalid): Length of 'routing_key' is incorrect" \
        in result["msg"]
    assert "too-short-a-key" not in printed


def test_rate_limited_events_are_retried_with_exponential_backoff_then_delivered():
    with PagerDutyReceiver() as pd:
        pd.rate_limit(2)
        result, printed = run({"url": pd.url, "event_action": "trigger", **TRIGGER, "retry_delay": 0.3,
                               "max_attempts": 4})
    assert not result.get("failed"), result
    assert (result["status"], result["attempts"], result["statuses"]) == (202, 3, [429, 429, 202])
    assert [r["status"] for r in pd.received] == [429, 429, 202]
    assert all(r["event"] == pd.received[0]["event"] for r in pd.received)  # the same event each time
    first_wait, second_wait = (b["at"] - a["at"] for a, b in zip(pd.received, pd.received[1:], strict=False))
    assert first_wait >= 0.3 and second_wait >= 0.6  # doubled
    assert ROUTING_KEY not in printed


def test_retry_after_is_honoured():
    with PagerDutyReceiver() as pd:
        pd.rate_limit(1, retry_after="1")
        result, _ = run({"url": pd.url, "event_action": "acknowledge", "retry_delay": 0.01})
    assert (result["status"], result["attempts"]) == (202, 2)
    assert pd.received[1]["at"] - pd.received[0]["at"] >= 1.0


def test_a_retry_after_longer_than_max_retry_delay_ends_the_retries_at_once():
    with PagerDutyReceiver() as pd:
        pd.rate_limit(1, retry_after="3600")
        result, _ = run({"url": pd.url, "event_action": "acknowledge", "max_retry_delay": 5})
    assert result["failed"] is True
    assert (result["status"], result["attempts"]) == (429, 1)
    assert "PagerDuty asks to retry after 3600 s, longer than max_retry_delay (5 s): not retried" in result["msg"]


def test_server_errors_are_retried_until_the_attempts_are_used_up():
    with PagerDutyReceiver() as pd:
        pd.fail(5, status=503)
        result, _ = run({"url": pd.url, "event_action": "resolve", "max_attempts": 3})
    assert result["failed"] is True
    assert (result["status"], result["attempts"], len(pd.received)) == (503, 3, 3)
    assert result["msg"].endswith("could not take the event now (Internal server error) (after 3 attempts)")


def test_nobody_listening_is_a_failed_delivery_with_a_reason_not_a_traceback():
    result, printed = run({"url": f"http://127.0.0.1:{closed_port()}/v2/enqueue", "event_action": "resolve",
                           "max_attempts": 2})
    assert result["failed"] is True
    assert (result["status"], result["attempts"], result["statuses"]) == (None, 2, [None, None])
    assert "connection refused" in result["msg"] and "Traceback" not in printed


def test_check_mode_sends_nothing_and_shows_the_event_it_would_send():
    with PagerDutyReceiver() as pd:
        result, printed = run({"url": pd.url, "event_action": "trigger", **TRIGGER}, check=True)
    assert pd.received == []
    assert (result["changed"], result["status"], result["attempts"]) == (True, None, 0)
    assert result["event"]["routing_key"] == "********"
    assert result["event"]["payload"]["severity"] == "critical"
    assert result["actions"] == [{"description": f"PagerDuty trigger of {INCIDENT}"}]
    assert ROUTING_KEY not in printed


def test_a_trigger_without_its_payload_is_refused_before_anything_is_sent():
    with PagerDutyReceiver() as pd:
        result, printed = run({"url": pd.url, "event_action": "trigger", "summary": "no source nor severity"})
    assert result["failed"] is True and pd.received == []
    assert "source, severity" in result["msg"]
    assert ROUTING_KEY not in printed


# -- the pure helpers ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("header", "seconds"), [("7", 7.0), ("0", 0.0), (None, None), ("", None), ("soon", None)])
def test_retry_after_in_seconds(header, seconds):
    assert retry_after_seconds(header) == seconds


def test_retry_after_as_an_http_date():
    now = datetime(2026, 11, 29, 3, 15, tzinfo=UTC)
    assert retry_after_seconds("Sun, 29 Nov 2026 03:15:30 GMT", now=now) == 30.0
    assert retry_after_seconds("Sun, 29 Nov 2026 03:14:00 GMT", now=now) == 0.0
    assert retry_after_seconds((now + timedelta(seconds=5)).strftime("%a, %d %b %Y %H:%M:%S GMT"), now=now) == 5.0


def test_summary_is_one_line_within_the_limit():
    assert cut_summary("a\n  b\tc") == "a b c"
    assert len(cut_summary("y" * 2000)) == MAX_SUMMARY


@pytest.mark.parametrize(("args", "message"), [
    ({"action": "page"}, "event_action must be one of trigger, acknowledge, resolve"),
    ({"dedup_key": ""}, "dedup_key is empty"),
    ({"dedup_key": "k" * 256}, "PagerDuty takes at most 255"),
    ({"routing_key": ""}, "routing_key is empty"),
    ({"severity": "P0"}, "severity must be one of critical, error, warning, info"),
    ({"source": None}, "a trigger needs source"),
])
def test_events_pagerduty_would_reject_are_not_built(args, message):
    given = {"routing_key": ROUTING_KEY, "action": "trigger", "dedup_key": INCIDENT, "summary": "s", "source": "h",
             "severity": "error", **args}
    with pytest.raises(EventError, match=message):
        build_event(given.pop("routing_key"), given.pop("action"), given.pop("dedup_key"), **given)


def test_findings_are_one_line_each_host_look_up_and_summary():
    assert finding_lines(["a\n  b", {"host": "db-1", "look_up": "db", "source": "postgres_activity_info",
                                      "summary": "24/25 connections", "details": {"sessions": [1, 2, 3]}},
                          {"host": "api-1", "source": "external_info", "summary": "hub unreachable"}]) == [
        "a b", "db-1: db: 24/25 connections", "api-1: external_info: hub unreachable"]


def test_a_trigger_with_any_number_of_findings_stays_far_below_pagerdutys_512_kb():
    findings = [{"host": f"host-{n}", "look_up": "db", "summary": "x" * 10_000} for n in range(5000)]
    event = build_event(ROUTING_KEY, "trigger", INCIDENT, summary="s", source="h", severity="error",
                        custom_details={"findings": findings, "incident_id": INCIDENT})
    lines = event["payload"]["custom_details"]["findings"]
    assert len(lines) == MAX_FINDINGS and all(len(line) <= MAX_FINDING_CHARS for line in lines)
    assert lines[0].startswith("host-0: db: xxx") and lines[0].endswith("...")
    assert lines[-1] == f"... and {5000 - MAX_FINDINGS + 1} more in the incident record"
    assert event["payload"]["custom_details"]["incident_id"] == INCIDENT
    assert len(json.dumps(event)) < 32 * 1024


# -- the incident's PagerDuty events, through a real scenario run ---------------------------------------------
# The notify role triggers at Acknowledge and resolves on a verified resolution; the severity gate sends a second
# trigger with the findings before the first mitigation it weighs, and the acknowledge as the first one starts.


def scenario_run(tmp_path, pd: PagerDutyReceiver, outcome: str = "resolved", hosts: dict | None = None,
                 channels: list | None = None, extra_args: tuple = (), scenario: str = "fixture-pagerduty",
                 catalog: Path = CATALOG, group_vars: dict | None = None, watch=None):
    """``synap-play run <scenario>`` on a local inventory whose channels are a webhook and PagerDuty; returns (the
    exit code, the record, click's result). ``watch(chat)``, when given, is what PagerDuty's receiver notes as each
    event comes (chat: the webhook's receiver)."""
    hosts = hosts or {"fixture-host": {"marker_path": str(tmp_path / "marker")}}
    for variables in hosts.values():
        variables.update(ansible_connection="local", ansible_python_interpreter=sys.executable)
    with Receiver() as chat:
        if watch is not None:
            pd.watch = lambda: watch(chat)
        group_vars = {
            "fixture_outcome": outcome,
            "notify_pagerduty_retry_delay": 0.05,
            "synap_notify_channels": channels or [
                {"name": "ops-channel", "webhook_url": f"{chat.url}/ok/T000/B000/chat-secret-token"},
                {"name": "on-call", "type": "pagerduty", "routing_key": ROUTING_KEY, "url": pd.url},
            ],
            **(group_vars or {}),
        }
        inventory = tmp_path / "hosts.yml"
        inventory.write_text(json.dumps({"synap": {"hosts": hosts, "vars": group_vars}}))
        result = CliRunner().invoke(cli, ["run", scenario, "-i", str(inventory), "--catalog", str(catalog),
                                          "--incidents-dir", str(tmp_path / "incidents"), "--output", "json",
                                          *extra_args], catch_exceptions=False)
        pd.watch = None
    record = json.loads(result.stdout) if result.stdout.strip().startswith("{") else {}
    return result.exit_code, record, result


def findings_run(tmp_path, pd: PagerDutyReceiver, hosts: dict | None = None, **kwargs):
    """scenario_run of the scenario with findings: its diagnosis checks two external services that do not answer,
    one of them through a URL holding a password and a token."""
    endpoints = [
        {"name": "status-page", "url": f"http://user:hunter2secret@127.0.0.1:{closed_port()}/health?token=sekret0token",
         "timeout": 2},
        {"name": "billing", "url": f"http://127.0.0.1:{closed_port()}/billing", "timeout": 2}]
    return scenario_run(tmp_path, pd, hosts=hosts, scenario="fixture-pagerduty-findings", catalog=FINDINGS_CATALOG,
                        group_vars={"fixture_endpoints": endpoints}, **kwargs)


def chat_events(chat: Receiver) -> list[str]:
    """The notification points the webhook has heard of so far."""
    return [r["body"]["metadata"]["event_type"].removeprefix("synap_incident_") for r in list(chat.received)]


def pagerduty_notes(record: dict) -> list[tuple]:
    return [(n["event_action"], n["delivered"]) for n in record["notifications"] if n.get("type") == "pagerduty"]


def actions(events: list[dict]) -> list[str]:
    return [e["event_action"] for e in events]


def assert_the_findings_are_of_the_diagnosis(lines: list[str], hosts=("fixture-host",)):
    """One line a host (its one look-up, two services): host, look-up, the summary with the URL's secrets masked."""
    assert [line.split(": ", 2)[:2] for line in lines] == [[host, "external"] for host in hosts]
    for line in lines:
        assert "status-page (http://user:********@127.0.0.1:" in line and "billing (http://127.0.0.1:" in line
        assert "unreachable" in line and len(line) <= MAX_FINDING_CHARS


def assert_no_secret_sent(pd: PagerDutyReceiver):
    sent = json.dumps([r["event"].get("payload") for r in pd.received])
    assert "hunter2secret" not in sent and "sekret0token" not in sent


def assert_no_routing_key_anywhere(tmp_path, result):
    assert ROUTING_KEY not in result.output
    files = [p for p in (tmp_path / "incidents").rglob("*") if p.is_file()]
    assert any(p.name == "incident.json" for p in files) and any(p.name == "report.md" for p in files)
    for path in files:
        text = path.read_text(errors="replace")
        assert ROUTING_KEY not in text, path
        assert "chat-secret-token" not in text, path


def test_a_resolved_incident_is_triggered_diagnosed_acknowledged_as_its_mitigation_starts_then_resolved(tmp_path):
    marker = tmp_path / "marker"
    with PagerDutyReceiver() as pd:
        pd.rate_limit(1)  # the trigger is rate limited once, then retried
        code, record, result = scenario_run(tmp_path, pd, watch=lambda chat: (marker.exists(), chat_events(chat)))
    assert code == 0, result.output
    incident = record["id"]
    assert marker.read_text() == "mitigated\n"
    events = pd.accepted()
    assert actions(events) == ["trigger", "trigger", "acknowledge", "resolve"]
    assert {e["dedup_key"] for e in events} == {incident}
    assert [r["status"] for r in pd.received] == [429, 202, 202, 202, 202]
    trigger, diagnosed, acknowledge, resolve = events
    payload = trigger["payload"]
    assert payload["severity"] == "error"  # P1, the fixture scenario's severity
    assert payload["summary"] == f"[P1] fixture-pagerduty on fixture-host (incident {incident}, operator " \
                                 f"{record['operator']})"
    assert (payload["source"], payload["group"], payload["class"]) == ("fixture-host", "synap", "fixture-pagerduty")
    assert "component" not in payload  # no component is known for the fixture scenario
    assert payload["timestamp"] == record["started_at"]
    details = payload["custom_details"]
    assert (details["incident_id"], details["scenario"], details["severity"]) == (incident, "fixture-pagerduty", "P1")
    assert details["escalation_level"] == 1 and details["record"] == f"incidents/{incident}/incident.json"
    assert (details["findings"], details["alerts"]) == ([], [])
    # The same alert again once the diagnosis is known, with its findings (this fixture's look is a stat: none). Its
    # escalation line was written a moment later: its minutes may have moved on.
    assert diagnosed["payload"] == dict(payload, custom_details=dict(details, findings=[],
                                                                     escalation=ANY))
    assert acknowledge == {"routing_key": ROUTING_KEY, "event_action": "acknowledge", "dedup_key": incident}
    assert resolve == {"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": incident}
    # What each event came before: the acknowledge before the mitigation wrote the marker and before the chat heard
    # "mitigated"; the resolve after both.
    assert pd.seen() == [("trigger", (False, ["acknowledge"])), ("trigger", (False, ["acknowledge"])),
                         ("acknowledge", (False, ["acknowledge"])),
                         ("resolve", (True, ["acknowledge", "mitigated", "resolved"]))]
    # On the record: every event, delivered, with the dedup key and the attempts it took; the webhook beside them;
    # the gate's follow-ups in order with the notify role's, and named in the summary of the mitigation they came with.
    assert pagerduty_notes(record) == [("trigger", True), ("trigger", True), ("acknowledge", True), ("resolve", True)]
    assert [n["attempts"] for n in record["notifications"] if n.get("type") == "pagerduty"] == [2, 1, 1, 1]
    assert {n["dedup_key"] for n in record["notifications"] if n.get("type") == "pagerduty"} == {incident}
    assert [n["channel"] for n in record["notifications"]] == \
        ["ops-channel", "on-call", "on-call", "on-call", "ops-channel", "ops-channel", "on-call"]
    assert all(n["delivered"] for n in record["notifications"])
    [action] = record["actions"]
    assert action["summary"] == ("[safe: done] line added (PagerDuty trigger with the findings to on-call: delivered; "
                                 "PagerDuty acknowledge to on-call: delivered)")
    assert [n["task"] for n in record["notifications"] if n.get("type") == "pagerduty"][1:3] == [action["task"]] * 2
    report = (tmp_path / "incidents" / incident / "report.md").read_text()
    assert report.count("on-call (PagerDuty trigger): delivered") == 2
    assert "on-call (PagerDuty acknowledge): delivered" in report
    assert "on-call (PagerDuty resolve): delivered" in report
    assert_no_routing_key_anywhere(tmp_path, result)


def test_the_findings_reach_pagerduty_before_the_first_mitigation_and_the_acknowledge_goes_once(tmp_path):
    """A diagnosis with findings, then two mitigations: the second trigger carries the findings (one line, the
    URL's password and token masked as in the record), the acknowledge goes as the first mitigation starts and not
    again for the second."""
    first, second = tmp_path / "marker", tmp_path / "marker.second"
    with PagerDutyReceiver() as pd:
        code, record, result = findings_run(tmp_path, pd, watch=lambda chat: (first.exists(), second.exists()))
    assert code == 0, result.output
    assert first.exists() and second.exists()
    assert pd.seen() == [("trigger", (False, False)), ("trigger", (False, False)), ("acknowledge", (False, False)),
                         ("resolve", (True, True))]
    trigger, diagnosed = pd.accepted()[:2]
    assert trigger["payload"]["custom_details"]["findings"] == []  # at Acknowledge nothing is known yet
    assert_the_findings_are_of_the_diagnosis(diagnosed["payload"]["custom_details"]["findings"])
    assert diagnosed["payload"]["custom_details"] == dict(trigger["payload"]["custom_details"],
                                                          findings=diagnosed["payload"]["custom_details"]["findings"],
                                                          escalation=ANY)
    assert_no_secret_sent(pd)
    first_action, second_action = record["actions"]
    assert first_action["summary"].endswith("(PagerDuty trigger with the findings to on-call: delivered; "
                                            "PagerDuty acknowledge to on-call: delivered)")
    assert "PagerDuty" not in second_action["summary"]
    assert_no_routing_key_anywhere(tmp_path, result)


def test_hosts_mitigating_side_by_side_send_the_findings_and_the_acknowledge_once(tmp_path):
    hosts = {name: {"marker_path": str(tmp_path / name)} for name in ("first-host", "second-host")}
    with PagerDutyReceiver() as pd:
        code, record, result = findings_run(
            tmp_path, pd, hosts=hosts,
            watch=lambda chat: sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("first", "second"))))
    assert code == 0, result.output
    assert pd.seen() == [("trigger", []), ("trigger", []), ("acknowledge", []),
                         ("resolve", ["first-host", "first-host.second", "second-host", "second-host.second"])]
    diagnosed = pd.accepted()[1]
    assert_the_findings_are_of_the_diagnosis(sorted(diagnosed["payload"]["custom_details"]["findings"]),
                                             hosts=("first-host", "second-host"))
    assert diagnosed["payload"]["source"] == "first-host, second-host"
    assert sum("PagerDuty acknowledge" in a["summary"] for a in record["actions"]) == 1


@pytest.mark.parametrize(("outcome", "exit_code"), [("unresolved", 3), ("unverified", 6)])
def test_an_incident_not_verified_resolved_is_never_resolved_in_pagerduty(tmp_path, outcome, exit_code):
    with PagerDutyReceiver() as pd:
        code, record, result = scenario_run(tmp_path, pd, outcome=outcome)
    assert code == exit_code, result.output
    assert actions(pd.accepted()) == ["trigger", "trigger", "acknowledge"]
    assert pagerduty_notes(record) == [("trigger", True), ("trigger", True), ("acknowledge", True)]
    assert_no_routing_key_anywhere(tmp_path, result)


def test_no_acknowledge_when_no_mitigation_ran(tmp_path):
    (tmp_path / "marker").write_text("mitigated\n")  # nothing to do
    with PagerDutyReceiver() as pd:
        code, record, result = scenario_run(tmp_path, pd)
    assert code == 0, result.output
    assert actions(pd.accepted()) == ["trigger", "trigger", "resolve"]


def test_a_mitigation_with_nothing_to_do_acknowledges_nothing(tmp_path):
    """The policy runs the first mitigation without asking, and its plan has no work (the marker already holds its
    line): the gate sends the findings as it weighs it, but no acknowledge."""
    (tmp_path / "marker").write_text("mitigated\n")
    with PagerDutyReceiver() as pd:
        code, record, result = findings_run(tmp_path, pd, extra_args=("-e", "fixture_weigh_anyway=true"))
    assert code == 0, result.output
    assert actions(pd.accepted()) == ["trigger", "trigger", "resolve"]
    assert_the_findings_are_of_the_diagnosis(pd.accepted()[1]["payload"]["custom_details"]["findings"])
    assert [a["status"] for a in record["actions"]] == ["nothing to do", "not needed"]
    assert record["actions"][0]["summary"].endswith("(PagerDuty trigger with the findings to on-call: delivered)")


def test_a_run_whose_gate_weighs_no_mitigation_still_sends_the_findings_before_its_end(tmp_path):
    """Every mitigation's condition false: the gate never runs, so the findings go from the verification's start,
    through the notify role (PagerDuty only: the chat hears of them with the outcome), before the resolve."""
    (tmp_path / "marker").write_text("mitigated\n")
    with PagerDutyReceiver() as pd:
        code, record, result = findings_run(tmp_path, pd, watch=chat_events)
    assert code == 0, result.output
    assert pd.seen() == [("trigger", ["acknowledge"]), ("trigger", ["acknowledge"]),
                         ("resolve", ["acknowledge", "resolved"])]
    trigger, diagnosed, _resolve = pd.accepted()
    assert_the_findings_are_of_the_diagnosis(diagnosed["payload"]["custom_details"]["findings"])
    assert diagnosed["payload"]["summary"] == trigger["payload"]["summary"]
    assert_no_secret_sent(pd)
    assert pagerduty_notes(record) == [("trigger", True), ("trigger", True), ("resolve", True)]
    assert_no_routing_key_anywhere(tmp_path, result)


def test_a_mitigation_on_any_host_acknowledges_and_every_host_must_be_resolved(tmp_path):
    """Two hosts: the first had nothing to do, the second mitigated. The acknowledge goes out (a mitigation ran);
    the first host's verification passes, the second's is failing, so nothing is resolved."""
    (tmp_path / "first").write_text("mitigated\n")
    hosts = {"first-host": {"marker_path": str(tmp_path / "first")},
             "second-host": {"marker_path": str(tmp_path / "second"), "fixture_outcome": "unresolved"}}
    with PagerDutyReceiver() as pd:
        code, record, result = scenario_run(tmp_path, pd, hosts=hosts)
    assert code == 3, result.output
    assert (tmp_path / "second").read_text() == "mitigated\n"
    assert actions(pd.accepted()) == ["trigger", "trigger", "acknowledge"]
    assert pd.accepted()[0]["payload"]["source"] == "first-host, second-host"


def test_a_failing_pagerduty_never_blocks_the_mitigation_and_is_on_the_record(tmp_path):
    with PagerDutyReceiver() as pd:
        pd.fail(100, status=500)
        channels = [{"name": "on-call", "type": "pagerduty", "routing_key": ROUTING_KEY, "url": pd.url},
                    {"name": "wrong-key", "type": "pagerduty", "routing_key": "not-a-32-character-key",
                     "url": pd.url.replace("/v2/enqueue", "/v2/nowhere")},
                    {"name": "nobody-listens", "type": "pagerduty", "routing_key": ROUTING_KEY,
                     "url": f"http://127.0.0.1:{closed_port()}/v2/enqueue"}]
        code, record, result = scenario_run(tmp_path, pd, channels=channels)
    assert code == 0, result.output  # resolved: the mitigation ran and was verified
    assert (tmp_path / "marker").read_text() == "mitigated\n"
    assert pd.accepted() == []
    notes = [n for n in record["notifications"] if n.get("type") == "pagerduty"]
    assert [(n["channel"], n["event_action"], n["delivered"]) for n in notes] == [
        (channel, action, False) for action in ("trigger", "trigger", "acknowledge", "resolve")
        for channel in ("on-call", "wrong-key", "nobody-listens")]
    on_call, wrong_key, nobody = notes[:3]
    assert (on_call["status"], on_call["attempts"]) == (500, 3)
    assert "could not take the event now" in on_call["error"]
    assert (wrong_key["status"], wrong_key["attempts"]) == (404, 1)
    assert (nobody["status"], nobody["attempts"]) == (None, 3) and "connection refused" in nobody["error"]
    assert any(e["event"].startswith("PagerDuty trigger to on-call failed: ") for e in record["timeline"])
    # The gate's follow-ups failed alike, each named in the mitigation's summary.
    [action] = record["actions"]
    assert action["status"] == "done"
    for event in ("trigger with the findings", "acknowledge"):
        assert f"PagerDuty {event} to on-call: not delivered: " in action["summary"]
        assert f"PagerDuty {event} to wrong-key: not delivered: POST " in action["summary"]
        assert f"PagerDuty {event} to nobody-listens: not delivered: " in action["summary"]
    assert "not-a-32-character-key" not in json.dumps(record)
    assert_no_routing_key_anywhere(tmp_path, result)


def test_a_routing_key_is_kept_out_of_a_verbose_ansible_playbook_run_and_its_log(tmp_path):
    """Plain ansible-playbook, -vvv, with Ansible's own log file: the key is in none of them."""
    with PagerDutyReceiver() as pd:
        extra = {"marker_path": str(tmp_path / "marker"), "fixture_outcome": "resolved",
                 "incident_id": "20261129T031500Z-fixture-pagerduty-abc123", "incident_scenario": "fixture-pagerduty",
                 "incident_severity": "P0", "incident_approve": True, "incident_dir": str(tmp_path / "incidents"),
                 "notify_pagerduty_retry_delay": 0.05,
                 "synap_notify_channels": [{"name": "on-call", "type": "pagerduty", "routing_key": ROUTING_KEY,
                                            "url": pd.url}]}
        (tmp_path / "extra.json").write_text(json.dumps(extra))
        log = tmp_path / "ansible.log"
        env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1", ANSIBLE_LOG_PATH=str(log))
        proc = subprocess.run(
            [str(Path(sys.executable).with_name("ansible-playbook")), "-vvv", "-i",
             str(ROOT / "tests" / "fixtures" / "inventory" / "hosts.yml"), str(CATALOG.parent / "pagerduty.yml"),
             "-e", f"@{tmp_path / 'extra.json'}"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert actions(pd.accepted()) == ["trigger", "trigger", "acknowledge", "resolve"]
    assert pd.accepted()[0]["payload"]["severity"] == "critical"  # P0
    assert {e["dedup_key"] for e in pd.accepted()} == {"20261129T031500Z-fixture-pagerduty-abc123"}
    assert log.stat().st_size > 0
    for text in (proc.stdout, proc.stderr, log.read_text()):
        assert ROUTING_KEY not in text


def test_an_alert_started_incident_pages_with_its_alerts_and_is_not_acknowledged_when_nothing_ran(
        synap_alert, records, tmp_path):
    """The fixture-flag scenario from an Alertmanager payload: its alerts are the triggers' custom_details; its
    disruptive mitigation needs approval at P1 (no --yes), so nothing runs: the findings go as the gate weighs it,
    but no acknowledge, and, the flag still missing, no resolve."""
    with PagerDutyReceiver() as pd:
        channels = {"synap_notify_channels": [{"name": "on-call", "type": "pagerduty", "routing_key": ROUTING_KEY,
                                               "url": pd.url}]}
        result = synap_alert("-e", json.dumps(channels), payload=alertmanager_payload(
            {"name": "FixtureAlert", "severity": "critical", "summary": "the flag file is missing"}))
    assert result.exit_code == 3, result.output
    [record] = records()
    trigger, diagnosed = pd.accepted()
    assert actions([trigger, diagnosed]) == ["trigger", "trigger"]
    assert {trigger["dedup_key"], diagnosed["dedup_key"]} == {record["id"]}
    assert trigger["payload"]["severity"] == "error"  # the alert's label critical -> P1 -> error
    [alert] = trigger["payload"]["custom_details"]["alerts"]
    assert (alert["name"], alert["severity"], alert["summary"]) == ("FixtureAlert", "critical", "the flag file is missing")
    assert diagnosed["payload"]["custom_details"]["alerts"] == [alert]
    assert pagerduty_notes(record) == [("trigger", True), ("trigger", True)]
    [action] = record["actions"]
    assert action["status"] == "needs approval"
    assert action["summary"].endswith("(PagerDuty trigger with the findings to on-call: delivered)")
    assert ROUTING_KEY not in result.output


def test_a_diagnosis_only_run_pages_with_the_findings_but_neither_acknowledges_nor_resolves(tmp_path):
    """--check: the on-call engineer hears of it and of its findings (as the webhooks do); the mitigations are only
    planned, so no acknowledge, and the markers still missing, no resolve."""
    with PagerDutyReceiver() as pd:
        code, record, result = findings_run(tmp_path, pd, extra_args=("--check",))
    assert not (tmp_path / "marker").exists()
    assert code != 0, result.output
    assert actions(pd.accepted()) == ["trigger", "trigger"]
    assert_the_findings_are_of_the_diagnosis(pd.accepted()[1]["payload"]["custom_details"]["findings"])
    assert pagerduty_notes(record) == [("trigger", True), ("trigger", True)]
    assert [a["status"] for a in record["actions"]] == ["planned", "planned"]


def test_a_host_that_failed_before_its_verification_keeps_the_incident_open(tmp_path):
    """The first host is fine; the second host fails (its marker's folder is a file), so it is never verified: not
    resolved in PagerDuty, although the only verification recorded passed; nothing ran, so nothing acknowledged."""
    (tmp_path / "first").write_text("mitigated\n")
    (tmp_path / "a-file").write_text("not a folder\n")
    hosts = {"first-host": {"marker_path": str(tmp_path / "first")},
             "second-host": {"marker_path": str(tmp_path / "a-file" / "marker")}}
    with PagerDutyReceiver() as pd:
        code, record, result = scenario_run(tmp_path, pd, hosts=hosts)
    assert code != 0, result.output
    assert any(e["host"] == "second-host" for e in record["errors"])
    # The second trigger is the findings', sent before the end since no gate weighed a mitigation.
    assert actions(pd.accepted()) == ["trigger", "trigger"]


def test_the_notify_role_alone_never_lets_a_misconfigured_pagerduty_channel_stop_the_play(tmp_path):
    """tests/alerts/data/notify.yml (the role at its three points, no synap role to validate the channels, no
    severity gate): a PagerDuty channel without its routing key fails its own events only; the other channel gets
    the trigger (the acknowledge is the gate's, the escalation at the end resolves nothing)."""
    marker = tmp_path / "marker"
    with PagerDutyReceiver() as pd:
        extra = {"marker_path": str(marker), "incident_id": "20261129T031500Z-notify-abc123",
                 "incident_scenario": "database-connection-failure", "incident_severity": "P0",
                 "notify_pagerduty_retry_delay": 0.05,
                 "synap_notify_channels": [{"name": "no-key", "type": "pagerduty", "url": pd.url},
                                           {"name": "on-call", "type": "pagerduty", "routing_key": ROUTING_KEY,
                                            "url": pd.url}]}
        (tmp_path / "extra.json").write_text(json.dumps(extra))
        env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
        proc = subprocess.run(
            [str(Path(sys.executable).with_name("ansible-playbook")), "-i",
             str(ROOT / "tests" / "fixtures" / "inventory" / "hosts.yml"), str(CATALOG.parent / "notify.yml"),
             "-e", f"@{tmp_path / 'extra.json'}"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "failed=0" in proc.stdout and marker.read_text() == "mitigated\n"
    assert actions(pd.accepted()) == ["trigger"]
    trigger = pd.accepted()[0]
    assert (trigger["payload"]["severity"], trigger["payload"]["component"]) == ("critical", "postgres")
    assert trigger["payload"]["custom_details"]["findings"] == []
    assert ROUTING_KEY not in proc.stdout
