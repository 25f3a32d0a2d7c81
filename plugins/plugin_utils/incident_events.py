# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What each task result of a scenario playbook means for the incident record.

The synap.ops.incident callback turns Ansible's results into TaskEvents; this module files each one as a
phase, a finding, an action, an error, a notification or the verification.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ansible_collections.synap.ops.plugins.module_utils.info_modules import location
from ansible_collections.synap.ops.plugins.plugin_utils.incident_outcome import merged_verification
from ansible_collections.synap.ops.plugins.plugin_utils.incident_record import IncidentRecord, iso, message_of, utcnow
from ansible_collections.synap.ops.plugins.plugin_utils.protocol import (
    ACTION_STATUS,
    NOT_NEEDED,
    PHASE_TAG_PREFIX,
    PHASES,
    Decision,
)

OK, FAILED, SKIPPED, UNREACHABLE = "ok", "failed", "skipped", "unreachable"
COLLECTION = "synap.ops."


def phase_of(tags: list[str] | tuple[str, ...]) -> str | None:
    """A task's runbook phase, from its first phase_<name> tag (its own tags come before inherited ones)."""
    for tag in tags or ():
        if isinstance(tag, str) and tag.startswith(PHASE_TAG_PREFIX):
            name = tag[len(PHASE_TAG_PREFIX):].capitalize()
            if name in PHASES:
                return name
    return None


@dataclass(frozen=True)
class TaskEvent:
    """One task's result on one host, as the record needs it."""

    kind: str  # ok, failed, skipped, unreachable
    task: str | None
    host: str | None
    action: str  # the resolved action: synap.ops.diagnose, ansible.builtin.uri, ...
    result: dict[str, Any]
    phase: str | None = None
    ignore_errors: bool = False
    at: datetime = field(default_factory=utcnow)

    def is_collection(self, name: str) -> bool:
        return self.action in (COLLECTION + name, name)


def diagnose_sources(result: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
    """A synap.ops.diagnose result's sources: (name, the module's result, the module's name)."""
    modules = result.get("modules") or {}
    return [(name, source if isinstance(source, dict) else {}, modules.get(name) or name)
            for name, source in (result.get("sources") or {}).items()]


class EventTranslator:
    """Files the playbook's task results into one IncidentRecord."""

    def __init__(self, record: IncidentRecord):
        self.record = record

    def observe(self, event: TaskEvent) -> None:
        record, result, at = self.record, event.result, event.at
        if event.kind in (OK, FAILED) and not result and event.action.startswith(COLLECTION):
            # A result that never arrived (too large for the event stream): the run cannot stand on it.
            record.error(event.task, event.host, "its result was too large to reach the record; run with -v and read "
                                                 "artifacts/stdout", at, lost=True)
            return
        if result.get("_ansible_no_log") or result.get("censored"):
            result = {"msg": "output hidden (no_log)"}
        # A phase begins with its first task that does something: a skipped notification is no Communicate phase.
        if event.phase and (event.kind != SKIPPED or event.is_collection("mitigate")):
            record.enter_phase(event.phase, at)

        if event.kind == UNREACHABLE:
            record.error(event.task, event.host, result.get("msg") or "host unreachable", at, unreachable=True)
        elif event.is_collection("mitigate"):
            self._action(event, result)
        elif event.is_collection("diagnose") and event.kind != SKIPPED:
            # One task, several sources: each answer is a finding of its own, each failed source an error.
            for name, source, module in diagnose_sources(result):
                if source.get("failed"):
                    record.error(event.task, event.host, f"{name}: {message_of(source) or 'failed'}", at)
                else:
                    record.finding(event.task, event.host, module, source, at, look_up=name)
            if event.kind == FAILED and not result.get("sources"):
                record.error(event.task, event.host, message_of(result) or "task failed", at)
        elif event.kind == FAILED and not event.ignore_errors:
            record.error(event.task, event.host, message_of(result) or "task failed", at)
        elif event.kind == SKIPPED:
            return
        elif event.is_collection("record"):
            self._recorded(event, result.get("record") or {}, result.get("msg"))
        elif location(event.action) is not None:  # one of the collection's info modules, run as its own task
            record.finding(event.task, event.host, event.action, result, at)
        elif event.phase == "Communicate" and event.action in ("ansible.builtin.uri", "uri") and event.kind == OK:
            self._notifications(event, result)
        elif event.phase == "Communicate" and event.is_collection("pagerduty_event") and event.kind == OK:
            self._notifications(event, result, pagerduty=True)

    def _action(self, event: TaskEvent, result: dict[str, Any]) -> None:
        gate = result.get("gate") or {}
        common = {"at": iso(event.at), "phase": self.record.current_phase, "task": event.task, "host": event.host}
        if event.kind == SKIPPED:
            # A branch not taken is recorded with the condition that kept it from running.
            condition = result.get("false_condition")
            entry = dict(common, status=NOT_NEEDED, changed=False, plan=[],
                         reason=f"condition false: {condition}" if condition else "condition false")
            entry["class"] = None
        else:
            decision = gate.get("decision") or (Decision.FAILED.value if event.kind == FAILED else "unknown")
            status = ACTION_STATUS[Decision.FAILED.value] if event.kind == FAILED else ACTION_STATUS.get(decision, decision)
            entry = dict(common, status=status, module=gate.get("module"), why=gate.get("why"),
                         reason=gate.get("reason"), changed=bool(result.get("changed")),
                         plan=[a.get("description", a) if isinstance(a, dict) else a for a in result.get("actions") or []],
                         summary=message_of(result), audit=result.get("result") or {})
            entry["class"] = gate.get("class")
            if gate.get("approval_of"):  # a step held back by that incident's run, approved since
                entry["approval_of"] = gate["approval_of"]
            if event.kind == FAILED:
                self.record.error(event.task, event.host, message_of(result) or "mitigation failed", event.at)
        self.record.action(entry, event.at)
        # The gate's PagerDuty follow-ups (pagerduty_follow_up.py), kept as _notifications keeps the notify role's,
        # each at the moment it was sent.
        for sent in result.get("pagerduty") or []:
            if not isinstance(sent, dict):
                continue
            delivered = bool(sent.get("delivered"))
            self.record.data.setdefault("notifications", []).append({
                "at": sent.get("at") or iso(event.at), "task": event.task, "channel": sent.get("channel") or "unnamed",
                "delivered": delivered, "status": sent.get("status"),
                "error": None if delivered else sent.get("error") or "not delivered",
                "type": "pagerduty", "event_action": sent.get("event_action"), "dedup_key": sent.get("dedup_key"),
                "attempts": sent.get("attempts")})

    def _recorded(self, event: TaskEvent, recorded: dict[str, Any], message: str | None) -> None:
        record, at, host = self.record, event.at, event.host
        if recorded.get("phase"):
            record.enter_phase(recorded["phase"].capitalize(), at)
        if recorded.get("verification") is not None:
            per_host = record.data.setdefault("verifications", {})
            per_host[host] = dict(recorded["verification"], at=iso(at), host=host)
            record.data["verification"] = merged_verification(per_host)
            record.note(f"verification: {message}", at=at, host=host)
        if recorded.get("note") or recorded.get("data"):
            record.note(recorded.get("note") or message or event.task, at=at, host=host,
                        data=recorded.get("data") or None)

    def _notifications(self, event: TaskEvent, result: dict[str, Any], pagerduty: bool = False) -> None:
        """The notify role's webhook posts and PagerDuty events: delivered or not, never fatal, always on the record."""
        for post in result.get("results") or [result]:
            if post.get("skipped"):
                continue
            # The loop's item: the channel (a webhook), or only its name (PagerDuty: the routing key stays out of it).
            item = post.get("item")
            name = item.get("name") if isinstance(item, dict) else item if isinstance(item, str) else None
            status = post.get("status")
            delivered = isinstance(status, int) and 200 <= status < 300
            # Keyed "channel", not "webhook": the redactor masks every value under a webhook-like key.
            entry = {"at": iso(event.at), "task": event.task, "channel": name or "unnamed",
                     "delivered": delivered, "status": status,
                     "error": None if delivered else message_of(post) or "not delivered"}
            what = "notification"
            if pagerduty:
                # The event PagerDuty was sent (the module's own result names it; the routing key never).
                sent = post.get("event") if isinstance(post.get("event"), dict) else {}
                asked = (post.get("invocation") or {}).get("module_args") or {}
                entry.update(type="pagerduty", event_action=sent.get("event_action") or asked.get("event_action"),
                             dedup_key=post.get("dedup_key"), attempts=post.get("attempts"))
                what = f"PagerDuty {entry['event_action'] or 'event'}"
            self.record.data.setdefault("notifications", []).append(entry)
            self.record.note(f"{what} to {entry['channel']} "
                             + ("delivered" if delivered else f"failed: {entry['error']}"), at=event.at, host=event.host)
