"""A mitigator in its own process: takes the lock, says so on stdout, holds it until stdin closes.

Used by test_lock.py to run two real concurrent holders. Exit 5 with the one-line message when the lock is
held by someone else (what synap-play prints), 0 after a clean release.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from synap_play import collection

collection.load()
from ansible_collections.synap.ops.plugins.plugin_utils.mitigator_lock import MitigatorBusy, mitigator_lock  # noqa: E402


def main() -> int:
    scenario, target, dsn, operator, incident_id, lock_dir, wait = sys.argv[1:8]
    try:
        with mitigator_lock(scenario, target, dsn=dsn or None, operator=operator, incident_id=incident_id,
                            wait=float(wait), lock_dir=Path(lock_dir)) as held:
            print(json.dumps({"where": held.where}), flush=True)
            sys.stdin.read()
    except MitigatorBusy as busy:
        print(busy, file=sys.stderr)
        return busy.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
