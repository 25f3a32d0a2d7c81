"""`synap-play alert`: Alertmanager payloads in, one real scenario run per scenario out (real ansible-runner)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from alert_helpers import CATALOG, alertmanager_payload

from synap_play.collection import load

load()  # alert intake is the collection's (plugins/plugin_utils/alerts.py), shared with the EDA event source
from ansible_collections.synap.ops.plugins.plugin_utils.alerts import (  # noqa: E402
    DEFAULT_ALERT_MAP,
    PayloadError,
    load_mapping,
    parse_payload,
)
from ansible_collections.synap.ops.plugins.plugin_utils.catalog import DEFAULT_CATALOG, load_catalog  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


# -- the payload ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("body", "message"), [
    ("{not json", "payload is not JSON: Expecting property name enclosed in double quotes at line 1 column 2"),
    ("[]", "payload must be a JSON object with 'version', 'status' and 'alerts'"),
    ('{"version": "3", "status": "firing", "alerts": []}',
     "payload version '3' is not supported; synap-play reads Alertmanager webhook version 4"),
    ('{"version": "4", "status": "burning", "alerts": []}', "payload status 'burning' must be 'firing' or 'resolved'"),
    ('{"version": "4", "status": "firing", "alerts": []}', "payload has no 'alerts' list, or it is empty"),
    ('{"version": "4", "status": "firing", "alerts": [{"labels": {}}]}', "alerts[0] has no labels.alertname"),
    ('{"version": "4", "status": "firing", "alerts": [{"labels": {"alertname": "A"}, "startsAt": "yesterday"}]}',
     "alerts[0].startsAt 'yesterday' is not an RFC 3339 time such as 2026-11-29T03:15:00Z"),
])
def test_malformed_payloads_are_refused_with_the_reason(body, message):
    with pytest.raises(PayloadError) as raised:
        parse_payload(body)
    assert str(raised.value) == message


def test_payload_times_keep_alertmanagers_nanoseconds_and_zero_time():
    [alert] = parse_payload(json.dumps(alertmanager_payload({"name": "A", "severity": "critical"})))
    assert alert.starts_at.isoformat() == "2026-11-29T03:15:00.123456+00:00"
    assert (alert.name, alert.status, alert.severity_label, alert.fingerprint) == ("A", "firing", "critical", "f" * 16)


def test_the_shipped_mapping_covers_the_runbook_and_synaps_alerts():
    catalog = load_catalog(ROOT / "playbooks" / "scenarios.yml")
    mapping = load_mapping(ROOT / "playbooks" / "alerts.yml", catalog)
    expected = {"HighErrorRate": "high-error-rate", "WorkerQueueBackup": "worker-queue-backup",
                "DatabaseConnectionFailure": "database-connection-failure", "ElevatedLatency": "elevated-latency",
                "ProposalSystemFailure": "proposal-system-failure", "PodHighErrorRate": "high-error-rate",
                "PostgresConnectionPoolExhausted": "database-connection-failure",
                "HubProtocolHighLatency": "elevated-latency", "PodDown": "database-connection-failure",
                # synap-play's own rules in monitoring/, for the lab faults no runbook alert sees.
                "PostgresConnectionLeak": "database-connection-failure", "PostgresSlowQueries": "worker-queue-backup"}
    assert {name: route.scenario for name, route in mapping.alerts.items()} == expected
    # The catalog's own alert lists and the mapping file must agree, or `list` and `alert` would disagree.
    file_routes = yaml.safe_load((ROOT / "playbooks" / "alerts.yml").read_text())["alerts"]
    for scenario in catalog.values():
        for name in scenario.alerts:
            route = file_routes[name]
            assert (route if isinstance(route, str) else route["scenario"]) == scenario.name
    assert mapping.severities["critical"] == "P1" and mapping.severities["warning"] == "P2"
    assert mapping.alerts["DatabaseConnectionFailure"].severity == "P0"


def test_the_collections_own_catalog_and_mapping_are_the_defaults():
    """An installed collection (the EDA source) runs with its own playbooks/scenarios.yml and alerts.yml."""
    assert (DEFAULT_CATALOG, DEFAULT_ALERT_MAP) == (ROOT / "playbooks" / "scenarios.yml", ROOT / "playbooks" / "alerts.yml")


# -- the command ---------------------------------------------------------------------------------------
def test_unknown_alert_name_exits_2_with_the_message(synap_alert, records):
    result = synap_alert("NoSuchAlert")
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == (
        f"Error: unknown alert 'NoSuchAlert'; map it to a scenario in {Path(__file__).parent / 'data' / 'alerts.yml'} "
        "(known: FixtureAlert, FixtureBroken, FixtureNotInstalled, FixturePinned)")
    assert records() == []


def test_name_and_payload_together_is_a_usage_error(synap_alert):
    result = synap_alert("FixtureAlert", payload=alertmanager_payload({"name": "FixtureAlert"}))
    assert result.exit_code == 2
    assert "Error: give an alert NAME or --payload FILE|-, not both or neither" in result.stderr


@pytest.mark.parametrize(("body", "message"), [
    ("", "Error: payload is empty; give an Alertmanager webhook body (JSON, version 4)"),
    ('{"version": "4", "status": "firing", "alerts": [{"labels": {"severity": "page"}}]}',
     "Error: alerts[0] has no labels.alertname"),
])
def test_malformed_payload_on_stdin_exits_2(synap_alert, records, body, message):
    result = synap_alert(payload=body)
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == message
    assert records() == []


def test_resolved_alerts_run_nothing(synap_alert, records):
    payload = alertmanager_payload({"name": "FixtureAlert", "fingerprint": "abc"}, status="resolved")
    result = synap_alert(payload=payload)
    assert result.exit_code == 0
    assert result.stderr.splitlines() == ["synap-play alert: resolved: FixtureAlert (abc): nothing to run",
                                          "synap-play alert: nothing to run: 1 resolved alert(s)"]
    assert records() == []


def test_several_alerts_for_one_scenario_run_it_once(synap_alert, records, tmp_path):
    flag = tmp_path / "flag"
    payload = alertmanager_payload(
        {"name": "FixtureAlert", "severity": "warning", "starts_at": "2026-11-29T03:15:00Z", "fingerprint": "a1"},
        {"name": "FixtureAlert", "severity": "page", "starts_at": "2026-11-29T03:05:00.5Z", "fingerprint": "b2"},
        {"name": "FixturePinned", "severity": "info", "starts_at": "2026-11-29T03:20:00Z", "fingerprint": "c3"},
        {"name": "FixtureAlert", "status": "resolved", "fingerprint": "d4"},
    )
    result = synap_alert("--output", "json", payload=payload, flag=flag)
    assert result.exit_code == 0, result.output
    assert "synap-play alert: FixtureAlert, FixturePinned (3 alerts) -> fixture-flag at P0" in result.stderr
    assert "synap-play alert: resolved: FixtureAlert (d4): nothing to run" in result.stderr
    [record] = records()
    assert json.loads(result.stdout) == record
    # The incident starts when the earliest alert started: the escalation ladder counts from there.
    assert record["started_at"] == "2026-11-29T03:05:00Z"
    assert record["escalation"]["level"] == 4
    # P0 (the most severe of the alerts) runs the disruptive fix without asking.
    assert record["severity"] == "P0" and record["status"] == "resolved"
    assert flag.read_text() == "flag raised\n"


def test_alert_by_name_takes_the_scenario_default_and_run_options(synap_alert, records, tmp_path):
    result = synap_alert("FixtureAlert", "--check", "--operator", "alice")
    assert result.exit_code == 3
    [record] = records()
    assert (record["scenario"], record["severity"], record["operator"], record["check_mode"]) == \
        ("fixture-flag", "P1", "alice", True)
    assert not (tmp_path / "flag").exists()


def test_unknown_alerts_beside_known_ones_need_a_human(synap_alert, records):
    payload = alertmanager_payload({"name": "FixturePinned"}, {"name": "Mystery", "fingerprint": "m1"},
                                   {"name": "FixtureNotInstalled"})
    result = synap_alert(payload=payload)
    assert result.exit_code == 3, result.output
    assert ("synap-play alert: unknown alert 'Mystery' (m1): no scenario maps it; add it to "
            f"{Path(__file__).parent / 'data' / 'alerts.yml'}") in result.stderr
    assert ("synap-play alert: alert 'FixtureNotInstalled' maps to scenario 'fixture-missing', which is not in the "
            "catalog or not installed; run 'synap-play list'") in result.stderr
    [record] = records()
    assert record["status"] == "resolved"


def test_only_unknown_firing_alerts_exit_2(synap_alert, records):
    result = synap_alert(payload=alertmanager_payload({"name": "Mystery"}))
    assert result.exit_code == 2
    assert result.stderr.splitlines()[-1] == "Error: no firing alert maps to an installed scenario; nothing was run"
    assert records() == []


def test_a_failing_scenario_gives_exit_4(synap_alert, records):
    result = synap_alert("FixtureBroken")
    assert result.exit_code == 4
    assert records()[0]["status"] == "failed"


def test_catalog_alerts_work_without_a_mapping_file(tmp_path):
    mapping = load_mapping(None, load_catalog(CATALOG))
    assert mapping.route("FixtureAlert").scenario == "fixture-flag"
