#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: api_metrics_info
short_description: Error rate and latency quantiles of the Synap API over a window
description:
  - Scrapes the API's Prometheus text endpoint twice, O(window) seconds apart, and computes the error rate
    (5xx / all requests) and latency quantiles from the increase of the histogram buckets over that window,
    interpolated the way PromQL's C(histogram_quantile) does.
  - Lifetime totals are returned as well, and are the result's basis (C(basis=lifetime)) with O(window=0).
  - A window without any request is said so, with RV(requests) 0 and the error rate and latencies null, since
    0 errors of 0 requests is no error rate.
  - Also fetches the API's health endpoint.
  - An unreachable endpoint, an HTTP error, an HTML page or a body that is not Prometheus text is reported as a
    finding (C(reachable=false), RV(failure) and RV(error)) with every figure null; the module does not fail on it.
version_added: 0.1.0
author:
  - Synap operations (@synap)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - synap.ops.attributes.info
options:
  url:
    description: Base URL of the API.
    type: str
    default: http://localhost:3000
  metrics_path:
    description: Path of the Prometheus text endpoint below O(url).
    type: str
    default: /metrics
  health_path:
    description: Path of the health endpoint below O(url); an empty string skips the health check.
    type: str
    default: /health
  window:
    description: Seconds between the two scrapes. V(0) scrapes once and reports lifetime totals.
    type: float
    default: 15
  duration_metric:
    description:
      - Name of the request duration histogram (its C(_bucket) samples are used).
      - The runbook greps C(api_request_duration); Synap's code registers C(synap_http_request_duration_seconds).
    type: str
    default: api_request_duration
  requests_metric:
    description:
      - Name of the request counter used for the error rate (for example C(synap_http_requests_total)).
      - When unset or not exposed, the histogram's C(_count) samples are used.
    type: str
  status_label:
    description: Label holding the HTTP status code; values starting with C(5) count as errors.
    type: str
    default: status_code
  quantiles:
    description: Latency quantiles to compute, between 0 and 1.
    type: list
    elements: float
    default: [0.5, 0.95, 0.99]
  timeout:
    description: Seconds to wait for each HTTP request.
    type: int
    default: 10
  validate_certs:
    description: Verify TLS certificates of an HTTPS O(url).
    type: bool
    default: true
notes:
  - Needs the C(prometheus_client) Python library on the host that runs the module.
requirements:
  - prometheus_client
"""

EXAMPLES = r"""
- name: Measure the API's error rate and latency over 30 seconds
  synap.ops.api_metrics_info:
    url: "{{ synap_api_url }}"
    window: 30
    duration_metric: "{{ synap_metric_request_duration }}"
    requests_metric: "{{ synap_metric_requests_total | default(omit) }}"
    status_label: "{{ synap_metric_status_label }}"
  register: api_metrics

- name: Flag a high error rate
  ansible.builtin.debug:
    msg: "error rate {{ api_metrics.error_rate }} above {{ synap_threshold_error_rate }}"
  when: api_metrics.error_rate is not none and api_metrics.error_rate > synap_threshold_error_rate
"""

RETURN = r"""
msg:
  description:
    - One-line summary. When the metrics could not be read, the URL (a password in it masked), the failure kind
      and the cause; when no request was counted, says so instead of an error rate.
  returned: always
  type: str
  sample: "API over 15 s: 240 requests, 5xx 12.5%, p50 0.031 s, p95 0.420 s, p99 0.900 s; health ok"
metrics_url:
  description: The URL scraped (a password in it masked).
  returned: always
  type: str
  sample: http://localhost:3000/metrics
reachable:
  description:
    - Whether every scrape returned Prometheus text with the metrics asked for, and the health endpoint answered.
    - False for an HTML page, an HTTP error, a body that is not Prometheus text, or metrics without the
      duration histogram (then the counts may still be filled from O(requests_metric)).
  returned: always
  type: bool
failure:
  description:
    - Null when everything was read. Otherwise V(refused), V(timeout), V(dns), V(tls), V(auth_failed),
      V(http_error) (a non-2xx answer), V(not_understood) (an HTML page, not Prometheus text, or the metrics
      missing) or V(error).
  returned: always
  type: str
  sample: not_understood
failures:
  description:
    - What could not be read (V(metrics), V(latency) when the histogram is missing, V(health) when the health
      endpoint did not answer), with a one-line reason; empty when everything was read.
  returned: always
  type: dict
error:
  description: Why the metrics could not be read, in full; null when everything was read.
  returned: always
  type: str
basis:
  description:
    - C(window) when the figures are the increase over the window; C(lifetime) when they are totals since the
      API started (O(window=0)).
    - Null when the metrics could not be read.
  returned: always
  type: str
  sample: window
window_seconds:
  description: Measured seconds between the two scrapes; null with O(window=0) or when the metrics were not read.
  returned: always
  type: float
requests:
  description: Requests counted in RV(basis) (0 when none came); null when the metrics were not read.
  returned: always
  type: int
errors:
  description: 5xx responses counted in RV(basis); null when the metrics were not read.
  returned: always
  type: int
error_rate:
  description:
    - RV(errors) / RV(requests).
    - Null when no request was counted (0 of 0 is no rate) or the metrics were not read; never 0 for either.
  returned: always
  type: float
latency_seconds:
  description:
    - Latency quantiles in seconds keyed C(p50), C(p95), C(p99) (after O(quantiles)); always those keys.
    - A quantile is null when there was no observation, the histogram is not exposed, or the metrics were not read.
  returned: always
  type: dict
  sample: {"p50": 0.03, "p95": 0.42, "p99": 0.9}
lifetime:
  description:
    - The same figures (requests, errors, error_rate, latency_seconds) over the API's lifetime, always those keys,
      each null when not measured (as above).
  returned: always
  type: dict
requests_per_second:
  description:
    - Request rate over the window (0 when no request came).
    - Null with O(window=0) (no window to divide by) or when the metrics were not read.
  returned: always
  type: float
requests_source:
  description: The metric the request and error counts were read from; null when the metrics were not read.
  returned: always
  type: str
histogram_found:
  description: Whether the duration histogram was exposed; null when the metrics were not read.
  returned: always
  type: bool
health:
  description:
    - The health endpoint's answer, C(url), C(status), C(ok) (a 2xx), C(body) excerpt and C(error).
    - C(status), C(ok) and C(body) are null when no answer came (C(error) says why).
    - Null when O(health_path) is empty.
  returned: always
  type: dict
  sample: {"url": "http://localhost:3000/health", "status": 200, "ok": true, "body": "{\"status\":\"ok\"}",
           "error": null}
"""

import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.synap.ops.plugins.module_utils.gather import GatherFailed, PartFailures, run_gather, shaped
from ansible_collections.synap.ops.plugins.module_utils.http_api import HttpFailure, http_request, redact_url
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


SPEC_OPTIONS = {}


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


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True, **SPEC_OPTIONS)
    run_gather(module, gather)


if __name__ == "__main__":
    main()
