"""`synap-play replay`: which branches a recording makes fire, with their plans and the verdict; no target touched."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import sys
from pathlib import Path

import click

from synap_play import cli as base
from synap_play.cli import OperatorError

REPLAY_EPILOG = """\b
Examples:
  synap-play replay 20261129T031500Z-worker-queue-backup-3fa2c1
  synap-play replay incidents/20261129T031500Z-worker-queue-backup-3fa2c1/incident.json --severity P0
  synap-play replay tests/replay/cases/database-connection-failure.yml --case auth-failed
  synap-play replay my-cases.yml --output json

\b
A cases file:
  scenario: database-connection-failure
  cases:
    auth-failed:
      sources:
        services: {reachable: true, services: {postgres: {running: 1, healthy: true}}}
        db: {reachable: false, failure: auth_failed, msg: "password authentication failed"}
      expect: {planned: [], status: unresolved, exit_code: 3}

\b
Exit codes: as `run` (0, 2, 3, 4, 6), the worst case's; when cases carry
`expect`, 0 if every expectation is met and 1 if one is not.
"""


@click.command("replay", epilog=REPLAY_EPILOG)
@click.argument("recording", metavar="INCIDENT_ID|FILE")
@click.option("--case", "cases", multiple=True, metavar="NAME", help="Replay only this case (repeatable).")
@click.option("--scenario", default=None, help="Replay through this scenario's playbook instead of the recording's.")
@click.option("--severity", type=click.Choice(["P0", "P1", "P2", "P3"]), default=None,
              help="Severity for the gate's would-run/would-ask (default: the recording's, else the catalog's).")
@click.option("-i", "--inventory", "inventory_name", default=None, metavar="NAME|PATH",
              help="Inventory whose group variables (thresholds, names) apply [default: the incident's, else lab].")
@click.option("-e", "--extra-vars", "extra_vars", multiple=True, metavar="KEY=VALUE|@FILE",
              help="Extra variables, as ansible-playbook takes them. Repeatable.")
@base.output_option
@base.incidents_dir_option
@base.project_option
@click.option("-v", "--verbose", count=True, help="More detail: Ansible output, and the cause of internal errors.")
def replay(recording, cases, scenario, severity, inventory_name, extra_vars, output, incidents_dir, catalog, verbose):
    """Re-run a scenario's decisions from recorded look-ups: an incident (its id or incident.json) or a YAML file of
    cases. Every look-up is answered from the recording and every mitigation is only planned: nothing is contacted,
    nothing changes. Prints, per case, the mitigations that would run and the verdict. The replay's own record goes
    to INCIDENTS_DIR/replays/."""
    from synap_play.collection import protocol
    from synap_play.replay import ReplayError, load_recording

    path = Path(recording)
    if not path.is_file():
        path = base.incident_folder(recording, incidents_dir) / protocol().RECORD_FILE
    try:
        loaded = load_recording(path)
    except ReplayError as exc:
        raise OperatorError(str(exc)) from exc
    if cases:
        missing = [c for c in cases if c not in loaded.cases]
        if missing:
            raise OperatorError(f"no case {', '.join(missing)} in {path}; it has {', '.join(loaded.cases)}")
        loaded.cases = {name: loaded.cases[name] for name in cases}
        loaded.expectations = {name: expect for name, expect in loaded.expectations.items() if name in cases}
    scenarios = base._catalog(catalog)
    name = scenario or loaded.scenario
    if name not in scenarios or not scenarios[name].available:
        raise OperatorError(f"unknown scenario '{name}'; run 'synap-play list'")
    inventory_name = inventory_name or _recorded_inventory(loaded, path) or "lab"
    code = _run(loaded, scenarios[name], severity, inventory_name, extra_vars, output, incidents_dir, verbose)
    sys.exit(code)


def _recorded_inventory(loaded, path: Path) -> str | None:
    """An incident's own inventory, when it is one of the project's by name."""
    if not loaded.replay_of:
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    label = record.get("inventory") or ""
    from synap_play.project import project_root

    return label if label and "/" not in label and (project_root() / "inventory" / label).is_dir() else None


def _run(loaded, chosen, severity, inventory_name, extra_vars, output, incidents_dir, verbose) -> int:
    from synap_play.collection import module
    from synap_play.replay import case_results, private_folder, replay_inventory, unmet_expectations
    from synap_play.session import IncidentRun

    load_record = module("plugins.plugin_utils.incident_record").load_record

    folder = private_folder()
    try:
        incident_run = IncidentRun(
            scenario=chosen, severity=severity or loaded.severity or chosen.severity,
            inventory=replay_inventory(loaded, base._inventory(inventory_name), folder),
            inventory_label=f"{inventory_name} (replay of {loaded.replay_of or loaded.source})",
            extravars=base._parse_extra_vars(extra_vars), check=True, approve=False, limit=None, output=output,
            incidents_dir=incidents_dir / "replays", operator=os.environ.get("USER") or getpass.getuser(),
            started_at=None, verbose=verbose, first_look=False, replay_of=loaded.replay_of or loaded.source,
            show_outcome=False,
        )
        code = incident_run.execute()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    record = load_record(incident_run.folder)
    results = case_results(record)
    unmet = {case: unmet_expectations(expect, results.get(case, {})) for case, expect in loaded.expectations.items()}
    unmet = {case: problems for case, problems in unmet.items() if problems}
    if output == "json":
        click.echo(json.dumps({"record": record["id"], "status": record["status"], "exit_code": record["exit_code"],
                               "cases": results, "unmet_expectations": unmet}, indent=2))
    else:
        _print(record, results, unmet, incident_run.folder)
    if loaded.expectations:
        return 1 if unmet else 0
    return code


def _print(record, results, unmet, folder: Path) -> None:
    from synap_play.collection import protocol

    click.echo(f"replay of {record.get('replay_of')} through {record['scenario']} at {record['severity']}: "
               f"{len(results)} case(s)", err=True)
    for case, result in results.items():
        if "status" not in result:
            click.echo(f"  {case}: errors: {'; '.join(result.get('errors', []))}", err=True)
            continue
        click.echo(f"  {case}: {result['status']} (exit {result['exit_code']})", err=True)
        for task in result["planned"]:
            click.echo(f"    would: {task.split('|', 1)[-1].strip()}", err=True)
            for line in result["plans"].get(task) or []:
                click.echo(f"      - {line}", err=True)
        if not result["planned"]:
            click.echo("    no mitigation fires", err=True)
        for name in result["failed_checks"]:
            click.echo(f"    ✗ {name}", err=True)
        for name in result["unknown_checks"]:
            click.echo(f"    ? {name} (unknown)", err=True)
        for error in result.get("errors", []):
            click.echo(f"    error: {error}", err=True)
        for problem in unmet.get(case, []):
            click.echo(f"    EXPECTATION NOT MET: {problem}", err=True)
    click.echo(f"record: {os.path.relpath(folder / protocol().RECORD_FILE)}", err=True)
