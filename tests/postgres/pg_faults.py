"""Real PostgreSQL faults for the tests: held-open connections, open transactions, lock chains, long queries.

Each maker is a context manager that creates the fault with real sessions and removes it on exit, even when
the test has already ended some of the sessions.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass, field

import psycopg
from pg_cluster import APP_USER


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def alive_pids(pg, pids) -> set[int]:
    with pg.connect(application_name="pytest-observer") as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE pid = ANY(%s)", (list(pids),)).fetchall()
    return {r[0] for r in rows}


def activity(pg, pid):
    with pg.connect(application_name="pytest-observer") as conn:
        return conn.execute("SELECT state, wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()


def _close_all(conns):
    for conn in conns:
        with contextlib.suppress(Exception):
            conn.close()


@contextlib.contextmanager
def idle_connections(pg, count: int, application_name: str = "api", user: str = APP_USER):
    """``count`` connections that connect, run one query and then sit idle (a leaking pool)."""
    conns = []
    try:
        for _ in range(count):
            conn = pg.connect(user=user, application_name=application_name)
            conn.execute("SELECT 1")
            conns.append(conn)
        yield [c.info.backend_pid for c in conns]
    finally:
        _close_all(conns)


@contextlib.contextmanager
def idle_in_transaction(pg, application_name: str = "worker", user: str = APP_USER, aborted: bool = False):
    """A session that opened a transaction, touched proposals and went quiet without committing; `aborted`: one of
    its statements failed and it never rolled back."""
    conn = pg.connect(user=user, application_name=application_name)
    try:
        conn.execute("BEGIN")
        conn.execute("SELECT count(*) FROM proposals")
        if aborted:
            with contextlib.suppress(psycopg.errors.DivisionByZero):
                conn.execute("SELECT 1 / 0")
        yield conn.info.backend_pid
    finally:
        _close_all([conn])


@dataclass
class Chain:
    holder: int
    waiters: list[int]
    threads: list[threading.Thread] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)
    finished: set[int] = field(default_factory=set)


@contextlib.contextmanager
def blocking_chain(pg, proposal_id: str, waiters: int = 2, application_name: str = "api"):
    """A holds a row lock on ``proposal_id`` (idle in transaction); B, C, ... wait to update the same row."""
    holder = pg.connect(user=APP_USER, application_name=f"{application_name}-holder")
    holder.execute("BEGIN")
    holder.execute("UPDATE proposals SET updated_at = now() WHERE id = %s", (proposal_id,))
    waiting_conns = [pg.connect(user=APP_USER, application_name=f"{application_name}-waiter") for _ in range(waiters)]
    chain = Chain(holder=holder.info.backend_pid, waiters=[c.info.backend_pid for c in waiting_conns])

    def wait_on_row(conn):
        pid = conn.info.backend_pid
        try:
            conn.execute("UPDATE proposals SET updated_at = now() WHERE id = %s", (proposal_id,))
            chain.finished.add(pid)
        except psycopg.Error as exc:
            chain.errors[pid] = str(exc)

    try:
        for conn in waiting_conns:
            thread = threading.Thread(target=wait_on_row, args=(conn,), daemon=True)
            thread.start()
            chain.threads.append(thread)
            # One after another, so the chain has a defined shape: A <- B <- C.
            wait_for(lambda c=conn: (activity(pg, c.info.backend_pid) or (None, None))[1] == "Lock",
                     what="waiter to block")
        yield chain
    finally:
        with contextlib.suppress(Exception):
            holder.rollback()
        _close_all([holder])
        for thread in chain.threads:
            thread.join(timeout=10)
        _close_all(waiting_conns)


@dataclass
class LongQuery:
    pid: int
    error: str | None = None
    done: bool = False


@contextlib.contextmanager
def long_query(pg, seconds: float = 60, application_name: str = "jobs", user: str = APP_USER):
    """A real ``pg_sleep`` query running in the background; cancelled on exit if still running."""
    conn = pg.connect(user=user, application_name=application_name)
    running = LongQuery(pid=conn.info.backend_pid)

    def sleep():
        try:
            conn.execute("SELECT pg_sleep(%s)", (seconds,))
            running.done = True
        except psycopg.Error as exc:
            running.error = str(exc)

    thread = threading.Thread(target=sleep, daemon=True)
    thread.start()
    try:
        wait_for(lambda: (activity(pg, running.pid) or ("",))[0] == "active", what="query to start")
        yield running
    finally:
        if thread.is_alive():
            with pg.connect(application_name="pytest-cleanup") as admin:
                admin.execute("SELECT pg_cancel_backend(%s)", (running.pid,))
        thread.join(timeout=10)
        _close_all([conn])


@contextlib.contextmanager
def saturated(pg, user: str = APP_USER, application_name: str = "api"):
    """Open connections as ``user`` until the server refuses more; yields them with the refusal text."""
    conns = []
    refusal = None
    try:
        for _ in range(pg.max_connections + 5):
            try:
                conns.append(pg.connect(user=user, application_name=application_name))
            except psycopg.OperationalError as exc:
                refusal = str(exc)
                break
        yield conns, refusal
    finally:
        _close_all(conns)


@contextlib.contextmanager
def silent_listener():
    """A TCP port that accepts connections (kernel backlog) but never answers: a black-holed server."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()
