#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: postgres_statements_info
short_description: Find slow statements, missing indexes and large tables in PostgreSQL
description:
  - The runbook's performance checks (scenario 4) as one read-only diagnosis.
  - Top statements from C(pg_stat_statements) by mean and by total execution time, with their C(queryid).
    When the extension is not installed or not preloaded, RV(statements) says C(available=false) with the
    reason; the rest still runs.
  - Tables with heavy sequential scans and their estimated rows (candidates for a missing index).
  - The indexes of O(table) (the runbook's C(pg_indexes) query), the largest tables and the database size.
  - C(EXPLAIN) of O(explain_query); C(EXPLAIN ANALYZE) only with O(explain_analyze=true), which executes the
    query inside a read-only transaction that is rolled back.
  - With O(explain_slowest=true), the plan of the application's slowest statement by mean time, from its full
    text in C(pg_stat_statements).
  - A statement with C($1), C($2) ... placeholders (how C(pg_stat_statements) stores texts) cannot be
    EXPLAINed on PostgreSQL 15, so its generic plan is shown instead - C(PREPARE) with
    C(plan_cache_mode=force_generic_plan), C(EXPLAIN EXECUTE) with NULL for every parameter, C(DEALLOCATE),
    in a transaction that is rolled back. This never executes the statement.
  - Reports an unreachable server as a finding (RV(reachable=false)) rather than failing. Each query is a part
    of its own, and one that fails leaves its field null and is named in RV(failures).
version_added: 0.1.0
author:
  - Synap operations (@synap)
options:
  top:
    description:
      - How many statements to list by mean and by total time.
    type: int
    default: 10
  seq_scan_min_rows:
    description:
      - Tables with fewer estimated rows than this are left out of RV(seq_scan_tables); small tables are
        scanned sequentially on purpose.
    type: int
    default: 10000
  table:
    description:
      - List the indexes of this table (optionally C(schema.table)), as the runbook does for C(entities).
    type: str
  largest_tables:
    description:
      - How many of the largest tables to list.
    type: int
    default: 10
  explain_query:
    description:
      - A query to show the plan of.
    type: str
  explain_analyze:
    description:
      - Run C(EXPLAIN ANALYZE), which executes O(explain_query). It runs in a read-only transaction that is
        rolled back, within O(statement_timeout).
      - Not for a query with placeholders, which has no values to execute with.
    type: bool
    default: false
  explain_slowest:
    description:
      - Show the plan (plain C(EXPLAIN), never C(ANALYZE)) of the statement with the highest mean execution time
        in C(pg_stat_statements), using its full text rather than the listed one shortened to O(query_length).
      - Statements of synap-play itself and utility statements (C(EXPLAIN), C(SET), C(BEGIN), DDL ...) are
        skipped; only C(SELECT), C(INSERT), C(UPDATE), C(DELETE), C(WITH), C(VALUES), C(TABLE) and C(MERGE)
        are candidates.
      - Cannot be combined with O(explain_query) or O(explain_analyze).
    type: bool
    default: false
  query_length:
    description:
      - Statement texts are shortened to this many characters.
    type: int
    default: 200
extends_documentation_fragment:
  - synap.ops.postgres
  - ansible.builtin.action_common_attributes
  - synap.ops.attributes.info
"""

EXAMPLES = r"""
- name: Slow queries and index candidates (runbook scenario 4)
  synap.ops.postgres_statements_info:
    dsn: "{{ synap_database_url }}"
    table: entities
  register: perf

- name: Plan of a suspect query, executing it
  synap.ops.postgres_statements_info:
    dsn: "{{ synap_database_url }}"
    explain_query: "SELECT * FROM entities WHERE workspace_id = '00000000-0000-0000-0000-000000000000'"
    explain_analyze: true
    statement_timeout: 30

- name: Plan of the slowest statement the application runs
  synap.ops.postgres_statements_info:
    dsn: "{{ synap_database_url }}"
    explain_slowest: true
  register: slowest

- name: Show it
  ansible.builtin.debug:
    msg: "{{ slowest.explain.mean_ms }} ms: {{ slowest.explain.plan | join('\n') }}"
  when: slowest.explain.plan is defined
"""

RETURN = r"""
msg:
  description:
    - One-line summary; when something could not be read, the target (C(user@host:port/db), never the password),
      the failure kind and the cause.
  returned: always
  type: str
  sample: "slowest mean 812.0 ms (SELECT ... FROM entities ...); 2 tables with heavy sequential scans; db 1.2 GB"
reachable:
  description: Whether a connection was made and every query of the diagnosis was read (RV(failure) null).
  returned: always
  type: bool
failure:
  description:
    - Null when everything was read. Otherwise V(refused), V(timeout), V(dns), V(tls), V(auth_failed),
      V(database_missing), V(too_many_clients), V(error) (no connection) or V(query_failed) (a query failed).
    - pg_stat_statements not being installed is not a failure; RV(statements) says so.
  returned: always
  type: str
failures:
  description:
    - What could not be read, part by part (V(connection), V(statements), V(seq_scan_tables), V(largest_tables),
      V(database_size), V(indexes), V(explain)), with a one-line reason. Empty when everything was read.
  returned: always
  type: dict
error:
  description: The failure text, with any password removed; null without a failure.
  returned: always
  type: str
statements:
  description:
    - C(available) and, if false, C(reason); C(by_mean) and C(by_total), lists of C(queryid), C(query)
      (shortened to O(query_length)), C(calls), C(mean_ms), C(max_ms), C(total_ms), C(rows).
    - Null when it could not be read.
  returned: always
  type: dict
seq_scan_tables:
  description:
    - Tables read mostly by sequential scans (C(seq_scan), C(seq_tup_read), C(idx_scan), C(estimated_rows)).
    - Null when they could not be read.
  returned: always
  type: list
  elements: dict
indexes:
  description:
    - C(schemaname), C(tablename), C(indexname), C(indexdef) of O(table).
    - Null without O(table), or when they could not be read.
  returned: always
  type: list
  elements: dict
largest_tables:
  description: C(schemaname), C(tablename), C(total_bytes), C(size) of the largest tables; null when not read.
  returned: always
  type: list
  elements: dict
database_size_bytes:
  description: Size of the connected database; null when not read.
  returned: always
  type: int
explain:
  description:
    - C(query) (the full text explained), C(analyze), C(method) and C(plan) (lines of text), or C(error).
    - C(method) says how the plan was obtained, C(plain) (EXPLAIN) or C(generic_plan) (PREPARE and
      EXPLAIN EXECUTE, for a text with placeholders).
    - For O(explain_slowest) also C(source=slowest), C(queryid), C(mean_ms) and C(calls) of the statement;
      C(error) says when there was no statement to explain.
    - Null unless O(explain_query) is given or O(explain_slowest=true), and when the server could not be read.
  returned: always
  type: dict
  sample: {"source": "slowest", "queryid": -4117205592738384012, "mean_ms": 212.4, "calls": 40,
           "query": "SELECT count(*) FROM entities WHERE workspace_id = $1", "analyze": false,
           "method": "generic_plan", "plan": ["Aggregate  (cost=2041.01..2041.02 rows=1 width=8)",
           "  ->  Seq Scan on entities  (cost=0.00..2041.00 rows=5 width=0)", "        Filter: (workspace_id = $1)"]}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.synap.ops.plugins.module_utils.gather import GatherFailed, run_gather
from ansible_collections.synap.ops.plugins.module_utils.postgres import (
    diagnosis,
    error_text,
    explain_plan,
    plannable,
    postgres_argument_spec,
    query,
    query_one,
    read_part,
    truncate,
)

EXTENSION_SQL = "SELECT extversion FROM pg_extension WHERE extname = 'pg_stat_statements'"

STATEMENTS_SQL = """
SELECT s.queryid, s.query, s.calls, s.rows,
       round(s.mean_exec_time::numeric, 2)::float8 AS mean_ms,
       round(s.max_exec_time::numeric, 2)::float8 AS max_ms,
       round(s.total_exec_time::numeric, 2)::float8 AS total_ms
FROM pg_stat_statements s
WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
ORDER BY {order} DESC
LIMIT %s
"""

# Candidates for the slowest statement, by the start of their text (enough to tell what they are); the one
# chosen is then read in full by queryid.
SLOWEST_CANDIDATES_SQL = """
SELECT s.queryid, left(s.query, 300) AS head, s.calls,
       round(s.mean_exec_time::numeric, 2)::float8 AS mean_ms
FROM pg_stat_statements s
WHERE s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND s.queryid IS NOT NULL
ORDER BY s.mean_exec_time DESC
LIMIT 500
"""

FULL_TEXT_SQL = """
SELECT s.query
FROM pg_stat_statements s
WHERE s.queryid = %s AND s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
LIMIT 1
"""

SEQ_SCAN_SQL = """
SELECT t.schemaname, t.relname AS tablename, t.seq_scan, t.seq_tup_read, coalesce(t.idx_scan, 0) AS idx_scan,
       greatest(c.reltuples, 0)::bigint AS estimated_rows
FROM pg_stat_user_tables t
JOIN pg_class c ON c.oid = t.relid
WHERE t.seq_scan > coalesce(t.idx_scan, 0) AND c.reltuples >= %s
ORDER BY t.seq_tup_read DESC
LIMIT 20
"""

INDEXES_SQL = """
SELECT schemaname, tablename, indexname, indexdef
FROM pg_indexes
WHERE tablename = %s AND (%s::text IS NULL OR schemaname = %s)
ORDER BY schemaname, indexname
"""

LARGEST_TABLES_SQL = """
SELECT n.nspname AS schemaname, c.relname AS tablename,
       pg_total_relation_size(c.oid) AS total_bytes,
       pg_size_pretty(pg_total_relation_size(c.oid)) AS size
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%%'
ORDER BY pg_total_relation_size(c.oid) DESC
LIMIT %s
"""

DATABASE_SIZE_SQL = "SELECT pg_database_size(current_database()) AS bytes, " \
                    "pg_size_pretty(pg_database_size(current_database())) AS size"


# Every documented field but msg and the common ones; each is None when its part was not read (or not asked for).
RESULT_FIELDS = ("error", "statements", "seq_scan_tables", "indexes", "largest_tables", "database_size_bytes",
                 "explain")


def statements(conn, top, qlen):
    if not query_one(conn, EXTENSION_SQL):
        return dict(available=False,
                    reason="extension pg_stat_statements is not installed in this database "
                           "(CREATE EXTENSION pg_stat_statements, with it in shared_preload_libraries)")
    try:
        by_mean = query(conn, STATEMENTS_SQL.format(order="s.mean_exec_time"), (top,))
        by_total = query(conn, STATEMENTS_SQL.format(order="s.total_exec_time"), (top,))
    except Exception as exc:  # e.g. installed but not preloaded: the view raises
        return dict(available=False, reason=error_text(exc))
    for row in by_mean + by_total:
        row["query"] = truncate(row["query"], qlen)
    return dict(available=True, by_mean=by_mean, by_total=by_total)


def explain(conn, statement, analyze, **about):
    result = dict(about, query=statement, analyze=analyze)
    try:
        result["method"], result["plan"] = explain_plan(conn, statement, analyze)
    except Exception as exc:
        result["error"] = error_text(exc)
    return result


def explain_slowest(conn, statements_found):
    if not statements_found["available"]:
        return dict(source="slowest", error=statements_found["reason"])
    candidates = query(conn, SLOWEST_CANDIDATES_SQL)
    chosen = next((c for c in candidates if plannable(c["head"])), None)
    if chosen is None:
        return dict(source="slowest", error="pg_stat_statements holds no application SELECT, INSERT, UPDATE or "
                                            "DELETE for this database yet; nothing to explain")
    row = query_one(conn, FULL_TEXT_SQL, (chosen["queryid"],))
    if row is None:  # evicted or reset since the candidates were read
        return dict(source="slowest", queryid=chosen["queryid"],
                    error="the statement left pg_stat_statements while it was read; run again")
    return explain(conn, row["query"], False, source="slowest", queryid=chosen["queryid"],
                   mean_ms=chosen["mean_ms"], calls=chosen["calls"])


def diagnose(conn, p, failures):
    qlen = p["query_length"]
    size = read_part(failures, "database_size", query_one, conn, DATABASE_SIZE_SQL)
    result = dict(
        statements=read_part(failures, "statements", statements, conn, p["top"], qlen),
        seq_scan_tables=read_part(failures, "seq_scan_tables", query, conn, SEQ_SCAN_SQL, (p["seq_scan_min_rows"],)),
        largest_tables=read_part(failures, "largest_tables", query, conn, LARGEST_TABLES_SQL, (p["largest_tables"],)),
        database_size_bytes=None if size is None else size["bytes"],
    )
    if p["table"]:
        schema, _dot, table = p["table"].rpartition(".")
        result["indexes"] = read_part(failures, "indexes", query, conn, INDEXES_SQL,
                                      (table, schema or None, schema or None))
    if p["explain_query"]:
        result["explain"] = explain(conn, p["explain_query"], p["explain_analyze"])
    elif p["explain_slowest"]:
        if result["statements"] is None:
            result["explain"] = dict(source="slowest", error="pg_stat_statements could not be read")
        else:
            result["explain"] = read_part(failures, "explain", explain_slowest, conn, result["statements"])

    parts = []
    st = result["statements"]
    if st is not None and st["available"] and st["by_mean"]:
        worst = st["by_mean"][0]
        parts.append(f"slowest mean {worst['mean_ms']:.1f} ms ({truncate(worst['query'], 60)})")
    elif st is not None and not st["available"]:
        parts.append("pg_stat_statements unavailable")
    if result["seq_scan_tables"] is not None:
        parts.append(f"{len(result['seq_scan_tables'])} tables with heavy sequential scans")
    if result.get("indexes") is not None:
        parts.append(f"{len(result['indexes'])} indexes on {p['table']}")
    if size is not None:
        parts.append(f"db {size['size']}")
    if result.get("explain") is not None:
        if "error" in result["explain"]:
            parts.append("explain failed")
        elif result["explain"].get("source") == "slowest":
            parts.append(f"plan of the slowest ({result['explain']['mean_ms']:.1f} ms) included")
        else:
            parts.append("plan included")
    result["msg"] = "; ".join(parts) or "PostgreSQL reachable"
    return result


def argument_spec():
    return postgres_argument_spec(
        top=dict(type="int", default=10),
        seq_scan_min_rows=dict(type="int", default=10000),
        table=dict(type="str"),
        largest_tables=dict(type="int", default=10),
        explain_query=dict(type="str"),
        explain_analyze=dict(type="bool", default=False),
        explain_slowest=dict(type="bool", default=False),
        query_length=dict(type="int", default=200),
    )


SPEC_OPTIONS = {}


def gather(params, run_command=None):
    """The module's result from its validated ``params``; ``run_command`` is not needed here."""
    if params["explain_slowest"] and params["explain_query"]:
        raise GatherFailed("explain_query and explain_slowest both ask for the one plan in `explain`: give one")
    if params["explain_slowest"] and params["explain_analyze"]:
        raise GatherFailed("explain_analyze applies to explain_query only: explain_slowest never executes "
                           "the statement; drop explain_analyze")
    return diagnosis(params, diagnose, "a diagnosis query", RESULT_FIELDS)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True, **SPEC_OPTIONS)
    run_gather(module, gather)


if __name__ == "__main__":
    main()
