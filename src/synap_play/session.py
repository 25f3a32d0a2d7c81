"""One incident run from the terminal: the first look, the live view, the approval desk, the playbook, the outcome.

The record itself is kept by the playbook (the synap.ops.incident callback); synap-play adds what only a terminal
has, and the exit code is the record's.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

from synap_play import collection

collection.load()

from ansible_collections.synap.ops.plugins.module_utils.redact import Redactor
from ansible_collections.synap.ops.plugins.plugin_utils.incident_record import new_incident_id
from ansible_collections.synap.ops.plugins.plugin_utils.protocol import ARTIFACTS_DIR

from synap_play.run_request import RunRequest

FIRST_LOOK_HEAD_START = 1.0  # seconds the playbook waits at most for the first look (measured: ~0.3-0.5 s)


class IncidentRun:
    def __init__(self, request: RunRequest | None = None, **fields):
        self.request = request or RunRequest(**fields)
        self.folder: Path | None = None  # where the record is, once the run ended (replay reads it back)

    def execute(self) -> int:
        from synap_play.inventory_secrets import learn_secrets
        from synap_play.live import LiveView
        from synap_play.outcome_view import show_outcome
        from synap_play.run_record import RunRecord
        from synap_play.stopping import StopSignals

        request = self.request
        live = LiveView(request, str, time.monotonic())
        # From the first moment to the last: a signal ends the playbook's processes and the record says so.
        with StopSignals(announce=live.announce) as stop:
            status, error = None, None
            record = None
            try:
                redactor = learn_secrets(request.inventory, request.extravars)
                live.redact_text = redactor.text
                record = RunRecord(request, request.incident_id or new_incident_id(request.scenario.name), redactor)
                status = self._play(record, live, stop)
            except KeyboardInterrupt:  # before or after the playbook: nothing more runs, the record says so
                stop.interrupt()
                stop.kill_playbook()
            except Exception as exc:
                error = f"{exc.__class__.__name__}: {exc}"
                if request.verbose:
                    raise
            live.close()
            if record is None:  # not even the secrets could be read: the record is written with none to hide
                record = RunRecord(request, request.incident_id or new_incident_id(request.scenario.name), Redactor())
            self.folder = record.folder
            stopped = (stop.exit_code, stop.name) if stop.requested else None
            said = "\n".join(filter(None, [live.first_error, *live.last_output]))
            written = record.close(playbook_status=status, stopped=stopped, output_tail=said,
                                   running_task=live.running_task, error=error)
        if request.show_outcome:
            show_outcome(written, output=request.output, incidents_dir=request.incidents_dir)
        return written["exit_code"]

    def _play(self, record, live, stop) -> str:
        """Run the playbook with the first look, the live display and the approval desk beside it."""
        request = self.request
        # psycopg is imported before the first look's threads import it too: a package with circular imports
        # imported by two threads at once can be found half initialised.
        with contextlib.suppress(ImportError):
            import psycopg  # noqa: F401
        if request.first_look_done:  # serve looked already (serve/warm.py): the playbook only keeps the plan
            look, plan_env = None, live.plan_env()
        else:
            look, plan_env = live.start_first_look(record, stop) if request.first_look else (None, {})
        if look is not None:
            # ansible-playbook's start-up, and even importing the live display, compete with the first look for the
            # CPU; the first look is done in a fraction of the playbook's start-up, so it goes first.
            look.wait(timeout=FIRST_LOOK_HEAD_START)
        from rich.console import Console

        from synap_play.approvals import ApprovalDesk
        from synap_play.progress import Progress
        from synap_play.runner import run_playbook

        console = Console(stderr=True, quiet=request.quiet, highlight=False)
        interactive = (not request.quiet and not request.approve and not request.check and sys.stdin.isatty()
                       and sys.stderr.isatty())
        with contextlib.ExitStack() as stack:
            approval_dir = Path(tempfile.mkdtemp(prefix="synap-play-approvals-")) if interactive else None
            if approval_dir:
                stack.callback(shutil.rmtree, approval_dir, ignore_errors=True)
            title = "" if live.title_shown else request.title(record.id)
            progress = stack.enter_context(Progress(console, title, verbose=request.verbose, redact=live.redact_text,
                                                    started=live.began))
            with live.lock:
                live.progress = progress
            if approval_dir:
                desk = ApprovalDesk(approval_dir, progress, console)
                desk.start()
                stack.callback(desk.stop)
            stop.playbook_running = True
            try:
                outcome = run_playbook(
                    playbook=request.scenario.playbook, inventory=request.inventory,
                    extravars=request.playbook_vars(record.id, approval_dir), ident=record.id,
                    artifacts_to=record.folder / ARTIFACTS_DIR, redact_text=live.redact_text, check=request.check,
                    limit=request.limit, verbosity=request.verbose, event_handler=live.on_event,
                    cancel_callback=stop.cancel_playbook, envvars=plan_env, strategy=request.strategy)
            finally:
                stop.playbook_running = False
        if look is not None and not stop.requested:
            look.wait(timeout=2)
            record.first_look_checked(outdated=look.outdated())
        return outcome.status
