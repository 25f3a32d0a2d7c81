# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prometheus' HTTP query API for synap.ops modules: instant queries, their answers, and the PromQL of the API's
error rate and latency quantiles over a window.

An answer that measures nothing is never a 0: an empty vector (no series) and a NaN (histogram_quantile over no
observation) come back as "not measured", and a query Prometheus could not answer raises PrometheusError with the
failure kind of gather.FAILURE_KINDS.
"""

from __future__ import annotations

import json
import math
from urllib.parse import urlencode

from ansible_collections.synap.ops.plugins.module_utils.http_api import (
    HttpFailure,
    describe_body,
    failure_kind,
    http_answer,
    is_html,
)
from ansible_collections.synap.ops.plugins.module_utils.redact import redact_url

QUERY_PATH = "/api/v1/query"
TARGETS_METADATA_PATH = "/api/v1/targets/metadata"
MAX_ERROR_CHARS = 300
# The kinds of failure after which another query to the same server would fail alike (and time out alike).
SERVER_FAILURES = ("refused", "timeout", "dns", "tls", "auth_failed", "http_error", "not_understood", "error")


class PrometheusError(Exception):
    """Prometheus did not answer the query, or answered with an error or something else than its query API.

    ``kind`` is the failure kind of the module's result.
    """

    def __init__(self, message, kind):
        super().__init__(message)
        self.kind = kind


def query_url(base_url):
    return base_url.rstrip("/") + QUERY_PATH


def instant_query(base_url, expr, timeout=10.0, validate_certs=True):
    """Evaluate ``expr`` now; return its vector as a list of ``(labels, value)``, ``value`` None for NaN or ±Inf.

    An empty list is an answer with no series: the caller decides what that does not measure. Anything other than
    a ``"status": "success"`` vector raises PrometheusError.
    """
    url = query_url(base_url)
    shown = redact_url(url)
    try:
        status, content_type, text = http_answer(f"{url}?{urlencode({'query': expr})}", timeout=timeout,
                                                 validate_certs=validate_certs,
                                                 headers={"Accept": "application/json", "Cache-Control": "no-cache"})
    except HttpFailure as exc:
        raise PrometheusError(f"Prometheus {shown} unreachable: {exc}", exc.kind) from None
    try:
        answer = json.loads(text) if text else None
    except ValueError:
        answer = None
    if isinstance(answer, dict) and answer.get("status") == "error":
        # Prometheus' own refusal (400 bad_data, 422 execution, 503 timeout...): the query failed, not the server.
        error_type = str(answer.get("errorType") or "error")
        kind = "auth_failed" if status in (401, 403) else ("timeout" if error_type == "timeout" else "query_failed")
        reason = str(answer.get("error") or "no reason given")[:MAX_ERROR_CHARS]
        raise PrometheusError(f"Prometheus {shown} refused {expr} (HTTP {status}, {error_type}): {reason}", kind)
    if not 200 <= status < 300:
        raise PrometheusError(f"Prometheus {shown} answered HTTP {status} with {describe_body(content_type, text)}",
                              failure_kind(status=status))
    if is_html(content_type, text) or not isinstance(answer, dict):
        raise PrometheusError(f"{shown} answered {status} with {describe_body(content_type, text)}, not Prometheus' "
                              "query API: check prometheus_url", "not_understood")
    if answer.get("status") != "success":
        raise PrometheusError(f"Prometheus {shown} answered status {answer.get('status')!r} to {expr}", "query_failed")
    data = answer.get("data")
    if not isinstance(data, dict) or data.get("resultType") != "vector" or not isinstance(data.get("result"), list):
        got = data.get("resultType") if isinstance(data, dict) else type(data).__name__
        raise PrometheusError(f"Prometheus {shown} answered {expr} with {got!r}, not an instant vector",
                              "not_understood")
    return [_sample(item, shown) for item in data["result"]]


def _sample(item, shown):
    try:
        labels, (_timestamp, value) = item["metric"], item["value"]
        number = float(value)
    except (KeyError, TypeError, ValueError):
        raise PrometheusError(f"Prometheus {shown} answered a sample of the wrong shape: {item!r:.200}",
                              "not_understood") from None
    return (dict(labels) if isinstance(labels, dict) else {}), (number if math.isfinite(number) else None)


def promql_duration(seconds):
    """A window in PromQL's duration syntax: ``15s``, ``2500ms``."""
    millis = max(1, int(round(seconds * 1000)))
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


def series(name, matchers=""):
    """The selector of metric ``name``, narrowed by label ``matchers`` (``job="synap-api"``) when given."""
    matchers = (matchers or "").strip().strip("{}").strip()
    return f"{name}{{{matchers}}}" if matchers else name


def counter_selector(name, matchers=""):
    """The series of a counter as Prometheus stores it: a client names a counter ``x`` and exposes ``x_total``."""
    if name.endswith("_total"):
        return series(name, matchers)
    matchers = (matchers or "").strip().strip("{}").strip()
    return f'{{__name__=~"{name}|{name}_total"{", " + matchers if matchers else ""}}}'


def over_window(selector, window):
    """``rate(selector[window])``; with no window, the counters' values as they stand (totals since each start)."""
    return f"rate({selector}[{promql_duration(window)}])" if window > 0 else selector


def requests_query(selector, status_label, window):
    """Requests per second (or totals) by status: the 5xx ratio and the request rate from one answer."""
    return f"sum by ({status_label}) ({over_window(selector, window)})"


def quantile_query(quantile, buckets, window):
    """``buckets``: the selector of the histogram's _bucket series."""
    return f"histogram_quantile({quantile:g}, sum by (le) ({over_window(buckets, window)}))"


def presence_query(selector):
    """How many series of ``selector`` Prometheus holds now: tells "not scraped" from "too few samples"."""
    return f"count({selector})"


def declaring_targets(base_url, metric, matchers="", timeout=10.0, validate_certs=True):
    """The targets (their ``instance`` labels) whose scrapes declare ``metric`` (``# TYPE``) whether or not they hold
    a sample of it; [] when none does or Prometheus cannot say. Tells "declared, never recorded" from "not scraped"."""
    query = {"metric": metric}
    matchers = (matchers or "").strip().strip("{}").strip()
    if matchers:
        query["match_target"] = "{" + matchers + "}"
    try:
        status, _content_type, text = http_answer(f"{base_url.rstrip('/')}{TARGETS_METADATA_PATH}?{urlencode(query)}",
                                                  timeout=timeout, validate_certs=validate_certs,
                                                  headers={"Accept": "application/json"})
        answer = json.loads(text) if text and 200 <= status < 300 else None
    except (HttpFailure, ValueError):
        return []
    if not isinstance(answer, dict) or answer.get("status") != "success" or not isinstance(answer.get("data"), list):
        return []
    return sorted({str((entry.get("target") or {}).get("instance", "?")) for entry in answer["data"]
                   if isinstance(entry, dict)})
