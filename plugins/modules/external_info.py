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

from ansible_collections.synap.ops.plugins.module_utils.external_info import INFO

# The module's options and look-up, for callers that import the module itself (synap-play validate reads the spec).
argument_spec = INFO.argument_spec
gather = INFO.gather


def main():
    INFO.run_module()


if __name__ == "__main__":
    main()
