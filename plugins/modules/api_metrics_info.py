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
  - Lifetime totals are returned as well, and are the result's basis (C(basis=lifetime)) only when no request
    was seen during the window or O(window=0).
  - Also fetches the API's health endpoint.
  - An unreachable endpoint, an HTTP error or a body that is not Prometheus text is reported as a finding
    (C(reachable=false) and RV(error)); the module does not fail on it.
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
  when: (api_metrics.error_rate | default(0, true)) > synap_threshold_error_rate
"""

RETURN = r"""
msg:
  description: One-line summary.
  returned: always
  type: str
  sample: "API over 15 s: 240 requests, 5xx 12.5%, p50 0.031 s, p95 0.420 s, p99 0.900 s; health ok"
metrics_url:
  description: The URL scraped.
  returned: always
  type: str
  sample: http://localhost:3000/metrics
reachable:
  description: Whether both scrapes returned Prometheus text.
  returned: always
  type: bool
error:
  description: Why the metrics could not be read (unreachable, HTTP error, not Prometheus text).
  returned: when reachable is false
  type: str
basis:
  description:
    - C(window) when the figures are rates over the window.
    - C(lifetime) when they are totals since the API started.
  returned: when reachable
  type: str
  sample: window
window_seconds:
  description: Measured seconds between the two scrapes.
  returned: when reachable
  type: float
requests:
  description: Requests counted in RV(basis).
  returned: when reachable
  type: int
errors:
  description: 5xx responses counted in RV(basis).
  returned: when reachable
  type: int
error_rate:
  description: RV(errors) / RV(requests), or null without requests.
  returned: when reachable
  type: float
latency_seconds:
  description: Latency quantiles in seconds keyed C(p50), C(p95), C(p99); null when no observation.
  returned: when reachable
  type: dict
  sample: {"p50": 0.03, "p95": 0.42, "p99": 0.9}
lifetime:
  description: The same figures (requests, errors, error_rate, latency_seconds) over the API's lifetime.
  returned: when reachable
  type: dict
requests_per_second:
  description: Request rate over the window.
  returned: when reachable and basis is window
  type: float
requests_source:
  description: The metric the request and error counts were read from.
  returned: when reachable
  type: str
histogram_found:
  description: Whether the duration histogram was exposed.
  returned: when reachable
  type: bool
health:
  description: The health endpoint's answer (url, status, ok, body excerpt, error).
  returned: unless health_path is empty
  type: dict
  sample: {"url": "http://localhost:3000/health", "status": 200, "ok": true, "body": "{\"status\":\"ok\"}"}
"""

import time

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.synap.ops.plugins.module_utils.gather import GatherFailed, run_gather
from ansible_collections.synap.ops.plugins.module_utils.http_api import FetchError, fetch
from ansible_collections.synap.ops.plugins.module_utils.metrics import (
    HAS_PROMETHEUS_CLIENT,
    PROMETHEUS_CLIENT_IMPORT_ERROR,
    MetricsError,
    fetch_text,
    figures,
    parse_samples,
    summarize,
    window_delta,
)

HEALTH_BODY_EXCERPT = 200


def join_url(base, path):
    return base.rstrip("/") + "/" + path.lstrip("/")


def check_health(url, timeout, validate_certs=True):
    response, info = fetch(url, timeout=timeout, validate_certs=validate_certs)
    status = info.get("status", -1)
    if response is None:
        body = info.get("body") or b""
        if isinstance(body, bytes):
            body = body.decode("utf-8", errors="replace")
        result = {"url": url, "status": status, "ok": False, "body": body[:HEALTH_BODY_EXCERPT]}
        if status is None or status < 0:
            result["error"] = info.get("msg") or "unreachable"
        return result
    body = response.read().decode("utf-8", errors="replace")
    return {"url": url, "status": status, "ok": 200 <= status < 300, "body": body[:HEALTH_BODY_EXCERPT]}


def describe_health(health):
    if health is None:
        return ""
    if health["ok"]:
        return "; health ok"
    if "error" in health:
        return "; health endpoint unreachable"
    return f"; health failing (HTTP {health['status']})"


def scrape(url, params):
    text = fetch_text(url, params["timeout"], params["validate_certs"])
    return summarize(parse_samples(text), params["duration_metric"], params["requests_metric"], params["status_label"])


def describe(result, duration_metric):
    def seconds(value):
        return "n/a" if value is None else f"{value:.3f} s"

    if result["error_rate"] is None:
        rate = "no requests"
    else:
        rate = f"{result['requests']} requests, 5xx {result['error_rate'] * 100:.1f}%"
    where = f"over {result['window_seconds']:.0f} s" if result["basis"] == "window" else "lifetime totals"
    latency = ", ".join(f"{key} {seconds(value)}" for key, value in result["latency_seconds"].items())
    if not result["histogram_found"]:
        latency = f"histogram {duration_metric} not exposed"
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
    try:
        return measure(params)
    except FetchError as exc:
        # fetch_url used to fail the module on a URL it cannot request at all; so does this.
        raise GatherFailed(str(exc), **exc.info) from None


def measure(params):
    metrics_url = join_url(params["url"], params["metrics_path"])
    result = {"changed": False, "metrics_url": metrics_url}
    health = None
    if params["health_path"]:
        health = check_health(join_url(params["url"], params["health_path"]), params["timeout"],
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
    except MetricsError as exc:
        result.update(reachable=False, error=str(exc))
        result["msg"] = f"API metrics unavailable: {exc}{describe_health(health)}"
        return result

    lifetime = figures(after, params["quantiles"])
    window = window_delta(before, after) if params["window"] > 0 else None
    result.update(
        reachable=True,
        lifetime=lifetime,
        requests_source=after["requests_source"],
        histogram_found=after["found_histogram"],
        window_seconds=round(elapsed, 3),
    )
    if window is not None and window["requests"] > 0:
        result.update(figures(window, params["quantiles"]), basis="window")
        result["requests_per_second"] = round(window["requests"] / elapsed, 3) if elapsed > 0 else None
    else:
        result.update(lifetime, basis="lifetime")

    message = describe(result, params["duration_metric"])
    if result["basis"] == "lifetime" and params["window"] > 0:
        message += " (no requests during the {:.0f} s window)".format(params["window"])
    message += describe_health(health)
    result["msg"] = message
    return result


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True, **SPEC_OPTIONS)
    run_gather(module, gather)


if __name__ == "__main__":
    main()
