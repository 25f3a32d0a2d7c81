# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Jinja's compiled code for a template or condition, kept for the process instead of compiled afresh every time.

ansible-core compiles each template and condition whenever it templates one: in a fleet the same few hundred strings,
once per host and task. That was a quarter of a worker's time and an eighth of the controller's at 50 hosts. Jinja's
code for a source depends only on the source and the environment's compile settings, so it is kept under exactly
those, for this process and the workers it forks after (synap.ops.linear installs it on the controller; the
templates a task's worker compiles leave with the worker). Rendering is untouched: each use builds its template
from the code with the environment at hand. Installed once; a debugging environment (which keeps the generated
source beside each template) and a syntax tree that is not a condition's are compiled as before.
"""

from __future__ import annotations

import threading

from ansible._internal._templating import _jinja_bits
from ansible_collections.synap.ops.plugins.plugin_utils.inner_module import internal

# Sources a playbook templates are few (its own strings and variables); the bound only guards against a run that
# templates generated text without end.
KEPT_AT_MOST = 8192

_kept: dict[tuple, object] = {}
_expression = threading.local()


def install() -> None:
    """Keep AnsibleEnvironment's compiled code from now on in this process (and those it forks)."""
    environment = _jinja_bits.AnsibleEnvironment
    if "compile" in vars(environment):
        return
    jinja_compile = internal(environment, "compile", ("source", "name", "filename", "raw", "defer_init"))
    jinja_compile_expression = internal(environment, "compile_expression", ("source",))

    def compile(self, source, name=None, filename=None, raw=False, defer_init=False):  # noqa: A001 - Jinja's name
        key = _key(self, source, name, filename, raw, defer_init)
        code = _kept.get(key) if key is not None else None
        if code is None:
            code = jinja_compile(self, source, name, filename, raw, defer_init)
            if key is not None and len(_kept) < KEPT_AT_MOST:
                _kept[key] = code
        return code

    # A condition reaches compile as the syntax tree Jinja parsed it into; its text names it.
    def compile_expression(self, source, undefined_to_none=True):
        _expression.source = (source, undefined_to_none) if isinstance(source, str) else None
        try:
            return jinja_compile_expression(self, source, undefined_to_none)
        finally:
            _expression.source = None

    environment.compile = compile
    environment.compile_expression = compile_expression


def _key(environment, source, name, filename, raw, defer_init) -> tuple | None:
    if environment._debuggable_template_source:
        return None
    if isinstance(source, str):
        text = ("template", str(source))
    elif getattr(_expression, "source", None) is not None:
        text = ("expression", str(_expression.source[0]), _expression.source[1])
    else:
        return None
    compiling = _jinja_bits._TemplateCompileContext.current(optional=True)
    settings = tuple(getattr(environment, field) for field in _jinja_bits._TEMPLATE_OVERRIDE_FIELD_NAMES)
    return (type(environment), settings, environment.optimized, environment.finalize, environment.autoescape,
            environment.is_async, tuple(environment.extensions), bool(compiling and compiling.escape_backslashes),
            text, name, filename, raw, defer_init)
