# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Compiled code kept in a file for another process: Jinja's code for the next worker of a run
(templating_caches.py), the triage rules' code for the next synap-play triage (triage.py). Marshal is Python's own
format for code; what such a file holds is run, so it lives only in a folder of the user's own (0700)."""

from __future__ import annotations

import contextlib
import marshal
import os
import tempfile
from typing import Any


def load(path: str) -> Any:
    """What PATH holds, or None when it is missing, cut short or not marshal (another Python's, say)."""
    try:
        with open(path, "rb") as kept:
            return marshal.load(kept)
    except (OSError, EOFError, ValueError, TypeError):
        return None


def dump(path: str, value: Any) -> None:
    """VALUE marshalled to PATH, whole or not at all (os.replace); a folder that cannot be written keeps nothing."""
    with contextlib.suppress(OSError, ValueError):
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        with tempfile.NamedTemporaryFile("wb", dir=os.path.dirname(path), suffix=".partial", delete=False) as partial:
            try:
                marshal.dump(value, partial)
            except ValueError:
                os.unlink(partial.name)
                raise
        os.replace(partial.name, path)
