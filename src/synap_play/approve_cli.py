"""`synap-play approve`: carry out (or decline) the mitigations an incident's run held back for a person.

A run whose severity policy does not allow a class of mitigation records it as "needs approval", with its plan,
and goes on. Approving one starts an approval run: the scenario's playbook again, at the incident's severity and
on its target, told which steps were approved. Every other step meets the severity policy as before; an approved
one is planned again against the live system (check mode) and runs only if that fresh plan still has work, so an
old plan is never what runs. The approval run has a record of its own (its `approval_of` names the incident), and
the incident's folder notes who decided what, and when.
"""

from __future__ import annotations

import getpass
import os
import sys
from pathlib import Path

import click

from synap_play import cli as base
from synap_play.cli import OperatorError

APPROVE_EPILOG = """\b
Examples:
  synap-play approve 20261202T031500Z-database-connection-failure-3fa2c1
  synap-play approve 20261202T0315 2 --yes         # step 2 only, no question
  synap-play approve 20261202T0315 2 --decline     # step 2 stays undone

\b
Exit codes:
  0    the approval run resolved the incident, or the steps were declined
  2    usage error: no such incident, no such step waiting, its run still going,
       no terminal to confirm on and no --yes
  3-6, 130, 143  as for 'synap-play run' (the approval run's outcome)
"""

# The options of `run` an approval run takes as they are. The scenario, severity, alerts and start time are the
# incident's; the inventory defaults to the one its record names.
_TAKEN = ("extra_vars", "output", "incidents_dir", "operator", "wait_lock", "strategy", "first_look", "catalog",
          "verbose", "limit")
_RUN_OPTIONS = [param for param in base.run.params if isinstance(param, click.Option) and param.name in _TAKEN]


@click.command("approve", epilog=APPROVE_EPILOG)
@click.argument("incident_id")
@click.argument("step", required=False)
@click.option("--decline", is_flag=True, help="Decline the step(s): they stay undone, and the incident says so.")
@click.option("--yes", "confirmed", is_flag=True, help="Do not ask before the approval run starts.")
@click.option("-i", "--inventory", "inventory_name", default=None, metavar="NAME|PATH",
              help="Inventory (default: the one the incident's record names).")
# synap-play serve names the approval run before it starts, so that its API answer can say which run it is.
@click.option("--incident-id", "run_id", default=None, hidden=True)
def approve(incident_id, step, decline, confirmed, inventory_name, run_id, **options):
    """Approve (or --decline) STEP of incident INCIDENT_ID, or every step waiting when no STEP is given.

    STEP is the number 'synap-play show' and serve's API give a held-back step, or its task name. The incident id
    may be a unique prefix. Approved steps are planned again against the live system before they run.
    """
    from synap_play import held_steps
    from synap_play.collection import load

    load()
    from ansible_collections.synap.ops.plugins.plugin_utils.incident_record import iso, load_record, utcnow
    from ansible_collections.synap.ops.plugins.plugin_utils.protocol import RunVar, Status

    from synap_play.serve.notes import Event, append_note, read_notes

    folder = base.incident_folder(incident_id, options["incidents_dir"])
    try:
        record = load_record(folder)
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        raise OperatorError(f"incident record {folder} cannot be read: {exc}") from exc
    if record.get("status") == Status.RUNNING.value and not record.get("ended_at"):
        raise OperatorError(f"incident {record['id']} is still running; approve its steps once the run has ended")
    waiting = held_steps.pending(record, read_notes(folder))
    if not waiting:
        raise OperatorError(f"nothing of incident {record['id']} waits for approval (see 'synap-play show {record['id']}')")
    try:
        chosen = held_steps.choose(waiting, step)
    except LookupError as exc:
        raise OperatorError(str(exc)) from exc
    operator = options["operator"] or os.environ.get("USER") or getpass.getuser()
    steps = held_steps.approved_steps(chosen)
    _show(record["id"], chosen, decline)

    if decline:
        append_note(folder, {"event": Event.DECLINED, "at": iso(utcnow()), "by": operator, "steps": steps})
        click.echo(f"declined: {len(chosen)} step(s) of {record['id']} stay undone", err=True)
        sys.exit(0)
    if not confirmed:
        if not sys.stdin.isatty():
            raise OperatorError("approving runs a mitigation: confirm on a terminal, or give --yes")
        if not click.confirm("Plan these again against the live system and run them?", default=False, err=True):
            raise OperatorError("not approved; nothing was run")

    catalog = base._catalog(options["catalog"])
    scenario = catalog.get(record.get("scenario"))
    if scenario is None or not scenario.available:
        raise OperatorError(f"scenario '{record.get('scenario')}' of {record['id']} is not installed; run "
                            "'synap-play list'")
    label = inventory_name or record.get("inventory") or "lab"
    inventory, extravars = base._inventory(label), base._parse_extra_vars(options["extra_vars"])
    limit = options["limit"] if options["limit"] is not None else record.get("limit")
    base.preflight_run(scenario, inventory, label, limit, extravars)
    if run_id is None:
        from ansible_collections.synap.ops.plugins.plugin_utils.incident_record import new_incident_id

        run_id = new_incident_id(scenario.name)
    extravars.update({RunVar.APPROVAL_OF.value: record["id"], RunVar.APPROVED_STEPS.value: steps,
                      RunVar.ALERTS.value: list(record.get("alerts") or [])})
    append_note(folder, {"event": Event.APPROVED, "at": iso(utcnow()), "by": operator, "steps": steps, "run": run_id})
    click.echo(f"approved by {operator}: approval run {run_id}", err=True)

    from ansible_collections.synap.ops.plugins.plugin_utils.incident_record import parse_iso

    from synap_play.session import IncidentRun

    incident_run = IncidentRun(
        scenario=scenario, severity=record.get("severity") or scenario.severity, inventory=inventory,
        inventory_label=label, extravars=extravars, check=False, approve=False, limit=limit,
        output=options["output"], incidents_dir=base.writable_incidents_dir(options["incidents_dir"]),
        operator=operator, started_at=parse_iso(record["started_at"]) if record.get("started_at") else None,
        verbose=options["verbose"], lock_wait=options["wait_lock"], first_look=options["first_look"],
        strategy=base._strategy(options["strategy"]), incident_id=run_id,
    )
    code = incident_run.execute()
    run_folder = Path(options["incidents_dir"]) / run_id
    try:
        status = load_record(run_folder).get("status")
    except (OSError, ValueError):
        status = None
    append_note(folder, {"event": Event.APPROVAL_ENDED, "at": iso(utcnow()), "run": run_id, "status": status,
                         "exit_code": code})
    sys.exit(code)


approve.params.extend(_RUN_OPTIONS)


def _show(incident_id: str, steps: list[dict], decline: bool) -> None:
    from synap_play import collection

    # Task names, hosts and plans come from the playbook and its targets: shown without control characters.
    clean = collection.module("plugins.plugin_utils.incident_report").strip_control
    verb = "Declining" if decline else "Approving"
    click.echo(f"{verb} {len(steps)} step(s) of incident {incident_id}:", err=True)
    for step in steps:
        click.echo(f"  {step['step']}. {clean(str(step['task']))} on {clean(str(step['host']))} "
                   f"({clean(str(step['class']))}): {clean(str(step['why'] or ''))}", err=True)
        if not decline:
            for line in step.get("plan") or []:
                click.echo(f"       was planned: {clean(str(line))}", err=True)
    if not decline:
        click.echo("  Each is planned again against the live system now; only what that plan finds is done.", err=True)
