"""The triage rules (playbooks/triage-rules.yml): well formed, naming the catalog's scenarios, and reading only
names that exist: the triage's look-ups (roles/triage's Assess task) and the declared synap_* variables. A misspelt
name would leave its rule unknown on every run, never matched and never clear."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from synap_play.validate.checker import Checker, did_you_mean
from synap_play.validate.variables import VariableSpec
from synap_play.validate.yamllines import line_of, load_yaml

RULES_FILE = "triage-rules.yml"
WHERE = re.compile(r"^(matches|severity)\.([\w-]+)(?:\[(\d+)\])?")


def triage_look_ups(roles_dir: Path) -> set[str]:
    """The names of the triage's look-ups: its Assess task's sources."""
    try:
        tasks = yaml.safe_load((roles_dir / "triage" / "tasks" / "main.yml").read_text(encoding="utf-8")) or []
    except (OSError, yaml.YAMLError):
        return set()
    for task in tasks:
        diagnose = task.get("synap.ops.diagnose") if isinstance(task, dict) else None
        if isinstance(diagnose, dict) and isinstance(diagnose.get("sources"), dict):
            return set(diagnose["sources"])
    return set()


def check_triage_rules(checker: Checker, playbooks: Path, roles_dir: Path, variables: VariableSpec) -> None:
    from synap_play import collection

    collection.load()
    from ansible_collections.synap.ops.plugins.plugin_utils.catalog import CatalogError, load_catalog
    from ansible_collections.synap.ops.plugins.plugin_utils.triage import RulesError, parse_rules

    path = playbooks / RULES_FILE
    if not path.is_file():
        return
    try:
        document = load_yaml(path)
    except yaml.YAMLError as exc:
        checker.report_invalid_yaml(path, exc)
        return
    try:
        scenarios = list(load_catalog(playbooks / "scenarios.yml"))
    except CatalogError:
        scenarios = None  # the catalog's own problem is reported where it is read
    try:
        rules = parse_rules(document, scenarios)
    except RulesError as exc:
        for problem in exc.problems:
            checker.report(path, _line(document, problem), problem)
        return
    known = triage_look_ups(roles_dir) | set(variables.declared)
    for rule in [*rules.matches, *rules.severity]:
        reads = rule.condition.reads | getattr(rule, "evidence_reads", frozenset())
        for name in sorted(reads - known):
            checker.report(path, _line(document, rule.condition.where),
                           f"{rule.condition.where} reads {name}, which is neither a triage look-up "
                           f"({', '.join(sorted(triage_look_ups(roles_dir)))}) nor a declared synap_* variable",
                           did_you_mean(name, known))


def _line(document, where: str) -> int:
    """The line of ``matches.<scenario>[i]`` or ``severity.<level>[i]`` in the file, as near as it can be found."""
    found = WHERE.match(where)
    if not found or not isinstance(document, dict):
        return 1
    section, key, index = found.group(1), found.group(2), found.group(3)
    container = document.get(section)
    if section == "matches" and isinstance(container, dict) and key in container:
        entries = container[key]
        if index is not None and isinstance(entries, list) and int(index) < len(entries):
            return line_of(entries, int(index), line_of(container, key, 1))
        return line_of(container, key, 1)
    if section == "severity" and isinstance(container, list):
        for position, level in enumerate(container):
            if isinstance(level, dict) and level.get("level") == key:
                conditions = level.get("conditions")
                if index is not None and isinstance(conditions, list) and int(index) < len(conditions):
                    return line_of(conditions, int(index), line_of(container, position, 1))
                return line_of(container, position, 1)
    return line_of(document, section, 1)
