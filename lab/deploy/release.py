"""Synap API release: how the workspace overview is rendered (loaded by the lab's api at start)."""

VERSION = "2026.11.2"


def render_overview(workspace: dict, counts: dict, pending: int) -> dict:
    billing = workspace["settings"].get("billing") or {}
    return {
        "workspace": workspace["id"],
        "name": workspace["name"],
        "plan": billing.get("plan", "free"),
        "entities": counts,
        "pending_proposals": pending,
    }
