# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``POST /v0/gql``: just enough GraphQL for what synap-play sends, the runs query and cancelRun / rerun.

The document is not parsed as a whole: the first ``cancelRun``, ``rerun`` or ``runs`` field is found among the
tokens and only its arguments are read (literals or ``$variables``). The selection set is not pruned: every
field of a run is answered, extra fields are harmless.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

from common import ALL_STATUSES, RequestError, decode_cursor, encode_cursor, parse_time
from runs import Store, gql_run

TIME_FIELDS = {"QUEUED_AT": "queued_at", "STARTED_AT": "started_at", "ENDED_AT": "ended_at"}
# Whitespace, commas and comments separate tokens; a token is a string, a number, a name or $variable, or
# any other single character (brackets, colon; anything else is an error where a value is expected).
TOKEN = re.compile(r'[\s,]+|#[^\n]*|("(?:[^"\\]|\\.)*"|-?\d+(?:\.\d+)?|\$?[A-Za-z_]\w*|.)')
CLOSE = object()


class GraphQLError(Exception):
    """Answered as ``{"errors": [{"message": ...}]}`` with status 200, as GraphQL servers do."""


def errors(message: str) -> dict:
    return {"errors": [{"message": message}]}


def answer(store: Store, payload: object) -> dict:
    if not isinstance(payload, dict):
        return errors("body must be a JSON object with a query")
    if not isinstance(payload.get("query"), str):
        return errors("query is required")
    variables = payload.get("variables")
    document = Document(payload["query"], variables if isinstance(variables, dict) else {})
    try:
        if (arguments := document.arguments("cancelRun")) is not None:
            return {"data": {"cancelRun": cancel_run(store, arguments.get("runID"))}}
        if (arguments := document.arguments("rerun")) is not None:
            return {"data": {"rerun": rerun(store, arguments.get("runID"))}}
        if (arguments := document.arguments("runs")) is not None:
            return {"data": {"runs": runs_connection(store, arguments)}}
    except GraphQLError as exc:
        return errors(str(exc))
    return errors("only the runs query and the cancelRun and rerun mutations are supported")


class Document:
    def __init__(self, text: str, variables: dict):
        self.tokens = [match[1] for match in TOKEN.finditer(text) if match[1]]
        self.variables = variables

    def arguments(self, field: str) -> dict | None:
        """The arguments of the first ``field`` in the document: None if it is not there, {} if it has none."""
        if field not in self.tokens:
            return None
        tokens = iter(self.tokens[self.tokens.index(field) + 1 :])
        return self._fields(tokens) if next(tokens, None) == "(" else {}

    def _fields(self, tokens) -> dict:
        """``name: value`` pairs up to the closing bracket (the ``(`` or ``{`` is already taken)."""
        fields = {}
        while (name := _take(tokens)) not in (")", "}"):
            if _take(tokens) != ":" or (value := self._value(tokens)) is CLOSE:
                raise GraphQLError(f"bad argument near {name!r}")
            fields[name] = value
        return fields

    def _value(self, tokens):
        token = _take(tokens)
        if token in ("]", ")", "}"):
            return CLOSE
        if token == "[":
            items = []
            while (item := self._value(tokens)) is not CLOSE:
                items.append(item)
            return items
        if token == "{":
            return self._fields(tokens)
        if token[0] == "$":
            return self.variables.get(token[1:])
        if token[0] == '"':
            try:
                return json.loads(token)
            except ValueError:
                raise GraphQLError(f"bad string {token}") from None
        if token[0] in "-0123456789":
            return float(token) if "." in token else int(token)
        if token[0].isalpha() or token[0] == "_":
            return {"true": True, "false": False, "null": None}.get(token, token)  # else an enum value
        raise GraphQLError(f"unexpected {token!r}")


def _take(tokens) -> str:
    token = next(tokens, None)
    if token is None:
        raise GraphQLError("unexpected end of document")
    return token


def cancel_run(store: Store, run_id) -> dict:
    if not run_id:
        raise GraphQLError("cancelRun needs runID")
    try:
        run = store.get_run(run_id)
    except RequestError:
        raise GraphQLError(f"run {run_id} not found") from None
    if not store.cancel(run_id):
        raise GraphQLError("run already ended")
    return gql_run(run)


def rerun(store: Store, run_id) -> str:
    try:
        return store.rerun(run_id or "")["id"]
    except RequestError as exc:
        raise GraphQLError(exc.body["error"]) from None


def runs_connection(store: Store, arguments: dict) -> dict:
    """The runs query: filter (from, until, timeField, status), orderBy, first/after cursor pages, totalCount."""
    filters = arguments.get("filter") or {}
    if not isinstance(filters, dict) or not filters.get("from"):
        raise GraphQLError("filter.from is required")
    try:
        start = parse_time(filters["from"])
        until = parse_time(filters["until"]) if filters.get("until") else None
    except (TypeError, ValueError, AttributeError):
        raise GraphQLError("from/until must be RFC 3339 times") from None
    time_field = TIME_FIELDS.get(filters.get("timeField") or "QUEUED_AT")
    if time_field is None:
        raise GraphQLError(f"timeField must be one of {', '.join(TIME_FIELDS)}")
    statuses = filters.get("status") or []
    unknown = [s for s in statuses if s not in ALL_STATUSES]
    if unknown:
        raise GraphQLError(f"unknown status {unknown[0]}")
    first = arguments.get("first") or 40
    if not isinstance(first, int) or not 1 <= first <= 1000:
        raise GraphQLError("first must be between 1 and 1000")

    runs = store.select_runs(set(statuses), time_field, start, until)
    order = arguments.get("orderBy") or [{"field": "QUEUED_AT", "direction": "DESC"}]
    order = order[0] if isinstance(order, list) and order else order
    order = order if isinstance(order, dict) else {}
    sort_field = TIME_FIELDS.get(order.get("field"), time_field)
    runs.sort(key=lambda r: (r[sort_field] or datetime.min.replace(tzinfo=UTC), r["id"]),
              reverse=order.get("direction") == "DESC")
    after = arguments.get("after")
    page = runs
    if after:
        try:
            run_id = decode_cursor(after)
        except ValueError:
            raise GraphQLError("invalid cursor") from None
        position = next((i for i, r in enumerate(runs) if r["id"] == run_id), None)
        if position is None:
            raise GraphQLError("cursor does not match a run")
        page = runs[position + 1 :]
    edges = [{"cursor": encode_cursor(r), "node": gql_run(r)} for r in page[:first]]
    return {
        "edges": edges,
        "pageInfo": {
            "hasNextPage": len(page) > first,
            "hasPreviousPage": bool(after),
            "startCursor": edges[0]["cursor"] if edges else None,
            "endCursor": edges[-1]["cursor"] if edges else None,
        },
        "totalCount": len(runs),
    }
