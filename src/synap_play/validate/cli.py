"""The ``synap-play validate`` command."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import click

from synap_play.validate import validate_project

EPILOG = """\b
Examples:
  synap-play validate
  synap-play validate -i staging
  synap-play validate --roles-dir ./roles -i inventory/lab -i ./my-inventory
  synap-play validate --output json

\b
Exit codes:
  0    no problems
  1    problems found (each printed as file:line: message)
  2    usage error
"""


def _inventory_path(value: str) -> Path:
    from synap_play.cli import _inventory

    return _inventory(value)


@click.command("validate", epilog=EPILOG)
@click.option("--roles-dir", type=click.Path(file_okay=False, exists=True, path_type=Path), default=None,
              help="Roles to check (default: roles/ of the project); playbooks/ and plugins/ beside it are used "
                   "when there, else the project's.")
@click.option("-i", "--inventory", "inventories", multiple=True, metavar="NAME|PATH",
              help="Inventory to check: a name under inventory/, or a path. Repeatable (default: every inventory/ folder).")
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="text: one line per problem; json: the problems and counts.")
def validate(roles_dir, inventories, output):
    """Check every scenario's synap.ops tasks and the inventories for what would fail only mid-incident.

    \b
    Tasks: each synap.ops.diagnose source's module and args, each synap.ops.mitigate's
    keys, class (the action's classes, used by the severity policy), module and args,
    each direct synap.ops module's options: unknown names, literal types and choices.
    Inventories: every synap_* variable is declared in roles/synap/meta/argument_specs.yml,
    with a literal of its type and range. Templates and vault values are not checked.
    """
    outcome = validate_project(roles_dir, [_inventory_path(i) for i in inventories] or None)
    if output == "json":
        click.echo(json.dumps({"ok": outcome.ok, "roles": outcome.roles, "tasks": outcome.tasks,
                               "inventories": outcome.inventories,
                               "problems": [asdict(p) for p in outcome.problems]}, indent=2))
    else:
        for problem in outcome.problems:
            click.echo(str(problem))
        counts = f"{outcome.roles} roles, {outcome.tasks} tasks, {outcome.inventories} inventories"
        if outcome.ok:
            click.echo(f"validate: {counts}: ok")
        else:
            count = len(outcome.problems)
            click.echo(f"validate: {counts}: {count} problem{'s' if count != 1 else ''}")
    sys.exit(0 if outcome.ok else 1)
