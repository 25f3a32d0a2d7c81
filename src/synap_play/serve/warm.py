"""Warm diagnosis: serve answers a scenario's look-ups itself, the moment an alert for it is queued.

A run's own first look (first_look.py) starts a Python process, imports the info modules and their libraries,
and reads the kept plan before its first answer. serve has done all of that before the alert arrives: at start it
imports the modules every mapped scenario's kept plan uses; at intake it runs the plan's look-ups in its own
threads and writes them into the incident's folder (first-look.json, which the record takes in), so the diagnosis is
on the record before the playbook starts, even while the run waits for a slot. The run is then told not to look
again (its playbook still keeps the plan for the next time, and still makes every decision from its own look-ups).
"""

from __future__ import annotations

import contextlib
import logging
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from synap_play import collection
from synap_play.first_look import FirstLook, plan_folder, read_plans
from synap_play.run_record import FirstLookNotes

collection.load()
from ansible_collections.synap.ops.plugins.module_utils.info_modules import info_module  # noqa: E402

log = logging.getLogger("synap_play.serve")
# Looks started at once: an alert storm mapping to every scenario at once needs five; more would only wait for the
# two cores the runs need too.
LOOKS_AT_ONCE = 5
# How long a run waits for serve's first look before it starts anyway (the look goes on beside it): the look takes
# about as long as the slowest look-up, well under this.
LOOK_HEAD_START = 5.0


class WarmLooks:
    def __init__(self, inventory: Path, limit: str | None, extravars: dict, redactor):
        self.inventory = inventory
        self.limit = limit
        self.extravars = extravars
        self.redactor = redactor
        self._pool = ThreadPoolExecutor(max_workers=LOOKS_AT_ONCE, thread_name_prefix="warm-look")

    def prepare(self, scenarios: list[str]) -> int:
        """Import the info modules the scenarios' kept plans use (the slow part of a first look); how many."""
        # psycopg first, alone: a package with circular imports imported by two threads at once can be found half
        # initialised.
        with contextlib.suppress(ImportError):
            import psycopg  # noqa: F401
        modules = set()
        for scenario in scenarios:
            with contextlib.suppress(OSError):
                for plan in read_plans(plan_folder(scenario, self.inventory, self.limit, self.extravars)):
                    modules.update(source.get("module") for source in plan["sources"].values())
        for module in sorted(m for m in modules if isinstance(m, str)):
            with contextlib.suppress(ImportError):
                info_module(module)
        return len(modules)

    def start(self, scenario: str, folder: Path) -> Future:
        """Begin the scenario's first look into the incident's folder. The future is done once the look is (or
        LOOK_HEAD_START has passed), and says whether there was a kept plan to look with: the run starts then, so
        that its Python and ansible-playbook do not take the two cores from the look, and the diagnosis is on the
        record before the playbook starts."""
        return self._pool.submit(self._look, scenario, folder)

    def _look(self, scenario: str, folder: Path) -> bool:
        try:
            plans = plan_folder(scenario, self.inventory, self.limit, self.extravars)
        except OSError as exc:
            log.warning("%s: no warm first look: %s", scenario, exc)
            return False
        notes = FirstLookNotes(folder, self.redactor)
        look = FirstLook(plans, lambda host, name, module, result: notes.answer(host, name, module, result),
                         on_done=lambda done: notes.done(seconds=done.seconds, plan_written_at=done.plan_written_at,
                                                         by="synap-play serve"))
        if not look.start():
            return False
        look.wait(timeout=LOOK_HEAD_START)
        return True

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
