"""The incidents serve knows of: the records in --incidents-dir and serve's notes beside them.

Everything the intake decides (is an incident open for this scenario and target?) is derived from the folder, so
it survives a restart: on start every record is read once; afterwards only new folders and the incidents still
running are read again (a record is final once its run ended; serve's own notes are applied as it writes them).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from synap_play import collection

collection.load()

from ansible_collections.synap.ops.plugins.plugin_utils.incident_record import parse_iso, utcnow
from ansible_collections.synap.ops.plugins.plugin_utils.protocol import (
    ACTION_STATUS,
    CLOSED_STATUSES,
    RECORD_FILE,
    Decision,
    Status,
)

from synap_play.serve.notes import Event, append_note, read_notes

# A whole incident id, nothing else: the API never reads outside the incidents folder.
INCIDENT_ID = re.compile(r"\d{8}T\d{6}Z-(?P<scenario>[A-Za-z0-9_-]+)-[0-9a-f]{6}")
# A run that ended without a verdict (stopped, locked out by another mitigator, its playbook failed, its input
# refused before anything was looked at): the next firing of its alert, even a re-send of the same one, runs the
# scenario again.
NO_VERDICT = (Status.INTERRUPTED.value, Status.LOCKED_OUT.value, Status.FAILED.value, Status.USAGE_ERROR.value)
# The record is saved after every task result. A running record untouched this long, whose process serve does not
# know, is taken for a run that died (SIGKILL, a lost machine); were it still alive, the mitigator lock would keep
# the second run from mitigating, so nothing is done twice either way.
STALE_RUNNING = timedelta(minutes=15)
# An incident that ended needing a human takes the repeats of its alerts until they resolve, but no longer than
# this after it ended: an incident nobody closed must not swallow every later alert of its scenario.
REPEATS_WINDOW = timedelta(hours=24)
# A run that verified its incident resolved does not silence the alert at once: Prometheus keeps it firing for the
# rule's rate window (often 5 min) and an evaluation interval or two, and Alertmanager re-sends it every
# group_interval (5 min by default) until it hears otherwise. Such a re-send (same fingerprint, same startsAt) is
# noted on the incident that ran for it, not run again, for this long after the incident ended: those delays with
# some margin. A firing still re-sent later outlived the verdict, and is worth a fresh run.
RESEND_GRACE = timedelta(minutes=15)
NEEDS_APPROVAL = ACTION_STATUS[Decision.NEEDS_APPROVAL.value]

Key = tuple[str, str, str | None]  # scenario, inventory (as the record names it), --limit
Firing = tuple[str, datetime]  # one firing of an alert: its alert_key and startsAt (UTC, to the second)


@dataclass
class Incident:
    """What serve needs of one incident, kept in memory (never the whole record)."""

    id: str
    folder: Path
    scenario: str
    inventory: str | None = None
    limit: str | None = None
    severity: str | None = None
    status: str | None = None  # the record's; None while there is no record yet
    started_at: str | None = None
    ended_at: str | None = None
    exit_code: int | None = None
    # Diagnosis-only runs and replays mitigate nothing: they neither open nor close an incident for the intake.
    ignored: bool = False
    pending_approval: int = 0
    record_mtime: int | None = None
    # From serve's notes.
    pid: int | None = None
    pid_host: str | None = None  # the host name of the serve that started the run
    ended_note: dict[str, Any] | None = None
    queued: bool = False
    queued_at: str | None = None
    repeats: int = 0
    alert_states: dict[str, str] = field(default_factory=dict)  # fingerprint (else name) -> firing | resolved
    resolved_at: str | None = None
    # Approvals (serve/approvals.py): the approval this incident's run carries out, and the approval run that
    # continued this incident once a person approved its held-back steps.
    approval: dict[str, Any] | None = None
    continued_by: str | None = None
    raised_to: str | None = None  # the run at a higher severity that took the incident's alerts over
    last_repeat_at: str | None = None
    repeats_after_close: int = 0  # re-sends noted after it stopped taking repeats (RESEND_GRACE)
    # The firings it ran for or took as repeats: a re-send of one of them is not a new firing.
    firings: set[Firing] = field(default_factory=set)

    @property
    def key(self) -> Key:
        return self.scenario, self.inventory or "", self.limit

    @property
    def has_record(self) -> bool:
        return self.status is not None

    @property
    def state(self) -> str:
        """queued, running or ended, from the record when there is one, else from serve's notes."""
        if self.has_record:
            return "running" if self.status == Status.RUNNING.value and not self.ended_at else "ended"
        if self.ended_note is not None:
            return "ended"
        return "running" if self.pid else "queued"

    @property
    def alerts_resolved(self) -> bool:
        return bool(self.alert_states) and all(s == "resolved" for s in self.alert_states.values())

    def alive(self) -> bool:
        """Its run is still going: serve's child is alive, or the record is running and was written lately."""
        if self.state != "running" or self.ended_note is not None:
            return False
        if self.pid is not None and self.pid_host in (None, socket.gethostname()):
            return _pid_alive(self.pid)
        # Started on another machine or container (a pid number there means nothing here): the record's age says.
        return self.record_mtime is not None and time.time() - self.record_mtime / 1e9 < STALE_RUNNING.total_seconds()

    def needs_human(self) -> bool:
        return (self.state == "ended" and self.has_record and self.status not in CLOSED_STATUSES
                and self.status not in NO_VERDICT)

    def takes_repeats(self, now: datetime | None = None) -> bool:
        """Open for the intake: a firing alert of its scenario and target is noted on it rather than run again."""
        if self.state == "queued" or self.alive():
            return True
        if not self.needs_human() or self.alerts_resolved:
            return False
        if self.continued_by or self.raised_to:  # its approval run, or a more severe run, took it over
            return False
        ended = _moment(self.ended_at)
        return ended is None or (now or utcnow()) - ended < REPEATS_WINDOW

    def has_verdict(self) -> bool:
        """Its run ended and said resolved, healthy, or what a person must do."""
        return self.state == "ended" and self.has_record and self.status not in NO_VERDICT

    def ended_moment(self) -> datetime | None:
        ended = _moment(self.ended_at) or _moment((self.ended_note or {}).get("at"))
        if ended is None and self.record_mtime is not None:  # the record is written last when the run ends
            ended = datetime.fromtimestamp(self.record_mtime / 1e9, UTC)
        return ended

    def takes_resend(self, now: datetime | None = None) -> bool:
        """A re-send of a firing it holds is noted on it: while it takes repeats, or for RESEND_GRACE after it
        ended with a verdict."""
        if self.takes_repeats(now):
            return True
        ended = self.ended_moment()
        return self.has_verdict() and ended is not None and (now or utcnow()) - ended < RESEND_GRACE

    # -- reading --------------------------------------------------------------------------------------------
    def take_record(self, record: dict[str, Any], mtime: int) -> None:
        self.record_mtime = mtime
        self.inventory, self.limit = record.get("inventory"), record.get("limit")
        self.severity, self.status = record.get("severity"), record.get("status")
        self.started_at, self.ended_at, self.exit_code = record.get("started_at"), record.get("ended_at"), \
            record.get("exit_code")
        self.ignored = bool(record.get("check_mode") or record.get("replay_of"))
        actions = record.get("actions") if isinstance(record.get("actions"), list) else []
        self.pending_approval = sum(1 for a in actions if isinstance(a, dict) and a.get("status") == NEEDS_APPROVAL)
        for alert in record.get("alerts") or []:
            if isinstance(alert, dict):
                self.alert_states.setdefault(alert_key(alert), "firing")
                self._hold(alert)

    def apply_note(self, entry: dict[str, Any]) -> None:
        event = entry.get("event")
        if event == Event.QUEUED:
            self.queued, self.queued_at = True, entry.get("at")
            self.approval = entry.get("approval") if isinstance(entry.get("approval"), dict) else None
            target = entry.get("target") or {}
            if not self.has_record:
                self.inventory, self.limit = target.get("inventory"), target.get("limit")
                self.severity, self.started_at = entry.get("severity"), entry.get("started_at")
        elif event == Event.STARTED:
            self.pid, self.ended_note, self.pid_host = entry.get("pid"), None, entry.get("host")
        elif event == Event.ENDED:
            self.ended_note = entry
        elif event in (Event.DEFERRED, Event.REQUEUED):  # waiting again: no process, no end
            self.pid, self.ended_note = None, None
        elif event == Event.REPEAT:
            self.repeats += 1
            self.last_repeat_at = entry.get("at")
            self.repeats_after_close += bool(entry.get("after_close"))
        elif event == Event.RESOLVED:
            self.resolved_at = entry.get("at")
        elif event == Event.APPROVAL_ENDED:
            self.continued_by = entry.get("run")
        elif event == Event.RAISED:
            self.raised_to = entry.get("run")
        for alert in entry.get("alerts") or []:
            if isinstance(alert, dict):
                self.alert_states[alert_key(alert)] = "resolved" if event == Event.RESOLVED else "firing"
                if event in (Event.QUEUED, Event.REPEAT):
                    self._hold(alert)

    def holds(self, alert: dict[str, Any]) -> bool:
        """It ran for this firing of the alert, or took it as a repeat (an alert without a startsAt: its alert)."""
        firing = firing_of(alert)
        return alert_key(alert) in self.alert_states if firing is None else firing in self.firings

    def _hold(self, alert: dict[str, Any]) -> None:
        firing = firing_of(alert)
        if firing is not None:
            self.firings.add(firing)

    def summary(self) -> dict[str, Any]:
        """How GET /api/incidents lists it."""
        firing = sum(1 for s in self.alert_states.values() if s == "firing")
        return {
            "id": self.id, "scenario": self.scenario, "severity": self.severity, "status": self.status or self.state,
            "state": self.state, "open": self.takes_repeats(), "inventory": self.inventory, "limit": self.limit,
            "started_at": self.started_at, "ended_at": self.ended_at, "exit_code": self.exit_code,
            "alerts": {"firing": firing, "resolved": len(self.alert_states) - firing}, "repeats": self.repeats,
            "repeats_after_close": self.repeats_after_close, "resolved_at": self.resolved_at,
            "pending_approval": self.pending_approval,
            **({"raised_to": self.raised_to} if self.raised_to else {}),
        }


class IncidentIndex:
    """The incidents of one folder, by id and by scenario and target."""

    def __init__(self, root: Path):
        self.root = root
        self._incidents: dict[str, Incident] = {}
        self._by_key: dict[Key, list[str]] = {}
        self._listed_mtime: int | None = None
        self._pending: set[str] = set()  # folders with neither record nor notes yet: a run being set up
        self.unreadable: dict[str, str] = {}

    def refresh(self) -> None:
        """Take in new folders and re-read the records of runs still going."""
        with contextlib.suppress(FileNotFoundError):
            mtime = self.root.stat().st_mtime_ns
            if mtime != self._listed_mtime:
                self._listed_mtime = mtime
                for name in os.listdir(self.root):
                    if name not in self._incidents and INCIDENT_ID.fullmatch(name):
                        self._pending.add(name)
        for name in list(self._pending):
            self.load(name)
        for incident in [i for i in self._incidents.values() if i.state != "ended"]:
            self._read_record(incident)

    def load(self, incident_id: str) -> Incident | None:
        """Read one incident from its folder (again), or None when it has neither record nor notes."""
        match = INCIDENT_ID.fullmatch(incident_id)
        if not match:
            return None
        folder = self.root / incident_id
        incident = Incident(incident_id, folder, match["scenario"])
        for note in read_notes(folder):
            incident.apply_note(note)
        self._read_record(incident)
        if not incident.has_record and not incident.queued:
            if folder.is_dir():
                self._pending.add(incident_id)
            return None
        self._pending.discard(incident_id)
        self._put(incident)
        return incident

    def get(self, incident_id: str) -> Incident | None:
        return self._incidents.get(incident_id) or self.load(incident_id)

    def add(self, incident: Incident) -> None:
        self._put(incident)

    def note(self, incident: Incident, entry: dict[str, Any]) -> None:
        """Append a note to the incident's folder and apply it here."""
        append_note(incident.folder, entry)
        old_key = incident.key
        incident.apply_note(entry)
        self._put(incident, old_key)

    def record_changed(self, incident: Incident) -> dict[str, Any] | None:
        """Re-read the record of an incident whose run just ended; the record, or None when there is none."""
        return self._read_record(incident, force=True)

    # -- questions the intake and the API ask ----------------------------------------------------------------
    def latest(self, key: Key) -> Incident | None:
        """The newest incident of this scenario and target, leaving out one a more severe run took over (ids name
        the second, so that run may sort before it)."""
        ids = self._by_key.get(key) or []
        for incident_id in reversed(ids):
            incident = self._incidents[incident_id]
            if not incident.ignored and not incident.raised_to:
                return incident
        return None

    def holding(self, key: Key, alert: dict[str, Any]) -> Incident | None:
        """The newest incident of this scenario and target that the alert fired for."""
        wanted = alert_key(alert)
        for incident_id in reversed(self._by_key.get(key) or []):
            incident = self._incidents[incident_id]
            if not incident.ignored and wanted in incident.alert_states:
                return incident
        return None

    def ran_for(self, key: Key, alerts: list[dict[str, Any]]) -> dict[Firing, Incident]:
        """For each firing of these alerts, the newest incident of this scenario and target that holds it (ran
        for it, or took it as a repeat); firings no incident holds are left out."""
        wanted = {f for f in map(firing_of, alerts) if f is not None}
        found: dict[Firing, Incident] = {}
        for incident_id in reversed(self._by_key.get(key) or []):
            if not wanted:
                break
            incident = self._incidents[incident_id]
            if incident.ignored:
                continue
            held = wanted & incident.firings
            found.update(dict.fromkeys(held, incident))
            wanted -= held
        return found

    def newest(self, count: int) -> list[Incident]:
        return [self._incidents[i] for i in sorted(self._incidents, reverse=True)[:count]]

    def open_incidents(self) -> list[Incident]:
        return [i for i in sorted(self._incidents.values(), key=lambda i: i.id, reverse=True)
                if not i.ignored and i.takes_repeats()]

    def __iter__(self):
        return iter(list(self._incidents.values()))

    # -- internals -----------------------------------------------------------------------------------------------
    def _read_record(self, incident: Incident, force: bool = False) -> dict[str, Any] | None:
        path = incident.folder / RECORD_FILE
        try:
            mtime = path.stat().st_mtime_ns
            if mtime == incident.record_mtime and not force:
                return None
            record = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(record, dict) or record.get("id") != incident.id:
                raise ValueError("not this incident's record")
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            self.unreadable[incident.id] = str(exc)
            return None
        self.unreadable.pop(incident.id, None)
        old_key = incident.key
        incident.take_record(record, mtime)
        if incident.id in self._incidents and incident.key != old_key:
            self._put(incident, old_key)
        return record

    def _put(self, incident: Incident, old_key: Key | None = None) -> None:
        if old_key is not None and old_key != incident.key and incident.id in (self._by_key.get(old_key) or []):
            self._by_key[old_key].remove(incident.id)
        self._incidents[incident.id] = incident
        ids = self._by_key.setdefault(incident.key, [])
        if incident.id not in ids:
            ids.append(incident.id)
            ids.sort()  # ids sort by time


def alert_key(alert: dict[str, Any]) -> str:
    return str(alert.get("fingerprint") or alert.get("name") or "")


def firing_of(alert: dict[str, Any]) -> Firing | None:
    """Which firing an alert (as alert_vars gives it) is: None without a startsAt, when a re-send cannot be told
    from a new firing. startsAt as the sender said it (sent_starts_at, kept when it was in the future and the
    incident counted from the arrival instead), normalized: the records and the notes need not write it alike."""
    starts = _moment(alert.get("sent_starts_at") or alert.get("starts_at"))
    if starts is None:
        return None
    starts = starts if starts.tzinfo else starts.replace(tzinfo=UTC)
    return alert_key(alert), starts.astimezone(UTC).replace(microsecond=0)


def _moment(text: Any) -> datetime | None:
    try:
        return parse_iso(str(text)) if text else None
    except ValueError:
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process of that number
        return True
    try:  # our own child that ended and was not reaped yet is no run
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as handle:
            return handle.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False
