#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: compose_service
short_description: Idempotent restart, scale, stop/start and recreate of docker compose services
description:
  - The runbook's acting C(docker compose) commands as one idempotent module that runs on the host of the project.
  - O(command=restart) restarts a service unless it is healthy (override with O(force)) or was started within
    O(guard_window) seconds; the reason for a skip is returned.
  - O(command=scale) sets the number of replicas (C(up -d --scale)); O(command=stop) and O(command=start) stop and
    start services; O(command=recreate) replaces the containers (C(up -d --force-recreate)).
  - To read the state or the logs of services without changing anything, use M(synap.ops.compose_service_info).
version_added: 0.1.0
author:
  - Synap operations (@synap)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - synap.ops.compose
  - synap.ops.attributes.action
attributes:
  check_mode:
    details: Returns the planned actions in RV(actions) and changes nothing.
options:
  command:
    description: What to do with O(services).
    type: str
    choices: [restart, scale, stop, start, recreate]
    required: true
  services:
    description:
      - Services to act on (runbook names C(synap_service_api), C(synap_service_jobs), C(synap_service_postgres)).
    type: list
    elements: str
    required: true
  force:
    description: With O(command=restart), restart services that are healthy too.
    type: bool
    default: false
  guard_window:
    description:
      - With O(command=restart) or O(command=recreate), skip a running service whose newest container was started
        (restart) or created (recreate) fewer than this many seconds ago, so repeated runs do not restart-loop it.
      - Applies even with O(force); V(0) disables the guard.
    type: int
    default: 300
  replicas:
    description: With O(command=scale), the number of containers each service should run.
    type: int
  wait_timeout:
    description:
      - After acting, seconds to wait for the services to run (and pass their healthcheck where they have one).
      - The module fails if they are not ready in time. V(0) does not wait.
    type: int
    default: 60
seealso:
  - module: synap.ops.compose_service_info
"""

EXAMPLES = r"""
- name: Restart the jobs worker unless it is healthy or was just restarted
  synap.ops.compose_service:
    project_dir: "{{ synap_compose_project_dir }}"
    project_name: "{{ synap_compose_project_name }}"
    command: restart
    services: ["{{ synap_service_jobs }}"]

- name: Scale the API horizontally
  synap.ops.compose_service:
    project_dir: "{{ synap_compose_project_dir }}"
    command: scale
    services: [api]
    replicas: 3

- name: Replace the API's containers
  synap.ops.compose_service:
    project_dir: "{{ synap_compose_project_dir }}"
    command: recreate
    services: [api]
"""

RETURN = r"""
msg:
  description: One-line summary of what was done (or would be, in check mode).
  returned: always
  type: str
  sample: "restarted jobs; skipped api (healthy; force=true restarts it anyway)"
actions:
  description: One entry per action taken (or planned in check mode), with C(description), C(action), C(service).
  returned: always
  type: list
  elements: dict
  sample: [{"action": "restart", "service": "jobs", "description": "restart jobs (1/1 running, started 812 s ago)"}]
skipped:
  description: Services left alone, each with the C(reason).
  returned: always
  type: list
  elements: dict
  sample: [{"service": "api", "reason": "healthy; force=true restarts it anyway"}]
services:
  description:
    - State per service after the command (before it, in check mode), as M(synap.ops.compose_service_info)
      returns it in RV(synap.ops.compose_service_info#module:services).
  returned: when the project could be read
  type: dict
commands:
  description: The C(docker compose) commands that changed something (the audit trail).
  returned: always
  type: list
  elements: str
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.synap.ops.plugins.module_utils.compose import (
    Compose,
    ComposeError,
    compose_argument_spec,
    describe_service,
)


def plan(params, state, now):
    """(actions, skipped) for an acting command, from the services' state before it."""
    actions, skipped = [], []
    command, guard = params["command"], params["guard_window"]
    for name in params["services"]:
        service = state.get(name)
        replicas = service["replicas"] if service else 0
        running = service["running"] if service else 0
        where = f"{running}/{replicas} running"
        if command == "restart":
            ago = service["last_started_seconds_ago"] if service else None
            if replicas == 0:
                skipped.append({"service": name, "reason": "no container; create it with command=recreate"})
            elif running and guard and ago is not None and ago < guard:
                skipped.append(
                    {"service": name, "reason": f"started {ago:.0f} s ago, within the {guard} s guard window"}
                )
            elif service["healthy"] and not params["force"]:
                skipped.append({"service": name, "reason": "healthy; force=true restarts it anyway"})
            else:
                since = f", started {ago:.0f} s ago" if running and ago is not None else ""
                actions.append(_action("restart", name, f"restart {name} ({where}{since})"))
        elif command == "recreate":
            created = service["last_created_at"] if service else None
            if running and guard and created is not None and now - created < guard:
                reason = f"created {now - created:.0f} s ago, within the {guard} s guard window"
                skipped.append({"service": name, "reason": reason})
            else:
                actions.append(_action("recreate", name, f"recreate {name} ({where})"))
        elif command == "scale":
            target = params["replicas"]
            if running == target and replicas == target:
                skipped.append({"service": name, "reason": f"already {target} running"})
            else:
                action = _action("scale", name, f"scale {name} from {running} to {target} running")
                action.update(replicas_before=running, replicas=target)
                actions.append(action)
        elif command == "stop":
            if running == 0:
                skipped.append({"service": name, "reason": f"already stopped ({where})"})
            else:
                actions.append(_action("stop", name, f"stop {name} ({where})"))
        elif command == "start":
            if replicas and running == replicas:
                skipped.append({"service": name, "reason": f"already running ({where})"})
            elif replicas == 0:
                actions.append(_action("create", name, f"create and start {name} (no container yet)"))
            else:
                actions.append(_action("start", name, f"start {name} ({where})"))
    return actions, skipped


def _action(action, service, description):
    return {"action": action, "service": service, "description": description}


def perform(compose, action):
    name = action["service"]
    if action["action"] == "restart":
        compose.run(["restart", name])
    elif action["action"] == "recreate":
        compose.recreate(name)
    elif action["action"] == "scale":
        compose.run(["up", "--detach", "--no-recreate", "--no-deps", "--scale", f"{name}={action['replicas']}", name])
    elif action["action"] == "stop":
        compose.run(["stop", name])
    elif action["action"] == "start":
        compose.run(["start", name])
    elif action["action"] == "create":
        compose.run(["up", "--detach", "--no-recreate", "--no-deps", name])


def main():
    argument_spec = compose_argument_spec()
    argument_spec.update(
        command=dict(type="str", required=True, choices=["restart", "scale", "stop", "start", "recreate"]),
        services=dict(type="list", elements="str", required=True),
        force=dict(type="bool", default=False),
        guard_window=dict(type="int", default=300),
        replicas=dict(type="int"),
        wait_timeout=dict(type="int", default=60),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        required_one_of=[("project_dir", "files", "project_name")],
        required_if=[("command", "scale", ("replicas",))],
    )
    params = module.params
    command = params["command"]
    if not params["services"]:
        module.fail_json(msg=f"command={command} needs services: name the services to {command} (for example [jobs])")
    for option in ("replicas", "guard_window", "wait_timeout"):
        if params[option] is not None and params[option] < 0:
            module.fail_json(msg=f"{option} must be 0 or more, got {params[option]}")

    compose = Compose.from_params(params, module.run_command)
    result = {"changed": False, "actions": [], "skipped": [], "commands": compose.commands}
    try:
        compose.check_paths()
        state = compose.services(params["services"])
        actions, skipped = plan(params, state, time.time())
        result.update(actions=actions, skipped=skipped)
        if module.check_mode or not actions:
            result["services"] = state
        else:
            for action in actions:
                perform(compose, action)
            result["changed"] = True
            touched = [a["service"] for a in actions]
            if command == "stop" or params["wait_timeout"] == 0:
                state = compose.services(params["services"])
                ready = True
            else:
                expected = {a["service"]: a["replicas"] for a in actions if a["action"] == "scale"}
                ready, state = compose.wait_ready(touched, params["wait_timeout"], expected)
                state = compose.services(params["services"])
            result["services"] = state
            if not ready:
                states = "; ".join(describe_service(n, state.get(n)) for n in touched)
                result["msg"] = f"{command} done but not ready after {params['wait_timeout']} s: {states}"
                module.fail_json(**result)
    except ComposeError as exc:
        result["msg"] = str(exc)
        module.fail_json(**result)

    done = "would " if module.check_mode else ""
    parts = []
    if actions:
        verb = {"create": "start"}.get(command, command)
        target = f" to {params['replicas']}" if command == "scale" else ""
        names = ", ".join(a["service"] for a in actions)
        parts.append(f"{done}{verb if module.check_mode else _past(verb)} {names}{target}")
    if skipped:
        parts.append("skipped " + ", ".join("{} ({})".format(s["service"], s["reason"]) for s in skipped))
    result["msg"] = "; ".join(parts)
    module.exit_json(**result)


def _past(verb):
    return {"stop": "stopped", "scale": "scaled", "recreate": "recreated"}.get(verb, verb + "ed")


if __name__ == "__main__":
    main()
