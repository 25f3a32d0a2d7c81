"""Synap's real backend in the lab, as its clients reach it: tRPC over HTTP through the gateway, signed in with the
development session cookie (`mock-session-cookie=<user id>`, honoured with NODE_ENV=development). Calls and data
shapes: lab/backend/README.md."""

from __future__ import annotations

import json
import time
import urllib.parse

from synap_play.lab import LabError, access
from synap_play.lab.access import API_URL

TRPC_URL = f"{API_URL}/trpc"


def query_url(base_url: str, procedure: str, payload=None) -> str:
    """A tRPC query (GET): inputs travel as superjson ({"json": ...}) in the input parameter."""
    url = f"{base_url}/trpc/{procedure}"
    return url if payload is None else url + "?input=" + urllib.parse.quote(json.dumps({"json": payload}))


def signed_in(user: str | None) -> dict[str, str]:
    """The headers of a request made as USER: the development session cookie (none for a public procedure)."""
    return {"Cookie": f"mock-session-cookie={user}"} if user else {}


def mutate(procedure: str, payload, user: str | None = None, timeout: float = 10):
    """(HTTP status, the procedure's result or error) of a tRPC mutation (POST), made as USER."""
    status, answer = access.http("POST", f"{TRPC_URL}/{procedure}", {"json": payload}, headers=signed_in(user),
                                 timeout=timeout)
    if isinstance(answer, dict) and "result" in answer:
        return status, answer["result"].get("data", {}).get("json")
    return status, answer


def submit_ai_proposals(count: int) -> list[str]:
    """COUNT AI requests to create a note, through the API as Synap's clients send them (proposals.submit): each
    becomes an `entitys.create.requested` event that global-validator, run by Inngest on the jobs instance, turns
    into a pending proposal. The request ids."""
    workspaces = access.review_workspaces(count)
    ids = []
    for index in range(count):
        workspace, owner = workspaces[index % len(workspaces)]
        status, answer = mutate("proposals.submit", {
            "targetType": "entity", "changeType": "create", "reasoning": "suggested by the assistant",
            "data": {"workspaceId": workspace, "source": "ai", "type": "note",
                     "title": f"AI note {time.time_ns()}-{index}"},
        }, user=owner)
        if status != 200 or not isinstance(answer, dict):
            raise LabError(f"proposals.submit answered HTTP {status}: {str(answer)[:200]}")
        ids.append(str(answer.get("requestId")))
    return ids
