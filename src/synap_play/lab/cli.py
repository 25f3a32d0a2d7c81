"""`synap-play lab ...`: bring the rehearsal lab up and down, inject and clear the runbook's faults, send load."""

from __future__ import annotations

import click

from synap_play.lab import faults as fault_catalog
from synap_play.lab import load as load_generator
from synap_play.lab import monitoring
from synap_play.lab import reset as lab_reset
from synap_play.lab.access import API_URL
from synap_play.lab.stack import Lab, LabError
from synap_play.project import ProjectNotFound


class LabFailure(click.ClickException):
    exit_code = 1


def _lab() -> Lab:
    try:
        return Lab(progress=lambda message: click.echo(f"  {message}", err=True))
    except ProjectNotFound as error:
        raise LabFailure(str(error)) from None


def _guard(action):
    """Run an action, turning lab failures into one-line errors (exit 1)."""
    try:
        return action()
    except LabError as error:
        raise LabFailure(str(error)) from None


@click.group(epilog="""\b
Examples:
  synap-play lab up
  synap-play lab inject bad-deploy
  synap-play lab load --duration 30
  synap-play lab clear
  synap-play lab down""")
def lab():
    """The rehearsal lab: a docker compose Synap stack (project synap-lab) where every runbook fault can be
    injected for real."""


@lab.command()
def up():
    """Build the image if needed, start the stack, wait until healthy, print the endpoints.

    \b
    The api and jobs services run Synap's real backend, built from its source (SYNAP_LAB_BACKEND_DIR, a
    checkout; SYNAP_LAB_BACKEND_ARCHIVE; else ../shared/systems/synap-backend-*.tar.gz), or the stand-ins when
    no source is found or SYNAP_LAB_BACKEND=standin. SYNAP_LAB_BACKEND_METRICS=1 adds the lab's middleware that
    records the HTTP metrics the real backend declares."""
    stack = _lab()
    click.echo("bringing the lab up", err=True)
    image = _guard(stack.up)
    click.echo(f"lab is up (image {image})")
    for name, value in stack.endpoints().items():
        click.echo(f"  {name:<16} {value}")


@lab.command()
def down():
    """Remove the stack, its data volume and the lab state; nothing is kept."""
    stack = _lab()
    _guard(stack.down)
    click.echo("lab is down")


@lab.command()
def status():
    """Show each service's state and health, the faults in effect and the alerts firing."""
    stack = _lab()

    def report():
        stack.check_engine()
        services = stack.services()
        if not services:
            return None, []
        return services, fault_catalog.active(stack)

    services, active = _guard(report)
    if services is None:
        click.echo("lab is down (run 'synap-play lab up')")
        return
    running_backend = _guard(stack.running_backend)
    click.echo(f"backend: {running_backend.describe() if running_backend else 'not recorded (no lab/.env)'}")
    for name, state in sorted(services.items()):
        health = f" ({state['health']})" if state["health"] else ""
        click.echo(f"  {name:<18} {state['state']}{health}")
    click.echo(f"faults: {', '.join(active) if active else 'none'}")
    try:
        alerts = monitoring.firing()
    except LabError as error:
        click.echo(f"alerts: unknown (Alertmanager: {error})")
    else:
        click.echo(f"alerts firing: {', '.join(alerts) if alerts else 'none'}")


@lab.command()
def reset():
    """Back to the healthy seed state: every fault gone, data, PostgreSQL's settings, deploy checkout and services as
    they were seeded. In place in seconds where the lab kept its seed (the stand-ins), else down and up. The lab keeps
    the backend it runs (down and up again to change it)."""
    stack = _lab()
    click.echo("resetting the lab", err=True)
    how = _guard(lambda: lab_reset.reset(stack))
    click.echo(f"lab reset to its seed state ({how})")


def _fault_names():
    return click.Choice(sorted(fault_catalog.FAULTS))


@lab.command()
@click.argument("fault", type=_fault_names())
def inject(fault):
    """Make FAULT really happen (see 'synap-play lab faults')."""
    stack = _lab()
    click.echo(f"injecting {fault}", err=True)
    _guard(lambda: fault_catalog.inject(stack, fault))
    click.echo(f"{fault} injected: {fault_catalog.FAULTS[fault].summary}")


@lab.command()
@click.argument("fault", required=False, type=_fault_names())
def clear(fault):
    """Undo FAULT, or every fault in effect when none is named."""
    stack = _lab()
    names = [fault] if fault else _guard(lambda: fault_catalog.active(stack))
    if not names:
        click.echo("no fault in effect")
        return
    for name in names:
        click.echo(f"clearing {name}", err=True)
        _guard(lambda name=name: fault_catalog.clear(stack, name))
        click.echo(f"{name} cleared")


@lab.command()
def faults():
    """List the faults, one line each, with the alert each fires in the lab's Prometheus."""
    for name, fault in fault_catalog.FAULTS.items():
        click.echo(f"{name:<22} {fault.summary} (alert: {fault.alert})")


@lab.command()
@click.option("--duration", type=click.FloatRange(min=1), default=30, show_default=True, help="Seconds of load.")
@click.option("--rate", type=click.FloatRange(min=0.1), default=20, show_default=True, help="Requests per second.")
@click.option("--concurrency", type=click.IntRange(min=1, max=64), default=4, show_default=True)
@click.option("--url", default=API_URL, show_default=True, help="The api to load.")
def load(duration, rate, concurrency, url):
    """Send real requests to the api (overview, search, proposals, entity creation) and summarise them."""
    click.echo(f"sending load to {url} for {duration:g} s", err=True)
    result = _guard(lambda: load_generator.run(url.rstrip("/"), duration, concurrency=concurrency, rate=rate))
    click.echo(result.summary())
