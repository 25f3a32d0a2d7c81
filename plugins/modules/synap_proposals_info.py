#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: synap_proposals_info
short_description: Count Synap proposals by status cheaply and find pending ones stuck for too long
description:
  - Proposal counts by status that stay cheap on tables with millions of rows. The runbook's
    C(SELECT status, count(*) FROM proposals GROUP BY status) reads the whole table, as there is no index on
    C(status) alone. Instead each number comes from the planner's statistics or from the
    C((workspace_id, status)) index walked workspace by workspace, bounded; RV(counts) names the method used
    for every number.
  - Pending proposals older than O(pending_older_than), the oldest pending age, and a summary of the
    workspaces' C(settings->>'aiAutoApprove') (runbook scenario 5).
  - Reports an unreachable server or missing tables as a finding rather than failing. Each part (statistics,
    full scan, workspace walk, aiAutoApprove) that fails leaves its fields null and is named in RV(failures).
    Never changes anything.
version_added: 0.1.0
author:
  - Synap operations (@synap)
options:
  count_method:
    description:
      - V(auto) uses statistics for large statuses and the index (exact, bounded by O(exact_limit)) for small ones.
      - V(estimate) uses the planner's statistics only (no table access).
      - V(exact) runs the runbook's full C(GROUP BY status) scan; slow on large tables, bounded by O(statement_timeout).
    type: str
    choices: [auto, estimate, exact]
    default: auto
  exact_limit:
    description:
      - With O(count_method=auto), a status is counted exactly through the index only up to this many rows;
        above it the estimate is reported.
    type: int
    default: 10000
  statuses:
    description:
      - Statuses always reported, even when the statistics do not mention them.
    type: list
    elements: str
    default: [pending, validated, rejected, approved]
  pending_older_than:
    description:
      - Pending proposals created longer ago than this many seconds are listed in RV(stale_pending).
    type: float
    default: 300
  list_limit:
    description:
      - At most this many stale pending proposals and workspaces are listed.
    type: int
    default: 20
extends_documentation_fragment:
  - synap.ops.postgres
  - ansible.builtin.action_common_attributes
  - synap.ops.attributes.info
"""

EXAMPLES = r"""
- name: Are proposals piling up? (runbook scenario 5)
  synap.ops.synap_proposals_info:
    dsn: "{{ synap_database_url }}"
    pending_older_than: "{{ synap_threshold_stuck_run_seconds }}"
  register: proposals

- name: Show the pending count and how it was obtained
  ansible.builtin.debug:
    msg: "{{ proposals.counts.pending.count }} pending ({{ proposals.counts.pending.method }})"
"""

RETURN = r"""
msg:
  description:
    - One-line summary; when something could not be read, the target (C(user@host:port/db), never the password),
      the failure kind and the cause.
  returned: always
  type: str
  sample: "proposals: pending 1204 (exact), validated ~1.9M (estimate); 37 pending > 300 s, oldest 5400 s"
reachable:
  description: Whether a connection was made and every part was read (RV(failure) null).
  returned: always
  type: bool
failure:
  description:
    - Null when everything was read. Otherwise V(refused), V(timeout), V(dns), V(tls), V(auth_failed),
      V(database_missing), V(too_many_clients), V(error) (no connection), V(not_found) (the C(proposals) or
      C(workspaces) table is missing) or V(query_failed) (a query failed, a statement timeout for one).
  returned: always
  type: str
failures:
  description:
    - What could not be read, part by part (V(connection), V(proposals), V(estimates), V(full_scan),
      V(workspace_walk), V(auto_approve)), with a one-line reason. Empty when everything was read.
  returned: always
  type: dict
  sample: {"workspace_walk": "canceling statement due to statement timeout"}
error:
  description: The failure text, with any password removed; null without a failure.
  returned: always
  type: str
counts:
  description:
    - Per status, C(count), C(exact) (bool) and C(method), which names how the number was obtained
      (C(estimate), C(index), C(bounded) or C(full_scan)) with a C(method_detail) sentence.
    - C(count) is null for a status the statistics do not mention (rarer than their most common values) that
      was not counted through the index either; never 0 for it.
    - Built from whatever was read (statistics, the index walk, the full scan); null when none of them was.
  returned: always
  type: dict
  sample:
    pending: {count: 12, exact: true, method: index, method_detail: "exact, index (workspace_id, status)"}
    validated: {count: 1900000, exact: false, method: estimate, method_detail: "planner statistics"}
table_rows_estimate:
  description:
    - The planner's row estimate for the whole table (C(pg_class.reltuples)); -1 if never analyzed.
    - Null when the statistics could not be read.
  returned: always
  type: int
workspaces_with_proposals:
  description: Number of distinct workspaces holding proposals (from the index); null when the walk failed.
  returned: always
  type: int
pending_total:
  description: Number of pending proposals (exact, from the index); null when the walk failed.
  returned: always
  type: int
stale_pending_count:
  description: Number of pending proposals older than O(pending_older_than); null when the walk failed.
  returned: always
  type: int
stale_pending:
  description:
    - The oldest pending proposals older than O(pending_older_than) (id, workspace_id, target_type,
      target_id, created_at, age_seconds).
    - Null when the walk failed.
  returned: always
  type: list
  elements: dict
oldest_pending_seconds:
  description:
    - Age of the oldest pending proposal.
    - Null when none is pending (RV(pending_total) is then 0), or when the walk failed.
  returned: always
  type: float
auto_approve:
  description:
    - Workspaces counted by C(settings->>'aiAutoApprove') (V(true), V(false), V(unset)).
    - Null when the C(workspaces) table is missing or could not be read.
  returned: always
  type: dict
  sample: {"false": 40, "true": 2, "unset": 958}
auto_approve_sample:
  description:
    - Up to O(list_limit) workspaces with their C(aiAutoApprove) value, as in the runbook.
    - Null when the C(workspaces) table is missing or could not be read.
  returned: always
  type: list
  elements: dict
queries:
  description: The statements run, for the record; null when no connection was made.
  returned: always
  type: list
  elements: str
"""

from ansible_collections.synap.ops.plugins.module_utils.synap_proposals_info import INFO

# The module's options and look-up, for callers that import the module itself (synap-play validate reads the spec).
argument_spec = INFO.argument_spec
gather = INFO.gather


def main():
    INFO.run_module()


if __name__ == "__main__":
    main()
