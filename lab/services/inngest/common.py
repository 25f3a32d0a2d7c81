# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every module of the stand-in shares: run states, ids, times, cursors and the error answer."""

from __future__ import annotations

import base64
import json
import secrets
import time
from datetime import UTC, datetime

ENDED = frozenset({"COMPLETED", "FAILED", "CANCELLED", "SKIPPED"})
ALL_STATUSES = ("QUEUED", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "SKIPPED")
# The v1 REST API spells run states differently from GraphQL and v2.
V1_STATUS = {
    "QUEUED": "Scheduled",
    "RUNNING": "Running",
    "COMPLETED": "Completed",
    "FAILED": "Failed",
    "CANCELLED": "Cancelled",
    "SKIPPED": "Skipped",
}
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class RequestError(Exception):
    """An answer other than 200, with the status and the JSON body to send."""

    def __init__(self, status: int, body: object):
        super().__init__(status)
        self.status = status
        self.body = body


def new_ulid() -> str:
    """A ULID (48-bit millisecond time, 80 random bits), the id format Inngest uses for runs and events."""
    value = (int(time.time() * 1000) << 80) | secrets.randbits(80)
    chars = []
    for _position in range(26):
        chars.append(CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def now() -> datetime:
    return datetime.now(UTC)


def rfc3339(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(text: str) -> datetime:
    """RFC 3339 (``Z`` or an offset); a naive time is taken as UTC."""
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def encode_cursor(run: dict) -> str:
    return base64.urlsafe_b64encode(run["id"].encode()).decode()


def decode_cursor(cursor: str) -> str:
    """The run id in a cursor; ValueError when it is not one of ours."""
    return base64.urlsafe_b64decode(cursor.encode()).decode()


def json_or_text(raw: bytes) -> object:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode("utf-8", "replace")
