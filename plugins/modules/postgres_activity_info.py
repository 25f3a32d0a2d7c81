#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: postgres_activity_info
short_description: Diagnose PostgreSQL connections, sessions, locks and blocking chains
description:
  - Reports whether PostgreSQL answers and, if not, why (V(refused), V(too_many_clients), V(auth_failed),
    V(database_missing), V(timeout)) as a finding with RV(reachable=false) instead of failing.
  - Reports server version, uptime and recovery state; connections used against C(max_connections) and
    C(superuser_reserved_connections); counts by application, state, user and client address;
    idle-in-transaction sessions; idle sessions and active queries older than thresholds; blocked sessions
    folded into a blocking tree with its root blockers; ungranted lock requests; the oldest transaction;
    the database size.
  - Connect as a superuser to diagnose a saturated server; superusers use the reserved connection slots.
  - Never changes anything.
version_added: 0.1.0
author:
  - Synap operations (@synap)
options:
  idle_threshold:
    description:
      - Sessions idle for longer than this many seconds are listed in RV(idle_sessions).
    type: float
    default: 600
  long_query_threshold:
    description:
      - Active queries running for longer than this many seconds are listed in RV(long_queries).
    type: float
    default: 60
  query_length:
    description:
      - Query texts are shortened to this many characters.
    type: int
    default: 200
  list_limit:
    description:
      - At most this many sessions are listed in each list (counts are always complete).
    type: int
    default: 50
extends_documentation_fragment:
  - synap.ops.postgres
  - ansible.builtin.action_common_attributes
  - synap.ops.attributes.info
"""

EXAMPLES = r"""
- name: Diagnose the database the way the runbook's scenario 3 does
  synap.ops.postgres_activity_info:
    dsn: "{{ synap_database_url }}"
    idle_threshold: "{{ synap_threshold_idle_seconds }}"
    long_query_threshold: "{{ synap_threshold_long_query_seconds }}"
  register: db

- name: Show the summary
  ansible.builtin.debug:
    msg: "{{ db.msg }}"
"""

RETURN = r"""
msg:
  description: One-line summary of the findings.
  returned: always
  type: str
  sample: "PostgreSQL reachable: 24/25 connections (api 20), 3 idle > 600 s, 1 blocked chain"
reachable:
  description: Whether a connection could be made.
  returned: always
  type: bool
failure:
  description: Why the connection failed.
  returned: when RV(reachable) is false
  type: str
  sample: too_many_clients
error:
  description: The server's or library's message for the failure, with any password removed.
  returned: when RV(reachable) is false
  type: str
server:
  description: Version, uptime, recovery state and connection limits.
  returned: when reachable
  type: dict
  sample:
    version: "15.18"
    uptime_seconds: 3600.5
    in_recovery: false
    max_connections: 25
    superuser_reserved_connections: 3
connections:
  description:
    - Client connections in use against the limits.
    - C(saturated) is true when ordinary users can no longer connect.
  returned: when reachable
  type: dict
  sample:
    used: 23
    max_connections: 25
    superuser_reserved_connections: 3
    available_to_users: 0
    available_to_superusers: 2
    saturated: true
counts:
  description: Client connections counted by C(application_name), C(state), C(user) and C(client_addr).
  returned: when reachable
  type: dict
  sample:
    application_name: {api: 20, psql: 1}
    state: {idle: 20, active: 1}
idle_in_transaction:
  description: Sessions idle inside an open transaction, oldest first.
  returned: when reachable
  type: list
  elements: dict
idle_sessions:
  description: Sessions idle for longer than O(idle_threshold), oldest first.
  returned: when reachable
  type: list
  elements: dict
long_queries:
  description: Active queries running longer than O(long_query_threshold) (pid, app, user, duration, wait event, query).
  returned: when reachable
  type: list
  elements: dict
blocked:
  description: Sessions waiting for a lock held by others, with the pids blocking them.
  returned: when reachable
  type: list
  elements: dict
root_blockers:
  description: Sessions that block others without waiting themselves; ending these ends the chains.
  returned: when reachable
  type: list
  elements: dict
blocking_tree:
  description: Nested C({pid, application_name, state, blocks}) starting at each root blocker.
  returned: when reachable
  type: list
  elements: dict
lock_waits:
  description: Lock requests not granted (the runbook's C(pg_locks WHERE NOT granted)), with the relation name.
  returned: when reachable
  type: list
  elements: dict
oldest_transaction_seconds:
  description: Age of the oldest open transaction of a client session, or null.
  returned: when reachable
  type: float
database_size_bytes:
  description: Size of the connected database.
  returned: when reachable
  type: int
database:
  description: Name of the connected database.
  returned: when reachable
  type: str
"""

from collections import Counter

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.synap.ops.plugins.module_utils.gather import run_gather
from ansible_collections.synap.ops.plugins.module_utils.postgres import (
    SESSIONS_SQL,
    blocking_tree,
    diagnosis,
    postgres_argument_spec,
    query,
    query_one,
    truncate,
)

SERVER_SQL = """
SELECT current_setting('server_version') AS version,
       extract(epoch FROM now() - pg_postmaster_start_time())::float8 AS uptime_seconds,
       pg_is_in_recovery() AS in_recovery,
       current_setting('max_connections')::int AS max_connections,
       current_setting('superuser_reserved_connections')::int AS superuser_reserved_connections,
       current_database() AS database,
       pg_database_size(current_database()) AS database_size_bytes
"""

LOCK_WAITS_SQL = """
SELECT l.pid, l.locktype, l.mode, l.relation::regclass::text AS relation, l.transactionid::text AS transactionid,
       a.application_name, a.usename,
       extract(epoch FROM now() - a.state_change)::float8 AS waiting_seconds
FROM pg_locks l
LEFT JOIN pg_stat_activity a ON a.pid = l.pid
WHERE NOT l.granted
ORDER BY waiting_seconds DESC NULLS LAST
"""


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


def diagnose(conn, params):
    server = query_one(conn, SERVER_SQL)
    sessions = query(conn, SESSIONS_SQL)
    lock_waits = query(conn, LOCK_WAITS_SQL)
    clients = [s for s in sessions if s["backend_type"] == "client backend"]
    qlen = params["query_length"]
    limit = params["list_limit"]

    max_conn = server["max_connections"]
    reserved = server["superuser_reserved_connections"]
    used = len(clients)
    connections = dict(
        used=used,
        max_connections=max_conn,
        superuser_reserved_connections=reserved,
        available_to_users=max(0, max_conn - reserved - used),
        available_to_superusers=max(0, max_conn - used),
        saturated=used >= max_conn - reserved,
    )
    counts = dict(
        application_name=dict(Counter(s["application_name"] or "(none)" for s in clients)),
        state=dict(Counter(s["state"] or "(none)" for s in clients)),
        user=dict(Counter(s["usename"] or "(none)" for s in clients)),
        client_addr=dict(Counter(s["client_addr"] or "local" for s in clients)),
    )

    def oldest_first(rows, key):
        return sorted(rows, key=lambda s: -(s[key] or 0))

    others = [s for s in clients if not s["own_session"]]
    idle_in_tx = oldest_first([s for s in others if (s["state"] or "").startswith("idle in transaction")],
                              "xact_seconds")
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
    result = dict(
        reachable=True,
        database=server["database"],
        server=dict(version=server["version"], uptime_seconds=_round(server["uptime_seconds"]),
                    in_recovery=server["in_recovery"], max_connections=max_conn,
                    superuser_reserved_connections=reserved),
        connections=connections,
        counts=counts,
        idle_in_transaction=[session_summary(s, qlen) for s in idle_in_tx[:limit]],
        idle_sessions=[session_summary(s, qlen) for s in idle[:limit]],
        long_queries=[session_summary(s, qlen) for s in long_queries[:limit]],
        blocked=[session_summary(s, qlen) for s in blocked[:limit]],
        root_blockers=[session_summary(by_pid[pid], qlen) for pid in roots if pid in by_pid],
        blocking_tree=[describe(node) for node in tree],
        lock_waits=[dict(w, waiting_seconds=_round(w["waiting_seconds"])) for w in lock_waits[:limit]],
        oldest_transaction_seconds=_round(max(xact_ages)) if xact_ages else None,
        database_size_bytes=server["database_size_bytes"],
    )
    result["msg"] = summary(result, counts, params, len(idle), len(long_queries), len(blocked))
    return result


def summary(result, counts, params, idle_count, long_count, blocked_count):
    conn = result["connections"]
    top_apps = sorted(counts["application_name"].items(), key=lambda kv: -kv[1])[:2]
    apps = ", ".join(f"{name} {count}" for name, count in top_apps)
    parts = [f"PostgreSQL reachable: {conn['used']}/{conn['max_connections']} connections ({apps})"]
    if conn["saturated"]:
        parts.append(f"SATURATED (only the {conn['superuser_reserved_connections']} superuser slots remain)")
    if result["server"]["in_recovery"]:
        parts.append("in recovery (read-only standby)")
    parts.append(f"{idle_count} idle > {params['idle_threshold']:g} s")
    parts.append(f"{len(result['idle_in_transaction'])} idle in transaction")
    parts.append(f"{long_count} queries > {params['long_query_threshold']:g} s")
    chains = len(result["blocking_tree"])
    if chains:
        roots = ", ".join(str(r["pid"]) for r in result["root_blockers"])
        parts.append(f"{chains} blocked chain{'s' if chains != 1 else ''} ({blocked_count} waiting; root pid {roots})")
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


SPEC_OPTIONS = {}


def gather(params, run_command=None):
    """The module's result from its validated ``params``; ``run_command`` is not needed here."""
    return diagnosis(params, diagnose, "the diagnosis query")


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True, **SPEC_OPTIONS)
    run_gather(module, gather)


if __name__ == "__main__":
    main()
