"""Real playbook runs through the real ansible-runner: records, reports, exit codes, the severity gate,
redaction, and a record written whatever the end (task failure, unreachable host, Ctrl-C)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pexpect
import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CATALOG = FIXTURES / "scenarios.yml"
INVENTORY = FIXTURES / "inventory"
SECRETS = ("fixture-db-password", "signkey-fixture-0123456789", "hunter2-extra-var", "env-db-secret")


@pytest.fixture
def flag(tmp_path):
    return tmp_path / "flag"


def run_flag(synap_play, flag, *extra):
    return synap_play("fixture-flag", "-i", str(INVENTORY / "hosts.yml"), "-e", f"flag_path={flag}", *extra)


def test_gated_mitigation_without_terminal_needs_approval(synap_play, flag, only_record):
    result = run_flag(synap_play, flag)
    assert result.exit_code == 3, result.output
    assert not flag.exists()
    folder, record = only_record()
    # The problem is still there and a mitigation waits for someone's yes.
    assert record["status"] == "needs approval"
    [action] = record["actions"]
    assert action["status"] == "needs approval" and action["class"] == "disruptive"
    assert action["reason"] == "P1 policy asks before disruptive actions; nobody answered"
    assert action["plan"] == ["ansible.builtin.lineinfile: line added"]
    assert record["verification"]["resolved"] is False
    assert [p["name"] for p in record["phases"]] == ["Acknowledge", "Assess", "Mitigate", "Resolve", "Document"]
    assert (folder / "report.md").read_text().startswith("# Post-mortem draft: Fixture flag file")


def test_yes_resolves_then_second_run_changes_nothing(synap_play, flag, incidents_dir):
    first = run_flag(synap_play, flag, "--yes")
    assert first.exit_code == 0, first.output
    assert flag.read_text() == "flag raised\n"
    second = run_flag(synap_play, flag, "--yes", "--output", "json")
    assert second.exit_code == 0
    record = json.loads(second.stdout)
    assert record["status"] == "healthy"
    assert record["actions"][0]["status"] == "not needed"
    assert record["actions"][0]["reason"].startswith("condition false")
    records = sorted(incidents_dir.iterdir())
    assert json.loads((records[0] / "incident.json").read_text())["status"] == "resolved"


def test_severity_policy_runs_disruptive_at_p0(synap_play, flag, only_record):
    result = run_flag(synap_play, flag, "--severity", "P0")
    assert result.exit_code == 0, result.output
    assert flag.exists()
    _, record = only_record()
    assert record["actions"][0]["status"] == "done"
    assert record["actions"][0]["reason"] == "P0 policy runs disruptive actions"


def test_p3_diagnoses_only(synap_play, flag, only_record):
    result = run_flag(synap_play, flag, "--severity", "P3")
    assert result.exit_code == 3
    assert not flag.exists()
    _, record = only_record()
    assert record["actions"][0]["reason"] == "P3 policy does not run disruptive actions without --yes"


def test_check_mode_plans_and_changes_nothing(synap_play, flag, only_record):
    result = run_flag(synap_play, flag, "--check", "--yes")
    assert result.exit_code == 3
    assert not flag.exists()
    _, record = only_record()
    assert record["check_mode"] is True and record["status"] == "diagnosed"
    assert record["actions"][0]["status"] == "planned"
    assert record["actions"][0]["reason"].startswith("check mode: nothing done (would run")


def test_json_output_is_the_record_and_nothing_else(synap_play, flag, incidents_dir):
    result = run_flag(synap_play, flag, "--output", "json", "--operator", "alice")
    record = json.loads(result.stdout)
    on_disk = json.loads((incidents_dir / record["id"] / "incident.json").read_text())
    assert record == on_disk
    assert record["operator"] == "alice" and record["schema_version"] == 2
    assert record["escalation"]["level"] == 1 and record["escalation"]["contact"] == "on-call engineer"


def test_started_at_sets_the_escalation_level(synap_play, flag, only_record):
    result = run_flag(synap_play, flag, "--started-at", "2020-01-01T00:00:00Z")
    assert result.exit_code == 3
    _, record = only_record()
    assert record["started_at"] == "2020-01-01T00:00:00Z"
    assert record["escalation"]["level"] == 4 and record["escalation"]["contact"] == "CTO/VP Engineering"


def test_incidents_and_show(synap_play, flag):
    run_flag(synap_play, flag)
    listing = synap_play("incidents")
    assert listing.exit_code == 0 and "fixture-flag" in listing.output and "needs approval" in listing.output
    incident_id = listing.output.split()[0]
    shown = synap_play("show", incident_id[:20])
    assert shown.exit_code == 0 and shown.output.startswith("# Post-mortem draft")
    as_json = synap_play("show", incident_id, "--output", "json")
    assert json.loads(as_json.output)["id"] == incident_id


def test_no_secret_reaches_the_incident_folder(synap_play, flag, incidents_dir):
    env = {"DATABASE_URL": "postgresql://app:env-db-secret@db.internal:5432/synap"}
    result = synap_play("fixture-flag", "-i", str(INVENTORY / "hosts.yml"), "-e", f"flag_path={flag}",
                        "-e", "admin_password=hunter2-extra-var", "-e", "dsn_in_var=$DATABASE_URL", "-v", env=env)
    assert result.exit_code == 3
    files = [p for p in incidents_dir.rglob("*") if p.is_file()]
    assert any(p.name == "incident.json" for p in files) and any("job_events" in str(p) for p in files)
    for path in files:
        text = path.read_text()
        for secret in SECRETS:
            assert secret not in text, f"{secret} found in {path}"
    assert "postgresql://synap:********@127.0.0.1:5/synap" in (sorted(incidents_dir.iterdir())[0] / "incident.json").read_text()


def test_failing_task_exits_4_and_keeps_the_record(synap_play, only_record):
    result = synap_play("fixture-fail", "-i", str(INVENTORY / "hosts.yml"))
    assert result.exit_code == 4
    folder, record = only_record()
    assert record["status"] == "failed" and record["exit_code"] == 4
    assert record["errors"][0]["task"] == "Assess | Fail on purpose"
    assert (folder / "report.md").is_file() and (folder / "artifacts" / "stdout").is_file()


def test_unreachable_host_exits_4_and_keeps_the_record(synap_play, only_record):
    result = synap_play("fixture-fail", "-i", str(INVENTORY / "unreachable.yml"))
    assert result.exit_code == 4
    _, record = only_record()
    assert record["errors"][0]["unreachable"] is True
    assert record["errors"][0]["host"] == "nowhere"


def test_broken_inventory_is_bad_input(synap_play, incidents_dir):
    """Refused before the run starts, naming the file and the line: no record."""
    result = synap_play("fixture-fail", "-i", str(INVENTORY / "broken.yml"))
    assert result.exit_code == 2
    assert "broken.yml line 3, column 1: not valid YAML" in result.output
    assert not incidents_dir.exists()


def test_limit_matching_nothing_is_bad_input(synap_play, flag):
    result = run_flag(synap_play, flag, "--limit", "no-such-host")
    assert result.exit_code == 2
    assert "--limit no-such-host matches no host of inventory" in " ".join(result.output.split())


def _synap_play_argv(*args: str, incidents: Path) -> list[str]:
    return [sys.executable, "-m", "synap_play", *args, "--catalog", str(CATALOG), "--incidents-dir", str(incidents)]


def test_ctrl_c_exits_130_and_keeps_the_record(incidents_dir):
    argv = _synap_play_argv("fixture-slow", "-i", str(INVENTORY / "hosts.yml"), incidents=incidents_dir)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not list(incidents_dir.glob("*/incident.json")):
        time.sleep(0.2)
    time.sleep(3)  # let the playbook reach its long task
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    [folder] = list(incidents_dir.iterdir())
    record = json.loads((folder / "incident.json").read_text())
    assert record["status"] == "interrupted" and record["exit_code"] == 130
    assert (folder / "report.md").is_file()


def test_terminal_operator_is_asked_once_and_approves(incidents_dir, flag):
    argv = _synap_play_argv("fixture-flag", "-i", str(INVENTORY / "hosts.yml"), "-e", f"flag_path={flag}",
                            incidents=incidents_dir)
    child = pexpect.spawn(argv[0], argv[1:], encoding="utf-8", timeout=60, dimensions=(50, 200),
                          env=dict(os.environ, TERM="dumb"))
    child.expect("Approval needed")
    child.expect("ansible.builtin.lineinfile: line added")
    child.expect(r"Run it\? \[y/N\]")
    child.sendline("y")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    assert flag.exists()
    record = json.loads(next(incidents_dir.glob("*/incident.json")).read_text())
    assert record["actions"][0]["reason"] == "approved by the operator"
    assert child.before.count("Approval needed") == 0  # asked once: nothing after the answer asks again


def test_terminal_operator_declines(incidents_dir, flag):
    argv = _synap_play_argv("fixture-flag", "-i", str(INVENTORY / "hosts.yml"), "-e", f"flag_path={flag}",
                            incidents=incidents_dir)
    child = pexpect.spawn(argv[0], argv[1:], encoding="utf-8", timeout=60, dimensions=(50, 200))
    child.expect(r"Run it\? \[y/N\]")
    child.sendline("n")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 3
    assert not flag.exists()
    record = json.loads(next(incidents_dir.glob("*/incident.json")).read_text())
    assert record["actions"][0]["status"] == "declined"


def test_open_incidents_show_the_level_they_have_reached(synap_play, flag):
    run_flag(synap_play, flag, "--started-at", "2020-01-01T00:00:00Z")
    run_flag(synap_play, flag, "--yes")
    listing = synap_play("incidents", "--output", "json")
    newest, oldest = json.loads(listing.output)
    assert newest["open"] is False and newest["status"] == "resolved" and newest["escalation"]["level"] == 1
    assert oldest["open"] is True and oldest["escalation"]["level"] == 4
    assert oldest["escalation"]["elapsed_minutes"] > 60 * 24 * 365
    text = synap_play("incidents").output
    assert "OPEN" in text and "CTO/VP Engineering" in text


@pytest.mark.parametrize("broken", [
    "- name: broken\n  hosts: all\n  tasks: [\n",
    # ansible-core follows this error with a dozen lines of context and an example (regression: the cause shown
    # was the example's last line, "raw: \"echo 'name: ansible'\"").
    "- name: broken\n  hosts: all\n  tasks:\n    - name: say\n      ansible.builtin.debug:\n        msg: a: b\n",
])
def test_a_playbook_that_never_reaches_its_play_still_leaves_a_closed_record(synap_play, tmp_path, only_record,
                                                                             broken):
    """Regression: the cause is ansible-playbook's own error line, taken from the run's events, and the record
    the playbook never opened is opened and closed by synap-play, once."""
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "broken.yml").write_text(broken)
    catalog = tmp_path / "scenarios.yml"
    catalog.write_text("scenarios:\n  - {name: fixture-broken, title: Broken, severity: P2, playbook: playbooks/broken.yml}\n")
    result = synap_play("fixture-broken", "-i", str(INVENTORY / "hosts.yml"), "--catalog", str(catalog),
                        "--no-first-look", catalog=False)
    assert result.exit_code == 4, result.output
    _folder, record = only_record()
    assert record["status"] == "failed" and record["ended_at"]
    [error] = record["errors"]
    assert error["msg"].startswith("ansible-playbook stopped before running a task: [ERROR]: YAML parsing failed")
