# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""synap.ops.synap_proposals_info's look-up: count Synap proposals by status cheaply and find pending ones stuck for too long.

plugins/modules/synap_proposals_info.py documents it and runs ``INFO``; synap-play's first look calls ``gather`` itself.
"""

from __future__ import annotations

from ansible_collections.synap.ops.plugins.module_utils.gather import InfoModule
from ansible_collections.synap.ops.plugins.module_utils.postgres import (
    diagnosis,
    postgres_argument_spec,
    query,
    query_one,
    read_part,
)

TABLES_SQL = """
SELECT to_regclass('proposals') IS NOT NULL AS proposals, to_regclass('workspaces') IS NOT NULL AS workspaces
"""

# Planner statistics: the most common status values with their frequencies, and the table's row estimate.
ESTIMATE_SQL = """
SELECT c.reltuples::bigint AS table_rows,
       s.most_common_vals::text::text[] AS vals,
       s.most_common_freqs::float8[] AS freqs
FROM pg_class c
LEFT JOIN pg_stats s ON s.schemaname = c.relnamespace::regnamespace::text AND s.tablename = c.relname
                    AND s.attname = 'status'
WHERE c.oid = 'proposals'::regclass
"""

# Distinct workspace_ids by a loose index scan (one index probe per workspace), then the
# (workspace_id, status) index for each: cost follows workspaces + matching rows, not table size.
WORKSPACE_WALK = """
WITH RECURSIVE ws AS (
    (SELECT workspace_id FROM proposals ORDER BY workspace_id LIMIT 1)
    UNION ALL
    SELECT (SELECT p.workspace_id FROM proposals p WHERE p.workspace_id > ws.workspace_id
            ORDER BY p.workspace_id LIMIT 1)
    FROM ws WHERE ws.workspace_id IS NOT NULL
)
"""

# Everything that needs the walk, from one walk (the walk is the costly part: one index probe per workspace):
# the workspace count; per status in %(statuses)s its count through the index, stopped at %(limit)s rows;
# the pending total, how many are older than %(older_than)s seconds and the oldest age; and the oldest
# %(list_limit)s of those stale ones. One row per stale proposal listed (stale_position 1, 2, ...) with the
# summary repeated on each, or a single row with null stale columns when none is stale.
WORKSPACE_WALK_SQL = WORKSPACE_WALK.rstrip() + """,
walked AS MATERIALIZED (SELECT workspace_id FROM ws WHERE workspace_id IS NOT NULL),
pending AS MATERIALIZED (
    SELECT p.* FROM walked CROSS JOIN LATERAL (
        SELECT id, workspace_id, target_type, target_id, created_at FROM proposals p
        WHERE p.workspace_id = walked.workspace_id AND p.status = %(pending)s
    ) p
),
summary AS (
    SELECT (SELECT count(*) FROM walked) AS workspaces,
           ARRAY(SELECT (SELECT count(*) FROM (
                             SELECT 1 FROM walked CROSS JOIN LATERAL (
                                 SELECT 1 FROM proposals p
                                 WHERE p.workspace_id = walked.workspace_id AND p.status = s.status
                             ) hit
                             LIMIT %(limit)s
                         ) bounded)
                 FROM unnest(%(statuses)s::text[]) WITH ORDINALITY s(status, position)
                 ORDER BY s.position) AS index_counts,
           count(*) AS pending,
           count(*) FILTER (WHERE created_at < now() - make_interval(secs => %(older_than)s)) AS stale,
           extract(epoch FROM now() - min(created_at))::float8 AS oldest_seconds
    FROM pending
),
stale_list AS (
    SELECT p.id::text AS id, p.workspace_id, p.target_type, p.target_id, p.created_at::text AS created_at,
           round(extract(epoch FROM now() - p.created_at)::numeric, 1)::float8 AS age_seconds,
           row_number() OVER (ORDER BY p.created_at, p.id) AS stale_position
    FROM (SELECT * FROM pending WHERE created_at < now() - make_interval(secs => %(older_than)s)
          ORDER BY created_at, id LIMIT %(list_limit)s) p
)
SELECT summary.*, stale_list.* FROM summary LEFT JOIN stale_list ON true ORDER BY stale_list.stale_position
"""

STALE_KEYS = ("id", "workspace_id", "target_type", "target_id", "created_at", "age_seconds")

# The runbook's own query: a full scan, only with count_method=exact.
FULL_SCAN_SQL = "SELECT status, count(*) AS n FROM proposals GROUP BY status"

AUTO_APPROVE_SQL = """
SELECT coalesce(lower(settings->>'aiAutoApprove'), 'unset') AS value, count(*) AS workspaces
FROM workspaces GROUP BY 1 ORDER BY 1
"""

AUTO_APPROVE_SAMPLE_SQL = """
SELECT id::text AS id, name, settings->>'aiAutoApprove' AS ai_auto_approve
FROM workspaces ORDER BY (settings->>'aiAutoApprove') = 'true' DESC NULLS LAST, id LIMIT %s
"""

PENDING = "pending"

# Every documented field but msg and the common ones; each is None when its part was not read.
RESULT_FIELDS = ("error", "counts", "table_rows_estimate", "workspaces_with_proposals", "pending_total",
                 "stale_pending_count", "stale_pending", "oldest_pending_seconds", "auto_approve",
                 "auto_approve_sample", "queries")

METHOD_DETAIL = {
    "estimate": "planner statistics (pg_stats most common values x pg_class.reltuples); no table access",
    "index": "exact, index (workspace_id, status) walked workspace by workspace",
    "bounded": "index (workspace_id, status), stopped at the limit: at least this many",
    "full_scan": "exact, full table scan GROUP BY status (the runbook's query)",
}
UNKNOWN_DETAIL = ("not counted: rarer than the planner's most common values, which give no number for it, "
                  "and not counted through the index")


def count_entry(count, method, exact):
    return dict(count=count, exact=exact, method=method, method_detail=METHOD_DETAIL[method])


def estimates(conn):
    row = query_one(conn, ESTIMATE_SQL)
    table_rows = row["table_rows"] if row else -1
    found = {}
    if row and row["vals"] and table_rows > 0:
        for position, value in enumerate(row["vals"]):
            found[value] = int(round(row["freqs"][position] * table_rows))
    return table_rows, found


def indexed_statuses(p, statuses, estimated):
    """The statuses counted through the index: with count_method=auto, pending and those the statistics put at
    most at exact_limit (or do not mention)."""
    if p["count_method"] != "auto":
        return []
    return [status for status in statuses if status == PENDING or estimated.get(status) is None
            or estimated[status] <= p["exact_limit"]]


def walk_workspaces(conn, p, indexed):
    """The one workspace walk of this run (WORKSPACE_WALK_SQL): its summary row, the stale pending list and
    ``index_counts``, the bounded index count (at most exact_limit + 1) of every status in ``indexed``."""
    limit = p["exact_limit"] + 1
    # Pending needs no count of its own: the summary counts every pending proposal anyway, and the bounded
    # count is that total capped at the limit.
    walked = [status for status in indexed if status != PENDING]
    rows = query(conn, WORKSPACE_WALK_SQL, dict(
        pending=PENDING, statuses=walked, limit=limit, older_than=p["pending_older_than"],
        list_limit=p["list_limit"]))
    walk = dict(rows[0])
    walk["index_counts"] = dict(zip(walked, walk["index_counts"], strict=True))
    if PENDING in indexed:
        walk["index_counts"][PENDING] = min(walk["pending"], limit)
    walk["stale_pending"] = [{k: r[k] for k in STALE_KEYS} for r in rows if r["stale_position"] is not None]
    return walk


def status_counts(p, statuses, estimated, index_counts, exact):
    """Per status its count entry: from the full scan when ``exact`` holds its result, else through the index
    when counted there, else from the statistics."""
    if exact is not None:
        return {status: count_entry(exact.get(status, 0), "full_scan", True)
                for status in dict.fromkeys(statuses + sorted(exact))}
    limit = p["exact_limit"] + 1
    counts = {}
    for status in statuses:
        estimate = estimated.get(status)
        if status in index_counts:
            n = index_counts[status]
            if n < limit:
                counts[status] = count_entry(n, "index", True)
            elif estimate is not None:
                counts[status] = count_entry(estimate, "estimate", False)
            else:
                counts[status] = count_entry(p["exact_limit"], "bounded", False)
        elif estimate is not None:
            counts[status] = count_entry(estimate, "estimate", False)
        else:
            # Not among the most common values: rarer than any of them, but the statistics cannot say how rare.
            counts[status] = dict(count_entry(None, "estimate", False), method_detail=UNKNOWN_DETAIL)
    return counts


def auto_approve_summary(conn, p):
    return ({r["value"]: r["workspaces"] for r in query(conn, AUTO_APPROVE_SQL)},
            query(conn, AUTO_APPROVE_SAMPLE_SQL, (p["list_limit"],)))


def diagnose(conn, p, failures):
    tables = query_one(conn, TABLES_SQL)
    if not tables["proposals"]:
        failures.add("proposals", "not_found", "table proposals does not exist")
        return dict(error="table proposals does not exist",
                    msg="no proposals table: is dsn pointing at the Synap database?")
    queries = [ESTIMATE_SQL.strip()]
    read = read_part(failures, "estimates", estimates, conn)
    table_rows, estimated = read if read is not None else (None, {})
    statuses = list(dict.fromkeys(list(p["statuses"]) + sorted(estimated)))
    exact = None
    if p["count_method"] == "exact":
        queries.append(FULL_SCAN_SQL)
        exact = read_part(failures, "full_scan",
                          lambda: {r["status"]: r["n"] for r in query(conn, FULL_SCAN_SQL)})
    walk = read_part(failures, "workspace_walk", walk_workspaces, conn, p, indexed_statuses(p, statuses, estimated))
    queries.append(WORKSPACE_WALK_SQL.strip())
    result = dict(table_rows_estimate=table_rows, queries=queries)
    # Counts come from whatever was read, each naming its method; with nothing read there are none.
    if read is not None or walk is not None or exact is not None:
        result["counts"] = status_counts(p, statuses, estimated, walk["index_counts"] if walk else {}, exact)
    if walk is not None:
        oldest = walk["oldest_seconds"]
        result.update(
            workspaces_with_proposals=walk["workspaces"],
            pending_total=walk["pending"],
            stale_pending_count=walk["stale"],
            stale_pending=walk["stale_pending"],
            oldest_pending_seconds=None if oldest is None else round(oldest, 1),
        )
    if tables["workspaces"]:
        queries += [AUTO_APPROVE_SQL.strip(), AUTO_APPROVE_SAMPLE_SQL.strip()]
        approve = read_part(failures, "auto_approve", auto_approve_summary, conn, p)
        if approve is not None:
            result["auto_approve"], result["auto_approve_sample"] = approve
    else:
        failures.add("auto_approve", "not_found", "table workspaces does not exist")
    result["queries"] = list(dict.fromkeys(queries))

    parts = []
    if result.get("counts") is not None:
        shown = ", ".join(
            f"{status} {'' if c['exact'] else '~'}{c['count']} ({c['method']})"
            for status, c in result["counts"].items() if c["count"] or status == PENDING)
        parts.append(f"proposals: {shown}")
    if walk is not None:
        pending_part = f"{walk['stale']} pending > {p['pending_older_than']:g} s"
        if result["oldest_pending_seconds"] is not None:
            pending_part += f", oldest {result['oldest_pending_seconds']:.0f} s"
        parts.append(pending_part)
    if result.get("auto_approve") is not None:
        parts.append("aiAutoApprove: {}".format(", ".join(f"{k} {v}" for k, v in result["auto_approve"].items())
                                                or "no workspaces"))
    result["msg"] = "; ".join(parts) or "PostgreSQL reachable"
    return result


def argument_spec():
    return postgres_argument_spec(
        count_method=dict(type="str", choices=["auto", "estimate", "exact"], default="auto"),
        exact_limit=dict(type="int", default=10000),
        statuses=dict(type="list", elements="str", default=["pending", "validated", "rejected", "approved"]),
        pending_older_than=dict(type="float", default=300),
        list_limit=dict(type="int", default=20),
    )


def gather(params, run_command=None):
    """The module's result from its validated ``params``; ``run_command`` is not needed here."""
    # e.g. statement_timeout on a sick server: a finding, not a crash
    return diagnosis(params, diagnose, "a proposals query", RESULT_FIELDS,
                     advice="try count_method=estimate or raise statement_timeout")


INFO = InfoModule(argument_spec, gather)
