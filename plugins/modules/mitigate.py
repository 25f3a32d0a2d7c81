# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# The work is done by the action plugin of the same name; this file carries its documentation.

DOCUMENTATION = r"""
module: mitigate
short_description: Run a mitigation through the severity gate
description:
  - Every mitigation of every synap.ops scenario goes through this gate, which decides from the incident's
    severity and the severity policy (C(incident_severity_policy), defined by the M(synap.ops.incident) role's
    defaults) whether the module behind it runs.
  - Classes are C(diagnose) (always runs), C(safe), C(disruptive) and C(destructive).
  - When the policy asks, the module is first run in check mode and its plan (its C(actions)) is put to the
    operator through synap-play on a terminal; with no terminal the mitigation is recorded as needing approval
    and is not run. C(incident_approve) (synap-play C(--yes)) approves every class.
  - In check mode only the plan is produced.
version_added: 0.1.0
author: Synap operations (@synap-ops)
options:
  class:
    description: How much harm the mitigation can do; the severity policy decides on this.
    type: str
    required: true
    choices: [diagnose, safe, disruptive, destructive]
  module:
    description: The module that carries out the mitigation, by its fully qualified name.
    type: str
    required: true
  args:
    description: The arguments of O(module).
    type: dict
    default: {}
  why:
    description: Why the mitigation runs, as diagnosis found it; kept in the record.
    type: str
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - synap.ops.attributes.wrapper
attributes:
  check_mode:
    support: full
    details: Returns the plan of the module behind it and changes nothing.
notes:
  - The module behind the gate must support check mode and return C(actions), its list of what it did or would do.
"""

EXAMPLES = r"""
- name: Mitigate | Restart the jobs service
  synap.ops.mitigate:
    class: disruptive
    why: "{{ stuck_runs | length }} runs stuck for longer than the threshold"
    module: synap.ops.compose_service
    args:
      command: restart
      services: ["{{ synap_service_jobs }}"]
      force: true
"""

RETURN = r"""
gate:
  description: The gate's decision.
  returned: always
  type: dict
  contains:
    class:
      description: The class of the mitigation.
      type: str
    severity:
      description: The incident severity the decision was made for.
      type: str
    decision:
      description:
        - C(run) it ran; C(noop) there was nothing to do; C(planned) check mode, only the plan was made;
          C(needs_approval) not run, the policy needs an approval nobody gave; C(declined) the operator said no.
      type: str
    reason:
      description: Why the gate decided so.
      type: str
    module:
      description: The module behind the gate.
      type: str
    why:
      description: Why the mitigation was wanted.
      type: str
actions:
  description: What the module did, or in every other decision would do (its plan).
  returned: always
  type: list
  elements: dict
result:
  description: The module's own result.
  returned: always
  type: dict
msg:
  description: One line for the operator.
  returned: always
  type: str
"""
