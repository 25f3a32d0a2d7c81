"""Load generator: real requests against the lab's api, so error rate and p95 come from real traffic."""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from synap_play.lab.stack import LabError

# (weight, kind): mostly reads, as Synap's traffic is.
MIX = ((5, "overview"), (3, "search"), (1, "proposals"), (1, "create"))


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


def _request(url: str, body=None, timeout: float = 10.0) -> int:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST" if body is not None else "GET",
                                     headers={"Content-Type": "application/json"})
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


def run(
    base_url: str, duration: float, concurrency: int = 4, rate: float = 20.0, seed: int | None = None
) -> LoadResult:
    """Send about `rate` requests per second from `concurrency` clients for `duration` seconds."""
    ids = workspaces(base_url)
    result = LoadResult()
    lock = threading.Lock()
    deadline = time.monotonic() + duration
    interval = concurrency / rate if rate > 0 else 0.0
    kinds = [kind for weight, kind in MIX for _ in range(weight)]

    def client(number: int) -> None:
        chooser = random.Random(None if seed is None else seed + number)
        while time.monotonic() < deadline:
            started = time.monotonic()
            workspace = chooser.choice(ids)
            kind = chooser.choice(kinds)
            if kind == "overview":
                status = _request(f"{base_url}/api/workspaces/{workspace}/overview")
            elif kind == "search":
                status = _request(f"{base_url}/api/search?workspace_id={workspace}&q=plan")
            elif kind == "proposals":
                status = _request(f"{base_url}/api/proposals?workspace_id={workspace}&status=pending")
            else:
                source = chooser.choice(["ai", "user"])
                body = {"workspace_id": workspace, "type": "note", "title": "load", "source": source}
                status = _request(f"{base_url}/api/entities", body)
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
