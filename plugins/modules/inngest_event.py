#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: inngest_event
short_description: Send Inngest events, or replay received events as new ones
version_added: 0.1.0
description:
  - Sends events with C(POST /e/{event key}), and replays events the server received - the runbook's
    "use Inngest UI to replay events".
  - The event id is Inngest's idempotency key, so sending an event again with the same id is silently
    dropped. A replay therefore gets a new id, derived from the original as C(<id>-<replay_suffix>), which
    keeps the module idempotent - a second run finds the replay already received and sends nothing - while a
    new O(replay_suffix) (for example the incident id) replays again.
  - An event in O(events) that has an C(id) is sent only if the server has not received that id within
    O(window) seconds. An event without an C(id) is sent on every run.
author:
  - Synap operations (@synap)
extends_documentation_fragment:
  - synap.ops.inngest
  - synap.ops.inngest.event_key
  - ansible.builtin.action_common_attributes
  - synap.ops.attributes.action
attributes:
  check_mode:
    details: Returns in RV(actions) the exact events that would be sent, and sends none.
options:
  events:
    description:
      - Events to send, each with C(name) and optionally C(data), C(user), C(id) and C(ts) (milliseconds).
    type: list
    elements: dict
    default: []
  replay_ids:
    description: Ids of received events to send again as new events (same name, data and user; new id).
    type: list
    elements: str
    default: []
  replay_suffix:
    description:
      - Appended to an original event id to make the replay's id.
      - Use the incident id to replay once per incident.
    type: str
    default: replay
  window:
    description: How far back, in seconds, received events are searched for O(replay_ids) and for ids already sent.
    type: int
    default: 86400
  max_events:
    description: Most received events read while searching.
    type: int
    default: 5000
"""

EXAMPLES = r"""
- name: Show which events would be replayed
  synap.ops.inngest_event:
    url: "{{ synap_inngest_url }}"
    signing_key: "{{ synap_inngest_signing_key | default(omit) }}"
    event_key: "{{ synap_inngest_event_key }}"
    replay_ids: "{{ failed_event_ids }}"
    replay_suffix: "{{ incident_id }}"
  check_mode: true

- name: Replay the events of the failed runs, once per incident
  synap.ops.inngest_event:
    url: "{{ synap_inngest_url }}"
    signing_key: "{{ synap_inngest_signing_key | default(omit) }}"
    event_key: "{{ synap_inngest_event_key }}"
    replay_ids: "{{ failed_event_ids }}"
    replay_suffix: "{{ incident_id }}"

- name: Send one event, idempotently thanks to its id
  synap.ops.inngest_event:
    url: "{{ synap_inngest_url }}"
    event_key: "{{ synap_inngest_event_key }}"
    events:
      - name: entities.create.requested
        id: "{{ incident_id }}-probe"
        data: {workspaceId: probe, source: synap-play}
"""

RETURN = r"""
msg:
  description: One-line summary.
  returned: always
  type: str
  sample: "sent 2 event(s) (2 replays); 1 already received"
actions:
  description: One entry per event sent (in check mode, per event that would be sent).
  returned: always
  type: list
  elements: dict
  sample: [{"description": "replay event 01HX... (entities.create.requested) as 01HX...-INC-42",
            "name": "entities.create.requested", "id": "01HX...-INC-42", "replay_of": "01HX..."}]
sent_ids:
  description: Ids the server assigned to the events sent (empty in check mode).
  returned: always
  type: list
  elements: str
already_sent:
  description: Ids that the server had already received, so were not sent again.
  returned: always
  type: list
  elements: str
"""

from datetime import timedelta

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.synap.ops.plugins.module_utils.inngest import (
    InngestClient,
    InngestError,
    inngest_argument_spec,
    utc_now,
)

EVENT_FIELDS = ("name", "data", "user", "id", "ts")


def check_events(module, events):
    """One actionable line for the first malformed event."""
    for position, event in enumerate(events, 1):
        unknown = sorted(set(event) - set(EVENT_FIELDS))
        if unknown:
            module.fail_json(msg=f"event {position} has unknown field(s) {', '.join(unknown)}: "
                             f"use only {', '.join(EVENT_FIELDS)}")
        if not isinstance(event.get("name"), str) or not event["name"]:
            module.fail_json(msg=f"event {position} has no name: every event needs a name such as "
                             "entities.create.requested")
        for field in ("data", "user"):
            if event.get(field) is not None and not isinstance(event[field], dict):
                module.fail_json(msg=f"event {position} ({event['name']}): {field} must be a mapping")
        if event.get("id") is not None and not isinstance(event["id"], str):
            module.fail_json(msg=f"event {position} ({event['name']}): id must be a string")


def received_ids(client, params, names):
    """Ids of events received within the window: every name if ``names`` is None, else those names only."""
    start = utc_now() - timedelta(seconds=params["window"])
    received = {}
    for name in [None] if names is None else sorted(names):
        events, _truncated = client.events(start, name=name, max_events=params["max_events"])
        received.update((event.get("id"), event) for event in events)
    return received


def main():
    argument_spec = inngest_argument_spec(event_key=True)
    argument_spec.update(
        events=dict(type="list", elements="dict", default=[]),
        replay_ids=dict(type="list", elements="str", default=[]),
        replay_suffix=dict(type="str", default="replay"),
        window=dict(type="int", default=86400),
        max_events=dict(type="int", default=5000),
    )
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    if not params["events"] and not params["replay_ids"]:
        module.fail_json(msg="nothing to send: give events, or replay_ids of received events to replay")
    if not params["replay_suffix"]:
        module.fail_json(msg="replay_suffix must not be empty: a replay needs an id of its own")
    for name in ("window", "max_events"):
        if params[name] < 1:
            module.fail_json(msg=f"{name} must be a positive number, got {params[name]}")
    check_events(module, params["events"])

    client = InngestClient(params)
    result = dict(changed=False, actions=[], sent_ids=[], already_sent=[])
    outgoing = []  # (event to send, action)
    try:
        if params["replay_ids"]:
            received = received_ids(client, params, None)
        else:
            received = received_ids(client, params, {e["name"] for e in params["events"] if e.get("id")})
    except InngestError as exc:
        module.fail_json(msg=f"could not read received events: {exc}", **result)

    missing = [event_id for event_id in params["replay_ids"] if event_id not in received]
    if missing:
        module.fail_json(msg=f"event(s) {', '.join(missing)} not received in the last {params['window']} s: "
                         "check the ids or raise window", **result)
    for event_id in params["replay_ids"]:
        original = received[event_id]
        replay = {"name": original["name"], "data": original.get("data") or {},
                  "id": f"{event_id}-{params['replay_suffix']}"}
        if original.get("user"):
            replay["user"] = original["user"]
        description = f"replay event {event_id} ({replay['name']}) as {replay['id']}"
        outgoing.append((replay, {"description": description, "name": replay["name"], "id": replay["id"],
                                  "replay_of": event_id}))
    for event in params["events"]:
        event = {key: value for key, value in event.items() if value is not None}
        label = f" as {event['id']}" if event.get("id") else ""
        outgoing.append((event, {"description": f"send event {event['name']}{label}",
                                 "name": event["name"], "id": event.get("id"), "replay_of": None}))

    to_send = []
    for event, action in outgoing:
        if event.get("id") and event["id"] in received:
            result["already_sent"].append(event["id"])
        else:
            to_send.append(event)
            result["actions"].append(action)

    if to_send and not module.check_mode:
        try:
            result["sent_ids"] = client.send_events(to_send)
        except InngestError as exc:
            module.fail_json(msg=f"could not send {len(to_send)} event(s): {exc}", **result)
        result["changed"] = True

    replays = sum(1 for action in result["actions"] if action["replay_of"])
    verb = "would send" if module.check_mode else "sent"
    text = f"{verb} {len(to_send)} event(s)" + (f" ({replays} replays)" if replays else "") if to_send \
        else "no events to send"
    if result["already_sent"]:
        text += f"; {len(result['already_sent'])} already received"
    result["msg"] = text
    module.exit_json(**result)


if __name__ == "__main__":
    main()
