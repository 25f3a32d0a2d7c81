"""The metrics maths of api_metrics_info on histograms whose quantiles are known."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from synap_play.project import collections_path

# The maths is imported directly (pure functions); modules themselves run through the conftest runner.
sys.path.insert(0, str(collections_path(Path(__file__).resolve().parents[2])))
from ansible_collections.synap.ops.plugins.module_utils import metrics  # noqa: E402

# 100 observations spread evenly: 10 in each of (0, 0.1], (0.1, 0.2], ... (0.9, 1.0].
# Linear interpolation inside a bucket then gives quantile q exactly q * 1.0.
EVEN = {round(0.1 * i, 1): 10.0 * i for i in range(1, 11)} | {math.inf: 100.0}


@pytest.mark.parametrize("quantile, expected", [(0.5, 0.5), (0.95, 0.95), (0.99, 0.99), (0.25, 0.25), (1.0, 1.0)])
def test_quantiles_of_an_even_histogram(quantile, expected):
    assert metrics.histogram_quantile(quantile, EVEN) == pytest.approx(expected)


def test_interpolation_inside_the_bucket_holding_the_rank():
    # 90 fast requests (<= 0.1 s), 10 slow ones in (0.5, 1.0]: p95 is half-way through the slow bucket.
    buckets = {0.1: 90.0, 0.5: 90.0, 1.0: 100.0, math.inf: 100.0}
    assert metrics.histogram_quantile(0.95, buckets) == pytest.approx(0.75)
    assert metrics.histogram_quantile(0.5, buckets) == pytest.approx(0.1 * 50 / 90)


def test_rank_in_the_inf_bucket_returns_the_highest_finite_bound():
    buckets = {0.1: 10.0, 0.5: 20.0, math.inf: 100.0}
    assert metrics.histogram_quantile(0.99, buckets) == 0.5


def test_non_positive_first_bound_is_returned_as_is():
    assert metrics.histogram_quantile(0.1, {0.0: 5.0, 1.0: 10.0, math.inf: 10.0}) == 0.0


@pytest.mark.parametrize(
    "buckets",
    [{}, {math.inf: 10.0}, {0.1: 0.0, math.inf: 0.0}, {0.1: 3.0, 0.5: 5.0}],
    ids=["empty", "only-inf", "no-observations", "no-inf-bucket"],
)
def test_undefined_quantiles_are_none(buckets):
    assert metrics.histogram_quantile(0.95, buckets) is None


def test_out_of_range_quantiles_follow_promql():
    assert metrics.histogram_quantile(-0.1, EVEN) == -math.inf
    assert metrics.histogram_quantile(1.5, EVEN) == math.inf


def test_non_monotonic_buckets_are_repaired():
    # A scrape taken mid-update may show a lower cumulative count above a higher one.
    buckets = {0.1: 50.0, 0.2: 40.0, 0.3: 100.0, math.inf: 100.0}
    assert metrics.histogram_quantile(0.5, buckets) == pytest.approx(0.1)


def test_the_repair_carries_into_the_buckets_above_the_dip():
    # Repaired, 0.2 counts 60: p80 is rank 20 of the 40 in (0.2, 0.3], 0.25; unrepaired it would read 0.26.
    buckets = {0.1: 60.0, 0.2: 50.0, 0.3: 100.0, math.inf: 100.0}
    assert metrics.histogram_quantile(0.8, buckets) == pytest.approx(0.25)


def test_a_rank_equal_to_a_cumulative_count_stays_in_that_bucket():
    # Prometheus picks the first bucket whose count reaches the rank (count >= rank): p90 of 90 fast requests
    # is the top of the fast bucket, not the bottom of the empty one above it.
    buckets = {0.1: 90.0, 0.5: 90.0, 1.0: 100.0, math.inf: 100.0}
    assert metrics.histogram_quantile(0.9, buckets) == pytest.approx(0.1)
    assert metrics.histogram_quantile(0.91, buckets) == pytest.approx(0.55)
    # At the top of the last finite bucket the answer is that bound, whether +Inf holds more or not.
    assert metrics.histogram_quantile(0.2, {0.1: 10.0, 0.5: 20.0, math.inf: 100.0}) == pytest.approx(0.5)
    assert metrics.histogram_quantile(0.21, {0.1: 10.0, 0.5: 20.0, math.inf: 100.0}) == 0.5


def test_an_empty_bucket_holding_the_rank_answers_its_upper_bound():
    # Only q = 0 over an empty first bucket lands there: the lowest observation is above 0.1, so 0.1, not 0.
    assert metrics.histogram_quantile(0.0, {0.1: 0.0, 0.5: 10.0, math.inf: 10.0}) == 0.1


def test_window_delta_subtracts_and_survives_a_counter_reset():
    before = {"buckets": {0.1: 10.0, math.inf: 20.0}, "requests": 20.0, "errors": 2.0}
    after = {"buckets": {0.1: 15.0, math.inf: 30.0}, "requests": 30.0, "errors": 1.0}
    delta = metrics.window_delta(before, after)
    assert delta["buckets"] == {0.1: 5.0, math.inf: 10.0}
    assert delta["requests"] == 10.0
    assert delta["errors"] == 1.0  # the error counter reset: its whole new value is the increase


TEXT = """\
# HELP api_request_duration Request duration
# TYPE api_request_duration histogram
api_request_duration_bucket{route="/a",status_code="200",le="0.1"} 8
api_request_duration_bucket{route="/a",status_code="200",le="+Inf"} 10
api_request_duration_count{route="/a",status_code="200"} 10
api_request_duration_sum{route="/a",status_code="200"} 1.2
api_request_duration_bucket{route="/a",status_code="503",le="0.1"} 0
api_request_duration_bucket{route="/a",status_code="503",le="+Inf"} 5
api_request_duration_count{route="/a",status_code="503"} 5
api_request_duration_sum{route="/a",status_code="503"} 4.0
# TYPE http_requests_total counter
http_requests_total{status_code="200"} 40
http_requests_total{status_code="500"} 10
"""


def test_summarize_sums_label_sets_and_prefers_the_counter():
    samples = metrics.parse_samples(TEXT)
    from_histogram = metrics.summarize(samples, "api_request_duration", None, "status_code")
    assert from_histogram["buckets"] == {0.1: 8.0, math.inf: 15.0}
    assert (from_histogram["requests"], from_histogram["errors"]) == (15.0, 5.0)
    from_counter = metrics.summarize(samples, "api_request_duration_bucket", "http_requests_total", "status_code")
    assert (from_counter["requests"], from_counter["errors"]) == (50.0, 10.0)
    assert from_counter["requests_source"] == "http_requests_total"


@pytest.mark.parametrize("body", ["", "<html><body>Not metrics</body></html>", "metric{ 1 2 3"])
def test_garbage_is_a_metrics_error(body):
    with pytest.raises(metrics.MetricsError):
        metrics.parse_samples(body)


def test_figures_and_quantile_keys():
    view = {"buckets": EVEN, "requests": 100.0, "errors": 5.0}
    result = metrics.figures(view, [0.5, 0.95, 0.999])
    assert result["error_rate"] == pytest.approx(0.05)
    assert set(result["latency_seconds"]) == {"p50", "p95", "p99.9"}
