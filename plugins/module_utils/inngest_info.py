# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""synap.ops.inngest_info's look-up: diagnose an Inngest server - health, queue depth, functions, stuck runs and recent events.

plugins/modules/inngest_info.py documents it and runs ``INFO``; synap-play's first look calls ``gather`` itself.
"""

from __future__ import annotations

import fnmatch
from collections import Counter
from datetime import timedelta

from ansible.module_utils.basic import missing_required_lib
from ansible_collections.synap.ops.plugins.module_utils.gather import GatherFailed, InfoModule, PartFailures, shaped
from ansible_collections.synap.ops.plugins.module_utils.inngest import (
    HAS_PROMETHEUS_CLIENT,
    InngestClient,
    InngestError,
    inngest_argument_spec,
    utc_now,
)
from ansible_collections.synap.ops.plugins.module_utils.inngest_runs_api import RUN_STATUSES, InngestRuns
from ansible_collections.synap.ops.plugins.module_utils.redact import redact_url

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
    listing = InngestRuns(client)
    now = utc_now()
    start = now - timedelta(seconds=params["runs_window"])
    runs = listing.runs(params["run_statuses"], start, now)
    part = {"run_counts": {status: sum(1 for r in runs if r["status"] == status) for status in params["run_statuses"]},
            "runs": runs[: params["max_listed"]]}
    stuck = listing.stuck_runs(params["stuck_threshold"], params["runs_window"], now=now)
    part["stuck_count"] = len(stuck)
    part["stuck_runs"] = stuck[: params["max_listed"]]
    # The runs themselves are the finding; without their events they still are, so this degrades on its own.
    try:
        listing.attach_event_ids(part["runs"], start, now, "queued_at")
        stuck_until = now - timedelta(seconds=params["stuck_threshold"])
        listing.attach_event_ids(part["stuck_runs"], start, stuck_until, "started_at")
        if "FAILED" in params["run_statuses"]:
            part["failed_event_ids"] = listing.event_ids_of_runs("FAILED", start, now, "ended_at")
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


INFO = InfoModule(argument_spec, gather)
