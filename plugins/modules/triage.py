# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# The work is done by the action plugin of the same name; this file carries its documentation.

DOCUMENTATION = r"""
module: triage
short_description: Name the runbook scenarios a diagnosis matches, with their evidence and severity
description:
  - Applies the triage rules (a YAML file, by default the collection's C(playbooks/triage-rules.yml)) to the
    look-ups of a C(synap.ops.diagnose) task, on the controller.
  - Each rule's condition is a Jinja expression over the look-ups by name and the host's variables. A condition
    that cannot be evaluated (a figure not read is null), or that does not hold while a source it reads was not
    read, is unknown; unknown never counts as clear. The verdict is healthy only when every condition is clear.
  - Matched scenarios are ranked by the weights of their rules, then by severity, then by the catalog's order.
version_added: 0.1.0
author: Synap operations (@synap-ops)
options:
  sources:
    description: The look-ups' results by name, as C(synap.ops.diagnose) returns them in C(sources).
    type: dict
    required: true
  rules:
    description: The triage rules file.
    type: path
    required: true
  catalog:
    description: The scenario catalog; every scenario the rules name must be in it, and its order breaks ties.
    type: path
  inventory:
    description: The inventory's name, for the commands the verdict suggests.
    type: str
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - synap.ops.attributes.wrapper
attributes:
  check_mode:
    support: full
    details: It only reads.
"""

EXAMPLES = r"""
- name: Investigate | Which scenario the findings match
  synap.ops.triage:
    sources: "{{ found.sources }}"
    rules: "{{ playbook_dir }}/triage-rules.yml"
    catalog: "{{ playbook_dir }}/scenarios.yml"
    inventory: staging
  register: verdict
"""

RETURN = r"""
verdict:
  description:
    - C(matched), the scenarios ranked, each with C(scenario), C(weight), C(severity), C(severity_meaning),
      C(severity_because) and C(evidence); C(unknown), the rules that could not be judged and why; C(unread), the
      look-ups not (wholly) read; C(healthy); C(commands), the command to run next for each match.
  returned: always
  type: dict
checks:
  description: Per scenario of the catalog, the check C(nothing points to <scenario>), for the Resolve step.
  returned: always
  type: list
  elements: dict
msg:
  description: The verdict in one line.
  returned: always
  type: str
"""
