"""One incident run: the record, the live progress, the approval desk, the playbook, the outcome."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from synap_play.catalog import Scenario
from synap_play.incident import EXIT_CODES, Incident, iso, new_incident_id
from synap_play.redact import Redactor

FIRST_LOOK_HEAD_START = 1.0  # seconds the playbook waits at most for the first look (measured: ~0.3-0.5 s)


class _SecretsAwareLoader(yaml.SafeLoader):
    """Reads inventory variable files for redaction; vault-encrypted values are skipped, not decrypted."""


_SecretsAwareLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


CHECK_MARKS = {"ok": "[green]✓[/]", "failed": "[red]✗[/]", "unknown": "[yellow]?[/]"}


def check_state(check: dict[str, Any]) -> str:
    """ok, failed or unknown (a record written before checks had three values has only ok)."""
    return check.get("state") or ("ok" if check.get("ok") else "failed")


@dataclass
class IncidentRun:
    scenario: Scenario
    severity: str
    inventory: Path
    inventory_label: str
    extravars: dict[str, Any]
    check: bool
    approve: bool
    limit: str | None
    output: str
    incidents_dir: Path
    operator: str
    started_at: datetime | None
    verbose: int
    lock_wait: float = 0.0  # seconds to wait for another mitigator of this scenario and target to finish
    first_look: bool = True  # run the scenario's kept look-ups at once, beside the playbook (first_look.py)
    strategy: str = "linear"  # or "mitogen" (cli.py has checked that it is installed)
    replay_of: str | None = None  # what a replayed run replays (replay.py): an incident id or a file
    show_outcome: bool = True  # print the summary (or the JSON record) at the end; a caller may print its own

    def execute(self) -> int:
        from synap_play.stopping import StopSignals

        self._closed = False  # once the outcome is shown, nothing else is printed
        # From the first moment a record exists to the last: a signal closes it as interrupted, never "running".
        with StopSignals(announce=self._announce) as self._stop:
            self._began = time.monotonic()
            self._title_shown = False
            # The runner's event thread and the first look's threads both write into the record.
            self._record_lock = threading.RLock()
            self._progress = None
            incident_id = new_incident_id(self.scenario.name)
            folder = self.folder = (self.incidents_dir / incident_id).resolve()
            incident = Incident(
                incident_id=incident_id, folder=folder, scenario=self.scenario.name, title=self.scenario.title,
                severity=self.severity, inventory=self.inventory_label, operator=self.operator, check_mode=self.check,
                approve_all=self.approve, limit=self.limit, follow_ups=list(self.scenario.resolution),
                started_at=self.started_at,
            )
            redactor = Redactor()
            try:
                redactor = self._redactor()
                incident.data["alerts"] = list(self.extravars.get("incident_alerts") or [])
                if self.replay_of:
                    incident.data["replay_of"] = self.replay_of
                incident.save(redactor.data)
                return self._locked_run(incident, incident_id, folder, redactor)
            except KeyboardInterrupt:  # before or after the playbook: nothing more runs, the record says so
                self._stop.interrupt()
                self._stop.kill_playbook()
                return self._close(incident, redactor, None, None, interrupted=True, hosts_missing=False)

    def _locked_run(self, incident: Incident, incident_id: str, folder: Path, redactor: Redactor) -> int:
        # psycopg is imported here, before the first look's thread imports it too: a package with circular imports
        # imported by two threads at once can be found half initialised (the lock below connects with it).
        with contextlib.suppress(ImportError):
            import psycopg  # noqa: F401
        first_look = self._start_first_look(incident, redactor) if self.first_look else None
        from synap_play.lock import MitigatorBusy, database_url_from_inventory, lock_target, mitigator_lock

        # One mitigator at a time per scenario and target; diagnosis (--check) never takes the lock. The lock is
        # released when this block ends, which is after the playbook's processes are gone.
        dsn = None if self.check else database_url_from_inventory(self.inventory, self.limit)
        try:
            with mitigator_lock(self.scenario.name, lock_target(dsn, self.inventory_label, self.limit), dsn=dsn,
                                operator=self.operator, incident_id=incident_id, wait=self.lock_wait,
                                check=self.check) as held:
                if held:
                    incident.data["lock"] = {"target": held.target, "where": held.where}
                return self._play(incident, incident_id, folder, redactor, first_look)
        except MitigatorBusy as busy:
            return self._locked_out(incident, redactor, busy)

    def _announce(self, text: str) -> None:
        if self.output != "json" and not self._closed:
            print(f"synap-play: {text}", file=sys.stderr, flush=True)

    def _title(self, incident_id: str) -> str:
        return (f"synap-play {self.scenario.name} · {self.severity} · inventory {self.inventory_label}"
                f"{' · check mode' if self.check else ''} · incident {incident_id}")

    def _start_first_look(self, incident: Incident, redactor: Redactor):
        from synap_play.first_look import FirstLook, plan_folder

        try:
            self._plan_folder = plan_folder(self.scenario.name, self.inventory, self.limit, self.extravars)
        except OSError as exc:  # an unreadable cache or inventory file: the playbook alone diagnoses
            self.first_look = False
            incident.note(f"first look skipped: {exc}")
            return None

        def on_answer(host: str, name: str, module: str, result: dict) -> None:
            with self._record_lock:
                if self._closed or self._stop.requested:  # the run is stopping: a late answer is not news
                    return
                incident.first_look_finding(host, name, module, result)
                self._show_answer(host, name, result, redactor)

        def on_done(look: FirstLook) -> None:
            with self._record_lock:
                if self._closed:
                    return
                incident.first_look_done(seconds=look.seconds, plan_written_at=look.plan_written_at)
                incident.save(redactor.data)

        look = FirstLook(self._plan_folder, on_answer, on_done=on_done)
        if not look.start():
            return None
        if self.output != "json":
            print(self._title(incident.id), file=sys.stderr, flush=True)
            self._title_shown = True
        return look

    def _show_answer(self, host: str, name: str, result: dict, redactor: Redactor) -> None:
        failed = bool(result.get("failed"))
        unread = not failed and result.get("reachable") is False
        label = "failed" if failed else "not read" if unread else "first look"
        message = redactor.text(str(result.get("msg") or ""))
        if self._progress is not None:
            self._progress.line(label, "red" if failed else "yellow" if unread else "magenta", host, name, message,
                                finding=not failed)
        elif self.output != "json":
            # The live display is not up yet (it waits for the first look): a plain line, at once, without the
            # control characters the answer may carry (report.py is light to import, rich is not).
            from synap_play.report import strip_control

            print(f"{time.monotonic() - self._began:6.1f}s {label:<11}[{strip_control(host)}] {strip_control(name)}: "
                  f"{strip_control(message)}", file=sys.stderr, flush=True)

    def _play(self, incident: Incident, incident_id: str, folder: Path, redactor: Redactor, first_look=None) -> int:
        if first_look is not None:
            # ansible-playbook's start-up, and even importing the live display, compete with the first look for the
            # CPU; the first look is done in a fraction of the playbook's start-up, so it goes first.
            first_look.wait(timeout=FIRST_LOOK_HEAD_START)
        from rich.console import Console

        from synap_play.progress import Progress

        quiet = self.output == "json"
        console = Console(stderr=True, quiet=quiet, highlight=False)
        interactive = not quiet and not self.approve and not self.check and sys.stdin.isatty() and sys.stderr.isatty()
        approval_dir = Path(tempfile.mkdtemp(prefix="synap-play-approvals-")) if interactive else None

        extravars = {
            **self.extravars,
            "incident_id": incident_id,
            "incident_scenario": self.scenario.name,
            "incident_severity": self.severity,
            "incident_approve": self.approve,
            "incident_operator": self.operator,
            "incident_started_at": iso(incident.started_at),
            "incident_approval_dir": str(approval_dir) if approval_dir else "",
        }
        # Printed already, plainly, when the first look went ahead of the live display.
        title = "" if self._title_shown else self._title(incident_id)
        stop = self._stop
        runner_status, runner_rc = None, None
        hosts_missing = False
        try:
            with Progress(console, title, verbose=self.verbose, redact=redactor.text, started=self._began) as progress:
                with self._record_lock:
                    self._progress = progress
                desk = None
                if approval_dir:
                    from synap_play.approvals import ApprovalDesk

                    desk = ApprovalDesk(approval_dir, progress, console)
                    desk.start()

                def on_event(event: dict) -> bool:
                    with self._record_lock:
                        incident.observe(event)
                        progress.handle(event)
                    return True

                from synap_play.runner import run_playbook

                stop.playbook_running = True
                try:
                    outcome = run_playbook(
                        playbook=self.scenario.playbook, inventory=self.inventory, extravars=extravars,
                        ident=incident_id, artifacts_to=folder / "artifacts", redact_text=redactor.text,
                        check=self.check, limit=self.limit, verbosity=self.verbose,
                        event_handler=on_event, cancel_callback=stop.cancel_playbook,
                        envvars=self._plan_env(), strategy=self.strategy,
                    )
                    runner_status, runner_rc = outcome.status, outcome.rc
                    if outcome.output_tail and not incident.data["runner"].get("stats") and not stop.requested:
                        last_line = outcome.output_tail.strip().splitlines()[-1]
                        if "no hosts" in last_line:
                            hosts_missing = True
                        else:
                            incident.error(None, None, f"ansible-playbook stopped before running a task: {last_line}")
                finally:
                    stop.playbook_running = False
                    if desk:
                        desk.stop()
                if first_look is not None and not stop.requested:
                    first_look.wait(timeout=2)
                    with self._record_lock:
                        incident.first_look_checked(outdated=first_look.outdated())
                if progress.first_finding is not None:
                    incident.data["runner"]["first_finding_seconds"] = round(progress.first_finding, 2)
        except KeyboardInterrupt:
            stop.interrupt()
            stop.kill_playbook()
        except Exception as exc:
            incident.error(None, None, f"{exc.__class__.__name__}: {exc}")
            if self.verbose:
                raise
        finally:
            if approval_dir:
                shutil.rmtree(approval_dir, ignore_errors=True)
        return self._close(incident, redactor, runner_status, runner_rc, stop.requested, hosts_missing)

    def _plan_env(self) -> dict[str, str]:
        """Where the diagnose action keeps this scenario's plan for the next run's first look."""
        return {"SYNAP_PLAY_PLAN_DIR": str(self._plan_folder)} if self.first_look else {}

    def _locked_out(self, incident: Incident, redactor: Redactor, busy) -> int:
        """Someone else is mitigating this scenario on this target: record who, change nothing, exit 5."""
        incident.data["lock"] = {"target": busy.target, "busy": True,
                                 "holder": asdict(busy.holder) if busy.holder else None}
        incident.note(str(busy))
        incident.finish(runner_status=None, runner_rc=None)
        incident.data.update(status="locked out", exit_code=busy.exit_code)
        return self._write(incident, redactor, announce=f"synap-play: {busy}")

    def _close(self, incident: Incident, redactor: Redactor, status, rc, interrupted: bool,
               hosts_missing: bool) -> int:
        if status == "canceled":
            interrupted = True
        if interrupted:
            self._stop.interrupt()
            running = incident.data["runner"].get("running_task")
            incident.note(f"{self._stop.name}: the run was stopped" + (f" during '{running}'" if running else
                                                                         " before the playbook ran a task"))
        stats = incident.data["runner"].get("stats") or {}
        no_hosts = hosts_missing or (not interrupted and status is not None and not incident.data["errors"]
                                     and not stats.get("ok") and not stats.get("dark"))
        if no_hosts:
            incident.error(None, None, f"no host of inventory '{self.inventory_label}' ran this playbook: the inventory "
                           f"is empty, broken, or --limit matches nothing (check with "
                           f"'ansible-inventory -i {self.inventory} --graph')")
        incident.finish(runner_status=status, runner_rc=rc, interrupted=interrupted, usage_error=no_hosts,
                        interrupted_code=self._stop.exit_code)
        return self._write(incident, redactor)

    def _write(self, incident: Incident, redactor: Redactor, announce: str | None = None) -> int:
        """Save the record and the report, then show the outcome; returns the exit code."""
        with self._record_lock:
            self._closed = True  # a first-look answer arriving now is neither recorded nor printed
        incident.save(redactor.data)
        from synap_play.report import write_report

        record = json.loads((incident.folder / "incident.json").read_text(encoding="utf-8"))
        write_report(record, incident.folder)
        if not self.show_outcome:
            pass
        elif self.output == "json":
            print(json.dumps(record, indent=2))
        elif announce:
            print(announce, file=sys.stderr)
        else:
            self._summary(record)
        return record["exit_code"]

    def _summary(self, record: dict[str, Any]) -> None:
        from rich.console import Console

        from synap_play.progress import markup_safe  # free text: no control characters, brackets not markup

        console = Console(stderr=True, highlight=False)
        style = {0: "green", 3: "yellow", 6: "yellow"}.get(record["exit_code"], "red")
        console.print(f"[bold {style}]{record['status']}[/] — exit {record['exit_code']} "
                      f"({EXIT_CODES.get(record['exit_code'], ('',))[0]}), {len(record['findings'])} findings, "
                      f"{len(record['actions'])} actions, escalation level {record['escalation']['level']} "
                      f"({record['escalation']['contact']})")
        for action in record["actions"]:
            if action["status"] in ("needs approval", "declined", "planned") and action["plan"]:
                console.print(f"  [yellow]{action['status']}[/]: {markup_safe(action['task'])} "
                              f"({markup_safe(action['class'])})")
                for line in action["plan"]:
                    console.print(f"    - {markup_safe(line)}")
        verification = record.get("verification")
        if verification:
            for check in verification["checks"]:
                console.print(f"  {CHECK_MARKS[check_state(check)]} {markup_safe(check['name'])}"
                              + (" " + markup_safe(f"[{check['host']}]")
                                 if check.get("host") and len(record.get("hosts") or {}) > 1 else "")
                              + (f" — unknown: {markup_safe(check.get('unknown_because') or 'not measured')}"
                                 if check_state(check) == "unknown" else ""))
        for error in record["errors"]:
            console.print(f"  [red]error[/]: {markup_safe(error.get('task') or 'run')}: {markup_safe(error['msg'])}")
        console.print(f"record: {os.path.relpath(Path(self.incidents_dir) / record['id'])}/incident.json and report.md")

    def _redactor(self) -> Redactor:
        redactor = Redactor()
        redactor.learn_from_environment(os.environ)
        redactor.learn_from(self.extravars)
        if self.inventory.is_dir():
            paths = sorted(self.inventory.rglob("*"))
        else:  # the file and the group_vars/host_vars beside it, as Ansible reads them; never the whole folder
            beside = [self.inventory.parent / name for name in ("group_vars", "host_vars")]
            paths = [self.inventory, *sorted(p for folder in beside if folder.is_dir() for p in folder.rglob("*"))]
        for path in paths:
            if (path == self.inventory or path.suffix in (".yml", ".yaml", ".json", "")) and path.is_file():
                try:
                    redactor.learn_from(yaml.load(path.read_text(encoding="utf-8"), Loader=_SecretsAwareLoader))
                except (OSError, ValueError, yaml.YAMLError):  # unreadable, not text, not YAML: nothing to learn
                    continue
        return redactor
