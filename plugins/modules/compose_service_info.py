#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: compose_service_info
short_description: State and recent logs of docker compose services
description:
  - The runbook's C(docker compose ps) and C(docker compose logs --tail=100 | grep ERROR) as one read-only module
    that runs on the host of the project.
  - Reports each service's containers (state, health, restarts, created and started times).
  - With O(logs=true) or O(patterns), also returns the last O(tail) lines of each service with counts and the last
    matching lines for O(patterns).
  - A project that cannot be read (missing directory or compose file, no Docker engine, no docker client) is a
    finding (RV(reachable) false, RV(failure) and RV(error)), not a failure.
  - Never changes anything; to restart, scale, stop, start or recreate services use M(synap.ops.compose_service).
version_added: 0.1.0
author:
  - Synap operations (@synap)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - synap.ops.compose
  - synap.ops.attributes.info
options:
  services:
    description:
      - Services to report (runbook names C(synap_service_api), C(synap_service_jobs), C(synap_service_postgres)).
      - Empty means every service of the project.
    type: list
    elements: str
    default: []
  logs:
    description: Read the last O(tail) log lines of each service. Implied by O(patterns).
    type: bool
    default: false
  tail:
    description: How many of the last log lines of each service to read.
    type: int
    default: 100
  patterns:
    description: Regular expressions to count in the log lines read (for example C(ERROR)).
    type: list
    elements: str
    default: []
  match_lines:
    description: How many of the last matching lines to return per pattern.
    type: int
    default: 5
seealso:
  - module: synap.ops.compose_service
"""

EXAMPLES = r"""
- name: State of every service of the project
  synap.ops.compose_service_info:
    project_dir: "{{ synap_compose_project_dir }}"
    project_name: "{{ synap_compose_project_name }}"
  register: compose_state

- name: Count errors in the last 100 lines of the API log
  synap.ops.compose_service_info:
    project_dir: "{{ synap_compose_project_dir }}"
    services: [api]
    tail: 100
    patterns: [ERROR, global-validator]
  register: api_logs

- name: Say how many errors the API logged
  ansible.builtin.debug:
    msg: "{{ api_logs.logs.api.matches.ERROR.count }} ERROR lines in the last {{ api_logs.logs.api.lines }}"
  when: api_logs.logs is not none and api_logs.logs.api is not none
"""

RETURN = r"""
msg:
  description:
    - One-line summary of what was found; when something could not be read, the project, the failure kind and
      the cause.
  returned: always
  type: str
  sample: "api 1/1 running, healthy (3 ERROR, 1 global-validator in last 100 log lines); jobs 1/1 running"
reachable:
  description: Whether the project's state (and logs, when asked for) could be read.
  returned: always
  type: bool
failure:
  description:
    - Null when everything asked for was read. Otherwise V(not_found) (project directory, compose file or
      service missing), V(refused) (no Docker engine answers), V(timeout), V(auth_failed) (no permission on the
      Docker socket), V(not_understood), V(query_failed) (docker answered, the command failed) or V(error)
      (for example no docker client).
  returned: always
  type: str
  sample: not_found
failures:
  description: What could not be read (V(services), V(logs)) with a one-line reason; empty when everything was read.
  returned: always
  type: dict
error:
  description: Why the project (or some logs) could not be read; null when everything was read.
  returned: always
  type: str
  sample: "project directory /srv/synap does not exist: set project_dir to the directory of the compose project"
services:
  description:
    - State per service - C(containers) (id, name, service, state, health, status, exit_code, restart_count,
      created_at, started_at), C(replicas), C(running), C(healthy), C(has_healthcheck), C(restarts),
      C(last_started_seconds_ago) and C(last_created_at) (seconds since the epoch).
    - A service asked for without any container has C(replicas) 0. Null when the project could not be read.
  returned: always
  type: dict
  sample: {"api": {"replicas": 1, "running": 1, "healthy": true, "has_healthcheck": true, "restarts": 0,
           "last_started_seconds_ago": 812.4, "last_created_at": 1718000000.5, "containers": []}}
logs:
  description:
    - Per service, C(lines) read, C(tail) (those lines) and C(matches) per pattern with C(count) and C(last) lines;
      a service whose logs could not be read is null.
    - Null when logs were not asked for (O(logs=false) without O(patterns)) or the project could not be read.
  returned: always
  type: dict
  sample: {"api": {"lines": 100, "tail": ["..."], "matches": {"ERROR": {"count": 12, "last": ["ERROR boom"]}}}}
"""

from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.synap.ops.plugins.module_utils.compose import (
    Compose,
    ComposeError,
    compile_patterns,
    compose_argument_spec,
    describe_log,
    describe_service,
    summarize_log,
)
from ansible_collections.synap.ops.plugins.module_utils.gather import GatherFailed, PartFailures, run_gather, shaped

# Every documented field but msg and the common ones.
RESULT_FIELDS = ("error", "services", "logs")


def argument_spec():
    spec = compose_argument_spec()
    spec.update(
        services=dict(type="list", elements="str", default=[]),
        logs=dict(type="bool", default=False),
        tail=dict(type="int", default=100),
        patterns=dict(type="list", elements="str", default=[]),
        match_lines=dict(type="int", default=5),
    )
    return spec


SPEC_OPTIONS = dict(required_one_of=[("project_dir", "files", "project_name")])


def gather(params, run_command):
    """The module's result from its validated ``params``, running docker through ``run_command``."""
    for option in ("tail", "match_lines"):
        if params[option] < 0:
            raise GatherFailed(f"{option} must be 0 or more, got {params[option]}")
    try:
        patterns = compile_patterns(params["patterns"])
    except ValueError as exc:
        raise GatherFailed(str(exc)) from None
    want_logs = params["logs"] or bool(patterns)

    compose = Compose.from_params(params, run_command)
    project = params["project_name"] or params["project_dir"] or ", ".join(params["files"] or [])
    failures = PartFailures()
    result = {}
    early = {}
    try:
        compose.check_paths()
        # Each docker compose call is a process start of its own: with the services named, their logs are read
        # while the state is, not after it.
        with ThreadPoolExecutor(max_workers=1 + len(params["services"])) as pool:
            early = {name: pool.submit(compose.logs, name, params["tail"])
                     for name in (params["services"] if want_logs else [])}
            result["services"] = compose.services(params["services"] or None)
    except ComposeError as exc:
        # The diagnosis goes on: an unreadable project is itself what was found.
        failures.add("services", exc.kind, str(exc))
        if want_logs:
            failures.add("logs", exc.kind, "not read: the project could not be read")
        shaped(result, RESULT_FIELDS, failures)
        result.update(error=str(exc), msg=f"compose project {project} unreadable ({exc.kind}): {exc}")
        return result

    if want_logs:
        result["logs"], unread, kind = {}, [], None
        for name in params["services"] or list(result["services"]):
            try:
                lines = early[name].result() if name in early else compose.logs(name, params["tail"])
            except ComposeError as exc:
                result["logs"][name] = None
                unread.append(f"{name}: {exc}")
                kind = kind or exc.kind
                continue
            result["logs"][name] = summarize_log(lines, patterns, params["match_lines"])
        if unread:
            failures.add("logs", kind, "; ".join(unread))
    shaped(result, RESULT_FIELDS, failures)
    result["error"] = "; ".join(failures.reasons.values()) or None

    parts = []
    for name, service in result["services"].items():
        part = describe_service(name, service)
        if (result["logs"] or {}).get(name):
            part += f" ({describe_log(result['logs'][name])})"
        parts.append(part)
    result["msg"] = "; ".join(parts) or f"compose project {project}: no containers"
    if failures:
        result["msg"] += f"; NOT READ from compose project {project} ({failures.kind}): {result['error']}"
    return result


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True, **SPEC_OPTIONS)
    run_gather(module, gather)


if __name__ == "__main__":
    main()
