"""How a run's end is shown: the JSON record on stdout, or a summary on the operator's terminal."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from synap_play import collection

collection.load()
from ansible_collections.synap.ops.plugins.plugin_utils.incident_outcome import check_state  # noqa: E402
from ansible_collections.synap.ops.plugins.plugin_utils.protocol import (  # noqa: E402
    PENDING_STATUSES,
    ExitCode,
    Status,
)

CHECK_MARKS = {"ok": "[green]✓[/]", "failed": "[red]✗[/]", "unknown": "[yellow]?[/]"}


def show_outcome(record: dict[str, Any], *, output: str, incidents_dir: Path) -> None:
    if output == "json":
        print(json.dumps(record, indent=2))
    elif record["status"] == Status.LOCKED_OUT:
        # Nothing ran: the one line that says who holds the lock (the record's note) is the whole story.
        refusal = next((e["event"] for e in reversed(record["timeline"]) if e["event"].startswith("another ")),
                       "another run holds the mitigator lock")
        print(f"synap-play: {refusal}", file=sys.stderr)
    else:
        summary(record, incidents_dir)


def summary(record: dict[str, Any], incidents_dir: Path) -> None:
    from rich.console import Console

    from synap_play.progress import markup_safe  # free text: no control characters, brackets not markup

    console = Console(stderr=True, highlight=False)
    code = record["exit_code"]
    style = {0: "green", 3: "yellow", 6: "yellow"}.get(code, "red")
    label = ExitCode(code).label if code in {known.value for known in ExitCode} else ""
    console.print(f"[bold {style}]{record['status']}[/] — exit {code} ({label}), {len(record['findings'])} findings, "
                  f"{len(record['actions'])} actions, escalation level {record['escalation']['level']} "
                  f"({record['escalation']['contact']})")
    for action in record["actions"]:
        if action["status"] in PENDING_STATUSES and action["plan"]:
            console.print(f"  [yellow]{action['status']}[/]: {markup_safe(action['task'])} "
                          f"({markup_safe(action['class'])})")
            for line in action["plan"]:
                console.print(f"    - {markup_safe(line)}")
    verification = record.get("verification")
    for check in (verification or {}).get("checks") or []:
        state = check_state(check)
        console.print(f"  {CHECK_MARKS[state]} {markup_safe(check['name'])}"
                      + (" " + markup_safe(f"[{check['host']}]")
                         if check.get("host") and len(record.get("hosts") or {}) > 1 else "")
                      + (f" — unknown: {markup_safe(check.get('unknown_because') or 'not measured')}"
                         if state == "unknown" else ""))
    for error in record["errors"]:
        console.print(f"  [red]error[/]: {markup_safe(error.get('task') or 'run')}: {markup_safe(error['msg'])}")
    console.print(f"record: {os.path.relpath(Path(incidents_dir) / record['id'])}/incident.json and report.md")
