"""The severity gate against the whole policy: every class at every severity, answered yes, answered no, with
nobody to ask and with --yes, through real ansible-playbook runs. One run covers every case: each host of a
generated inventory is one severity in one mode, and a thread here plays the operator in the approval folders."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = Path(__file__).resolve().parents[1] / "fixtures" / "playbooks" / "policy.yml"
CLASSES = ("diagnose", "safe", "disruptive", "destructive")
SEVERITIES = ("P0", "P1", "P2", "P3")
# The runbook's policy, written out here on purpose: a change to roles/incident/defaults/main.yml must fail
# this test rather than move its expectations along with it.
POLICY = {
    "P0": {"diagnose": "run", "safe": "run", "disruptive": "run", "destructive": "ask"},
    "P1": {"diagnose": "run", "safe": "run", "disruptive": "ask", "destructive": "ask"},
    "P2": {"diagnose": "run", "safe": "ask", "disruptive": "ask", "destructive": "ask"},
    "P3": {"diagnose": "run", "safe": "needs approval", "disruptive": "needs approval", "destructive": "needs approval"},
}
# yes / no: on a terminal, the operator answers; unattended: no terminal, so no approval folder; all: --yes.
MODES = ("yes", "no", "unattended", "all")


def expected(severity: str, action_class: str, mode: str) -> tuple[str, str, bool]:
    """(the gate's decision, its reason, whether the action ran) for one case."""
    rule = POLICY[severity][action_class]
    if rule == "run":
        return "run", f"{severity} policy runs {action_class} actions", True
    if mode == "all":
        return "run", "approved up front (--yes)", True
    if rule == "ask" and mode == "yes":
        return "run", "approved by the operator", True
    if rule == "ask" and mode == "no":
        return "declined", "the operator declined", False
    if rule == "ask":
        return "needs_approval", f"{severity} policy asks before {action_class} actions; nobody answered", False
    return "needs_approval", f"{severity} policy does not run {action_class} actions without --yes", False


class Operator(threading.Thread):
    """Answers every approval request: yes in the folder of the hosts that approve, no in the other."""

    def __init__(self, answers: dict[Path, bool]):
        super().__init__(daemon=True)
        self.answers = answers
        self.requests: list[dict] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            for folder, approved in self.answers.items():
                for path in sorted(folder.glob("*.request.json")):
                    answer = folder / path.name.replace(".request.json", ".answer.json")
                    if answer.exists():
                        continue
                    self.requests.append(json.loads(path.read_text()))
                    # Whole or not at all: the gate reads the answer as soon as the file exists.
                    answer.with_suffix(".tmp").write_text(json.dumps({"approved": approved}))
                    os.replace(answer.with_suffix(".tmp"), answer)
            time.sleep(0.05)


def run_policy(base: Path, modes: tuple[str, ...], *, check: bool = False) -> tuple[dict, list[dict]]:
    """One ansible-playbook run with a host per severity and mode; returns each host's gate decisions and
    which classes ran, and every approval request the operator saw."""
    folders = {"yes": base / "approve-yes", "no": base / "approve-no", "all": base / "approve-all"}
    for folder in folders.values():
        folder.mkdir(parents=True)
    hosts = {}
    for severity in SEVERITIES:
        for mode in modes:
            name = f"{severity.lower()}-{mode}"
            (base / name / "ran").mkdir(parents=True)
            hosts[name] = {
                "ansible_connection": "local",
                "ansible_python_interpreter": sys.executable,
                "incident_severity": severity,
                "incident_approve": mode == "all",
                # --yes runs get a folder too: nothing may be put to the operator once approved up front.
                "incident_approval_dir": str(folders[mode]) if mode in folders else "",
                "incident_approval_timeout": 60,
                "policy_dir": str(base / name),
            }
    inventory = base / "hosts.yml"
    # No chat channels: nothing here is about notifications.
    inventory.write_text(yaml.safe_dump({"synap": {"hosts": hosts, "vars": {"synap_notify_channels": []}}}))
    operator = Operator({folders["yes"]: True, folders["no"]: False, folders["all"]: True})
    operator.start()
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               SYNAP_PLAY_INCIDENTS_DIR=str(base / "incidents"))
    try:
        proc = subprocess.run(
            [str(Path(sys.executable).with_name("ansible-playbook")), "-i", str(inventory), str(PLAYBOOK),
             f"--forks={len(hosts)}", *(["--check"] if check else [])],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    finally:
        operator.done.set()
        operator.join()
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    results = {}
    for name in hosts:
        gates = json.loads((base / name / "gates.json").read_text())
        results[name] = {
            "gates": {gate["class"]: gate for gate in gates},
            "ran": sorted(p.name for p in (base / name / "ran").iterdir()),
        }
    return results, operator.requests


@pytest.fixture(scope="module")
def policy_run(tmp_path_factory):
    return run_policy(tmp_path_factory.mktemp("policy"), MODES)


@pytest.fixture(scope="module")
def check_run(tmp_path_factory):
    return run_policy(tmp_path_factory.mktemp("policy-check"), ("yes", "unattended", "all"), check=True)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("severity", SEVERITIES)
def test_every_class_gets_the_policy_decision(policy_run, severity, mode):
    results, _ = policy_run
    host = results[f"{severity.lower()}-{mode}"]
    decisions = {c: (host["gates"][c]["decision"], host["gates"][c]["reason"]) for c in CLASSES}
    assert decisions == {c: expected(severity, c, mode)[:2] for c in CLASSES}
    assert host["ran"] == sorted(c for c in CLASSES if expected(severity, c, mode)[2])
    assert all(host["gates"][c]["severity"] == severity for c in CLASSES)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("severity", SEVERITIES)
def test_the_operator_is_asked_exactly_for_the_classes_the_policy_asks_about(policy_run, severity, mode):
    _, requests = policy_run
    asked = sorted(r["class"] for r in requests if r["host"] == f"{severity.lower()}-{mode}")
    should_ask = mode in ("yes", "no")
    assert asked == sorted(c for c in CLASSES if should_ask and POLICY[severity][c] == "ask")
    for request in requests:
        if request["host"] == f"{severity.lower()}-{mode}":
            assert request["reason"] == f"{severity} policy asks before {request['class']} actions"
            assert request["plan"] == ["ansible.builtin.lineinfile: line added"]


@pytest.mark.parametrize("mode", ("yes", "unattended", "all"))
@pytest.mark.parametrize("severity", SEVERITIES)
def test_check_mode_plans_every_class_and_runs_none(check_run, severity, mode):
    results, requests = check_run
    host = results[f"{severity.lower()}-{mode}"]
    assert host["ran"] == []
    assert requests == []
    for action_class in CLASSES:
        rule = POLICY[severity][action_class]
        if rule == "run":
            would = f"would run: {severity} policy runs {action_class} actions"
        elif mode == "all":
            would = "would run: approved up front (--yes)"
        elif rule == "ask":
            would = f"would ask: {severity} policy asks before {action_class} actions"
        else:
            would = f"would need approval: {severity} policy does not run {action_class} actions without --yes"
        gate = host["gates"][action_class]
        assert (gate["decision"], gate["reason"]) == ("planned", f"check mode: nothing done ({would})")
