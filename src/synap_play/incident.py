"""The incident record: the runbook's Document step, built from the playbook's own event stream.

The record is written when the run starts and again at the end, whatever the end is (success, task
failure, unreachable host, Ctrl-C), so nothing is lost.
"""

from __future__ import annotations

import json
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
PHASES = ("Acknowledge", "Assess", "Communicate", "Mitigate", "Investigate", "Resolve", "Document")
# The runbook's escalation path: (minutes since the incident started, level, who). Its one copy is the notify
# role's, which names the rung in every message; read from the project on first use.
ESCALATION_LADDER_FILE = Path("roles") / "notify" / "defaults" / "main.yml"
_escalation_ladder: tuple[tuple[float, int, str], ...] | None = None


def escalation_ladder() -> tuple[tuple[float, int, str], ...]:
    global _escalation_ladder
    if _escalation_ladder is None:
        import yaml

        from synap_play.project import project_root

        defaults = yaml.safe_load((project_root() / ESCALATION_LADDER_FILE).read_text(encoding="utf-8"))
        _escalation_ladder = tuple(sorted((float(rung["after_minutes"]), int(rung["level"]), str(rung["role"]))
                                          for rung in defaults["notify_escalation_ladder"]))
    return _escalation_ladder


# An incident in any other state still needs someone: it stays open and keeps climbing the ladder. A run refused
# for bad input (unknown host pattern, broken inventory) is closed: nothing was looked at, nobody is paged by it.
CLOSED_STATUSES = ("resolved", "healthy", "completed", "usage error")
# Mitigations that were wanted but did not run.
PENDING_STATUSES = ("needs approval", "declined", "planned")
# Every exit code of a run: a short label and what it means. The CLI's help and the summary line use these.
EXIT_CODES = {
    0: ("ok", "healthy, or resolved and verified"),
    2: ("usage error", "usage error: unknown scenario, bad option, missing or broken inventory, --limit matching nothing"),
    3: ("needs a human", "a problem was found that the run did not or may not mitigate: a human is needed"),
    4: ("playbook failed", "the playbook itself failed (task error, unreachable host)"),
    5: ("another mitigator", "another synap-play run is mitigating this scenario on this target (the message names "
                             "it); nothing was changed"),
    6: ("could not verify", "could not verify: a source could not be read (the summary names it), so the run "
                            "cannot say the problem is gone, or was never there"),
    130: ("interrupted", "interrupted (Ctrl-C); the incident record is still written"),
    143: ("terminated", "stopped by SIGTERM (systemd, docker stop, CI or AWX cancelling); the playbook's processes are "
                        "killed before the lock is released, and the record is written"),
    129: ("hung up", "stopped by SIGHUP (the terminal went away); as for 143"),
}
# Result keys that are Ansible's bookkeeping rather than findings.
_NOISE = {"invocation", "changed", "failed", "skipped", "_ansible_no_log", "_ansible_verbose_always",
          "_ansible_item_label", "ansible_facts", "warnings", "deprecations"}


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z") if moment else None


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def new_incident_id(scenario: str, now: datetime | None = None) -> str:
    """Sortable by time, readable, unique: 20261129T031500Z-worker-queue-backup-3fa2c1."""
    now = now or utcnow()
    return f"{now.astimezone(UTC):%Y%m%dT%H%M%SZ}-{scenario}-{secrets.token_hex(3)}"


def escalation(started_at: datetime, now: datetime | None = None) -> dict[str, Any]:
    minutes = max(0.0, ((now or utcnow()) - started_at).total_seconds() / 60)
    ladder = escalation_ladder()
    level, who = ladder[0][1], ladder[0][2]
    for threshold, rung, contact in ladder:
        if minutes >= threshold:
            level, who = rung, contact
    return {"level": level, "contact": who, "elapsed_minutes": round(minutes, 1)}


def diagnose_sources(result: dict[str, Any]) -> list[tuple[str, dict[str, Any], str]]:
    """A synap.ops.diagnose result's sources: (name, the module's result, the module's name)."""
    modules = result.get("modules") or {}
    return [(name, source if isinstance(source, dict) else {}, modules.get(name) or name)
            for name, source in (result.get("sources") or {}).items()]


def phase_of(task_name: str | None) -> str | None:
    """Scenario tasks are named '<Phase> | <what>'; the prefix says which runbook phase they belong to."""
    if not task_name or "|" not in task_name:
        return None
    prefix = task_name.split("|", 1)[0].strip().capitalize()
    return prefix if prefix in PHASES else None


class Incident:
    """One incident: its record on disk and the collector of the events that fill it."""

    def __init__(self, *, incident_id: str, folder: Path, scenario: str, title: str, severity: str,
                 inventory: str, operator: str, check_mode: bool, approve_all: bool, limit: str | None,
                 follow_ups: list[str], started_at: datetime | None = None):
        self.folder = folder
        self.started_at = started_at or utcnow()
        self.data: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "id": incident_id,
            "scenario": scenario,
            "title": title,
            "severity": severity,
            "inventory": inventory,
            "limit": limit,
            "operator": operator,
            "check_mode": check_mode,
            "approve_all": approve_all,
            "started_at": iso(self.started_at),
            "ended_at": None,
            "status": "running",
            "exit_code": None,
            "phases": [],
            "timeline": [],
            "findings": [],
            "actions": [],
            "errors": [],
            "verification": None,
            "escalation": escalation(self.started_at),
            "runner": {},
            "follow_ups": list(follow_ups),
        }
        self.enter_phase("Acknowledge")

    # -- phases and timeline -------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self.data["id"]

    @property
    def current_phase(self) -> str | None:
        phases = self.data["phases"]
        return phases[-1]["name"] if phases else None

    def enter_phase(self, name: str, at: datetime | None = None) -> None:
        if name == self.current_phase:
            return
        stamp = iso(at or utcnow())
        if self.data["phases"]:
            self.data["phases"][-1]["ended_at"] = stamp
        self.data["phases"].append({"name": name, "started_at": stamp, "ended_at": None})
        self.note(f"{name} phase", at=at)

    def note(self, text: str, at: datetime | None = None, **extra: Any) -> None:
        entry = {"at": iso(at or utcnow()), "phase": self.current_phase, "event": text}
        entry.update({k: v for k, v in extra.items() if v is not None})
        self.data["timeline"].append(entry)

    # -- the ansible-runner event stream ------------------------------------------------------------
    def observe(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        data = event.get("event_data") or {}
        at = _event_time(event)
        if kind not in ("runner_on_ok", "runner_on_failed", "runner_on_skipped", "runner_on_unreachable"):
            if kind == "playbook_on_task_start":  # what a stop interrupts
                self.data["runner"]["running_task"] = data.get("task")
            if kind == "playbook_on_stats":
                self.data["runner"]["stats"] = {k: data.get(k) or {} for k in
                                                ("ok", "changed", "failures", "dark", "skipped", "rescued", "ignored")}
            return
        task = data.get("task")
        host = data.get("host")
        action = data.get("resolved_action") or data.get("task_action") or ""
        result = data.get("res") or {}
        if kind in ("runner_on_ok", "runner_on_failed") and not result and action.startswith("synap.ops."):
            # ansible-runner drops a result larger than MAX_EVENT_RES: what it said is lost, so the run cannot
            # stand on it. Never a silent gap: an error, and the run fails.
            self.error(task, host, "its result was too large to reach the record (ansible-runner's MAX_EVENT_RES); "
                                   "run with -v and read artifacts/stdout", _event_time(event), lost=True)
            return
        if isinstance(result, dict) and result.get("_ansible_no_log"):
            result = {"msg": "output hidden (no_log)"}
        phase = phase_of(task)
        # A phase begins with its first task that does something: a skipped notification is no Communicate phase.
        skipped = kind == "runner_on_skipped" and not action.endswith("synap.ops.mitigate")
        if phase and not skipped:
            self.enter_phase(phase, at)

        if kind == "runner_on_unreachable":
            self.error(task, host, result.get("msg") or "host unreachable", at, unreachable=True)
        elif action.endswith("synap.ops.mitigate") or action == "mitigate":
            self._action(kind, task, host, result, data, at)
        elif (action.endswith("synap.ops.diagnose") or action == "diagnose") and kind != "runner_on_skipped":
            # One task, several sources: each answer is a finding of its own, each failed source an error.
            for name, source, module in diagnose_sources(result):
                if source.get("failed"):
                    self.error(task, host, f"{name}: {_message(source) or 'failed'}", at)
                else:
                    self._finding(task, host, module, source, at, look_up=name)
            if kind == "runner_on_failed" and not result.get("sources"):
                self.error(task, host, _message(result) or "task failed", at)
        elif kind == "runner_on_failed" and not data.get("ignore_errors"):
            self.error(task, host, _message(result) or "task failed", at)
        elif kind == "runner_on_skipped":
            return
        elif action.endswith("synap.ops.record") or action == "record":
            self._record(task, host, result.get("record") or {}, result.get("msg"), at)
        elif action.startswith("synap.ops.") and action.endswith("_info"):
            self._finding(task, host, action, result, at)
        elif phase == "Communicate" and action in ("ansible.builtin.uri", "uri") and kind == "runner_on_ok":
            self._notifications(task, host, result, at)

    def _finding(self, task, host, action, result, at, look_up=None) -> None:
        finding = self._finding_entry(task, host, action, result, at, look_up)
        self.data["findings"].append(finding)
        self.note(f"finding: {finding['summary'] or finding['source']}", at=at, host=host)

    def _finding_entry(self, task, host, action, result, at, look_up=None) -> dict[str, Any]:
        details = {k: v for k, v in result.items() if k not in _NOISE and not k.startswith("_ansible")}
        finding = {"at": iso(at), "phase": self.current_phase, "task": task, "host": host,
                   "source": action.rsplit(".", 1)[-1], "summary": result.get("msg") or "", "details": details}
        if look_up:
            finding["look_up"] = look_up
        return finding

    # -- the first look (first_look.py): the kept look-ups, answered before the playbook's own ---------
    def first_look_finding(self, host: str, look_up: str, module: str, result: dict[str, Any]) -> None:
        look = self.data.setdefault("first_look", {"findings": [], "errors": []})
        look.setdefault("first_answer_unix", round(utcnow().timestamp(), 3))
        if result.get("failed"):
            look["errors"].append({"at": iso(utcnow()), "host": host, "look_up": look_up, "msg": _message(result)})
        else:
            look["findings"].append(self._finding_entry("first look", host, module, result, utcnow(), look_up))

    def first_look_done(self, *, seconds: float | None, plan_written_at: float | None) -> None:
        look = self.data.setdefault("first_look", {"findings": [], "errors": []})
        look.update(seconds=seconds, finished_unix=round(utcnow().timestamp(), 3), outdated=None,
                    plan_written_at=iso(datetime.fromtimestamp(plan_written_at, UTC)) if plan_written_at else None)
        self.note(f"first look: {len(look['findings'])} findings in {seconds} s from the kept plan, "
                  "before the playbook's own diagnosis")

    def first_look_checked(self, *, outdated: bool) -> None:
        """The playbook has resolved its look-ups again: say whether the first look read an outdated plan."""
        look = self.data.get("first_look")
        if look is None:
            return
        look["outdated"] = outdated
        if outdated:
            self.note("the first look read an outdated plan (the inventory resolved differently this run); "
                      "the playbook's own findings stand")

    def _notifications(self, task, host, result, at) -> None:
        """The notify role's webhook posts: delivered or not, never fatal, always on the record."""
        for post in result.get("results") or [result]:
            item = post.get("item") if isinstance(post.get("item"), dict) else {}
            status = post.get("status")
            delivered = isinstance(status, int) and 200 <= status < 300
            # Keyed "channel", not "webhook": the redactor masks every value under a webhook-like key.
            entry = {"at": iso(at), "task": task, "channel": item.get("name") or "unnamed", "delivered": delivered,
                     "status": status, "error": None if delivered else _message(post) or "not delivered"}
            self.data.setdefault("notifications", []).append(entry)
            self.note(f"notification to {entry['channel']} " + ("delivered" if delivered else f"failed: {entry['error']}"),
                      at=at, host=host)

    def _action(self, kind, task, host, result, data, at) -> None:
        gate = result.get("gate") or {}
        if kind == "runner_on_skipped":
            # A branch not taken is recorded with the condition that kept it from running.
            condition = result.get("false_condition") or data.get("false_condition")
            entry = {"at": iso(at), "phase": self.current_phase, "task": task, "host": host,
                     "status": "not needed", "class": None, "changed": False,
                     "reason": f"condition false: {condition}" if condition else "condition false", "plan": []}
        else:
            decision = gate.get("decision") or ("failed" if kind == "runner_on_failed" else "unknown")
            status = {"run": "done", "noop": "nothing to do", "planned": "planned", "needs_approval": "needs approval",
                      "declined": "declined"}.get(decision, decision)
            if kind == "runner_on_failed":
                status = "failed"
            entry = {"at": iso(at), "phase": self.current_phase, "task": task, "host": host, "status": status,
                     "class": gate.get("class"), "module": gate.get("module"), "why": gate.get("why"),
                     "reason": gate.get("reason"), "changed": bool(result.get("changed")),
                     "plan": [a.get("description", a) if isinstance(a, dict) else a for a in result.get("actions") or []],
                     "summary": _message(result), "audit": result.get("result") or {}}
            if kind == "runner_on_failed":
                self.error(task, host, _message(result) or "mitigation failed", at)
        self.data["actions"].append(entry)
        self.note(f"action {entry['status']}: {task}", at=at, host=host)

    def _record(self, task, host, record, message, at) -> None:
        if record.get("phase"):
            self.enter_phase(record["phase"].capitalize(), at)
        if record.get("verification") is not None:
            per_host = self.data.setdefault("verifications", {})
            per_host[host] = dict(record["verification"], at=iso(at), host=host)
            self.data["verification"] = merged_verification(per_host)
            self.note(f"verification: {message}", at=at, host=host)
        if record.get("note") or record.get("data"):
            self.note(record.get("note") or message or task, at=at, host=host, data=record.get("data") or None)

    def error(self, task, host, message, at=None, unreachable=False, lost=False) -> None:
        entry = {"at": iso(at or utcnow()), "task": task, "host": host, "msg": message, "unreachable": unreachable}
        if lost:  # a result that never arrived: no block rescued it
            entry["lost"] = True
        self.data["errors"].append(entry)
        self.note(f"{'unreachable' if unreachable else 'failed'}: {task or host}: {message}", at=at, host=host)

    # -- outcome ----------------------------------------------------------------------------------------
    def pending_problems(self, host: str | None = None) -> list[dict[str, Any]]:
        """Mitigations that were wanted but did not run (of one host, or of all)."""
        return [a for a in self.data["actions"]
                if a["status"] in PENDING_STATUSES and a["plan"] and (host is None or a["host"] == host)]

    def finish(self, *, runner_status: str | None, runner_rc: int | None, interrupted: bool = False,
               usage_error: bool = False, interrupted_code: int = 130) -> int:
        """Close the record and return the exit code (EXIT_CODES)."""
        self.data["runner"].update(status=runner_status, rc=runner_rc)
        if runner_status == "successful":
            # The playbook succeeded, so every task failure it saw was rescued by a block: evidence, not an error.
            rescued = [e for e in self.data["errors"] if e.get("task") and not e.get("unreachable") and not e.get("lost")]
            self.data["errors"] = [e for e in self.data["errors"] if e not in rescued]
            self.data["rescued"] = rescued
        per_host = self.data.get("verifications") or {}
        self.data["hosts"] = {host: dict(zip(("status", "exit_code"), self._verdict(verification, host), strict=True))
                              for host, verification in per_host.items()}
        if interrupted:
            status, code = "interrupted", interrupted_code
        elif usage_error:
            status, code = "usage error", 2
        elif self.data["errors"] or runner_status not in ("successful", None):
            status, code = "failed", 4
        else:
            status, code = self._verdict(self.data["verification"], None)
        self.enter_phase("Document")
        ended = utcnow()
        self.data.update(status=status, exit_code=code, ended_at=iso(ended),
                         duration_seconds=round((ended - self.started_at).total_seconds(), 2),
                         escalation=escalation(self.started_at, ended))
        self.data["phases"][-1]["ended_at"] = iso(ended)
        return code

    def _verdict(self, verification: dict[str, Any] | None, host: str | None) -> tuple[str, int]:
        """The outcome is the verification's: a passing one resolves the incident, whatever optional step was
        declined; "needs approval" only while the problem is still there; an unknown check never passes."""
        pending = self.pending_problems(host)
        changed = any(a["status"] == "done" and a["changed"] for a in self.data["actions"]
                      if host is None or a["host"] == host)
        state = verification.get("state") if verification else None
        if verification is not None and state is None:  # a record written before checks had three values
            state = "resolved" if verification.get("resolved") else "unresolved"
        if state == "unresolved":
            if pending:
                return ("diagnosed" if self.data["check_mode"] else "needs approval"), 3
            return "unresolved", 3
        if state == "unverified":
            return "could not verify", 6
        if state is None and pending:
            return ("diagnosed" if self.data["check_mode"] else "needs approval"), 3
        if changed:
            return "resolved", 0
        return ("healthy" if verification is not None else "completed"), 0

    # -- disk -------------------------------------------------------------------------------------------
    def save(self, redact) -> Path:
        """Write incident.json atomically, with every secret masked."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.data["escalation"] = escalation(self.started_at, parse_iso(self.data["ended_at"])
                                             if self.data["ended_at"] else None)
        path = self.folder / "incident.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(redact(self.data), indent=2, default=str) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path


def merged_verification(per_host: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One verification over every host's: each check keeps its host; the worst host's state is the run's."""
    if len(per_host) == 1:
        return dict(next(iter(per_host.values())))
    checks = [dict(check, host=host) for host, verification in per_host.items() for check in verification["checks"]]
    states = [v.get("state") or ("resolved" if v.get("resolved") else "unresolved") for v in per_host.values()]
    state = next((s for s in ("unresolved", "unverified") if s in states), "resolved")
    last = list(per_host.values())[-1]
    return {"resolved": state == "resolved", "state": state, "checks": checks, "at": last.get("at"), "host": None}


def _event_time(event: dict[str, Any]) -> datetime:
    created = event.get("created")
    if created:
        try:
            moment = datetime.fromisoformat(created)
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        except ValueError:
            pass
    return utcnow()


def _message(result: dict[str, Any]) -> str:
    msg = result.get("msg") or result.get("stderr") or result.get("reason") or ""
    return msg if isinstance(msg, str) else json.dumps(msg, default=str)


def load_record(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "incident.json").read_text(encoding="utf-8"))


def list_records(root: Path, unreadable: list[tuple[Path, str]] | None = None) -> list[dict[str, Any]]:
    """Every readable record below root, newest first (ids sort by time). A record that cannot be read (not
    JSON, not an object, no id) is left out and, when `unreadable` is given, added to it with the reason."""
    records = []
    if root.is_dir():
        for folder in sorted(root.iterdir(), reverse=True):
            if (folder / "incident.json").is_file():
                try:
                    record = load_record(folder)
                    if not isinstance(record, dict):
                        raise ValueError(f"a JSON {type(record).__name__}, not an object")
                    if not isinstance(record.get("id"), str):
                        raise ValueError("not an incident record: no id")
                except (OSError, ValueError) as exc:
                    if unreadable is not None:
                        unreadable.append((folder, str(exc.strerror if isinstance(exc, OSError) else exc)))
                    continue
                records.append(record)
    return records
