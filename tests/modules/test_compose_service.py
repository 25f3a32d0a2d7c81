"""compose_service against a real compose project of busybox containers (Docker engine required)."""

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


def test_status_reports_state_health_and_times(module, project):
    result = module("compose_service", {**project.args, "command": "status"})
    assert result["changed"] is False, result
    web, worker = result["services"]["web"], result["services"]["worker"]
    assert web["running"] == 1 and web["healthy"] is True and web["has_healthcheck"] is True
    assert worker["running"] == 1 and worker["healthy"] is False and worker["has_healthcheck"] is False
    container = worker["containers"][0]
    assert container["state"] == "running" and container["started_at"] and container["created_at"]
    assert container["restart_count"] == 0
    assert "web 1/1 running, healthy" in result["msg"] and "worker 1/1 running" in result["msg"]


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


def test_logs_counts_and_last_matching_lines(module, project):
    args = {**project.args, "command": "logs", "services": ["web"], "patterns": ["ERROR", "global-validator"]}
    result = module("compose_service", {**args, "match_lines": 2})
    assert result["changed"] is False, result
    web = result["logs"]["web"]
    assert web["matches"]["ERROR"]["count"] == 3
    assert web["matches"]["ERROR"]["last"][-1].endswith("failure")
    assert len(web["matches"]["ERROR"]["last"]) == 2
    assert web["matches"]["global-validator"] == {"count": 1, "last": ["global-validator routed"]}
    assert result["msg"] == f"web: {web['lines']} lines (ERROR x3, global-validator x1)"

    tail = module("compose_service", {**args, "tail": 1})
    assert tail["logs"]["web"]["lines"] == 1 and tail["logs"]["web"]["tail"] == ["ready"]

    bad = module("compose_service", {**args, "patterns": ["ERROR("]})
    assert bad["failed"] is True and "not a valid regular expression" in bad["msg"]


def test_operator_errors_are_one_line(module, project):
    missing = module("compose_service", {**project.args, "command": "restart"})
    assert missing["failed"] is True
    assert missing["msg"] == "command=restart needs services: name the services to restart (for example [jobs])"
    no_project = module("compose_service", {"command": "status"})
    assert no_project["failed"] is True and "project_dir, files, project_name" in no_project["msg"]
