# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""synap.ops.external_info's look-up: check that external services answer, and how fast.

plugins/modules/external_info.py documents it and runs ``INFO``; synap-play's first look calls ``gather`` itself.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.synap.ops.plugins.module_utils.gather import GatherFailed, InfoModule, PartFailures, shaped
from ansible_collections.synap.ops.plugins.module_utils.http_api import (
    HttpFailure,
    failure_kind,
    http_request,
)
from ansible_collections.synap.ops.plugins.module_utils.redact import redact_url, url_passwords

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


def endpoint_passwords(params):
    """The passwords written into the endpoints' URLs: Ansible masks them wherever the run's output shows them."""
    return [password for endpoint in params["endpoints"] for password in url_passwords(endpoint["url"])]


INFO = InfoModule(argument_spec, gather, hidden=endpoint_passwords)
