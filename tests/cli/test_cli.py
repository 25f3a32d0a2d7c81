"""The CLI's options, error paths and exit codes, with the exact messages an operator sees.

Runs that reach a playbook use the real ansible-runner and real ansible-playbook against localhost.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

INVENTORY = Path(__file__).resolve().parents[1] / "fixtures" / "inventory" / "hosts.yml"


def test_help_lists_commands_examples_and_exit_codes(synap_play):
    result = synap_play("--help")
    assert result.exit_code == 0
    for text in ("list", "run", "incidents", "show", "lab", "synap-play worker-queue-backup --severity P1",
                 "130  interrupted", "3    a problem was found"):
        assert text in result.output


def test_run_help_documents_every_option(synap_play):
    result = synap_play("run", "--help", catalog=False)
    assert result.exit_code == 0
    for option in ("--severity", "--inventory", "--check", "--yes", "--limit", "--extra-vars", "--output",
                   "--incidents-dir", "--operator", "--verbose", "Exit codes:"):
        assert option in result.output


def test_version(synap_play):
    result = synap_play("--version")
    assert result.exit_code == 0 and "synap-play, version" in result.output


def test_list_shows_only_scenarios_with_a_playbook(synap_play):
    result = synap_play("list")
    assert result.exit_code == 0
    assert "fixture-flag  P1" in result.output and "FixtureAlert" in result.output
    assert "fixture-missing" not in result.output


def test_list_json(synap_play):
    result = synap_play("list", "--output", "json")
    names = [s["name"] for s in json.loads(result.output)]
    assert names == ["fixture-flag", "fixture-fail", "fixture-slow"]


# The runbook's five scenarios, each with its playbook in playbooks/.
REAL_SCENARIOS = [("high-error-rate", "P1"), ("worker-queue-backup", "P2"), ("database-connection-failure", "P0"),
                  ("elevated-latency", "P2"), ("proposal-system-failure", "P1")]


def test_the_real_catalog_lists_every_scenario(synap_play):
    result = synap_play("list", catalog=False)
    assert result.exit_code == 0
    assert [tuple(line.split()[:2]) for line in result.output.splitlines()] == REAL_SCENARIOS
    listed = json.loads(synap_play("list", "--output", "json", catalog=False).output)
    assert [(s["name"], s["severity"]) for s in listed] == REAL_SCENARIOS
    assert all(Path(s["playbook"]).is_file() for s in listed)


@pytest.mark.parametrize("argv", [["nosuch"], ["run", "nosuch"], ["fixture-missing"]])
def test_unknown_scenario_exits_2_with_the_message(synap_play, argv, incidents_dir):
    result = synap_play(*argv)
    assert result.exit_code == 2
    name = argv[-1]
    assert result.output.strip() == f"Error: unknown scenario '{name}'; run 'synap-play list'"
    assert not incidents_dir.exists()


def test_bad_severity_is_a_usage_error(synap_play):
    result = synap_play("fixture-flag", "--severity", "P9")
    assert result.exit_code == 2
    assert "Invalid value for '--severity': 'P9' is not one of 'P0', 'P1', 'P2', 'P3'." in result.output


def test_unknown_inventory_name(synap_play):
    result = synap_play("fixture-flag", "-i", "nosuch")
    assert result.exit_code == 2
    assert "Error: inventory 'nosuch' not found; use one of" in result.output


def test_missing_inventory_path(synap_play):
    result = synap_play("fixture-flag", "-i", "/nonexistent/inventory.yml")
    assert result.exit_code == 2
    assert result.output.strip() == "Error: inventory path /nonexistent/inventory.yml does not exist"


def test_extra_var_without_equals(synap_play):
    result = synap_play("fixture-flag", "-i", str(INVENTORY), "-e", "flag_path")
    assert result.exit_code == 2
    assert result.output.strip() == "Error: extra var 'flag_path' is not key=value; use -e key=value or -e @file.yml"


def test_extra_vars_file_missing(synap_play):
    result = synap_play("fixture-flag", "-i", str(INVENTORY), "-e", "@/nonexistent.yml")
    assert result.exit_code == 2
    assert result.output.strip() == "Error: extra vars file /nonexistent.yml cannot be read: No such file or directory"


def test_extra_vars_file_not_a_mapping(synap_play, tmp_path):
    bad = tmp_path / "vars.yml"
    bad.write_text("- a\n- b\n")
    result = synap_play("fixture-flag", "-i", str(INVENTORY), "-e", f"@{bad}")
    assert result.exit_code == 2
    assert result.output.strip() == f"Error: extra vars file {bad} must hold a mapping of names to values"


def test_started_at_must_be_iso(synap_play):
    result = synap_play("fixture-flag", "-i", str(INVENTORY), "--started-at", "yesterday")
    assert result.exit_code == 2
    assert "is not an ISO-8601 time" in result.output


def test_incidents_empty_and_show_unknown(synap_play, incidents_dir):
    result = synap_play("incidents")
    assert result.exit_code == 0 and "No incident records" in result.output
    result = synap_play("show", "20261129T0315")
    assert result.exit_code == 2
    assert result.output.strip() == \
        f"Error: no incident '20261129T0315' in {incidents_dir}; run 'synap-play incidents'"
    result = synap_play("show", "nosuch")
    assert result.exit_code == 2 and "'nosuch' is not an incident id" in result.output
