#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: inngest_info
short_description: Diagnose an Inngest server - health, queue depth, functions, stuck runs and recent events
version_added: 0.1.0
description:
  - Reads an Inngest server the way the incident runbook's "check Inngest" steps mean to, without the
    runbook's traps.
  - Health comes from the JSON body of C(GET /health). A C(200) with an HTML page (what C(/api/health)
    answers, since unknown paths fall through to the web UI) is reported as B(unhealthy).
  - Queue depth is the C(inngest_queue_depth) gauge of C(/metrics), the runbook's "queue depth > 100".
  - Runs come from the GraphQL runs query, following every page. A run is stuck when it is RUNNING and
    started more than O(stuck_threshold) seconds ago.
  - The ids of the events that triggered the listed runs come from C(GET /v2/runs) (its C(trigger.eventIds)),
    following every page, so a playbook can replay the events of FAILED runs with M(synap.ops.inngest_event).
  - Recent events are read over C(/v1/events) pages and matched on the client against a glob such as
    C(*.requested), because the server matches names exactly; they are also counted by name to find the
    source of an event storm.
  - An unreachable server or a garbage answer is a finding (RV(reachable), RV(errors)), never a failure, so
    a diagnosis always completes.
author:
  - Synap operations (@synap)
extends_documentation_fragment:
  - synap.ops.inngest
  - ansible.builtin.action_common_attributes
  - synap.ops.attributes.info
options:
  gather:
    description: What to read. Health is always read first; an unreachable server skips the rest.
    type: list
    elements: str
    choices: [health, queue, functions, runs, events]
    default: [health, queue, functions, runs, events]
  app:
    description: Application whose functions are listed (inventory variable C(synap_inngest_app)).
    type: str
    default: synap
  run_statuses:
    description: Statuses of the runs to count and list (runs queued within O(runs_window)).
    type: list
    elements: str
    choices: [QUEUED, RUNNING, COMPLETED, FAILED, CANCELLED, SKIPPED]
    default: [QUEUED, RUNNING]
  stuck_threshold:
    description:
      - Seconds a run may stay RUNNING before it counts as stuck (the runbook's 5 minutes).
      - Inventory variable C(synap_threshold_stuck_run_seconds).
    type: int
    default: 300
  runs_window:
    description: How far back, in seconds, runs are looked for.
    type: int
    default: 86400
  event_pattern:
    description: Glob matched against event names, for example C(*.requested); C(*) matches every event.
    type: str
    default: '*'
  events_window:
    description: How far back, in seconds, events are read (the server's own default is the last hour).
    type: int
    default: 3600
  max_events:
    description: Most events read from the server; RV(events_truncated) says when the scan stopped there.
    type: int
    default: 2000
  max_listed:
    description: Most runs and events returned in RV(runs), RV(stuck_runs) and RV(events); counts are always complete.
    type: int
    default: 50
"""

EXAMPLES = r"""
- name: Diagnose Inngest
  synap.ops.inngest_info:
    url: "{{ synap_inngest_url }}"
    signing_key: "{{ synap_inngest_signing_key | default(omit) }}"
    app: "{{ synap_inngest_app }}"
    stuck_threshold: "{{ synap_threshold_stuck_run_seconds }}"
  register: inngest

- name: Look for an event storm of requests in the last ten minutes
  synap.ops.inngest_info:
    url: "{{ synap_inngest_url }}"
    gather: [events]
    event_pattern: "*.requested"
    events_window: 600
  register: storm

- name: Say where the storm comes from
  ansible.builtin.debug:
    msg: "{{ storm.event_counts | dict2items | sort(attribute='value', reverse=true) | first }}"
"""

RETURN = r"""
msg:
  description: One-line summary.
  returned: always
  type: str
  sample: "Inngest healthy: queue depth 142, 11 functions (synap), 4 RUNNING, 138 QUEUED, 3 stuck > 300 s"
reachable:
  description: Whether the server answered at all.
  returned: always
  type: bool
healthy:
  description: Whether C(GET /health) answered Inngest's JSON health body.
  returned: always
  type: bool
health:
  description: The health check; C(detail) explains an unhealthy answer (for example the HTML trap).
  returned: always
  type: dict
  sample: {"status_code": 200, "detail": "OK"}
error:
  description: Why the server is unreachable or unhealthy.
  returned: when not healthy
  type: str
errors:
  description:
    - Sections that could not be read, with the reason; the others are still returned.
    - C(run_events) when the runs were read but not the ids of their events.
  returned: always
  type: dict
  sample: {"queue": "GET /metrics at http://inngest:8288 has no inngest_queue_depth gauge"}
queue_depth:
  description: The C(inngest_queue_depth) gauge; null if it could not be read.
  returned: when queue is gathered
  type: int
app_registered:
  description: Whether O(app) has registered functions with the server.
  returned: when functions is gathered
  type: bool
functions:
  description: Functions of O(app).
  returned: when functions is gathered
  type: list
  elements: dict
  sample: [{"slug": "synap-global-validator", "name": "Global Validator & Proposal Router",
            "triggers": ["entities.create.requested", "*.*.requested"]}]
run_counts:
  description: Runs queued within O(runs_window) by status, for every status in O(run_statuses).
  returned: when runs is gathered
  type: dict
  sample: {"QUEUED": 138, "RUNNING": 4}
runs:
  description:
    - Those runs, oldest first, at most O(max_listed).
    - Each has C(id), C(status), C(queued_at), C(started_at), C(ended_at), C(function_slug), C(function_name),
      C(app), C(event_name) and C(event_ids), the ids of the events that triggered it.
  returned: when runs is gathered
  type: list
  elements: dict
  sample: [{"id": "01HX...", "status": "FAILED", "function_slug": "synap-global-validator",
            "event_name": "entities.create.requested", "event_ids": ["01HW..."]}]
failed_event_ids:
  description:
    - Unique ids of the events whose runs ended FAILED within O(runs_window), oldest failure first; all of them,
      not only O(max_listed). Pass them to M(synap.ops.inngest_event) O(synap.ops.inngest_event#module:replay_ids).
    - An event whose run was rerun or replayed since is still listed; a replay gets an id of its own.
  returned: when runs is gathered and FAILED is in O(run_statuses)
  type: list
  elements: str
  sample: ["01HW...", "01HX..."]
stuck_runs:
  description: RUNNING runs started more than O(stuck_threshold) seconds ago, oldest first, at most O(max_listed).
  returned: when runs is gathered
  type: list
  elements: dict
  sample: [{"id": "01HX...", "status": "RUNNING", "started_at": "2024-05-01T10:00:00.000Z",
            "running_seconds": 812.4, "function_slug": "synap-global-validator",
            "event_name": "entities.create.requested", "event_ids": ["01HW..."]}]
stuck_count:
  description: Number of stuck runs (all of them, not only the listed ones).
  returned: when runs is gathered
  type: int
events:
  description: Events within O(events_window) whose names match O(event_pattern), newest first, at most O(max_listed).
  returned: when events is gathered
  type: list
  elements: dict
event_counts:
  description: Matching events within O(events_window) counted by name, largest first.
  returned: when events is gathered
  type: dict
  sample: {"entities.create.requested": 812, "proposals.update.requested": 3}
events_matched:
  description: Number of matching events.
  returned: when events is gathered
  type: int
events_scanned:
  description: Number of events read from the server.
  returned: when events is gathered
  type: int
events_truncated:
  description: Whether O(max_events) stopped the scan (the counts are then lower bounds).
  returned: when events is gathered
  type: bool
"""

import fnmatch
from collections import Counter
from datetime import timedelta

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.synap.ops.plugins.module_utils.gather import GatherFailed, run_gather
from ansible_collections.synap.ops.plugins.module_utils.inngest import (
    HAS_PROMETHEUS_CLIENT,
    RUN_STATUSES,
    InngestClient,
    InngestError,
    inngest_argument_spec,
    utc_now,
)


def gather_functions(client, app, result):
    functions = client.functions(app)
    result["app_registered"] = bool(functions)
    result["functions"] = functions or []


def gather_runs(client, params, result):
    now = utc_now()
    start = now - timedelta(seconds=params["runs_window"])
    runs = client.runs(params["run_statuses"], start, now)
    result["run_counts"] = {status: sum(1 for r in runs if r["status"] == status) for status in params["run_statuses"]}
    result["runs"] = runs[: params["max_listed"]]
    stuck = client.stuck_runs(params["stuck_threshold"], params["runs_window"], now=now)
    result["stuck_count"] = len(stuck)
    result["stuck_runs"] = stuck[: params["max_listed"]]
    # The runs themselves are the finding; without their events they still are, so this degrades on its own.
    try:
        client.attach_event_ids(result["runs"], start, now, "queued_at")
        stuck_until = now - timedelta(seconds=params["stuck_threshold"])
        client.attach_event_ids(result["stuck_runs"], start, stuck_until, "started_at")
        if "FAILED" in params["run_statuses"]:
            result["failed_event_ids"] = client.event_ids_of_runs("FAILED", start, now, "ended_at")
    except InngestError as exc:
        result["errors"]["run_events"] = str(exc)


def gather_events(client, params, result):
    start = utc_now() - timedelta(seconds=params["events_window"])
    events, truncated = client.events(start, max_events=params["max_events"])
    matching = [e for e in events if fnmatch.fnmatchcase(e.get("name") or "", params["event_pattern"])]
    result["event_counts"] = dict(Counter(e.get("name") for e in matching).most_common())
    result["events"] = [
        {key: event.get(key) for key in ("id", "name", "data", "user", "ts", "received_at")}
        for event in matching[: params["max_listed"]]
    ]
    result["events_matched"] = len(matching)
    result["events_scanned"] = len(events)
    result["events_truncated"] = truncated


def summarise(result, params):
    if not result["reachable"]:
        return f"Inngest unreachable: {result['error']}"
    parts = []
    if "queue_depth" in result and result["queue_depth"] is not None:
        parts.append(f"queue depth {result['queue_depth']}")
    if "functions" in result:
        if result["app_registered"]:
            parts.append(f"{len(result['functions'])} functions ({params['app']})")
        else:
            parts.append(f"app {params['app']} has no functions registered")
    if "run_counts" in result:
        parts.append(", ".join(f"{count} {status}" for status, count in result["run_counts"].items()))
        parts.append(f"{result['stuck_count']} stuck > {params['stuck_threshold']} s")
    if "failed_event_ids" in result:
        parts.append(f"{len(result['failed_event_ids'])} events behind FAILED runs")
    if "event_counts" in result:
        more = "+" if result["events_truncated"] else ""
        text = (f"{result['events_matched']}{more} events matching {params['event_pattern']} "
                f"in {params['events_window']} s")
        if result["event_counts"]:
            name, count = next(iter(result["event_counts"].items()))
            text += f" (most: {name} {count})"
        parts.append(text)
    if result["errors"]:
        parts.append("could not read {}".format(", ".join(sorted(result["errors"]))))
    head = "Inngest healthy" if result["healthy"] else "Inngest UNHEALTHY ({})".format(result["error"])
    return head + (": " + ", ".join(parts) if parts else "")


def argument_spec():
    spec = inngest_argument_spec()
    spec.update(
        gather=dict(type="list", elements="str", choices=["health", "queue", "functions", "runs", "events"],
                    default=["health", "queue", "functions", "runs", "events"]),
        app=dict(type="str", default="synap"),
        run_statuses=dict(type="list", elements="str", choices=RUN_STATUSES, default=["QUEUED", "RUNNING"]),
        stuck_threshold=dict(type="int", default=300),
        runs_window=dict(type="int", default=86400),
        event_pattern=dict(type="str", default="*"),
        events_window=dict(type="int", default=3600),
        max_events=dict(type="int", default=2000),
        max_listed=dict(type="int", default=50),
    )
    return spec


SPEC_OPTIONS = {}


def gather(params, run_command=None):
    """The module's result from its validated ``params``; ``run_command`` is not needed here."""
    for name in ("stuck_threshold", "runs_window", "events_window", "max_events", "max_listed"):
        if params[name] < 1:
            raise GatherFailed(f"{name} must be a positive number, got {params[name]}")
    sections_wanted = set(params["gather"])
    if "queue" in sections_wanted and not HAS_PROMETHEUS_CLIENT:
        raise GatherFailed(missing_required_lib("prometheus_client"))

    client = InngestClient(params)
    health = client.health()
    result = dict(changed=False, reachable=health["status_code"] is not None, healthy=health["healthy"],
                  health={"status_code": health["status_code"], "detail": health["detail"]}, errors={})
    if not health["healthy"]:
        result["error"] = health["detail"]

    if result["reachable"]:
        sections = [
            ("queue", lambda: result.update(queue_depth=client.queue_depth())),
            ("functions", lambda: gather_functions(client, params["app"], result)),
            ("runs", lambda: gather_runs(client, params, result)),
            ("events", lambda: gather_events(client, params, result)),
        ]
        for name, read in sections:
            if name not in sections_wanted:
                continue
            try:
                read()
            except InngestError as exc:
                result["errors"][name] = str(exc)
                if name == "queue":
                    result["queue_depth"] = None

    result["msg"] = summarise(result, params)
    return result


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True, **SPEC_OPTIONS)
    run_gather(module, gather)


if __name__ == "__main__":
    main()
