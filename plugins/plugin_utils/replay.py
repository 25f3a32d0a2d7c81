# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""synap-play replay: a scenario's decisions re-run from a recording of its look-ups, touching no target.

The host variable RunVar.REPLAY holds ``{sources: {look-up name: the module's result}, after: {...}}``; the
diagnose action answers from it and the mitigate action plans from its arguments instead of asking the target.
Both refuse to run outside check mode while it is set.
"""

from __future__ import annotations

from ansible.errors import AnsibleActionFail
from ansible_collections.synap.ops.plugins.plugin_utils.protocol import RunVar


def recording(task, task_vars):
    """The recording this task replays, or None outside a replay; a replay outside check mode is refused."""
    replay = task_vars.get(RunVar.REPLAY.value)
    if not replay:
        return None
    if not task.check_mode:
        raise AnsibleActionFail(f"{RunVar.REPLAY.value} is set: a replayed diagnosis runs in check mode only")
    return replay
