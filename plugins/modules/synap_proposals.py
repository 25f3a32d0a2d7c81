#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: synap_proposals
short_description: Validate or reject listed Synap proposals by id
description:
  - The runbook's manual approval (scenario 5) made safe. Sets the listed proposals to V(validated) or
    V(rejected) with C(reviewed_by) and C(reviewed_at), and returns each proposal's previous status.
  - Works on an explicit list of ids only; there is no bulk update without ids.
  - Only proposals in one of O(from_statuses) are changed; proposals already in the target status are left
    alone (so a second run reports C(changed=false)); ids that do not exist are reported in RV(missing).
  - Waits at most O(lock_timeout) for row locks, so it never joins a blocking chain on C(proposals).
  - Check mode returns the plan and changes nothing.
version_added: 0.1.0
author:
  - Synap operations (@synap)
options:
  ids:
    description:
      - The proposal ids (UUIDs) to change.
    type: list
    elements: str
    required: true
  status:
    description:
      - The new status.
    type: str
    choices: [validated, rejected]
    required: true
  reviewed_by:
    description:
      - Recorded in C(reviewed_by).
    type: str
    default: synap-play
  rejection_reason:
    description:
      - Recorded in C(rejection_reason) when O(status=rejected).
    type: str
  from_statuses:
    description:
      - Only proposals currently in one of these statuses are changed; others are reported in RV(skipped).
    type: list
    elements: str
    default: [pending]
extends_documentation_fragment:
  - synap.ops.postgres
  - ansible.builtin.action_common_attributes
  - synap.ops.attributes.action
"""

EXAMPLES = r"""
- name: Approve critical proposals by hand (runbook scenario 5)
  synap.ops.synap_proposals:
    dsn: "{{ synap_database_url }}"
    ids:
      - 6f1c1f8e-3d2a-4c55-9a51-0c7f4f7d2b10
    status: validated
    reviewed_by: "oncall:{{ incident_id | default('manual') }}"
"""

RETURN = r"""
msg:
  description: One-line summary.
  returned: always
  type: str
  sample: "validated 2 proposals; 1 already validated; 1 id not found"
actions:
  description: One entry per proposal changed (or in check mode, to change) with C(description), C(id),
    C(previous_status) and C(status).
  returned: always
  type: list
  elements: dict
  sample:
    - description: "validate proposal 6f1c1f8e-3d2a-4c55-9a51-0c7f4f7d2b10 (was pending)"
      id: 6f1c1f8e-3d2a-4c55-9a51-0c7f4f7d2b10
      previous_status: pending
      status: validated
unchanged:
  description: Proposals already in the target status (C(id), C(status)).
  returned: always
  type: list
  elements: dict
skipped:
  description: Proposals in a status outside O(from_statuses), left alone (C(id), C(status)).
  returned: always
  type: list
  elements: dict
missing:
  description: Ids that match no proposal.
  returned: always
  type: list
  elements: str
"""

import uuid

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.synap.ops.plugins.module_utils.postgres import (
    exit_with_action,
    postgres_argument_spec,
    query,
)

# FOR UPDATE so the status we decide on cannot change before the UPDATE; lock_timeout bounds the wait.
CURRENT_SQL = "SELECT id::text AS id, status FROM proposals WHERE id = ANY(%s::uuid[]) ORDER BY id FOR UPDATE"

UPDATE_SQL = """
UPDATE proposals
SET status = %(status)s, reviewed_by = %(reviewed_by)s, reviewed_at = now(), updated_at = now(),
    rejection_reason = CASE WHEN %(status)s = 'rejected' THEN %(reason)s ELSE rejection_reason END
WHERE id = ANY(%(ids)s::uuid[]) AND status = ANY(%(from)s)
RETURNING id::text AS id
"""

VERB = {"validated": "validate", "rejected": "reject"}


def parse_ids(module, raw):
    ids = []
    for value in raw:
        try:
            ids.append(str(uuid.UUID(str(value).strip())))
        except ValueError:
            module.fail_json(msg=f"proposal id {value!r} is not a UUID; "
                                 f"list proposal ids as shown by synap_proposals_info")
    return list(dict.fromkeys(ids))


def run(module, conn):
    p = module.params
    ids = parse_ids(module, p["ids"])
    target = p["status"]
    with conn.transaction():
        rows = query(conn, CURRENT_SQL, (ids,))
        found = {r["id"]: r["status"] for r in rows}
        missing = [i for i in ids if i not in found]
        unchanged = [dict(id=i, status=s) for i, s in found.items() if s == target]
        skipped = [dict(id=i, status=s) for i, s in found.items() if s != target and s not in p["from_statuses"]]
        to_change = [i for i in ids if i in found and found[i] != target and found[i] in p["from_statuses"]]
        actions = [dict(description=f"{VERB[target]} proposal {i} (was {found[i]})", id=i,
                        previous_status=found[i], status=target) for i in to_change]
        if to_change and not module.check_mode:
            changed_rows = query(conn, UPDATE_SQL, dict(status=target, reviewed_by=p["reviewed_by"],
                                                        reason=p["rejection_reason"], ids=to_change,
                                                        **{"from": p["from_statuses"]}))
            done = {r["id"] for r in changed_rows}
            actions = [a for a in actions if a["id"] in done]
    parts = [f"{'would ' + VERB[target] if module.check_mode else target} {len(actions)} "
             f"proposal{'s' if len(actions) != 1 else ''}"]
    if unchanged:
        parts.append(f"{len(unchanged)} already {target}")
    if skipped:
        parts.append(f"{len(skipped)} skipped (status not in {', '.join(p['from_statuses'])})")
    if missing:
        parts.append(f"{len(missing)} id{'s' if len(missing) != 1 else ''} not found")
    return dict(changed=bool(actions),
                actions=actions, unchanged=unchanged, skipped=skipped, missing=missing, msg="; ".join(parts))


def failure_message(error):
    hint = ("rows are locked by another session; find the blocker with postgres_activity_info"
            if "lock timeout" in error else "nothing was changed")
    return f"updating proposals failed: {error}; {hint}"


def main():
    module = AnsibleModule(
        argument_spec=postgres_argument_spec(
            ids=dict(type="list", elements="str", required=True),
            status=dict(type="str", choices=["validated", "rejected"], required=True),
            reviewed_by=dict(type="str", default="synap-play"),
            rejection_reason=dict(type="str"),
            from_statuses=dict(type="list", elements="str", default=["pending"]),
        ),
        supports_check_mode=True,
    )
    if not module.params["ids"]:
        module.fail_json(msg="ids is empty; list the proposal ids to change "
                             "(bulk updates without ids are not supported)")
    exit_with_action(module, run, failure_message)


if __name__ == "__main__":
    main()
