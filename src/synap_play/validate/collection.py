"""What the synap.ops collection accepts, read from its plugins without running them."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from typing import Any

import yaml

NAMESPACE = "synap.ops."


def fqcn(short: str | None) -> str | None:
    return f"{NAMESPACE}{short}" if short else None


def _python_constants(path: Path, holder: str | None = None) -> dict[str, Any]:
    """The literal module-level (or ``holder`` class-level) constants of a Python file, read without running it."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (OSError, SyntaxError):
        return {}
    body = tree.body
    if holder:
        body = next((n.body for n in tree.body if isinstance(n, ast.ClassDef) and n.name == holder), [])
    constants = {}
    for node in body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                constants[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return constants


def _normalise(spec: dict) -> dict[str, dict]:
    """name -> {type, elements, choices, required, options}, aliases as names of their own."""
    options = {}
    for name, attrs in (spec or {}).items():
        attrs = dict(attrs or {})
        if attrs.get("options"):
            attrs["options"] = _normalise(attrs["options"])
        options[name] = attrs
        for alias in attrs.get("aliases") or ():
            options[alias] = attrs
    return options


class Collection:
    """The synap.ops plugins: module option specs, action constants, module_defaults groups."""

    def __init__(self, root: Path, importable: Path | None):
        self.root = root
        self.plugins = root / "plugins"
        self._importable = importable
        self._specs: dict[str, dict | None] = {}
        runtime = {}
        if (root / "meta" / "runtime.yml").is_file():
            runtime = yaml.safe_load((root / "meta" / "runtime.yml").read_text(encoding="utf-8")) or {}
        self.groups = {name: set(members or ()) for name, members in (runtime.get("action_groups") or {}).items()}

    @property
    def modules(self) -> list[str]:
        return sorted(p.stem for p in (self.plugins / "modules").glob("*.py") if not p.name.startswith("_"))

    def action(self, name: str) -> dict[str, Any]:
        path = self.plugins / "action" / f"{name}.py"
        return _python_constants(path) if path.is_file() else {}

    def options(self, name: str) -> dict[str, dict] | None:
        """The module's options; None when there is no such module."""
        if name not in self._specs:
            self._specs[name] = self._load_options(name)
        return self._specs[name]

    def _load_options(self, name: str) -> dict[str, dict] | None:
        path = self.plugins / "modules" / f"{name}.py"
        if not path.is_file():
            return None
        spec = self._imported_spec(name, path)
        return _normalise(spec) if spec is not None else self._documented_options(path)

    def _imported_spec(self, name: str, path: Path) -> dict | None:
        """argument_spec() of the module itself, the truth the module validates against, when it has one."""
        if self._importable is None:
            return None
        try:
            module = importlib.import_module(f"ansible_collections.synap.ops.plugins.modules.{name}")
        except Exception:  # a module that cannot be imported here (a missing library) still has its DOCUMENTATION
            return None
        if Path(module.__file__).resolve() != path.resolve() or not callable(getattr(module, "argument_spec", None)):
            return None
        try:
            return module.argument_spec()
        except Exception:
            return None

    def _documented_options(self, path: Path) -> dict[str, dict]:
        """DOCUMENTATION's options with those of its synap.ops doc fragments: what every module has."""
        try:
            doc = yaml.safe_load(_python_constants(path).get("DOCUMENTATION") or "") or {}
        except yaml.YAMLError:
            return {}
        options: dict = {}
        for fragment in doc.get("extends_documentation_fragment") or ():
            if not fragment.startswith(NAMESPACE):
                continue
            file, _, variant = fragment.removeprefix(NAMESPACE).partition(".")
            text = _python_constants(self.plugins / "doc_fragments" / f"{file}.py", "ModuleDocFragment").get(
                (variant or "documentation").upper())
            try:
                options.update((yaml.safe_load(text or "") or {}).get("options") or {})
            except yaml.YAMLError:
                continue
        options.update(doc.get("options") or {})
        return _normalise(options)

    def resolve(self, name: Any) -> str | None:
        """The short name of a synap.ops module given as FQCN or short name; None for other collections' modules."""
        if not isinstance(name, str):
            return None
        if name.startswith(NAMESPACE):
            return name.removeprefix(NAMESPACE)
        return name if "." not in name and (self.plugins / "modules" / f"{name}.py").is_file() else None

    def group_members(self, key: str) -> set[str]:
        """Modules a module_defaults key applies to: a module, or group/synap.ops.<group>."""
        if key.startswith("group/"):
            group = key.removeprefix("group/").removeprefix(NAMESPACE)
            return {self.resolve(m) or m for m in self.groups.get(group, ())}
        return {self.resolve(key) or key}
