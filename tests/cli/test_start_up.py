"""What every command pays before its first look: ansible.builtin's routing table comes from synap-play's cache,
not from ansible-core's 370 kB YAML, and reads the same."""

from __future__ import annotations

import json
import os
import subprocess
import sys

ROUTING = """
import json, sys
from synap_play import collection
collection.load()
import ansible.module_utils.common.parameters  # the first ansible.* import the collection loader routes
from ansible.utils.collection_loader._collection_finder import _get_collection_metadata
json.dump(_get_collection_metadata("ansible.builtin"), sys.stdout, sort_keys=True)
"""


def _routing(cache):
    done = subprocess.run([sys.executable, "-c", ROUTING], capture_output=True, text=True, check=True, timeout=120,
                          env={**os.environ, "SYNAP_PLAY_CACHE_DIR": str(cache)})
    return json.loads(done.stdout)


def test_the_builtin_routing_is_kept_and_reads_the_same(tmp_path):
    parsed = _routing(tmp_path)  # parsed from the YAML, and kept
    [kept] = (tmp_path / "ansible-routing").glob("*.json")
    assert not list((tmp_path / "ansible-routing").glob("*.partial"))
    assert _routing(tmp_path) == parsed
    marked = json.loads(kept.read_text())
    marked["requires_ansible"] = "read from the cache"
    kept.write_text(json.dumps(marked))
    assert _routing(tmp_path)["requires_ansible"] == "read from the cache"
    assert parsed["plugin_routing"]["modules"]  # the real table, not an empty one
    kept.write_text("{not json")  # a damaged cache is parsed afresh
    assert _routing(tmp_path) == parsed
