"""synap-play validate, and the static load of each scenario's role that lets --syntax-check read it.

The typos are written into task and inventory files of their own, in copies, so these tests hold whatever the
roles' own tasks say today.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from synap_play.cli import cli

ROOT = Path(__file__).resolve().parents[2]

TYPOS = """\
---
- name: Assess | Look at the database and the queue
  synap.ops.diagnose:
    sources:
      db:
        module: synap.ops.postgres_activiti_info
        args: {}
      inngest:
        module: synap.ops.inngest_info
        args:
          app: "{{ synap_inngest_app }}"
          gather: [health, queu]
- name: Mitigate | End the long sessions
  synap.ops.mitigate:
    class: saf
    why: typos
    module: synap.ops.postgres_backend
    args:
      mode: terminat
      idle_longer_tha: 60
- name: Investigate | Note it
  synap.ops.record:
    phase: investgate
    note: "{{ synap_threshold_queue_dpth }}"
"""

INVENTORY_VARS = """\
---
synap_threshold_queue_dpth: 100
synap_threshold_stuck_run_seconds: soon
synap_threshold_connection_headroom: 1.5
synap_threshold_idle_seconds: "{{ 2 * 300 }}"
synap_database_url: !vault |
  $ANSIBLE_VAULT;1.1;AES256
  6231
"""


def validate(*args: str):
    return CliRunner().invoke(cli, ["validate", *args], catch_exceptions=False)


def line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), start=1) if text in line)


@pytest.fixture
def copy(tmp_path):
    """roles/, playbooks/ and inventory/ of the project, beside each other in a tmp dir."""
    for name in ("roles", "playbooks", "inventory"):
        shutil.copytree(ROOT / name, tmp_path / name)
    return tmp_path


def test_the_project_is_clean():
    result = validate()
    assert result.exit_code == 0, result.output
    assert re.search(r"validate: \d+ roles, \d+ tasks, \d+ inventories: ok", result.output)


def test_a_clean_copy_is_clean(copy):
    result = validate("--roles-dir", str(copy / "roles"))
    assert result.exit_code == 0, result.output


def test_task_typos_are_reported_with_file_line_and_suggestion(copy):
    tasks = copy / "roles" / "queue_backup" / "tasks" / "typos.yml"
    tasks.write_text(TYPOS)
    result = validate("--roles-dir", str(copy / "roles"))
    assert result.exit_code == 1, result.output
    where = "roles/queue_backup/tasks/typos.yml"
    expected = [
        (line_of(tasks, "postgres_activiti_info"), "no synap.ops module", "synap.ops.postgres_activity_info"),
        (line_of(tasks, "gather:"), "'gather' must be one of", "queue"),
        (line_of(tasks, "class: saf"), "class must be one of", "safe"),
        (line_of(tasks, "mode: terminat"), "'mode' must be one of", "terminate"),
        (line_of(tasks, "idle_longer_tha"), "unknown option 'idle_longer_tha'", "idle_longer_than"),
        (line_of(tasks, "phase: investgate"), "'phase' must be one of", "investigate"),
        (line_of(tasks, "synap_threshold_queue_dpth"), "unknown variable synap_threshold_queue_dpth",
         "synap_threshold_queue_depth"),
    ]
    lines = result.output.splitlines()
    for line, message, hint in expected:
        assert any(out.startswith(f"{where}:{line}: ") and message in out and out.endswith(f"(did you mean {hint}?)")
                   for out in lines), f"{where}:{line} {message} / {hint} not in:\n{result.output}"
    assert lines[-1].endswith(f"{len(expected)} problems")


def test_a_mitigation_class_outside_the_severity_policy_is_reported(copy):
    defaults = copy / "roles" / "incident" / "defaults" / "main.yml"
    defaults.write_text(defaults.read_text().replace("destructive", "drastic"))
    (copy / "roles" / "queue_backup" / "tasks" / "extra.yml").write_text(
        "---\n- name: Mitigate | Drop it\n  synap.ops.mitigate:\n    class: destructive\n"
        "    module: synap.ops.postgres_backend\n    args: {mode: terminate}\n")
    result = validate("--roles-dir", str(copy / "roles"), "--output", "json")
    assert result.exit_code == 1
    problems = json.loads(result.output)["problems"]
    assert any(p["file"] == "roles/queue_backup/tasks/extra.yml" and p["line"] == 4
               and "incident_severity_policy" in p["message"] for p in problems), problems


def test_inventory_typos_and_types_are_reported(copy):
    inventory = copy / "inventory" / "typo"
    (inventory / "group_vars").mkdir(parents=True)
    (inventory / "hosts.yml").write_text("all:\n  hosts:\n    synap-x:\n      synap_api_ur: http://x\n")
    group_vars = inventory / "group_vars" / "all.yml"
    group_vars.write_text(INVENTORY_VARS)
    result = validate("--roles-dir", str(copy / "roles"), "-i", str(inventory))
    assert result.exit_code == 1, result.output
    out = result.output.splitlines()
    assert "inventory/typo/group_vars/all.yml:2: unknown variable synap_threshold_queue_dpth " \
           "(did you mean synap_threshold_queue_depth?)" in out
    assert "inventory/typo/group_vars/all.yml:3: synap_threshold_stuck_run_seconds must be an int, got 'soon'" in out
    assert "inventory/typo/group_vars/all.yml:4: synap_threshold_connection_headroom must be from 0 to 1, got 1.5" in out
    assert "inventory/typo/hosts.yml:4: unknown variable synap_api_ur (did you mean synap_api_url?)" in out
    # The template and the vault value are accepted as they are.
    assert not any(":5:" in line or ":6:" in line for line in out), result.output
    assert out[-1].endswith(", 1 inventories: 4 problems")


def test_every_synap_default_is_declared_in_the_argument_spec():
    defaults = yaml.safe_load((ROOT / "roles" / "synap" / "defaults" / "main.yml").read_text())
    spec = yaml.safe_load((ROOT / "roles" / "synap" / "meta" / "argument_specs.yml").read_text())
    options = spec["argument_specs"]["main"]["options"]
    missing = sorted(set(defaults) - set(options))
    assert not missing, f"add these to roles/synap/meta/argument_specs.yml: {', '.join(missing)}"
    assert all(attrs.get("type") and attrs.get("description") for attrs in options.values())


def test_a_default_missing_from_the_spec_is_reported(copy):
    defaults = copy / "roles" / "synap" / "defaults" / "main.yml"
    defaults.write_text(defaults.read_text() + "synap_threshold_new_thing_seconds: 5\n")
    result = validate("--roles-dir", str(copy / "roles"))
    assert result.exit_code == 1
    assert f"roles/synap/defaults/main.yml:{line_of(defaults, 'synap_threshold_new_thing_seconds')}: " \
           "synap_threshold_new_thing_seconds has no entry in roles/synap/meta/argument_specs.yml" in result.output


def test_help_has_examples():
    result = CliRunner().invoke(cli, ["validate", "--help"])
    assert result.exit_code == 0 and "synap-play validate -i staging" in result.output


def _scenario_playbooks() -> list[tuple[str, str]]:
    """(playbook, role) of every scenario playbook, from its import_playbook vars."""
    found = []
    for path in sorted((ROOT / "playbooks").glob("*.yml")):
        plays = yaml.safe_load(path.read_text())
        for play in plays if isinstance(plays, list) else []:
            role = (play.get("vars") or {}).get("synap_scenario_role") if isinstance(play, dict) else None
            if role:
                found.append((path.name, role))
    return found


@pytest.fixture
def collection_copy(tmp_path):
    """A copy of the collection with its own collections path, so its roles are the ones Ansible loads."""
    for name in ("galaxy.yml", "ansible.cfg"):
        shutil.copy(ROOT / name, tmp_path / name)
    for name in ("meta", "plugins", "roles", "playbooks", "inventory"):
        shutil.copytree(ROOT / name, tmp_path / name)
    link = tmp_path / ".collections" / "ansible_collections" / "synap" / "ops"
    link.parent.mkdir(parents=True)
    link.symlink_to(tmp_path)
    return tmp_path


def _syntax_check(project: Path, playbook: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, ANSIBLE_CONFIG=str(project / "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=str(project / ".collections"))
    return subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "inventory/lab",
                           "--syntax-check", f"playbooks/{playbook}"],
                          cwd=project, env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.slow
@pytest.mark.parametrize(("playbook", "role"), _scenario_playbooks())
def test_syntax_check_reads_the_scenario_role(collection_copy, playbook, role):
    assert _syntax_check(collection_copy, playbook).returncode == 0
    tasks = collection_copy / "roles" / role / "tasks" / "main.yml"
    tasks.write_text(tasks.read_text() + "\n- name: Mitigate | Broken\n  synap.ops.record:\n    phase: [resolve\n")
    checked = _syntax_check(collection_copy, playbook)
    assert checked.returncode != 0, checked.stdout
    assert f"roles/{role}/tasks/main.yml" in checked.stdout + checked.stderr
