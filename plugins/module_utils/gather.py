# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every diagnostic (``*_info``) module shares: its work is a plain function of its parameters.

An info module defines ``argument_spec()``, ``SPEC_OPTIONS`` (the AnsibleModule keywords beyond the spec, such
as ``required_one_of``) and ``gather(params, run_command)``, which returns the result or raises ``GatherFailed``. Its
``main()`` only builds the AnsibleModule and calls ``run_gather``. The same ``gather`` then serves callers that
are not a module run: synap-play's first look calls it in threads, with parameters checked against the
module's own ``argument_spec()``.
"""

from __future__ import annotations


class GatherFailed(Exception):
    """The module's answer is a failure: ``msg`` plus the result keys that go with it."""

    def __init__(self, msg, **details):
        super().__init__(msg)
        self.msg = msg
        self.details = details


def run_gather(module, gather):
    """Exit the module with ``gather(module.params, module.run_command)``, or fail it with the GatherFailed it raised."""
    try:
        result = gather(module.params, module.run_command)
    except GatherFailed as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    module.exit_json(**result)
