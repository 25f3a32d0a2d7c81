# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running another module from inside an action plugin, as if it were a task of its own.

The mitigate and diagnose actions name the module they run in their arguments; the play's module_defaults
(the DSN, the Inngest URL and key, the compose project) must reach that module as they would reach a task.

ansible-core offers no public way to do that, so synap.ops uses a few of its private internals, each fetched with
internal(): on an ansible-core without one, the plugin fails to load with one line naming the internal and the
ansible-core versions synap.ops supports, rather than dropping module_defaults (or running look-ups one after the
other) without a word. tests/collection/test_ansible_internals.py checks each one behaves as relied upon.
"""

from __future__ import annotations

import inspect

from ansible.errors import AnsibleError
from ansible.executor import module_common
from ansible.release import __version__ as ANSIBLE_CORE_VERSION

# The ansible-core versions synap.ops is tested with: meta/runtime.yml's requires_ansible, pyproject's pin.
SUPPORTED_ANSIBLE_CORE = ">=2.19,<2.20"


class UnsupportedAnsibleCore(AnsibleError):
    """An ansible-core internal synap.ops relies on is missing or has changed shape."""


def internal(owner, name, parameters=()):
    """``owner.name``, an ansible-core internal synap.ops relies on, whose leading ``parameters`` are checked.

    Raises UnsupportedAnsibleCore (Ansible shows it as one line and stops) when this ansible-core has none, or
    one taking other parameters.
    """
    where = f"{owner.__module__}.{owner.__qualname__}" if inspect.isclass(owner) else owner.__name__
    found = getattr(owner, name, None)
    problem = None if callable(found) else "has none"
    if problem is None and parameters:
        given = [p for p in inspect.signature(found).parameters if p != "self"][:len(parameters)]
        if tuple(given) != tuple(parameters):
            problem = f"has one taking ({', '.join(given)}), not ({', '.join(parameters)})"
    if problem:
        raise UnsupportedAnsibleCore(
            f"synap.ops relies on ansible-core's private {where}.{name}, and ansible-core {ANSIBLE_CORE_VERSION} "
            f"{problem}: use ansible-core {SUPPORTED_ANSIBLE_CORE}")
    return found


# How ansible's own package, service and gather_facts actions give the module they pick its module_defaults.
_apply_action_arg_defaults = internal(module_common, "_apply_action_arg_defaults",
                                      ("action", "task", "action_args", "templar"))


def resolve_module(action, module_name):
    """The module's fully qualified name, or None when no such module is installed."""
    context = action._shared_loader_obj.module_loader.find_plugin_with_context(
        module_name, collection_list=action._task.collections)
    return context.resolved_fqcn if context.resolved else None


def with_module_defaults(action, module_name, module_args):
    """``module_args`` completed by the play's module_defaults for ``module_name``, templated as a task's are."""
    fqcn = resolve_module(action, module_name)
    if fqcn is None:
        return dict(module_args)
    args = _apply_action_arg_defaults(fqcn, action._task, dict(module_args), action._templar)
    # ansible-core 2.19.0 to 2.19.5 hand the defaults back untemplated (ansible/ansible#86383, fixed in 2.19.6): a
    # DSN given as "{{ synap_database_url }}" would reach the module as that text. What is already rendered is
    # no template any more, so templating it again changes nothing.
    defaults = {key: value for key, value in args.items() if key not in module_args}
    return {**args, **action._templar.template(defaults)}
