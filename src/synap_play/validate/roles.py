"""Every role's task files: the synap_* variables their templates read, their synap.ops tasks, and the
synap role's defaults against the variables' spec."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from synap_play.validate.checker import Checker, did_you_mean
from synap_play.validate.collection import Collection
from synap_play.validate.scenarios import ScenarioRoles
from synap_play.validate.tasks import TaskChecker, iter_tasks
from synap_play.validate.variables import VariableSpec
from synap_play.validate.yamllines import is_literal, line_of, load_yaml, strings_in

# Task keywords whose value is a bare Jinja expression, not a string that may hold {{ }}.
EXPRESSION_KEYS = {"when", "until", "changed_when", "failed_when", "that"}
VARIABLE = re.compile(r"(?<![\w.'\"/-])synap_[a-z0-9_]+\b")
# The roles around every scenario (playbooks/scenario.yml and the incident role): their variables are always set.
SHARED_ROLES = ["synap", "incident", "notify"]


class RoleValidator:
    def __init__(self, checker: Checker, collection: Collection, variables: VariableSpec, roles_dir: Path,
                 playbooks_dir: Path):
        self.checker, self.collection, self.variables = checker, collection, variables
        self.roles_dir, self.playbooks_dir = roles_dir, playbooks_dir
        self.task_count = 0
        self.defined: set[str] = set()

    def validate(self) -> int:
        """Check every role; the number of roles."""
        scenarios = ScenarioRoles(self.checker, self.collection, self.roles_dir, self.playbooks_dir)
        roles = scenarios.all_roles()
        tasks = TaskChecker(self.checker, self.collection, self.roles_dir, scenarios.defaults_provided)
        self._collect_defined(roles)
        self._check_defaults()
        parsed = []
        for role in roles:
            for path in self._role_files(role):
                try:
                    content = load_yaml(path)
                except yaml.YAMLError as exc:
                    self.checker.report_invalid_yaml(path, exc)
                    continue
                for task in iter_tasks(content):
                    self._collect_task_defined(task)
                    parsed.append((path, task))
        # Only now is every variable a task may read known.
        for path, task in parsed:
            self.task_count += 1
            self._check_references(path, task)
            tasks.check(path, task)
        return len(roles)

    def _role_files(self, role: str) -> list[Path]:
        folder = self.roles_dir / role
        return sorted(p for sub in ("tasks", "handlers") for p in (folder / sub).rglob("*")
                      if p.suffix in (".yml", ".yaml") and p.is_file())

    def _collect_defined(self, roles: list[str]) -> None:
        """Variables declared, or set in any role's defaults and vars, so a template may read them."""
        self.defined |= set(self.variables.declared)
        for role in roles + SHARED_ROLES:
            for sub in ("defaults", "vars"):
                for path in (self.roles_dir / role / sub).glob("*.y*ml"):
                    try:
                        self.defined |= set(yaml.safe_load(path.read_text(encoding="utf-8")) or {})
                    except (OSError, yaml.YAMLError, TypeError):
                        continue

    def _collect_task_defined(self, task: dict) -> None:
        """Variables a task sets: register, set_fact, vars:."""
        if isinstance(task.get("register"), str):
            self.defined.add(task["register"])
        for key in ("ansible.builtin.set_fact", "set_fact", "vars"):
            if isinstance(task.get(key), dict):
                self.defined |= set(task[key])

    def _check_defaults(self) -> None:
        """Every default of the synap role is declared, with a value of its declared type and range."""
        path = self.roles_dir / "synap" / "defaults" / "main.yml"
        try:
            defaults = load_yaml(path)
        except (OSError, yaml.YAMLError):
            return
        if not self.variables.declared or not isinstance(defaults, dict):
            return
        spec_path, root = self.variables.path, self.roles_dir.parent
        shown = spec_path.relative_to(root) if spec_path.is_relative_to(root) else spec_path
        for name, value in defaults.items():
            if name not in self.variables.declared:
                self.checker.report(path, line_of(defaults, name), f"{name} has no entry in {shown}")
            else:
                self.variables.check(path, line_of(defaults, name), name, value)

    def _check_references(self, path: Path, task: dict) -> None:
        """A synap_* variable a template reads must be declared or set somewhere: else it is a typo."""
        for key, value in task.items():
            expression = key in EXPRESSION_KEYS
            for text, line in strings_in(value, task, key):
                if not expression and is_literal(text):
                    continue
                for found in VARIABLE.finditer(text):
                    name = found.group(0)
                    if name not in self.defined and name not in self.collection.modules:
                        self.checker.report(path, line, f"unknown variable {name}", did_you_mean(name, sorted(self.defined)))
