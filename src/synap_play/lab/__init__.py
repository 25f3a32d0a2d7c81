"""The rehearsal lab: a docker compose Synap stack in lab/ where every runbook fault can be injected."""


class LabError(Exception):
    """A failure an operator can act on; the CLI turns it into a one-line message."""
