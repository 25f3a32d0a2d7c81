"""synap-play's part of the incident record: what only it saw, and the end of a run the playbook could not close.

The synap.ops.incident callback keeps the record inside ansible-playbook (plugins/callback/incident.py). synap-play
adds its first look beside it (first-look.json, taken in by the record) and, after the playbook's processes are
gone, closes a record the playbook left open (a stop, a crash) or opens and closes one for a playbook that never
got to its play. Then it reads the record back: its exit code is the run's.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from synap_play import collection
from synap_play.run_request import RunRequest

collection.load()
from ansible_collections.synap.ops.plugins.plugin_utils import incident_outcome  # noqa: E402
from ansible_collections.synap.ops.plugins.plugin_utils.incident_record import (  # noqa: E402
    IncidentRecord,
    finding_entry,
    iso,
    message_of,
    utcnow,
)
from ansible_collections.synap.ops.plugins.plugin_utils.incident_report import write_report  # noqa: E402
from ansible_collections.synap.ops.plugins.plugin_utils.protocol import (  # noqa: E402
    FIRST_LOOK_FILE,
    RECORD_FILE,
    ExitCode,
    RunVar,
    Status,
)

# Set by the benchmark (bench/run.py): a file to append the first look's moments to, as JSON lines. They are
# measurements of synap-play, not facts of the incident, so they stay out of the record.
TIMINGS_ENV = "SYNAP_PLAY_TIMINGS"


class FirstLookNotes:
    """The first look as the record takes it in: first-look.json in the incident's folder, rewritten as answers
    land. Written by the run's own synap-play, or by synap-play serve before the run starts (serve/warm.py)."""

    def __init__(self, folder: Path, redactor):
        self.folder = folder
        self.redactor = redactor
        self._look: dict[str, Any] | None = None

    def answer(self, host: str, look_up: str, module: str, result: dict[str, Any]) -> None:
        look = self._look = self._look or {"findings": [], "errors": []}
        if not look["findings"] and not look["errors"]:
            _timing("first_answer")
        if result.get("failed"):
            look["errors"].append({"at": iso(utcnow()), "host": host, "look_up": look_up, "msg": message_of(result)})
        else:
            look["findings"].append(finding_entry("first look", host, module, result, utcnow(), "Assess", look_up))

    def done(self, *, seconds: float | None, plan_written_at: float | None, **extra: Any) -> None:
        look = self._look = self._look or {"findings": [], "errors": []}
        _timing("first_look_done")
        look.update(seconds=seconds, outdated=None, done_at=iso(utcnow()),
                    plan_written_at=iso(datetime.fromtimestamp(plan_written_at, UTC)) if plan_written_at else None,
                    **extra)
        self._write()

    def checked(self, *, outdated: bool) -> None:
        """The playbook has resolved its look-ups again: say whether the first look read an outdated plan."""
        if self._look is not None:
            self._look["outdated"] = outdated
            self._write()

    def skipped(self, reason: str) -> None:
        self._look = {"findings": [], "errors": [], "skipped": reason}
        self._write()

    def _write(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / FIRST_LOOK_FILE
        path.with_suffix(".tmp").write_text(json.dumps(self.redactor.data(self._look), default=str), encoding="utf-8")
        os.replace(path.with_suffix(".tmp"), path)


class RunRecord:
    def __init__(self, request: RunRequest, incident_id: str, redactor):
        self.request = request
        self.id = incident_id
        self.folder = (request.incidents_dir / incident_id).resolve()
        self.redactor = redactor
        self.look = FirstLookNotes(self.folder, redactor)

    # -- the first look ------------------------------------------------------------------------------------------
    def first_look_answer(self, host: str, look_up: str, module: str, result: dict[str, Any]) -> None:
        self.look.answer(host, look_up, module, result)

    def first_look_done(self, *, seconds: float | None, plan_written_at: float | None, **extra: Any) -> None:
        self.look.done(seconds=seconds, plan_written_at=plan_written_at, **extra)

    def first_look_checked(self, *, outdated: bool) -> None:
        self.look.checked(outdated=outdated)

    def first_look_skipped(self, reason: str) -> None:
        self.look.skipped(reason)

    # -- the end ---------------------------------------------------------------------------------------------------
    def close(self, *, playbook_status: str | None, stopped: tuple[ExitCode, str] | None, output_tail: str = "",
              running_task: str | None = None, error: str | None = None) -> dict[str, Any]:
        """Close what the playbook left open, then return the record as written."""
        if (self.folder / RECORD_FILE).is_file():
            record = IncidentRecord.load(self.folder)
        else:  # the playbook ended (or was stopped) before its play began: this run still has its record
            record = self._opened()
            if not stopped and not error:
                error = f"ansible-playbook stopped before running a task: {_cause(output_tail)}"
        if error and record.is_open:
            record.error(None, None, error)
            incident_outcome.close(record, playbook_status=playbook_status or "failed")
        if stopped and record.is_open:
            code, name = stopped
            running = record.data["runner"].get("running_task") or running_task
            if running:
                record.data["runner"]["running_task"] = running
            record.note(f"{name}: the run was stopped" + (f" during '{running}'" if running
                                                            else " before the playbook ran a task"))
            incident_outcome.close(record, playbook_status="canceled", interrupted=code)
        elif stopped and record.data["status"] == Status.INTERRUPTED:
            record.data["exit_code"] = int(stopped[0])  # the playbook saw our SIGTERM; the operator's signal counts
        elif record.is_open:
            record.error(None, None, f"ansible-playbook ended ({playbook_status}) without closing the record")
            incident_outcome.close(record, playbook_status=playbook_status)
        record.save(self.redactor.data)
        written = json.loads((self.folder / RECORD_FILE).read_text(encoding="utf-8"))
        write_report(written, self.folder)
        return written

    def _opened(self) -> IncidentRecord:
        request = self.request
        record = IncidentRecord.open(
            incident_id=self.id, folder=self.folder, scenario=request.scenario.name, title=request.scenario.title,
            severity=request.severity, inventory=request.inventory_label, operator=request.operator,
            check_mode=request.check, approve_all=request.approve, limit=request.limit,
            follow_ups=list(request.scenario.resolution), started_at=request.started_at)
        record.data["alerts"] = list(request.extravars.get(RunVar.ALERTS.value) or [])
        return record


def _cause(output: str) -> str:
    """What ansible-playbook said went wrong: its error line, else its last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return next((line for line in lines if "ERROR" in line), lines[-1] if lines else "no output")


def _timing(event: str) -> None:
    target = os.environ.get(TIMINGS_ENV)
    if target:
        with Path(target).open("a", encoding="utf-8") as handle:
            handle.write(json.dumps({"event": event, "unix": round(time.time(), 3)}) + "\n")
