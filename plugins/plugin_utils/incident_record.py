# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The incident record: the runbook's Document step, kept on disk from the first moment of a run to its last.

The synap.ops.incident callback fills it from the playbook's own results (incident_events.py) and closes it
(incident_outcome.py); synap-play adds what only it saw (its first look) and closes a run it had to stop.
"""

from __future__ import annotations

import json
import os
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ansible_collections.synap.ops.plugins.plugin_utils.protocol import (
    FIRST_LOOK_FILE,
    RECORD_FILE,
    RECORD_SCHEMA_VERSION,
    Status,
)

COLLECTION_ROOT = Path(__file__).resolve().parents[2]
# The runbook's escalation path: (minutes since the incident started, level, who). Its one copy is the notify
# role's, which names the rung in every message.
ESCALATION_LADDER_FILE = COLLECTION_ROOT / "roles" / "notify" / "defaults" / "main.yml"
_escalation_ladder: tuple[tuple[float, int, str], ...] | None = None
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


def escalation_ladder() -> tuple[tuple[float, int, str], ...]:
    global _escalation_ladder
    if _escalation_ladder is None:
        from ansible_collections.synap.ops.plugins.plugin_utils.yaml_files import safe_load

        defaults = safe_load(ESCALATION_LADDER_FILE.read_text(encoding="utf-8"))
        _escalation_ladder = tuple(sorted((float(rung["after_minutes"]), int(rung["level"]), str(rung["role"]))
                                          for rung in defaults["notify_escalation_ladder"]))
    return _escalation_ladder


def escalation(started_at: datetime, now: datetime | None = None) -> dict[str, Any]:
    minutes = max(0.0, ((now or utcnow()) - started_at).total_seconds() / 60)
    ladder = escalation_ladder()
    level, who = ladder[0][1], ladder[0][2]
    for threshold, rung, contact in ladder:
        if minutes >= threshold:
            level, who = rung, contact
    return {"level": level, "contact": who, "elapsed_minutes": round(minutes, 1)}


def message_of(result: dict[str, Any]) -> str:
    msg = result.get("msg") or result.get("stderr") or result.get("reason") or ""
    return msg if isinstance(msg, str) else json.dumps(msg, default=str)


def finding_entry(task, host, action, result, at, phase, look_up=None) -> dict[str, Any]:
    details = {k: v for k, v in result.items() if k not in _NOISE and not k.startswith("_ansible")}
    finding = {"at": iso(at), "phase": phase, "task": task, "host": host,
               "source": action.rsplit(".", 1)[-1], "summary": result.get("msg") or "", "details": details}
    if look_up:
        finding["look_up"] = look_up
    return finding


class IncidentRecord:
    """One incident's record: its fields, its phases and timeline, and its file."""

    def __init__(self, data: dict[str, Any], folder: Path):
        self.data = data
        self.folder = folder
        self.started_at = parse_iso(data["started_at"])
        self._first_look_seen = None  # the first-look file's (mtime, size) last taken in: saves re-read it only if new

    @classmethod
    def open(cls, *, incident_id: str, folder: Path, scenario: str, title: str, severity: str, inventory: str,
             operator: str, check_mode: bool, approve_all: bool, limit: str | None, follow_ups: list[str],
             started_at: datetime | None = None) -> IncidentRecord:
        started_at = started_at or utcnow()
        record = cls({
            "schema_version": RECORD_SCHEMA_VERSION, "id": incident_id, "scenario": scenario, "title": title,
            "severity": severity, "inventory": inventory, "limit": limit, "operator": operator,
            "check_mode": check_mode, "approve_all": approve_all, "started_at": iso(started_at), "ended_at": None,
            "status": Status.RUNNING.value, "exit_code": None, "phases": [], "timeline": [], "findings": [],
            "actions": [], "errors": [], "verification": None, "escalation": escalation(started_at), "runner": {},
            "follow_ups": list(follow_ups),
        }, folder)
        record.enter_phase("Acknowledge")
        return record

    @classmethod
    def load(cls, folder: Path) -> IncidentRecord:
        return cls(load_record(folder), folder)

    @property
    def id(self) -> str:
        return self.data["id"]

    @property
    def is_open(self) -> bool:
        return self.data["status"] == Status.RUNNING.value

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

    def finding(self, task, host, action, result, at, look_up=None) -> None:
        finding = finding_entry(task, host, action, result, at, self.current_phase, look_up)
        self.data["findings"].append(finding)
        self.note(f"finding: {finding['summary'] or finding['source']}", at=at, host=host)

    def error(self, task, host, message, at=None, unreachable=False, lost=False) -> None:
        entry = {"at": iso(at or utcnow()), "task": task, "host": host, "msg": message, "unreachable": unreachable}
        if lost:  # a result that never arrived: no block rescued it
            entry["lost"] = True
        self.data["errors"].append(entry)
        self.note(f"{'unreachable' if unreachable else 'failed'}: {task or host}: {message}", at=at, host=host)

    def action(self, entry: dict[str, Any], at: datetime) -> None:
        self.data["actions"].append(entry)
        self.note(f"action {entry['status']}: {entry['task']}", at=at, host=entry.get("host"))

    # -- the first look: what synap-play answered from the kept plan before the playbook's own look-ups ------
    def merge_first_look(self) -> None:
        """Take in the first look synap-play wrote beside the record (first-look.json), once it is there."""
        path = self.folder / FIRST_LOOK_FILE
        try:
            stat = path.stat()
            if (stat.st_mtime_ns, stat.st_size) == self._first_look_seen:
                return  # saved after every task result: the file is read again only when synap-play rewrote it
            self._first_look_seen = (stat.st_mtime_ns, stat.st_size)
            look = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        if not isinstance(look, dict) or look == self.data.get("first_look"):
            return
        if look.get("skipped"):  # synap-play could not read its kept plan: the playbook alone diagnosed
            if not any(entry["event"] == look["skipped"] for entry in self.data["timeline"]):
                self.note(str(look["skipped"]))
            return
        noted = self.data.get("first_look") or {}
        self.data["first_look"] = look
        if look.get("seconds") is not None and noted.get("seconds") is None:
            self.note(f"first look: {len(look.get('findings') or [])} findings in {look['seconds']} s from the kept "
                      "plan, before the playbook's own diagnosis")
        if look.get("outdated") and not noted.get("outdated"):
            self.note("the first look read an outdated plan (the inventory resolved differently this run); "
                      "the playbook's own findings stand")

    # -- disk -------------------------------------------------------------------------------------------------
    def save(self, redact) -> Path:
        """Write incident.json atomically, with every secret masked: indented for a person once the run is closed,
        compact while it is open (a fleet's record is rewritten many times, and only compact JSON is written by
        json's C encoder: indented it took five times as long)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.merge_first_look()
        self.data["escalation"] = escalation(self.started_at, parse_iso(self.data["ended_at"])
                                             if self.data["ended_at"] else None)
        path = self.folder / RECORD_FILE
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(redact(self.data), indent=None if self.is_open else 2, default=str) + "\n",
                       encoding="utf-8")
        os.replace(tmp, path)
        return path


def load_record(folder: Path) -> dict[str, Any]:
    return json.loads((folder / RECORD_FILE).read_text(encoding="utf-8"))


def list_records(root: Path, unreadable: list[tuple[Path, str]] | None = None) -> list[dict[str, Any]]:
    """Every readable record below root, newest first (ids sort by time). A record that cannot be read (not
    JSON, not an object, no id) is left out and, when `unreadable` is given, added to it with the reason."""
    records = []
    if root.is_dir():
        for folder in sorted(root.iterdir(), reverse=True):
            if (folder / RECORD_FILE).is_file():
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
