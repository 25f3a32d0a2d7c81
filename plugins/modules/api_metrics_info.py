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
  - With O(prometheus_url), the same figures come from a Prometheus server that scrapes the API, at once (no waiting
    a window), through its C(/api/v1/query). The request rate and the 5xx share come from the C(rate) of the request
    counter over the window summed by O(status_label), each quantile from C(histogram_quantile) over the summed
    C(rate) of the histogram's C(_bucket) series. RV(source) says which of the two measured the figures; RV(queries)
    shows the PromQL asked.
  - Prometheus unreachable, an error answer, or an empty answer (the metric is not scraped, or the window holds fewer
    than two of Prometheus' samples) leaves the figures it should have given null, and RV(failures) says why; the
    module does not read the API's /metrics instead.
  - Also fetches the API's health endpoint (from O(url), whichever the source of the figures).
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
    description: Base URL of the API (its metrics and health endpoints).
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
    description:
      - Seconds between the two scrapes. V(0) scrapes once and reports lifetime totals.
      - With O(prometheus_url), the range of C(rate), ending now; it must span at least two of Prometheus' scrape
        intervals. V(0) reads the counters as they stand (lifetime totals).
    type: float
    default: 15
  duration_metric:
    description:
      - Name of the request duration histogram (its C(_bucket) samples are used).
      - The default is the histogram Synap's code registers, C(synap_http_request_duration_seconds). The runbook greps
        C(api_request_duration), which is not in Synap's code; set it for an API that exposes that name.
    type: str
    default: synap_http_request_duration_seconds
  requests_metric:
    description:
      - Name of the request counter used for the error rate (for example C(synap_http_requests_total)).
      - When unset or not exposed, the histogram's C(_count) samples are used.
    type: str
  status_label:
    description: Label holding the HTTP status code; values starting with C(5) count as errors.
    type: str
    default: status_code
  prometheus_url:
    description:
      - Base URL of a Prometheus server that scrapes the API (for example V(http://prometheus:9090)); the figures
        come from its query API instead of two scrapes of O(url)'s metrics.
      - Unset or empty, the module scrapes the API itself.
      - O(duration_metric), O(requests_metric), O(status_label) and O(window) mean the same for both sources.
    type: str
  prometheus_selector:
    description:
      - With O(prometheus_url), label matchers that pick the API's series among all the Prometheus holds, for example
        V(job="synap-api") (or V(job="synap-api", env="prod")). Every query is narrowed by them.
      - Empty, every series of the metric names counts, whichever target Prometheus scraped it from.
    type: str
    default: ""
  quantiles:
    description: Latency quantiles to compute, between 0 and 1.
    type: list
    elements: float
    default: [0.5, 0.95, 0.99]
  timeout:
    description: Seconds to wait for each HTTP request (each Prometheus query).
    type: int
    default: 10
  validate_certs:
    description: Verify TLS certificates of an HTTPS O(url) or O(prometheus_url).
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

- name: The same figures from Prometheus, over its last 5 minutes, at once
  synap.ops.api_metrics_info:
    url: "{{ synap_api_url }}"
    prometheus_url: "{{ synap_prometheus_url }}"
    window: 300
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
  description:
    - The URL scraped, or with O(prometheus_url) Prometheus' query endpoint (a password in it masked).
  returned: always
  type: str
  sample: http://localhost:3000/metrics
reachable:
  description:
    - Whether every scrape returned Prometheus text with the metrics asked for (with O(prometheus_url), every query
      answered with series), and the health endpoint answered.
    - False for an HTML page, an HTTP error, a body that is not Prometheus text, or metrics without the
      duration histogram (then the counts may still be filled from O(requests_metric)); with O(prometheus_url)
      also for an error answer or an empty one.
  returned: always
  type: bool
failure:
  description:
    - Null when everything was read. Otherwise V(refused), V(timeout), V(dns), V(tls), V(auth_failed),
      V(http_error) (a non-2xx answer), V(not_understood) (an HTML page, not Prometheus text, or the metrics
      missing) or V(error).
    - With O(prometheus_url) also V(query_failed) (Prometheus refused the query) and V(not_found) (no series, as
      when the metric is not scraped or the window holds too few samples, or series without O(status_label)).
  returned: always
  type: str
  sample: not_understood
failures:
  description:
    - What could not be read (V(metrics), V(latency) when the histogram is missing, V(health) when the health
      endpoint did not answer), with a one-line reason; empty when everything was read.
    - With O(prometheus_url) the parts are V(prometheus) (the server did not answer or is no Prometheus),
      V(requests), V(error_rate), V(latency) and V(health).
  returned: always
  type: dict
source:
  description:
    - What measured the figures; V(scrape) (two scrapes of the API's metrics) or V(prometheus) (O(prometheus_url)).
    - Null when no figure was measured.
  returned: always
  type: str
  sample: prometheus
queries:
  description:
    - With O(prometheus_url), the PromQL asked for each figure, keyed V(requests) and the quantiles' keys (as in
      RV(latency_seconds)), to paste into Prometheus; null when the API is scraped.
  returned: always
  type: dict
  sample: {"requests": "sum by (status_code) (rate(synap_http_requests_total[15s]))",
           "p95": "histogram_quantile(0.95, sum by (le) (rate(synap_http_request_duration_seconds_bucket[15s])))"}
error:
  description: Why the metrics could not be read, in full; null when everything was read.
  returned: always
  type: str
basis:
  description:
    - C(window) when the figures are the increase over the window; C(lifetime) when they are totals since the
      API started (O(window=0)), whichever the RV(source).
    - Null when the metrics could not be read.
  returned: always
  type: str
  sample: window
window_seconds:
  description:
    - Measured seconds between the two scrapes (with O(prometheus_url), the query's window); null with O(window=0)
      or when the metrics were not read.
  returned: always
  type: float
requests:
  description:
    - Requests counted in RV(basis) (0 when none came); null when the metrics were not read.
    - With O(prometheus_url) and a window, Prometheus' estimate (its rate times the window, as C(increase) says),
      rounded.
  returned: always
  type: int
errors:
  description:
    - 5xx responses counted in RV(basis); null when the metrics were not read (or, with O(prometheus_url), when the
      series lack O(status_label)).
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
    - With O(prometheus_url) they are measured only with O(window=0); with a window, all null.
  returned: always
  type: dict
requests_per_second:
  description:
    - Request rate over the window (0 when no request came); with O(prometheus_url), the summed C(rate).
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

from ansible_collections.synap.ops.plugins.module_utils.api_metrics_info import INFO

# The module's options and look-up, for callers that import the module itself (synap-play validate reads the spec).
argument_spec = INFO.argument_spec
gather = INFO.gather


def main():
    INFO.run_module()


if __name__ == "__main__":
    main()
