# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The run store: registered apps, runs and their states, and the queue the dispatch workers take calls from.

A queue item is one call to an app: ``{"run", "step", "attempt", "ready_at", "key"}``. A run of the simple form
has one item per attempt; a run of an SDK function has one per request of the execution protocol (the first call,
each call after a step's result, each planned step, each retry), as the real server queues them. ``ready_at``
holds a retry back for its backoff; ``inngest_queue_depth`` counts every item, ready or not.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid

import functions
from common import ALL_STATUSES, ENDED, V1_STATUS, RequestError, new_ulid, now, rfc3339

SERVER_KIND = "dev"  # what the SDK sees in X-Inngest-Expected-Server-Kind when it expects this server
TIMER_EVENT = "inngest/scheduled.timer"  # the event a cron run carries, as Inngest names it


class Store:
    """Apps, runs and the queue in memory, guarded by one lock; a condition wakes the dispatch workers."""

    def __init__(self):
        self.lock = threading.Lock()
        self.ready = threading.Condition(self.lock)
        self.env_id = str(uuid.uuid4())
        self.apps: dict[str, dict] = {}  # app name -> {id, name, url, checksum, functions: [...]}
        self.runs: dict[str, dict] = {}  # run id -> run, in creation order
        self.queue: list[dict] = []  # items in the order they were queued
        self.stopping = False

    # -- apps

    def register(self, payload: object, expected_kind: str | None = None) -> dict:
        """Register (or re-register) an app's functions; the answer is the dev server's sync reply."""
        if expected_kind and expected_kind != SERVER_KIND:
            raise functions.refused(f"Expected server kind {SERVER_KIND}, got {expected_kind}")
        app_name, url, specs = functions.checked(payload)
        checksum = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
        with self.lock:
            previous = self.apps.get(app_name)
            if previous and previous["checksum"] == checksum:
                return {"ok": True}  # the same functions again: nothing to do, as the dev server skips it
            known = {fn["id"]: fn for fn in previous["functions"]} if previous else {}
            app = {
                "id": previous["id"] if previous else str(uuid.uuid4()),
                "name": app_name,
                "url": url,
                "checksum": checksum,
                "functions": [functions.record(app_name, url, spec, known.get(spec["id"])) for spec in specs],
            }
            self.apps[app_name] = app
            return {"ok": True, "modified": True, "app_id": app["id"], "sync_id": str(uuid.uuid4())}

    def find_app(self, key: str) -> dict | None:
        """An app by name or by id."""
        with self.lock:
            if key in self.apps:
                return self.apps[key]
            return next((app for app in self.apps.values() if app["id"] == key), None)

    def cron_functions(self) -> list[tuple[dict, dict]]:
        with self.lock:
            return [(app, fn) for app in self.apps.values() for fn in app["functions"] if fn["crons"]]

    # -- runs

    def start_runs(self, event: dict) -> None:
        """One QUEUED run per registered function with a trigger matching the event's name."""
        with self.lock:
            for app in self.apps.values():
                for fn in app["functions"]:
                    if functions.triggered_by(fn, event["name"]):
                        self._create_run(app, fn, event)
            self.ready.notify_all()

    def start_scheduled(self, app: dict, fn: dict, expression: str) -> dict:
        """A cron run: its event is Inngest's internal timer event (not listed at /v1/events)."""
        moment = now()
        event = {"id": new_ulid(), "name": TIMER_EVENT, "data": {"cron": expression}, "user": {},
                 "ts": int(moment.timestamp() * 1000)}
        with self.lock:
            run = self._create_run(app, fn, event, cron=expression)
            self.ready.notify_all()
            return run

    def _create_run(self, app: dict, fn: dict, event: dict, cron: str | None = None) -> dict:
        run = {
            "id": new_ulid(),
            "status": "QUEUED",
            "app": app,
            "function": fn,
            "event": event,
            "cron": cron,
            "queued_at": now(),
            "started_at": None,
            "ended_at": None,
            "attempt": 0,  # calls made so far (the simple form's attempt counter)
            "output": None,
            # The SDK execution protocol's state: step results by hashed id, their order, the request version
            # the SDK answered with (-1 until it has), and whether steps must be planned before they run.
            "steps": {},
            "stack": [],
            "version": -1,
            "force_plan": False,
            "keys": set(),  # items already queued once (the real server's idempotent job ids)
            "queued": 0,  # its items now in the queue
        }
        self.runs[run["id"]] = run
        self.enqueue_locked(run, "step" if fn["protocol"] == "sdk" else None)
        return run

    def enqueue_locked(self, run: dict, step: str | None, attempt: int = 0, delay: float = 0.0,
                       key: str | None = None) -> bool:
        """Queue a call for ``run`` (the store's lock held). An item whose ``key`` was queued before is dropped."""
        if key is not None:
            if key in run["keys"]:
                return False
            run["keys"].add(key)
        self.queue.append({"run": run, "step": step, "attempt": attempt, "ready_at": time.monotonic() + delay,
                           "key": key})
        run["queued"] += 1
        self.ready.notify()
        return True

    def end_locked(self, run: dict, status: str, output: object) -> None:
        """End a run (the store's lock held); its queued calls are dropped, answers still in flight ignored."""
        run["status"], run["output"], run["ended_at"] = status, output, now()
        if run["queued"]:  # most runs end with nothing queued: spare the scan of a long queue
            self.queue = [item for item in self.queue if item["run"] is not run]
            run["queued"] = 0

    def queue_depth(self) -> int:
        with self.lock:
            return len(self.queue)

    def status_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(ALL_STATUSES, 0)
        with self.lock:
            for run in self.runs.values():
                counts[run["status"]] += 1
        return counts

    def get_run(self, run_id: str) -> dict:
        with self.lock:
            run = self.runs.get(run_id)
        if run is None:
            raise RequestError(404, {"error": f"run {run_id} not found"})
        return run

    def cancel(self, run_id: str) -> bool:
        """Cancel a QUEUED or RUNNING run at once. False when it had already ended."""
        run = self.get_run(run_id)
        with self.lock:
            if run["status"] in ENDED:
                return False
            self.end_locked(run, "CANCELLED", run["output"])
            return True

    def rerun(self, run_id: str) -> dict:
        old = self.get_run(run_id)
        with self.lock:
            run = self._create_run(old["app"], old["function"], old["event"], old["cron"])
            self.ready.notify_all()
            return run

    def select_runs(self, statuses, time_field, start, until) -> list[dict]:
        """Runs with one of ``statuses`` (any if empty) whose ``time_field`` is in [start, until)."""
        with self.lock:
            runs = list(self.runs.values())
        return [
            run for run in runs
            if (not statuses or run["status"] in statuses)
            and run[time_field] is not None
            and not (start and run[time_field] < start)
            and not (until and run[time_field] >= until)
        ]

    # -- the queue

    def next_item(self) -> dict | None:
        """The oldest item that is ready, its run marked RUNNING; waits for one. None once stopping."""
        with self.lock:
            while True:
                if self.stopping:
                    return None
                moment = time.monotonic()
                item = next((i for i in self.queue if i["ready_at"] <= moment), None)
                if item is not None:
                    break
                wake = min((i["ready_at"] for i in self.queue), default=None)
                self.ready.wait(None if wake is None else wake - moment)
            self.queue.remove(item)
            run = item["run"]
            run["queued"] -= 1
            run["status"] = "RUNNING"
            run["attempt"] += 1
            if run["started_at"] is None:
                run["started_at"] = now()
            return item

    def stop(self) -> None:
        with self.lock:
            self.stopping = True
            self.ready.notify_all()


# ------------------------------------------------------------------------------------- representations


def gql_run(run: dict) -> dict:
    return {
        "id": run["id"],
        "status": run["status"],
        "queuedAt": rfc3339(run["queued_at"]),
        "startedAt": rfc3339(run["started_at"]),
        "endedAt": rfc3339(run["ended_at"]),
        "functionID": run["function"]["internal_id"],
        "function": {"id": run["function"]["internal_id"], "slug": run["function"]["slug"],
                     "name": run["function"]["name"]},
        "app": {"id": run["app"]["id"], "externalID": run["app"]["name"], "name": run["app"]["name"]},
        "eventName": run["event"]["name"],
        "output": json.dumps(run["output"]) if run["output"] is not None else None,
    }


def v2_run(run: dict) -> dict:
    return {
        "id": run["id"],
        "function": {"id": run["function"]["internal_id"], "name": run["function"]["name"]},
        "app": {"id": run["app"]["id"]},
        "status": run["status"],
        "queuedAt": rfc3339(run["queued_at"]),
        "startedAt": rfc3339(run["started_at"]),
        "endedAt": rfc3339(run["ended_at"]),
        "trigger": {"eventIds": [run["event"]["id"]], "eventName": run["event"]["name"]},
    }


def v1_run(run: dict) -> dict:
    return {
        "run_id": run["id"],
        "run_started_at": rfc3339(run["started_at"] or run["queued_at"]),
        "function_id": run["function"]["internal_id"],
        "event_id": run["event"]["id"],
        "status": V1_STATUS[run["status"]],
        "ended_at": rfc3339(run["ended_at"]),
        "output": run["output"],
    }
