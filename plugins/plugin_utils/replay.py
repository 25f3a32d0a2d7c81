# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""synap-play replay: a scenario's decisions re-run from a recording of its look-ups, touching no target.

The variable holds ``{sources: {look-up name: the module's result}, after: {...}}``; the diagnose action answers
from it and the mitigate action plans from its arguments instead of asking the target. Both refuse to run
outside check mode while it is set.
"""

from __future__ import annotations

REPLAY_VAR = "incident_replay"
