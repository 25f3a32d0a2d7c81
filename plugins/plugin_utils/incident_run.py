# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One scenario run as the synap.ops.incident callback sees it: its record, its lock, its end.

Everything here reads the run from what ansible-playbook was given (extra variables, the inventory, the
command line), so a run started by synap-play, ansible-playbook, ansible-runner/AWX or EDA is kept alike.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ansible.module_utils.parsing.convert_bool import boolean
from ansible.template import Templar
from ansible_collections.synap.ops.plugins.module_utils import info_modules
from ansible_collections.synap.ops.plugins.module_utils.redact import Redactor
from ansible_collections.synap.ops.plugins.plugin_utils import incident_outcome
from ansible_collections.synap.ops.plugins.plugin_utils.catalog import entry_for_playbook
from ansible_collections.synap.ops.plugins.plugin_utils.incident_record import (
    IncidentRecord,
    new_incident_id,
    parse_iso,
)
from ansible_collections.synap.ops.plugins.plugin_utils.incident_report import write_report
from ansible_collections.synap.ops.plugins.plugin_utils.mitigator_lock import (
    MitigatorBusy,
    lock_target,
    mitigator_lock,
)
from ansible_collections.synap.ops.plugins.plugin_utils.paced_writer import PacedWriter
from ansible_collections.synap.ops.plugins.plugin_utils.protocol import (
    DEFAULT_INCIDENTS_DIR,
    JOB_ARTIFACTS_ENV,
    ExitCode,
    RunVar,
)
from ansible_collections.synap.ops.plugins.plugin_utils.shared_answers import (
    ANSWERS_KEY,
    new_answers_folder,
    remove_answers_folder,
)

INCIDENT_ROLES = ("synap.ops.incident", "incident")


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    severity: str | None
    follow_ups: tuple[str, ...]


def scenario_of_play(play, cliargs) -> Scenario | None:
    """The scenario a play runs, or None: a play is an incident when its caller names the scenario
    (incident_scenario) or when it has the synap.ops.incident role.

    Named by the caller, else by the catalog beside the playbook (scenarios.yml), else the playbook's own name."""
    extra = play.get_variable_manager().extra_vars
    named = extra.get(RunVar.SCENARIO.value)
    if not named and not any(role.get_name() in INCIDENT_ROLES for role in play.get_roles()):
        return None
    playbooks = [Path(p) for p in cliargs.get("args") or ()]
    entry = next((found for found in map(entry_for_playbook, playbooks) if found), None)
    if entry is not None and named and entry.name != named:
        entry = None
    name = named or (entry.name if entry else playbooks[0].stem if playbooks else play.get_name())
    return Scenario(name=str(name), title=str(extra.get(RunVar.TITLE.value) or (entry.title if entry else name)),
                    severity=entry.severity if entry else None,
                    follow_ups=tuple(extra.get(RunVar.FOLLOW_UPS.value) or (entry.resolution if entry else ())))


class ScenarioRun:
    """The open record of a run, the lock it holds, and how it is closed.

    The record is written as it changes, paced (PacedWriter); whoever changes it holds `changing`."""

    def __init__(self, record: IncidentRecord, redactor: Redactor, lock: contextlib.ExitStack):
        self.record = record
        self.redactor = redactor
        self._lock = lock
        self._writer = PacedWriter(lambda: self.record.save(self.redactor.data))
        self.changing = self._writer.lock
        self._answers: str | None = None  # the look-ups hosts alike share (shared_answers), while the run lasts

    @classmethod
    def start(cls, play, scenario: Scenario, cliargs, incidents_dir: str | None) -> ScenarioRun:
        variables = play.get_variable_manager().get_vars(play=play)
        extra = play.get_variable_manager().extra_vars
        templar = Templar(loader=play.get_loader(), variables=variables)

        def given(var: RunVar, default: Any = None) -> Any:
            value = extra.get(var.value)
            if value is None or value == "":
                value = variables.get(var.value, default)
            return templar.template(value) if isinstance(value, str) else value

        hosts = list(variables.get("ansible_play_hosts_all") or [])
        severity = extra.get(RunVar.SEVERITY.value) or scenario.severity or given(RunVar.SEVERITY, "P2")
        incident_id = extra.get(RunVar.INCIDENT_ID.value) or new_incident_id(scenario.name)
        check = bool(cliargs.get("check"))
        record = IncidentRecord.open(
            incident_id=incident_id, folder=_incidents_dir(extra, incidents_dir) / incident_id, scenario=scenario.name,
            title=scenario.title, severity=severity,
            inventory=str(extra.get(RunVar.INVENTORY_LABEL.value) or ", ".join(cliargs.get("inventory") or ())),
            operator=str(given(RunVar.OPERATOR) or os.environ.get("USER") or "unknown"), check_mode=check,
            approve_all=boolean(extra.get(RunVar.APPROVE.value, False), strict=False), limit=cliargs.get("subset"),
            follow_ups=list(scenario.follow_ups),
            started_at=parse_iso(extra[RunVar.STARTED_AT.value]) if extra.get(RunVar.STARTED_AT.value) else None,
        )
        record.data["alerts"] = list(extra.get(RunVar.ALERTS.value) or [])
        if extra.get(RunVar.REPLAY_OF.value):
            record.data["replay_of"] = extra[RunVar.REPLAY_OF.value]
        if extra.get(RunVar.APPROVAL_OF.value):
            record.data["approval_of"] = {"incident": extra[RunVar.APPROVAL_OF.value],
                                          "steps": list(extra.get(RunVar.APPROVED_STEPS.value) or [])}
        host_vars = [_readable_vars(variables["hostvars"][host]) for host in hosts] if "hostvars" in variables else []
        # On the local connection the diagnose action runs its look-ups in the worker Ansible forks per host and
        # task, and importing them (psycopg above all) costs a worker more than the look-up: imported here once,
        # in the process the workers are forked from, every worker has them.
        if any(str(v.get("ansible_connection", "")).rpartition(".")[2] == "local" for v in host_vars):
            info_modules.import_all()
        run = cls(record, _redactor(extra, host_vars), contextlib.ExitStack())
        # The play's tasks and notifications name the incident as the record does. The catalog's severity is the
        # scenario's default; a severity given for the run stands.
        play.vars.update({RunVar.INCIDENT_ID.value: incident_id, RunVar.SCENARIO.value: scenario.name,
                          RunVar.STARTED_AT.value: record.data["started_at"]})
        if scenario.severity and not extra.get(RunVar.SEVERITY.value):
            play.vars[RunVar.SEVERITY.value] = scenario.severity
        locked_out = None if check else run._take_lock(play, host_vars, extra, cliargs)
        play.vars[RunVar.RECORD.value] = {"id": incident_id, "folder": str(record.folder), "locked_out": locked_out}
        if locked_out is None:
            play.vars[RunVar.RECORD.value][ANSWERS_KEY] = run._answers = new_answers_folder(incident_id)
        if locked_out is None:
            run.save()
        else:  # another run is mitigating: this play runs nothing at all, and its record says who holds the lock
            for tasks in ("pre_tasks", "roles", "tasks", "post_tasks", "handlers"):
                setattr(play, tasks, [])
        return run

    def _take_lock(self, play, host_vars, extra, cliargs) -> str | None:
        """Hold the scenario+target lock until the run closes; the refusal's message when someone else holds it."""
        url = host_vars[0].get("synap_database_url") if host_vars else None
        try:
            dsn = str(Templar(loader=play.get_loader(), variables=host_vars[0]).template(url)) if url else None
        except Exception:  # a DSN that does not resolve here: the file lock alone guards the run
            dsn = None
        dsn = dsn or os.environ.get("DATABASE_URL") or None
        data = self.record.data
        # Without a database, "the same target" is the same inventory files: whoever names them how.
        sources = ", ".join(str(Path(source).resolve()) for source in cliargs.get("inventory") or ())
        target = lock_target(dsn, sources or data["inventory"], data["limit"])
        try:
            held = self._lock.enter_context(mitigator_lock(
                data["scenario"], target, dsn=dsn, operator=data["operator"], incident_id=data["id"],
                wait=float(extra.get(RunVar.LOCK_WAIT.value) or 0)))
        except MitigatorBusy as busy:
            data["lock"] = {"target": busy.target, "busy": True,
                            "holder": asdict(busy.holder) if busy.holder else None}
            self.record.note(str(busy))
            self.close(playbook_status=None, rc=None, locked_out=True)
            return str(busy)
        data["lock"] = {"target": held.target, "where": held.where}
        return None

    # -- while it runs ------------------------------------------------------------------------------------------
    def task_started(self, name: str) -> None:
        with self.changing:
            if self.record.is_open:
                self.record.data["runner"]["running_task"] = name  # what a stop interrupts, even a SIGKILL
                self.save()

    def save(self) -> None:
        """The record changed: written now, or within nineteen writes' time (PacedWriter)."""
        self._writer.changed()

    # -- its end -------------------------------------------------------------------------------------------------
    def close(self, *, playbook_status: str | None, rc: int | None, ran: bool = True, locked_out: bool = False,
              reason: str | None = None) -> None:
        with self.changing:
            if not self.record.is_open:
                return
            data = self.record.data
            if reason:
                self.record.error(None, None, reason)
            usage_error = not ran and not data["errors"] and not locked_out
            if usage_error:
                self.record.error(None, None, f"no host of inventory '{data['inventory']}' ran this playbook: the "
                                              "inventory is empty, broken, or the limit matches nothing")
            incident_outcome.close(self.record, playbook_status=playbook_status, rc=rc, usage_error=usage_error,
                                   locked_out=locked_out)
            self._finish()

    def close_no_hosts(self) -> None:
        self.close(playbook_status="successful", rc=0, ran=False)

    def close_interrupted(self, code: ExitCode, signal_name: str) -> None:
        with self.changing:
            if not self.record.is_open:
                return
            running = self.record.data["runner"].get("running_task")
            self.record.note(f"{signal_name}: the run was stopped" + (f" during '{running}'" if running
                                                                      else " before the playbook ran a task"))
            incident_outcome.close(self.record, playbook_status="canceled", rc=None, interrupted=code)
            self._finish()

    def _finish(self) -> None:
        self._writer.flush()
        remove_answers_folder(self._answers)
        write_report(self.redactor.data(self.record.data), self.record.folder)
        self._lock.close()  # the lock goes last, once the record says how the run ended


def _readable_vars(host_vars) -> dict[str, Any]:
    """A host's variables as far as they resolve: one that does not (an undefined name in its template) is left
    out, not fatal; the play itself reports it where a task uses it."""
    readable = {}
    for name in list(host_vars.keys()):
        try:
            readable[name] = host_vars[name]
        except Exception:  # Ansible raises its own error types for a template it cannot resolve
            continue
    return readable


def _incidents_dir(extra: dict[str, Any], configured: str | None) -> Path:
    chosen = extra.get(RunVar.INCIDENTS_DIR.value) or configured
    if chosen:
        return Path(chosen).expanduser().resolve()
    job = os.environ.get(JOB_ARTIFACTS_ENV)  # an ansible-runner or AWX job: the record travels with its artifacts
    return (Path(job) if job else Path.cwd()) / DEFAULT_INCIDENTS_DIR


def _redactor(extra: dict[str, Any], host_vars: list[dict[str, Any]]) -> Redactor:
    redactor = Redactor()
    redactor.learn_from_environment(os.environ)
    redactor.learn_from(dict(extra))
    for variables in host_vars:
        redactor.learn_from({k: v for k, v in variables.items() if not k.startswith("ansible_") or "pass" in k})
    return redactor
