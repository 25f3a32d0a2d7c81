"""synap-play: the Synap incident-response runbook as idempotent Ansible playbooks."""

__version__ = "0.1.0"
