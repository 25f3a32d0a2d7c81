"""The lab's front door on port 3000: forwards every request to the api replicas, so the api can be scaled
(`docker compose up -d --scale api=3`) while http://127.0.0.1:3000 stays the one address.

- The replicas are whatever the compose DNS name `api` resolves to, looked up again every second.
- Requests go round-robin; a replica that refuses the connection is skipped for the next one.
- GET /metrics answers the sum over all replicas of every sample with the same name and labels, so an error
  rate or p95 computed from it is the service's, not one replica's.
- GET /health answers 200 while at least one replica is healthy, else 503 with every replica's answer.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import socket
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from synaplab import JsonHandler, log, serve

UPSTREAM_HOST = os.environ.get("GATEWAY_UPSTREAM_HOST", "api")
UPSTREAM_PORT = int(os.environ.get("GATEWAY_UPSTREAM_PORT", "3000"))
CONNECT_TIMEOUT = float(os.environ.get("GATEWAY_CONNECT_TIMEOUT", "2"))
# Long enough for the slowest real request (the latency fault's sequential scans).
READ_TIMEOUT = float(os.environ.get("GATEWAY_READ_TIMEOUT", "60"))
SCRAPE_TIMEOUT = float(os.environ.get("GATEWAY_SCRAPE_TIMEOUT", "3"))
RESOLVE_INTERVAL = 1.0
MAX_BODY = 16 * 1024 * 1024
CHUNK = 64 * 1024
HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer", "trailers",
              "transfer-encoding", "upgrade", "expect", "content-length"}
# Retrying these on another replica cannot do anything twice.
IDEMPOTENT = {"GET", "HEAD", "OPTIONS"}


class Replicas:
    """The current replica addresses, refreshed by a background thread so no request waits on DNS."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self._addresses: list[str] = []
        self._turn = itertools.count()
        self.refresh()
        threading.Thread(target=self._refresh_forever, daemon=True, name="resolve").start()

    def refresh(self) -> None:
        try:
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
            addresses = sorted({info[4][0] for info in infos})
        except OSError:
            addresses = []  # no replica running: the name does not resolve
        if addresses != self._addresses:
            log("INFO", "gateway", "replicas changed", service=self.host, addresses=",".join(addresses) or "none")
        self._addresses = addresses

    def _refresh_forever(self) -> None:
        while True:
            time.sleep(RESOLVE_INTERVAL)
            self.refresh()

    def all(self) -> list[str]:
        return list(self._addresses)

    def rotation(self) -> list[str]:
        """Every replica, starting with the next one's turn."""
        addresses = self.all()
        if not addresses:
            return []
        start = next(self._turn) % len(addresses)
        return addresses[start:] + addresses[:start]


def connect(address: str) -> http.client.HTTPConnection:
    """An open connection to one replica: connect failures raise OSError within CONNECT_TIMEOUT."""
    connection = http.client.HTTPConnection(address, UPSTREAM_PORT, timeout=CONNECT_TIMEOUT)
    try:
        connection.connect()
    except OSError:
        connection.close()
        raise
    connection.sock.settimeout(READ_TIMEOUT)
    return connection


def fetch(address: str, path: str) -> tuple[int | None, bytes | str]:
    """GET path from one replica: (status, body), or (None, error text) when it does not answer."""
    try:
        connection = connect(address)
        try:
            connection.sock.settimeout(SCRAPE_TIMEOUT)
            connection.request("GET", path)
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()
    except (OSError, http.client.HTTPException) as error:
        return None, f"{type(error).__name__}: {error}"


def fetch_all(addresses: list[str], path: str) -> dict[str, tuple[int | None, bytes | str]]:
    if not addresses:
        return {}
    with ThreadPoolExecutor(max_workers=len(addresses)) as pool:
        answers = pool.map(lambda address: fetch(address, path), addresses)
        return dict(zip(addresses, answers, strict=True))


def _is_timestamp(sample_name: str) -> bool:
    # Creation and start times add up to nonsense; the earliest is the meaningful one.
    return sample_name.endswith(("_created", "_start_time_seconds"))


class Snapshot:
    """A collector that yields already merged metric families (for generate_latest)."""

    def __init__(self, families: list[Metric]):
        self.families = families

    def collect(self):
        return self.families

    def describe(self):
        return []


def sum_metrics(texts: list[str]) -> list[Metric]:
    """Merge scrapes: each sample is summed with the samples of the same name and labels in the other scrapes."""
    families: dict[str, Metric] = {}
    values: dict[str, dict[tuple, float]] = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            families.setdefault(family.name, Metric(family.name, family.documentation, family.type, family.unit))
            merged = values.setdefault(family.name, {})
            for sample in family.samples:
                key = (sample.name, tuple(sorted(sample.labels.items())))
                if key not in merged:
                    merged[key] = sample.value
                elif _is_timestamp(sample.name):
                    merged[key] = min(merged[key], sample.value)
                else:
                    merged[key] += sample.value
    for name, family in families.items():
        for (sample_name, labels), value in values[name].items():
            family.add_sample(sample_name, dict(labels), value)
    return list(families.values())


def replicas_metric(up: int, down: int) -> Metric:
    metric = Metric("synap_gateway_replicas", "api replicas behind the gateway, by whether their /metrics answered",
                    "gauge")
    metric.add_sample("synap_gateway_replicas", {"state": "up"}, up)
    metric.add_sample("synap_gateway_replicas", {"state": "down"}, down)
    return metric


class GatewayHandler(JsonHandler):
    # Idle keep-alive clients and stalled uploads release their thread after this many seconds.
    timeout = READ_TIMEOUT
    replicas: Replicas  # set before serving

    def do_PUT(self):
        self.handle_request("PUT")

    def do_PATCH(self):
        self.handle_request("PATCH")

    def do_HEAD(self):
        self.handle_request("HEAD")

    def do_OPTIONS(self):
        self.handle_request("OPTIONS")

    def handle_request(self, method: str) -> None:
        path = urllib.parse.urlsplit(self.path).path
        if method == "GET" and path == "/metrics":
            self.metrics()
        elif method == "GET" and path == "/health":
            self.health()
        else:
            self.forward(method)

    # --- the gateway's own answers -----------------------------------------------------------------------

    def metrics(self) -> None:
        texts, down = [], 0
        for address, (status, body) in fetch_all(self.replicas.all(), "/metrics").items():
            if status != 200:
                down += 1
                log("WARN", "gateway", "metrics scrape failed", replica=address, answer=status or body)
                continue
            texts.append(body.decode("utf-8", errors="replace"))
        try:
            families = sum_metrics(texts)
        except ValueError as error:
            self.send_json(502, {"error": f"a replica's /metrics is not Prometheus text: {error}"})
            return
        registry = CollectorRegistry(auto_describe=False)
        registry.register(Snapshot([*families, replicas_metric(len(texts), down)]))
        self.send_text(200, generate_latest(registry), CONTENT_TYPE_LATEST)

    def health(self) -> None:
        answers = {}
        for address, (status, body) in fetch_all(self.replicas.all(), "/health").items():
            try:
                body = json.loads(body) if isinstance(body, bytes) else body
            except ValueError:
                body = body.decode("utf-8", errors="replace")
            answers[f"{address}:{UPSTREAM_PORT}"] = {"status": status, "body": body}
        healthy = [answer["body"] for answer in answers.values() if answer["status"] == 200]
        if healthy:
            first = healthy[0] if isinstance(healthy[0], dict) else {}
            self.send_json(200, {**first, "status": "ok", "healthy_replicas": len(healthy), "replicas": answers})
            return
        error = "no replica is healthy" if answers else f"no replica of {UPSTREAM_HOST} is running"
        self.send_json(503, {"status": "unavailable", "error": error, "replicas": answers})

    # --- forwarding --------------------------------------------------------------------------------------

    def read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            parts, size = [], 0
            while chunk_size := int(self.rfile.readline(1024).split(b";")[0].strip(), 16):
                size += chunk_size
                if size > MAX_BODY:
                    raise ValueError("request body too large")
                parts.append(self.rfile.read(chunk_size))
                self.rfile.readline(1024)
            while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(parts)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise ValueError("request body too large")
        return self.rfile.read(length) if length else None

    def upstream_headers(self) -> dict[str, str]:
        named_in_connection = {name.strip().lower() for name in self.headers.get("Connection", "").split(",")}
        headers = {name: value for name, value in self.headers.items()
                   if name.lower() not in HOP_BY_HOP and name.lower() not in named_in_connection}
        forwarded_for = self.headers.get("X-Forwarded-For")
        client = self.client_address[0]
        headers["X-Forwarded-For"] = f"{forwarded_for}, {client}" if forwarded_for else client
        return headers

    def forward(self, method: str) -> None:
        try:
            body = self.read_body()
        except ValueError as error:
            self.close_connection = True
            self.send_json(400, {"error": f"cannot read the request body: {error}"})
            return
        headers = self.upstream_headers()
        failures = []
        for address in self.replicas.rotation():
            try:
                connection = connect(address)
            except OSError as error:
                failures.append(f"{address}: {error}")
                continue
            try:
                connection.request(method, self.path, body=body, headers=headers)
                response = connection.getresponse()
            except TimeoutError:
                connection.close()
                log("WARN", "gateway", "replica timed out", replica=address, method=method, path=self.path)
                self.send_json(504, {"error": f"api replica {address} did not answer within {READ_TIMEOUT:g} s"})
                return
            except (OSError, http.client.HTTPException) as error:
                connection.close()
                failures.append(f"{address}: {error}")
                if method in IDEMPOTENT:
                    continue
                break
            try:
                self.relay(response, address)
            finally:
                connection.close()
            return
        log("WARN", "gateway", "no replica answered", method=method, path=self.path, errors="; ".join(failures) or "none running")
        if not failures:
            self.send_json(503, {"error": f"no replica of {UPSTREAM_HOST} is running"})
            return
        self.send_json(502, {"error": f"no api replica answered: {'; '.join(failures)}"})

    def relay(self, response: http.client.HTTPResponse, address: str) -> None:
        """Send the replica's answer on as it arrives."""
        self.send_response_only(response.status, response.reason)
        named_in_connection = {name.strip().lower() for name in (response.getheader("Connection") or "").split(",")}
        for name, value in response.getheaders():
            if name.lower() not in HOP_BY_HOP - {"content-length"} and name.lower() not in named_in_connection:
                self.send_header(name, value)
        self.send_header("X-Synap-Upstream", f"{address}:{UPSTREAM_PORT}")
        if response.getheader("Content-Length") is None and self.command != "HEAD" and response.status not in (204, 304):
            # The length is unknown until the replica is done: the end of the connection marks it.
            self.send_header("Connection", "close")
        self.end_headers()
        try:
            while chunk := response.read1(CHUNK):
                self.wfile.write(chunk)
        except (OSError, http.client.HTTPException) as error:
            # Headers are gone already; all that is left is to end the connection so the client sees it cut.
            log("WARN", "gateway", "response cut off", replica=address, path=self.path, error=repr(str(error)))
            self.close_connection = True


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Round-robin gateway in front of the api replicas")
    parser.add_argument("--port", type=int, default=3000)
    GatewayHandler.replicas = Replicas(UPSTREAM_HOST, UPSTREAM_PORT)
    serve(GatewayHandler, parser.parse_args().port, "gateway")
