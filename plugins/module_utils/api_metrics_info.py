# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""synap.ops.api_metrics_info's look-up: error rate and latency quantiles of the Synap API over a window.

plugins/modules/api_metrics_info.py documents it and runs ``INFO``; synap-play's first look calls ``gather`` itself.
"""

from __future__ import annotations

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
    summarize,
    window_delta,
)
from ansible_collections.synap.ops.plugins.module_utils.redact import redact_url

HEALTH_BODY_EXCERPT = 200
# Every documented field but msg and the common ones; each is None when it was not measured.
RESULT_FIELDS = ("metrics_url", "error", "basis", "window_seconds", "requests", "errors", "error_rate",
                 "latency_seconds", "lifetime", "requests_per_second", "requests_source", "histogram_found", "health")


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
        duration_metric=dict(type="str", default="api_request_duration"),
        requests_metric=dict(type="str"),
        status_label=dict(type="str", default="status_code"),
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
    if not params["url"].lower().startswith(("http://", "https://")):
        raise GatherFailed(f"url must start with http:// or https://, got {redact_url(params['url'])!r}")
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
    except MetricsError as exc:
        failures.add("metrics", exc.kind, str(exc))
        if health is not None and health["ok"] is None:
            failures.add("health", kind, health["error"])
        shaped(result, RESULT_FIELDS, failures)
        result["error"] = str(exc)
        result["msg"] = f"API metrics unavailable ({exc.kind}): {exc}{describe_health(health)}"
        return result

    lifetime = figures(after, quantiles)
    result.update(lifetime=lifetime, requests_source=after["requests_source"], histogram_found=after["found_histogram"])
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


INFO = InfoModule(argument_spec, gather)
