"""synap.ops.diagnose: several info modules as one task, side by side, with the play's module_defaults; the plan
it keeps for synap-play's first look; and the first look's own run of the same look-ups in one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from synap_play.first_look import FirstLook, plan_digest
from synap_play.project import collections_path, project_root

ROOT = project_root()


def git(repo: Path, *args: str) -> None:
    env = dict(os.environ, GIT_AUTHOR_NAME="A", GIT_AUTHOR_EMAIL="a@example.invalid", GIT_COMMITTER_NAME="A",
               GIT_COMMITTER_EMAIL="a@example.invalid")
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=env)


@pytest.fixture
def repo(tmp_path):
    path = tmp_path / "deploy"
    path.mkdir()
    git(path, "init", "--quiet", "--initial-branch=main")
    (path / "app.conf").write_text("version=1\n")
    git(path, "add", "app.conf")
    git(path, "commit", "--quiet", "-m", "Deploy v1")
    return path


def playbook(tmp_path: Path, sources: dict, plan_dir: Path | None = None) -> tuple[int, dict]:
    play = [{"name": "diagnose", "hosts": "localhost", "gather_facts": False,
             "module_defaults": {"synap.ops.deploy_info": {"recent_seconds": 3600}},
             "tasks": [{"name": "Assess | all at once", "synap.ops.diagnose": {"sources": sources},
                        "register": "found", "ignore_errors": True},
                       {"name": "show", "ansible.builtin.copy": {"content": "{{ found | to_json }}",
                                                                  "dest": str(tmp_path / "found.json")}}]}]
    path = tmp_path / "play.yml"
    path.write_text(yaml.safe_dump(play, sort_keys=False))
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=str(collections_path(ROOT)),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    env.pop("SYNAP_PLAY_PLAN_DIR", None)
    if plan_dir:
        env["SYNAP_PLAY_PLAN_DIR"] = str(plan_dir)
    done = subprocess.run(["ansible-playbook", "-i", "localhost,", "-c", "local", "-e",
                           f"ansible_python_interpreter={sys.executable}", str(path)],
                          capture_output=True, text=True, env=env, timeout=300)
    found = tmp_path / "found.json"
    return done.returncode, json.loads(found.read_text()) if found.exists() else {"output": done.stdout}


def test_sources_run_side_by_side_with_module_defaults_and_the_plan_is_kept(tmp_path, repo):
    plan_dir = tmp_path / "plan"
    code, found = playbook(tmp_path, {
        "deploys": {"module": "synap.ops.deploy_info", "args": {"repo": str(repo), "count": 3}},
        "external": {"module": "synap.ops.external_info", "args": {"endpoints": []}},
    }, plan_dir)
    assert code == 0, found
    assert found["concurrent"] is True
    assert found["modules"] == {"deploys": "synap.ops.deploy_info", "external": "synap.ops.external_info"}
    assert found["sources"]["deploys"]["commits"][0]["subject"] == "Deploy v1"
    assert found["sources"]["external"]["msg"] == "no external endpoints to check"
    plan_file = plan_dir / "localhost.json"
    assert plan_file.stat().st_mode & 0o777 == 0o600
    plan = json.loads(plan_file.read_text())
    assert plan["sources"]["deploys"]["args"] == {"repo": str(repo), "count": 3, "recent_seconds": 3600}

    # The first look runs the same look-ups from the plan, in this process, and gets the same answers.
    answers = []
    look = FirstLook(plan_dir, lambda host, name, module, result: answers.append((host, name, result)))
    assert look.start() and look.wait(timeout=60)
    by_name = {name: result for _, name, result in answers}
    assert by_name["deploys"]["commits"][0]["sha"] == found["sources"]["deploys"]["commits"][0]["sha"]
    assert by_name["external"]["msg"] == "no external endpoints to check"
    assert look.outdated() is False


def test_on_the_local_connection_the_look_ups_run_in_process_and_answer_as_their_modules(tmp_path, repo, module):
    """No Python started and no module shipped per source: the controller is the target. The answers are the
    modules' own, secrets masked as a module masks them (a password in an endpoint's URL)."""
    endpoints = [{"name": "ops", "url": "http://ops:s3cret-pass@127.0.0.1:9/health", "timeout": 1}]
    code, found = playbook(tmp_path, {
        "deploys": {"module": "synap.ops.deploy_info", "args": {"repo": str(repo)}},
        "external": {"module": "synap.ops.external_info", "args": {"endpoints": endpoints}},
    })
    assert code == 0, found
    assert found["in_process"] == ["deploys", "external"]
    assert "s3cret-pass" not in json.dumps(found)
    as_module = module("external_info", {"endpoints": endpoints})
    in_process = found["sources"]["external"]
    assert set(in_process) == set(as_module) - {"invocation"}
    assert in_process["msg"] == as_module["msg"] and in_process["reachable"] == as_module["reachable"] is False


def test_a_failing_source_fails_the_task_but_keeps_the_others_answers(tmp_path, repo):
    code, found = playbook(tmp_path, {
        "deploys": {"module": "synap.ops.deploy_info", "args": {"repo": str(repo)}},
        "broken": {"module": "synap.ops.deploy_info", "args": {"repo": str(repo), "count": 0}},
    })
    assert code == 0, found  # ignore_errors: the play goes on
    deploys, broken = found["sources"]["deploys"], found["sources"]["broken"]
    assert found["failed"] is True
    assert found["msg"] == f"1 of 2 sources failed: deploys: {deploys['msg']}; broken: count must be 1 or more, got 0"
    assert (broken["failed"], broken["msg"]) == (True, "count must be 1 or more, got 0")
    assert deploys.get("failed") is None and deploys["reachable"] is True
    assert [c["subject"] for c in deploys["commits"]] == ["Deploy v1"]


@pytest.mark.parametrize("sources,message", [
    ({"restart": {"module": "synap.ops.compose_service", "args": {}}},
     "source restart: synap.ops.compose_service is not an info module; a diagnosis only reads"),
    ({"x": {"module": "synap.ops.no_such_info"}}, "source x: no module named synap.ops.no_such_info"),
    ({"x": {"args": {}}}, "source x: give module (and args): the info module to run"),
    ({"x": {"module": "synap.ops.deploy_info", "when": "yes"}},
     "source x: unsupported key(s) when; use args, first_look, module"),
])
def test_bad_sources_are_refused_with_what_to_do(tmp_path, sources, message):
    code, found = playbook(tmp_path, sources)
    assert (found["failed"], found["msg"]) == (True, message), found
    assert "sources" not in found  # refused before any look-up ran


def test_first_look_without_a_plan_does_not_start(tmp_path):
    look = FirstLook(tmp_path / "none", lambda *answer: None)
    assert look.start() is False and look.outdated() is False


def test_a_plan_kept_under_another_name_of_the_same_ssh_host_is_not_outdated(tmp_path):
    """Of a machine's aliases only the one that asked keeps a plan, and which asks first varies by run: a 50-host
    run over SSH was called outdated (its first look not counted) whenever another alias asked first."""
    reach = {"command": ["ssh", "-o", "Port=2222", "127.0.0.1"], "python": "/usr/bin/python3"}
    sources = {"db": {"module": "synap.ops.postgres_activity_info", "args": {"idle_threshold": 5}}}

    def digest(folder, *plans):
        folder.mkdir()
        for host, plan in plans:
            (folder / f"{host}.json").write_text(json.dumps({"host": host, "written_at": 1, **plan}))
        return plan_digest(folder)

    one = digest(tmp_path / "one", ("synap-001", {"ssh": reach, "sources": sources}))
    assert one == digest(tmp_path / "two", ("synap-001", {"ssh": reach, "sources": sources}),
                         ("synap-002", {"ssh": reach, "sources": sources}))
    # Other look-ups, or the same ones in another place, are what outdated means.
    other_args = {"db": {**sources["db"], "args": {"idle_threshold": 99}}}
    assert one != digest(tmp_path / "args", ("synap-001", {"ssh": reach, "sources": other_args}))
    elsewhere = {**reach, "command": ["ssh", "-o", "Port=2223", "127.0.0.1"]}
    assert one != digest(tmp_path / "place", ("synap-001", {"ssh": reach, "sources": sources}),
                         ("synap-002", {"ssh": elsewhere, "sources": sources}))


def test_first_look_asks_once_what_several_hosts_ask_alike(tmp_path, repo, monkeypatch):
    from ansible_collections.synap.ops.plugins.module_utils import info_modules

    plan_dir = tmp_path / "plans"
    plan_dir.mkdir()
    deploys = {"module": "synap.ops.deploy_info", "args": {"repo": str(repo), "count": 1}}
    for host in ("web-1", "web-2", "web-3"):
        (plan_dir / f"{host}.json").write_text(json.dumps({"host": host, "written_at": 1, "sources": {
            "deploys": deploys, "own": {"module": "synap.ops.external_info", "args": {"endpoints": [], "x": host}}}}))
    asked = []
    real_look_up = info_modules.look_up
    monkeypatch.setattr(info_modules, "look_up", lambda module, args: asked.append(module) or real_look_up(module, args))
    answers = []
    look = FirstLook(plan_dir, lambda host, name, module, result: answers.append((host, name, result)))
    assert look.start() and look.wait(timeout=60)
    assert asked.count("synap.ops.deploy_info") == 1  # one git log for three hosts asking the same
    assert asked.count("synap.ops.external_info") == 3  # different arguments: asked for each
    assert sorted(host for host, name, _ in answers if name == "deploys") == ["web-1", "web-2", "web-3"]
    own = [result for _, name, result in answers if name == "own"]
    # An unknown option is refused, for each host.
    assert own == [{"failed": True, "msg": "synap.ops.external_info: x. Supported parameters include: endpoints, "
                                           "validate_certs."}] * 3
