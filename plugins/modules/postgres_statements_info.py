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
      - With O(explain_slowest=true), the statement explained is the slowest of those whose text names this table.
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
      - A statement run only once (an operator's ad hoc query) is passed over for the slowest of those run more
        than once; it is explained only when no statement has run twice.
      - With O(table), the slowest statement whose text names that table (the table whose sequential scans are
        looked into, whose plan shows them), and the slowest of all only when none does.
      - Cannot be combined with O(explain_query) or O(explain_analyze).
    type: bool
    default: false
  query_length:
    description:
      - Statement texts are shortened to this many characters.
    type: int
    default: 200
  exclude_roles:
    description:
      - Statements run by these roles are left out of RV(statements) and of the candidates of O(explain_slowest).
        Name the roles of monitoring here, such as postgres_exporter's, whose queries run at every scrape and are not
        the application's.
      - synap-play's own statements (marked with a leading C(/* synap-play */)) are always left out.
    type: list
    elements: str
    default: []
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
    - For O(explain_slowest) also C(source=slowest), C(queryid), C(mean_ms) and C(calls) of the statement, and
      C(table) when it was chosen as the slowest naming O(table); C(error) says when there was no statement to
      explain.
    - Null unless O(explain_query) is given or O(explain_slowest=true), and when the server could not be read.
  returned: always
  type: dict
  sample: {"source": "slowest", "queryid": -4117205592738384012, "mean_ms": 212.4, "calls": 40,
           "query": "SELECT count(*) FROM entities WHERE workspace_id = $1", "analyze": false,
           "method": "generic_plan", "plan": ["Aggregate  (cost=2041.01..2041.02 rows=1 width=8)",
           "  ->  Seq Scan on entities  (cost=0.00..2041.00 rows=5 width=0)", "        Filter: (workspace_id = $1)"]}
"""

from ansible_collections.synap.ops.plugins.module_utils.postgres_statements_info import INFO

# The module's options and look-up, for callers that import the module itself (synap-play validate reads the spec).
argument_spec = INFO.argument_spec
gather = INFO.gather


def main():
    INFO.run_module()


if __name__ == "__main__":
    main()
