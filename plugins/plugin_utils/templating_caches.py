# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What ansible-core's templating works out afresh for every template, kept for the process instead.

In a fleet the same few hundred strings are templated once per host and task, and each time ansible-core

- compiles the template or condition: that was a quarter of a worker's time and an eighth of the controller's at
  50 hosts. Jinja's code for a source depends only on the source and the environment's compile settings, so it
  is kept under exactly those. Rendering is untouched: each use builds its template from the code with the
  environment at hand. A debugging environment (which keeps the generated source beside each template) and a
  syntax tree that is not a condition's are compiled as before.
- looks up each filter and test it uses by name, first among Ansible's plugins. For a name that is Jinja's own
  (length, int, list, first, none, in, ...) Ansible has no plugin, and finds that out by listing and loading
  every filter or test file of ansible.builtin: a thousand times in a 50-host run, a tenth of the controller's
  time. That a loader has no plugin of a name is kept until its plugin folders change (Ansible clears its own
  caches then, and this one with them); a name it has is looked up as before.

Both are kept for this process and the workers it forks after (synap.ops.linear installs them on the controller).
What only workers template (a worker task's arguments, module defaults and until) would be compiled again by each
host's worker: the first compiles it and leaves the code, marshalled, beside Ansible's own cache of built modules
in the controller's local temporary folder, which every worker shares and Ansible removes at its end; the other
workers load it from there, in a fiftieth of the time. Installed once.
"""

from __future__ import annotations

import hashlib
import os
import threading

from ansible import constants as C
from ansible._internal._templating import _jinja_bits
from ansible.plugins.loader import Jinja2Loader
from ansible_collections.synap.ops.plugins.plugin_utils import marshalled
from ansible_collections.synap.ops.plugins.plugin_utils.inner_module import internal

# Sources a playbook templates are few (its own strings and variables); the bound only guards against a run that
# templates generated text without end.
KEPT_AT_MOST = 8192

_kept: dict[tuple, object] = {}
# Beside Ansible's own cache of built modules: in the controller's local temporary folder, which its workers share
# and Ansible removes when the controller exits.
SHARED_FOLDER = "synap_jinja_code"
_expression = threading.local()


def install() -> None:
    """Keep compiled code and the names no plugin has from now on in this process (and those it forks)."""
    C.DEFAULT_LOCAL_TMP  # noqa: B018 - created here, once, for the workers to share, not by each of them
    _keep_compiled_code()
    _keep_names_without_a_plugin()


def _keep_compiled_code() -> None:
    environment = _jinja_bits.AnsibleEnvironment
    if "compile" in vars(environment):
        return
    jinja_compile = internal(environment, "compile", ("source", "name", "filename", "raw", "defer_init"))
    jinja_compile_expression = internal(environment, "compile_expression", ("source",))

    def compile(self, source, name=None, filename=None, raw=False, defer_init=False):  # noqa: A001 - Jinja's name
        key = _key(self, source, name, filename, raw, defer_init)
        code = _kept.get(key) if key is not None else None
        if code is None:
            code = _shared(key) if key is not None else None
            if code is None:
                code = jinja_compile(self, source, name, filename, raw, defer_init)
                if key is not None:
                    _share(key, code)
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


def _shared_file(key) -> str:
    # The key's text is the same in every process forked from one controller (it names the environment's finalize
    # function by its address, too): the folder is that controller's own.
    digest = hashlib.sha256(repr(key).encode("utf-8", "surrogatepass")).hexdigest()
    return os.path.join(C.DEFAULT_LOCAL_TMP, SHARED_FOLDER, digest)


def _shared(key):
    """The code another process of this run compiled for KEY, or None."""
    return marshalled.load(_shared_file(key))


def _share(key, code) -> None:
    """Leave CODE for the other workers of this run; written whole or not at all."""
    marshalled.dump(_shared_file(key), code)


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


# A name's look-up that found no plugin, by loader; emptied with the loader's own caches.
_NO_PLUGIN_KEY = "_synap_names_without_a_plugin"


def _keep_names_without_a_plugin() -> None:
    if getattr(Jinja2Loader.get_with_context, "keeps_misses", False):
        return
    look_up = internal(Jinja2Loader, "get_with_context", ("name",))
    clear_caches = internal(Jinja2Loader, "_clear_caches")

    def get_with_context(self, name, *args, **kwargs):
        if args or kwargs:  # a look-up with options of its own is not the templating's: as before
            return look_up(self, name, *args, **kwargs)
        misses = self.__dict__.setdefault(_NO_PLUGIN_KEY, {})
        found = misses.get(name)
        if found is None:
            found = look_up(self, name)
            if found.object is None and len(misses) < KEPT_AT_MOST:
                misses[name] = found
        return found

    def _clear_caches(self):
        self.__dict__.pop(_NO_PLUGIN_KEY, None)
        clear_caches(self)

    get_with_context.keeps_misses = True
    Jinja2Loader.get_with_context = get_with_context
    Jinja2Loader._clear_caches = _clear_caches
