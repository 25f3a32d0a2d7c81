"""The secrets a run must never show: the environment's, the extra variables', and the inventory's."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from synap_play import collection

collection.load()
from ansible_collections.synap.ops.plugins.module_utils.redact import Redactor  # noqa: E402


class _SecretsAwareLoader(yaml.SafeLoader):
    """Reads inventory variable files for redaction; vault-encrypted values are skipped, not decrypted."""


_SecretsAwareLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


def learn_secrets(inventory: Path, extravars: Mapping[str, Any]) -> Redactor:
    redactor = Redactor()
    redactor.learn_from_environment(os.environ)
    redactor.learn_from(dict(extravars))
    if inventory.is_dir():
        paths = sorted(inventory.rglob("*"))
    else:  # the file and the group_vars/host_vars beside it, as Ansible reads them; never the whole folder
        beside = [inventory.parent / name for name in ("group_vars", "host_vars")]
        paths = [inventory, *sorted(p for folder in beside if folder.is_dir() for p in folder.rglob("*"))]
    for path in paths:
        if (path == inventory or path.suffix in (".yml", ".yaml", ".json", "")) and path.is_file():
            try:
                redactor.learn_from(yaml.load(path.read_text(encoding="utf-8"), Loader=_SecretsAwareLoader))
            except (OSError, ValueError, yaml.YAMLError):  # unreadable, not text, not YAML: nothing to learn
                continue
    return redactor
