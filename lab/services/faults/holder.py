"""Database sessions that hold on, for the `db-slow` and `proposals-stuck` faults.

  holder.py long-queries N   N sessions each running a query that does not finish (active for an hour)
  holder.py lock-proposals   one session that locks every pending proposal (SELECT ... FOR UPDATE) and then
                             sits idle in its open transaction, as a stalled admin script would (with the real
                             backend, SYNAP_LAB_BACKEND=real, it also builds an index on proposals in it)

The application name comes from PGAPPNAME. The process exits once its sessions are terminated (the runbook's
pg_terminate_backend), so the container stops by itself when the fault is mitigated.
"""

from __future__ import annotations

import os
import select
import sys
import threading

import psycopg
from synaplab import DATABASE_URL, log

LONG_QUERY = "SELECT count(*), pg_sleep(3600) FROM proposals WHERE status <> 'pending'"


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
    # Idle in transaction. The server only ever writes to this socket again to say it ends the session.
    while not select.select([conn.fileno()], [], [], 60)[0]:
        pass
    log("INFO", "holder", "session ended")


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
    else:
        sys.exit("usage: holder.py long-queries N | lock-proposals")
