# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The run store: registered apps, runs and their states, the queue and the workers that dispatch it.

Also what every other module of the stand-in shares: ids, times, the error answer and the run's shapes.
"""

from __future__ import annotations

import base64
import contextlib
import fnmatch
import json
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import deque
from datetime import UTC, datetime

ENDED = frozenset({"COMPLETED", "FAILED", "CANCELLED", "SKIPPED"})
ALL_STATUSES = ("QUEUED", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "SKIPPED")
# The v1 REST API spells run states differently from GraphQL and v2.
V1_STATUS = {
    "QUEUED": "Scheduled",
    "RUNNING": "Running",
    "COMPLETED": "Completed",
    "FAILED": "Failed",
    "CANCELLED": "Cancelled",
    "SKIPPED": "Skipped",
}
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class RequestError(Exception):
    """An answer other than 200, with the status and the JSON body to send."""

    def __init__(self, status: int, body: object):
        super().__init__(status)
        self.status = status
        self.body = body


def new_ulid() -> str:
    """A ULID (48-bit millisecond time, 80 random bits), the id format Inngest uses for runs and events."""
    value = (int(time.time() * 1000) << 80) | secrets.randbits(80)
    chars = []
    for _position in range(26):
        chars.append(CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def now() -> datetime:
    return datetime.now(UTC)


def rfc3339(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    """RFC 3339 (``Z`` or an offset); a naive time is taken as UTC."""
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def encode_cursor(run: dict) -> str:
    return base64.urlsafe_b64encode(run["id"].encode()).decode()


def decode_cursor(cursor: str) -> str:
    """The run id in a cursor; ValueError when it is not one of ours."""
    return base64.urlsafe_b64decode(cursor.encode()).decode()


def json_or_text(raw: bytes) -> object:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode("utf-8", "replace")


class Store:
    """Apps and runs in memory, guarded by one lock; a condition wakes the dispatch workers."""

    def __init__(self, dispatch_timeout: float):
        self.lock = threading.Lock()
        self.ready = threading.Condition(self.lock)
        self.dispatch_timeout = dispatch_timeout
        self.env_id = str(uuid.uuid4())
        self.apps: dict[str, dict] = {}  # app name -> {id, name, url, functions: [...]}
        self.runs: dict[str, dict] = {}  # run id -> run, in creation order
        self.queue: deque[str] = deque()
        self.stopping = False

    # -- apps

    def register(self, payload: dict) -> None:
        url = payload.get("url")
        app_name = payload.get("appName") or payload.get("app_name")
        functions = payload.get("functions")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise RequestError(400, {"error": "url must be the app's http(s) endpoint"})
        if not isinstance(app_name, str) or not app_name:
            raise RequestError(400, {"error": "appName is required"})
        if not isinstance(functions, list):
            raise RequestError(400, {"error": "functions must be a list"})
        with self.lock:
            previous = self.apps.get(app_name)
            known = {fn["id"]: fn for fn in previous["functions"]} if previous else {}
            registered = []
            for spec in functions:
                if not isinstance(spec, dict) or not isinstance(spec.get("id"), str):
                    raise RequestError(400, {"error": "every function needs a string id"})
                old = known.get(spec["id"])
                registered.append(
                    {
                        # Keep internal ids stable across re-registration, as the real server does.
                        "internal_id": old["internal_id"] if old else str(uuid.uuid4()),
                        "created_at": old["created_at"] if old else now(),
                        "id": spec["id"],
                        "slug": f"{app_name}-{spec['id']}",
                        "name": spec.get("name") or spec["id"],
                        "triggers": [t for t in spec.get("triggers") or [] if isinstance(t, dict)],
                        "retries": int(spec.get("retries", 3)),
                        "config": {k: v for k, v in spec.items() if k not in ("id", "name", "triggers")},
                    }
                )
            self.apps[app_name] = {
                "id": previous["id"] if previous else str(uuid.uuid4()),
                "name": app_name,
                "url": url,
                "functions": registered,
            }

    def find_app(self, key: str) -> dict | None:
        """An app by name or by id."""
        with self.lock:
            if key in self.apps:
                return self.apps[key]
            return next((app for app in self.apps.values() if app["id"] == key), None)

    # -- runs

    def start_runs(self, event: dict) -> None:
        """One QUEUED run per registered function with a trigger matching the event's name."""
        with self.lock:
            for app in self.apps.values():
                for fn in app["functions"]:
                    if any(fnmatch.fnmatchcase(event["name"], t.get("event", "")) for t in fn["triggers"]):
                        self._create_run(app, fn, event)
            self.ready.notify_all()

    def _create_run(self, app: dict, fn: dict, event: dict) -> dict:
        run = {
            "id": new_ulid(),
            "status": "QUEUED",
            "app": app,
            "function": fn,
            "event": event,
            "queued_at": now(),
            "started_at": None,
            "ended_at": None,
            "attempt": 0,
            "output": None,
        }
        self.runs[run["id"]] = run
        self.queue.append(run["id"])
        return run

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
            if run["status"] == "QUEUED":
                with contextlib.suppress(ValueError):
                    self.queue.remove(run_id)
            run["status"] = "CANCELLED"
            run["ended_at"] = now()
            return True

    def rerun(self, run_id: str) -> dict:
        old = self.get_run(run_id)
        with self.lock:
            run = self._create_run(old["app"], old["function"], old["event"])
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

    # -- dispatch

    def next_run(self) -> tuple[dict, str, dict] | None:
        with self.lock:
            while not self.queue and not self.stopping:
                self.ready.wait()
            if self.stopping:
                return None
            run = self.runs[self.queue.popleft()]
            run["status"] = "RUNNING"
            run["attempt"] += 1
            if run["started_at"] is None:
                run["started_at"] = now()
            return run, run["app"]["url"], self._request_body(run)

    @staticmethod
    def _request_body(run: dict) -> dict:
        event = run["event"]
        wire_event = {k: event[k] for k in ("id", "name", "data", "user", "ts")}
        return {
            "event": wire_event,
            "events": [wire_event],
            "ctx": {"run_id": run["id"], "fn_id": run["function"]["id"], "attempt": run["attempt"] - 1},
        }

    def finish(self, run: dict, ok: bool, output: object) -> None:
        with self.lock:
            if run["status"] != "RUNNING":  # cancelled while in flight: the answer no longer counts
                return
            if ok:
                run["status"], run["output"], run["ended_at"] = "COMPLETED", output, now()
            elif run["attempt"] <= run["function"]["retries"]:
                run["status"] = "QUEUED"
                self.queue.append(run["id"])
                self.ready.notify()
            else:
                run["status"], run["output"], run["ended_at"] = "FAILED", output, now()

    def dispatch_forever(self) -> None:
        while True:
            job = self.next_run()
            if job is None:
                return
            run, url, body = job
            query = urllib.parse.urlencode({"fnId": run["function"]["id"], "runId": run["id"]})
            separator = "&" if "?" in url else "?"
            request = urllib.request.Request(
                f"{url}{separator}{query}",
                data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            try:
                with urllib.request.urlopen(request, timeout=self.dispatch_timeout) as response:
                    text = response.read()
                self.finish(run, True, json_or_text(text))
            except urllib.error.HTTPError as exc:
                self.finish(run, False, {"error": f"HTTP {exc.code}", "body": json_or_text(exc.read())})
            except (OSError, ValueError) as exc:
                self.finish(run, False, {"error": str(exc)})

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
