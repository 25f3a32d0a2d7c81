#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: api_integration
short_description: Switch Synap API integrations on or off
version_added: 0.1.0
description:
  - Enables or disables integrations of the Synap API through its admin endpoint - the runbook's
    "temporarily disable non-critical integrations" when an external service fails.
  - >-
    Reads the current state with C(GET /admin/integrations) first and sends
    C(POST /admin/integrations/{name}) with the JSON body C({"enabled": true}) or C({"enabled": false}) only for
    integrations not already in the wanted state, so a second run changes nothing.
  - Every name must be an integration the API knows; otherwise nothing is switched.
author:
  - Synap operations (@synap)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - synap.ops.attributes.action
attributes:
  check_mode:
    details: Returns in RV(actions) the integrations that would be switched, and switches none.
options:
  url:
    description: Base URL of the Synap API. Inventory variable C(synap_api_url).
    type: str
    default: http://localhost:3000
  names:
    description:
      - Integrations to switch (C(hub-protocol)). Inventory variable C(synap_noncritical_integrations).
    type: list
    elements: str
    required: true
  enabled:
    description: The wanted state - V(false) to disable the integrations, V(true) to enable them again.
    type: bool
    required: true
  timeout:
    description: Seconds to wait for each answer of the API.
    type: float
    default: 10
  validate_certs:
    description: Verify the API's TLS certificate when O(url) is C(https).
    type: bool
    default: true
"""

EXAMPLES = r"""
- name: Disable the non-critical integrations while Hub Protocol is down
  synap.ops.api_integration:
    url: "{{ synap_api_url }}"
    names: "{{ synap_noncritical_integrations }}"
    enabled: false

- name: Enable Hub Protocol again once it answers
  synap.ops.api_integration:
    url: "{{ synap_api_url }}"
    names: [hub-protocol]
    enabled: true
"""

RETURN = r"""
msg:
  description: One-line summary.
  returned: always
  type: str
  sample: "disabled integration hub-protocol"
actions:
  description: One entry per integration switched (in check mode, per integration that would be switched).
  returned: always
  type: list
  elements: dict
  contains:
    description:
      description: What was (or would be) done.
      type: str
      sample: disable integration hub-protocol
    name:
      description: The integration.
      type: str
      sample: hub-protocol
    enabled:
      description: Its new state.
      type: bool
      sample: false
integrations:
  description: State of every integration the API knows after the call (unchanged in check mode).
  returned: success
  type: dict
  sample: {"hub-protocol": false}
"""

from urllib.parse import quote

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.synap.ops.plugins.module_utils.http_api import (
    HttpFailure,
    hide_url_password,
    json_request,
    redact_url,
)


def read_integrations(answer, request):
    integrations = answer.get("integrations") if isinstance(answer, dict) else None
    if not isinstance(integrations, dict):
        raise HttpFailure(f"{request} answered without an 'integrations' object: is this the Synap API?")
    return integrations


def integrations_phrase(names):
    return "integration{} {}".format("s" if len(names) > 1 else "", ", ".join(names))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            url=dict(type="str", default="http://localhost:3000"),
            names=dict(type="list", elements="str", required=True),
            enabled=dict(type="bool", required=True),
            timeout=dict(type="float", default=10.0),
            validate_certs=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    params = module.params
    hide_url_password(module, params["url"])
    base_url = params["url"].rstrip("/")
    shown_url = redact_url(base_url)
    names = list(dict.fromkeys(params["names"]))  # keep the order given, drop repeats
    wanted = params["enabled"]
    verb = "enable" if wanted else "disable"
    if not names:
        module.fail_json(msg="names is empty: give the integrations to switch, e.g. names: [hub-protocol]")
    if params["timeout"] <= 0:
        module.fail_json(msg=f"timeout must be a positive number of seconds, got {params['timeout']:g}")

    def call(path, method="GET", body=None):
        return read_integrations(
            json_request(base_url + path, method, body, params["timeout"], params["validate_certs"]),
            f"{method} {shown_url}{path}",
        )

    try:
        integrations = call("/admin/integrations")
    except HttpFailure as exc:
        module.fail_json(msg=f"cannot read the integrations of the Synap API: {exc}")

    unknown = [name for name in names if name not in integrations]
    if unknown:
        known = ", ".join(sorted(integrations)) or "none"
        module.fail_json(msg="unknown integration(s) {} at {}; the API knows: {}".format(
            ", ".join(unknown), shown_url, known), integrations=integrations)

    actions = [{"description": f"{verb} integration {name}", "name": name, "enabled": wanted}
               for name in names if bool(integrations[name]) != wanted]
    # As Ansible's own modules do, check mode reports changed when it would change something.
    result = dict(changed=bool(actions), actions=actions, integrations=integrations)
    if module.check_mode or not actions:
        if not actions:
            result["msg"] = f"{integrations_phrase(names)} already {verb}d"
        else:
            result["msg"] = "would {}".format("; ".join(action["description"] for action in actions))
        module.exit_json(**result)

    for done, action in enumerate(actions):
        path = "/admin/integrations/" + quote(action["name"], safe="")
        try:
            integrations = call(path, "POST", {"enabled": wanted})
        except HttpFailure as exc:
            module.fail_json(msg=f"switched {done} of {len(actions)} integration(s), then failed to {verb} "
                                 f"{action['name']}: {exc}", changed=done > 0, actions=actions[:done])
        if bool(integrations.get(action["name"])) != wanted:
            module.fail_json(msg=f"the Synap API accepted the request to {verb} {action['name']} but still reports "
                                 f"enabled={integrations.get(action['name'])}", changed=done > 0,
                             actions=actions[:done], integrations=integrations)

    module.exit_json(changed=True, actions=actions, integrations=integrations,
                     msg="{}d {}".format(verb, integrations_phrase([action["name"] for action in actions])))


if __name__ == "__main__":
    main()
