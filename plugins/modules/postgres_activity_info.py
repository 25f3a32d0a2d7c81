#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: postgres_activity_info
short_description: Diagnose PostgreSQL connections, sessions, locks and blocking chains
description:
  - Reports whether PostgreSQL answers and, if not, why (V(refused), V(too_many_clients), V(auth_failed),
    V(database_missing), V(timeout), V(dns), V(tls)) as a finding with RV(reachable=false) instead of failing.
  - Each query is a part of its own; one that fails (a statement timeout on a sick server) leaves its fields
    null and is named in RV(failures), while the others are still returned.
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
  description:
    - One-line summary of the findings; when something could not be read, the target (C(user@host:port/db),
      never the password), the failure kind and the cause.
  returned: always
  type: str
  sample: "PostgreSQL reachable: 24/25 connections (api 20), 3 idle > 600 s, 1 blocked chain"
reachable:
  description:
    - Whether a connection was made and every query of the diagnosis was read.
    - False when RV(failure) is set; the fields of the parts that were read are still filled.
  returned: always
  type: bool
failure:
  description:
    - Null when everything was read. Otherwise why not, one of V(refused), V(timeout), V(dns), V(tls),
      V(auth_failed), V(database_missing), V(too_many_clients), V(error) (no connection) or V(query_failed)
      (connected, but a query failed).
  returned: always
  type: str
  sample: too_many_clients
failures:
  description:
    - What could not be read, part by part (V(connection), V(server), V(sessions), V(lock_waits),
      V(database_size)), with a one-line reason. Empty when everything was read.
  returned: always
  type: dict
  sample: {"lock_waits": "canceling statement due to statement timeout"}
error:
  description: The server's or library's message for the failure, with any password removed; null without one.
  returned: always
  type: str
server:
  description: Version, uptime, recovery state and connection limits; null when the server part was not read.
  returned: always
  type: dict
  sample:
    version: "15.18"
    uptime_seconds: 3600.5
    in_recovery: false
    max_connections: 25
    superuser_reserved_connections: 3
connections:
  description:
    - Client connections in use against the limits; null unless both the server and the sessions were read.
    - C(saturated) is true when ordinary users can no longer connect.
  returned: always
  type: dict
  sample:
    used: 23
    max_connections: 25
    superuser_reserved_connections: 3
    available_to_users: 0
    available_to_superusers: 2
    saturated: true
counts:
  description:
    - Client connections counted by C(application_name), C(state), C(user) and C(client_addr).
    - Null when the sessions were not read.
  returned: always
  type: dict
  sample:
    application_name: {api: 20, psql: 1}
    state: {idle: 20, active: 1}
idle_in_transaction:
  description:
    - Sessions idle inside an open transaction, holding its locks, oldest first; null when the sessions were not read.
    - A transaction aborted and not rolled back yet has released its locks; it is counted in C(counts.state) only.
  returned: always
  type: list
  elements: dict
idle_sessions:
  description: Sessions idle for longer than O(idle_threshold), oldest first; null when the sessions were not read.
  returned: always
  type: list
  elements: dict
long_queries:
  description:
    - Active queries running longer than O(long_query_threshold) (pid, app, user, duration, wait event, query).
    - Null when the sessions were not read.
  returned: always
  type: list
  elements: dict
blocked:
  description: Sessions waiting for a lock held by others, with the pids blocking them; null when the sessions were not read.
  returned: always
  type: list
  elements: dict
root_blockers:
  description:
    - Sessions that block others without waiting themselves; ending these ends the chains.
    - Null when the sessions were not read.
  returned: always
  type: list
  elements: dict
blocking_tree:
  description:
    - Nested C({pid, application_name, state, blocks}) starting at each root blocker; each session once, under the
      blocker nearest a root.
    - Null when the sessions were not read.
  returned: always
  type: list
  elements: dict
lock_waits:
  description:
    - Lock requests not granted (the runbook's C(pg_locks WHERE NOT granted)), with the relation name.
    - Null when they were not read.
  returned: always
  type: list
  elements: dict
oldest_transaction_seconds:
  description:
    - Age of the oldest open transaction of a client session.
    - Null when no transaction is open, or when the sessions were not read (then RV(failures) names them).
  returned: always
  type: float
database_size_bytes:
  description: Size of the connected database; null when it was not read.
  returned: always
  type: int
database:
  description: Name of the connected database; null when the server part was not read.
  returned: always
  type: str
"""

from ansible_collections.synap.ops.plugins.module_utils.postgres_activity_info import INFO

# The module's options and look-up, for callers that import the module itself (synap-play validate reads the spec).
argument_spec = INFO.argument_spec
gather = INFO.gather


def main():
    INFO.run_module()


if __name__ == "__main__":
    main()
