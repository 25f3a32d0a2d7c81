# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""synap.ops.postgres_statements_info's look-up: find slow statements, missing indexes and large tables in PostgreSQL.

plugins/modules/postgres_statements_info.py documents it and runs ``INFO``; synap-play's first look calls ``gather`` itself.
"""

from __future__ import annotations

import re

from ansible_collections.synap.ops.plugins.module_utils.gather import GatherFailed, InfoModule
from ansible_collections.synap.ops.plugins.module_utils.postgres import (
    OWN_STATEMENT_MARKER,
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

# The application's statements: not synap-play's own (their leading marker), not those of the roles the caller
# names as monitoring (a postgres_exporter's queries run every scrape and can outweigh the application's).
APPLICATION_STATEMENTS = """
s.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
AND left(s.query, %(marker_length)s) <> %(marker)s
AND s.userid NOT IN (SELECT oid FROM pg_roles WHERE rolname = ANY(%(exclude_roles)s))
"""

STATEMENTS_SQL = """
SELECT s.queryid, s.query, s.calls, s.rows,
       round(s.mean_exec_time::numeric, 2)::float8 AS mean_ms,
       round(s.max_exec_time::numeric, 2)::float8 AS max_ms,
       round(s.total_exec_time::numeric, 2)::float8 AS total_ms
FROM pg_stat_statements s
WHERE """ + APPLICATION_STATEMENTS + """
ORDER BY {order} DESC
LIMIT %(top)s
"""

# Candidates for the slowest statement, by the start of their text (enough to tell what they are); the one
# chosen is then read in full by queryid.
SLOWEST_CANDIDATES_SQL = """
SELECT s.queryid, left(s.query, 300) AS head, s.calls,
       round(s.mean_exec_time::numeric, 2)::float8 AS mean_ms,
       coalesce(s.query ~* %(names_table)s, false) AS names_table
FROM pg_stat_statements s
WHERE """ + APPLICATION_STATEMENTS + """ AND s.queryid IS NOT NULL
ORDER BY names_table DESC, s.mean_exec_time DESC
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


def application_filter(exclude_roles, **more):
    return dict(marker=OWN_STATEMENT_MARKER, marker_length=len(OWN_STATEMENT_MARKER),
                exclude_roles=list(exclude_roles or []), **more)


def statements(conn, top, qlen, exclude_roles):
    if not query_one(conn, EXTENSION_SQL):
        return dict(available=False,
                    reason="extension pg_stat_statements is not installed in this database "
                           "(CREATE EXTENSION pg_stat_statements, with it in shared_preload_libraries)")
    try:
        by_mean = query(conn, STATEMENTS_SQL.format(order="s.mean_exec_time"), application_filter(exclude_roles, top=top))
        by_total = query(conn, STATEMENTS_SQL.format(order="s.total_exec_time"),
                         application_filter(exclude_roles, top=top))
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


def explain_slowest(conn, statements_found, exclude_roles, table=None):
    if not statements_found["available"]:
        return dict(source="slowest", error=statements_found["reason"])
    # The table's name as a word of the text (PostgreSQL's \m and \M), so that "entities" is not "entities_tags".
    names_table = r"\m{}\M".format(re.escape(table.rpartition(".")[2])) if table else None
    rows = query(conn, SLOWEST_CANDIDATES_SQL, application_filter(exclude_roles, names_table=names_table))
    candidates = [c for c in rows if plannable(c["head"])]
    # The table under investigation (its sequential scans): the slowest statement that names it is the one whose
    # plan shows them; a slower one elsewhere (another table's query, run twice since the statistics were reset) would
    # not. The slowest of all when none names it.
    chosen = _slowest([c for c in candidates if c["names_table"]]) or _slowest(candidates)
    if chosen is None:
        return dict(source="slowest", error="pg_stat_statements holds no application SELECT, INSERT, UPDATE or "
                                            "DELETE for this database yet; nothing to explain")
    row = query_one(conn, FULL_TEXT_SQL, (chosen["queryid"],))
    if row is None:  # evicted or reset since the candidates were read
        return dict(source="slowest", queryid=chosen["queryid"],
                    error="the statement left pg_stat_statements while it was read; run again")
    about = dict(table=table) if chosen["names_table"] else {}
    return explain(conn, row["query"], False, source="slowest", queryid=chosen["queryid"],
                   mean_ms=chosen["mean_ms"], calls=chosen["calls"], **about)


def _slowest(candidates):
    """The first of CANDIDATES (slowest first) run more than once, or the first when none was: a statement run once
    (someone's ad hoc query) is not what slows a service's requests down."""
    return next((c for c in candidates if c["calls"] > 1), candidates[0] if candidates else None)


def diagnose(conn, p, failures):
    qlen = p["query_length"]
    size = read_part(failures, "database_size", query_one, conn, DATABASE_SIZE_SQL)
    result = dict(
        statements=read_part(failures, "statements", statements, conn, p["top"], qlen, p["exclude_roles"]),
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
            result["explain"] = read_part(failures, "explain", explain_slowest, conn, result["statements"],
                                          p["exclude_roles"], p["table"])

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
        exclude_roles=dict(type="list", elements="str", default=[]),
    )


def gather(params, run_command=None):
    """The module's result from its validated ``params``; ``run_command`` is not needed here."""
    if params["explain_slowest"] and params["explain_query"]:
        raise GatherFailed("explain_query and explain_slowest both ask for the one plan in `explain`: give one")
    if params["explain_slowest"] and params["explain_analyze"]:
        raise GatherFailed("explain_analyze applies to explain_query only: explain_slowest never executes "
                           "the statement; drop explain_analyze")
    return diagnosis(params, diagnose, "a diagnosis query", RESULT_FIELDS)


INFO = InfoModule(argument_spec, gather)
