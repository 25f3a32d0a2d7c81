# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every synap.ops info module's look-up by module name, for callers that are not a module run.

Each info module's work lives in the module_utils file named after it, as ``INFO`` (gather.InfoModule: its
``argument_spec()``, the constraints between its options and its ``gather()``); the module runs it. synap-play's
first look finds it here by the module's name and runs ``gather()`` in its own process. A look-up is imported when
it is first asked for, so a caller pays only for the libraries of the look-ups it runs (psycopg for the PostgreSQL
ones, prometheus_client for the metrics).
"""

from __future__ import annotations

import importlib

COLLECTION = "synap.ops"
_PACKAGE = "ansible_collections.synap.ops.plugins.module_utils"
# Every info module of the collection: plugins/modules/<name>.py runs module_utils/<name>.py's INFO.
INFO_MODULES = (
    "api_metrics_info",
    "compose_service_info",
    "deploy_info",
    "external_info",
    "inngest_info",
    "postgres_activity_info",
    "postgres_statements_info",
    "synap_proposals_info",
)


def location(module):
    """The module_utils module holding the look-up of ``module`` (synap.ops.deploy_info), or None when it has none."""
    namespace, _dot, name = module.rpartition(".")
    if namespace != COLLECTION or name not in INFO_MODULES:
        return None
    return f"{_PACKAGE}.{name}"


def info_module(module):
    """The InfoModule of ``module`` (synap.ops.deploy_info); None for a module without one. Raises ImportError
    when its look-up cannot be imported here (a library it needs is missing)."""
    path = location(module)
    return importlib.import_module(path).INFO if path else None
