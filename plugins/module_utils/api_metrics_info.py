# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""synap.ops.api_metrics_info's look-up: error rate and latency quantiles of the Synap API over a window.

Two sources give the same figures: the API's own /metrics, scraped twice ``window`` seconds apart (the default),
or, with ``prometheus_url``, a Prometheus server that scrapes the API, asked at once for the rates over the last
``window`` seconds. ``source`` says which one measured them.

plugins/modules/api_metrics_info.py documents it and runs ``INFO``; synap-play's first look calls ``gather`` itself.
"""

from __future__ import annotations

import contextlib
import time

from ansible.module_utils.basic import missing_required_lib
from ansible_collections.synap.ops.plugins.module_utils.gather import GatherFailed, InfoModule, PartFailures, shaped
from ansible_collections.synap.ops.plugins.module_utils.http_api import HttpFailure, http_request
from ansible_collections.synap.ops.plugins.module_utils.metrics import (
    HAS_PROMETHEUS_CLIENT,
    PROMETHEUS_CLIENT_IMPORT_ERROR,
    MetricsError,
    base_name,
    declared_families,
    fetch_text,
    figures,
    parse_samples,
    quantile_key,
    summarize,
    window_delta,
)
from ansible_collections.synap.ops.plugins.module_utils.prometheus import (
    SERVER_FAILURES,
    PrometheusError,
    counter_selector,
    declaring_targets,
    instant_query,
    presence_query,
    promql_duration,
    quantile_query,
    query_url,
    requests_query,
    series,
)
from ansible_collections.synap.ops.plugins.module_utils.redact import redact_url, url_passwords

HEALTH_BODY_EXCERPT = 200
# Every documented field but msg and the common ones; each is None when it was not measured.
RESULT_FIELDS = ("metrics_url", "error", "source", "queries", "basis", "window_seconds", "requests", "errors",
                 "error_rate", "latency_seconds", "lifetime", "requests_per_second", "requests_source",
                 "histogram_found", "health")


def join_url(base, path):
    return base.rstrip("/") + "/" + path.lstrip("/")


def check_health(url, timeout, validate_certs=True):
    """``(health, failure kind)``: any HTTP answer is a reading (``ok`` for 2xx); no answer leaves ``ok`` None."""
    shown = redact_url(url)
    try:
        status, body = http_request(url, timeout=timeout, validate_certs=validate_certs,
                                    headers={"Accept": "*/*", "Cache-Control": "no-cache"})
    except HttpFailure as exc:
        return {"url": shown, "status": None, "ok": None, "body": None, "error": f"{shown} unreachable: {exc}"}, exc.kind
    return {"url": shown, "status": status, "ok": 200 <= status < 300, "body": body[:HEALTH_BODY_EXCERPT],
            "error": None}, None


def describe_health(health):
    if health is None:
        return ""
    if health["ok"]:
        return "; health ok"
    if health["ok"] is None:
        return f"; health endpoint unreachable ({health['error']})"
    return f"; health failing (HTTP {health['status']})"


def scrape(url, params):
    text = fetch_text(url, params["timeout"], params["validate_certs"])
    try:
        samples = parse_samples(text)
    except MetricsError as exc:
        raise MetricsError(f"{redact_url(url)}: {exc}", exc.kind) from None
    return summarize(samples, params["duration_metric"], params["requests_metric"], params["status_label"],
                     declared_families(text))


def _declared_names(params):
    names = [base_name(params["duration_metric"])]
    if params["requests_metric"]:
        names.append(params["requests_metric"])
    return " and ".join(names)


def describe(result, params):
    def seconds(value):
        return "n/a" if value is None else f"{value:.3f} s"

    if result["basis"] == "window":
        where = f"over {result['window_seconds']:.0f} s"
        nothing = "no requests during the window, so no error rate or latency to measure"
    else:
        where = "lifetime totals"
        nothing = "no requests since the API started, so no error rate or latency to measure"
    if not result["requests"]:
        text = f"API {where}: {nothing}"
        lifetime = result["lifetime"]
        if result["basis"] == "window" and lifetime["requests"]:
            rate = lifetime["error_rate"]
            text += f" (lifetime: {lifetime['requests']} requests, 5xx {rate * 100:.1f}%)"
        return text
    rate = f"{result['requests']} requests, 5xx {result['error_rate'] * 100:.1f}%"
    latency = ", ".join(f"{key} {seconds(value)}" for key, value in result["latency_seconds"].items())
    if not result["histogram_found"]:
        latency = f"histogram {base_name(params['duration_metric'])} not exposed"
    return f"API {where}: {rate}, {latency}"


def argument_spec():
    return dict(
        url=dict(type="str", default="http://localhost:3000"),
        metrics_path=dict(type="str", default="/metrics"),
        health_path=dict(type="str", default="/health"),
        window=dict(type="float", default=15),
        duration_metric=dict(type="str", default="synap_http_request_duration_seconds"),
        requests_metric=dict(type="str"),
        status_label=dict(type="str", default="status_code"),
        prometheus_url=dict(type="str"),
        prometheus_selector=dict(type="str", default=""),
        quantiles=dict(type="list", elements="float", default=[0.5, 0.95, 0.99]),
        timeout=dict(type="int", default=10),
        validate_certs=dict(type="bool", default=True),
    )


def gather(params, run_command=None):
    """The module's result from its validated ``params``; ``run_command`` is not needed here."""
    if not HAS_PROMETHEUS_CLIENT:
        raise GatherFailed(missing_required_lib("prometheus_client"), exception=PROMETHEUS_CLIENT_IMPORT_ERROR)
    if params["window"] < 0:
        raise GatherFailed("window must be 0 or more seconds, got {}".format(params["window"]))
    bad = [q for q in params["quantiles"] if not 0 <= q <= 1]
    if bad:
        raise GatherFailed("quantiles must lie between 0 and 1, got {}".format(", ".join(str(q) for q in bad)))
    # A URL that cannot be requested at all is a wrong argument, not a finding.
    for option in ("url", "prometheus_url"):
        if params.get(option) and not params[option].lower().startswith(("http://", "https://")):
            raise GatherFailed(f"{option} must start with http:// or https://, got {redact_url(params[option])!r}")
    if params.get("prometheus_url"):
        return measure_prometheus(params)
    return measure(params)


def measure(params):
    metrics_url = join_url(params["url"], params["metrics_path"])
    shown = redact_url(metrics_url)
    quantiles = params["quantiles"]
    failures = PartFailures()
    result = dict(figures(None, quantiles), metrics_url=shown, lifetime=figures(None, quantiles))
    health = None
    if params["health_path"]:
        health, kind = check_health(join_url(params["url"], params["health_path"]), params["timeout"],
                                    params["validate_certs"])
        result["health"] = health

    try:
        started = time.monotonic()
        before = scrape(metrics_url, params)
        after = before
        if params["window"] > 0:
            time.sleep(params["window"])
            after = scrape(metrics_url, params)
        elapsed = time.monotonic() - started
        if not after["found"]:
            counter = f" nor the {params['requests_metric']} counter" if params["requests_metric"] else ""
            raise MetricsError(f"{shown} exposes neither the {base_name(params['duration_metric'])} histogram"
                               f"{counter}: check duration_metric and requests_metric")
        if not after["sampled"]:
            # A labelled family without samples counts nothing: not even the health check just made, when there is
            # one. No figure can come from it, and none is 0.
            raise MetricsError(f"{shown} declares {_declared_names(params)} but holds no sample of it: the API has "
                               "counted no request since it started (it declares the metrics without recording "
                               "them, or nothing reached it yet), so error rate and latency are unknown",
                               "not_found")
    except MetricsError as exc:
        failures.add("metrics", exc.kind, str(exc))
        if health is not None and health["ok"] is None:
            failures.add("health", kind, health["error"])
        shaped(result, RESULT_FIELDS, failures)
        result["error"] = str(exc)
        result["msg"] = f"API metrics unavailable ({exc.kind}): {exc}{describe_health(health)}"
        return result

    lifetime = figures(after, quantiles)
    result.update(lifetime=lifetime, requests_source=after["requests_source"], histogram_found=after["found_histogram"],
                  source="scrape")
    if params["window"] > 0:
        window = window_delta(before, after)
        result.update(figures(window, quantiles), basis="window", window_seconds=round(elapsed, 3))
        # 0 requests over the window is a measured rate of 0; only the ratios need requests.
        result["requests_per_second"] = round(window["requests"] / elapsed, 3) if elapsed > 0 else None
    else:
        result.update(lifetime, basis="lifetime")
    if not after["found_histogram"]:
        failures.add("latency", "not_understood", f"{shown} does not expose the histogram "
                                                  f"{base_name(params['duration_metric'])}: latency not measured; "
                                                  "check duration_metric")
    if health is not None and health["ok"] is None:
        failures.add("health", kind, health["error"])
    shaped(result, RESULT_FIELDS, failures)
    result["error"] = "; ".join(failures.reasons.values()) or None
    result["msg"] = describe(result, params) + describe_health(health)
    return result


# -- the Prometheus source ---------------------------------------------------------------------------------------


class _Asker:
    """Instant queries to one Prometheus; after a failure of the server itself (no answer, an HTTP error, not its
    API), no further query is sent: each would fail, or time out, alike."""

    def __init__(self, params):
        self.params = params
        self.down = None

    def __call__(self, expr):
        if self.down is not None:
            raise self.down
        try:
            return instant_query(self.params["prometheus_url"], expr, self.params["timeout"],
                                 self.params["validate_certs"])
        except PrometheusError as exc:
            if exc.kind in SERVER_FAILURES:
                self.down = exc
            raise


def _absent(ask, selectors, name, window, metrics=()):
    """Why a query over ``name`` found no series: the metric is not there, the window holds too few samples, or
    the API declares ``metrics`` (names) without ever recording a sample."""
    present = False
    for selector in selectors:
        with contextlib.suppress(PrometheusError):
            present = present or bool(ask(presence_query(selector)))
    if present and window > 0:
        return PrometheusError(f"Prometheus holds {name} but not two samples of it in the last "
                               f"{promql_duration(window)}: the window must span at least two of Prometheus' "
                               "scrape intervals", "not_found")
    params = ask.params
    for metric in metrics:
        targets = declaring_targets(params["prometheus_url"], metric, params["prometheus_selector"],
                                    params["timeout"], params["validate_certs"])
        if targets:
            return PrometheusError(f"{', '.join(targets)} declares {metric} but Prometheus holds no sample of it: the "
                                   "API has counted no request since it started (it declares the metric without "
                                   "recording it, or nothing reached it yet), so error rate and latency are unknown",
                                   "not_found")
    return PrometheusError(f"Prometheus has no series {name}: it does not scrape the API (check its targets), the "
                           "name is wrong, or nothing was counted since the API started", "not_found")


def _requests_by_status(ask, params, queries):
    """``(metric name, samples)`` of the request counter (else the histogram's _count), by status label."""
    window, matchers = params["window"], params["prometheus_selector"]
    histogram_count = base_name(params["duration_metric"]) + "_count"
    candidates = [(histogram_count, series(histogram_count, matchers))]
    if params["requests_metric"]:
        candidates.insert(0, (params["requests_metric"], counter_selector(params["requests_metric"], matchers)))
    for name, selector in candidates:
        queries["requests"] = requests_query(selector, params["status_label"], window)
        samples = ask(queries["requests"])
        if samples:
            return name, samples
    raise _absent(ask, [selector for _name, selector in candidates],
                  " nor ".join(selector for _name, selector in candidates), window,
                  [name.removesuffix("_count") for name, _selector in candidates])


def _request_figures(name, samples, params, failures):
    """requests, errors, error_rate, requests_per_second from the per-status rates (or totals)."""
    window, label = params["window"], params["status_label"]
    if any(value is None for _labels, value in samples):
        raise PrometheusError(f"Prometheus answered a request rate of {name} that is not a number", "not_understood")
    total = sum(value for _labels, value in samples)
    labelled = any(label in labels for labels, _value in samples)
    errors = sum(value for labels, value in samples if str(labels.get(label, "")).startswith("5"))
    scale = window if window > 0 else 1
    counted = {
        "requests": int(round(total * scale)),
        "errors": int(round(errors * scale)) if labelled else None,
        "error_rate": (errors / total) if labelled and total > 0 else None,
        "requests_per_second": round(total, 3) if window > 0 else None,
        "requests_source": name,
    }
    if not labelled:
        # Without the label, a 5xx cannot be told from a 200: that is no error rate, not a rate of 0.
        failures.add("error_rate", "not_found", f"no series of {name} carries the label {label}: the 5xx share "
                                                "cannot be told; check status_label")
    return counted


def measure_prometheus(params):
    quantiles, window = params["quantiles"], params["window"]
    buckets = series(base_name(params["duration_metric"]) + "_bucket", params["prometheus_selector"])
    failures = PartFailures()
    queries = {}
    result = dict(figures(None, quantiles), metrics_url=redact_url(query_url(params["prometheus_url"])),
                  lifetime=figures(None, quantiles), queries=queries)
    ask = _Asker(params)
    read = False
    try:
        name, samples = _requests_by_status(ask, params, queries)
        result.update(_request_figures(name, samples, params, failures))
        read = True
    except PrometheusError as exc:
        failures.add("prometheus" if exc.kind in SERVER_FAILURES else "requests", exc.kind, str(exc))

    latency = {}
    for quantile in quantiles:
        queries[quantile_key(quantile)] = quantile_query(quantile, buckets, window)
    for quantile in quantiles:
        key = quantile_key(quantile)
        if ask.down is not None:
            break
        try:
            samples = ask(queries[key])
        except PrometheusError as exc:
            failures.add("prometheus" if exc.kind in SERVER_FAILURES else "latency", exc.kind, str(exc))
            continue
        if not samples:
            result["histogram_found"] = False
            exc = _absent(ask, [buckets], buckets, window, [base_name(params["duration_metric"])])
            failures.add("latency", exc.kind, str(exc))
            break
        # NaN: no observation in the window; that is no latency, not 0 s.
        latency[key] = samples[0][1]
        result["histogram_found"] = True
        read = True
    result["latency_seconds"] = {quantile_key(q): latency.get(quantile_key(q)) for q in quantiles}

    if read:
        result.update(source="prometheus", basis="window" if window > 0 else "lifetime",
                      window_seconds=float(window) if window > 0 else None)
        if window == 0:
            result["lifetime"] = {key: result[key] for key in ("requests", "errors", "error_rate", "latency_seconds")}
    health = None
    if params["health_path"]:
        health, kind = check_health(join_url(params["url"], params["health_path"]), params["timeout"],
                                    params["validate_certs"])
        result["health"] = health
        if health["ok"] is None:
            failures.add("health", kind, health["error"])
    shaped(result, RESULT_FIELDS, failures)
    result["error"] = "; ".join(failures.reasons.values()) or None
    result["msg"] = describe_prometheus(result, failures, read) + describe_health(health)
    return result


def describe_prometheus(result, failures, read):
    def seconds(value):
        return "n/a" if value is None else f"{value:.3f} s"

    if not read:
        return f"API metrics unavailable ({failures.kind}): {next(iter(failures.reasons.values()))}"
    where = f"over {result['window_seconds']:g} s" if result["basis"] == "window" else "lifetime totals"
    parts = []
    if result["requests"] is None:
        parts.append("requests not measured ({})".format(failures.reasons.get("requests")
                                                         or failures.reasons.get("prometheus")))
    elif not result["requests"] and result["error_rate"] is None and "error_rate" not in failures.reasons:
        nothing = "during the window" if result["basis"] == "window" else "counted"
        return f"API {where} (Prometheus): no requests {nothing}, so no error rate or latency to measure"
    else:
        rate = ("5xx not measured" if result["error_rate"] is None
                else f"5xx {result['error_rate'] * 100:.1f}%")
        per_second = f" ({result['requests_per_second']:g}/s)" if result["requests_per_second"] is not None else ""
        parts.append(f"{result['requests']} requests{per_second}, {rate}")
    if result["histogram_found"]:
        parts.append(", ".join(f"{key} {seconds(value)}" for key, value in result["latency_seconds"].items()))
    else:
        parts.append("latency not measured")
    return f"API {where} (Prometheus): " + ", ".join(parts)


def url_secrets(params):
    """Passwords written into the API's or Prometheus' URL: Ansible masks them wherever the run's output shows them."""
    return url_passwords(params.get("url")) + url_passwords(params.get("prometheus_url"))


INFO = InfoModule(argument_spec, gather, hidden=url_secrets)
