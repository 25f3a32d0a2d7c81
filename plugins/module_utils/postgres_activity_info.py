# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""synap.ops.postgres_activity_info's look-up: diagnose PostgreSQL connections, sessions, locks and blocking chains.

plugins/modules/postgres_activity_info.py documents it and runs ``INFO``; synap-play's first look calls ``gather`` itself.
"""

from __future__ import annotations

from collections import Counter

from ansible_collections.synap.ops.plugins.module_utils.gather import InfoModule
from ansible_collections.synap.ops.plugins.module_utils.postgres import (
    SESSIONS_SQL,
    blocking_tree,
    diagnosis,
    postgres_argument_spec,
    query,
    query_one,
    read_part,
    truncate,
)

SERVER_SQL = """
SELECT current_setting('server_version') AS version,
       extract(epoch FROM now() - pg_postmaster_start_time())::float8 AS uptime_seconds,
       pg_is_in_recovery() AS in_recovery,
       current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int AS superuser_reserved_connections,
       current_database() AS database
"""

# Apart from the server's settings: on a large database it is the slow one, and must not cost them.
DATABASE_SIZE_SQL = "SELECT pg_database_size(current_database()) AS database_size_bytes"

LOCK_WAITS_SQL = """
SELECT l.pid, l.locktype, l.mode, l.relation::regclass::text AS relation, l.transactionid::text AS transactionid,
       a.application_name, a.usename,
       extract(epoch FROM now() - a.state_change)::float8 AS waiting_seconds
FROM pg_locks l
LEFT JOIN pg_stat_activity a ON a.pid = l.pid
WHERE NOT l.granted
ORDER BY waiting_seconds DESC NULLS LAST
"""

# Every documented field but msg and the common ones; each is None when its part could not be read.
RESULT_FIELDS = ("error", "server", "connections", "counts", "idle_in_transaction", "idle_sessions", "long_queries",
                 "blocked", "root_blockers", "blocking_tree", "lock_waits", "oldest_transaction_seconds",
                 "database_size_bytes", "database")


def _round(value):
    return None if value is None else round(value, 1)


def session_summary(s, query_length):
    return dict(
        pid=s["pid"],
        application_name=s["application_name"],
        user=s["usename"],
        client_addr=s["client_addr"],
        database=s["datname"],
        state=s["state"],
        state_seconds=_round(s["state_seconds"]),
        xact_seconds=_round(s["xact_seconds"]),
        query_seconds=_round(s["query_seconds"]),
        wait_event_type=s["wait_event_type"],
        wait_event=s["wait_event"],
        blocked_by=list(s["blocked_by"] or []),
        query=truncate(s["query"], query_length),
    )


def connection_use(server, clients):
    max_conn = server["max_connections"]
    reserved = server["superuser_reserved_connections"]
    used = len(clients)
    return dict(
        used=used,
        max_connections=max_conn,
        superuser_reserved_connections=reserved,
        available_to_users=max(0, max_conn - reserved - used),
        available_to_superusers=max(0, max_conn - used),
        saturated=used >= max_conn - reserved,
    )


def session_findings(sessions, params):
    """The fields read from pg_stat_activity, and the numbers the summary needs."""
    clients = [s for s in sessions if s["backend_type"] == "client backend"]
    qlen = params["query_length"]
    limit = params["list_limit"]
    counts = dict(
        application_name=dict(Counter(s["application_name"] or "(none)" for s in clients)),
        state=dict(Counter(s["state"] or "(none)" for s in clients)),
        user=dict(Counter(s["usename"] or "(none)" for s in clients)),
        client_addr=dict(Counter(s["client_addr"] or "local" for s in clients)),
    )

    def oldest_first(rows, key):
        return sorted(rows, key=lambda s: -(s[key] or 0))

    others = [s for s in clients if not s["own_session"]]
    # An aborted transaction ("idle in transaction (aborted)") has released its locks and has no start time left:
    # counted by state, not listed with the transactions that hold locks.
    idle_in_tx = oldest_first([s for s in others if s["state"] == "idle in transaction"], "xact_seconds")
    idle = oldest_first([s for s in others if s["state"] == "idle"
                         and (s["state_seconds"] or 0) > params["idle_threshold"]], "state_seconds")
    long_queries = oldest_first([s for s in others if s["state"] == "active"
                                 and (s["query_seconds"] or 0) > params["long_query_threshold"]], "query_seconds")
    blocked = [s for s in sessions if s["blocked_by"]]
    roots, tree = blocking_tree(sessions)
    by_pid = {s["pid"]: s for s in sessions}

    def describe(node):
        s = by_pid.get(node["pid"], {})
        return dict(pid=node["pid"], application_name=s.get("application_name"), user=s.get("usename"),
                    state=s.get("state"), blocks=[describe(child) for child in node["blocks"]])

    xact_ages = [s["xact_seconds"] for s in others if s["xact_seconds"] is not None]
    fields = dict(
        counts=counts,
        idle_in_transaction=[session_summary(s, qlen) for s in idle_in_tx[:limit]],
        idle_sessions=[session_summary(s, qlen) for s in idle[:limit]],
        long_queries=[session_summary(s, qlen) for s in long_queries[:limit]],
        blocked=[session_summary(s, qlen) for s in blocked[:limit]],
        root_blockers=[session_summary(by_pid[pid], qlen) for pid in roots if pid in by_pid],
        blocking_tree=[describe(node) for node in tree],
        oldest_transaction_seconds=_round(max(xact_ages)) if xact_ages else None,
    )
    return fields, clients, dict(idle=len(idle), long=len(long_queries), blocked=len(blocked))


def diagnose(conn, params, failures):
    server = read_part(failures, "server", query_one, conn, SERVER_SQL)
    sessions = read_part(failures, "sessions", query, conn, SESSIONS_SQL)
    lock_waits = read_part(failures, "lock_waits", query, conn, LOCK_WAITS_SQL)
    size = read_part(failures, "database_size", query_one, conn, DATABASE_SIZE_SQL)
    result = {}
    if server is not None:
        result.update(database=server["database"],
                      server=dict(version=server["version"], uptime_seconds=_round(server["uptime_seconds"]),
                                  in_recovery=server["in_recovery"], max_connections=server["max_connections"],
                                  superuser_reserved_connections=server["superuser_reserved_connections"]))
    numbers = None
    if sessions is not None:
        fields, clients, numbers = session_findings(sessions, params)
        result.update(fields)
        if server is not None:
            result["connections"] = connection_use(server, clients)
    if lock_waits is not None:
        result["lock_waits"] = [dict(w, waiting_seconds=_round(w["waiting_seconds"]))
                                for w in lock_waits[:params["list_limit"]]]
    if size is not None:
        result["database_size_bytes"] = size["database_size_bytes"]
    result["msg"] = summary(result, params, numbers)
    return result


def summary(result, params, numbers):
    conn = result.get("connections")
    parts = ["PostgreSQL reachable"]
    if conn is not None:
        top_apps = sorted(result["counts"]["application_name"].items(), key=lambda kv: -kv[1])[:2]
        apps = ", ".join(f"{name} {count}" for name, count in top_apps)
        parts[0] += f": {conn['used']}/{conn['max_connections']} connections ({apps})"
        if conn["saturated"]:
            parts.append(f"SATURATED (only the {conn['superuser_reserved_connections']} superuser slots remain)")
    if result.get("server") and result["server"]["in_recovery"]:
        parts.append("in recovery (read-only standby)")
    if numbers is not None:
        parts.append(f"{numbers['idle']} idle > {params['idle_threshold']:g} s")
        parts.append(f"{len(result['idle_in_transaction'])} idle in transaction")
        parts.append(f"{numbers['long']} queries > {params['long_query_threshold']:g} s")
        chains = len(result["blocking_tree"])
        if chains:
            roots = ", ".join(str(r["pid"]) for r in result["root_blockers"])
            parts.append(f"{chains} blocked chain{'s' if chains != 1 else ''} ({numbers['blocked']} waiting; "
                         f"root pid {roots})")
        else:
            parts.append("0 blocked chains")
    return ", ".join(parts)


def argument_spec():
    return postgres_argument_spec(
        idle_threshold=dict(type="float", default=600),
        long_query_threshold=dict(type="float", default=60),
        query_length=dict(type="int", default=200),
        list_limit=dict(type="int", default=50),
    )


def gather(params, run_command=None):
    """The module's result from its validated ``params``; ``run_command`` is not needed here."""
    return diagnosis(params, diagnose, "the diagnosis query", RESULT_FIELDS)


INFO = InfoModule(argument_spec, gather)
