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
  - A missing path or a directory that is not a git checkout is a finding (RV(is_repo) false and RV(error)),
    not a failure.
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
  when: deploys.head_recent | default(false)
"""

RETURN = r"""
msg:
  description: One-line summary.
  returned: always
  type: str
  sample: 'HEAD 1a2b3c4 "Deploy v2.3" by alice, 7 min ago: recent (< 3600 s); 10 commits shown'
is_repo:
  description: Whether O(repo) is a readable git checkout.
  returned: always
  type: bool
error:
  description: Why the checkout could not be read.
  returned: when is_repo is false
  type: str
commits:
  description:
    - Latest commits, newest first, each with C(sha), C(short), C(subject), C(author), C(author_email),
      C(parents), C(committed_at) (ISO 8601 UTC), C(committed_epoch) and C(age_seconds).
  returned: when is_repo
  type: list
  elements: dict
head:
  description: The first entry of RV(commits).
  returned: when is_repo and the checkout has commits
  type: dict
head_age_seconds:
  description: Seconds since HEAD was committed.
  returned: when is_repo and the checkout has commits
  type: int
head_recent:
  description: Whether HEAD is newer than O(recent_seconds).
  returned: when is_repo
  type: bool
head_is_rollback:
  description: Whether HEAD is a rollback written by C(synap.ops.deploy_rollback).
  returned: when is_repo
  type: bool
rollback:
  description: For a rollback HEAD, the C(reverts) sha and the C(incident_id).
  returned: when head_is_rollback
  type: dict
branch:
  description: The checked-out branch, null on a detached HEAD.
  returned: when is_repo
  type: str
dirty:
  description: Tracked files with uncommitted changes.
  returned: when is_repo
  type: list
  elements: str
"""

import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.synap.ops.plugins.module_utils.deploy import Git, GitError, own_revert
from ansible_collections.synap.ops.plugins.module_utils.gather import GatherFailed, run_gather


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
    result = {"changed": False, "repo": repo}
    git = Git(run_command, repo)
    if not os.path.isdir(repo) or not git.is_repo():
        why = "does not exist" if not os.path.exists(repo) else "is not a git checkout"
        result.update(is_repo=False, error=f"{repo} {why}", msg=f"deploy checkout {repo} {why}")
        return result

    try:
        commits = git.log(params["count"])
    except GitError:
        commits = []  # a checkout without commits has no HEAD to log
    try:
        now = int(time.time())
        for commit in commits:
            commit["age_seconds"] = max(0, now - commit["committed_epoch"])
            commit["committed_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(commit["committed_epoch"]))
        result.update(is_repo=True, commits=commits, branch=git.branch() if commits else None, dirty=git.dirty())
    except GitError as exc:
        result.update(is_repo=False, error=str(exc), msg=f"deploy checkout unreadable: {exc}")
        return result

    if not commits:
        result.update(head_recent=False, head_is_rollback=False, msg=f"deploy checkout {repo} has no commits")
        return result

    head = commits[0]
    rollback = own_revert(git.message(head["sha"]))
    recent = head["age_seconds"] < params["recent_seconds"]
    result.update(
        head=head,
        head_age_seconds=head["age_seconds"],
        head_recent=recent,
        head_is_rollback=rollback is not None,
    )
    if rollback:
        result["rollback"] = rollback
    verdict = f"recent (< {params['recent_seconds']} s)" if recent else "not recent"
    if rollback:
        verdict += f", a synap-play rollback for incident {rollback['incident_id']}"
    result["msg"] = (
        f'HEAD {head["short"]} "{head["subject"]}" by {head["author"]}, {human_age(head["age_seconds"])}: '
        f"{verdict}; {len(commits)} commits shown"
    )
    if result["dirty"]:
        result["msg"] += f"; {len(result['dirty'])} files with uncommitted changes"
    return result


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True, **SPEC_OPTIONS)
    run_gather(module, gather)


if __name__ == "__main__":
    main()
