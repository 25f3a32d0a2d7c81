#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: deploy_info
short_description: Recent commits of the deploy checkout and whether HEAD is a recent deployment
description:
  - The runbook's C(git log --oneline -10) with times, run on the host holding the deploy checkout.
  - Says whether HEAD is recent (committed fewer than O(recent_seconds) ago) and whether it is a rollback
    written by C(synap.ops.deploy_rollback).
  - A missing path or a directory that is not a git checkout is a finding (RV(is_repo) false, RV(failure)
    V(not_found) and RV(error)), not a failure.
version_added: 0.1.0
author:
  - Synap operations (@synap)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - synap.ops.attributes.info
options:
  repo:
    description: The deploy git checkout (inventory variable C(synap_deploy_repo)).
    type: path
    required: true
  count:
    description: How many of the latest commits to return.
    type: int
    default: 10
  recent_seconds:
    description: HEAD committed fewer than this many seconds ago counts as a recent deployment.
    type: int
    default: 3600
requirements:
  - git on the host that runs the module
"""

EXAMPLES = r"""
- name: Check recent deployments
  synap.ops.deploy_info:
    repo: "{{ synap_deploy_repo }}"
    recent_seconds: "{{ synap_threshold_recent_deploy_seconds }}"
  register: deploys

- name: Say whether a rollback is a candidate
  ansible.builtin.debug:
    msg: "HEAD {{ deploys.head.short }} is a recent deployment"
  when: deploys.head_recent is true
"""

RETURN = r"""
msg:
  description: One-line summary; when something could not be read, the checkout, the failure kind and the cause.
  returned: always
  type: str
  sample: 'HEAD 1a2b3c4 "Deploy v2.3" by alice, 7 min ago: recent (< 3600 s); 10 commits shown'
reachable:
  description: Whether the checkout and everything about it (commits, branch, changed files) could be read.
  returned: always
  type: bool
failure:
  description:
    - Null when everything was read. Otherwise V(not_found) (O(repo) missing or not a git checkout),
      V(query_failed) (a git command failed in the checkout) or V(error).
  returned: always
  type: str
  sample: not_found
failures:
  description:
    - What could not be read (V(checkout), V(commits), V(branch), V(dirty)) with a one-line reason; empty when
      everything was read.
  returned: always
  type: dict
repo:
  description: The checkout read, O(repo).
  returned: always
  type: str
is_repo:
  description: Whether O(repo) is a readable git checkout.
  returned: always
  type: bool
error:
  description: Why the checkout (or a part of it) could not be read; null when everything was read.
  returned: always
  type: str
commits:
  description:
    - Latest commits, newest first, each with C(sha), C(short), C(subject), C(author), C(author_email),
      C(parents), C(committed_at) (ISO 8601 UTC), C(committed_epoch) and C(age_seconds).
    - Empty for a checkout without commits; null when the checkout or its log could not be read.
  returned: always
  type: list
  elements: dict
head:
  description: The first entry of RV(commits); null without commits or when they could not be read.
  returned: always
  type: dict
head_age_seconds:
  description: Seconds since HEAD was committed; null without commits or when they could not be read.
  returned: always
  type: int
head_recent:
  description:
    - Whether HEAD is newer than O(recent_seconds).
    - Null without commits (there is no HEAD to judge) or when they could not be read.
  returned: always
  type: bool
head_is_rollback:
  description:
    - Whether HEAD is a rollback written by C(synap.ops.deploy_rollback).
    - Null without commits or when they could not be read.
  returned: always
  type: bool
rollback:
  description:
    - For a rollback HEAD, the C(reverts) sha and the C(incident_id).
    - Null when HEAD is not a rollback (RV(head_is_rollback) false) or was not read.
  returned: always
  type: dict
branch:
  description: The checked-out branch; null on a detached HEAD, without commits, or when it could not be read.
  returned: always
  type: str
dirty:
  description:
    - Tracked files with uncommitted changes (empty when none).
    - Null when the checkout or its status could not be read.
  returned: always
  type: list
  elements: str
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.synap.ops.plugins.module_utils.deploy import Git, GitError, own_revert
from ansible_collections.synap.ops.plugins.module_utils.gather import GatherFailed, PartFailures, run_gather, shaped

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


SPEC_OPTIONS = {}


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


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True, **SPEC_OPTIONS)
    run_gather(module, gather)


if __name__ == "__main__":
    main()
