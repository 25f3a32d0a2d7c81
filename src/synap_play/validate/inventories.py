"""The synap_* variables an inventory sets: in its YAML sources, group_vars and host_vars."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from synap_play.validate.checker import Checker, did_you_mean
from synap_play.validate.variables import VariableSpec
from synap_play.validate.yamllines import line_of, load_yaml

VARS_SUFFIXES = ("", ".yml", ".yaml", ".json")


class InventoryValidator:
    def __init__(self, checker: Checker, variables: VariableSpec):
        self.checker, self.variables = checker, variables

    def check(self, inventory: Path) -> None:
        folder = inventory if inventory.is_dir() else inventory.parent
        sources = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in VARS_SUFFIXES) \
            if inventory.is_dir() else [inventory]
        for source in sources:
            try:
                document = load_yaml(source)
            except (OSError, yaml.YAMLError, UnicodeDecodeError):
                continue  # an INI or script inventory: its group_vars are still read below
            if isinstance(document, dict):
                for group in document.values():
                    self._check_group(source, group)
        for sub in ("group_vars", "host_vars"):
            for path in sorted((folder / sub).rglob("*")):
                if path.is_file() and path.suffix in VARS_SUFFIXES:
                    try:
                        self._check_vars(path, load_yaml(path))
                    except yaml.YAMLError as exc:
                        self.checker.report_invalid_yaml(path, exc)
                    except (OSError, UnicodeDecodeError):
                        continue

    def _check_group(self, path: Path, group: Any) -> None:
        if not isinstance(group, dict):
            return
        self._check_vars(path, group.get("vars"))
        for host_vars in (group.get("hosts") or {}).values() if isinstance(group.get("hosts"), dict) else ():
            self._check_vars(path, host_vars)
        for child in (group.get("children") or {}).values() if isinstance(group.get("children"), dict) else ():
            self._check_group(path, child)

    def _check_vars(self, path: Path, variables: Any) -> None:
        declared = self.variables.declared
        if not isinstance(variables, dict) or not declared:
            return
        for name, value in variables.items():
            if not isinstance(name, str) or not name.startswith("synap_"):
                continue
            line = line_of(variables, name)
            if name not in declared:
                self.checker.report(path, line, f"unknown variable {name}", did_you_mean(name, declared))
            else:
                self.variables.check(path, line, name, value)
