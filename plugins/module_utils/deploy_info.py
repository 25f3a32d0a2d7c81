# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""synap.ops.deploy_info's look-up: recent commits of the deploy checkout and whether HEAD is a recent deployment.

plugins/modules/deploy_info.py documents it and runs ``INFO``; synap-play's first look calls ``gather`` itself.
"""

from __future__ import annotations

import os
import time

from ansible_collections.synap.ops.plugins.module_utils.deploy import Git, GitError, own_revert
from ansible_collections.synap.ops.plugins.module_utils.gather import GatherFailed, InfoModule, PartFailures, shaped

# Every documented field but msg and the common ones; each is None when it was not read.
RESULT_FIELDS = ("repo", "is_repo", "error", "commits", "head", "head_age_seconds", "head_recent", "head_is_rollback",
                 "rollback", "branch", "dirty")


def human_age(seconds):
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    if seconds < 172800:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} days ago"


def argument_spec():
    return dict(
        repo=dict(type="path", required=True),
        count=dict(type="int", default=10),
        recent_seconds=dict(type="int", default=3600),
    )


def gather(params, run_command):
    """The module's result from its validated ``params``, running git through ``run_command``."""
    if params["count"] < 1:
        raise GatherFailed(f"count must be 1 or more, got {params['count']}")
    repo = params["repo"]
    failures = PartFailures()
    result = {"repo": repo}
    git = Git(run_command, repo)
    if not os.path.isdir(repo) or not git.is_repo():
        why = "does not exist" if not os.path.exists(repo) else "is not a git checkout"
        failures.add("checkout", "not_found", f"{repo} {why}")
        shaped(result, RESULT_FIELDS, failures)
        result.update(is_repo=False, error=f"{repo} {why}", msg=f"deploy checkout {repo} {why} (not_found)")
        return result
    result["is_repo"] = True

    head = None
    try:
        commits = git.log(params["count"]) if git.has_commits() else []
        now = int(time.time())
        for commit in commits:
            commit["age_seconds"] = max(0, now - commit["committed_epoch"])
            commit["committed_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(commit["committed_epoch"]))
        result["commits"] = commits
        if commits:
            head = commits[0]
            rollback = own_revert(git.message(head["sha"]))
            result.update(head=head, head_age_seconds=head["age_seconds"],
                          head_recent=head["age_seconds"] < params["recent_seconds"],
                          head_is_rollback=rollback is not None, rollback=rollback)
    except GitError as exc:
        failures.add("commits", "query_failed", str(exc))
    # The branch and the dirty files are findings of their own: one git failing leaves the others readable.
    for part, read in (("branch", git.branch), ("dirty", git.dirty)):
        if part == "branch" and not result.get("commits"):
            continue  # without a commit there is no branch to name
        try:
            result[part] = read()
        except GitError as exc:
            failures.add(part, "query_failed", str(exc))
    shaped(result, RESULT_FIELDS, failures)
    result["error"] = "; ".join(failures.reasons.values()) or None

    if head is None:
        result["msg"] = (f"deploy checkout {repo} has no commits" if result["commits"] == []
                         else f"deploy checkout {repo} unreadable")
    else:
        verdict = f"recent (< {params['recent_seconds']} s)" if result["head_recent"] else "not recent"
        if result["rollback"]:
            verdict += f", a synap-play rollback for incident {result['rollback']['incident_id']}"
        result["msg"] = (
            f'HEAD {head["short"]} "{head["subject"]}" by {head["author"]}, {human_age(head["age_seconds"])}: '
            f"{verdict}; {len(result['commits'])} commits shown"
        )
    if result["dirty"]:
        result["msg"] += f"; {len(result['dirty'])} files with uncommitted changes"
    if failures:
        result["msg"] += f"; NOT READ from {repo} ({failures.kind}): {result['error']}"
    return result


INFO = InfoModule(argument_spec, gather)
