"""The `queue-backup` fault's source: a runaway bulk import that floods Inngest with AI entity requests.

An initial burst, then a steady stream faster than the jobs worker drains, until this container is stopped.
Its events carry `data.source = "bulk-import"` and `data.integration = "notion-sync"`, so an operator looking
at the events can find where they come from.
"""

from __future__ import annotations

import os
import time
import uuid

import psycopg
from synaplab import DATABASE_URL, log, send_events

BURST = int(os.environ.get("STORM_BURST", "300"))
# Events per second after the burst: more than one jobs replica keeps up with, less than three.
RATE = float(os.environ.get("STORM_RATE", "15"))
REAL_BACKEND = os.environ.get("SYNAP_LAB_BACKEND") == "real"


def requesters() -> list[tuple[str, str]]:
    with psycopg.connect(DATABASE_URL, application_name="synap-import") as conn:
        rows = conn.execute(
            "SELECT id::text, owner_id FROM workspaces WHERE settings->>'aiAutoApprove' = 'false' LIMIT 300"
        ).fetchall()
    return [(row[0], row[1]) for row in rows]


def events(count: int, workspaces: list[tuple[str, str]], offset: int) -> list[dict]:
    batch = []
    for index in range(offset, offset + count):
        workspace_id, owner = workspaces[index % len(workspaces)]
        target = str(uuid.uuid4())
        if REAL_BACKEND:  # the data as Synap's real validator reads it (lab/backend/README.md)
            data = {"workspaceId": workspace_id, "userId": owner, "type": "page", "title": f"Imported page {index}",
                    "source": "ai", "integration": "notion-sync", "entityId": target}
        else:
            data = {"workspace_id": workspace_id, "user_id": owner, "entity_type": "page",
                    "title": f"Imported page {index}", "source": "ai", "integration": "notion-sync", "target_id": target}
        batch.append({"name": "entities.create.requested", "data": data, "user": {"id": owner}})
    return batch


def main() -> None:
    workspaces = requesters()
    sent = 0
    for _ in range(0, BURST, 100):
        send_events(events(100, workspaces, sent))
        sent += 100
    log("INFO", "notion-sync", "bulk import started", sent=sent)
    while True:
        time.sleep(1)
        send_events(events(int(RATE), workspaces, sent))
        sent += int(RATE)


if __name__ == "__main__":
    main()
