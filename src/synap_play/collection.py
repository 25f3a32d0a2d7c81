"""The synap.ops collection, imported by the CLI the way Ansible imports it.

The CLI shares its names (plugins/plugin_utils/protocol.py), the incident record and the look-ups' gather
functions with the collection by importing them from it: ``ansible_collections.synap.ops...``. Ansible's own
collection loader makes that name importable from the project's collections path; it is installed once, on
first use, and only by the commands that need it (``synap-play --help`` does not pay for it).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import json
import os
import tempfile
from types import ModuleType

from synap_play.project import cache_root, collections_path

PACKAGE = "ansible_collections.synap.ops"
_loaded = False


def load() -> None:
    """Make ``ansible_collections.synap.ops`` importable (idempotent)."""
    global _loaded
    if _loaded:
        return
    try:
        importlib.import_module(f"{PACKAGE}.plugins.plugin_utils.protocol")
    except ImportError:
        from ansible.plugins.loader import init_plugin_loader

        _keep_builtin_routing()
        init_plugin_loader([str(collections_path())])
    _loaded = True


def _keep_builtin_routing() -> None:
    """Read ansible.builtin's routing table from synap-play's cache, not from its YAML. Once Ansible's collection
    loader is installed, the first import of any ``ansible.*`` module parses ansible-core's 370 kB
    ansible_builtin_runtime.yml: 0.1 s of every command's start, before a run's first look begins. The table is
    kept as JSON by the YAML's digest (it is all strings, lists and mappings: Ansible parses it with BaseLoader),
    so a changed ansible-core is parsed afresh. Ansible names this function as the one tools may replace."""
    from ansible.utils.collection_loader import _collection_finder

    parse = _collection_finder._meta_yml_to_dict
    if parse is None or getattr(parse, "keeps_builtin_routing", False):
        return

    def meta_yml_to_dict(raw, content_id):
        if tuple(content_id or ())[:1] != ("ansible.builtin",):
            return parse(raw, content_id)
        digest = hashlib.sha256(raw if isinstance(raw, bytes) else raw.encode("utf-8")).hexdigest()
        kept = cache_root() / "ansible-routing" / f"{digest}.json"
        with contextlib.suppress(OSError, ValueError):
            routing = json.loads(kept.read_text(encoding="utf-8"))
            if isinstance(routing, dict):
                return routing
        routing = parse(raw, content_id)
        with contextlib.suppress(OSError):  # a cache that cannot be written: parsed again next time
            kept.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=kept.parent, suffix=".partial") as partial:
                json.dump(routing, partial)
                partial.flush()
                os.link(partial.name, kept)  # whole or not at all; the partial file goes in any case
        return routing

    meta_yml_to_dict.keeps_builtin_routing = True
    _collection_finder._meta_yml_to_dict = meta_yml_to_dict


def module(name: str) -> ModuleType:
    """A module of the collection by its path below it: module("plugins.plugin_utils.protocol")."""
    load()
    return importlib.import_module(f"{PACKAGE}.{name}")


def protocol() -> ModuleType:
    return module("plugins.plugin_utils.protocol")
