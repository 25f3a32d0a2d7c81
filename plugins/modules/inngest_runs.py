#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: inngest_runs
short_description: Cancel Inngest runs one by one - given by id or every stuck run
version_added: 0.1.0
description:
  - Cancels Inngest function runs, the runbook's "cancel stuck jobs via Inngest UI".
  - Runs are given by id (O(run_ids)) or selected with the same stuck filter as M(synap.ops.inngest_info)
    (O(stuck=true)) - RUNNING and started more than O(stuck_threshold) seconds ago, from the GraphQL runs
    query, following every page.
  - Runs are cancelled one by one with C(POST /v2/runs/{id}/cancel), because bulk cancellation
    (C(POST /v1/cancellations)) has no store behind it on the open-source server. A run that has already
    ended (C(409)) counts as done, so a second run reports no change.
  - At most O(max_runs) runs are cancelled per call; the rest are reported in RV(left_over).
author:
  - Synap operations (@synap)
extends_documentation_fragment:
  - synap.ops.inngest
  - ansible.builtin.action_common_attributes
  - synap.ops.attributes.action
attributes:
  check_mode:
    details: Returns in RV(actions) the exact runs that would be cancelled, and cancels none.
options:
  run_ids:
    description: Ids of the runs to cancel. Runs that already ended or that the server does not know are skipped.
    type: list
    elements: str
    default: []
  stuck:
    description: Cancel every stuck run (RUNNING for longer than O(stuck_threshold) seconds).
    type: bool
    default: false
  stuck_threshold:
    description:
      - Seconds a run may stay RUNNING before it counts as stuck (the runbook's 5 minutes).
      - Inventory variable C(synap_threshold_stuck_run_seconds).
    type: int
    default: 300
  runs_window:
    description: How far back, in seconds, stuck runs are looked for.
    type: int
    default: 86400
  function:
    description: Only cancel stuck runs of this function, given as slug (C(synap-global-validator)), id or name.
    type: str
  max_runs:
    description: Most runs cancelled in one call, so a wrong filter cannot empty the queue; oldest first.
    type: int
    default: 50
"""

EXAMPLES = r"""
- name: Show the stuck runs that would be cancelled
  synap.ops.inngest_runs:
    url: "{{ synap_inngest_url }}"
    signing_key: "{{ synap_inngest_signing_key | default(omit) }}"
    stuck: true
    stuck_threshold: "{{ synap_threshold_stuck_run_seconds }}"
  check_mode: true
  register: plan

- name: Cancel stuck global-validator runs
  synap.ops.inngest_runs:
    url: "{{ synap_inngest_url }}"
    signing_key: "{{ synap_inngest_signing_key | default(omit) }}"
    stuck: true
    function: global-validator
    max_runs: 100

- name: Cancel two runs by id
  synap.ops.inngest_runs:
    url: "{{ synap_inngest_url }}"
    run_ids: [01HX3T7Q2B1K0Z9Y8X7W6V5U4T, 01HX3T7Q2B1K0Z9Y8X7W6V5U4S]
"""

RETURN = r"""
msg:
  description: One-line summary.
  returned: always
  type: str
  sample: "cancelled 3 stuck runs (> 300 s); 1 had already ended"
actions:
  description: One entry per run cancelled (in check mode, per run that would be cancelled), oldest first.
  returned: always
  type: list
  elements: dict
  sample: [{"description": "cancel run 01HX... (synap-global-validator, running 812 s, entities.create.requested)",
            "run_id": "01HX...", "function_slug": "synap-global-validator", "status": "RUNNING",
            "started_at": "2024-05-01T10:00:00.000Z", "running_seconds": 812.4, "result": "cancelled"}]
cancelled:
  description: Ids of the runs cancelled by this call (empty in check mode).
  returned: always
  type: list
  elements: str
already_ended:
  description: Ids of runs that had ended before they could be cancelled (nothing to do).
  returned: always
  type: list
  elements: str
not_found:
  description: Ids from O(run_ids) that the server does not know.
  returned: always
  type: list
  elements: str
left_over:
  description: Ids of runs that matched but were not cancelled because of O(max_runs).
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.synap.ops.plugins.module_utils.inngest import (
    InngestClient,
    InngestError,
    inngest_argument_spec,
)
from ansible_collections.synap.ops.plugins.module_utils.inngest_runs_api import (
    ACTIVE_RUN_STATUSES,
    InngestRuns,
    describe_run,
)


def select_runs(runs, params, result):
    """The runs to act on, oldest stuck runs first, then the given ids; ended or unknown ones are set aside."""
    candidates = []
    if params["stuck"]:
        candidates.extend(runs.stuck_runs(params["stuck_threshold"], params["runs_window"], params["function"]))
    chosen = {run["id"] for run in candidates}
    for run_id in params["run_ids"]:
        if run_id in chosen:
            continue
        chosen.add(run_id)
        status = runs.run_status(run_id)
        if status is None:
            result["not_found"].append(run_id)
        elif status not in ACTIVE_RUN_STATUSES:
            result["already_ended"].append(run_id)
        else:
            candidates.append({"id": run_id, "status": status})
    return candidates


def main():
    argument_spec = inngest_argument_spec()
    argument_spec.update(
        run_ids=dict(type="list", elements="str", default=[]),
        stuck=dict(type="bool", default=False),
        stuck_threshold=dict(type="int", default=300),
        runs_window=dict(type="int", default=86400),
        function=dict(type="str"),
        max_runs=dict(type="int", default=50),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    if not params["stuck"] and not params["run_ids"]:
        module.fail_json(msg="nothing to cancel: give run_ids, or stuck=true to cancel every stuck run")
    for name in ("stuck_threshold", "runs_window", "max_runs"):
        if params[name] < 1:
            module.fail_json(msg=f"{name} must be a positive number, got {params[name]}")

    runs = InngestRuns(InngestClient(params))
    result = dict(changed=False, actions=[], cancelled=[], already_ended=[], not_found=[], left_over=[])
    try:
        candidates = select_runs(runs, params, result)
    except InngestError as exc:
        module.fail_json(msg=f"could not list the runs to cancel: {exc}", **result)

    planned, result["left_over"] = candidates[: params["max_runs"]], [r["id"] for r in candidates[params["max_runs"]:]]
    for run in planned:
        action = {"description": f"cancel run {describe_run(run)}", "run_id": run["id"],
                  "function_slug": run.get("function_slug"), "status": run.get("status"),
                  "started_at": run.get("started_at"), "running_seconds": run.get("running_seconds")}
        if module.check_mode:
            action["result"] = "planned"
            result["actions"].append(action)
            continue
        try:
            outcome = runs.cancel_run(run["id"])
        except InngestError as exc:
            result["changed"] = bool(result["cancelled"])
            module.fail_json(msg=f"cancelled {len(result['cancelled'])} run(s), then failed on {run['id']}: {exc}",
                             **result)
        if outcome == "cancelled":
            action["result"] = outcome
            result["actions"].append(action)
            result["cancelled"].append(run["id"])
        elif outcome == "already_ended":
            result["already_ended"].append(run["id"])
        else:
            result["not_found"].append(run["id"])

    result["changed"] = bool(result["cancelled"])
    if result["not_found"]:
        module.warn("Inngest does not know run(s) {}".format(", ".join(result["not_found"])))
    result["msg"] = summarise(result, params, module.check_mode)
    module.exit_json(**result)


def summarise(result, params, check_mode):
    what = f"stuck run(s) (> {params['stuck_threshold']} s)" if params["stuck"] and not params["run_ids"] else "run(s)"
    count = len(result["actions"])
    verb = "would cancel" if check_mode else "cancelled"
    text = f"{verb} {count} {what}" if count else f"no {what} to cancel"
    extra = []
    if result["already_ended"]:
        extra.append(f"{len(result['already_ended'])} had already ended")
    if result["not_found"]:
        extra.append(f"{len(result['not_found'])} unknown")
    if result["left_over"]:
        extra.append(f"{len(result['left_over'])} left over (max_runs {params['max_runs']})")
    return text + ("; " + ", ".join(extra) if extra else "")


if __name__ == "__main__":
    main()
