# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Running another module from inside an action plugin, as if it were a task of its own.

The mitigate and diagnose actions name the module they run in their arguments; the play's module_defaults
(the DSN, the Inngest URL and key, the compose project) must reach that module as they would reach a task.
"""

from __future__ import annotations

try:  # how ansible's own package/service actions give the module they pick its module_defaults
    from ansible.executor.module_common import _apply_action_arg_defaults
except ImportError:  # another ansible-core line: the module gets only the task's arguments
    _apply_action_arg_defaults = None


def resolve_module(action, module_name):
    """The module's fully qualified name, or None when no such module is installed."""
    context = action._shared_loader_obj.module_loader.find_plugin_with_context(
        module_name, collection_list=action._task.collections)
    return context.resolved_fqcn if context.resolved else None


def with_module_defaults(action, module_name, module_args):
    """``module_args`` completed by the play's module_defaults for ``module_name``."""
    fqcn = resolve_module(action, module_name)
    if _apply_action_arg_defaults is None or fqcn is None:
        return dict(module_args)
    return dict(_apply_action_arg_defaults(fqcn, action._task, dict(module_args), action._templar))
