"""A real Prometheus (Debian's `prometheus` package) scraping small real APIs of the test's own, every second.

conftest.py starts them once for the session (the fixture ``prom_lab``).

Two APIs expose the metrics Synap's API does (prometheus_client's histogram synap_http_request_duration_seconds and
counter synap_http_requests, both labelled status_code), each under its own Prometheus job:

- ``busy`` serves a steady mix while the tests run: per tick 20 requests, 10 % of them 5xx, with known durations;
- ``quiet`` served 10 requests (one 503) before Prometheus started, and none since.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request

from metrics_server import MetricsServer
from prometheus_client import Counter, Histogram

SCRAPE_INTERVAL = 1  # seconds
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0)
# One tick of the busy API: (status, seconds, how many). 20 requests, 2 of them 500s.
TICK = ((200, 0.03, 10), (200, 0.07, 6), (200, 0.2, 2), (500, 0.7, 2))
TICK_SECONDS = 0.05
# What the busy API's mix is, whatever the window: 10 % 5xx; p50 at rank 10 of 20 ends the first bucket;
# p95 and p99 interpolate inside (0.5, 1.0], which holds the last 2 of 20.
TRUE_ERROR_RATE = 0.1
TRUE_QUANTILES = {"p50": 0.05, "p95": 0.5 + 0.5 * (19 - 18) / 2, "p99": 0.5 + 0.5 * (19.8 - 18) / 2}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Api(MetricsServer):
    """/metrics from its own prometheus_client registry, /health; anything else 404."""

    def __init__(self):
        super().__init__()
        self.duration = Histogram("synap_http_request_duration_seconds", "Request duration", ["status_code"],
                                  buckets=BUCKETS, registry=self.registry)
        self.requests = Counter("synap_http_requests", "Requests", ["status_code"], registry=self.registry)
        self._stop = threading.Event()
        self._driver = None

    def serve(self, status, seconds, count):
        for _ in range(count):
            self.duration.labels(status_code=str(status)).observe(seconds)
            self.requests.labels(status_code=str(status)).inc()

    def drive(self):
        """Serve TICK every TICK_SECONDS until close()."""

        def run():
            while not self._stop.is_set():
                for status, seconds, count in TICK:
                    self.serve(status, seconds, count)
                self._stop.wait(TICK_SECONDS)

        self._driver = threading.Thread(target=run, daemon=True)
        self._driver.start()

    def close(self):
        self._stop.set()
        if self._driver:
            self._driver.join(5)
        super().close()


class Prometheus:
    """``prometheus`` with a config of its own, a temporary data folder and a free port; stopped by stop()."""

    def __init__(self, folder, targets):
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError("the prometheus binary is missing; install Debian's package: "
                               "apt-get install -y --no-install-recommends prometheus")
        config = {"global": {"scrape_interval": f"{SCRAPE_INTERVAL}s", "scrape_timeout": f"{SCRAPE_INTERVAL}s"},
                  "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [address]}]}
                                     for job, address in targets.items()]}
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "prometheus.yml").write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = folder / "prometheus.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [binary, f"--config.file={folder / 'prometheus.yml'}", f"--storage.tsdb.path={folder / 'data'}",
                 f"--web.listen-address={self.url.removeprefix('http://')}"],
                stdout=log, stderr=subprocess.STDOUT)

    def query(self, expr):
        with urllib.request.urlopen(f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': expr})}",
                                    timeout=5) as answer:
            return json.load(answer)["data"]["result"]

    def wait_for(self, expr, what, timeout=60):
        """Wait until ``expr`` has a result (Prometheus answers, and the condition holds)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited {self.process.returncode}: {self.log.read_text()[-2000:]}")
            try:
                if self.query(expr):
                    return
            except OSError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"prometheus: {what} not within {timeout} s: {self.log.read_text()[-2000:]}")

    def stop(self):
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
