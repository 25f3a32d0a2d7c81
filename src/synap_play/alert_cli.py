"""`synap-play alert` (Alertmanager in, scenario runs out) and `synap-play postmortem` (the record, in words).

Both are registered in the main group by synap_play.cli. `alert` takes exactly the options of `run` (the same
click parameter objects), so the two never drift apart.
"""

from __future__ import annotations

import getpass
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from synap_play import cli as base
from synap_play.cli import OperatorError

ALERT_EXIT_CODES_HELP = """\b
Exit codes:
  0    every scenario run is healthy or resolved, or there was nothing to run
       (only resolved alerts)
  2    usage error: unknown alert name, malformed payload, no firing alert maps
       to an installed scenario
  3    a human is needed: a run did not or may not mitigate, or some firing
       alerts map to no scenario
  4    a playbook failed
  5    another synap-play run is mitigating that scenario on that target
  130  interrupted
With several scenarios the highest code wins.
"""

ALERT_EPILOG = f"""\b
Examples:
  synap-play alert WorkerQueueBackup
  synap-play alert HighErrorRate --check
  synap-play alert --payload alertmanager.json --yes
  synap-play alert --payload - < webhook.json

{ALERT_EXIT_CODES_HELP}"""

# Options of `run` that `alert` takes as they are (the scenario comes from the alert instead).
_RUN_OPTIONS = [param for param in base.run.params if isinstance(param, click.Option)]


def _mapping_path(value: Path | None) -> Path | None:
    """The mapping file: the option, else playbooks/alerts.yml when it exists, else the catalog's alert lists."""
    if value is not None:
        return value
    from synap_play.project import ProjectNotFound, project_root

    try:
        default = project_root() / "playbooks" / "alerts.yml"
    except ProjectNotFound as exc:
        raise OperatorError(str(exc)) from exc
    return default if default.is_file() else None


@click.command("alert", epilog=ALERT_EPILOG)
@click.argument("alert_name", required=False, metavar="[NAME]")
@click.option("--payload", type=click.File("rb"), default=None, metavar="FILE|-",
              help="An Alertmanager webhook body (version 4, at most 10 MB); '-' reads stdin.")
@click.option("--alert-map", "alert_map", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Alert -> scenario mapping (default: playbooks/alerts.yml of the project).")
# synap-play serve names the incident when it queues the alert, before this run starts (as the EDA source does for
# AWX): its notes go into the incident's folder from the first moment. Not for people, so not in --help.
@click.option("--incident-id", "incident_id", default=None, hidden=True)
# ... and has answered the scenario's look-ups into the incident's folder already (serve/warm.py).
@click.option("--first-look-done", "first_look_done", is_flag=True, hidden=True)
def alert(alert_name, payload, alert_map, incident_id, first_look_done, **options):
    """Run the scenario an alert maps to: by NAME, or for every firing alert of an Alertmanager payload.

    Resolved alerts run nothing; several alerts for one scenario run it once, at the most severe of their
    severities, with the incident started at the earliest startsAt (the escalation level counts from it;
    --started-at overrides it). Intake notes go to stderr; with --output json, stdout has one record per run.
    """
    from synap_play.collection import load

    load()
    from ansible_collections.synap.ops.plugins.plugin_utils.alerts import (
        Alert,
        AlertError,
        load_mapping,
        parse_payload,
        plan_intake,
        read_payload,
    )

    if bool(alert_name) == bool(payload):
        raise click.UsageError("give an alert NAME or --payload FILE|-, not both or neither")
    catalog = base._catalog(options["catalog"])
    started_at = base._parse_started_at(options["started_at"])
    try:
        mapping = load_mapping(_mapping_path(alert_map), catalog)
        if payload is not None:
            received_at = datetime.now(UTC)
            alerts = parse_payload(read_payload(payload), received_at=received_at)
        else:
            alerts = [Alert(name=alert_name, status="firing", severity_label=None, starts_at=None, fingerprint="")]
    except AlertError as exc:
        raise OperatorError(str(exc)) from exc

    plan = plan_intake(alerts, mapping, catalog, severity_override=options["severity"])
    _say_some([f"resolved: {a.name}{_fingerprint(a)}: nothing to run" for a in plan.resolved])
    if payload is not None:  # a NAME gets the one error line below
        _say_some([f"unknown alert '{a.name}'{_fingerprint(a)}: no scenario maps it; add it to {mapping.source}"
                   for a in plan.unknown])
    _say_some([f"alert '{a.name}' maps to scenario '{scenario}', which is not in the catalog or not installed; "
               f"run 'synap-play list'" for a, scenario in plan.unavailable])
    _say_some([f"{a.name}{_fingerprint(a)}: {a.note}" for run in plan.runs for a in run.alerts if a.note])

    if not plan.runs:
        if alert_name and plan.unknown:
            raise OperatorError(f"unknown alert '{alert_name}'; map it to a scenario in {mapping.source} "
                                f"(known: {', '.join(sorted(mapping.alerts)) or 'none'})")
        if plan.unknown or plan.unavailable:
            raise OperatorError("no firing alert maps to an installed scenario; nothing was run")
        say(f"nothing to run: {len(plan.resolved)} resolved alert(s)")
        sys.exit(0)

    if incident_id is not None:
        _check_incident_id(incident_id, plan.runs)
    # Every run is checked before the first starts: a payload is refused whole, or run whole.
    inventory, extravars = base._inventory(options["inventory_name"]), base._parse_extra_vars(options["extra_vars"])
    strategy = base._strategy(options["strategy"])
    for scenario_run in plan.runs:
        base.preflight_run(scenario_run.scenario, inventory, options["inventory_name"], options["limit"], extravars)
    base.writable_incidents_dir(options["incidents_dir"])
    codes = []
    for scenario_run in plan.runs:
        names = scenario_run.alert_names
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        count = f" ({len(scenario_run.alerts)} alerts)" if len(scenario_run.alerts) > 1 else ""
        say(f"{shown}{count} -> {scenario_run.scenario.name} at {scenario_run.severity}")
        codes.append(_execute(scenario_run, started_at, options, inventory, dict(extravars), strategy, incident_id,
                              first_look_done))
    worst = max(codes)
    if worst == 0 and (plan.unknown or plan.unavailable):
        from ansible_collections.synap.ops.plugins.plugin_utils.protocol import ExitCode

        worst = int(ExitCode.NEEDS_HUMAN)
    sys.exit(worst)


def _check_incident_id(incident_id: str, runs) -> None:
    import re

    if len(runs) != 1:
        raise OperatorError(f"--incident-id names one incident, but the alerts map to {len(runs)} scenarios")
    scenario = runs[0].scenario.name
    if not re.fullmatch(rf"\d{{8}}T\d{{6}}Z-{re.escape(scenario)}-[0-9a-f]{{6}}", incident_id):
        raise OperatorError(f"--incident-id {incident_id!r} is not an incident id of {scenario} "
                            f"(YYYYMMDDTHHMMSSZ-{scenario}-<6 hex>)")


def _execute(scenario_run, started_at, options, inventory: Path, extravars: dict, strategy: str,
             incident_id: str | None = None, first_look_done: bool = False) -> int:
    from ansible_collections.synap.ops.plugins.plugin_utils.alerts import alert_vars
    from ansible_collections.synap.ops.plugins.plugin_utils.protocol import RunVar

    from synap_play.session import IncidentRun

    # The playbooks (and the notify role) see which alerts started the incident; the record keeps them.
    extravars.setdefault(RunVar.ALERTS.value, alert_vars(scenario_run.alerts))
    incident_run = IncidentRun(
        scenario=scenario_run.scenario,
        severity=scenario_run.severity,
        inventory=inventory,
        inventory_label=options["inventory_name"],
        extravars=extravars,
        check=options["check"],
        approve=options["approve"],
        limit=options["limit"],
        output=options["output"],
        incidents_dir=options["incidents_dir"],
        operator=options["operator"] or os.environ.get("USER") or getpass.getuser(),
        started_at=started_at or scenario_run.started_at,
        verbose=options["verbose"],
        lock_wait=options["wait_lock"],
        first_look=options["first_look"],
        strategy=strategy,
        incident_id=incident_id,
        first_look_done=first_look_done,
    )
    return incident_run.execute()


alert.params.extend(_RUN_OPTIONS)


def say(text: str) -> None:
    """Intake notes go to stderr, so that --output json keeps stdout for the records alone."""
    click.echo(f"synap-play alert: {text}", err=True)


INTAKE_NOTES_SHOWN = 10  # per kind of note; a payload of thousands of alerts gets a count for the rest


def _say_some(lines: list[str]) -> None:
    for line in lines[:INTAKE_NOTES_SHOWN]:
        say(line)
    if len(lines) > INTAKE_NOTES_SHOWN:
        say(f"... and {len(lines) - INTAKE_NOTES_SHOWN} more like that")


def _fingerprint(alert) -> str:
    return f" ({alert.fingerprint})" if alert.fingerprint else ""


# -- post-mortem --------------------------------------------------------------------------------------
@click.command("postmortem")
@click.argument("incident_id")
@base.incidents_dir_option
@click.option("--write/--no-write", default=True, show_default=True,
              help="Also save the draft as postmortem.md in the incident folder.")
def postmortem(incident_id, incidents_dir, write):
    """Draft the post-mortem of incident INCIDENT_ID (a unique prefix will do) from its record.

    \b
    The draft has the timeline from the run's own events, the impact, root-cause prompts from the findings,
    action items from the scenario's Resolution list, the post-incident checklist with the post-mortem due
    48 h after the start, and "update the runbook" notes where the run went differently from the runbook.
    """
    from synap_play.collection import load
    from synap_play.postmortem import render_postmortem

    load()
    from ansible_collections.synap.ops.plugins.plugin_utils.incident_record import load_record
    from ansible_collections.synap.ops.plugins.plugin_utils.protocol import POSTMORTEM_FILE, RECORD_FILE

    folder = base.incident_folder(incident_id, incidents_dir)
    try:
        record = load_record(folder)
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as exc:
        raise OperatorError(f"incident record {folder / RECORD_FILE} cannot be read: {exc}") from exc
    text = render_postmortem(record)
    if write:
        (folder / POSTMORTEM_FILE).write_text(text, encoding="utf-8")
    click.echo(text, nl=False)
