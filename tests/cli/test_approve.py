"""`synap-play approve`: a step the severity policy held back is approved (or declined) after the run, planned
again against the system as it is then, and carried out by an approval run with a record of its own; the incident's
folder notes who decided what. Real playbooks through the real ansible-runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synap_play.serve.notes import read_notes

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
INVENTORY = FIXTURES / "inventory" / "hosts.yml"
STEP = "Mitigate | Write the wanted line"

PLAYBOOK = f"""---
- name: Fixture line scenario
  hosts: synap
  gather_facts: false
  roles:
    - role: synap.ops.incident
  tasks:
    - name: {STEP}
      tags: [phase_mitigate]
      synap.ops.mitigate:
        class: disruptive
        why: the line is missing
        module: ansible.builtin.lineinfile
        args:
          path: "{{{{ line_path }}}}"
          line: wanted
          create: true
          mode: "0644"

    - name: Resolve | Read the file
      tags: [phase_resolve]
      ansible.builtin.slurp:
        path: "{{{{ line_path }}}}"
      register: line_file
      failed_when: false
      check_mode: false

    - name: Resolve | Verify
      tags: [phase_resolve]
      ansible.builtin.include_role:
        name: synap.ops.incident
        tasks_from: verify
      vars:
        incident_checks:
          - name: the line is there
            ok: "{{{{ 'wanted' in (line_file.content | default('') | b64decode) }}}}"
"""


@pytest.fixture
def catalog(tmp_path):
    (tmp_path / "playbooks").mkdir()
    (tmp_path / "playbooks" / "line.yml").write_text(PLAYBOOK)
    path = tmp_path / "scenarios.yml"
    path.write_text("scenarios:\n  - name: fixture-line\n    title: Fixture line\n    severity: P1\n"
                    "    playbook: playbooks/line.yml\n    description: A disruptive mitigation held back at P1.\n")
    return path


@pytest.fixture
def held(synap_play, catalog, tmp_path, incidents_dir):
    """An incident whose run held the disruptive step back (P1, no terminal): its id and the file."""
    target = tmp_path / "line"
    result = synap_play("fixture-line", "-i", str(INVENTORY), "-e", f"line_path={target}", "--catalog", str(catalog),
                        catalog=False)
    assert result.exit_code == 3, result.output
    [folder] = incidents_dir.iterdir()
    record = json.loads((folder / "incident.json").read_text())
    assert [a["status"] for a in record["actions"]] == ["needs approval"]
    assert not target.exists()
    return record["id"], target


def approve(synap_play, catalog, target, *args):
    return synap_play("approve", *args, "-e", f"line_path={target}", "--catalog", str(catalog), catalog=False)


def records(incidents_dir) -> dict[str, dict]:
    return {folder.name: json.loads((folder / "incident.json").read_text()) for folder in incidents_dir.iterdir()}


def test_an_approved_step_is_planned_again_and_carried_out_by_an_approval_run(synap_play, catalog, held,
                                                                              incidents_dir):
    incident_id, target = held
    result = approve(synap_play, catalog, target, incident_id, "1", "--yes", "--operator", "lead")
    assert result.exit_code == 0, result.output
    assert target.read_text() == "wanted\n"
    [run_id] = set(records(incidents_dir)) - {incident_id}
    run = records(incidents_dir)[run_id]
    assert run["status"] == "resolved" and run["severity"] == "P1"
    assert run["approval_of"] == {"incident": incident_id, "steps": [{"task": STEP, "host": "fixture-host"}]}
    [action] = run["actions"]
    assert action["status"] == "done" and action["approval_of"] == incident_id
    assert action["reason"] == f"approved for incident {incident_id} by lead; planned again just now"
    # The escalation clock is the incident's: the approval run started when the incident did.
    assert run["started_at"] == records(incidents_dir)[incident_id]["started_at"]
    notes = read_notes(incidents_dir / incident_id)
    assert [(n["event"], n.get("by"), n.get("run")) for n in notes] == [("approved", "lead", run_id),
                                                                       ("approval_ended", None, run_id)]
    assert notes[1]["status"] == "resolved" and notes[1]["exit_code"] == 0
    # Nothing waits any more.
    again = approve(synap_play, catalog, target, incident_id, "--yes")
    assert again.exit_code == 2 and "nothing of incident" in again.output


def test_a_step_fixed_meanwhile_is_not_done_from_the_old_plan(synap_play, catalog, held, incidents_dir):
    incident_id, target = held
    target.write_text("wanted\n")  # someone fixed it by hand after the run
    before = target.stat().st_mtime_ns
    result = approve(synap_play, catalog, target, incident_id, STEP, "--yes")
    assert result.exit_code == 0, result.output
    assert target.stat().st_mtime_ns == before
    [run_id] = set(records(incidents_dir)) - {incident_id}
    [action] = records(incidents_dir)[run_id]["actions"]
    assert action["status"] == "nothing to do"
    assert "planned again there is nothing to do" in action["reason"]


def test_a_declined_step_stays_undone_and_waits_no_more(synap_play, catalog, held, incidents_dir):
    incident_id, target = held
    result = approve(synap_play, catalog, target, incident_id[:20], "--decline", "--operator", "lead")
    assert result.exit_code == 0, result.output
    assert not target.exists()
    assert len(list(incidents_dir.iterdir())) == 1  # no run
    [note] = read_notes(incidents_dir / incident_id)
    assert note["event"] == "declined" and note["steps"] == [{"task": STEP, "host": "fixture-host"}]
    assert approve(synap_play, catalog, target, incident_id, "--yes").exit_code == 2


def test_approving_asks_first_and_refuses_without_a_terminal_or_an_unknown_step(synap_play, catalog, held):
    incident_id, target = held
    result = approve(synap_play, catalog, target, incident_id)
    assert result.exit_code == 2
    assert "confirm on a terminal, or give --yes" in result.output
    unknown = approve(synap_play, catalog, target, incident_id, "7", "--yes")
    assert unknown.exit_code == 2
    assert f"no step '7' waits for approval (waiting: 1: {STEP} on fixture-host)" in unknown.output
    assert not target.exists()


def test_an_incident_that_does_not_exist_is_named(synap_play, catalog, tmp_path):
    result = approve(synap_play, catalog, tmp_path / "x", "20990101T000000Z-fixture-line-abcdef", "--yes")
    assert result.exit_code == 2 and "no incident" in result.output
