# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """Support of the common attributes; extend with ``ansible.builtin.action_common_attributes`` for their
    descriptions. A module refines ``details`` in its own ``attributes`` block where it has more to say."""

    # Modules that only read (the *_info modules).
    INFO = r"""
attributes:
  check_mode:
    support: full
    details: Read-only; behaves the same in check mode.
  diff_mode:
    support: none
    details: Nothing changes, so there is nothing to diff.
  platform:
    platforms: posix
"""

    # Modules that act and return what they did, or in check mode would do, in RV(actions).
    ACTION = r"""
attributes:
  check_mode:
    support: full
    details: Returns the plan in RV(actions) and changes nothing.
  diff_mode:
    support: none
    details: The plan in RV(actions) is the diff.
  platform:
    platforms: posix
"""

    # Actions that run other modules (mitigate, diagnose); each adds its own check_mode details.
    WRAPPER = r"""
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
    details: Not supported.
  platform:
    platforms: all
    details: Runs wherever the modules behind it run.
"""
