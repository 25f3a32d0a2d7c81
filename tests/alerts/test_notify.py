"""The notify role against a real local HTTP receiver, through a real ansible-playbook run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from alert_helpers import INVENTORY
from ansible_collections.synap.ops.plugins.plugin_utils.incident_record import escalation
from click.testing import CliRunner
from receiver import Receiver

from synap_play.cli import cli

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = Path(__file__).resolve().parent / "data" / "notify.yml"
LADDER_PLAYBOOK = ROOT / "tests" / "fixtures" / "playbooks" / "notify_ladder.yml"
STARTED = datetime(2026, 11, 29, 3, 15, tzinfo=UTC)
# The runbook's Escalation Path at each edge, written out here: (minutes, seconds) since the start -> the rung.
LADDER_EDGES = [
    ((14, 59), (1, "on-call engineer")),
    ((15, 0), (2, "team lead")),
    ((29, 59), (2, "team lead")),
    ((30, 0), (3, "engineering manager")),
    ((59, 59), (3, "engineering manager")),
    ((60, 0), (4, "CTO/VP Engineering")),
]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_notifications_arrive_and_a_failing_webhook_never_blocks_mitigation(tmp_path):
    marker = tmp_path / "marker"
    started = (datetime.now(UTC) - timedelta(minutes=20)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with Receiver() as receiver:
        extra = {
            "marker_path": str(marker),
            "incident_id": "20261129T031500Z-database-connection-failure-abc123",
            "incident_scenario": "database-connection-failure",
            "incident_severity": "P0",
            "incident_operator": "alice",
            "incident_started_at": started,
            "synap_contact_team_lead": "Dana (+1 555 0100)",
            "synap_contact_database_admin": "Sam (#dba)",
            "synap_notify_channels": [
                {"name": "ops-channel", "webhook_url": f"{receiver.url}/ok/T000/B000/secret-token"},
                {"name": "broken-chat", "webhook_url": f"{receiver.url}/broken"},
                {"name": "nobody-listens", "webhook_url": f"http://127.0.0.1:{closed_port()}/hook"},
            ],
        }
        (tmp_path / "extra.json").write_text(json.dumps(extra))
        env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
        proc = subprocess.run(
            [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(INVENTORY), str(PLAYBOOK),
             "-e", f"@{tmp_path / 'extra.json'}"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert marker.read_text() == "mitigated\n"  # the mitigation ran although two webhooks failed
    assert "failed=0" in proc.stdout

    ok = [r for r in receiver.received if r["path"].startswith("/ok")]
    assert [r["body"]["metadata"]["event_type"] for r in ok] == \
        ["synap_incident_acknowledge", "synap_incident_mitigated", "synap_incident_escalated"]
    assert len([r for r in receiver.received if r["path"] == "/broken"]) == 3
    assert all(r["content_type"] == "application/json" for r in receiver.received)

    acknowledge, mitigated, escalated = (r["body"]["text"].splitlines() for r in ok)
    assert acknowledge[0] == ("*[P0] database-connection-failure: acknowledged, diagnosing "
                              "(incident 20261129T031500Z-database-connection-failure-abc123, operator alice)*")
    # 20 minutes in: the ladder's second rung, and the database admin for this scenario.
    assert acknowledge[1].startswith("Escalation level 2 (team lead): Dana (+1 555 0100); database admin Sam (#dba). 20")
    assert acknowledge[-1] == "Record: incidents/20261129T031500Z-database-connection-failure-abc123/incident.json"
    assert mitigated[2:9] == [
        "Found:", "• PostgreSQL reachable: 24/25 connections (api 20), 3 idle > 600 s",
        "Done:", "• terminate pid 4242 (api, idle 812 s)",
        "Pending approval:", "• restart service postgres",
        "Record: incidents/20261129T031500Z-database-connection-failure-abc123/incident.json",
    ]
    assert escalated[0].startswith("*[P0] database-connection-failure: NOT resolved, escalating")
    payload = ok[1]["body"]["metadata"]["event_payload"]
    assert payload == {"incident_id": "20261129T031500Z-database-connection-failure-abc123",
                       "scenario": "database-connection-failure", "severity": "P0", "event": "mitigated",
                       "escalation_level": 2, "escalation_contact": "Dana (+1 555 0100)", "pending_approvals": 1,
                       "record": "incidents/20261129T031500Z-database-connection-failure-abc123/incident.json"}
    # The console names webhooks, never their (secret) URLs.
    assert "secret-token" not in proc.stdout


def test_deliveries_and_failures_are_on_the_incident_record_and_webhook_urls_are_not(tmp_path):
    with Receiver() as receiver:
        inventory = tmp_path / "hosts.yml"
        inventory.write_text(yaml.safe_dump({"synap": {
            "hosts": {"fixture-host": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}},
            "vars": {"marker_path": str(tmp_path / "marker"), "synap_notify_channels": [
                {"name": "ops-channel", "webhook_url": f"{receiver.url}/ok/T000/B000/secret-token-0123"},
                {"name": "nobody-listens", "webhook_url": f"http://127.0.0.1:{closed_port()}/hook/secret-token-4567"}]}}}))
        result = CliRunner().invoke(cli, ["run", "fixture-notify", "-i", str(inventory), "--catalog",
                                          str(PLAYBOOK.parent / "scenarios.yml"), "--incidents-dir",
                                          str(tmp_path / "incidents"), "--output", "json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert [(n["channel"], n["delivered"]) for n in record["notifications"]] == \
        [("ops-channel", True), ("nobody-listens", False)] * 3
    assert record["notifications"][1]["error"].startswith("Status code was -1")
    assert any(e["event"].startswith("notification to nobody-listens failed: ") for e in record["timeline"])
    for path in (tmp_path / "incidents").rglob("*"):
        if path.is_file():
            assert "secret-token" not in path.read_text(errors="replace"), path


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@pytest.mark.parametrize(("elapsed", "rung"), LADDER_EDGES, ids=[f"{m}m{s:02d}s" for (m, s), _ in LADDER_EDGES])
def test_the_record_climbs_the_ladder_at_its_edges(elapsed, rung):
    level, contact = rung
    got = escalation(STARTED, STARTED + timedelta(minutes=elapsed[0], seconds=elapsed[1]))
    assert (got["level"], got["contact"]) == (level, contact)


def test_the_notify_role_climbs_the_ladder_at_the_same_edges(tmp_path):
    moments = [stamp(STARTED + timedelta(minutes=m, seconds=s)) for (m, s), _ in LADDER_EDGES]
    with Receiver() as receiver:
        extra = {
            "incident_started_at": stamp(STARTED),
            "ladder_moments": moments,
            "synap_notify_channels": [{"name": "ops-channel", "webhook_url": f"{receiver.url}/ok/ladder"}],
        }
        (tmp_path / "extra.json").write_text(json.dumps(extra))
        env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
        proc = subprocess.run(
            [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(INVENTORY), str(LADDER_PLAYBOOK),
             "-e", f"@{tmp_path / 'extra.json'}"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    rungs = []
    for post in receiver.received:
        line = post["body"]["text"].splitlines()[1]
        rungs.append((post["body"]["metadata"]["event_payload"]["escalation_level"], line.split("(", 1)[1].split(")", 1)[0]))
    assert rungs == [rung for _, rung in LADDER_EDGES]
    # The minutes shown are rounded, the rung is not: 14:59 reads 15.0 and is still the first rung.
    assert receiver.received[0]["body"]["text"].splitlines()[1] == (
        "Escalation level 1 (on-call engineer): on-call engineer (check PagerDuty). 15.0 min since the incident started.")
