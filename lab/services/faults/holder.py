"""Database sessions that hold on, for the `db-slow` and `proposals-stuck` faults.

  holder.py long-queries N   N sessions each running a query that does not finish (active for an hour)
  holder.py lock-proposals   one session that locks every pending proposal (SELECT ... FOR UPDATE) and then
                             sits idle in its open transaction, as a stalled admin script would (with the real
                             backend, SYNAP_LAB_BACKEND=real, it also builds an index on proposals in it)
  holder.py pile-up N        one session that locks a user's preferences row and sits idle in its transaction,
                             while N requests to change that user's theme (more than PostgreSQL has connections)
                             arrive at the real API: each holds a connection of its pool while it waits

The application name comes from PGAPPNAME. The process exits once its sessions are terminated (the runbook's
pg_terminate_backend), so the container stops by itself when the fault is mitigated.
"""

from __future__ import annotations

import json
import os
import select
import sys
import threading
import urllib.error
import urllib.request

import psycopg
from synaplab import DATABASE_URL, log

LONG_QUERY = "SELECT count(*), pg_sleep(3600) FROM proposals WHERE status <> 'pending'"
API_URL = os.environ.get("API_URL", "http://api:3000").rstrip("/")
# A seeded user (lab/backend/seed.sql), signed in with the development session cookie.
PILED_UP_USER = "user_5"


def long_query(number: int) -> None:
    try:
        with psycopg.connect(DATABASE_URL, autocommit=True) as conn:
            conn.execute(LONG_QUERY)
    except psycopg.Error as error:
        log("INFO", "holder", "session ended", session=number, error=repr(str(error).strip()))


def lock_proposals() -> None:
    conn = psycopg.connect(DATABASE_URL)
    locked = conn.execute("SELECT id FROM proposals WHERE status = 'pending' FOR UPDATE").fetchall()
    log("INFO", "holder", "holding row locks", rows=len(locked))
    if os.environ.get("SYNAP_LAB_BACKEND") == "real":
        # Synap's real validator only inserts proposals, which no row lock stops. What does is the SHARE lock of an
        # index built without CONCURRENTLY, here in the same stalled transaction: every insert waits behind it.
        conn.execute("CREATE INDEX proposals_review_queue_idx ON proposals (status, created_at)")
        log("INFO", "holder", "building an index on proposals, transaction left open")
    sit_idle(conn)


def sit_idle(conn: psycopg.Connection) -> None:
    """Idle in transaction until the session is ended: the server only ever writes to its socket again to say so."""
    while not select.select([conn.fileno()], [], [], 60)[0]:
        pass
    log("INFO", "holder", "session ended")


def change_theme(number: int) -> None:
    request = urllib.request.Request(f"{API_URL}/trpc/preferences.updateTheme", method="POST",
                                     data=json.dumps({"json": {"theme": "dark"}}).encode(),
                                     headers={"Content-Type": "application/json",
                                              "Cookie": f"mock-session-cookie={PILED_UP_USER}"})
    try:
        with urllib.request.urlopen(request, timeout=3600) as response:
            outcome = response.status
    except urllib.error.HTTPError as error:
        outcome = error.code
    except OSError as error:  # the api restarted under it
        outcome = repr(str(error))
    log("INFO", "holder", "request answered", request=number, outcome=outcome)


def pile_up(count: int) -> None:
    with psycopg.connect(DATABASE_URL, autocommit=True) as setup:
        setup.execute("INSERT INTO user_preferences (user_id) VALUES (%s) ON CONFLICT DO NOTHING", (PILED_UP_USER,))
    conn = psycopg.connect(DATABASE_URL)
    conn.execute("SELECT 1 FROM user_preferences WHERE user_id = %s FOR UPDATE", (PILED_UP_USER,))
    log("INFO", "holder", "holding a user's preferences row", user=PILED_UP_USER, requests=count)
    # Once: the requests cut off by a restart of the api are not sent again.
    for number in range(count):
        threading.Thread(target=change_theme, args=(number,), daemon=True).start()
    sit_idle(conn)


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode == "long-queries":
        count = int(sys.argv[2]) if len(sys.argv) > 2 else 3
        threads = [threading.Thread(target=long_query, args=(n,)) for n in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    elif mode == "lock-proposals":
        lock_proposals()
    elif mode == "pile-up" and len(sys.argv) > 2:
        pile_up(int(sys.argv[2]))
    else:
        sys.exit("usage: holder.py long-queries N | lock-proposals | pile-up N")
