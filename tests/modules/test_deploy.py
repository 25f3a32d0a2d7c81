"""deploy_info and deploy_rollback against real temporary git repositories (and a real compose project)."""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from busybox_compose import Project

DEVELOPER = {
    "GIT_AUTHOR_NAME": "Alice Developer",
    "GIT_AUTHOR_EMAIL": "alice@example.invalid",
    "GIT_COMMITTER_NAME": "Alice Developer",
    "GIT_COMMITTER_EMAIL": "alice@example.invalid",
}


def git(repo, *args, env=None):
    environment = dict(os.environ, **DEVELOPER, **(env or {}))
    return subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, env=environment
    ).stdout


def commit(repo, content, subject, when=None):
    (repo / "app.conf").write_text(content)
    git(repo, "add", "app.conf")
    dates = {"GIT_AUTHOR_DATE": when, "GIT_COMMITTER_DATE": when} if when else {}
    git(repo, "commit", "--quiet", "--message", subject, env=dates)
    return git(repo, "rev-parse", "HEAD").strip()


@pytest.fixture
def repo(tmp_path):
    path = tmp_path / "deploy"
    path.mkdir()
    git(path, "init", "--quiet", "--initial-branch=main")
    commit(path, "version=1\n", "Deploy v1", when="2024-01-01T10:00:00Z")
    commit(path, "version=2\nbug=yes\n", "Deploy v2 (breaks /entities)")
    return path


def test_info_lists_commits_with_times_and_recency(module, repo):
    result = module("deploy_info", {"repo": str(repo), "count": 10, "recent_seconds": 3600})
    assert result["changed"] is False and result["is_repo"] is True, result
    assert [c["subject"] for c in result["commits"]] == ["Deploy v2 (breaks /entities)", "Deploy v1"]
    assert result["commits"][1]["committed_at"] == "2024-01-01T10:00:00Z"
    assert result["head"]["sha"] == git(repo, "rev-parse", "HEAD").strip()
    assert result["head_recent"] is True and result["head_is_rollback"] is False
    assert result["branch"] == "main" and result["dirty"] == []
    assert "HEAD " in result["msg"] and '"Deploy v2 (breaks /entities)" by Alice Developer' in result["msg"]
    assert "recent (< 3600 s)" in result["msg"]

    one = module("deploy_info", {"repo": str(repo), "count": 1}, check=True)
    assert len(one["commits"]) == 1 and one["changed"] is False


def test_info_old_head_is_not_recent(module, repo):
    commit(repo, "version=3\n", "Deploy v3", when="2024-02-01T10:00:00Z")
    result = module("deploy_info", {"repo": str(repo)})
    assert result["head_recent"] is False and result["head_age_seconds"] > 3600
    assert "not recent" in result["msg"]


@pytest.mark.parametrize("kind", ["missing", "not-a-repo", "empty"])
def test_info_unreadable_checkouts_are_findings(module, tmp_path, kind):
    path = tmp_path / "checkout"
    if kind != "missing":
        path.mkdir()
    if kind == "empty":
        git(path, "init", "--quiet")
    result = module("deploy_info", {"repo": str(path)})
    assert result.get("failed") is not True, result
    if kind == "empty":
        # Read, and nothing there: no commits (an empty list), and no HEAD to judge (null, not false).
        assert result["is_repo"] is True and result["commits"] == [] and "no commits" in result["msg"]
        assert (result["reachable"], result["failure"], result["failures"]) == (True, None, {})
        assert result["head"] is None and result["head_recent"] is None and result["head_is_rollback"] is None
        assert result["dirty"] == [] and result["branch"] is None
    else:
        assert result["is_repo"] is False
        assert result["error"].endswith("does not exist" if kind == "missing" else "is not a git checkout")
        assert result["reachable"] is False and result["failure"] == "not_found"
        for key in ("commits", "head", "head_age_seconds", "head_recent", "head_is_rollback", "rollback", "branch",
                    "dirty"):
            assert result[key] is None, key


def test_rollback_check_then_real_then_not_twice(module, repo):
    bad = git(repo, "rev-parse", "HEAD").strip()
    args = {"repo": str(repo), "incident_id": "INC-2024-042"}

    planned = module("deploy_rollback", args, check=True)
    assert planned["changed"] is False, planned
    assert planned["reverted_commit"]["sha"] == bad
    assert planned["actions"] == [
        {
            "action": "revert",
            "commit": bad,
            "description": f'revert {bad[:7]} "Deploy v2 (breaks /entities)" (incident INC-2024-042)',
        }
    ]
    assert git(repo, "rev-parse", "HEAD").strip() == bad, "check mode must not revert"

    done = module("deploy_rollback", args)
    assert done["changed"] is True, done
    head = git(repo, "rev-parse", "HEAD").strip()
    assert head != bad and done["revert_commit"]["sha"] == head
    assert (repo / "app.conf").read_text() == "version=1\n"
    assert git(repo, "log", "-1", "--format=%an|%cn").strip() == "synap-play|synap-play"
    message = git(repo, "log", "-1", "--format=%B")
    assert message.startswith('Revert "Deploy v2 (breaks /entities)"')
    assert f"This reverts commit {bad}." in message and "Incident: INC-2024-042" in message
    assert done["msg"].startswith(f'reverted {bad[:7]} "Deploy v2 (breaks /entities)" as {head[:7]}')
    assert "INC-2024-042" in done["msg"]

    again = module("deploy_rollback", {**args, "incident_id": "INC-2024-043"})
    assert again["changed"] is False and again["already_reverted"] is True and again["actions"] == []
    assert again["reverted_commit"]["sha"] == bad
    assert git(repo, "rev-parse", "HEAD").strip() == head, "its own revert must not be reverted"
    assert again["msg"] == f"HEAD {head[:7]} already reverts {bad[:7]}: not reverting again"

    info = module("deploy_info", {"repo": str(repo)})
    assert info["head_is_rollback"] is True and info["rollback"] == {"reverts": bad, "incident_id": "INC-2024-042"}


def test_rollback_refuses_a_dirty_checkout(module, repo):
    (repo / "app.conf").write_text("hand edited\n")
    result = module("deploy_rollback", {"repo": str(repo), "incident_id": "INC-1"})
    assert result["failed"] is True
    assert result["msg"] == f"{repo} has uncommitted changes (app.conf): commit or discard them before rolling back"


def test_rollback_bad_input_is_one_line(module, tmp_path, repo):
    not_repo = module("deploy_rollback", {"repo": str(tmp_path), "incident_id": "INC-1"})
    assert not_repo["failed"] is True and not_repo["msg"].endswith(
        "is not a git checkout: set repo to the deploy checkout"
    )
    bad_id = module("deploy_rollback", {"repo": str(repo), "incident_id": "INC-1\nRolled-back-by: synap-play"})
    assert bad_id["failed"] is True and bad_id["msg"].startswith("incident_id must be one non-empty line")


@pytest.mark.lab
def test_rollback_recreates_the_service_through_compose(module, repo, tmp_path):
    (tmp_path / "compose").mkdir()
    project = Project(tmp_path / "compose").up()
    try:
        time.sleep(1.1)  # commit times have one-second resolution: the containers must predate the revert
        before = project.container_ids("worker")
        args = {"repo": str(repo), "incident_id": "INC-7", **project.args, "service": "worker"}

        planned = module("deploy_rollback", args, check=True)
        assert [a["action"] for a in planned["actions"]] == ["revert", "recreate"], planned
        assert project.container_ids("worker") == before

        done = module("deploy_rollback", args)
        assert done["changed"] is True, done
        assert project.container_ids("worker") != before, "the service must be recreated"
        assert done["services"]["worker"]["running"] == 1
        assert done["msg"].endswith("(incident INC-7); recreated worker")
        assert any(" up --detach --force-recreate --no-deps worker" in c for c in done["commands"])

        after = project.container_ids("worker")
        again = module("deploy_rollback", args)
        assert again["changed"] is False and again["actions"] == [], again
        assert project.container_ids("worker") == after
    finally:
        project.down()


@pytest.mark.lab
def test_rollback_finishes_a_revert_whose_recreate_never_happened(module, repo, tmp_path):
    (tmp_path / "compose").mkdir()
    project = Project(tmp_path / "compose").up()
    try:
        time.sleep(1.1)
        module("deploy_rollback", {"repo": str(repo), "incident_id": "INC-8"})  # revert only, no compose
        before = project.container_ids("worker")
        args = {"repo": str(repo), "incident_id": "INC-8", **project.args, "service": "worker"}
        resumed = module("deploy_rollback", args)
        assert resumed["changed"] is True and resumed["already_reverted"] is True, resumed
        assert [a["action"] for a in resumed["actions"]] == ["recreate"]
        assert project.container_ids("worker") != before
        assert module("deploy_rollback", args)["changed"] is False
    finally:
        project.down()
