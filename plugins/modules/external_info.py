#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: external_info
short_description: Check that external services answer, and how fast
version_added: 0.1.0
description:
  - Sends one HTTP GET to each endpoint and reports whether it answered, with which status and how fast -
    the runbook's "check Hub Protocol external services" and "check external service latency".
  - All endpoints are checked at the same time, so the call takes about as long as the slowest endpoint,
    not the sum.
  - An endpoint that cannot be reached is a finding (RV(endpoints[].reachable=false) with RV(endpoints[].error)),
    not a failure of the module, so a diagnosis always completes.
author:
  - Synap operations (@synap)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - synap.ops.attributes.info
options:
  endpoints:
    description:
      - The endpoints to check. Inventory variable C(synap_external_endpoints).
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Name shown in the results, unique in the list (C(hub-protocol)).
        type: str
        required: true
      url:
        description: URL to GET, usually the service's health endpoint.
        type: str
        required: true
      timeout:
        description: Seconds to wait for the answer before the endpoint counts as unreachable.
        type: float
        default: 5
      expect_status:
        description: HTTP status that means healthy; any other status is reported as failing.
        type: int
        default: 200
  validate_certs:
    description: Verify TLS certificates of C(https) endpoints.
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Check the external services
  synap.ops.external_info:
    endpoints: "{{ synap_external_endpoints }}"
  register: external

- name: Check Hub Protocol with a tighter timeout
  synap.ops.external_info:
    endpoints:
      - name: hub-protocol
        url: http://hub:3100/health
        timeout: 2
      - name: billing
        url: https://billing.example.com/status
        expect_status: 204
"""

RETURN = r"""
msg:
  description:
    - One-line summary, one part per endpoint, in the order given; a failing endpoint with its URL (a password
      in it masked) and the cause.
  returned: always
  type: str
  sample: "hub-protocol (http://hub:3100/health): unreachable (refused: connection refused); billing: ok 0.031 s"
reachable:
  description:
    - Whether every endpoint answered its O(endpoints[].expect_status); true when no endpoint was given.
    - An endpoint that answers another status (a C(503)) makes it false, as one that does not answer does.
  returned: always
  type: bool
failure:
  description:
    - Null when every endpoint is ok; otherwise the RV(endpoints[].failure) of the first failing one.
  returned: always
  type: str
  sample: refused
failures:
  description: Each failing endpoint's name with its URL and cause; empty when every endpoint is ok.
  returned: always
  type: dict
  sample: {"hub-protocol": "http://hub:3100/health: connection refused"}
endpoints:
  description: One entry per endpoint, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The endpoint's name.
      type: str
      sample: hub-protocol
    url:
      description: The URL checked (a password in it is masked).
      type: str
      sample: http://hub:3100/health
    reachable:
      description: Whether an HTTP answer came back at all, whatever its status.
      type: bool
      sample: false
    status:
      description: The HTTP status of the answer; null when no answer came.
      type: int
      sample: 503
    latency_seconds:
      description: Seconds until the whole answer arrived, or until the check gave up (measured either way).
      type: float
      sample: 0.031
    error:
      description: Why the endpoint is failing, in a few words; null when it is ok.
      type: str
      sample: timed out after 5 s
    failure:
      description:
        - Null when it is ok. Otherwise V(refused), V(timeout), V(dns), V(tls), V(error) (no answer),
          V(auth_failed) (401, 403), V(http_error) (another non-2xx status) or V(not_understood) (a 2xx other
          than O(endpoints[].expect_status)).
      type: str
      sample: timeout
    ok:
      description: Reachable and answered O(endpoints[].expect_status).
      type: bool
      sample: true
failing:
  description: Names of the endpoints that are not ok.
  returned: always
  type: list
  elements: str
  sample: [hub-protocol]
slowest:
  description: The endpoint that took longest (timeouts included); null when no endpoint was given.
  returned: always
  type: dict
  contains:
    name:
      description: The endpoint's name.
      type: str
    latency_seconds:
      description: Its latency in seconds.
      type: float
  sample: {"name": "hub-protocol", "latency_seconds": 5.003}
"""

import time
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.synap.ops.plugins.module_utils.gather import GatherFailed, PartFailures, run_gather, shaped
from ansible_collections.synap.ops.plugins.module_utils.http_api import (
    HttpFailure,
    failure_kind,
    hide_url_password,
    http_request,
    redact_url,
)

# Enough threads to check a realistic list all at once without opening hundreds of sockets.
MAX_PARALLEL_CHECKS = 32
# Every documented field but msg and the common ones.
RESULT_FIELDS = ("endpoints", "failing", "slowest")


def check_endpoint(endpoint, validate_certs):
    result = {"name": endpoint["name"], "url": redact_url(endpoint["url"]), "reachable": False, "status": None,
              "latency_seconds": None, "error": None, "failure": None, "ok": False}
    started = time.monotonic()
    try:
        status, _text = http_request(endpoint["url"], timeout=endpoint["timeout"], validate_certs=validate_certs,
                                     headers={"Accept": "*/*"})
    except HttpFailure as exc:
        result.update(error=str(exc), failure=exc.kind)
    else:
        result.update(reachable=True, status=status, ok=status == endpoint["expect_status"])
        if not result["ok"]:
            expected = "" if endpoint["expect_status"] == 200 else f", expected {endpoint['expect_status']}"
            result["error"] = f"HTTP {status}{expected}"
            # A 2xx other than the one expected is an answer, but not the one that means healthy.
            result["failure"] = "not_understood" if 200 <= status < 300 else failure_kind(status=status)
    result["latency_seconds"] = round(time.monotonic() - started, 3)
    return result


def describe(result):
    if result["ok"]:
        return f"{result['name']}: ok {result['latency_seconds']:.3f} s"
    if result["reachable"]:
        return f"{result['name']} ({result['url']}): {result['error']} in {result['latency_seconds']:.3f} s"
    return f"{result['name']} ({result['url']}): unreachable ({result['failure']}: {result['error']})"


def argument_spec():
    return dict(
        endpoints=dict(type="list", elements="dict", required=True, options=dict(
            name=dict(type="str", required=True),
            url=dict(type="str", required=True),
            timeout=dict(type="float", default=5.0),
            expect_status=dict(type="int", default=200),
        )),
        validate_certs=dict(type="bool", default=True),
    )


SPEC_OPTIONS = {}


def gather(params, run_command=None):
    """The module's result from its validated ``params``; ``run_command`` is not needed here."""
    endpoints = params["endpoints"]
    names = [endpoint["name"] for endpoint in endpoints]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise GatherFailed("endpoint names must be unique; given more than once: {}".format(", ".join(duplicates)))
    for endpoint in endpoints:
        if endpoint["timeout"] <= 0:
            raise GatherFailed(f"endpoint {endpoint['name']}: timeout must be a positive number of seconds, "
                               f"got {endpoint['timeout']:g}")
        if not endpoint["url"].lower().startswith(("http://", "https://")):
            raise GatherFailed(f"endpoint {endpoint['name']}: url must start with http:// or https://, "
                               f"got {redact_url(endpoint['url'])!r}")

    if not endpoints:
        return shaped(dict(endpoints=[], failing=[], msg="no external endpoints to check"), RESULT_FIELDS)

    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_CHECKS, len(endpoints))) as pool:
        results = list(pool.map(lambda endpoint: check_endpoint(endpoint, params["validate_certs"]), endpoints))

    failures = PartFailures()
    for result in results:
        if not result["ok"]:
            failures.add(result["name"], result["failure"], f"{result['url']}: {result['error']}")
    slowest = max(results, key=lambda result: result["latency_seconds"])
    return shaped(dict(
        endpoints=results,
        failing=[result["name"] for result in results if not result["ok"]],
        slowest={"name": slowest["name"], "latency_seconds": slowest["latency_seconds"]},
        msg="; ".join(describe(result) for result in results),
    ), RESULT_FIELDS, failures)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True, **SPEC_OPTIONS)
    for endpoint in module.params["endpoints"]:
        hide_url_password(module, endpoint["url"])
    run_gather(module, gather)


if __name__ == "__main__":
    main()
