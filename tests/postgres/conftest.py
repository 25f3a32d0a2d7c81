"""Fixtures for the PostgreSQL module tests: one throwaway PostgreSQL 15 cluster for the whole run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pg_cluster import APP_USER, SUPERUSER

from synap_play.project import collections_path

# The unit tests import module_utils as Ansible would: ansible_collections.synap.ops...
sys.path.insert(0, str(collections_path(Path(__file__).resolve().parents[2])))


@pytest.fixture
def superuser_args(pg):
    """Module arguments connecting as the superuser to ``synap``."""
    return {"dsn": pg.dsn(user=SUPERUSER)}


@pytest.fixture
def app_args(pg):
    """Module arguments connecting as the (non-superuser) application role, like the API does."""
    return {"dsn": pg.dsn(user=APP_USER)}


@pytest.fixture
def proposals_clean(pg):
    """Empty Synap tables before and after a test."""
    with pg.connect() as conn:
        conn.execute("TRUNCATE proposals, workspaces")
    yield
    with pg.connect() as conn:
        conn.execute("TRUNCATE proposals, workspaces")


@pytest.fixture
def one_proposal(pg, proposals_clean):
    """The id of the only proposal, a pending one: the row a blocking chain locks."""
    with pg.connect() as conn:
        return str(conn.execute(
            "INSERT INTO proposals (workspace_id, target_type, target_id, request) "
            "VALUES ('ws-1', 'entity', 'e-1', '{}') RETURNING id").fetchone()[0])
