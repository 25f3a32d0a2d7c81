# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Event intake: ``POST /e/{key}`` checked, deduplicated by id, kept, and turned into runs; ``GET /v1/events``."""

from __future__ import annotations

import threading

from common import RequestError, new_ulid, now, rfc3339
from runs import Store

LIST_MAX = 51
LIST_DEFAULT = 20


def checked(payload: object) -> list[dict]:
    """The events of a ``POST /e/{key}`` body (one event or a list), or RequestError 400."""
    events = payload if isinstance(payload, list) else [payload]
    for event in events:
        if not isinstance(event, dict) or not isinstance(event.get("name"), str) or not event["name"]:
            message = "every event needs a non-empty string name"
        elif event.get("data") is not None and not isinstance(event["data"], dict):
            message = "event data must be an object"
        elif event.get("id") is not None and not isinstance(event["id"], str):
            message = "event id must be a string"
        else:
            continue
        raise RequestError(400, {"status": 400, "error": message})
    return events


class Events:
    """Every event received, in arrival order; each new one starts its runs in the store."""

    def __init__(self, store: Store):
        self.store = store
        self.lock = threading.Lock()
        self.events: list[dict] = []
        self.ids: set[str] = set()

    def receive(self, events: list[dict]) -> list[str]:
        """Keep new events and start their runs; a repeated id is dropped. Returns every event's id."""
        ids = []
        with self.lock:
            for raw in events:
                event_id = raw.get("id") or new_ulid()
                ids.append(event_id)
                if event_id in self.ids:
                    continue
                received = now()
                event = {
                    "id": event_id,
                    "internal_id": new_ulid(),
                    "name": raw["name"],
                    "data": raw.get("data") or {},
                    "user": raw.get("user") or {},
                    "ts": int(raw.get("ts") or received.timestamp() * 1000),
                    "v": raw.get("v"),
                    "received_at": received,
                }
                self.ids.add(event_id)
                self.events.append(event)
                self.store.start_runs(event)
        return ids

    def page(self, name, limit, cursor, after, before) -> list[dict]:
        """Newest first; the cursor is the id of the last event of the previous page."""
        with self.lock:
            events = list(reversed(self.events))
        if cursor:
            position = next((i for i, e in enumerate(events) if cursor in (e["id"], e["internal_id"])), None)
            if position is None:
                raise RequestError(400, {"error": "cursor is not a known event id"})
            events = events[position + 1 :]
        selected = [e for e in events if (name is None or e["name"] == name) and after <= e["received_at"] <= before]
        return selected[:limit]


def v1_event(event: dict) -> dict:
    return {
        "id": event["id"],
        "internal_id": event["internal_id"],
        "name": event["name"],
        "data": event["data"],
        "user": event["user"],
        "ts": event["ts"],
        "v": event["v"],
        "received_at": rfc3339(event["received_at"]),
    }
