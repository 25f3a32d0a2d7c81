"""Asking the operator: the severity gate (plugins/action/mitigate.py) writes a request file with the exact
plan; this desk, running beside the playbook, shows it, asks once, and writes the answer back."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import click

from synap_play import collection
from synap_play.progress import markup_safe

collection.load()
from ansible_collections.synap.ops.plugins.plugin_utils.protocol import (  # noqa: E402
    APPROVAL_REQUEST_SUFFIX,
    approval_paths,
    request_id_of,
)


class ApprovalDesk(threading.Thread):
    def __init__(self, folder: Path, progress, console):
        super().__init__(name="synap-play-approvals", daemon=True)
        self.folder = folder
        self.progress = progress
        self.console = console
        self.answered: set[str] = set()
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        while not self._stop_event.wait(0.1):
            for request_path in sorted(self.folder.glob("*" + APPROVAL_REQUEST_SUFFIX)):
                request_id = request_id_of(request_path.name)
                if request_id in self.answered:
                    continue
                self.answered.add(request_id)
                try:
                    request = json.loads(request_path.read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    continue
                approved = self._ask(request)
                answer = Path(approval_paths(str(self.folder), request_id)[1])
                answer.with_suffix(".tmp").write_text(json.dumps({"approved": approved}), encoding="utf-8")
                os.replace(answer.with_suffix(".tmp"), answer)

    def _ask(self, request: dict[str, Any]) -> bool:
        with self.progress.paused():
            # Everything in the request is free text from the playbook and its targets: shown, never obeyed.
            self.console.print(f"\n[bold yellow]Approval needed[/] — {markup_safe(request.get('task'))} on "
                               f"{markup_safe(request.get('host'))}")
            self.console.print(f"  class {markup_safe(request.get('class'))}, severity {markup_safe(request.get('severity'))}: "
                               f"{markup_safe(request.get('reason'))}")
            if request.get("why"):
                self.console.print(f"  why: {markup_safe(request['why'])}")
            self.console.print("  this will be done:")
            for line in request.get("plan") or []:
                self.console.print(f"    - {markup_safe(line)}")
            try:
                return click.confirm("  Run it?", default=False, err=True)
            except (click.Abort, EOFError):
                return False
