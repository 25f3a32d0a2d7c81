"""compose_service and compose_service_info against a real compose project of busybox containers (Docker engine
required)."""

from __future__ import annotations

import time

import pytest
from busybox_compose import Project

pytestmark = pytest.mark.lab


@pytest.fixture
def project(tmp_path):
    running = Project(tmp_path).up()
    yield running
    running.down()


def test_info_reports_state_health_and_times_the_same_in_check_mode(module, project):
    result = module("compose_service_info", project.args)
    assert result["changed"] is False and result["reachable"] is True, result
    assert result["logs"] is None and result["failure"] is None and result["failures"] == {}  # logs not asked for
    web, worker = result["services"]["web"], result["services"]["worker"]
    assert web["running"] == 1 and web["healthy"] is True and web["has_healthcheck"] is True
    assert worker["running"] == 1 and worker["healthy"] is False and worker["has_healthcheck"] is False
    assert worker["restarts"] == 0 and worker["last_started_seconds_ago"] >= 0 and worker["last_created_at"]
    container = worker["containers"][0]
    assert container["state"] == "running" and container["started_at"] and container["created_at"]
    assert container["restart_count"] == 0
    assert result["msg"] == "web 1/1 running, healthy; worker 1/1 running"

    checked = module("compose_service_info", {**project.args, "services": ["worker"]}, check=True)
    assert checked["changed"] is False and list(checked["services"]) == ["worker"], checked
    assert checked["services"]["worker"]["containers"][0]["id"] == container["id"]
    assert checked["msg"] == "worker 1/1 running"


def test_info_counts_patterns_and_returns_the_last_matching_lines(module, project):
    args = {**project.args, "services": ["web"], "patterns": ["ERROR", "global-validator"]}
    result = module("compose_service_info", {**args, "match_lines": 2})
    assert result["changed"] is False and result["reachable"] is True, result
    web = result["logs"]["web"]
    assert web["matches"]["ERROR"]["count"] == 3
    assert web["matches"]["ERROR"]["last"][-1].endswith("failure")
    assert len(web["matches"]["ERROR"]["last"]) == 2
    assert web["matches"]["global-validator"] == {"count": 1, "last": ["global-validator routed"]}
    assert result["msg"] == f"web 1/1 running, healthy (3 ERROR, 1 global-validator in last {web['lines']} log lines)"

    tail = module("compose_service_info", {**args, "tail": 1}, check=True)
    assert tail["logs"]["web"]["lines"] == 1 and tail["logs"]["web"]["tail"] == ["ready"]

    plain = module("compose_service_info", {**project.args, "logs": True})
    assert plain["logs"]["worker"] == {"lines": 1, "tail": ["worker up"], "matches": {}}
    assert "worker 1/1 running (1 log lines read)" in plain["msg"]

    # Every service's state and one service's logs, in one look (triage's overview).
    overview = module("compose_service_info", {**project.args, "logs_of": ["web"], "patterns": ["ERROR"]})
    assert sorted(overview["services"]) == ["web", "worker"] and list(overview["logs"]) == ["web"], overview
    assert overview["logs"]["web"]["matches"]["ERROR"]["count"] == 3
    assert overview["msg"].endswith("; worker 1/1 running"), overview["msg"]

    bad = module("compose_service_info", {**args, "patterns": ["ERROR("]})
    assert bad["failed"] is True and "'ERROR(' is not a valid regular expression" in bad["msg"]


def test_info_lists_the_containers_once_for_the_state_and_every_log(module, project, tmp_path):
    # Each docker call is a process (a few hundredths of a second of CPU each, beside the look-ups sharing the
    # machine): the overview of every service with two services' logs is one ps, one inspect and one logs each.
    calls = tmp_path / "docker-calls"
    wrapper = tmp_path / "docker"
    wrapper.write_text(f'#!/bin/sh\necho "$1" >> {calls}\nexec docker "$@"\n')
    wrapper.chmod(0o755)
    overview = module("compose_service_info", {**project.args, "docker_cli": str(wrapper), "logs_of": ["web", "worker"],
                                               "patterns": ["ERROR"]})
    assert overview["logs"]["web"]["matches"]["ERROR"]["count"] == 3 and overview["logs"]["worker"]["lines"] == 1
    assert sorted(calls.read_text().split()) == ["inspect", "logs", "logs", "ps"]


def test_info_reports_an_unreadable_project_as_a_finding(module, tmp_path):
    gone = tmp_path / "gone"
    missing = module("compose_service_info", {"project_dir": str(gone), "patterns": ["ERROR"]})
    assert "failed" not in missing and missing["changed"] is False, missing
    assert missing["reachable"] is False and missing["services"] is None and missing["logs"] is None
    assert missing["failure"] == "not_found" and set(missing["failures"]) == {"services", "logs"}
    assert missing["error"] == f"project directory {gone} does not exist: set project_dir to the directory of the compose project"
    assert missing["msg"] == f"compose project {gone} unreadable (not_found): {missing['error']}"

    empty = module("compose_service_info", {"project_dir": str(tmp_path)})
    assert empty["reachable"] is False and "no configuration file provided" in empty["error"], empty
    assert empty["failure"] == "not_found" and empty["services"] is None

    no_client = module("compose_service_info", {"project_dir": str(tmp_path), "docker_cli": str(gone / "docker")})
    assert no_client["reachable"] is False and no_client["error"].startswith(f"cannot run {gone / 'docker'}: ")
    assert no_client["failure"] == "error"


def test_restart_check_then_real_then_skipped_within_guard_window(module, project):
    time.sleep(1.5)  # let the fresh container age past a 1 s guard window
    before = project.started_at("worker")
    args = {**project.args, "command": "restart", "services": ["worker"], "guard_window": 1}

    planned = module("compose_service", args, check=True)
    assert planned["changed"] is False
    assert [a["action"] for a in planned["actions"]] == ["restart"]
    assert planned["actions"][0]["description"].startswith("restart worker (1/1 running, started ")
    assert project.started_at("worker") == before, "check mode must not restart"

    done = module("compose_service", args)
    assert done["changed"] is True, done
    after = project.started_at("worker")
    assert after != before, "the container's start time must change"
    assert done["services"]["worker"]["running"] == 1
    assert done["msg"] == "restarted worker"
    assert any(" restart worker" in command for command in done["commands"])

    again = module("compose_service", {**args, "guard_window": 300})
    assert again["changed"] is False and again["actions"] == []
    assert "within the 300 s guard window" in again["skipped"][0]["reason"]
    assert project.started_at("worker") == after


def test_healthy_service_is_skipped_unless_forced(module, project):
    args = {**project.args, "command": "restart", "services": ["web"], "guard_window": 0}
    skipped = module("compose_service", args)
    assert skipped["changed"] is False
    assert skipped["skipped"] == [{"service": "web", "reason": "healthy; force=true restarts it anyway"}]

    before = project.started_at("web")
    forced = module("compose_service", {**args, "force": True})
    assert forced["changed"] is True, forced
    assert project.started_at("web") != before
    assert forced["services"]["web"]["healthy"] is True, "waits for the healthcheck to pass again"


def test_scale_to_two_and_back(module, project):
    args = {**project.args, "command": "scale", "services": ["worker"], "replicas": 2}
    planned = module("compose_service", args, check=True)
    assert planned["changed"] is False and planned["actions"][0]["description"] == "scale worker from 1 to 2 running"
    assert len(project.container_ids("worker")) == 1

    scaled = module("compose_service", args)
    assert scaled["changed"] is True and scaled["services"]["worker"]["running"] == 2, scaled
    assert len(project.container_ids("worker")) == 2
    assert module("compose_service", args)["changed"] is False

    back = module("compose_service", {**args, "replicas": 1})
    assert back["changed"] is True and len(project.container_ids("worker")) == 1


def test_stop_and_start(module, project):
    stop = {**project.args, "command": "stop", "services": ["worker"]}
    assert module("compose_service", stop, check=True)["actions"][0]["action"] == "stop"
    assert len(project.container_ids("worker")) == 1

    stopped = module("compose_service", stop)
    assert stopped["changed"] is True and stopped["services"]["worker"]["running"] == 0
    assert project.container_ids("worker") == []
    again = module("compose_service", stop)
    assert again["changed"] is False and again["skipped"][0]["reason"].startswith("already stopped")

    start = {**project.args, "command": "start", "services": ["worker"]}
    started = module("compose_service", start)
    assert started["changed"] is True and started["services"]["worker"]["running"] == 1
    assert module("compose_service", start)["changed"] is False


def test_recreate_replaces_the_container_once(module, project):
    time.sleep(1.5)
    before = project.container_ids("worker")
    args = {**project.args, "command": "recreate", "services": ["worker"], "guard_window": 1}
    recreated = module("compose_service", args)
    assert recreated["changed"] is True, recreated
    assert project.container_ids("worker") != before
    again = module("compose_service", {**args, "guard_window": 300})
    assert again["changed"] is False and "created" in again["skipped"][0]["reason"]


def test_operator_errors_are_one_line(module, project, tmp_path):
    empty = module("compose_service", {**project.args, "command": "restart", "services": []})
    assert empty["failed"] is True
    assert empty["msg"] == "command=restart needs services: name the services to restart (for example [jobs])"
    read_only = module("compose_service", {**project.args, "command": "status", "services": ["web"]})
    assert read_only["failed"] is True and "value of command must be one of: restart, scale" in read_only["msg"]
    no_project = module("compose_service", {"command": "stop", "services": ["web"]})
    assert no_project["failed"] is True and "project_dir, files, project_name" in no_project["msg"]
    gone = module("compose_service", {"project_dir": str(tmp_path / "gone"), "command": "stop", "services": ["web"]})
    assert gone["failed"] is True and gone["msg"].startswith(f"project directory {tmp_path / 'gone'} does not exist")
    assert module("compose_service_info", {"services": ["web"]})["failed"] is True
