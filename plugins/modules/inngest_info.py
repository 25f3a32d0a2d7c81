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

import fnmatch
from collections import Counter
from datetime import timedelta

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.synap.ops.plugins.module_utils.gather import GatherFailed, PartFailures, run_gather, shaped
from ansible_collections.synap.ops.plugins.module_utils.http_api import redact_url
from ansible_collections.synap.ops.plugins.module_utils.inngest import (
    HAS_PROMETHEUS_CLIENT,
    RUN_STATUSES,
    InngestClient,
    InngestError,
    inngest_argument_spec,
    utc_now,
)

# The fields of each part; a part that was not asked for, or not read, leaves its fields None.
PART_FIELDS = {
    "queue": ("queue_depth",),
    "functions": ("app_registered", "functions"),
    "runs": ("run_counts", "runs", "stuck_runs", "stuck_count", "failed_event_ids"),
    "events": ("events", "event_counts", "events_matched", "events_scanned", "events_truncated"),
}
RESULT_FIELDS = ("healthy", "health", "error") + tuple(field for fields in PART_FIELDS.values() for field in fields)
# What an answer of the wrong shape raises while it is taken apart, besides InngestError.
SHAPE_ERRORS = (ValueError, TypeError, AttributeError, KeyError)


def gather_functions(client, app):
    functions = client.functions(app)
    return {"app_registered": bool(functions), "functions": functions or []}


def gather_runs(client, params, failures):
    now = utc_now()
    start = now - timedelta(seconds=params["runs_window"])
    runs = client.runs(params["run_statuses"], start, now)
    part = {"run_counts": {status: sum(1 for r in runs if r["status"] == status) for status in params["run_statuses"]},
            "runs": runs[: params["max_listed"]]}
    stuck = client.stuck_runs(params["stuck_threshold"], params["runs_window"], now=now)
    part["stuck_count"] = len(stuck)
    part["stuck_runs"] = stuck[: params["max_listed"]]
    # The runs themselves are the finding; without their events they still are, so this degrades on its own.
    try:
        client.attach_event_ids(part["runs"], start, now, "queued_at")
        stuck_until = now - timedelta(seconds=params["stuck_threshold"])
        client.attach_event_ids(part["stuck_runs"], start, stuck_until, "started_at")
        if "FAILED" in params["run_statuses"]:
            part["failed_event_ids"] = client.event_ids_of_runs("FAILED", start, now, "ended_at")
    except (InngestError, *SHAPE_ERRORS) as exc:
        failures.add("run_events", getattr(exc, "kind", "not_understood"), str(exc))
        for run in part["runs"] + part["stuck_runs"]:
            run.setdefault("event_ids", None)
    return part


def gather_events(client, params):
    start = utc_now() - timedelta(seconds=params["events_window"])
    events, truncated = client.events(start, max_events=params["max_events"])
    matching = [e for e in events if fnmatch.fnmatchcase(e.get("name") or "", params["event_pattern"])]
    return {
        "event_counts": dict(Counter(e.get("name") for e in matching).most_common()),
        "events": [{key: event.get(key) for key in ("id", "name", "data", "user", "ts", "received_at")}
                   for event in matching[: params["max_listed"]]],
        "events_matched": len(matching),
        "events_scanned": len(events),
        "events_truncated": truncated,
    }


def summarise(result, params, url):
    if result["healthy"] is None:
        return f"Inngest at {url} unreachable ({result['failure']}): {result['error']}"
    parts = []
    if result["queue_depth"] is not None:
        parts.append(f"queue depth {result['queue_depth']}")
    if result["functions"] is not None:
        if result["app_registered"]:
            parts.append(f"{len(result['functions'])} functions ({params['app']})")
        else:
            parts.append(f"app {params['app']} has no functions registered")
    if result["run_counts"] is not None:
        parts.append(", ".join(f"{count} {status}" for status, count in result["run_counts"].items()))
        parts.append(f"{result['stuck_count']} stuck > {params['stuck_threshold']} s")
    if result["failed_event_ids"] is not None:
        parts.append(f"{len(result['failed_event_ids'])} events behind FAILED runs")
    if result["event_counts"] is not None:
        more = "+" if result["events_truncated"] else ""
        text = (f"{result['events_matched']}{more} events matching {params['event_pattern']} "
                f"in {params['events_window']} s")
        if result["event_counts"]:
            name, count = next(iter(result["event_counts"].items()))
            text += f" (most: {name} {count})"
        parts.append(text)
    failed = {part: reason for part, reason in result["failures"].items() if part != "health"}
    if failed:
        reasons = "; ".join(f"{part}: {reason}" for part, reason in failed.items())
        parts.append(f"NOT READ ({result['failure']}) {reasons}")
    head = "Inngest healthy" if result["healthy"] else f"Inngest at {url} UNHEALTHY ({result['error']})"
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
    # A URL that cannot be requested at all is a wrong argument, not a finding.
    if not params["url"].lower().startswith(("http://", "https://")):
        raise GatherFailed(f"url must start with http:// or https://, got {redact_url(params['url'])!r}")
    sections_wanted = set(params["gather"])
    if "queue" in sections_wanted and not HAS_PROMETHEUS_CLIENT:
        raise GatherFailed(missing_required_lib("prometheus_client"))

    client = InngestClient(params)
    failures = PartFailures()
    health = client.health()
    result = {"healthy": health["healthy"], "health": {"status_code": health["status_code"], "detail": health["detail"]},
              "error": None if health["healthy"] else health["detail"]}
    if health["kind"]:
        failures.add("health", health["kind"], health["detail"])

    # Without any HTTP answer (refused, timeout...) every other request would fail the same way, slowly.
    answered = health["status_code"] is not None
    readers = {
        "queue": lambda: {"queue_depth": client.queue_depth()},
        "functions": lambda: gather_functions(client, params["app"]),
        "runs": lambda: gather_runs(client, params, failures),
        "events": lambda: gather_events(client, params),
    }
    for name, read in readers.items():
        if name not in sections_wanted:
            continue
        if not answered:
            failures.add(name, health["kind"], "not read: Inngest did not answer GET /health")
            continue
        try:
            result.update(read())
        except (InngestError, *SHAPE_ERRORS) as exc:
            kind = getattr(exc, "kind", "not_understood")
            failures.add(name, kind, str(exc) if isinstance(exc, InngestError) else
                         f"an answer of {client.shown_url} was not understood ({type(exc).__name__}: {exc})")

    shaped(result, RESULT_FIELDS, failures)
    result["msg"] = summarise(result, params, client.shown_url)
    return result


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True, **SPEC_OPTIONS)
    run_gather(module, gather)


if __name__ == "__main__":
    main()
