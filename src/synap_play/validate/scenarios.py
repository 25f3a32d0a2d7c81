"""The roles the catalog's scenario playbooks load, found by following their imports, and the
module_defaults their plays set (an option a default provides is not missing from a task)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from synap_play.validate.checker import Checker, did_you_mean
from synap_play.validate.collection import NAMESPACE, Collection
from synap_play.validate.tasks import INCLUDE_ROLE, iter_tasks
from synap_play.validate.yamllines import line_of, load_yaml

IMPORT_PLAYBOOK = {"import_playbook", "ansible.builtin.import_playbook"}
SIMPLE_TEMPLATE = re.compile(r"\{\{\s*(\w+)\s*(?:\|\s*default\(\s*['\"]([^'\"]*)['\"]\s*\)\s*)?\}\}")


def _render(name: Any, variables: dict) -> str | None:
    """A role name with its simple {{ var }} / {{ var | default('x') }} templates filled in; None if it cannot be."""
    if not isinstance(name, str):
        return None

    def fill(match):
        value = variables.get(match.group(1), match.group(2))
        if value is None:
            raise KeyError(match.group(1))
        return str(value)

    try:
        rendered = SIMPLE_TEMPLATE.sub(fill, name)
    except KeyError:
        return None
    return None if "{{" in rendered or "{%" in rendered else rendered


class ScenarioRoles:
    def __init__(self, checker: Checker, collection: Collection, roles_dir: Path, playbooks_dir: Path):
        self.checker, self.collection = checker, collection
        self.roles_dir, self.playbooks_dir = roles_dir, playbooks_dir
        self.defaults_provided: dict[str, set[str]] = {}

    def all_roles(self) -> list[str]:
        """The scenarios' roles first, then every other role with tasks."""
        named = self.from_catalog()
        others = sorted(p.name for p in self.roles_dir.iterdir() if (p / "tasks").is_dir()) \
            if self.roles_dir.is_dir() else []
        return named + [r for r in others if r not in named]

    def from_catalog(self) -> list[str]:
        catalog = self.playbooks_dir / "scenarios.yml"
        try:
            document = load_yaml(catalog)
        except FileNotFoundError:
            return []
        except yaml.YAMLError as exc:
            self.checker.report_invalid_yaml(catalog, exc)
            return []
        roles: list[str] = []
        entries = (document or {}).get("scenarios") if isinstance(document, dict) else None
        for index, entry in enumerate(entries or []):
            if not isinstance(entry, dict) or not entry.get("playbook"):
                continue
            playbook = self.playbooks_dir / str(entry["playbook"])
            if not playbook.is_file():
                self.checker.report(catalog, line_of(entry, "playbook", line_of(entries, index)),
                                    f"scenario {entry.get('name')!r}: no playbook {entry['playbook']}",
                                    did_you_mean(entry["playbook"], [p.name for p in self.playbooks_dir.glob("*.yml")]))
                continue
            roles.extend(r for r in self._playbook_roles(playbook, {}, set()) if r not in roles)
        return roles

    def _playbook_roles(self, path: Path, variables: dict, seen: set) -> list[str]:
        key = (path.resolve(), tuple(sorted(variables.items(), key=str)))
        if key in seen:
            return []
        seen.add(key)
        try:
            plays = load_yaml(path)
        except (OSError, yaml.YAMLError):
            return []  # --syntax-check reports a broken playbook
        found: list[str] = []
        for play in plays if isinstance(plays, list) else []:
            if not isinstance(play, dict):
                continue
            imported = next((play[k] for k in IMPORT_PLAYBOOK if k in play), None)
            if isinstance(imported, str):
                merged = {**variables, **{k: v for k, v in (play.get("vars") or {}).items() if isinstance(v, str)}}
                found += self._playbook_roles(path.parent / imported, merged, seen)
                continue
            self._add_module_defaults(play.get("module_defaults"))
            for role, container, index in self._play_roles(play, variables):
                if not (self.roles_dir / role).is_dir():
                    self.checker.report(path, line_of(container, index), f"no role {role!r} in {self.roles_dir.name}/",
                                        did_you_mean(role, [p.name for p in self.roles_dir.iterdir() if p.is_dir()]))
                elif role not in found:
                    found.append(role)
        return found

    @staticmethod
    def _play_roles(play: dict, variables: dict):
        """(role, container, key) of each of this collection's roles a play names in roles: or includes."""
        names = [(r if isinstance(r, str) else (r or {}).get("role") or (r or {}).get("name"), play.get("roles"), i)
                 for i, r in enumerate(play.get("roles") or [])]
        tasks = [t for key in ("pre_tasks", "tasks", "post_tasks", "handlers") for t in iter_tasks(play.get(key))]
        for task in tasks:
            for action in INCLUDE_ROLE & set(task):
                if isinstance(task[action], dict):
                    names.append((task[action].get("name"), task[action], "name"))
        for name, container, index in names:
            role = _render(name, variables)
            if role is not None and "." not in role.removeprefix(NAMESPACE):
                yield role.removeprefix(NAMESPACE), container, index

    def _add_module_defaults(self, defaults: Any) -> None:
        entries = defaults if isinstance(defaults, list) else [defaults]
        for entry in entries:
            for key, values in (entry or {}).items() if isinstance(entry, dict) else ():
                for module in self.collection.group_members(str(key)):
                    self.defaults_provided.setdefault(module, set()).update(values or {})
