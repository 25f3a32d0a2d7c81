"""The rehearsal lab: a docker compose Synap stack in lab/ where every runbook fault can be injected."""
