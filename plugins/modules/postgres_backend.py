#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: postgres_backend
short_description: Cancel or terminate PostgreSQL sessions selected by filters, safely
description:
  - Selects client sessions by filters (all given filters must match) and cancels their query, terminates
    them, or cancels first and terminates those the cancel did not help after a grace period.
  - Never touches its own session, non-client backends (autovacuum, walsender, background workers),
    superusers' sessions (unless O(include_superusers=true)), or sessions of O(protected_application_names).
  - If more than O(max_sessions) sessions are selected it fails and ends nothing.
  - In check mode returns the exact plan (pid, application, user, state, age, why selected) and sends nothing;
    the sessions O(running_longer_than) left out because they wait on a lock are in RV(left_out), both in
    the plan and after a real run.
  - C(changed) is true only when a query was really cancelled or a session really ended; a second run
    finds nothing left to select and reports C(changed=false).
version_added: 0.1.0
author:
  - Synap operations (@synap)
options:
  mode:
    description:
      - V(cancel) stops the running query (C(pg_cancel_backend)); only active sessions are acted on.
      - V(terminate) ends the session (C(pg_terminate_backend)), as the runbook does for leaked connections.
      - V(cancel_then_terminate) cancels, waits O(grace_seconds), then terminates the sessions the cancel did
        not change.
    type: str
    choices: [cancel, terminate, cancel_then_terminate]
    default: terminate
  grace_seconds:
    description:
      - Seconds to wait after cancelling before terminating, with O(mode=cancel_then_terminate).
    type: float
    default: 5
  pids:
    description:
      - Only these process ids.
    type: list
    elements: int
  states:
    description:
      - Only sessions in these states, as C(pg_stat_activity.state) names them (C(active), C(idle),
        C(idle in transaction), C(idle in transaction (aborted)), C(fastpath function call), C(disabled)).
    type: list
    elements: str
  application_names:
    description:
      - Only sessions whose C(application_name) is one of these.
    type: list
    elements: str
  exclude_application_names:
    description:
      - Never sessions whose C(application_name) is one of these.
    type: list
    elements: str
  protected_application_names:
    description:
      - Sessions of these applications (people at a prompt, backups) are never selected, whatever the filters.
      - Set to an empty list to lift this protection.
    type: list
    elements: str
    default: [psql, pg_dump, pg_dumpall, pg_restore, pg_basebackup]
  users:
    description:
      - Only sessions of these database users.
    type: list
    elements: str
  databases:
    description:
      - Only sessions connected to these databases.
    type: list
    elements: str
  idle_longer_than:
    description:
      - Only sessions not running a query (idle or idle in transaction) whose state has not changed for longer
        than this many seconds.
    type: float
  running_longer_than:
    description:
      - Only active sessions whose current query has run for longer than this many seconds.
      - Sessions waiting on a lock (C(wait_event_type) V(Lock), or a non-empty C(pg_blocking_pids)) are left
        out unless O(include_lock_waiters=true), since a victim's query is slow because of its blocker and ending
        it frees nothing. They are listed in RV(left_out). End the blocker with O(root_blockers=true).
    type: float
  include_lock_waiters:
    description:
      - With O(running_longer_than), also select sessions that wait on a lock.
    type: bool
    default: false
  root_blockers:
    description:
      - Only sessions that block others without waiting themselves (the roots of blocking chains).
    type: bool
    default: false
  query_pattern:
    description:
      - Only sessions whose current or last query matches this Python regular expression (case-insensitive).
    type: str
  include_superusers:
    description:
      - Also select sessions of superusers.
    type: bool
    default: false
  max_sessions:
    description:
      - Refuse (and end nothing) when more sessions than this are selected.
    type: int
    default: 20
  query_length:
    description:
      - Query texts in the result are shortened to this many characters.
    type: int
    default: 120
notes:
  - At least one filter other than O(mode) must be given; there is no "every session" selection.
extends_documentation_fragment:
  - synap.ops.postgres
  - ansible.builtin.action_common_attributes
  - synap.ops.attributes.action
attributes:
  check_mode:
    details: Returns the plan in RV(actions) and sends no signal.
"""

EXAMPLES = r"""
- name: Terminate the API's connections idle for more than 10 minutes (runbook scenario 3, connection leak)
  synap.ops.postgres_backend:
    dsn: "{{ synap_database_url }}"
    mode: terminate
    application_names: [api]
    states: [idle]
    idle_longer_than: "{{ synap_threshold_idle_seconds }}"
    max_sessions: 50

- name: End the roots of blocking chains on proposals, gently first
  synap.ops.postgres_backend:
    dsn: "{{ synap_database_url }}"
    mode: cancel_then_terminate
    grace_seconds: 5
    root_blockers: true

- name: Cancel queries running longer than a minute (runbook scenario 2)
  synap.ops.postgres_backend:
    dsn: "{{ synap_database_url }}"
    mode: cancel
    running_longer_than: "{{ synap_threshold_long_query_seconds }}"
"""

RETURN = r"""
msg:
  description: One-line summary.
  returned: always
  type: str
  sample: "terminated 3 sessions (api 3)"
actions:
  description:
    - One entry per signal sent, or in check mode planned.
    - Each has C(description), C(action) (cancel or terminate), C(pid), C(application_name), C(user), C(state),
      C(age_seconds), C(reasons) (why selected), C(query), and after a real run C(result) (V(cancelled),
      V(terminated), V(gone), V(failed), V(unchanged)).
  returned: always
  type: list
  elements: dict
  sample:
    - description: "terminate pid 4242 (api, idle 812 s)"
      action: terminate
      pid: 4242
      application_name: api
      user: synap
      state: idle
      age_seconds: 812.4
      reasons: ["application_name api", "state idle", "idle 812 s > 600 s"]
      result: terminated
protected:
  description: Sessions the filters matched but the safety rules kept, with the rule (C(reason)).
  returned: always
  type: list
  elements: dict
left_out:
  description:
    - Sessions every other filter matched that O(running_longer_than) left out because they wait on a lock
      (O(include_lock_waiters=false)), each with C(pid), C(application_name), C(user), C(state),
      C(wait_event_type), C(wait_event), C(blocked_by) (the pids holding the lock) and C(reason).
    - The message counts them.
  returned: always
  type: list
  elements: dict
  sample:
    - pid: 4343
      application_name: api
      user: synap
      state: active
      wait_event_type: Lock
      wait_event: transactionid
      blocked_by: [4242]
      reason: "waiting on a lock held by pid 4242: ending it frees nothing (end the blocker: root_blockers=true)"
selected_count:
  description: How many sessions were selected.
  returned: always
  type: int
"""

import re
import time
from collections import Counter

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.synap.ops.plugins.module_utils.postgres import (
    SESSIONS_SQL,
    blocking_tree,
    error_text,
    exit_with_action,
    postgres_argument_spec,
    query,
    truncate,
)

FILTERS = ("pids", "states", "application_names", "users", "databases", "idle_longer_than",
           "running_longer_than", "root_blockers", "query_pattern")

# pg_terminate_backend waits this long (ms) for the session to be gone, so "terminated" means gone.
TERMINATE_WAIT_MS = 5000


def age_of(s):
    if s["state"] == "active":
        return s["query_seconds"] or 0.0
    return s["state_seconds"] or 0.0


def lock_wait(s):
    """Which lock ``s`` waits on ("held by pid 4242", or the wait event), or None when it waits on none."""
    if s["blocked_by"]:
        return "held by pid " + ", ".join(str(pid) for pid in s["blocked_by"])
    if s["wait_event_type"] == "Lock":
        return f"({s['wait_event'] or 'unknown'})"
    return None


def select(sessions, p, pattern):
    """Split ``sessions`` into (selected, protected, left_out); selected and protected items are
    ``(session, reasons)``, left_out items ``(session, reason)``."""
    roots = set(blocking_tree(sessions)[0]) if p["root_blockers"] else set()
    selected, protected, left_out = [], [], []
    for s in sessions:
        reasons = []
        waiting = None
        if p["pids"] is not None:
            if s["pid"] not in p["pids"]:
                continue
            reasons.append(f"pid {s['pid']}")
        if p["states"] is not None:
            if s["state"] not in p["states"]:
                continue
            reasons.append(f"state {s['state']}")
        if p["application_names"] is not None:
            if s["application_name"] not in p["application_names"]:
                continue
            reasons.append(f"application_name {s['application_name']}")
        if p["exclude_application_names"] and s["application_name"] in p["exclude_application_names"]:
            continue
        if p["users"] is not None:
            if s["usename"] not in p["users"]:
                continue
            reasons.append(f"user {s['usename']}")
        if p["databases"] is not None:
            if s["datname"] not in p["databases"]:
                continue
            reasons.append(f"database {s['datname']}")
        if p["idle_longer_than"] is not None:
            idle = s["state"] != "active" and (s["state_seconds"] or 0) > p["idle_longer_than"]
            if not idle:
                continue
            reasons.append(f"{s['state']} {s['state_seconds']:.0f} s > {p['idle_longer_than']:g} s")
        if p["running_longer_than"] is not None:
            running = s["state"] == "active" and (s["query_seconds"] or 0) > p["running_longer_than"]
            if not running:
                continue
            reasons.append(f"running {s['query_seconds']:.0f} s > {p['running_longer_than']:g} s")
            waiting = lock_wait(s)
            if waiting and p["include_lock_waiters"]:
                reasons.append(f"waiting on a lock {waiting} (include_lock_waiters)")
        if p["root_blockers"]:
            if s["pid"] not in roots:
                continue
            reasons.append("root blocker")
        if pattern is not None:
            if not pattern.search(s["query"] or ""):
                continue
            reasons.append(f"query matches /{pattern.pattern}/")
        # A lock victim runs long because of its blocker: ending it frees nothing.
        if waiting and not p["include_lock_waiters"]:
            left_out.append((s, f"waiting on a lock {waiting}: ending it frees nothing (end the blocker: "
                                "root_blockers=true)"))
            continue

        guard = None
        if s["own_session"]:
            guard = "own session"
        elif s["backend_type"] != "client backend":
            guard = f"not a client backend ({s['backend_type']})"
        elif s["superuser"] and not p["include_superusers"]:
            guard = "superuser session (include_superusers is false)"
        elif s["application_name"] in (p["protected_application_names"] or []):
            guard = f"protected application {s['application_name']}"
        (protected if guard else selected).append((s, guard or reasons))
    return selected, protected, left_out


def plan_entry(action, s, reasons, qlen):
    age = age_of(s)
    doing = "running" if s["state"] == "active" else s["state"]
    return dict(
        description=f"{action} pid {s['pid']} ({s['application_name'] or 'no application'}, {doing} {age:.0f} s)",
        action=action,
        pid=s["pid"],
        application_name=s["application_name"],
        user=s["usename"],
        database=s["datname"],
        state=s["state"],
        age_seconds=round(age, 1),
        reasons=reasons,
        query=truncate(s["query"], qlen),
    )


def current(conn, pids):
    rows = query(conn, "SELECT pid, state, state_change::text AS state_change FROM pg_stat_activity "
                       "WHERE pid = ANY(%s)", (list(pids),))
    return {r["pid"]: r for r in rows}


def signal(conn, action, pid):
    if action == "cancel":
        row = query(conn, "SELECT pg_cancel_backend(%s) AS ok", (pid,))[0]
        return "cancelled" if row["ok"] else "gone"
    row = query(conn, "SELECT pg_terminate_backend(%s, %s) AS ok", (pid, TERMINATE_WAIT_MS))[0]
    return "terminated" if row["ok"] else "gone"


def run(module, conn):
    p = module.params
    pattern = None
    if p["query_pattern"] is not None:
        try:
            pattern = re.compile(p["query_pattern"], re.IGNORECASE)
        except re.error as exc:
            module.fail_json(msg=f"query_pattern is not a valid regular expression ({exc}); fix the pattern")

    sessions = query(conn, SESSIONS_SQL)
    selected, protected, left_out = select(sessions, p, pattern)
    protected_out = [dict(pid=s["pid"], application_name=s["application_name"], user=s["usename"],
                          state=s["state"], reason=why) for s, why in protected]
    left_out_out = [dict(pid=s["pid"], application_name=s["application_name"], user=s["usename"], state=s["state"],
                         wait_event_type=s["wait_event_type"], wait_event=s["wait_event"],
                         blocked_by=list(s["blocked_by"] or []), reason=why) for s, why in left_out]
    mode = p["mode"]
    if mode == "cancel":
        # A cancel only affects a running query; idle sessions would be "signalled" with no effect.
        selected = [(s, r) for s, r in selected if s["state"] == "active"]

    if len(selected) > p["max_sessions"]:
        module.fail_json(
            msg=f"selection has {len(selected)} sessions, more than max_sessions={p['max_sessions']}; nothing was "
                f"ended. Narrow the filters or raise max_sessions",
            selected_count=len(selected),
            actions=[plan_entry("terminate" if mode != "cancel" else "cancel", s, r, p["query_length"])
                     for s, r in selected],
            protected=protected_out,
            left_out=left_out_out,
        )

    first = "cancel" if mode in ("cancel", "cancel_then_terminate") else "terminate"
    actions = [plan_entry(first, s, r, p["query_length"]) for s, r in selected]
    if module.check_mode or not selected:
        if mode == "cancel_then_terminate":
            for a in actions:
                a["description"] += f", terminate if unchanged after {p['grace_seconds']:g} s"
        verb = "would " + first if module.check_mode else "nothing to " + first
        # In check mode "changed" says whether the real run would change something.
        return dict(changed=bool(actions) and module.check_mode, actions=actions, protected=protected_out,
                    left_out=left_out_out, selected_count=len(selected),
                    msg=message(verb, actions, protected_out, left_out_out))

    changed = False
    before = {session["pid"]: session for session, _reasons in selected}
    for a in actions:
        try:
            a["result"] = signal(conn, a["action"], a["pid"])
        except Exception as exc:  # one failure (e.g. permission) must not stop the others
            a["result"] = "failed"
            a["error"] = error_text(exc)
        changed = changed or a["result"] in ("cancelled", "terminated")

    if mode == "cancel_then_terminate":
        pending = {a["pid"] for a in actions if a["result"] == "cancelled"}
        deadline = time.monotonic() + p["grace_seconds"]
        while pending and time.monotonic() < deadline:
            still = current(conn, pending)
            pending = {pid for pid in pending
                       if pid in still and still[pid]["state_change"] == before[pid]["state_change"]}
            if pending:
                time.sleep(0.2)
        still = current(conn, pending)
        for pid in sorted(pending):
            if pid not in still or still[pid]["state_change"] != before[pid]["state_change"]:
                continue
            entry = plan_entry("terminate", before[pid], ["unchanged after cancel"], p["query_length"])
            entry["description"] += f" after {p['grace_seconds']:g} s grace"
            try:
                entry["result"] = signal(conn, "terminate", pid)
            except Exception as exc:
                entry["result"] = "failed"
                entry["error"] = error_text(exc)
            changed = changed or entry["result"] == "terminated"
            actions.append(entry)

    failed = [a for a in actions if a["result"] == "failed"]
    result = dict(changed=changed, actions=actions, protected=protected_out, left_out=left_out_out,
                  selected_count=len(selected), msg=message("done", actions, protected_out, left_out_out))
    if failed:
        module.fail_json(msg=f"{len(failed)} of {len(actions)} signals failed: {failed[0]['error']}; "
                             f"connect as a superuser or the sessions' owner", **result)
    return result


def message(verb, actions, protected, left_out=()):
    if verb == "done":
        done = Counter(a["result"] for a in actions)
        text = ", ".join(f"{n} {res}" for res, n in sorted(done.items())) or "nothing to do"
    else:
        apps = Counter(a["application_name"] or "no application" for a in actions)
        detail = ", ".join(f"{name} {n}" for name, n in apps.most_common(3))
        text = f"{verb} {len(actions)} session{'s' if len(actions) != 1 else ''}" + (f" ({detail})" if detail else "")
    if protected:
        text += f"; {len(protected)} matching session{'s' if len(protected) != 1 else ''} protected"
    if left_out:
        text += (f"; {len(left_out)} session{'s' if len(left_out) != 1 else ''} waiting on a lock left out "
                 "(ending a lock victim frees nothing; end the blocker with root_blockers=true)")
    return text


def main():
    module = AnsibleModule(
        argument_spec=postgres_argument_spec(
            mode=dict(type="str", choices=["cancel", "terminate", "cancel_then_terminate"], default="terminate"),
            grace_seconds=dict(type="float", default=5),
            pids=dict(type="list", elements="int"),
            states=dict(type="list", elements="str"),
            application_names=dict(type="list", elements="str"),
            exclude_application_names=dict(type="list", elements="str"),
            protected_application_names=dict(type="list", elements="str",
                                             default=["psql", "pg_dump", "pg_dumpall", "pg_restore",
                                                      "pg_basebackup"]),
            users=dict(type="list", elements="str"),
            databases=dict(type="list", elements="str"),
            idle_longer_than=dict(type="float"),
            running_longer_than=dict(type="float"),
            include_lock_waiters=dict(type="bool", default=False),
            root_blockers=dict(type="bool", default=False),
            query_pattern=dict(type="str"),
            include_superusers=dict(type="bool", default=False),
            max_sessions=dict(type="int", default=20),
            query_length=dict(type="int", default=120),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if not [name for name in FILTERS if not (p[name] is None or p[name] is False or p[name] == [])]:
        module.fail_json(msg="no filter given; select sessions with pids, states, application_names, users, "
                             "databases, idle_longer_than, running_longer_than, root_blockers or query_pattern")
    if p["max_sessions"] < 1:
        module.fail_json(msg="max_sessions must be at least 1")
    exit_with_action(module, run,
                     lambda error: f"selecting sessions failed: {error}; retry, or raise statement_timeout")


if __name__ == "__main__":
    main()
