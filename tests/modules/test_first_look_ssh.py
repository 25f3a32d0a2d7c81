"""The first look for a host reached over SSH (synap_play.first_look_ssh): the payload it sends, the far end that
answers on the host (module_utils/look_on_host.py), and what a session that fails or hangs leaves behind.

The SSH transport itself is the one boundary stood in for here: ``stand_in_ssh`` takes ssh's arguments and runs
the remote command with the machine's own Python 3 (which has no Ansible), so what is proved is that the payload is
self-contained. Real SSH, against the lab's SSH host, is tests/scenarios/test_rehearsals.py's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from io import BytesIO

import pytest

from synap_play import first_look_ssh
from synap_play.first_look_ssh import SshHost, look_up_over_ssh, payload

SYSTEM_PYTHON = shutil.which("python3", path="/usr/bin:/bin")


@pytest.fixture
def stand_in_ssh(tmp_path, monkeypatch):
    """An "ssh" that runs its last argument (the remote command) here, in a home of its own."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SYNAP_PLAY_CACHE_DIR", str(tmp_path / "cache"))
    script = tmp_path / "ssh"
    script.write_text('#!/bin/sh\nfor last; do :; done\nexec /bin/sh -c "$last"\n')
    script.chmod(0o755)
    return script


@pytest.fixture
def repo(tmp_path):
    path = tmp_path / "deploy"
    path.mkdir()
    env = dict(os.environ, GIT_AUTHOR_NAME="A", GIT_AUTHOR_EMAIL="a@example.invalid", GIT_COMMITTER_NAME="A",
               GIT_COMMITTER_EMAIL="a@example.invalid")
    for args in (["init", "--quiet", "--initial-branch=main"], ["commit", "--quiet", "--allow-empty", "-m", "Deploy v1"]):
        subprocess.run(["git", "-C", str(path), *args], check=True, capture_output=True, env=env)
    return path


def answers_of(host: SshHost, calls: list, timeout: float = 60) -> dict[int, dict]:
    answers: dict[int, dict] = {}
    look_up_over_ssh(host, calls, lambda index, result: answers.setdefault(index, result), timeout=timeout)
    return answers


def test_the_payload_holds_the_look_ups_and_ansibles_module_utils_but_no_fact_gathering():
    digest, data = payload()
    names = zipfile.ZipFile(BytesIO(data)).namelist()
    assert "ansible_collections/synap/ops/plugins/module_utils/look_on_host.py" in names
    assert "ansible_collections/synap/ops/plugins/module_utils/postgres_activity_info.py" in names
    assert "ansible/module_utils/basic.py" in names and "ansible/__init__.py" in names
    assert not any(name.startswith("ansible/module_utils/facts/") for name in names)
    assert len(digest) == 24 and len(data) < 1_000_000  # sent on every session


@pytest.mark.skipif(SYSTEM_PYTHON is None, reason="no system python3 without Ansible")
def test_the_host_answers_each_look_up_with_a_python_that_has_no_ansible(stand_in_ssh, repo, tmp_path):
    assert subprocess.run([SYSTEM_PYTHON, "-c", "import ansible"], capture_output=True).returncode != 0
    host = SshHost((str(stand_in_ssh), "-o", "ControlMaster=auto", "deploy@web-1"), SYSTEM_PYTHON)
    calls = [("synap.ops.deploy_info", {"repo": str(repo), "count": 1}),
             ("synap.ops.external_info", {"endpoints": [], "unknown_option": 1}),
             ("synap.ops.no_such_info", {})]
    answers = answers_of(host, calls)
    assert answers[0]["commits"][0]["subject"] == "Deploy v1" and not answers[0].get("failed")
    assert answers[1]["failed"] and "unknown_option" in answers[1]["msg"]  # the module's own argument checks
    assert answers[2] == {"failed": True, "msg": "synap.ops.no_such_info has no gather(): it can only run as a module"}
    unpacked = list((tmp_path / "home" / ".cache" / "synap-play" / "look").iterdir())
    assert [path.name for path in unpacked] == [payload()[0]]  # once per version, reused by the next session
    assert answers_of(host, calls[:1])[0]["commits"][0]["subject"] == "Deploy v1"


def test_a_session_that_cannot_start_answers_every_look_up_as_failed_with_sshs_reason(stand_in_ssh):
    refused = SshHost(("sh", "-c", "echo 'ssh: connect to host web-1 port 22: Connection refused' >&2; exit 255",
                       "web-1"), "python3")
    answers = answers_of(refused, [("synap.ops.deploy_info", {}), ("synap.ops.inngest_info", {})])
    assert answers == {index: {"failed": True, "msg": "not answered over SSH: ssh: connect to host web-1 port 22: "
                                                      "Connection refused"} for index in (0, 1)}


def test_without_an_ssh_command_every_look_up_is_answered_as_failed(stand_in_ssh, tmp_path):
    missing = SshHost((str(tmp_path / "no-ssh-here"), "web-1"), "python3")
    answers = answers_of(missing, [("synap.ops.deploy_info", {})])
    assert answers[0]["failed"] and "cannot start" in answers[0]["msg"] and "No such file" in answers[0]["msg"]


def test_a_host_that_never_answers_is_given_up_on(stand_in_ssh):
    hung = SshHost(("sh", "-c", "sleep 30", "web-1"), "python3")
    answers = answers_of(hung, [("synap.ops.deploy_info", {})], timeout=1)
    assert answers == {0: {"failed": True, "msg": "not answered over SSH: no answer within 1 s"}}


def test_the_plan_of_an_ssh_host_sends_its_look_ups_there_and_alike_hosts_share_one_session(
        stand_in_ssh, repo, tmp_path, monkeypatch):
    import json

    from synap_play.first_look import FirstLook

    sessions = []
    real = first_look_ssh.look_up_over_ssh
    monkeypatch.setattr("synap_play.first_look.look_up_over_ssh",
                        lambda host, calls, on_answer: sessions.append(calls) or real(host, calls, on_answer))
    plans = tmp_path / "plans"
    plans.mkdir()
    ssh = {"command": [str(stand_in_ssh), "deploy@10.0.0.5"], "python": SYSTEM_PYTHON or sys.executable}
    for alias in ("web-1", "web-2"):  # one host under two names
        (plans / f"{alias}.json").write_text(json.dumps({"host": alias, "written_at": 1, "ssh": ssh, "sources": {
            "deploys": {"module": "synap.ops.deploy_info", "args": {"repo": str(repo), "count": 1}}}}))
    answers = []
    look = FirstLook(plans, lambda host, name, module, result: answers.append((host, result)))
    assert look.start() and look.wait(timeout=60)
    assert len(sessions) == 1 and len(sessions[0]) == 1  # one session, one git log for both names
    assert sorted(host for host, _ in answers) == ["web-1", "web-2"]
    assert all(result["commits"][0]["subject"] == "Deploy v1" for _, result in answers)

