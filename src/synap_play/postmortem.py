"""`synap-play postmortem ID`: the full post-mortem draft, from the incident record alone."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from synap_play import collection

collection.load()

from ansible_collections.synap.ops.plugins.plugin_utils.incident_record import iso, parse_iso
from ansible_collections.synap.ops.plugins.plugin_utils.incident_report import markdown_environment
from ansible_collections.synap.ops.plugins.plugin_utils.protocol import ACTION_STATUS, PHASES, Status

POSTMORTEM_DUE_HOURS = 48
# The runbook's severity levels, to say what the chosen severity claimed about the impact.
SEVERITY_MEANING = {
    "P0": "complete service outage, data loss risk",
    "P1": "partial outage, significant degradation",
    "P2": "minor degradation, workaround available",
    "P3": "cosmetic issues, no user impact",
}
# Runbook target: the on-call engineer resolves within the first rung of the escalation ladder.
FIRST_RUNG_MINUTES = 15


def runbook_differences(record: dict[str, Any]) -> list[str]:
    """Where this run went differently from what the runbook expects: each a note for the runbook's owner."""
    notes = []
    actions = record.get("actions") or []
    for action in actions:
        if action.get("status") == ACTION_STATUS["failed"]:
            cause = action.get("summary") or "see the record"
            notes.append(f"The runbook's mitigation '{action['task']}' failed here ({cause}): say what to do when it "
                         f"fails.")
        elif action.get("status") in (ACTION_STATUS["needs_approval"], ACTION_STATUS["declined"]) and action.get("plan"):
            notes.append(f"'{action['task']}' ({action.get('class')}) waited for approval at {record['severity']}: "
                         f"say in the runbook who approves it and how fast.")
    for error in record.get("errors") or []:
        if not error.get("unreachable") and not any(a.get("task") == error.get("task") for a in actions):
            notes.append(f"Step '{error.get('task') or 'run'}' failed ({error['msg']}): check the runbook's command "
                         f"for this environment.")
        elif error.get("unreachable"):
            notes.append(f"Host {error.get('host')} was unreachable: the runbook assumes it can reach it; add the "
                         f"fallback.")
    for finding in record.get("findings") or []:
        details = finding.get("details") or {}
        if details.get("reachable") is False:
            notes.append(f"{finding['source']} could not reach its source ({details.get('error') or finding['summary']}):"
                         f" the runbook's diagnosis assumes it can.")
    verification = record.get("verification")
    if verification and not verification.get("resolved"):
        checks = verification.get("checks", [])
        failed = ", ".join(c["name"] for c in checks if not c.get("ok") and c.get("state") != "unknown")
        unknown = ", ".join(c["name"] for c in checks if c.get("state") == "unknown")
        if failed:
            notes.append(f"After the runbook's mitigations the checks still failed ({failed}): the runbook's mitigation "
                         f"is not enough for this case.")
        if unknown:
            notes.append(f"These checks could not be measured ({unknown}): the runbook should say how to verify "
                         f"when their source cannot be read.")
    mitigated = any(a.get("status") == ACTION_STATUS["run"] and a.get("changed") for a in actions)
    if record.get("status") == Status.HEALTHY and not mitigated and record.get("alerts"):
        notes.append("The alert fired but the diagnosis found nothing to fix: align the alert's threshold with "
                     "the runbook's symptoms.")
    escalation = record.get("escalation") or {}
    if (escalation.get("level") or 1) > 1:
        notes.append(f"The incident reached escalation level {escalation['level']} ({escalation.get('contact')}), "
                     f"past the first {FIRST_RUNG_MINUTES} minutes: note what took the time.")
    seen = {p["name"] for p in record.get("phases") or []}
    missing = [p for p in PHASES if p not in seen]
    if missing and not record.get("check_mode"):
        notes.append(f"The run recorded no {', '.join(missing)} phase: add those steps to the scenario, or say in "
                     f"the runbook why they are not needed.")
    return notes


def impact(record: dict[str, Any]) -> dict[str, Any]:
    started = parse_iso(record["started_at"])
    ended = parse_iso(record["ended_at"]) if record.get("ended_at") else None
    return {
        "severity_meaning": SEVERITY_MEANING.get(record.get("severity"), "unknown"),
        "duration_minutes": round((ended - started).total_seconds() / 60, 1) if ended else None,
        "alerts": record.get("alerts") or [],
        "unresolved": bool(record.get("verification")) and not record["verification"].get("resolved"),
    }


def timeline(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The run's own events, preceded by the moment the incident started when that was earlier (the alert)."""
    entries = list(record.get("timeline") or [])
    first = entries[0]["at"] if entries else None
    if first and parse_iso(record["started_at"]) < parse_iso(first):
        names = ", ".join(sorted({a["name"] for a in record.get("alerts") or []}))
        entries.insert(0, {"at": record["started_at"], "phase": None,
                           "event": f"incident started: alert {names} firing" if names else "incident started"})
    return entries


def render_postmortem(record: dict[str, Any]) -> str:
    env = markdown_environment()
    due = iso(parse_iso(record["started_at"]) + timedelta(hours=POSTMORTEM_DUE_HOURS))
    return env.get_template("postmortem.md.j2").render(
        r=record, due=due, impact=impact(record), timeline=timeline(record), runbook_notes=runbook_differences(record))
