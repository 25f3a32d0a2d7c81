"""Load generator: real requests against the lab's api, so error rate and p95 come from real traffic."""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field

from synap_play.lab import LabError, access, backend, real_app
from synap_play.lab.stack import Lab

# (weight, kind): mostly reads, as Synap's traffic is.
MIX = ((5, "overview"), (3, "search"), (1, "proposals"), (1, "create"))
# The real backend's: a workspace's table view (its entities, by workspace), its pending proposals, the clients'
# readiness polls, and requests a user makes (approved at once: events through Inngest to the validator and the
# executor, no proposal).
REAL_MIX = ((4, "view"), (3, "proposals"), (1, "ready"), (2, "submit"))


@dataclass
class LoadResult:
    durations: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def requests(self) -> int:
        return len(self.durations)

    @property
    def errors(self) -> int:
        # 0 stands for "no answer" (connection refused, timeout).
        return sum(count for status, count in self.statuses.items() if status >= 500 or status == 0)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    def percentile(self, share: float) -> float:
        if not self.durations:
            return 0.0
        ordered = sorted(self.durations)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    def summary(self) -> str:
        return (f"{self.requests} requests, {self.errors} errors ({self.error_rate:.1%}), "
                f"p50 {self.percentile(0.5) * 1000:.0f} ms, p95 {self.percentile(0.95) * 1000:.0f} ms")


def _request(url: str, body=None, timeout: float = 10.0, headers: dict | None = None) -> int:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST" if body is not None else "GET",
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return 0


def workspaces(base_url: str) -> list[str]:
    try:
        with urllib.request.urlopen(f"{base_url}/api/workspaces?limit=500", timeout=10) as response:
            return json.loads(response.read())["workspaces"]
    except (OSError, ValueError, KeyError) as error:
        raise LabError(f"cannot list workspaces from {base_url} ({error}); is the lab up?") from error


def _standin_traffic(base_url: str) -> Callable[[random.Random], int]:
    """One request of the stand-in API's mix, as `chooser` picks it: its status."""
    ids = workspaces(base_url)
    kinds = [kind for weight, kind in MIX for _ in range(weight)]

    def send(chooser: random.Random) -> int:
        workspace = chooser.choice(ids)
        kind = chooser.choice(kinds)
        if kind == "overview":
            return _request(f"{base_url}/api/workspaces/{workspace}/overview")
        if kind == "search":
            return _request(f"{base_url}/api/search?workspace_id={workspace}&q=plan")
        if kind == "proposals":
            return _request(f"{base_url}/api/proposals?workspace_id={workspace}&status=pending")
        source = chooser.choice(["ai", "user"])
        body = {"workspace_id": workspace, "type": "note", "title": "load", "source": source}
        return _request(f"{base_url}/api/entities", body)

    return send


def _real_traffic(base_url: str) -> Callable[[random.Random], int]:
    """One request of the real backend's mix (tRPC as Synap's clients call it, each signed in as a workspace's
    owner): its status."""
    try:
        # Each workspace with its owner and its table view (lab/backend/seed.sql gives every workspace one).
        owners = access.sql("SELECT w.id::text, w.owner_id, min(v.id::text) FROM workspaces w "
                            "LEFT JOIN views v ON v.workspace_id = w.id GROUP BY w.id, w.owner_id, w.created_at "
                            "ORDER BY w.created_at LIMIT 500")
    except LabError as error:
        raise LabError(f"cannot list the real backend's workspaces ({error}); is the lab up?") from None
    if not owners:
        raise LabError("the real backend's database has no workspace; run 'synap-play lab reset'")
    kinds = [kind for weight, kind in REAL_MIX for _ in range(weight)]

    def query(procedure: str, payload, owner: str | None) -> int:
        return _request(real_app.query_url(base_url, procedure, payload), headers=real_app.signed_in(owner))

    def send(chooser: random.Random) -> int:
        workspace, owner, view = chooser.choice(owners)
        kind = chooser.choice(kinds)
        if kind == "proposals":
            return query("proposals.list", {"workspaceId": workspace, "status": "pending"}, owner)
        if kind == "view" and view:
            return query("views.execute", {"id": view}, owner)
        if kind == "ready":
            return query("health.ready", None, None)
        body = {"json": {"targetType": "entity", "changeType": "create", "reasoning": "load",
                         "data": {"workspaceId": workspace, "source": "user", "type": "note", "title": "load"}}}
        return _request(f"{base_url}/trpc/proposals.submit", body, headers=real_app.signed_in(owner))

    return send


def run(
    base_url: str, duration: float, concurrency: int = 4, rate: float = 20.0, seed: int | None = None
) -> LoadResult:
    """Send about `rate` requests per second from `concurrency` clients for `duration` seconds: the stand-in API's
    mix, or the real backend's when the lab runs it."""
    running = Lab().running_backend()
    send = (_real_traffic if running is not None and running.kind == backend.REAL else _standin_traffic)(base_url)
    result = LoadResult()
    lock = threading.Lock()
    deadline = time.monotonic() + duration
    interval = concurrency / rate if rate > 0 else 0.0

    def client(number: int) -> None:
        chooser = random.Random(None if seed is None else seed + number)
        while time.monotonic() < deadline:
            started = time.monotonic()
            status = send(chooser)
            elapsed = time.monotonic() - started
            with lock:
                result.durations.append(elapsed)
                result.statuses[status] = result.statuses.get(status, 0) + 1
            time.sleep(max(0.0, interval - elapsed))

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return result
