"""The post-mortem draft's index candidates, read from a plan's sequential scans and their filters."""

from __future__ import annotations

import pytest
from ansible_collections.synap.ops.plugins.plugin_utils.incident_report import index_candidates


@pytest.mark.parametrize("plan,expected", [
    (["Parallel Seq Scan on entities  (cost=0.00..7501.00 rows=2 width=0)",
      "  Filter: ((deleted_at IS NULL) AND (workspace_id = $1) AND (type = $2))"],
     ["CREATE INDEX CONCURRENTLY ON entities (workspace_id, type)"]),
    (["Seq Scan on proposals", "  Filter: (status = 'pending'::text)"],
     ["CREATE INDEX CONCURRENTLY ON proposals (status)"]),
    (["Index Scan using entities_pkey on entities", "  Index Cond: (id = $1)"], []),
    (["Seq Scan on workspaces", "  Filter: (created_at > now())"], []),
    ([], []),
])
def test_index_candidates(plan, expected):
    assert index_candidates(plan) == expected
