"""Unit tests for the pure helpers of module_utils/postgres.py and postgres_setting's value normalisation."""

from __future__ import annotations

import pytest
from ansible_collections.synap.ops.plugins.module_utils.postgres import (
    blocking_tree,
    classify_connect_error,
    leading_keyword,
    placeholder_count,
    plannable,
    redact_dsn,
    truncate,
)
from ansible_collections.synap.ops.plugins.modules.postgres_setting import BadValue, normalize


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        ("postgresql://synap:s3cr%40t@db:5432/synap", "postgresql://synap:********@db:5432/synap"),
        ("postgres://u:p@h/d?sslmode=require", "postgres://u:********@h/d?sslmode=require"),
        ("postgresql://u@h/d", "postgresql://u@h/d"),
        ("host=db user=synap password=hunter2 dbname=synap", "host=db user=synap password=******** dbname=synap"),
        ("host=db password='with space' dbname=x", "host=db password=******** dbname=x"),
        ("postgresql://h/d?user=u&password=p&sslmode=disable", "postgresql://h/d?user=u&password=********&sslmode=disable"),
        (None, None),
    ],
)
def test_redact_dsn(dsn, expected):
    assert redact_dsn(dsn) == expected


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ('connection failed: connection to server at "127.0.0.1", port 5 failed: Connection refused', "refused"),
        ('connection to server on socket "/tmp/.s.PGSQL.5432" failed: No such file or directory', "refused"),
        ("FATAL: sorry, too many clients already", "too_many_clients"),
        ("FATAL: remaining connection slots are reserved for non-replication superuser connections",
         "too_many_clients"),
        ('FATAL: password authentication failed for user "synap"', "auth_failed"),
        ('FATAL: role "nobody" does not exist', "auth_failed"),
        ('FATAL: database "nope" does not exist', "database_missing"),
        ("connection failed: timeout expired", "timeout"),
        ("something else entirely", "error"),
    ],
)
def test_classify_connect_error(message, kind):
    assert classify_connect_error(message) == kind


def test_blocking_tree_nests_chains_and_finds_roots():
    sessions = [
        {"pid": 1, "blocked_by": []},
        {"pid": 2, "blocked_by": [1]},
        {"pid": 3, "blocked_by": [2]},
        {"pid": 4, "blocked_by": [1]},
        {"pid": 5, "blocked_by": []},
    ]
    roots, tree = blocking_tree(sessions)
    assert roots == [1]
    assert tree == [{"pid": 1, "blocks": [{"pid": 2, "blocks": [{"pid": 3, "blocks": []}]}, {"pid": 4, "blocks": []}]}]


def test_blocking_tree_of_a_lock_queue_names_each_session_once():
    """Regression: requests piled up behind one held row each wait on the holder and on those queued before them.
    Every path through that queue was built (2^n): the diagnosis of 90 piled-up requests grew past 4 GB and never
    answered. Now each session hangs once, under the blocker nearest the root."""
    queued = [{"pid": 100 + n, "blocked_by": [1] + [100 + earlier for earlier in range(n)]} for n in range(90)]
    roots, tree = blocking_tree([{"pid": 1, "blocked_by": []}, *queued])
    assert roots == [1]
    (holder,) = tree
    assert sorted(node["pid"] for node in holder["blocks"]) == [100 + n for n in range(90)]
    assert all(node["blocks"] == [] for node in holder["blocks"])


def test_blocking_tree_reports_cycles_instead_of_hiding_them():
    roots, tree = blocking_tree([{"pid": 1, "blocked_by": [2]}, {"pid": 2, "blocked_by": [1]}])
    assert roots and {node["pid"] for node in tree} <= {1, 2}


@pytest.mark.parametrize(
    ("value", "vartype", "unit", "expected"),
    [
        ("200", "integer", None, "200"),
        ("8MB", "integer", "kB", "8192"),
        ("128MB", "integer", "8kB", "16384"),
        ("10min", "integer", "ms", "600000"),
        ("5min", "integer", "s", "300"),
        ("true", "bool", None, "on"),
        ("OFF", "bool", None, "off"),
        ("Replica", "enum", None, "replica"),
        ("0.5", "real", None, "0.5"),
    ],
)
def test_normalize_setting_values(value, vartype, unit, expected):
    assert normalize(value, vartype, unit) == expected


@pytest.mark.parametrize(("value", "vartype", "unit"), [("abc", "integer", "kB"), ("5parsecs", "integer", "ms"),
                                                        ("maybe", "bool", None), ("8MB", "integer", "ms")])
def test_normalize_rejects_bad_values(value, vartype, unit):
    with pytest.raises(BadValue):
        normalize(value, vartype, unit)


def test_truncate_flattens_whitespace():
    assert truncate("SELECT\n  1", 50) == "SELECT 1"
    assert truncate("x" * 10, 5) == "xxxx\u2026"


@pytest.mark.parametrize(
    ("statement", "count"),
    [
        ("SELECT * FROM entities WHERE workspace_id = $1 AND type = $2", 2),
        ("SELECT $3, $1", 3),
        ("SELECT 1", 0),
        ("SELECT '$1', \"$2\", E'it\\'s $3' -- $4\n /* $5 */ FROM t", 0),
        ("SELECT $$ costs $1 $$, $tag$ $2 $tag$, $1", 1),
        ("INSERT INTO t VALUES ($1, 'it''s $9', $2)", 2),
        (None, 0),
    ],
)
def test_placeholder_count_ignores_literals_and_comments(statement, count):
    assert placeholder_count(statement) == count


@pytest.mark.parametrize(
    ("statement", "keyword", "is_plannable"),
    [
        ("SELECT count(*) FROM scan_me WHERE label = $1", "select", True),
        ("  -- report\n/* app:api */ (SELECT 1) UNION (SELECT 2)", "select", True),
        ("WITH x AS (SELECT 1) SELECT * FROM x", "with", True),
        ("update proposals SET status = $1", "update", True),
        ("/* synap-play */ SELECT * FROM pg_stat_activity", "select", False),
        ("EXPLAIN SELECT 1", "explain", False),
        ("SET statement_timeout = $1", "set", False),
        ("BEGIN", "begin", False),
        ("CREATE TABLE t AS SELECT 1", "create", False),
        ("", "", False),
    ],
)
def test_plannable_skips_utility_and_own_statements(statement, keyword, is_plannable):
    assert leading_keyword(statement) == keyword
    assert plannable(statement) is is_plannable
