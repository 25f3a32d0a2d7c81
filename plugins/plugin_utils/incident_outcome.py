# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How a run ends: the verification decides, unknown is never healthy, and every end has its exit code."""

from __future__ import annotations

from typing import Any

from ansible_collections.synap.ops.plugins.plugin_utils.incident_record import IncidentRecord, escalation, iso, utcnow
from ansible_collections.synap.ops.plugins.plugin_utils.protocol import (
    ACTION_STATUS,
    PENDING_STATUSES,
    Decision,
    ExitCode,
    Status,
)


def verification_state(checks: list[dict[str, Any]]) -> str:
    """resolved (every check ok), unresolved (a check failed), or unverified (none failed, one or more unknown)."""
    states = {check["state"] for check in checks}
    if "failed" in states:
        return "unresolved"
    return "unverified" if "unknown" in states else "resolved"


def check_state(check: dict[str, Any]) -> str:
    """ok, failed or unknown (a record written before checks had three values has only ok)."""
    return check.get("state") or ("ok" if check.get("ok") else "failed")


def merged_verification(per_host: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One verification over every host's: each check keeps its host; the worst check decides, as on one host."""
    if len(per_host) == 1:
        return dict(next(iter(per_host.values())))
    checks = [dict(check, host=host) for host, verification in per_host.items() for check in verification["checks"]]
    state = verification_state([dict(check, state=check_state(check)) for check in checks])
    last = list(per_host.values())[-1]
    return {"resolved": state == "resolved", "state": state, "checks": checks, "at": last.get("at"), "host": None}


def pending_problems(record: IncidentRecord, host: str | None = None) -> list[dict[str, Any]]:
    """Mitigations that were wanted but did not run (of one host, or of all)."""
    return [a for a in record.data["actions"]
            if a["status"] in PENDING_STATUSES and a["plan"] and (host is None or a["host"] == host)]


def verdict(record: IncidentRecord, verification: dict[str, Any] | None, host: str | None) -> tuple[str, int]:
    """The outcome is the verification's: a passing one resolves the incident, whatever optional step was
    declined; "needs approval" only while the problem is still there; an unknown check never passes."""
    pending = pending_problems(record, host)
    changed = any(a["status"] == ACTION_STATUS[Decision.RUN.value] and a["changed"] for a in record.data["actions"]
                  if host is None or a["host"] == host)
    waiting = Status.DIAGNOSED if record.data["check_mode"] else Status.NEEDS_APPROVAL
    state = verification.get("state") if verification else None
    if verification is not None and state is None:  # a record written before checks had three values
        state = "resolved" if verification.get("resolved") else "unresolved"
    if state == "unresolved":
        return (waiting.value, ExitCode.NEEDS_HUMAN) if pending else (Status.UNRESOLVED.value, ExitCode.NEEDS_HUMAN)
    if state == "unverified":
        return Status.UNVERIFIED.value, ExitCode.UNVERIFIED
    if state is None and pending:
        return waiting.value, ExitCode.NEEDS_HUMAN
    if changed:
        return Status.RESOLVED.value, ExitCode.OK
    return (Status.HEALTHY if verification is not None else Status.COMPLETED).value, ExitCode.OK


def close(record: IncidentRecord, *, playbook_status: str | None, rc: int | None = None,
          interrupted: ExitCode | None = None, usage_error: bool = False, locked_out: bool = False) -> int:
    """Close the record and return its exit code.

    ``playbook_status``: successful, failed, or None when the playbook did not get to run.
    """
    data = record.data
    data["runner"].update(status=playbook_status, rc=rc)
    if playbook_status == "successful":
        # The playbook succeeded, so every task failure it saw was rescued by a block: evidence, not an error.
        rescued = [e for e in data["errors"] if e.get("task") and not e.get("unreachable") and not e.get("lost")]
        data["errors"] = [e for e in data["errors"] if e not in rescued]
        data["rescued"] = rescued
    per_host = data.get("verifications") or {}
    data["hosts"] = {}
    for host, verification in per_host.items():
        host_status, host_code = verdict(record, verification, host)
        data["hosts"][host] = {"status": host_status, "exit_code": int(host_code)}
    if interrupted is not None:
        status, code = Status.INTERRUPTED.value, interrupted
    elif locked_out:
        status, code = Status.LOCKED_OUT.value, ExitCode.LOCKED
    elif usage_error:
        status, code = Status.USAGE_ERROR.value, ExitCode.USAGE
    elif data["errors"] or playbook_status not in ("successful", None):
        status, code = Status.FAILED.value, ExitCode.FAILED
    else:
        status, code = verdict(record, data["verification"], None)
    record.enter_phase("Document")
    ended = utcnow()
    data.update(status=status, exit_code=int(code), ended_at=iso(ended),
                duration_seconds=round((ended - record.started_at).total_seconds(), 2),
                escalation=escalation(record.started_at, ended))
    data["phases"][-1]["ended_at"] = iso(ended)
    return int(code)
