# Copyright: Synap operations
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The contract between the synap.ops collection and whatever runs its playbooks (synap-play, AWX, EDA).

Every name both sides use is defined here and nowhere else: the extra variables a run is given, the
environment variables, the layout of the plan, approval and incident folders, the gate's decisions, the
record's labels and the exit codes. A change to any of them is a change of PROTOCOL_VERSION.
"""

from __future__ import annotations

import enum
import os

PROTOCOL_VERSION = 1


# -- extra variables a run is given (all optional: the playbook and the callback have defaults) --------------
class RunVar(enum.StrEnum):
    INCIDENT_ID = "incident_id"
    SCENARIO = "incident_scenario"
    TITLE = "incident_title"  # default: the catalog beside the playbook (scenarios.yml)
    FOLLOW_UPS = "incident_follow_ups"  # the runbook's Resolution list, carried into the report
    SEVERITY = "incident_severity"
    APPROVE = "incident_approve"
    OPERATOR = "incident_operator"
    STARTED_AT = "incident_started_at"
    INVENTORY_LABEL = "incident_inventory"  # how the record names the inventory ("lab", "staging")
    INCIDENTS_DIR = "incident_dir"  # where records go; default ./incidents, or AWX's job artifacts
    APPROVAL_DIR = "incident_approval_dir"  # set only when someone can answer (synap-play on a terminal)
    APPROVAL_TIMEOUT = "incident_approval_timeout"
    LOCK_WAIT = "incident_lock_wait"  # seconds to wait for another mitigator before giving up
    ALERTS = "incident_alerts"  # the alerts that started the run (alert intake)
    REPLAY = "incident_replay"  # a replay's recorded look-ups (replay.py): nothing is asked of the targets
    REPLAY_OF = "incident_replay_of"  # the incident id or file a replay replays
    # An approval run (synap-play approve): the incident whose held-back steps it carries out, and those steps
    # ({task, host}); the gate plans each of them again against the live system before running it.
    APPROVAL_OF = "incident_approval_of"
    APPROVED_STEPS = "incident_approved_steps"
    # Set by the incident callback for the play (never by a caller): the record is open, and whether the
    # mitigator lock was refused.
    RECORD = "incident_record"


# -- incident severities, most severe first: P0 critical outage ... P3 cosmetic ---------------------------------
SEVERITIES = ("P0", "P1", "P2", "P3")


# -- environment variables --------------------------------------------------------------------------------
PLAN_DIR_ENV = "SYNAP_PLAY_PLAN_DIR"  # the diagnose action keeps the scenario's look-up plan here
LOCK_DIR_ENV = "SYNAP_PLAY_LOCK_DIR"  # the mitigator lock's file layer (default: <tmp>/synap-play-locks)
# Where records go when the run does not say: $SYNAP_PLAY_INCIDENTS_DIR, the incident callback's own option
# (plugins/callback/incident.py, incidents_dir), which Ansible's configuration reads.
INCIDENTS_DIR_ENV = "SYNAP_PLAY_INCIDENTS_DIR"
JOB_ARTIFACTS_ENV = "AWX_ISOLATED_DATA_DIR"  # set by ansible-runner (and so AWX) for a job: its artifacts folder
DEFAULT_INCIDENTS_DIR = "incidents"


# -- folders and files -----------------------------------------------------------------------------------
CATALOG_FILE = "scenarios.yml"  # beside the scenario playbooks
RECORD_FILE = "incident.json"
REPORT_FILE = "report.md"
POSTMORTEM_FILE = "postmortem.md"
FIRST_LOOK_FILE = "first-look.json"  # what the CLI's first look found, merged into the record
PAGERDUTY_STATE_FILE = ".pagerduty-follow-ups.json"  # beside the record: what the gate sent PagerDuty in the run
ARTIFACTS_DIR = "artifacts"
PLAN_FILE_SUFFIX = ".json"  # the plan folder holds one plan a host: <inventory hostname>.json (plan_file())
# Beside the plans of a triage: the settings its rules read, so that the next triage's first look can judge at once.
TRIAGE_SETTINGS_FILE = ".triage-settings"
APPROVAL_REQUEST_SUFFIX = ".request.json"
APPROVAL_ANSWER_SUFFIX = ".answer.json"


def approval_paths(folder: str, request_id: str) -> tuple[str, str]:
    """The request file the gate writes and the answer file it waits for."""
    return (os.path.join(folder, request_id + APPROVAL_REQUEST_SUFFIX),
            os.path.join(folder, request_id + APPROVAL_ANSWER_SUFFIX))


def request_id_of(request_file_name: str) -> str:
    return request_file_name[: -len(APPROVAL_REQUEST_SUFFIX)]


def plan_file(folder: str, host: str) -> str:
    """The file in the plan folder holding the look-up plan the diagnose action kept for ``host``."""
    return os.path.join(folder, host + PLAN_FILE_SUFFIX)


# -- the severity gate (synap.ops.mitigate) -------------------------------------------------------------
class Decision(enum.StrEnum):
    RUN = "run"
    ASK = "ask"
    NEEDS_APPROVAL = "needs_approval"
    DECLINED = "declined"
    PLANNED = "planned"
    NOOP = "noop"
    FAILED = "failed"


# How the record and the messages name each decision's outcome (keyed by the decision's text).
ACTION_STATUS = {
    Decision.RUN.value: "done",
    Decision.NOOP.value: "nothing to do",
    Decision.PLANNED.value: "planned",
    Decision.NEEDS_APPROVAL.value: "needs approval",
    Decision.DECLINED.value: "declined",
    Decision.FAILED.value: "failed",
}
NOT_NEEDED = "not needed"  # a mitigation whose condition was false
# Mitigations that were wanted but did not run.
PENDING_STATUSES = (ACTION_STATUS["needs_approval"], ACTION_STATUS["declined"], ACTION_STATUS["planned"])

# The runbook's process, in order.
PHASES = ("Acknowledge", "Assess", "Communicate", "Mitigate", "Investigate", "Resolve", "Document")
PHASE_TAG_PREFIX = "phase_"  # a scenario task carries its phase as a tag: phase_assess, phase_mitigate, ...


# -- outcomes ----------------------------------------------------------------------------------------------
class ExitCode(enum.IntEnum):
    """Every exit code of a run: the record's exit_code, synap-play's status, the README's table."""

    OK = 0
    USAGE = 2
    NEEDS_HUMAN = 3
    FAILED = 4
    LOCKED = 5
    UNVERIFIED = 6
    INTERRUPTED = 130
    TERMINATED = 143
    HUNG_UP = 129

    @property
    def label(self) -> str:
        return _EXIT_TEXT[self][0]

    @property
    def meaning(self) -> str:
        return _EXIT_TEXT[self][1]


_EXIT_TEXT = {
    ExitCode.OK: ("ok", "healthy, or resolved and verified"),
    ExitCode.USAGE: ("usage error", "usage error: unknown scenario, bad option, missing or broken inventory, "
                                    "--limit matching nothing"),
    ExitCode.NEEDS_HUMAN: ("needs a human", "a problem was found that the run did not or may not mitigate: a human "
                                            "is needed"),
    ExitCode.FAILED: ("playbook failed", "the playbook itself failed (task error, unreachable host)"),
    ExitCode.LOCKED: ("another mitigator", "another run is mitigating this scenario on this target (the message "
                                           "names it); nothing was changed"),
    ExitCode.UNVERIFIED: ("could not verify", "could not verify: a source could not be read (the summary names it), "
                                              "so the run cannot say the problem is gone, or was never there"),
    ExitCode.INTERRUPTED: ("interrupted", "interrupted (Ctrl-C); the incident record is still written"),
    ExitCode.TERMINATED: ("terminated", "stopped by SIGTERM (systemd, docker stop, CI or AWX cancelling); the "
                                        "playbook's processes are killed before the lock is released, and the "
                                        "record is written"),
    ExitCode.HUNG_UP: ("hung up", "stopped by SIGHUP (the terminal went away); as for 143"),
}


class Status(enum.StrEnum):
    """The record's status."""

    RUNNING = "running"
    RESOLVED = "resolved"
    HEALTHY = "healthy"
    COMPLETED = "completed"
    NEEDS_APPROVAL = "needs approval"
    DIAGNOSED = "diagnosed"
    UNRESOLVED = "unresolved"
    UNVERIFIED = "could not verify"
    FAILED = "failed"
    USAGE_ERROR = "usage error"
    LOCKED_OUT = "locked out"
    INTERRUPTED = "interrupted"


# An incident in any other state still needs someone: it stays open and keeps climbing the ladder. A run refused
# for bad input (unknown host pattern, broken inventory) is closed: nothing was looked at, nobody is paged by it.
CLOSED_STATUSES = (Status.RESOLVED.value, Status.HEALTHY.value, Status.COMPLETED.value, Status.USAGE_ERROR.value)
RECORD_SCHEMA_VERSION = 2  # 2: written by the collection's callback; first_look timings left the record
