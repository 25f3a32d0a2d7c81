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

from ansible_collections.synap.ops.plugins.module_utils.deploy_info import INFO

# The module's options and look-up, for callers that import the module itself (synap-play validate reads the spec).
argument_spec = INFO.argument_spec
gather = INFO.gather


def main():
    INFO.run_module()


if __name__ == "__main__":
    main()
