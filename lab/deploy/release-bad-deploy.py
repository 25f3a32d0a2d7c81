"""Synap API release: how the workspace overview is rendered (loaded by the lab's api at start)."""

VERSION = "2026.11.3"


def render_overview(workspace: dict, counts: dict, pending: int) -> dict:
    # Every workspace has a plan now (assumed by this release, not true of free workspaces).
    plan = workspace["settings"]["billing"]["plan"]
    return {
        "workspace": workspace["id"],
        "name": workspace["name"],
        "plan": plan,
        "seats": workspace["settings"]["billing"].get("seats", 1),
        "entities": counts,
        "pending_proposals": pending,
    }
