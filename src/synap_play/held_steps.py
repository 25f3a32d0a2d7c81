"""The mitigations a run held back for a person (status "needs approval"), and what people decided about them.

A run at a severity whose policy does not allow a class of mitigation records the step with its plan and goes on.
Someone approves or declines it afterwards — `synap-play approve`, or `synap-play serve`'s API, which runs the
same command. A decision is a note in the incident's folder (serve's notes file, ``alerts.jsonl``): the record is
the run's own and stays as the run wrote it.
"""

from __future__ import annotations

from typing import Any

from synap_play import collection

collection.load()
from ansible_collections.synap.ops.plugins.plugin_utils.protocol import ACTION_STATUS, Decision  # noqa: E402

from synap_play.serve.notes import Event  # noqa: E402

NEEDS_APPROVAL = ACTION_STATUS[Decision.NEEDS_APPROVAL.value]
STEP_FIELDS = ("task", "host", "class", "why", "reason", "plan", "at")
EVERY_STEP = "all"  # what serve's API takes for "every step waiting" (the command line just leaves STEP out)


def held_back(record: dict[str, Any] | None) -> list[dict[str, Any]]:
    """Every step the run held back, numbered from 1 in the record's order (the number a person types).

    A step is a task on a host: the items of a looped task are approved together, their plans joined."""
    actions = (record or {}).get("actions")
    steps: dict[tuple[str, str], dict[str, Any]] = {}
    for action in actions if isinstance(actions, list) else []:
        if not isinstance(action, dict) or action.get("status") != NEEDS_APPROVAL:
            continue
        key = (str(action.get("task")), str(action.get("host")))
        if key in steps:
            steps[key]["plan"] = [*(steps[key]["plan"] or []), *(action.get("plan") or [])]
        else:
            steps[key] = {"step": len(steps) + 1, **{field: action.get(field) for field in STEP_FIELDS}}
    return list(steps.values())


def decisions(notes: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    """(task, host) -> the decision note about it: the latest approval or decline."""
    decided = {}
    for note in notes:
        if note.get("event") in (Event.APPROVED, Event.DECLINED):
            for step in note.get("steps") or []:
                if isinstance(step, dict):
                    decided[(str(step.get("task")), str(step.get("host")))] = note
    return decided


def pending(record: dict[str, Any] | None, notes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The held-back steps nobody has decided about yet."""
    decided = decisions(notes)
    return [step for step in held_back(record) if (str(step["task"]), str(step["host"])) not in decided]


def choose(steps: list[dict[str, Any]], wanted: str | None) -> list[dict[str, Any]]:
    """The steps a person named: all of them (None), one by its number, or by its task name (every host's)."""
    if wanted is None:
        return steps
    if wanted.isdigit():
        chosen = [step for step in steps if step["step"] == int(wanted)]
    else:
        chosen = [step for step in steps if step["task"] == wanted]
    if not chosen:
        listed = "; ".join(f"{step['step']}: {step['task']} on {step['host']}" for step in steps) or "none"
        raise LookupError(f"no step {wanted!r} waits for approval (waiting: {listed})")
    return chosen


def approved_steps(steps: list[dict[str, Any]]) -> list[dict[str, str]]:
    """How an approval run is told which steps it may carry out."""
    return [{"task": str(step["task"]), "host": str(step["host"])} for step in steps]
