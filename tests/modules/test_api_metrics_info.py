"""api_metrics_info against a real HTTP server exposing a real prometheus_client histogram and counter."""

from __future__ import annotations

import socket
import threading

import pytest
from metrics_server import MetricsServer
from prometheus_client import Counter, Histogram

BUCKETS = (0.1, 0.5, 1.0)


class MetricsApp(MetricsServer):
    """A tiny API with a request histogram (Synap's name, the module's default) and a counter of its own."""

    def __init__(self, metrics_body=None, health_status=200):
        super().__init__(metrics_body, health_status)
        self.duration = Histogram(
            "synap_http_request_duration_seconds",
            "Request duration",
            ["route", "status_code"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.requests = Counter("http_requests", "Requests", ["status_code"], registry=self.registry)

    def serve(self, status, seconds, count):
        for _ in range(count):
            self.duration.labels(route="/entities", status_code=str(status)).observe(seconds)
            self.requests.labels(status_code=str(status)).inc()


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


def test_no_traffic_in_window_says_so_and_measures_no_rate(module, app):
    app.serve(200, 0.05, 9)
    app.serve(503, 0.3, 1)
    result = module("api_metrics_info", {"url": app.url, "window": 0.5})
    assert result["reachable"] is True and result["failure"] is None and result["failures"] == {}, result
    assert result["basis"] == "window"
    assert result["requests_source"] == "synap_http_request_duration_seconds_count"
    # Measured: no request, no error, a rate of 0 per second. Not measurable: a ratio over no requests.
    assert (result["requests"], result["errors"], result["requests_per_second"]) == (0, 0, 0.0)
    assert result["error_rate"] is None
    assert result["latency_seconds"] == {"p50": None, "p95": None, "p99": None}
    assert (result["lifetime"]["requests"], result["lifetime"]["errors"]) == (10, 1)
    assert result["lifetime"]["error_rate"] == pytest.approx(0.1)
    assert "no requests during the window, so no error rate or latency" in result["msg"]
    assert "lifetime: 10 requests, 5xx 10.0%" in result["msg"]


def test_families_declared_without_a_sample_are_unknown_never_zero(module, app):
    """As Synap's real API exposes them: both families declared, no sample ever recorded. Nothing was counted, not
    even the health check just made: no figure, and the reason named."""
    result = module("api_metrics_info", {"url": app.url, "window": 0, "requests_metric": "http_requests"})
    assert result["reachable"] is False and result["failure"] == "not_found" and "metrics" in result["failures"], result
    assert result["requests"] is None and result["error_rate"] is None
    assert result["latency_seconds"]["p95"] is None
    assert "declares synap_http_request_duration_seconds and http_requests but holds no sample" in result["msg"]
    assert "error rate and latency are unknown" in result["msg"]
    assert result["health"]["ok"] is True


def test_one_sample_since_start_is_a_measured_figure(module, app):
    app.serve(200, 0.02, 1)
    result = module("api_metrics_info", {"url": app.url, "window": 0})
    assert result["reachable"] is True and result["basis"] == "lifetime", result
    assert (result["requests"], result["errors"], result["error_rate"]) == (1, 0, 0.0)


def test_check_mode_behaves_the_same(module, app):
    app.serve(200, 0.2, 4)
    result = module("api_metrics_info", {"url": app.url, "window": 0}, check=True)
    assert result["changed"] is False and result["basis"] == "lifetime" and result["requests"] == 4


NOT_MEASURED = ("basis", "window_seconds", "requests", "errors", "error_rate", "requests_per_second",
                "requests_source", "histogram_found")


def assert_not_measured(result, failure):
    """Nothing read: every figure null (not 0), the failure named, and no task failure."""
    assert result.get("failed") is not True, result
    assert result["reachable"] is False and result["failure"] == failure, result
    assert all(result[key] is None for key in NOT_MEASURED), {key: result[key] for key in NOT_MEASURED}
    assert result["latency_seconds"] == {"p50": None, "p95": None, "p99": None}
    assert result["lifetime"] == {"requests": None, "errors": None, "error_rate": None,
                                  "latency_seconds": {"p50": None, "p95": None, "p99": None}}
    assert result["failures"]["metrics"] == result["error"]
    assert result["msg"].startswith(f"API metrics unavailable ({failure}): ")


def test_html_instead_of_metrics_is_a_finding(module):
    garbage = MetricsApp(metrics_body=b"<!doctype html><html><body>Synap</body></html>", health_status=503)
    try:
        result = module("api_metrics_info", {"url": garbage.url, "window": 0})
    finally:
        garbage.close()
    assert_not_measured(result, "not_understood")
    assert "an HTML page, not Prometheus text" in result["error"] and garbage.url in result["msg"]
    assert result["health"]["ok"] is False and result["health"]["status"] == 503


def test_http_error_is_a_finding(module):
    failing = MetricsApp()
    failing.server.RequestHandlerClass.do_GET = lambda handler: handler._send(500, b"boom", "text/plain")
    try:
        result = module("api_metrics_info", {"url": failing.url, "window": 0})
    finally:
        failing.close()
    assert_not_measured(result, "http_error")
    assert "answered HTTP 500" in result["error"]
    assert result["health"]["status"] == 500 and result["health"]["ok"] is False


@pytest.mark.parametrize("body", [b"", b"# HELP other_total Other\n# TYPE other_total counter\nother_total 4\n"],
                         ids=["empty", "families_absent"])
def test_metrics_without_the_families_are_not_measured(module, body):
    bare = MetricsApp(metrics_body=body)
    try:
        result = module("api_metrics_info", {"url": bare.url, "window": 0, "requests_metric": "http_requests_total"})
    finally:
        bare.close()
    assert_not_measured(result, "not_understood")
    assert ("empty metrics body" if not body
            else "exposes neither the synap_http_request_duration_seconds histogram") in result["error"]


def test_unreachable_endpoint_is_a_finding(module):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = module("api_metrics_info", {"url": f"http://127.0.0.1:{port}", "window": 0, "timeout": 3})
    assert_not_measured(result, "refused")
    assert "unreachable" in result["error"] and "connection refused" in result["msg"]
    assert result["health"]["ok"] is None and result["health"]["status"] is None and result["health"]["error"]
    assert set(result["failures"]) == {"metrics", "health"}


def test_histogram_missing_is_reported(module, app):
    app.serve(200, 0.05, 3)
    # Neither the histogram asked for (the runbook's name, which this API does not expose) nor a counter: nothing
    # to count with.
    alone = module("api_metrics_info", {"url": app.url, "window": 0, "duration_metric": "api_request_duration"})
    assert_not_measured(alone, "not_understood")
    assert "neither the api_request_duration histogram" in alone["error"]
    # The counter gives the requests; the latency stays unmeasured, and says so.
    counted = module("api_metrics_info", {"url": app.url, "window": 0, "requests_metric": "http_requests_total",
                                          "duration_metric": "api_request_duration"})
    assert counted["reachable"] is False and counted["failure"] == "not_understood", counted
    assert set(counted["failures"]) == {"latency"} and counted["histogram_found"] is False
    assert counted["requests"] == 3 and counted["error_rate"] == 0
    assert counted["latency_seconds"] == {"p50": None, "p95": None, "p99": None}
    assert "not exposed" in counted["msg"]


def test_bad_quantile_is_one_line_error(module, app):
    result = module("api_metrics_info", {"url": app.url, "quantiles": [0.5, 95]})
    assert result["failed"] is True
    assert result["msg"] == "quantiles must lie between 0 and 1, got 95.0"
