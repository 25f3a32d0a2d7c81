"""api_metrics_info with prometheus_url against a real Prometheus scraping real APIs (see conftest.py), compared
with the scrape-twice source on the same traffic; and every way Prometheus measures nothing, each a null figure
with its failure, never a 0."""

from __future__ import annotations

import pytest
from prometheus_lab import TRUE_ERROR_RATE, TRUE_QUANTILES, free_port

pytestmark = pytest.mark.slow

WINDOW = 5
BUSY = 'job="busy"'
QUIET = 'job="quiet"'
FIGURES = ("requests", "errors", "error_rate", "requests_per_second")
NO_LATENCY = {"p50": None, "p95": None, "p99": None}


def prometheus_args(prometheus, api, selector, **more):
    return {"url": api.url, "prometheus_url": prometheus.url, "prometheus_selector": selector, "window": WINDOW,
            "requests_metric": "synap_http_requests_total", "timeout": 5, **more}


def assert_nothing_measured(result, failure):
    assert result.get("failed") is not True, result
    assert result["reachable"] is False and result["failure"] == failure, result
    assert all(result[key] is None for key in FIGURES), {key: result[key] for key in FIGURES}
    assert result["latency_seconds"] == NO_LATENCY
    assert result["source"] is None and result["basis"] is None and result["window_seconds"] is None
    assert result["msg"].startswith(f"API metrics unavailable ({failure}): ")


def test_prometheus_agrees_with_the_scrape_on_the_same_traffic(module, prom_lab):
    prometheus, apis = prom_lab
    busy = apis["busy"]
    queried = module("api_metrics_info", prometheus_args(prometheus, busy, BUSY))
    scraped = module("api_metrics_info", {"url": busy.url, "window": 3, "requests_metric": "synap_http_requests_total"})

    assert queried["reachable"] is True and queried["failure"] is None and queried["failures"] == {}, queried
    assert (queried["source"], queried["basis"], queried["window_seconds"]) == ("prometheus", "window", WINDOW)
    assert queried["requests_source"] == "synap_http_requests_total" and queried["histogram_found"] is True
    assert queried["metrics_url"] == f"{prometheus.url}/api/v1/query"
    assert queried["queries"] == {
        "requests": f"sum by (status_code) (rate(synap_http_requests_total{{{BUSY}}}[5s]))",
        "p50": f"histogram_quantile(0.5, sum by (le) (rate(synap_http_request_duration_seconds_bucket{{{BUSY}}}[5s])))",
        "p95": f"histogram_quantile(0.95, sum by (le) (rate(synap_http_request_duration_seconds_bucket{{{BUSY}}}[5s])))",
        "p99": f"histogram_quantile(0.99, sum by (le) (rate(synap_http_request_duration_seconds_bucket{{{BUSY}}}[5s])))",
    }
    assert queried["health"]["ok"] is True
    assert scraped["reachable"] is True and (scraped["source"], scraped["basis"]) == ("scrape", "window"), scraped
    assert scraped["queries"] is None

    # The same traffic, two bases: the 5xx share and the quantiles agree within what one partial tick at a window's
    # edge and the histogram's interpolation can move; each matches the mix the API serves.
    assert queried["error_rate"] == pytest.approx(scraped["error_rate"], abs=0.005)
    assert queried["error_rate"] == pytest.approx(TRUE_ERROR_RATE, abs=0.005)
    for key, true in TRUE_QUANTILES.items():
        assert queried["latency_seconds"][key] == pytest.approx(scraped["latency_seconds"][key], rel=0.05, abs=0.005)
        assert queried["latency_seconds"][key] == pytest.approx(true, rel=0.05, abs=0.005), key
    # Rates: Prometheus extrapolates to the window's edges, the scrape divides by the time it measured.
    assert queried["requests_per_second"] == pytest.approx(scraped["requests_per_second"], rel=0.25)
    assert queried["requests"] == pytest.approx(queried["requests_per_second"] * WINDOW, abs=1)
    assert queried["errors"] == pytest.approx(queried["requests"] * TRUE_ERROR_RATE, rel=0.1)
    assert "(Prometheus)" in queried["msg"] and "5xx 10.0%" in queried["msg"]


def test_lifetime_totals_agree_with_one_scrape(module, prom_lab):
    prometheus, apis = prom_lab
    quiet = apis["quiet"]
    queried = module("api_metrics_info", prometheus_args(prometheus, quiet, QUIET, window=0))
    scraped = module("api_metrics_info", {"url": quiet.url, "window": 0, "requests_metric": "synap_http_requests_total"})
    assert queried["reachable"] is True and queried["basis"] == "lifetime", queried
    for key in ("requests", "errors", "error_rate"):
        assert queried[key] == scraped[key] == queried["lifetime"][key], key
    assert (queried["requests"], queried["errors"]) == (10, 1)
    assert queried["latency_seconds"] == pytest.approx(scraped["latency_seconds"])
    assert queried["requests_per_second"] is None and queried["window_seconds"] is None


def test_no_traffic_in_the_window_is_no_error_rate(module, prom_lab):
    """Series exist and did not move: 0 requests per second is measured; a share of no requests is not."""
    prometheus, apis = prom_lab
    result = module("api_metrics_info", prometheus_args(prometheus, apis["quiet"], QUIET, window=3))
    assert result["reachable"] is True and result["failure"] is None and result["failures"] == {}, result
    assert result["source"] == "prometheus" and result["basis"] == "window"
    assert (result["requests"], result["errors"], result["requests_per_second"]) == (0, 0, 0.0)
    assert result["error_rate"] is None
    # histogram_quantile over no observation is NaN: no latency, not 0 s.
    assert result["latency_seconds"] == NO_LATENCY and result["histogram_found"] is True
    assert "no requests during the window, so no error rate or latency" in result["msg"]


def test_unreachable_prometheus_measures_nothing(module, prom_lab):
    _prometheus, apis = prom_lab
    port = free_port()
    result = module("api_metrics_info", {"url": apis["busy"].url, "prometheus_url": f"http://127.0.0.1:{port}",
                                         "timeout": 3})
    assert_nothing_measured(result, "refused")
    assert set(result["failures"]) == {"prometheus"}
    assert "connection refused" in result["failures"]["prometheus"] and str(port) in result["msg"]
    assert result["histogram_found"] is None and result["requests_source"] is None
    # It says where it asked, and does not read the API's /metrics in Prometheus' place.
    assert result["metrics_url"] == f"http://127.0.0.1:{port}/api/v1/query"
    assert result["health"]["ok"] is True


def test_metric_not_scraped_is_an_empty_vector_not_a_zero(module, prom_lab):
    prometheus, apis = prom_lab
    result = module("api_metrics_info", prometheus_args(
        prometheus, apis["busy"], BUSY, duration_metric="api_request_duration",
        requests_metric="synap_requests_served_total"))
    assert_nothing_measured(result, "not_found")
    assert set(result["failures"]) == {"requests", "latency"}
    assert "Prometheus has no series synap_requests_served_total" in result["failures"]["requests"]
    assert "api_request_duration_bucket" in result["failures"]["latency"]
    assert result["histogram_found"] is False


def test_metrics_declared_and_never_recorded_are_unknown_and_said_so(module, prom_lab):
    """As Synap's real API exposes them (# TYPE lines, no sample): Prometheus holds no series, and its target
    metadata shows the API declares them: the reason given, no figure."""
    prometheus, apis = prom_lab
    result = module("api_metrics_info", prometheus_args(prometheus, apis["silent"], 'job="silent"'))
    assert_nothing_measured(result, "not_found")
    silent = apis["silent"].address
    assert (f"{silent} declares synap_http_requests_total but Prometheus holds no sample of it"
            in result["failures"]["requests"]), result["failures"]
    assert (f"{silent} declares synap_http_request_duration_seconds but Prometheus holds no sample"
            in result["failures"]["latency"]), result["failures"]
    assert "error rate and latency are unknown" in result["msg"]


def test_window_shorter_than_two_scrapes_is_said_so(module, prom_lab):
    prometheus, apis = prom_lab
    result = module("api_metrics_info", prometheus_args(prometheus, apis["busy"], BUSY, window=0.5))
    assert_nothing_measured(result, "not_found")
    assert "but not two samples of it in the last 500ms" in result["failures"]["requests"]


def test_prometheus_error_answer_is_a_failed_query(module, prom_lab):
    """A histogram name that is no PromQL name: Prometheus itself answers 400 bad_data."""
    prometheus, apis = prom_lab
    result = module("api_metrics_info", prometheus_args(prometheus, apis["busy"], BUSY,
                                                        duration_metric="api-request-duration", requests_metric=None))
    assert_nothing_measured(result, "query_failed")
    assert "(HTTP 400, bad_data)" in result["failures"]["requests"] and "parse error" in result["failures"]["requests"]
    assert set(result["failures"]) == {"requests", "latency"}


def test_series_without_the_status_label_have_no_error_rate(module, prom_lab):
    prometheus, apis = prom_lab
    result = module("api_metrics_info", prometheus_args(prometheus, apis["busy"], BUSY, status_label="code"))
    assert result["reachable"] is False and result["failure"] == "not_found", result
    assert set(result["failures"]) == {"error_rate"} and "check status_label" in result["failures"]["error_rate"]
    # The requests were counted; which of them failed cannot be told, so neither errors nor a share: not 0.
    assert result["requests"] > 0 and result["requests_per_second"] > 0
    assert result["errors"] is None and result["error_rate"] is None
    assert result["latency_seconds"]["p95"] == pytest.approx(TRUE_QUANTILES["p95"], rel=0.05)
    assert "5xx not measured" in result["msg"]


def test_something_else_than_prometheus_is_not_understood(module, prom_lab):
    _prometheus, apis = prom_lab
    busy = apis["busy"]
    result = module("api_metrics_info", {"url": busy.url, "prometheus_url": busy.url, "timeout": 3})
    assert_nothing_measured(result, "http_error")
    assert "answered HTTP 404" in result["failures"]["prometheus"]


def test_prometheus_url_must_be_http(module):
    result = module("api_metrics_info", {"prometheus_url": "prometheus:9090"})
    assert result["failed"] is True
    assert result["msg"] == "prometheus_url must start with http:// or https://, got 'prometheus:9090'"
