# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prometheus text scraping and the maths of api_metrics_info: window deltas, error rate, histogram quantiles."""

from __future__ import annotations

import math
import re
import traceback

from ansible_collections.synap.ops.plugins.module_utils.http_api import (
    HttpFailure,
    describe_body,
    failure_kind,
    http_answer,
    is_html,
)
from ansible_collections.synap.ops.plugins.module_utils.redact import redact_url

try:
    from prometheus_client.parser import text_string_to_metric_families

    HAS_PROMETHEUS_CLIENT = True
    PROMETHEUS_CLIENT_IMPORT_ERROR = None
except ImportError:
    HAS_PROMETHEUS_CLIENT = False
    PROMETHEUS_CLIENT_IMPORT_ERROR = traceback.format_exc()

INF = float("inf")


class MetricsError(Exception):
    """The endpoint answered with something that is not Prometheus text (or did not answer).

    ``kind`` is the failure kind of the module's result (http_api.failure_kind() for the request).
    """

    def __init__(self, message, kind="not_understood"):
        super().__init__(message)
        self.kind = kind


def fetch_text(url, timeout, validate_certs=True):
    """GET ``url``; return the body text. No answer, a non-2xx answer or a web page become MetricsError."""
    shown = redact_url(url)
    try:
        status, content_type, text = http_answer(url, timeout=timeout, validate_certs=validate_certs,
                                                 headers={"Accept": "text/plain, */*", "Cache-Control": "no-cache"})
    except HttpFailure as exc:
        raise MetricsError(f"{shown} unreachable: {exc}", exc.kind) from None
    if not 200 <= status < 300:
        raise MetricsError(f"{shown} answered HTTP {status}", failure_kind(status=status))
    if is_html(content_type, text):
        # A UI or proxy page where metrics were expected: its 200 says nothing about the API.
        raise MetricsError(f"{shown} answered {status} with {describe_body(content_type, text)}, not Prometheus text: "
                           "check url and metrics_path")
    return text


def parse_samples(text):
    """Parse Prometheus text exposition into a list of (name, labels, value) with prometheus_client's parser."""
    if not text.strip():
        raise MetricsError("empty metrics body")
    samples = []
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                samples.append((sample.name, dict(sample.labels), float(sample.value)))
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise MetricsError("not Prometheus text: {}".format((str(exc).splitlines() or ["parse error"])[0])) from None
    return samples


_DECLARED = re.compile(r"^#\s*TYPE\s+(\S+)", re.MULTILINE)


def declared_families(text):
    """Names of the metric families ``text`` declares (``# TYPE``): a labelled family without any sample yet,
    as a fresh process exposes it, still says the metric exists and has counted nothing."""
    return set(_DECLARED.findall(text))


def base_name(name):
    """A histogram's base name, accepting the name with a _bucket/_count/_sum suffix too."""
    for suffix in ("_bucket", "_count", "_sum"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _is_error(labels, status_label):
    return str(labels.get(status_label, "")).startswith("5")


def summarize(samples, duration_metric, requests_metric, status_label, declared=()):
    """Reduce one scrape to the cumulative numbers we compare between scrapes.

    Returns a dict: ``buckets`` {upper bound: cumulative count, summed over every label set},
    ``requests`` and ``errors`` (5xx by ``status_label``), and which metrics were found (with samples, or
    ``declared`` by the scrape without any yet). Requests come from ``requests_metric`` when it is exposed, else
    from the histogram's ``_count``.
    """
    histogram = base_name(duration_metric)
    buckets = {}
    histogram_requests = histogram_errors = 0.0
    counter_requests = counter_errors = 0.0
    counter_names = set()
    if requests_metric:
        counter_names = {requests_metric, requests_metric + "_total", requests_metric.removesuffix("_total")}
    found_histogram = histogram in declared
    found_counter = bool(counter_names & set(declared))
    sampled = False
    for name, labels, value in samples:
        if name == histogram + "_bucket" and "le" in labels:
            found_histogram = sampled = True
            upper = float(labels["le"])
            buckets[upper] = buckets.get(upper, 0.0) + value
        elif name == histogram + "_count":
            found_histogram = sampled = True
            histogram_requests += value
            if _is_error(labels, status_label):
                histogram_errors += value
        elif name in counter_names:
            found_counter = sampled = True
            counter_requests += value
            if _is_error(labels, status_label):
                counter_errors += value
    if found_counter:
        requests, errors, source = counter_requests, counter_errors, requests_metric
    else:
        requests, errors, source = histogram_requests, histogram_errors, histogram + "_count"
    return {
        "buckets": buckets,
        "requests": requests,
        "errors": errors,
        "requests_source": source,
        "found_histogram": found_histogram,
        "found_counter": found_counter,
        "found": found_histogram or found_counter,
        # Declared families without one sample: the process has counted nothing since it started.
        "sampled": sampled,
    }


def counter_increase(before, after):
    """Increase of a counter between two readings; a drop means the process restarted (a reset), as in increase()."""
    if after < before:
        return after
    return after - before


def window_delta(before, after):
    """The per-window view of two summaries: bucket and request increases between the scrapes."""
    bounds = set(before["buckets"]) | set(after["buckets"])
    buckets = {b: counter_increase(before["buckets"].get(b, 0.0), after["buckets"].get(b, 0.0)) for b in bounds}
    return {
        "buckets": buckets,
        "requests": counter_increase(before["requests"], after["requests"]),
        "errors": counter_increase(before["errors"], after["errors"]),
    }


def histogram_quantile(quantile, buckets):
    """The quantile of a cumulative histogram {upper bound: count}, interpolated as Prometheus does.

    Linear interpolation inside the bucket holding the rank; the lowest bucket starts at 0 (when its upper
    bound is positive); a rank in the +Inf bucket returns the highest finite upper bound. None when there
    are no observations or fewer than two buckets, or no +Inf bucket.
    """
    if quantile < 0:
        return -INF
    if quantile > 1:
        return INF
    ordered = sorted(buckets.items())
    if len(ordered) < 2 or not math.isinf(ordered[-1][0]):
        return None
    # Scrapes are not atomic: force the cumulative counts to be monotonic, as Prometheus does.
    counts = []
    highest = 0.0
    for _bound, count in ordered:
        highest = max(highest, count)
        counts.append(highest)
    total = counts[-1]
    if total == 0:
        return None
    rank = quantile * total
    index = next((i for i in range(len(ordered) - 1) if counts[i] >= rank), len(ordered) - 1)
    if index == len(ordered) - 1:
        return ordered[-2][0]
    upper = ordered[index][0]
    if index == 0 and upper <= 0:
        return upper
    lower = 0.0
    in_bucket = counts[index]
    if index > 0:
        lower = ordered[index - 1][0]
        in_bucket -= counts[index - 1]
        rank -= counts[index - 1]
    if in_bucket == 0:
        return upper
    return lower + (upper - lower) * (rank / in_bucket)


def quantile_key(quantile):
    """0.5 -> 'p50', 0.95 -> 'p95', 0.999 -> 'p99.9'."""
    text = ("%.4f" % (quantile * 100)).rstrip("0").rstrip(".")
    return "p" + text


def figures(view, quantiles):
    """requests, errors, error_rate and latency quantiles (seconds) of a window or lifetime view.

    A ratio over no requests is None, not 0: "0 errors of 0 requests" measures nothing. ``view`` None (nothing
    read) gives the same keys, every figure None.
    """
    if view is None:
        return {"requests": None, "errors": None, "error_rate": None,
                "latency_seconds": {quantile_key(q): None for q in quantiles}}
    requests = view["requests"]
    return {
        "requests": int(round(requests)),
        "errors": int(round(view["errors"])),
        "error_rate": (view["errors"] / requests) if requests > 0 else None,
        "latency_seconds": {quantile_key(q): histogram_quantile(q, view["buckets"]) for q in quantiles},
    }
