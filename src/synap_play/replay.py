"""synap-play replay: a scenario's decisions, re-run from recorded look-ups, with no target contacted.

A recording is either an incident record (``incident.json``: the answers its Assess and Resolve look-ups gave) or
a YAML file of cases written by hand::

    scenario: worker-queue-backup
    severity: P1                 # optional: the catalog's otherwise
    cases:
      html-inngest-refused-db:   # each case becomes a host of one playbook run
        sources:                 # look-up name -> the info module's result (what the Assess task's diagnose returns)
          inngest: {reachable: false, failure: not_understood, msg: "..."}
        after: {}                # optional: the Resolve task's answers; by default the Assess ones (nothing changed)

The playbook runs in check mode with the recording as the host variable RunVar.REPLAY: the diagnose action
answers from it and the gate plans from each mitigation's arguments (plugins/plugin_utils/replay.py). Every case is a
host of one run, so a file of fifty cases costs one playbook start.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from synap_play import collection

collection.load()
from ansible_collections.synap.ops.plugins.plugin_utils.protocol import PHASES, RunVar  # noqa: E402

_CASE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


class ReplayError(ValueError):
    """A recording that cannot be replayed; the message says why."""


@dataclass
class Recording:
    scenario: str
    severity: str | None
    cases: dict[str, dict[str, Any]]  # case (host) name -> {sources, after}
    source: str  # where it came from, for the record
    replay_of: str | None = None  # the incident id, when replaying an incident
    expectations: dict[str, dict[str, Any]] = field(default_factory=dict)


def load_recording(path: Path) -> Recording:
    """An incident.json or a YAML file of cases."""
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ReplayError(f"{path} cannot be read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ReplayError(f"{path} is not valid YAML or JSON{where}") from exc
    if not isinstance(loaded, dict):
        raise ReplayError(f"{path} must hold a mapping: an incident record or {{scenario, cases}}")
    if "findings" in loaded and "id" in loaded:
        return from_incident(loaded, str(path))
    return from_cases(loaded, str(path))


def from_cases(data: dict[str, Any], source: str) -> Recording:
    scenario = data.get("scenario")
    cases = data.get("cases")
    if not isinstance(scenario, str) or not scenario:
        raise ReplayError(f"{source}: give scenario, the scenario whose playbook replays the cases")
    if not isinstance(cases, dict) or not cases:
        raise ReplayError(f"{source}: give cases, a mapping of case names to {{sources, after}}")
    recorded, expectations = {}, {}
    for name, case in cases.items():
        if not isinstance(name, str) or not _CASE_NAME.match(name):
            raise ReplayError(f"{source}: case name {name!r} must be letters, digits, '.', '_' or '-' (it becomes a host)")
        if not isinstance(case, dict) or not isinstance(case.get("sources"), dict):
            raise ReplayError(f"{source}: case {name} needs sources, a mapping of look-up names to results")
        unknown = set(case) - {"sources", "after", "expect", "description"}
        if unknown:
            raise ReplayError(f"{source}: case {name}: unknown key(s) {', '.join(sorted(unknown))}; "
                              "use sources, after, expect, description")
        for part in ("sources", "after"):
            for look_up, answer in (case.get(part) or {}).items():
                if not isinstance(answer, dict):
                    raise ReplayError(f"{source}: case {name}: {part}.{look_up} must be a mapping (the module's result)")
        recorded[name] = {"sources": case["sources"], "after": case.get("after") or {}}
        if case.get("expect"):
            expectations[name] = case["expect"]
    severity = data.get("severity")
    return Recording(scenario=scenario, severity=str(severity) if severity else None, cases=recorded, source=source,
                     expectations=expectations)


def from_incident(record: dict[str, Any], source: str) -> Recording:
    """The answers an incident's look-ups gave, per host: Assess (and Investigate) ones as sources, Resolve ones as
    after. A look-up that failed outright is replayed as unread."""
    cases: dict[str, dict[str, Any]] = {}

    def case(host: str) -> dict[str, Any]:
        return cases.setdefault(_host_name(host), {"sources": {}, "after": {}})

    for finding in record.get("findings") or []:
        look_up = finding.get("look_up")
        if not look_up:
            continue
        answer = dict(finding.get("details") or {}, msg=finding.get("summary") or "")
        part = "after" if finding.get("phase") == "Resolve" else "sources"
        case(finding.get("host") or "replay")[part].setdefault(look_up, answer)
    for error in record.get("errors") or []:
        task, message = error.get("task") or "", error.get("msg") or ""
        look_up, sep, text = message.partition(": ")
        if sep and _phase(task) in ("Assess", "Investigate", "Resolve") and _CASE_NAME.match(look_up):
            part = "after" if _phase(task) == "Resolve" else "sources"
            case(error.get("host") or "replay")[part].setdefault(
                look_up, {"reachable": False, "failure": "error", "msg": text})
    if not cases:
        raise ReplayError(f"{source}: incident {record.get('id')} recorded no look-up answers to replay "
                          "(it ended before its Assess step)")
    return Recording(scenario=record.get("scenario") or "", severity=record.get("severity"), cases=cases,
                     source=source, replay_of=record.get("id"))


def _phase(task: str) -> str | None:
    prefix = task.split("|", 1)[0].strip().capitalize() if "|" in task else None
    return prefix if prefix in PHASES else None


def _host_name(host: str) -> str:
    return host if _CASE_NAME.match(host) else re.sub(r"[^A-Za-z0-9_.-]", "-", host)[:63] or "replay"


def replay_inventory(recording: Recording, base: Path, folder: Path) -> Path:
    """An inventory whose hosts are the recording's cases, each on the local connection with its recording, and
    whose group variables are those of ``base`` (thresholds and names as the real inventory sets them)."""
    base = base.resolve()
    base_dir = base if base.is_dir() else base.parent
    inventory = folder / "inventory"
    inventory.mkdir(parents=True)
    for name in ("group_vars",):
        if (base_dir / name).is_dir():
            (inventory / name).symlink_to(base_dir / name)
    hosts = {name: {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
                    RunVar.REPLAY.value: case}
             for name, case in recording.cases.items()}
    # The scenario play targets the group synap (synap_hosts); replayed cases never reach a real host.
    document = {"all": {"children": {"synap": {"hosts": hosts}}, "vars": {"synap_notify_channels": []}}}
    (inventory / "hosts.json").write_text(json.dumps(document, indent=1, default=str), encoding="utf-8")
    return inventory


def private_folder() -> Path:
    return Path(tempfile.mkdtemp(prefix="synap-play-replay-"))


def case_results(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per case: the mitigations that would run (planned, in task order), the verdict, and the unknown checks."""
    results: dict[str, dict[str, Any]] = {}
    for host, outcome in (record.get("hosts") or {}).items():
        verification = (record.get("verifications") or {}).get(host) or {}
        results[host] = {
            "planned": [a["task"] for a in record["actions"] if a["host"] == host and a["status"] == "planned"],
            "plans": {a["task"]: a["plan"] for a in record["actions"] if a["host"] == host and a["status"] == "planned"},
            "status": outcome["status"], "exit_code": outcome["exit_code"],
            "verification": verification.get("state"),
            "failed_checks": [c["name"] for c in verification.get("checks", []) if c.get("state") == "failed"],
            "unknown_checks": [c["name"] for c in verification.get("checks", []) if c.get("state") == "unknown"],
        }
    for error in record.get("errors") or []:
        results.setdefault(error.get("host") or "run", {}).setdefault("errors", []).append(error["msg"])
    return results


def unmet_expectations(expect: dict[str, Any], result: dict[str, Any]) -> list[str]:
    """What a case's ``expect`` (planned, status, exit_code, unknown_checks, failed_checks) says that did not happen."""
    problems = []
    for key, wanted in expect.items():
        got = result.get(key)
        if key in ("planned", "unknown_checks", "failed_checks"):
            got = [_task_label(t) for t in got or []]
            wanted = [_task_label(t) for t in wanted or []]
        if got != wanted:
            problems.append(f"{key}: expected {wanted!r}, got {got!r}")
    return problems


def _task_label(task: str) -> str:
    """'Mitigate | Restart the worker service (workers stuck)' and the bare 'Restart the worker service ...' alike."""
    return task.split("|", 1)[1].strip() if "|" in task else task.strip()
