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

import contextlib
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from synap_play import collection
from synap_play.project import project_root

collection.load()
from ansible_collections.synap.ops.plugins.module_utils.info_modules import info_module, run_in_process  # noqa: E402
from ansible_collections.synap.ops.plugins.plugin_utils.protocol import PLAN_FILE_SUFFIX  # noqa: E402

MAX_THREADS = 16

OnAnswer = Callable[[str, str, str, dict[str, Any]], None]  # host, look-up name, module, result


def cache_root() -> Path:
    """$SYNAP_PLAY_CACHE_DIR, else $XDG_CACHE_HOME/synap-play, else ~/.cache/synap-play."""
    explicit = os.environ.get("SYNAP_PLAY_CACHE_DIR")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "synap-play"


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
    """What the plans in ``folder`` ask for (not when they were written), or None when there is none."""
    plans = read_plans(folder)
    if not plans:
        return None
    wanted = [[plan.get("host"), plan.get("sources")] for plan in plans]
    return hashlib.sha256(json.dumps(wanted, sort_keys=True, default=str).encode()).hexdigest()


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


def gather(module: str, args: dict[str, Any]) -> dict[str, Any]:
    """One look-up, as the info module would answer it; a failure is a result too."""
    try:
        return run_in_process(module, args)
    except ImportError as exc:
        return {"failed": True, "msg": f"{module} cannot be loaded here: {exc}"}


@dataclass(frozen=True)
class LookUp:
    host: str
    name: str
    module: str
    args: dict[str, Any]


@dataclass
class FirstLook:
    """The look-ups of a plan folder, run in threads beside the playbook.

    Threads, not processes: most of a look-up's cost is importing its module's libraries (psycopg, ansible's
    module_utils), which threads of one process do once; a process per look-up, measured, was no faster here.
    """

    folder: Path
    on_answer: OnAnswer
    on_done: Callable[[FirstLook], None] | None = None
    started: float = field(default_factory=time.monotonic)
    answers: list[dict[str, Any]] = field(default_factory=list)
    digest: str | None = None
    plan_written_at: float | None = None
    seconds: float | None = None
    _thread: threading.Thread | None = None

    def start(self) -> bool:
        """Begin the look-ups; False when there is no plan yet (the playbook writes it on this run)."""
        plans = read_plans(self.folder)
        if not plans:
            return False
        self.digest = plan_digest(self.folder)
        self.plan_written_at = min(float(plan.get("written_at") or 0) for plan in plans)
        look_ups = [LookUp(plan.get("host") or "localhost", name, source["module"],
                           {**(source.get("args") or {}), **(source.get("first_look") or {})})
                    for plan in plans for name, source in plan["sources"].items()]
        self._thread = threading.Thread(target=self._run, args=(look_ups,), name="first-look", daemon=True)
        self._thread.start()
        return True

    def _run(self, look_ups: list[LookUp]) -> None:
        # The look-ups (and psycopg, ansible's module_utils) are imported here, one after the other, before the
        # threads: two threads importing one package with circular imports at once can find it half initialised
        # ("cannot import name ... from partially initialized module"). Imports hold the GIL anyway.
        for module in sorted({look_up.module for look_up in look_ups}):
            with contextlib.suppress(ImportError):  # gather() reports a module that cannot be loaded
                info_module(module)
        # From this one process, the same module with the same arguments is the same look-up: hosts of a fleet
        # that reach one database or one compose project share one answer.
        alike: dict[str, list[LookUp]] = {}
        for look_up in look_ups:
            alike.setdefault(json.dumps([look_up.module, look_up.args], sort_keys=True, default=str), []).append(look_up)

        def answer_all(group: list[LookUp]) -> None:
            result = gather(group[0].module, group[0].args)
            for look_up in group:
                self._answer(look_up, result)

        with ThreadPoolExecutor(max_workers=min(MAX_THREADS, len(alike)), thread_name_prefix="first-look") as pool:
            list(pool.map(answer_all, alike.values()))
        self._finish()

    def _answer(self, look_up: LookUp, result: dict[str, Any]) -> None:
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
