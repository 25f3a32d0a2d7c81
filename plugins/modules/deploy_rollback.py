#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: deploy_rollback
short_description: Roll back the latest deployment with git revert, then recreate the service through compose
description:
  - The runbook's rollback (C(git revert HEAD), C(docker compose down api), C(docker compose up -d api)) as one
    idempotent step on the host holding the deploy checkout.
  - "Reverts HEAD without an editor, as author O(author_name), with O(incident_id) in the message and a
    C(Rolled-back-by: synap-play) trailer. A merge commit is reverted to its first parent."
  - Idempotent; when HEAD is already a rollback written by this module it does not revert again (that would
    re-apply the bad deployment), and only recreates the service if its containers predate that rollback.
  - When a compose project is given (O(project_dir), O(files) or O(project_name)), recreates O(service) after the
    revert and waits until it runs (and passes its healthcheck, if it has one).
version_added: 0.1.0
author:
  - Synap operations (@synap)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - synap.ops.compose
  - synap.ops.attributes.action
attributes:
  check_mode:
    details: Returns the commit it would revert and the planned actions in RV(actions); changes nothing.
options:
  repo:
    description: The deploy git checkout (inventory variable C(synap_deploy_repo)).
    type: path
    required: true
  incident_id:
    description: The incident this rollback belongs to; written into the revert commit's message.
    type: str
    required: true
  service:
    description: The compose service to recreate after the revert (inventory variable C(synap_service_api)).
    type: str
    default: api
  author_name:
    description: Author and committer name of the revert commit.
    type: str
    default: synap-play
  author_email:
    description: Author and committer e-mail of the revert commit.
    type: str
    default: synap-play@localhost
  wait_timeout:
    description: Seconds to wait for the recreated service to run and pass its healthcheck; V(0) does not wait.
    type: int
    default: 60
requirements:
  - git on the host that runs the module
"""

EXAMPLES = r"""
- name: Roll back the latest deployment of the API
  synap.ops.deploy_rollback:
    repo: "{{ synap_deploy_repo }}"
    incident_id: "{{ incident_id }}"
    project_dir: "{{ synap_compose_project_dir }}"
    project_name: "{{ synap_compose_project_name }}"
    service: "{{ synap_service_api }}"
  register: rollback
"""

RETURN = r"""
msg:
  description: One-line summary.
  returned: always
  type: str
  sample: 'reverted 1a2b3c4 "Deploy v2.3" as 9f8e7d6 (incident INC-42); recreated api'
actions:
  description: The actions taken (planned in check mode), each with C(action), C(description) and its fields.
  returned: always
  type: list
  elements: dict
  sample:
    - action: revert
      commit: 1a2b3c4d5e6f...
      description: revert 1a2b3c4 "Deploy v2.3" (incident INC-42)
reverted_commit:
  description: The deployment commit that is (or would be) reverted - C(sha), C(short), C(subject), C(author).
  returned: when there is one
  type: dict
revert_commit:
  description: The rollback commit at HEAD - C(sha), C(short), C(subject).
  returned: when HEAD is a rollback, after the run
  type: dict
already_reverted:
  description: Whether HEAD was already a rollback written by this module before the run.
  returned: always
  type: bool
commands:
  description: The git and docker compose commands that changed something.
  returned: always
  type: list
  elements: str
services:
  description: State of O(service) after the run (see C(synap.ops.compose_service)).
  returned: when a compose project is given
  type: dict
"""

import contextlib

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.synap.ops.plugins.module_utils.compose import (
    Compose,
    ComposeError,
    compose_argument_spec,
    compose_given,
    describe_service,
)
from ansible_collections.synap.ops.plugins.module_utils.deploy import Git, GitError, own_revert, rollback_message


def commit_summary(commit):
    return {key: commit[key] for key in ("sha", "short", "subject", "author")}


def revert(git, head, params):
    identity = {
        "GIT_AUTHOR_NAME": params["author_name"],
        "GIT_AUTHOR_EMAIL": params["author_email"],
        "GIT_COMMITTER_NAME": params["author_name"],
        "GIT_COMMITTER_EMAIL": params["author_email"],
    }
    mainline = ["--mainline", "1"] if len(head["parents"]) > 1 else []
    try:
        git.run(["revert", "--no-edit", "--no-commit"] + mainline + [head["sha"]], env=identity, record=True)
    except GitError:
        # Leave the checkout as it was, not half-reverted.
        with contextlib.suppress(GitError):
            git.run(["revert", "--abort"])
        raise
    message = rollback_message(head, params["incident_id"])
    git.run(["commit", "--no-verify", "--allow-empty", "--message", message], env=identity, record=True)


def main():
    argument_spec = compose_argument_spec()
    argument_spec.update(
        repo=dict(type="path", required=True),
        incident_id=dict(type="str", required=True),
        service=dict(type="str", default="api"),
        author_name=dict(type="str", default="synap-play"),
        author_email=dict(type="str", default="synap-play@localhost"),
        wait_timeout=dict(type="int", default=60),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    incident_id = params["incident_id"].strip()
    if not incident_id or "\n" in incident_id:
        module.fail_json(msg="incident_id must be one non-empty line, for example INC-2024-001")
    params["incident_id"] = incident_id

    git = Git(module.run_command, params["repo"])
    compose = Compose.from_params(params, module.run_command) if compose_given(params) else None
    commands = git.commands
    result = {"changed": False, "actions": [], "commands": commands, "already_reverted": False}
    try:
        if not git.is_repo():
            module.fail_json(msg=f"{params['repo']} is not a git checkout: set repo to the deploy checkout")
        head = git.log(1)[0]
        ours = own_revert(git.message(head["sha"]))
        actions = []
        if ours:
            result["already_reverted"] = True
            result["revert_commit"] = commit_summary(head)
            if ours["reverts"]:
                result["reverted_commit"] = {"sha": ours["reverts"], "short": ours["reverts"][:7]}
        else:
            dirty = git.dirty()
            if dirty:
                module.fail_json(
                    msg=f"{params['repo']} has uncommitted changes ({', '.join(dirty[:3])}): commit or discard "
                    "them before rolling back"
                )
            result["reverted_commit"] = commit_summary(head)
            actions.append(
                {
                    "action": "revert",
                    "commit": head["sha"],
                    "description": f'revert {head["short"]} "{head["subject"]}" (incident {incident_id})',
                }
            )

        state = None
        if compose is not None:
            service = params["service"]
            state = compose.services([service]).get(service)
            created = state["last_created_at"] if state else None
            # After our own revert, the service is current only if its containers were created after it.
            stale = not ours or created is None or created < head["committed_epoch"]
            if stale:
                reason = "after the revert" if not ours else "its containers predate the rollback commit"
                actions.append(
                    {"action": "recreate", "service": service, "description": f"recreate {service} ({reason})"}
                )
        result["actions"] = actions

        if module.check_mode or not actions:
            if state is not None:
                result["services"] = {params["service"]: state}
            result["msg"] = summary(result, actions, module.check_mode, incident_id)
            module.exit_json(**result)

        for action in actions:
            if action["action"] == "revert":
                revert(git, head, params)
                new_head = git.log(1)[0]
                result["revert_commit"] = commit_summary(new_head)
                action["revert_commit"] = new_head["sha"]
                result["changed"] = True
            else:
                compose.commands = commands  # one audit trail for git and compose
                compose.recreate(action["service"])
                result["changed"] = True
                if params["wait_timeout"]:
                    ready, services = compose.wait_ready([action["service"]], params["wait_timeout"])
                    result["services"] = services
                    if not ready:
                        what = describe_service(action["service"], services.get(action["service"]))
                        result["msg"] = f"rolled back, but {what} after {params['wait_timeout']} s"
                        module.fail_json(**result)
                else:
                    result["services"] = compose.services([action["service"]])
    except (GitError, ComposeError) as exc:
        result["msg"] = str(exc)
        module.fail_json(**result)

    result["msg"] = summary(result, actions, False, incident_id)
    module.exit_json(**result)


def summary(result, actions, check_mode, incident_id):
    parts = []
    for action in actions:
        if action["action"] == "revert":
            reverted = result["reverted_commit"]
            if check_mode:
                parts.append(f'would revert {reverted["short"]} "{reverted["subject"]}" (incident {incident_id})')
            else:
                revert_short = result["revert_commit"]["short"]
                parts.append(
                    f'reverted {reverted["short"]} "{reverted["subject"]}" as {revert_short} (incident {incident_id})'
                )
        else:
            parts.append(("would recreate " if check_mode else "recreated ") + action["service"])
    if result["already_reverted"]:
        head = result["revert_commit"]
        reverted = result.get("reverted_commit", {}).get("short", "?")
        parts.insert(0, f"HEAD {head['short']} already reverts {reverted}: not reverting again")
    return "; ".join(parts) or "nothing to do"


if __name__ == "__main__":
    main()
