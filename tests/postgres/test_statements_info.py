"""postgres_statements_info: pg_stat_statements, sequential-scan candidates, indexes, sizes, EXPLAIN."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def scanned_table(pg):
    """A 20 000-row table without a useful index, scanned sequentially a few times, like a missing index."""
    with pg.connect() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS scan_me AS SELECT g AS n, md5(g::text) AS label "
                     "FROM generate_series(1, 20000) g")
        conn.execute("ANALYZE scan_me")
        for value in range(5):
            conn.execute("SELECT count(*) FROM scan_me WHERE label = %s", (str(value),))
        conn.execute("SELECT pg_sleep(0.05)")  # a statement with a known mean time
    yield "scan_me"
    with pg.connect() as conn:
        conn.execute("DROP TABLE scan_me")


def test_top_statements_seq_scans_indexes_and_sizes(pg, module, superuser_args, scanned_table):
    result = module("postgres_statements_info", dict(superuser_args, table="proposals", top=5))
    assert result["changed"] is False and result["reachable"] is True
    statements = result["statements"]
    assert statements["available"] is True and len(statements["by_mean"]) <= 5
    assert any("pg_sleep" in s["query"] for s in statements["by_mean"])
    assert statements["by_mean"][0]["mean_ms"] >= statements["by_mean"][-1]["mean_ms"]
    assert {"calls", "mean_ms", "max_ms", "total_ms", "rows"} <= set(statements["by_total"][0])

    scans = {t["tablename"]: t for t in result["seq_scan_tables"]}
    assert scans[scanned_table]["estimated_rows"] == 20000 and scans[scanned_table]["seq_scan"] >= 5

    assert {i["indexname"] for i in result["indexes"]} == {
        "proposals_pkey", "proposals_workspace_status_idx", "proposals_target_idx"}
    assert scanned_table in {t["tablename"] for t in result["largest_tables"]}
    assert result["database_size_bytes"] > 0
    assert "tables with heavy sequential scans" in result["msg"]


def test_plain_explain_does_not_execute(pg, module, superuser_args):
    statement = "INSERT INTO proposals (workspace_id, target_type, target_id, request) VALUES ('w', 't', 'i', '{}')"
    result = module("postgres_statements_info", dict(superuser_args, explain_query=statement))
    assert result["explain"]["analyze"] is False
    assert any("Insert on proposals" in line for line in result["explain"]["plan"])
    with pg.connect() as conn:
        assert conn.execute("SELECT count(*) FROM proposals WHERE workspace_id = 'w'").fetchone()[0] == 0


def test_explain_analyze_runs_read_only(pg, module, superuser_args):
    select = module("postgres_statements_info", dict(superuser_args, explain_query="SELECT count(*) FROM proposals",
                                                     explain_analyze=True))
    assert any("actual time" in line for line in select["explain"]["plan"])
    write = module("postgres_statements_info", dict(superuser_args, explain_analyze=True,
                                                    explain_query="DELETE FROM proposals"))
    assert "read-only transaction" in write["explain"]["error"] and write["changed"] is False


def test_missing_extension_is_a_finding(pg, module, superuser_args):
    result = module("postgres_statements_info", dict(superuser_args, db="postgres"))
    assert result["reachable"] is True and result["statements"]["available"] is False
    assert "CREATE EXTENSION pg_stat_statements" in result["statements"]["reason"]
    assert "pg_stat_statements unavailable" in result["msg"]
