# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    """Support of the common attributes; extend with ``ansible.builtin.action_common_attributes`` for their
    descriptions. A module refines ``details`` in its own ``attributes`` block where it has more to say."""

    # Modules that only read (the *_info modules), and the result frame they share, so a playbook can tell
    # "could not read" from "read, and fine".
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
notes:
  - "Every field of the result is always present. A figure that was not measured is null, never V(0), V(false)
    or an empty list standing in for it: an empty list or a V(0) means measured, and none."
  - "RV(reachable) is true only when the source answered and its answer was understood, RV(failure) then being
    null. Otherwise RV(failure) is one of V(refused), V(timeout), V(dns), V(tls), V(auth_failed),
    V(database_missing), V(too_many_clients), V(http_error) (an HTTP answer other than 2xx), V(not_understood)
    (an answer of the wrong shape, such as an HTML page where JSON or Prometheus text was expected),
    V(query_failed) (connected, but a query or command failed), V(not_found) or V(error), and RV(failures)
    names each part that could not be read."
  - A source that cannot be read never fails the task, so a diagnosis always completes; bad arguments do.
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
