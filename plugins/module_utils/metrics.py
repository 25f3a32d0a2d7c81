# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prometheus text scraping and the maths of api_metrics_info: window deltas, error rate, histogram quantiles."""

from __future__ import annotations

import math
import traceback

from ansible_collections.synap.ops.plugins.module_utils.http_api import fetch

try:
    from prometheus_client.parser import text_string_to_metric_families

    HAS_PROMETHEUS_CLIENT = True
    PROMETHEUS_CLIENT_IMPORT_ERROR = None
except ImportError:
    HAS_PROMETHEUS_CLIENT = False
    PROMETHEUS_CLIENT_IMPORT_ERROR = traceback.format_exc()

INF = float("inf")


class MetricsError(Exception):
    """The endpoint answered with something that is not Prometheus text (or did not answer)."""


def fetch_text(url, timeout, validate_certs=True):
    """GET ``url``; return the body text. Connection failures and non-2xx answers become MetricsError.

    A URL that cannot be requested at all raises http_api.FetchError.
    """
    response, info = fetch(url, timeout=timeout, validate_certs=validate_certs)
    status = info.get("status", -1)
    if response is None:
        reason = info.get("msg") or "no response"
        if status and status > 0:
            raise MetricsError(f"{url} answered HTTP {status}")
        raise MetricsError(f"{url} unreachable: {reason}")
    return response.read().decode("utf-8", errors="replace")


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


def base_name(name):
    """A histogram's base name, accepting the name with a _bucket/_count/_sum suffix too."""
    for suffix in ("_bucket", "_count", "_sum"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _is_error(labels, status_label):
    return str(labels.get(status_label, "")).startswith("5")


def summarize(samples, duration_metric, requests_metric, status_label):
    """Reduce one scrape to the cumulative numbers we compare between scrapes.

    Returns a dict: ``buckets`` {upper bound: cumulative count, summed over every label set},
    ``requests`` and ``errors`` (5xx by ``status_label``), and which metrics were found.
    Requests come from ``requests_metric`` when it is exposed, else from the histogram's ``_count``.
    """
    histogram = base_name(duration_metric)
    buckets = {}
    histogram_requests = histogram_errors = 0.0
    counter_requests = counter_errors = 0.0
    found_histogram = found_counter = False
    counter_names = set()
    if requests_metric:
        counter_names = {requests_metric, requests_metric + "_total"}
    for name, labels, value in samples:
        if name == histogram + "_bucket" and "le" in labels:
            found_histogram = True
            upper = float(labels["le"])
            buckets[upper] = buckets.get(upper, 0.0) + value
        elif name == histogram + "_count":
            found_histogram = True
            histogram_requests += value
            if _is_error(labels, status_label):
                histogram_errors += value
        elif name in counter_names:
            found_counter = True
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
    """requests, errors, error_rate and latency quantiles (seconds) of a window or lifetime view."""
    requests = view["requests"]
    return {
        "requests": int(round(requests)),
        "errors": int(round(view["errors"])),
        "error_rate": (view["errors"] / requests) if requests > 0 else None,
        "latency_seconds": {quantile_key(q): histogram_quantile(q, view["buckets"]) for q in quantiles},
    }
