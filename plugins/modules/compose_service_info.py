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
  logs_of:
    description:
      - The services whose logs to read, when they differ from those reported (every service's state with only
        the API's and the worker's logs, say); they are read while the state is.
      - Empty means the logs of the services reported. Implies O(logs).
    type: list
    elements: str
    default: []
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

- name: Every service's state, and the errors of the API and the worker, in one look
  synap.ops.compose_service_info:
    project_dir: "{{ synap_compose_project_dir }}"
    logs_of: [api, jobs]
    patterns: [ERROR]
  register: overview

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
    - Per service (of O(logs_of) when given), C(lines) read, C(tail) (those lines) and C(matches) per pattern with
      C(count) and C(last) lines; a service whose logs could not be read is null.
    - Null when logs were not asked for (O(logs=false) without O(patterns) or O(logs_of)) or the project could not
      be read.
  returned: always
  type: dict
  sample: {"api": {"lines": 100, "tail": ["..."], "matches": {"ERROR": {"count": 12, "last": ["ERROR boom"]}}}}
"""

from ansible_collections.synap.ops.plugins.module_utils.compose_service_info import INFO

# The module's options and look-up, for callers that import the module itself (synap-play validate reads the spec).
argument_spec = INFO.argument_spec
gather = INFO.gather


def main():
    INFO.run_module()


if __name__ == "__main__":
    main()
