"""synap-play validate: the typos Ansible only finds when an incident takes the branch that holds them.

ansible-lint and --syntax-check see a ``synap.ops.mitigate`` task as a mapping of anything: ``class: saf``,
``mode: terminat`` or an option ``idle_longer_tha`` fail only when that mitigation fires. This reads every
role's tasks (with line numbers) and checks each synap.ops task against what will run it: the action plugins'
own constants (OPTIONS, SOURCE_KEYS, CLASSES, CHECK_KEYS), the severity policy, and each module's argument spec.
It also checks the inventories' ``synap_*`` variables against ``roles/synap/meta/argument_specs.yml``, and the
triage rules (playbooks/triage-rules.yml).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from synap_play.validate.checker import Checker, Problem
from synap_play.validate.collection import Collection
from synap_play.validate.inventories import InventoryValidator
from synap_play.validate.roles import RoleValidator
from synap_play.validate.triage import check_triage_rules
from synap_play.validate.variables import VariableSpec


@dataclass
class Outcome:
    problems: list[Problem]
    roles: int
    tasks: int
    inventories: int

    @property
    def ok(self) -> bool:
        return not self.problems


def validate_project(roles_dir: Path | None = None, inventories: list[Path] | None = None) -> Outcome:
    """Check the roles under ``roles_dir`` (and the project beside it) and the inventories."""
    from synap_play.project import ProjectNotFound, collections_path, project_root

    try:
        project = project_root()
    except ProjectNotFound:
        project = None
    roles_dir = (roles_dir or (project / "roles" if project else Path("roles"))).resolve()
    root = roles_dir.parent

    def beside(*parts: str) -> Path:
        # A copy of the roles may bring its own playbooks and plugins; what it lacks comes from the project.
        here = root.joinpath(*parts)
        return here if here.exists() or project is None else project.joinpath(*parts)

    importable = None
    if project is not None:
        importable = collections_path(project)
        if str(importable) not in sys.path:
            sys.path.insert(0, str(importable))
    checker = Checker(root)
    collection = Collection(beside("plugins").parent, importable)
    variables = VariableSpec(roles_dir / "synap" / "meta" / "argument_specs.yml", checker)
    roles = RoleValidator(checker, collection, variables, roles_dir, beside("playbooks"))
    role_count = roles.validate()
    check_triage_rules(checker, beside("playbooks"), roles_dir, variables)
    if inventories is None:
        base = beside("inventory")
        inventories = sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
    inventory_validator = InventoryValidator(checker, variables)
    for inventory in inventories:
        inventory_validator.check(inventory)
    problems = sorted(set(checker.problems), key=lambda p: (p.file, p.line, p.message))
    return Outcome(problems, role_count, roles.task_count, len(inventories))
