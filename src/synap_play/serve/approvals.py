"""Approvals through the API: a held-back step approved or declined by POST /api/incidents/<id>/approvals/<step>.

A decline is a note on the incident, at once. An approval queues an approval run: `synap-play approve <id> <step>
--yes` in a child process, like any run of serve (the queue, one run per scenario and target, SIGTERM). It is an
incident of serve's own, holding the alerts of the incident it continues, so that Alertmanager's repeats and its
"resolved" land on it, and its record is the one that says how the incident ended.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from synap_play import collection, held_steps

collection.load()

from ansible_collections.synap.ops.plugins.plugin_utils.incident_record import iso, new_incident_id

from synap_play.serve.incidents import Incident, IncidentIndex
from synap_play.serve.notes import Event, append_note, read_notes, read_record
from synap_play.serve.runs import Job, RunQueue
from synap_play.serve.settings import Settings

DECISIONS = ("approve", "decline")


class Refused(Exception):
    """The decision cannot be taken: the HTTP status and the one-line reason."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class StepDecision:
    decision: str
    by: str

    @classmethod
    def parse(cls, body: bytes, default_by: str) -> StepDecision:
        try:
            given = json.loads(body or b"{}")
        except ValueError as exc:
            raise Refused(400, f"the body is not JSON: {exc}") from exc
        if not isinstance(given, dict):
            raise Refused(400, 'the body must be a JSON object: {"decision": "approve" or "decline", "by": "<name>"}')
        return cls.checked(given.get("decision"), given.get("by", default_by))

    @classmethod
    def checked(cls, decision: Any, by: Any) -> StepDecision:
        """A decision from any form (the API's JSON, the incident page's form), checked alike."""
        if decision not in DECISIONS:
            raise Refused(400, f'"decision" must be "approve" or "decline", not {decision!r}')
        if not isinstance(by, str) or not by.strip() or len(by) > 200:
            raise Refused(400, '"by" must name who decides, in at most 200 characters')
        return cls(decision, by.strip())


class ApprovalDesk:
    def __init__(self, settings: Settings, index: IncidentIndex, runs: RunQueue):
        self.settings = settings
        self.index = index
        self.runs = runs

    def decide(self, incident: Incident, step: str, decision: StepDecision) -> tuple[int, dict[str, Any]]:
        record = read_record(incident.folder)
        if record is None:
            raise Refused(409, f"incident {incident.id} has no record yet: its run has not started")
        if incident.state != "ended":
            raise Refused(409, f"incident {incident.id} is still running; decide once its run has ended")
        busy = self.runs.approval_for(incident.id)
        if busy is not None:
            raise Refused(409, f"an approval run for incident {incident.id} is already {busy.incident.state} "
                               f"({busy.id}); wait for it")
        try:
            chosen = held_steps.choose(held_steps.pending(record, read_notes(incident.folder)),
                                       None if step == held_steps.EVERY_STEP else step)
        except LookupError as exc:
            raise Refused(404, str(exc)) from exc
        steps = held_steps.approved_steps(chosen)
        if decision.decision == "decline":
            append_note(incident.folder, {"event": Event.DECLINED, "at": iso(datetime.now(UTC)), "by": decision.by,
                                          "steps": steps})
            return 200, {"incident": incident.id, "declined": chosen}
        job = self._queue(incident, record, step, decision.by)
        return 202, {"incident": incident.id, "approved": chosen, "run": job.id,
                     "note": "each step is planned again against the live system before it runs"}

    def _queue(self, incident: Incident, record: dict[str, Any], step: str, by: str) -> Job:
        received_at = datetime.now(UTC)
        run_id = new_incident_id(incident.scenario, received_at)
        follow = Incident(run_id, self.settings.incidents_dir / run_id, incident.scenario)
        approval = {"of": incident.id, "step": step, "by": by}
        self.index.note(follow, {
            "event": Event.QUEUED, "at": iso(received_at), "scenario": incident.scenario,
            "severity": record.get("severity"), "started_at": record.get("started_at"),
            "target": {"inventory": self.settings.inventory, "limit": self.settings.limit},
            "alerts": [a for a in record.get("alerts") or [] if isinstance(a, dict)], "approval": approval})
        job = Job(follow, b"", received_at, approval=approval)
        self.runs.put(job)
        return job


