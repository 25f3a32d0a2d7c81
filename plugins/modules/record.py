# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# The work is done by the action plugin of the same name; this file carries its documentation.

DOCUMENTATION = r"""
module: record
short_description: Record an incident phase, a note or the verification result
description:
  - Marks a phase of the runbook's process (Acknowledge, Assess, Communicate, Mitigate, Investigate, Resolve,
    Document), adds a note or structured data to the incident record, or records the verification that
    ends every scenario.
  - Runs on the controller only and never changes anything; synap-play picks the result up from the
    event stream and writes it to C(incidents/<id>/incident.json).
version_added: 0.1.0
author: Synap operations (@synap-ops)
options:
  phase:
    description: The runbook phase this marks.
    type: str
    choices: [acknowledge, assess, communicate, mitigate, investigate, resolve, document]
  note:
    description: A line for the timeline, for example why a mitigation branch was or was not taken.
    type: str
  data:
    description: Structured data to keep with the note.
    type: dict
  verify:
    description:
      - Verification checks. The incident is resolved when every check is ok.
      - Each item has C(name) and C(ok), and may have C(known), C(observed), C(threshold) and C(unknown_because).
      - C(known) (default true) says whether the check's source was read. A check that is not known is
        B(unknown), whatever C(ok) says, and an unknown check never passes; C(unknown_because) says why it
        could not be measured (the source's own message).
    type: list
    elements: dict
attributes:
  check_mode:
    support: full
    description: Records the same in check mode.
  diff_mode:
    support: none
    description: Nothing to diff.
  platform:
    support: full
    platforms: all
    description: Runs on the controller.
"""

EXAMPLES = r"""
- name: Mitigate | Explain why the rollback branch is skipped
  synap.ops.record:
    phase: mitigate
    note: "HEAD is older than the recent-deploy threshold: no rollback"

- name: Resolve | Verify the error rate
  synap.ops.record:
    phase: resolve
    verify:
      - name: error rate below 1 %
        known: "{{ metrics.reachable and metrics.error_rate is not none }}"
        ok: "{{ metrics.error_rate is not none and metrics.error_rate < 0.01 }}"
        observed: "{{ metrics.error_rate }}"
        threshold: 0.01
        unknown_because: "{{ metrics.msg }}"
"""

RETURN = r"""
record:
  description: What was recorded.
  returned: always
  type: dict
  contains:
    phase:
      description: The phase, if one was given.
      type: str
    note:
      description: The note, if one was given.
      type: str
    data:
      description: The structured data.
      type: dict
    verification:
      description:
        - With O(verify), C(resolved) (every check ok), C(state) (V(resolved), V(unresolved) when a check failed,
          V(unverified) when none failed but one or more are unknown) and the checks, each with its C(state)
          (V(ok), V(failed) or V(unknown)).
      type: dict
      returned: when verify is given
msg:
  description: One line for the operator.
  returned: always
  type: str
"""
