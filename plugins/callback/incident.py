# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The incident record, its report and the mitigator lock, kept by ansible-playbook itself.

Whoever starts a scenario playbook (synap-play, plain ansible-playbook, ansible-runner or AWX, the EDA
rulebook), the run is documented and guarded the same way.
"""

from __future__ import annotations

DOCUMENTATION = r"""
name: incident
type: notification
short_description: Keep the incident record, report and mitigator lock of a synap.ops scenario run
description:
  - For a scenario play (one given C(incident_scenario), or a playbook listed in the C(scenarios.yml) beside it),
    opens the incident record when the play starts, files every task result into it (phases come from the tasks'
    C(phase_<name>) tags), saves it as it changes (at once, or when a large record's last save is nine save
    times ago), and closes it with the verification's outcome and C(report.md) when the playbook ends, or as
    interrupted on SIGINT, SIGTERM or SIGHUP.
  - Outside check mode it takes the mitigator lock of the scenario and its target (the first targeted host's
    C(synap_database_url)) for the whole run; when another run holds it, the record says who and the play ends
    at once (the synap.ops.incident role's first task).
  - Plays that are not scenario plays are left alone.
requirements:
  - enable it in ansible.cfg (C(callbacks_enabled = synap.ops.incident)) or with C(ANSIBLE_CALLBACKS_ENABLED)
options:
  incidents_dir:
    description:
      - Where records go. The extra variable C(incident_dir) takes precedence; without either, an ansible-runner
        or AWX job keeps them in its artifacts folder, anything else in C(./incidents).
    type: path
    env:
      - name: SYNAP_PLAY_INCIDENTS_DIR
    ini:
      - section: synap_incident
        key: incidents_dir
"""

import atexit
import os
import signal

from ansible import context
from ansible.plugins.callback import CallbackBase
from ansible_collections.synap.ops.plugins.plugin_utils.incident_events import (
    FAILED,
    OK,
    SKIPPED,
    UNREACHABLE,
    EventTranslator,
    TaskEvent,
    phase_of,
)
from ansible_collections.synap.ops.plugins.plugin_utils.incident_run import ScenarioRun, scenario_of_play
from ansible_collections.synap.ops.plugins.plugin_utils.protocol import ExitCode

STOP_SIGNALS = {signal.SIGINT: ExitCode.INTERRUPTED, signal.SIGTERM: ExitCode.TERMINATED,
                signal.SIGHUP: ExitCode.HUNG_UP}


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "synap.ops.incident"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._run: ScenarioRun | None = None
        self._translator: EventTranslator | None = None
        self._previous_handlers: dict[int, object] = {}

    # -- the play ---------------------------------------------------------------------------------------------
    def v2_playbook_on_play_start(self, play):
        if self._run is not None:
            return  # one record per playbook run: its first scenario play
        scenario = scenario_of_play(play, context.CLIARGS)
        if scenario is None:
            return
        try:
            self._run = ScenarioRun.start(play, scenario, context.CLIARGS, self.get_option("incidents_dir"))
        except Exception as exc:  # the play's first task stops the run, pointing here
            self._display.error(f"synap.ops.incident: the incident record of {scenario.name} could not be opened: "
                                f"{exc.__class__.__name__}: {exc}")
            return
        self._translator = EventTranslator(self._run.record)
        self._watch_stop_signals()
        atexit.register(self._closed_at_exit)

    def v2_playbook_on_no_hosts_matched(self):
        if self._run is not None:
            self._run.close_no_hosts()

    def v2_playbook_on_task_start(self, task, is_conditional):
        if self._run is not None:
            self._run.task_started(task.get_name())

    def v2_playbook_on_handler_task_start(self, task):
        self.v2_playbook_on_task_start(task, False)

    def v2_playbook_on_stats(self, stats):
        if self._run is not None:
            failed = any(stats.failures.values()) or any(stats.dark.values())
            self._run.close(playbook_status="failed" if failed else "successful", rc=2 if failed else 0,
                            ran=bool(stats.processed))

    # -- task results -----------------------------------------------------------------------------------------
    def v2_runner_on_ok(self, result):
        self._observe(OK, result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._observe(FAILED, result, ignore_errors=ignore_errors)

    def v2_runner_on_skipped(self, result):
        self._observe(SKIPPED, result)

    def v2_runner_on_unreachable(self, result):
        self._observe(UNREACHABLE, result)

    def _observe(self, kind, result, ignore_errors=False):
        if self._run is None or not self._run.record.is_open:
            return
        task = result.task
        with self._run.changing:
            self._translator.observe(TaskEvent(
                kind=kind, task=task.get_name(), host=result.host.get_name(),
                action=task.resolved_action or task.action, result=dict(result.result), phase=phase_of(task.tags),
                ignore_errors=bool(ignore_errors),
            ))
            self._run.save()

    # -- stopping ---------------------------------------------------------------------------------------------
    def _watch_stop_signals(self):
        """Close the record as interrupted before ansible-playbook's own handlers end the run. A signal the
        caller chose to ignore (ansible-runner ignores SIGHUP) stays ignored."""
        for number in STOP_SIGNALS:
            if signal.getsignal(number) is not signal.SIG_IGN:
                self._previous_handlers[number] = signal.signal(number, self._on_stop_signal)

    def _on_stop_signal(self, signum, frame):
        if self._run is not None:
            self._run.close_interrupted(STOP_SIGNALS[signum], signal.Signals(signum).name)
        previous = self._previous_handlers.get(signum)
        if callable(previous):
            previous(signum, frame)
        else:  # the default action: end the process with this signal, as it would have without us
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

    def _closed_at_exit(self):
        if self._run is not None and self._run.record.is_open:
            self._run.close(playbook_status="failed", rc=None, ran=False,
                            reason=f"ansible-playbook ended before the play did (pid {os.getpid()})")
