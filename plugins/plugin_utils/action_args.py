# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every synap.ops action plugin checks first: a misspelt option is refused, naming the ones it takes,
rather than ignored (an action plugin has no argument spec to do it)."""

from __future__ import annotations

from ansible.errors import AnsibleActionFail


def refuse_unknown(args, allowed):
    """Raise AnsibleActionFail when ``args`` has an option not in ``allowed``."""
    unknown = set(args) - set(allowed)
    if unknown:
        raise AnsibleActionFail(f"unsupported option(s) {', '.join(sorted(unknown))}; use {', '.join(sorted(allowed))}")
