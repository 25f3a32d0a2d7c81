"""The first look: a scenario's diagnostic look-ups, answered before ansible-playbook is up.

ansible-playbook needs about a second to start and reach its first task; the runbook's shell commands answer in a
fifth of that. So each scenario's Assess task (``synap.ops.diagnose``) keeps its resolved look-ups as a plan for
a host on the local connection, and the next run of the scenario runs the same info modules' ``gather()`` in
threads of synap-play's own process, printing and recording each answer as it lands, while the playbook starts
beside it. The playbook still makes its own diagnosis a moment later, and every decision to change something
rests on that one: the first look only shows sooner, read-only, what the playbook is about to find.

A plan is used only while the scenario, the limit, the user's extra variables, the inventory's files and the
collection's roles and playbooks are the ones it was written with (its folder is named by their digest). Values
the inventory takes from elsewhere (environment lookups, vault) are not in that digest: after the run the plan the
playbook resolved this time is compared with the one the first look read, and the record says when they differ.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synap_play import collection
from synap_play.first_look_ssh import SshHost, look_up_over_ssh
from synap_play.project import cache_root, project_root

collection.load()
from ansible_collections.synap.ops.plugins.module_utils.info_modules import MAX_THREADS, look_up_all  # noqa: E402
from ansible_collections.synap.ops.plugins.plugin_utils.protocol import PLAN_FILE_SUFFIX  # noqa: E402

OnAnswer = Callable[[str, str, str, dict[str, Any]], None]  # host, look-up name, module, result


def plan_folder(scenario: str, inventory: Path, limit: str | None, extravars: dict[str, Any]) -> Path:
    """Where the plan for this scenario, inventory, limit and extra variables is kept."""
    inventory = inventory.resolve()
    digest = hashlib.sha256()
    own_vars = {k: v for k, v in extravars.items() if not k.startswith("incident_")}  # per-run bookkeeping
    digest.update(json.dumps([scenario, str(inventory), limit, own_vars], sort_keys=True,
                             default=str).encode())
    root = project_root()
    inventory_files = sorted(inventory.rglob("*")) if inventory.is_dir() else [inventory]
    for path in [*inventory_files, *sorted((root / "roles").rglob("*")), *sorted((root / "playbooks").rglob("*"))]:
        if path.is_file():
            digest.update(str(path).encode())
            digest.update(path.read_bytes())
    return cache_root() / "plans" / digest.hexdigest()[:32]


def plan_digest(folder: Path) -> str | None:
    """What the plans in ``folder`` ask for and where (not when they were written, nor under which of a machine's
    names), or None when there is none.

    Of a machine's names only the one that asked keeps a plan (the others took its answer), and which one asks
    first varies from run to run: a plan kept under another alias asks the same look-ups in the same place, and
    is no reason to call the first look outdated."""
    plans = read_plans(folder)
    if not plans:
        return None
    wanted = sorted({json.dumps([plan.get("ssh"), plan.get("sources")], sort_keys=True, default=str) for plan in plans})
    return hashlib.sha256(json.dumps(wanted).encode()).hexdigest()


def read_plans(folder: Path) -> list[dict[str, Any]]:
    plans = []
    for path in sorted(folder.glob("*" + PLAN_FILE_SUFFIX)) if folder.is_dir() else []:
        try:
            plan = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # a plan that cannot be read is no plan; the playbook writes it again
        if isinstance(plan, dict) and isinstance(plan.get("sources"), dict):
            plans.append(plan)
    return plans


@dataclass(frozen=True)
class LookUp:
    host: str
    name: str
    module: str
    args: dict[str, Any]
    over_ssh: SshHost | None = None  # None: answered in this process


def _over_ssh(plan: dict[str, Any]) -> SshHost | None:
    ssh = plan.get("ssh")
    if not isinstance(ssh, dict):
        return None
    return SshHost(tuple(str(part) for part in ssh.get("command") or ()), str(ssh.get("python") or "python3"))


@dataclass
class FirstLook:
    """The look-ups of a plan folder, answered beside the playbook: in threads of this process for hosts on the
    local connection (a process per look-up, measured, was no faster), in one SSH session per host reached over
    SSH (first_look_ssh)."""

    folder: Path
    on_answer: OnAnswer
    on_done: Callable[[FirstLook], None] | None = None
    started: float = field(default_factory=time.monotonic)
    answers: list[dict[str, Any]] = field(default_factory=list)
    digest: str | None = None
    plan_written_at: float | None = None
    seconds: float | None = None
    _thread: threading.Thread | None = None
    _answering: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> bool:
        """Begin the look-ups; False when there is no plan yet (the playbook writes it on this run)."""
        plans = read_plans(self.folder)
        if not plans:
            return False
        self.digest = plan_digest(self.folder)
        self.plan_written_at = min(float(plan.get("written_at") or 0) for plan in plans)
        look_ups = [LookUp(plan.get("host") or "localhost", name, source["module"],
                           {**(source.get("args") or {}), **(source.get("first_look") or {})}, _over_ssh(plan))
                    for plan in plans for name, source in plan["sources"].items()]
        self._thread = threading.Thread(target=self._run, args=(look_ups,), name="first-look", daemon=True)
        self._thread.start()
        return True

    def _run(self, look_ups: list[LookUp]) -> None:
        # Where the look-ups are answered: here, or on a host over SSH. From one place, the same module with the same
        # arguments is the same look-up: hosts of a fleet that reach one database, or are one SSH host under
        # several names, share one answer.
        places: dict[SshHost | None, dict[str, list[LookUp]]] = {}
        for look_up in look_ups:
            alike = places.setdefault(look_up.over_ssh, {})
            alike.setdefault(json.dumps([look_up.module, look_up.args], sort_keys=True, default=str), []).append(look_up)

        def answer_at(place: SshHost | None, groups: list[list[LookUp]]) -> None:
            calls = [(group[0].module, group[0].args) for group in groups]

            def on_answer(index: int, result: dict[str, Any]) -> None:
                for look_up in groups[index]:
                    self._answer(look_up, result)

            if place is None:
                look_up_all(calls, on_answer)
            else:
                look_up_over_ssh(place, calls, on_answer)

        with ThreadPoolExecutor(max_workers=min(MAX_THREADS, len(places)), thread_name_prefix="first-look") as pool:
            list(pool.map(lambda item: answer_at(*item), [(place, list(alike.values()))
                                                         for place, alike in places.items()]))
        self._finish()

    def _answer(self, look_up: LookUp, result: dict[str, Any]) -> None:
        with self._answering:  # answers land from the threads of several places
            self._answer_one(look_up, result)

    def _answer_one(self, look_up: LookUp, result: dict[str, Any]) -> None:
        self.answers.append({"host": look_up.host, "look_up": look_up.name, "module": look_up.module,
                             "result": result, "seconds": round(time.monotonic() - self.started, 3)})
        self.on_answer(look_up.host, look_up.name, look_up.module, result)

    def _finish(self) -> None:
        self.seconds = round(time.monotonic() - self.started, 3)
        if self.on_done:
            self.on_done(self)

    def wait(self, timeout: float | None = None) -> bool:
        """True once every look-up has answered."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.seconds is not None

    def outdated(self) -> bool:
        """After the run: did the playbook resolve other look-ups than the plan the first look read?"""
        return self.digest is not None and plan_digest(self.folder) not in (None, self.digest)
