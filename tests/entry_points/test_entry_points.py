"""The runbook's Document step and its one-mitigator rule hold whoever runs a scenario playbook.

The same fault (the fixture's missing flag file) runs through synap-play, plain ansible-playbook and
ansible-runner as AWX runs it; each writes the same record and report (the synap.ops.incident callback keeps
them), and a second concurrent run of one scenario on one target is refused by any entry point, naming the holder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
INVENTORY = FIXTURES / "inventory" / "hosts.yml"
BIN = Path(sys.executable).parent


def environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    return dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}", ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
                SYNAP_PLAY_LOCK_DIR=str(tmp_path / "locks"), ANSIBLE_NOCOLOR="1", **extra)


def by_synap_play(tmp_path: Path, flag: Path) -> Path:
    incidents = tmp_path / "synap-play"
    subprocess.run([sys.executable, "-m", "synap_play", "fixture-flag", "-i", str(INVENTORY), "--catalog",
                    str(FIXTURES / "scenarios.yml"), "--incidents-dir", str(incidents), "--yes", "--no-first-look",
                    "-e", f"flag_path={flag}"], env=environment(tmp_path), capture_output=True, text=True,
                   timeout=300, stdin=subprocess.DEVNULL)
    return incidents


def by_ansible_playbook(tmp_path: Path, flag: Path) -> Path:
    # From the checkout, as an operator would: the project's ansible.cfg enables the callback; records go to
    # ./incidents unless told otherwise.
    incidents = tmp_path / "ansible-playbook"
    subprocess.run([str(BIN / "ansible-playbook"), "-i", str(INVENTORY), "tests/fixtures/playbooks/flag.yml",
                    "-e", "incident_approve=true", "-e", f"flag_path={flag}"], cwd=ROOT,
                   env=environment(tmp_path, SYNAP_PLAY_INCIDENTS_DIR=str(incidents)), capture_output=True,
                   text=True, timeout=300)
    return incidents


def by_ansible_runner(tmp_path: Path, flag: Path) -> Path:
    # As AWX runs a job: a private data dir, the project as --project-dir; the record goes to the job's artifacts.
    private = tmp_path / "job"
    subprocess.run([str(BIN / "ansible-runner"), "run", str(private), "--project-dir", str(ROOT), "-p",
                    "tests/fixtures/playbooks/flag.yml", "--inventory", str(INVENTORY), "--ident", "job-1",
                    "--cmdline", f"-e incident_approve=true -e flag_path={flag}"],
                   cwd=ROOT, env=environment(tmp_path), capture_output=True, text=True, timeout=300)
    return private / "artifacts" / "job-1" / "incidents"


ENTRY_POINTS = {"synap-play": by_synap_play, "ansible-playbook": by_ansible_playbook,
                "ansible-runner": by_ansible_runner}


def the_record(incidents: Path) -> tuple[dict, str]:
    folders = [folder for folder in incidents.iterdir() if (folder / "incident.json").is_file()]
    assert len(folders) == 1, f"{incidents}: {folders}"
    return (json.loads((folders[0] / "incident.json").read_text()),
            (folders[0] / "report.md").read_text())


def essentials(record: dict) -> dict:
    """What a run decided and found, without its id, its times and who ran it."""
    return {
        "scenario": record["scenario"], "title": record["title"], "severity": record["severity"],
        "status": record["status"], "exit_code": record["exit_code"], "follow_ups": record["follow_ups"],
        "phases": [phase["name"] for phase in record["phases"]],
        "actions": [(a["task"], a["status"], a["class"], a["changed"]) for a in record["actions"]],
        "verification": [(c["name"], c["state"]) for c in record["verification"]["checks"]],
        "errors": record["errors"], "lock": bool(record.get("lock", {}).get("where")),
        "schema_version": record["schema_version"],
    }


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    found = {}
    for name, entry_point in ENTRY_POINTS.items():
        tmp_path = tmp_path_factory.mktemp(name)
        flag = tmp_path / "flag"  # missing: the fault
        found[name] = the_record(entry_point(tmp_path, flag))
        assert flag.is_file(), f"{name}: the mitigation did not run"
    return found


def test_every_entry_point_writes_the_same_record_and_report(records):
    expected = essentials(records["synap-play"][0])
    assert expected["status"] == "resolved" and expected["exit_code"] == 0 and expected["lock"]
    assert expected["phases"] == ["Acknowledge", "Assess", "Mitigate", "Resolve", "Document"]
    for name, (record, report) in records.items():
        assert essentials(record) == expected, name
        assert record["id"] in report and "Fixture flag file" in report, name


def wait_for_task(incidents: Path, task: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in incidents.glob("*/incident.json"):
            try:
                record = json.loads(path.read_text())
            except ValueError:
                continue
            if record["runner"].get("running_task") == task:
                return record
        time.sleep(0.2)
    raise AssertionError(f"no run reached '{task}'")


@pytest.mark.parametrize("second", ["ansible-playbook", "synap-play"])
def test_a_second_mitigator_by_any_entry_point_is_refused_naming_the_holder(tmp_path, second):
    env = environment(tmp_path)
    first = subprocess.Popen([str(BIN / "ansible-playbook"), "-i", str(INVENTORY), "tests/fixtures/playbooks/slow.yml",
                              "-e", "incident_operator=alice"], cwd=ROOT,
                             env=dict(env, SYNAP_PLAY_INCIDENTS_DIR=str(tmp_path / "first")),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        holder = wait_for_task(tmp_path / "first", "Assess | Take a long time")
        if second == "synap-play":
            run = subprocess.run([sys.executable, "-m", "synap_play", "fixture-slow", "-i", str(INVENTORY),
                                  "--catalog", str(FIXTURES / "scenarios.yml"), "--incidents-dir",
                                  str(tmp_path / "second"), "--no-first-look"],
                                 env=env, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
            assert run.returncode == 5, run.stderr
            assert f"incident {holder['id']}" in run.stderr and "operator alice" in run.stderr
        else:
            run = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(INVENTORY),
                                  "tests/fixtures/playbooks/slow.yml"], cwd=ROOT,
                                 env=dict(env, SYNAP_PLAY_INCIDENTS_DIR=str(tmp_path / "second")),
                                 capture_output=True, text=True, timeout=120)
            assert "Take a long time" not in run.stdout  # the play ended before its first scenario task
        refused, report = the_record(tmp_path / "second")
        assert refused["status"] == "locked out" and refused["exit_code"] == 5
        assert refused["lock"]["busy"] and refused["lock"]["holder"]["incident_id"] == holder["id"]
        assert refused["lock"]["holder"]["operator"] == "alice"
        assert not refused["actions"] and "locked out" in report
    finally:
        first.terminate()
        first.wait(timeout=30)
    stopped, _ = the_record(tmp_path / "first")
    assert stopped["status"] == "interrupted" and stopped["exit_code"] == 143


def test_without_the_callback_the_play_stops_before_any_change(tmp_path):
    """A scenario play without its record and lock does not happen silently."""
    flag = tmp_path / "flag"
    run = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(INVENTORY), "tests/fixtures/playbooks/flag.yml",
                          "-e", "incident_approve=true", "-e", f"flag_path={flag}"], cwd=ROOT,
                         env=environment(tmp_path, ANSIBLE_CALLBACKS_ENABLED="ansible.builtin.junit",
                                         JUNIT_OUTPUT_DIR=str(tmp_path / "junit")),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode != 0
    assert "no incident record is kept" in run.stdout and "callbacks_enabled = synap.ops.incident" in run.stdout
    assert not flag.exists()
