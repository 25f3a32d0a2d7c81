# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection and shared queries for the synap.ops PostgreSQL modules.

Every module connects through :func:`connect` (one connection per run) so the safety defaults
(connect timeout, statement/lock timeouts, application_name) are decided in one place. Nothing here needs an
AnsibleModule except the acting modules' helpers (:func:`connect_or_fail`, :func:`exit_with_action`), so info
modules' ``gather`` can run outside a module run, in threads.
"""

from __future__ import annotations

import collections
import contextlib
import fnmatch
import re
import traceback

from ansible.module_utils.basic import env_fallback, missing_required_lib
from ansible_collections.synap.ops.plugins.module_utils.gather import GatherFailed, PartFailures, shaped
from ansible_collections.synap.ops.plugins.module_utils.redact import redact_dsn

PSYCOPG_IMPORT_ERROR = None
try:
    import psycopg
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict, make_conninfo
    from psycopg.rows import dict_row
except ImportError:
    psycopg = None
    sql = None
    PSYCOPG_IMPORT_ERROR = traceback.format_exc()

APPLICATION_NAME = "synap-play"
# pg_stat_statements does not record application_name but keeps a leading comment in the text it stores:
# every statement sent through query() starts with this, so a diagnosis can tell ours from the application's.
OWN_STATEMENT_MARKER = "/* synap-play */"

# Connection failures, classified so a diagnosis can say what is wrong instead of printing libpq's text.
# Order matters: the first kind with a matching fragment wins.
FAILURE_PATTERNS = (
    ("too_many_clients", ("too many clients", "remaining connection slots are reserved")),
    ("auth_failed", ("password authentication failed", "no pg_hba.conf entry", "authentication failed",
                     "no password supplied", "fe_sendauth", "role \"*\" does not exist")),
    ("database_missing", ("database \"*\" does not exist",)),
    ("timeout", ("timeout expired", "timed out")),
    ("dns", ("could not translate host name", "failed to resolve host")),
    # After auth_failed: a pg_hba refusal names the encryption it saw ("SSL encryption", "SSL off").
    ("tls", ("server does not support ssl", "ssl", "certificate")),
    ("refused", ("connection refused", "no such file or directory", "server closed the connection unexpectedly",
                 "the database system is shutting down", "the database system is starting up")),
)

FAILURE_ADVICE = {
    "refused": "is the server running and listening there? (docker compose ps postgres)",
    "too_many_clients": "connect as a superuser (reserved slots) and end idle sessions, or raise max_connections",
    "auth_failed": "check the user and password in the DSN",
    "database_missing": "check the database name in the DSN",
    "timeout": "the host does not answer in time; check host, port and network, or raise connect_timeout",
    "dns": "the host name does not resolve; check the host in the DSN (a compose service name resolves only "
           "inside its network)",
    "tls": "check sslmode in the DSN against the server's SSL setting, and its certificate",
    "error": "see the error text",
}


def postgres_argument_spec(**extra):
    """The connection options every PostgreSQL module takes, plus its own ``extra`` options."""
    spec = dict(
        dsn=dict(type="str", no_log=True, fallback=(env_fallback, ["DATABASE_URL"])),
        login_host=dict(type="str"),
        login_port=dict(type="int"),
        login_user=dict(type="str"),
        login_password=dict(type="str", no_log=True),
        db=dict(type="str"),
        connect_timeout=dict(type="int", default=5),
        statement_timeout=dict(type="float", default=3.0),
        lock_timeout=dict(type="float", default=1.0),
    )
    spec.update(extra)
    return spec


def ensure_psycopg():
    if psycopg is None:
        raise GatherFailed(missing_required_lib("psycopg (version 3)"), exception=PSYCOPG_IMPORT_ERROR)


def classify_connect_error(message):
    """Map libpq's text for a failed connection to one of the failure kinds (``error`` if none fits)."""
    text = (message or "").lower()
    for kind, patterns in FAILURE_PATTERNS:
        if any(fnmatch.fnmatchcase(text, f"*{pattern}*") for pattern in patterns):
            return kind
    return "error"


def _conninfo(params):
    discrete = dict(
        host=params.get("login_host"),
        port=params.get("login_port"),
        user=params.get("login_user"),
        password=params.get("login_password"),
        dbname=params.get("db"),
    )
    # Discrete options override the matching DSN parts; what remains unset comes from libpq's defaults.
    overrides = {k: v for k, v in discrete.items() if v is not None}
    return make_conninfo(params.get("dsn") or "", **overrides)


def target_description(params):
    """``user@host:port/db`` of the connection target, without the password, for messages."""
    try:
        info = conninfo_to_dict(_conninfo(params))
    except Exception:  # an unparsable DSN is reported by connect(); here we only describe
        return "(unparsable DSN)"
    host = info.get("host") or "localhost"
    port = info.get("port") or "5432"
    return f"{info.get('user') or '(default user)'}@{host}:{port}/{info.get('dbname') or '(default db)'}"


def _ms(seconds):
    return max(0, int(round(float(seconds) * 1000)))


def connect(params):
    """Open the one connection of this module run, from the module's ``params``.

    Returns ``(conn, None)`` or ``(None, failure)`` where ``failure`` is a dict with ``kind`` (refused,
    too_many_clients, auth_failed, database_missing, timeout, dns, tls, error), ``error`` (libpq's text, DSN redacted)
    and ``msg`` (one line with advice). Autocommit is on; callers open transactions explicitly. Raises
    GatherFailed when psycopg is not installed.
    """
    ensure_psycopg()
    target = target_description(params)
    try:
        conninfo = _conninfo(params)
    except psycopg.ProgrammingError as exc:
        failure = dict(kind="error", error=redact_dsn(str(exc)), target=target)
        failure["msg"] = f"PostgreSQL DSN is not valid: {failure['error']}; fix dsn / DATABASE_URL"
        return None, failure
    options = (
        f"-c statement_timeout={_ms(params['statement_timeout'])} -c lock_timeout={_ms(params['lock_timeout'])}"
    )
    try:
        conn = psycopg.connect(
            conninfo,
            connect_timeout=max(1, int(params["connect_timeout"])),
            application_name=APPLICATION_NAME,
            options=options,
            autocommit=True,
            row_factory=dict_row,
        )
    except psycopg.Error as exc:
        error = redact_dsn(" ".join(str(exc).split()))
        kind = classify_connect_error(error)
        failure = dict(kind=kind, error=error, target=target)
        failure["msg"] = f"PostgreSQL {target} unreachable ({kind}): {error}; {FAILURE_ADVICE[kind]}"
        return None, failure
    return conn, None


def connect_or_fail(module):
    """For acting modules: the connection, or fail_json with the classified reason."""
    try:
        conn, failure = connect(module.params)
    except GatherFailed as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    if failure:
        module.fail_json(msg=failure["msg"], failure=failure["kind"], error=failure["error"])
    return conn


def diagnosis(params, diagnose, what, fields, advice=None):
    """For info modules: connect, run ``diagnose(conn, params, failures)`` and return the module's result.

    ``fields`` are the module's documented result fields: each is in the result, None when not read.
    ``diagnose`` returns the fields it read and records each part it could not read in ``failures``
    (a PartFailures, with read_part()). An unreachable server, or a query failing on a sick one, is itself a
    finding: both return ``changed=false``, ``reachable=false`` and a ``failure`` kind rather than failing,
    so a diagnosis always completes.
    """
    failures = PartFailures()
    conn, failure = connect(params)
    if failure:
        failures.add("connection", failure["kind"], failure["msg"])
        return shaped(dict(error=failure["error"], msg=failure["msg"]), fields, failures)
    try:
        result = diagnose(conn, params, failures)
    except Exception as exc:
        msg = (f"PostgreSQL {target_description(params)} reachable but {what} failed: {error_text(exc)}"
               + (f"; {advice}" if advice else ""))
        failures.add("diagnosis", "query_failed", msg)
        return shaped(dict(error=error_text(exc), msg=msg), fields, failures)
    finally:
        conn.close()
    if failures:
        unread = "; ".join(f"{part}: {reason}" for part, reason in failures.reasons.items())
        result.setdefault("error", unread)
        result["msg"] += (f"; NOT READ from PostgreSQL {target_description(params)} ({failures.kind}) {unread}"
                          + (f"; {advice}" if advice else ""))
    return shaped(result, fields, failures)


def read_part(failures, part, read, *args):
    """``read(*args)``, or None with ``part`` recorded in ``failures`` when its query fails.

    The connection is in autocommit, so a part that fails (a statement timeout on a sick server) leaves the
    next one free to run.
    """
    try:
        return read(*args)
    except Exception as exc:
        failures.add(part, "query_failed", error_text(exc))
        return None


def exit_with_action(module, act, failure_msg=None):
    """For acting modules: connect (or fail), run ``act(module, conn)`` and exit with its result.

    ``failure_msg(error)`` turns an error raised by ``act`` into the one-line message to fail with;
    without it the error propagates unchanged.
    """
    conn = connect_or_fail(module)
    try:
        result = act(module, conn)
    except Exception as exc:
        if failure_msg is None:
            raise
        module.fail_json(msg=failure_msg(error_text(exc)))
    finally:
        conn.close()
    module.exit_json(**result)


def compose(template, *names, **literals):
    """A statement from ``template``: ``{}`` slots take ``names`` verbatim (validate them first), ``{key}`` slots
    take quoted ``literals``. For the few statements (ALTER SYSTEM) that cannot take bound parameters."""
    return sql.SQL(template).format(*[sql.SQL(n) for n in names], **{k: sql.Literal(v) for k, v in literals.items()})


def query(conn, statement, params=None):
    """Run ``statement`` and return its rows as dicts (an empty list for statements without rows)."""
    if isinstance(statement, str):
        statement = f"{OWN_STATEMENT_MARKER} {statement}"
    else:
        statement = sql.SQL(OWN_STATEMENT_MARKER + " ") + statement
    with conn.cursor() as cur:
        cur.execute(statement, params)
        return cur.fetchall() if cur.description else []


def query_one(conn, statement, params=None):
    rows = query(conn, statement, params)
    return rows[0] if rows else None


def error_text(exc):
    """One line for a psycopg error raised after connecting."""
    return " ".join(str(exc).split()) or type(exc).__name__


# Client sessions with what a diagnosis or a selection needs. Other backends (autovacuum, walsender,
# background workers) are listed by backend_type so callers can leave them alone.
SESSIONS_SQL = """
SELECT a.pid,
       a.backend_type,
       a.datname,
       a.usename,
       coalesce(r.rolsuper, false) AS superuser,
       a.application_name,
       host(a.client_addr) AS client_addr,
       a.state,
       a.wait_event_type,
       a.wait_event,
       a.query,
       extract(epoch FROM now() - a.backend_start)::float8 AS connected_seconds,
       extract(epoch FROM now() - a.xact_start)::float8 AS xact_seconds,
       extract(epoch FROM now() - a.query_start)::float8 AS query_seconds,
       extract(epoch FROM now() - a.state_change)::float8 AS state_seconds,
       a.state_change::text AS state_change,
       pg_blocking_pids(a.pid) AS blocked_by,
       a.pid = pg_backend_pid() AS own_session
FROM pg_stat_activity a
LEFT JOIN pg_roles r ON r.oid = a.usesysid
ORDER BY a.pid
"""


def blocking_tree(sessions):
    """Fold ``blocked_by`` lists into a forest of blocking chains.

    ``sessions`` are dicts with ``pid`` and ``blocked_by``. Returns ``(roots, tree)``: ``roots`` the pids
    that block others without waiting themselves (the sessions to end first), ``tree`` a list of nested
    dicts ``{pid, blocks: [...]}`` starting at each root. Each session appears once, under the blocker nearest a
    root: sessions queued for one lock block one another as well, and every path through such a queue (2^n of
    them) would not fit in memory. Cycles (a deadlock about to be detected) are cut where they close, and their
    members reported as roots so nothing is hidden.
    """
    blocked_by = {s["pid"]: list(s.get("blocked_by") or []) for s in sessions}
    children = {}
    for pid, blockers in blocked_by.items():
        for blocker in blockers:
            children.setdefault(blocker, []).append(pid)
    involved = set(children) | {pid for pid, blockers in blocked_by.items() if blockers}
    roots = sorted(pid for pid in children if not blocked_by.get(pid))
    reached = set()

    def grow(root):
        # Breadth first, so that each session hangs under the blocker closest to the root.
        top = dict(pid=root, blocks=[])
        reached.add(root)
        queue = collections.deque([top])
        while queue:
            node = queue.popleft()
            for kid in sorted(children.get(node["pid"], [])):
                if kid not in reached:
                    reached.add(kid)
                    child = dict(pid=kid, blocks=[])
                    node["blocks"].append(child)
                    queue.append(child)
        return top

    tree = [grow(root) for root in roots]
    for pid in sorted(involved - reached):
        if pid in children and pid not in reached:
            roots.append(pid)
            tree.append(grow(pid))
    return roots, tree


def truncate(text, length):
    if text is None:
        return None
    text = " ".join(text.split())
    return text if len(text) <= length else text[: max(0, length - 1)] + "\u2026"


# Literals, quoted identifiers and comments, whose "$1" is text and not a parameter; then the parameters.
SQL_TEXT_OR_PARAMETER = re.compile(
    r"""[Ee]'(?:[^'\\]|\\.|'')*'|'(?:[^']|'')*'|"(?:[^"]|"")*"|\$([A-Za-z_]\w*|)\$.*?\$\1\$"""
    r"""|--[^\n]*|/\*.*?\*/|\$(?P<parameter>\d+)""",
    re.S,
)
LEADING_NOISE = re.compile(r"(?:\s+|--[^\n]*|/\*.*?\*/|\()+", re.S)
# What PREPARE and EXPLAIN accept; everything else in pg_stat_statements is a utility statement.
PLANNABLE_KEYWORDS = frozenset({"select", "insert", "update", "delete", "with", "values", "table", "merge"})
EXPLAIN_STATEMENT_NAME = "synap_play_explain"


def placeholder_count(statement):
    """The highest ``$n`` parameter of ``statement`` (0 when it has none), ignoring literals and comments."""
    numbers = [int(m.group("parameter")) for m in SQL_TEXT_OR_PARAMETER.finditer(statement or "")
               if m.group("parameter")]
    return max(numbers, default=0)


def leading_keyword(statement):
    """The first word of ``statement`` after comments, blanks and opening parentheses, lower case."""
    text = statement or ""
    noise = LEADING_NOISE.match(text)
    match = re.match(r"[A-Za-z]+", text[noise.end() if noise else 0:])
    return match.group(0).lower() if match else ""


def own_statement(statement):
    return (statement or "").lstrip().startswith(OWN_STATEMENT_MARKER)


def plannable(statement):
    """Whether ``statement`` is one an application runs (not ours, not a utility statement) and can be planned."""
    return not own_statement(statement) and leading_keyword(statement) in PLANNABLE_KEYWORDS


def explain_plan(conn, statement, analyze=False):
    """``(method, plan lines)`` of ``statement``; raises what PostgreSQL raised.

    ``method`` is ``plain`` (EXPLAIN) or ``generic_plan``: a text with ``$n`` placeholders, as
    pg_stat_statements stores them, cannot be EXPLAINed on PostgreSQL 15 (EXPLAIN (GENERIC_PLAN) came in 16),
    so it is PREPAREd and its generic plan shown with EXPLAIN EXECUTE and NULL for every parameter. Only
    ``analyze`` executes anything, always in a read-only transaction that is rolled back.
    """
    statement = statement.strip().rstrip(";").rstrip()
    if not placeholder_count(statement):
        prefix = "EXPLAIN (ANALYZE, BUFFERS) " if analyze else "EXPLAIN "
        with conn.transaction(force_rollback=True):
            conn.execute("SET TRANSACTION READ ONLY")
            rows = query(conn, prefix + statement)
        return "plain", [r["QUERY PLAN"] for r in rows]
    if analyze:
        raise ValueError("EXPLAIN ANALYZE needs real values: replace the $n placeholders, "
                         "or leave explain_analyze off for the generic plan")
    prepared = False
    try:
        with conn.transaction(force_rollback=True):
            conn.execute("SET TRANSACTION READ ONLY")
            conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            query(conn, f"PREPARE {EXPLAIN_STATEMENT_NAME} AS {statement}")
            prepared = True
            # The server's own count of the parameters it inferred, rather than our reading of the text.
            count = query_one(conn, "SELECT cardinality(parameter_types) AS n FROM pg_prepared_statements "
                                    "WHERE name = %s", (EXPLAIN_STATEMENT_NAME,))["n"]
            arguments = "({})".format(", ".join(["NULL"] * count)) if count else ""
            rows = query(conn, f"EXPLAIN EXECUTE {EXPLAIN_STATEMENT_NAME}{arguments}")
            query(conn, f"DEALLOCATE {EXPLAIN_STATEMENT_NAME}")
            prepared = False
    finally:
        if prepared:  # PREPARE is not undone by ROLLBACK
            with contextlib.suppress(Exception):
                conn.execute(f"DEALLOCATE {EXPLAIN_STATEMENT_NAME}")
    return "generic_plan", [r["QUERY PLAN"] for r in rows]
