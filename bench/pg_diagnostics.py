"""Time every query the PostgreSQL modules run against the runbook's own queries, on a large proposals table.

Usage (from the repository root)::

    .venv/bin/python bench/pg_diagnostics.py                 # throwaway cluster, 2 M proposals
    .venv/bin/python bench/pg_diagnostics.py --rows 10000000 # the 10 M target (several minutes to build)
    .venv/bin/python bench/pg_diagnostics.py --dsn postgresql://postgres:pw@host/db  # an existing server

With ``--dsn`` the data goes into a scratch schema ``synap_bench`` that is dropped at the end; without it a
throwaway PostgreSQL 15 cluster is started (the tests' initdb helper) and removed afterwards.

The proposals are spread over ``--workspaces`` workspaces; about 0.05 % are pending (half of them older than an
hour), the rest validated, rejected or approved, as in a system whose validator mostly keeps up. Each query runs
``--repeat`` times and the best time is printed. Target: every module query at most 100 ms at 10 M rows,
far below the runbook's full-scan ``GROUP BY status``. This is a benchmark to read, not a test that fails.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "postgres"))
sys.path.insert(0, str(ROOT / "src"))

import psycopg  # noqa: E402

from synap_play.project import collections_path  # noqa: E402

sys.path.insert(0, str(collections_path(ROOT)))

from ansible_collections.synap.ops.plugins.module_utils import postgres as pgutil  # noqa: E402
from ansible_collections.synap.ops.plugins.module_utils import (  # noqa: E402
    postgres_activity_info,
    postgres_statements_info,
    synap_proposals_info,
)

TARGET_MS = 100.0

BUILD = """
INSERT INTO workspaces (name, settings)
SELECT 'workspace ' || w, CASE WHEN w % 50 = 0 THEN '{{"aiAutoApprove": true}}'::jsonb
                               WHEN w % 3 = 0 THEN '{{"aiAutoApprove": false}}'::jsonb ELSE '{{}}'::jsonb END
FROM generate_series(1, {workspaces}) w;

INSERT INTO proposals (workspace_id, target_type, target_id, request, status, created_at, updated_at)
SELECT 'ws-' || (g % {workspaces}), 'entity', 'e-' || g, '{{}}'::jsonb,
       CASE WHEN g % 2000 = 0 THEN 'pending' WHEN g % 12 = 0 THEN 'rejected' WHEN g % 50 = 1 THEN 'approved'
            ELSE 'validated' END,
       now() - make_interval(secs => g % 7200), now()
FROM generate_series(1, {rows}) g;

CREATE INDEX proposals_workspace_status_idx ON proposals (workspace_id, status);
CREATE INDEX proposals_target_idx ON proposals (target_type, target_id);
"""

RUNBOOK = [
    ("runbook", "connection count (scenario 3)",
     "SELECT count(*) AS connections, max_connections FROM pg_stat_activity, "
     "(SELECT setting::int AS max_connections FROM pg_settings WHERE name='max_connections') s "
     "GROUP BY max_connections", None),
    ("runbook", "connections by application_name", "SELECT application_name, count(*) FROM pg_stat_activity "
                                                    "GROUP BY application_name", None),
    ("runbook", "long-running queries (scenario 2)", "SELECT pid, now() - query_start AS duration, query "
     "FROM pg_stat_activity WHERE state = 'active' ORDER BY duration DESC", None),
    ("runbook", "proposals GROUP BY status (scenario 5)", "SELECT status, count(*) FROM proposals GROUP BY status",
     None),
    ("naive", "pending older than 300 s, plain WHERE", "SELECT id FROM proposals WHERE status = 'pending' "
                                                    "AND created_at < now() - interval '300 seconds'", None),
    ("runbook", "workspace aiAutoApprove LIMIT 10", "SELECT id, settings->>'aiAutoApprove' FROM workspaces LIMIT 10",
     None),
    ("runbook", "pg_locks WHERE NOT granted", "SELECT * FROM pg_locks WHERE NOT granted", None),
    ("runbook", "table sizes (scenario 6)", "SELECT schemaname, tablename, "
     "pg_size_pretty(pg_total_relation_size(schemaname||'.'||tablename)) FROM pg_tables "
     "ORDER BY pg_total_relation_size(schemaname||'.'||tablename) DESC LIMIT 10", None),
]


def module_queries():
    walk = dict(pending="pending", statuses=["approved"], limit=10001, older_than=300.0, list_limit=20)
    return [
        ("postgres_activity_info", "server, limits, db size", postgres_activity_info.SERVER_SQL, None),
        ("postgres_activity_info", "sessions + pg_blocking_pids", pgutil.SESSIONS_SQL, None),
        ("postgres_activity_info", "ungranted locks", postgres_activity_info.LOCK_WAITS_SQL, None),
        ("postgres_statements_info", "pg_stat_statements top 10 by mean",
         postgres_statements_info.STATEMENTS_SQL.format(order="s.mean_exec_time"), (10,)),
        ("postgres_statements_info", "sequential-scan candidates", postgres_statements_info.SEQ_SCAN_SQL, (10000,)),
        ("postgres_statements_info", "indexes of proposals", postgres_statements_info.INDEXES_SQL,
         ("proposals", None, None)),
        ("postgres_statements_info", "largest tables", postgres_statements_info.LARGEST_TABLES_SQL, (10,)),
        ("synap_proposals_info", "status estimates (statistics)", synap_proposals_info.ESTIMATE_SQL, None),
        ("synap_proposals_info", "one walk: workspaces, pending, stale", synap_proposals_info.WORKSPACE_WALK_SQL,
         dict(walk, statuses=[])),
        ("synap_proposals_info", "one walk + approved count, bounded 10k", synap_proposals_info.WORKSPACE_WALK_SQL,
         walk),
        ("synap_proposals_info", "aiAutoApprove summary", synap_proposals_info.AUTO_APPROVE_SQL, None),
    ]


def best_ms(conn, statement, params, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        conn.execute(statement, params).fetchall()
        times.append((time.perf_counter() - start) * 1000)
    return min(times)


def build(conn, rows, workspaces):
    start = time.perf_counter()
    conn.execute(BUILD.format(rows=rows, workspaces=workspaces))
    conn.execute("VACUUM (ANALYZE) proposals")
    conn.execute("VACUUM (ANALYZE) workspaces")
    return time.perf_counter() - start


def run(conn, rows, workspaces, repeat):
    print(f"building proposals: {rows:,} rows over {workspaces:,} workspaces ...", flush=True)
    seconds = build(conn, rows, workspaces)
    size = conn.execute("SELECT pg_size_pretty(pg_total_relation_size('proposals'))").fetchone()[0]
    print(f"built in {seconds:.1f} s; proposals with indexes: {size}\n")
    conn.execute("SET statement_timeout = '10min'")
    header = f"{'source':<26} {'query':<38} {'best ms':>10}  {'target':<6}"
    print(header)
    print("-" * len(header))
    slow = 0
    for source, name, statement, params in module_queries() + RUNBOOK:
        ms = best_ms(conn, statement, params, repeat)
        verdict = ("ok" if ms <= TARGET_MS else "SLOW") if source not in ("runbook", "naive") else ""
        slow += verdict == "SLOW"
        print(f"{source:<26} {name:<38} {ms:>10.1f}  {verdict:<6}", flush=True)
    print(f"\n{slow} module quer{'y' if slow == 1 else 'ies'} above {TARGET_MS:.0f} ms at {rows:,} rows "
          f"(best of {repeat})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2_000_000, help="proposals to create (default 2 M; try 10 M)")
    parser.add_argument("--workspaces", type=int, default=1000, help="distinct workspaces (default 1000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per query; the best is shown (default 3)")
    parser.add_argument("--dsn", help="use this server (scratch schema synap_bench) instead of a throwaway cluster")
    args = parser.parse_args()

    if args.dsn:
        with psycopg.connect(args.dsn, autocommit=True, application_name="synap-play-bench") as conn:
            conn.execute("CREATE SCHEMA synap_bench")
            try:
                conn.execute("SET search_path = synap_bench, public")
                from pg_cluster import SYNAP_SCHEMA

                conn.execute(SYNAP_SCHEMA.split("CREATE INDEX")[0])
                conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                run(conn, args.rows, args.workspaces, args.repeat)
            finally:
                conn.execute("DROP SCHEMA synap_bench CASCADE")
        return

    from pg_cluster import SYNAP_SCHEMA, Cluster

    cluster = Cluster(max_connections=25, extra_settings={"maintenance_work_mem": "'256MB'"})
    try:
        cluster.start()
        with cluster.connect(db="postgres") as conn:
            conn.execute("CREATE DATABASE synap")
        with cluster.connect(application_name="synap-play-bench") as conn:
            conn.execute(SYNAP_SCHEMA.split("CREATE INDEX")[0])
            conn.execute("CREATE EXTENSION pg_stat_statements")
            run(conn, args.rows, args.workspaces, args.repeat)
    finally:
        cluster.destroy()


if __name__ == "__main__":
    main()
