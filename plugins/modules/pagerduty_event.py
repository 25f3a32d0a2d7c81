#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: pagerduty_event
short_description: Trigger, acknowledge or resolve a PagerDuty incident (Events API v2)
version_added: 0.1.0
description:
  - Sends one event to the PagerDuty Events API v2 (C(POST /v2/enqueue)) - the runbook's "check PagerDuty" for
    the on-call engineer, kept in step with the incident.
  - A V(trigger) carries a payload (O(summary), O(source), O(severity) and the optional fields); an V(acknowledge)
    or a V(resolve) carries only the routing key, the action and O(dedup_key), and the payload options are ignored.
  - O(dedup_key) ties the events of one incident together; use the incident id, so the trigger, the acknowledge
    and the resolve of a run all speak of the same PagerDuty incident, and a trigger sent again is deduplicated.
  - PagerDuty's answers, as documented - 202 with the C(dedup_key) it took; 400 for an invalid event, not
    retried, its C(errors) reported; 429 (rate limited) and 5xx, retried with exponential backoff that honours a
    C(Retry-After) header. A connection refused or broken off is retried too; a timeout is not.
  - The routing key is a secret - it is never returned, and it is masked wherever Ansible would show it.
author:
  - Synap operations (@synap)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - synap.ops.attributes.action
attributes:
  check_mode:
    details: Returns in RV(event) and RV(actions) the event that would be sent, and sends nothing.
options:
  routing_key:
    description:
      - The integration key of the PagerDuty service's Events API v2 integration (32 characters).
    type: str
    required: true
  event_action:
    description: What the event does to the PagerDuty incident.
    type: str
    required: true
    choices: [trigger, acknowledge, resolve]
  dedup_key:
    description:
      - The key of the incident (at most 255 characters); the incident id. An acknowledge or a resolve must use
        the key of its trigger.
    type: str
    required: true
  summary:
    description:
      - The incident's one-line title in PagerDuty. Required for a V(trigger).
      - Cut to 1024 characters, PagerDuty's limit.
    type: str
  source:
    description: Where the problem is (a host name or the service). Required for a V(trigger).
    type: str
  severity:
    description:
      - PagerDuty's severity. Required for a V(trigger).
      - The notify role maps the incident's P0, P1, P2, P3 to V(critical), V(error), V(warning), V(info).
    type: str
    choices: [critical, error, warning, info]
  timestamp:
    description: When the problem was detected, ISO 8601 (the incident's start).
    type: str
  component:
    description: The part of the source that is responsible (for example C(postgres)).
    type: str
  group:
    description: The logical group of components (for example C(synap)).
    type: str
  event_class:
    description: The class or type of the event, sent as the payload's C(class) (for example the scenario's name).
    type: str
  custom_details:
    description:
      - Anything more, shown in PagerDuty with the incident (the findings).
      - A list under its C(findings) key is sent one line a finding (a string as it is, a mapping as its C(host),
        C(look_up) or C(source), and C(summary)), each cut to 300 characters, at most 50 lines, so that a trigger
        stays far below PagerDuty's 512 KB limit whatever a diagnosis found.
    type: dict
  links:
    description: Links shown with the incident, each with C(href) and optionally C(text).
    type: list
    elements: dict
  url:
    description: The Events API v2 endpoint.
    type: str
    default: https://events.pagerduty.com/v2/enqueue
  timeout:
    description: Seconds to wait for each answer.
    type: float
    default: 10
  validate_certs:
    description: Verify the endpoint's TLS certificate.
    type: bool
    default: true
  max_attempts:
    description: Attempts in all, the first included, while PagerDuty answers 429 or 5xx or the connection fails.
    type: int
    default: 3
  retry_delay:
    description: Seconds before the first retry; each further retry waits twice as long as the one before.
    type: float
    default: 1
  max_retry_delay:
    description:
      - The longest wait between two attempts, in seconds.
      - An answer whose C(Retry-After) asks for more ends the retries there.
    type: float
    default: 30
notes:
  - The module fails when the event was not delivered. The notify role runs it with C(failed_when=false), so a
    PagerDuty that is down or refuses the event never stops a mitigation; the incident record keeps the failure.
seealso:
  - name: PagerDuty Events API v2
    description: The request and answer shapes this module speaks.
    link: https://developer.pagerduty.com/docs/events-api-v2-overview
"""

EXAMPLES = r"""
- name: Page the on-call engineer for the incident
  synap.ops.pagerduty_event:
    routing_key: "{{ pagerduty_routing_key }}"
    event_action: trigger
    dedup_key: "{{ incident_id }}"
    summary: "[P0] database-connection-failure (incident {{ incident_id }})"
    source: db.internal
    severity: critical
    timestamp: "{{ incident_started_at }}"
    component: postgres
    group: synap
    event_class: database-connection-failure
    custom_details:
      findings: ["PostgreSQL refuses connections: too many clients"]
  delegate_to: localhost

- name: Say that someone is working on it
  synap.ops.pagerduty_event:
    routing_key: "{{ pagerduty_routing_key }}"
    event_action: acknowledge
    dedup_key: "{{ incident_id }}"
  delegate_to: localhost

- name: Close it once the verification passed
  synap.ops.pagerduty_event:
    routing_key: "{{ pagerduty_routing_key }}"
    event_action: resolve
    dedup_key: "{{ incident_id }}"
  delegate_to: localhost
"""

RETURN = r"""
msg:
  description: One-line summary; on failure, why the event was not delivered.
  returned: always
  type: str
  sample: "trigger delivered to PagerDuty: Event processed (dedup_key 20261129T031500Z-db-abc123, 1 attempt)"
status:
  description: The HTTP status of PagerDuty's last answer (V(202) when delivered); null when nothing answered or in
    check mode.
  returned: always
  type: int
  sample: 202
dedup_key:
  description: The dedup key PagerDuty took (the one sent, unless PagerDuty answered another).
  returned: always
  type: str
  sample: 20261129T031500Z-database-connection-failure-abc123
attempts:
  description: Requests made (V(0) in check mode).
  returned: always
  type: int
  sample: 1
statuses:
  description: The HTTP status of each attempt, null for one that got no answer.
  returned: always
  type: list
  elements: int
  sample: [429, 202]
message:
  description: PagerDuty's C(message) in its last answer.
  returned: always
  type: str
  sample: Event processed
errors:
  description: PagerDuty's C(errors) when it rejected the event (400); empty otherwise.
  returned: always
  type: list
  elements: str
  sample: ["'payload.severity' is invalid (must be one of the following: 'critical', 'warning', 'error' or 'info')"]
event:
  description: The event sent (in check mode, that would be sent), the routing key masked.
  returned: always
  type: dict
  sample: {"routing_key": "********", "event_action": "resolve", "dedup_key": "20261129T031500Z-db-abc123"}
actions:
  description: The event sent (in check mode, that would be sent), as one line; empty when nothing was delivered.
  returned: always
  type: list
  elements: dict
  sample: [{"description": "PagerDuty resolve of 20261129T031500Z-db-abc123"}]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.synap.ops.plugins.module_utils.pagerduty import (
    ACTIONS,
    DEFAULT_URL,
    SEVERITIES,
    EventError,
    build_event,
    send_event,
)
from ansible_collections.synap.ops.plugins.module_utils.redact import MASK


def plural(count, word):
    return f"{count} {word}" + ("" if count == 1 else "s")


def main():
    module = AnsibleModule(
        argument_spec=dict(
            routing_key=dict(type="str", required=True, no_log=True),
            event_action=dict(type="str", required=True, choices=list(ACTIONS)),
            dedup_key=dict(type="str", required=True, no_log=False),
            summary=dict(type="str"),
            source=dict(type="str"),
            severity=dict(type="str", choices=list(SEVERITIES)),
            timestamp=dict(type="str"),
            component=dict(type="str"),
            group=dict(type="str"),
            event_class=dict(type="str"),
            custom_details=dict(type="dict"),
            links=dict(type="list", elements="dict"),
            url=dict(type="str", default=DEFAULT_URL),
            timeout=dict(type="float", default=10.0),
            validate_certs=dict(type="bool", default=True),
            max_attempts=dict(type="int", default=3),
            retry_delay=dict(type="float", default=1.0),
            max_retry_delay=dict(type="float", default=30.0),
        ),
        required_if=[("event_action", "trigger", ("summary", "source", "severity"))],
        supports_check_mode=True,
    )
    params = module.params
    for name in ("timeout", "retry_delay", "max_retry_delay"):
        if params[name] < 0 or (name == "timeout" and params[name] == 0):
            module.fail_json(msg=f"{name} must be a positive number of seconds, got {params[name]:g}")
    if params["max_attempts"] < 1:
        module.fail_json(msg=f"max_attempts must be 1 or more, got {params['max_attempts']}")
    action, dedup_key = params["event_action"], params["dedup_key"]
    try:
        event = build_event(params["routing_key"], action, dedup_key, summary=params["summary"],
                            source=params["source"], severity=params["severity"], timestamp=params["timestamp"],
                            component=params["component"], group=params["group"], event_class=params["event_class"],
                            custom_details=params["custom_details"], links=params["links"])
    except EventError as exc:
        module.fail_json(msg=str(exc))
    shown_event = dict(event, routing_key=MASK)
    plan = [{"description": f"PagerDuty {action} of {dedup_key}"}]
    result = dict(changed=False, status=None, dedup_key=dedup_key, attempts=0, statuses=[], message=None, errors=[],
                  event=shown_event, actions=[])

    if module.check_mode:
        result.update(changed=True, actions=plan,
                      msg=f"check mode: would send a PagerDuty {action} of {dedup_key}; nothing sent")
        module.exit_json(**result)

    delivery = send_event(event, url=params["url"], timeout=params["timeout"], validate_certs=params["validate_certs"],
                          max_attempts=params["max_attempts"], retry_delay=params["retry_delay"],
                          max_retry_delay=params["max_retry_delay"])
    result.update(status=delivery.status, dedup_key=delivery.dedup_key, attempts=delivery.attempts,
                  statuses=delivery.statuses, message=delivery.message, errors=delivery.errors)
    if not delivery.delivered:
        module.fail_json(msg=f"PagerDuty {action} of {dedup_key} not delivered: {delivery.detail}", **result)
    result.update(changed=True, actions=plan,
                  msg=f"{action} delivered to PagerDuty: {delivery.message or 'accepted'} "
                      f"(dedup_key {delivery.dedup_key}, {plural(delivery.attempts, 'attempt')})")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
