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
  - An unreachable server or a garbage answer is a finding (RV(reachable), RV(failure), RV(failures)), never a
    failure of the task, so a diagnosis always completes. A part that could not be read leaves its fields null,
    and the parts that were read are still returned. Without any answer to C(/health) the other parts are not tried.
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
  description:
    - One-line summary. When something could not be read it names the server (a password in O(url) masked), the
      failure kind and the cause, for example the HTML trap.
  returned: always
  type: str
  sample: "Inngest healthy: queue depth 142, 11 functions (synap), 4 RUNNING, 138 QUEUED, 3 stuck > 300 s"
reachable:
  description:
    - Whether the server answered and every part asked for in O(gather) was read and understood.
    - False for a page that is not Inngest's (an HTML C(200)), an HTTP error, or any part not read; the parts
      that were read are still returned.
  returned: always
  type: bool
failure:
  description:
    - Null when everything asked for was read. Otherwise the kind of the first failure, V(refused), V(timeout),
      V(dns), V(tls), V(auth_failed) (HTTP 401/403, check O(signing_key)), V(http_error), V(not_understood)
      (an HTML page or other answer that is not Inngest's), V(query_failed) (the GraphQL query failed) or V(error).
  returned: always
  type: str
  sample: not_understood
failures:
  description:
    - Each part that could not be read (V(health), V(queue), V(functions), V(runs), V(run_events), V(events))
      with a one-line reason; empty when everything asked for was read.
    - C(run_events) when the runs were read but not the ids of their events.
  returned: always
  type: dict
  sample: {"queue": "GET /metrics at http://inngest:8288 has no inngest_queue_depth gauge"}
healthy:
  description:
    - Whether C(GET /health) answered Inngest's JSON health body with status 200.
    - False for any other answer (an HTTP error, an unhealthy body, a page that is not Inngest's).
    - Null when no HTTP answer came at all.
  returned: always
  type: bool
health:
  description:
    - The health check, C(status_code) (null without an answer) and C(detail), which explains an unhealthy
      answer (for example the HTML trap).
  returned: always
  type: dict
  sample: {"status_code": 200, "detail": "OK"}
error:
  description: Why the server is unreachable or unhealthy; null when healthy.
  returned: always
  type: str
queue_depth:
  description: The C(inngest_queue_depth) gauge; null unless queue was gathered and read.
  returned: always
  type: int
app_registered:
  description: Whether O(app) has registered functions with the server; null unless functions was gathered and read.
  returned: always
  type: bool
functions:
  description: Functions of O(app) (empty when it has none); null unless functions was gathered and read.
  returned: always
  type: list
  elements: dict
  sample: [{"slug": "synap-global-validator", "name": "Global Validator & Proposal Router",
            "triggers": ["entities.create.requested", "*.*.requested"]}]
run_counts:
  description:
    - Runs queued within O(runs_window) by status, for every status in O(run_statuses).
    - Null unless runs was gathered and read.
  returned: always
  type: dict
  sample: {"QUEUED": 138, "RUNNING": 4}
runs:
  description:
    - Those runs, oldest first, at most O(max_listed).
    - Each has C(id), C(status), C(queued_at), C(started_at), C(ended_at), C(function_slug), C(function_name),
      C(app), C(event_name) and C(event_ids), the ids of the events that triggered it (null when RV(failures)
      has C(run_events)).
    - Null unless runs was gathered and read.
  returned: always
  type: list
  elements: dict
  sample: [{"id": "01HX...", "status": "FAILED", "function_slug": "synap-global-validator",
            "event_name": "entities.create.requested", "event_ids": ["01HW..."]}]
failed_event_ids:
  description:
    - Unique ids of the events whose runs ended FAILED within O(runs_window), oldest failure first; all of them,
      not only O(max_listed). Pass them to M(synap.ops.inngest_event) O(synap.ops.inngest_event#module:replay_ids).
    - An event whose run was rerun or replayed since is still listed; a replay gets an id of its own.
    - Null unless runs was gathered and read with FAILED in O(run_statuses), and the events of the runs were read.
  returned: always
  type: list
  elements: str
  sample: ["01HW...", "01HX..."]
stuck_runs:
  description:
    - RUNNING runs started more than O(stuck_threshold) seconds ago, oldest first, at most O(max_listed).
    - Null unless runs was gathered and read.
  returned: always
  type: list
  elements: dict
  sample: [{"id": "01HX...", "status": "RUNNING", "started_at": "2024-05-01T10:00:00.000Z",
            "running_seconds": 812.4, "function_slug": "synap-global-validator",
            "event_name": "entities.create.requested", "event_ids": ["01HW..."]}]
stuck_count:
  description: Number of stuck runs (all of them, not only the listed ones); null unless runs was gathered and read.
  returned: always
  type: int
events:
  description:
    - Events within O(events_window) whose names match O(event_pattern), newest first, at most O(max_listed).
    - Null unless events was gathered and read.
  returned: always
  type: list
  elements: dict
event_counts:
  description: Matching events within O(events_window) counted by name, largest first; null unless events was read.
  returned: always
  type: dict
  sample: {"entities.create.requested": 812, "proposals.update.requested": 3}
events_matched:
  description: Number of matching events; null unless events was gathered and read.
  returned: always
  type: int
events_scanned:
  description: Number of events read from the server; null unless events was gathered and read.
  returned: always
  type: int
events_truncated:
  description: Whether O(max_events) stopped the scan (the counts are then lower bounds); null unless events was read.
  returned: always
  type: bool
"""

from ansible_collections.synap.ops.plugins.module_utils.inngest_info import INFO

# The module's options and look-up, for callers that import the module itself (synap-play validate reads the spec).
argument_spec = INFO.argument_spec
gather = INFO.gather


def main():
    INFO.run_module()


if __name__ == "__main__":
    main()
