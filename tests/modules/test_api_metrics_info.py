"""api_metrics_info against a real HTTP server exposing a real prometheus_client histogram and counter."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

BUCKETS = (0.1, 0.5, 1.0)


class MetricsApp:
    """A tiny API: /metrics from its own registry, /health as JSON; records when the first scrape happened."""

    def __init__(self, metrics_body=None, health_status=200):
        self.registry = CollectorRegistry()
        self.duration = Histogram(
            "api_request_duration",
            "Request duration",
            ["route", "status_code"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.requests = Counter("http_requests", "Requests", ["status_code"], registry=self.registry)
        self.first_scrape = threading.Event()
        self.metrics_body = metrics_body
        self.health_status = health_status
        app = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path == "/metrics":
                    body = app.metrics_body if app.metrics_body is not None else generate_latest(app.registry)
                    self._send(200, body, "text/plain; version=0.0.4")
                    app.first_scrape.set()
                elif self.path == "/health":
                    self._send(app.health_status, b'{"status":"ok"}', "application/json")
                else:
                    self._send(404, b"not found", "text/plain")

            def _send(self, status, body, content_type):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def serve(self, status, seconds, count):
        for _ in range(count):
            self.duration.labels(route="/entities", status_code=str(status)).observe(seconds)
            self.requests.labels(status_code=str(status)).inc()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def app():
    instance = MetricsApp()
    yield instance
    instance.close()


def test_window_rates_differ_from_lifetime_totals(module, app):
    app.serve(200, 0.05, 100)  # lifetime history before the window: fast and error-free

    def traffic_during_window():
        app.first_scrape.wait(30)
        app.serve(200, 0.05, 18)
        app.serve(500, 0.7, 2)

    driver = threading.Thread(target=traffic_during_window)
    driver.start()
    result = module("api_metrics_info", {"url": app.url, "window": 2, "requests_metric": "http_requests_total"})
    driver.join()

    assert result["changed"] is False and result["reachable"] is True, result
    assert result["basis"] == "window"
    assert (result["requests"], result["errors"]) == (20, 2)
    assert result["error_rate"] == pytest.approx(0.1)
    assert result["requests_source"] == "http_requests_total"
    # 18 in (0, 0.1], 2 in (0.5, 1.0]: p50 interpolates rank 10 of 18 in the first bucket, p95 is mid-way
    # through (0.5, 1.0], as histogram_quantile(0.95, rate(...[window])) would say.
    assert result["latency_seconds"]["p50"] == pytest.approx(0.1 * 10 / 18)
    assert result["latency_seconds"]["p95"] == pytest.approx(0.75)
    assert result["lifetime"]["requests"] == 120
    assert result["lifetime"]["error_rate"] == pytest.approx(2 / 120)
    assert result["health"]["ok"] is True and result["health"]["status"] == 200
    assert "5xx 10.0%" in result["msg"] and "health ok" in result["msg"]


def test_no_traffic_in_window_falls_back_to_labelled_lifetime_totals(module, app):
    app.serve(200, 0.05, 9)
    app.serve(503, 0.3, 1)
    result = module("api_metrics_info", {"url": app.url, "window": 0.5})
    assert result["basis"] == "lifetime"
    assert result["requests_source"] == "api_request_duration_count"
    assert (result["requests"], result["errors"]) == (10, 1)
    assert "lifetime totals" in result["msg"] and "no requests during" in result["msg"]


def test_check_mode_behaves_the_same(module, app):
    app.serve(200, 0.2, 4)
    result = module("api_metrics_info", {"url": app.url, "window": 0}, check=True)
    assert result["changed"] is False and result["basis"] == "lifetime" and result["requests"] == 4


def test_html_instead_of_metrics_is_a_finding(module):
    garbage = MetricsApp(metrics_body=b"<!doctype html><html><body>Synap</body></html>", health_status=503)
    try:
        result = module("api_metrics_info", {"url": garbage.url, "window": 0})
    finally:
        garbage.close()
    assert result.get("failed") is not True, result
    assert result["reachable"] is False and "not Prometheus text" in result["error"]
    assert result["health"]["ok"] is False and result["health"]["status"] == 503
    assert result["msg"].startswith("API metrics unavailable")


def test_unreachable_endpoint_is_a_finding(module):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = module("api_metrics_info", {"url": f"http://127.0.0.1:{port}", "window": 0, "timeout": 3})
    assert result.get("failed") is not True, result
    assert result["reachable"] is False and "unreachable" in result["error"]
    assert result["health"]["ok"] is False and "error" in result["health"]


def test_histogram_missing_is_reported(module, app):
    app.serve(200, 0.05, 3)
    result = module(
        "api_metrics_info", {"url": app.url, "window": 0, "duration_metric": "synap_http_request_duration_seconds"}
    )
    assert result["reachable"] is True and result["histogram_found"] is False
    assert "not exposed" in result["msg"]


def test_bad_quantile_is_one_line_error(module, app):
    result = module("api_metrics_info", {"url": app.url, "quantiles": [0.5, 95]})
    assert result["failed"] is True
    assert result["msg"] == "quantiles must lie between 0 and 1, got 95.0"
