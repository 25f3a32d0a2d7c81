"""A synap.ops task's arguments against what will run it: the action plugins' own constants (OPTIONS,
SOURCE_KEYS, CLASSES, CHECK_KEYS), the severity policy and each module's argument spec."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from synap_play.validate.checker import Checker, did_you_mean, names_only
from synap_play.validate.collection import NAMESPACE, Collection, fqcn
from synap_play.validate.yamllines import Mapping, is_literal, line_of

INCLUDE_ROLE = {"include_role", "import_role", "ansible.builtin.include_role", "ansible.builtin.import_role"}
BLOCK_KEYS = ("block", "rescue", "always")


def iter_tasks(tasks: Any):
    """Every task of a task list, blocks opened."""
    if not isinstance(tasks, list):
        return
    for task in tasks:
        if not isinstance(task, dict):
            continue
        if any(k in task for k in BLOCK_KEYS):
            for key in BLOCK_KEYS:
                yield from iter_tasks(task.get(key))
        else:
            yield task


def _policy_classes(roles_dir: Path) -> set[str] | None:
    """The action classes some severity of incident_severity_policy runs or asks for; None if there is no policy."""
    path = roles_dir / "incident" / "defaults" / "main.yml"
    try:
        policy = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("incident_severity_policy")
    except (OSError, yaml.YAMLError):
        return None
    if not isinstance(policy, dict):
        return None
    return {c for rule in policy.values() if isinstance(rule, dict) for key in ("run", "ask") for c in rule.get(key) or ()}


def _task_args(task: dict, key: str) -> Any:
    """The module's arguments with the task's ``args:`` under them, keeping each key's line."""
    args = task[key] if task[key] is not None else {}
    if isinstance(task.get("args"), dict) and isinstance(args, dict):
        args = Mapping({**task["args"], **args})
        args.line, args.key_lines = task["args"].line, {**task["args"].key_lines, **getattr(task[key], "key_lines", {})}
    return args


class TaskChecker:
    def __init__(self, checker: Checker, collection: Collection, roles_dir: Path, defaults_provided: dict[str, set[str]]):
        self.checker, self.collection = checker, collection
        self.defaults_provided = defaults_provided  # module -> options its plays' module_defaults set
        self.diagnose = collection.action("diagnose")
        self.mitigate = collection.action("mitigate")
        self.record = collection.action("record")
        self.policy_classes = _policy_classes(roles_dir)

    def check(self, path: Path, task: dict) -> None:
        for key in task:
            if not isinstance(key, str) or not key.startswith(NAMESPACE):
                continue
            name, args, line = key.removeprefix(NAMESPACE), _task_args(task, key), line_of(task, key)
            if self.collection.options(name) is None:
                self.checker.report(path, line, f"unknown module {key}", did_you_mean(name, self.collection.modules))
            elif name == "diagnose":
                self._check_diagnose(path, line, args)
            elif name == "mitigate":
                self._check_mitigate(path, line, args)
            else:
                self._check_module_args(path, line, name, args, key)
                if name == "record":
                    self._check_verify_items(path, args.get("verify") if isinstance(args, dict) else None)
        for action in INCLUDE_ROLE & set(task):
            include = task[action]
            if isinstance(include, dict) and include.get("name") == f"{NAMESPACE}incident" \
                    and include.get("tasks_from") == "verify" and isinstance(task.get("vars"), dict):
                self._check_verify_items(path, task["vars"].get("incident_checks"))

    def _check_module_args(self, path: Path, line: int, name: str, args: Any, what: str) -> None:
        # An action plugin with its own OPTIONS takes the task's arguments itself.
        own = self.collection.action(name).get("OPTIONS")
        if own is not None and name not in ("diagnose", "mitigate"):
            self.checker.check_args(path, args, names_only(own), what, line=line)
            return
        self.checker.check_args(path, args, self.collection.options(name) or {}, what,
                                provided=self.defaults_provided.get(name, set()), line=line)

    def _check_diagnose(self, path: Path, line: int, args: Any) -> None:
        if not isinstance(args, dict):
            return
        self.checker.check_args(path, args, names_only(self.diagnose.get("OPTIONS", {"sources"})), "synap.ops.diagnose",
                                line=line)
        sources = args.get("sources")
        if not isinstance(sources, dict):
            return
        source_keys = self.diagnose.get("SOURCE_KEYS", {"module", "args"})
        info_modules = [m for m in self.collection.modules if m.endswith("_info")]
        for source_name, source in sources.items():
            source_line = line_of(sources, source_name, line)
            what = f"diagnose source {source_name!r}"
            if not isinstance(source, dict):
                continue
            for key in source:
                if key not in source_keys:
                    self.checker.report(path, line_of(source, key, source_line), f"{what}: unknown key {key!r}",
                                        did_you_mean(key, source_keys))
            module = source.get("module")
            if not is_literal(module):
                continue
            module_line = line_of(source, "module", source_line)
            short = self.collection.resolve(module)
            if short is None or self.collection.options(short) is None:
                self.checker.report(path, module_line, f"{what}: no synap.ops module {module!r}",
                                    fqcn(did_you_mean(str(module).removeprefix(NAMESPACE), info_modules)))
            elif not short.endswith("_info"):
                self.checker.report(path, module_line, f"{what}: {module} is not an info module; a diagnosis only reads",
                                    fqcn(did_you_mean(short, info_modules)))
            else:
                self._check_module_args(path, module_line, short, source.get("args") or {}, f"{what} ({NAMESPACE}{short})")

    def _check_mitigate(self, path: Path, line: int, args: Any) -> None:
        if not isinstance(args, dict):
            return
        options = self.mitigate.get("OPTIONS", {"class", "module", "args", "why"})
        self.checker.check_args(path, args, names_only(options), "synap.ops.mitigate", line=line)
        for required in ("class", "module"):
            if required in options and required not in args:
                self.checker.report(path, line, f"synap.ops.mitigate: missing {required!r}")
        if "class" in args and is_literal(args["class"]):
            self._check_action_class(path, line_of(args, "class", line), args["class"])
        module = args.get("module")
        if "module" in args and is_literal(module):
            short = self.collection.resolve(module)
            if short is None and "." in str(module):
                return  # another collection's module: its options are not ours to check
            if short is None or self.collection.options(short) is None:
                self.checker.report(path, line_of(args, "module", line), f"synap.ops.mitigate: no synap.ops module {module!r}",
                                    fqcn(did_you_mean(str(module).removeprefix(NAMESPACE), self.collection.modules)))
                return
            self._check_module_args(path, line_of(args, "args", line), short, args.get("args") or {},
                                    f"synap.ops.mitigate ({NAMESPACE}{short})")

    def _check_action_class(self, path: Path, line: int, action_class: Any) -> None:
        classes = list(self.mitigate.get("CLASSES", ()))
        if classes and action_class not in classes:
            self.checker.report(path, line, f"synap.ops.mitigate: class must be one of {', '.join(classes)}, "
                                f"got {action_class!r}", did_you_mean(action_class, classes))
        elif self.policy_classes is not None and action_class not in self.policy_classes:
            self.checker.report(path, line, f"synap.ops.mitigate: class {action_class!r} is in no severity's run or "
                                "ask list of incident_severity_policy (roles/incident/defaults/main.yml)",
                                did_you_mean(action_class, sorted(self.policy_classes)))

    def _check_verify_items(self, path: Path, checks: Any) -> None:
        """Verification checks carry only the keys synap.ops.record reads (its action's CHECK_KEYS)."""
        keys = self.record.get("CHECK_KEYS")
        if not keys or not isinstance(checks, list):
            return
        for index, check in enumerate(checks):
            if not isinstance(check, dict):
                continue
            for key in check:
                if key not in keys:
                    self.checker.report(path, line_of(check, key, line_of(checks, index)),
                                        f"verification check: unknown key {key!r}", did_you_mean(key, keys))
