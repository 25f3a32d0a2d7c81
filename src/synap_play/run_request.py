"""What one incident run is asked to do: fixed before it starts, read by every part of the run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from synap_play import collection

collection.load()

from ansible_collections.synap.ops.plugins.plugin_utils.catalog import Scenario
from ansible_collections.synap.ops.plugins.plugin_utils.incident_record import iso
from ansible_collections.synap.ops.plugins.plugin_utils.protocol import RunVar


class FirstLookReading(Protocol):
    """What a caller reads from the first look (synap-play triage: its verdict)."""

    def begin(self) -> None:
        """The look-ups are under way: prepare what the reading needs while they wait on the network (work done
        earlier would compete for the CPU with the start of the look-ups)."""

    def __call__(self, look: Any) -> tuple[dict[str, Any], str] | None:
        """Fields for the record's first_look, and a line to show; None when it has nothing to add."""


@dataclass(frozen=True)
class RunRequest:
    scenario: Scenario
    severity: str
    inventory: Path
    inventory_label: str
    extravars: Mapping[str, Any]
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
    # The caller (synap-play serve, warm) has written the first look into the incident's folder already: this run
    # only lets the playbook keep the plan for the next one.
    first_look_done: bool = False
    strategy: str = "linear"  # or "mitogen" (cli.py has checked that it is installed)
    replay_of: str | None = None  # what a replayed run replays (replay.py): an incident id or a file
    show_outcome: bool = True  # print the summary (or the JSON record) at the end; a caller may print its own
    incident_id: str | None = None  # named by the caller before the run (synap-play serve); default a new one
    # What the caller reads from the first look's answers once they are all in (synap-play triage: its verdict).
    first_look_reading: FirstLookReading | None = None

    @property
    def quiet(self) -> bool:
        """--output json: stdout carries the record and nothing else, stderr nothing."""
        return self.output == "json"

    def title(self, incident_id: str) -> str:
        return (f"synap-play {self.scenario.name} · {self.severity} · inventory {self.inventory_label}"
                f"{' · check mode' if self.check else ''} · incident {incident_id}")

    def playbook_vars(self, incident_id: str, approval_dir: Path | None) -> dict[str, Any]:
        """The extra variables the playbook and its incident callback are given (protocol.RunVar)."""
        given = {
            RunVar.INCIDENT_ID: incident_id,
            RunVar.SCENARIO: self.scenario.name,
            RunVar.TITLE: self.scenario.title,
            RunVar.FOLLOW_UPS: list(self.scenario.resolution),
            RunVar.SEVERITY: self.severity,
            RunVar.APPROVE: self.approve,
            RunVar.OPERATOR: self.operator,
            RunVar.STARTED_AT: iso(self.started_at),
            RunVar.INVENTORY_LABEL: self.inventory_label,
            RunVar.INCIDENTS_DIR: str(self.incidents_dir.resolve()),
            RunVar.APPROVAL_DIR: str(approval_dir) if approval_dir else "",
            RunVar.LOCK_WAIT: self.lock_wait,
            RunVar.REPLAY_OF: self.replay_of,
        }
        return {**self.extravars, **{var.value: value for var, value in given.items() if value is not None}}
