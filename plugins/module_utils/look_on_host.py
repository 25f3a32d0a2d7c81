# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The far end of synap-play's first look over SSH: a scenario's look-ups answered on the host a playbook reaches.

synap-play sends, over one SSH session, this collection's module_utils and ansible's (unpacked once per version
into ~/.cache/synap-play/look/ on the host), then one JSON line: ``{"look_ups": [{"key", "module", "args"}]}``.
Each look-up is answered as its module would answer it there (the module's argument checks, its gather(), its
secrets masked), side by side, and printed as it lands: one JSON line ``{"key", "result"}`` each, then
``{"done": true}``. Nothing is written on the host but that cache.
"""

from __future__ import annotations

import json
import sys
import threading

from ansible_collections.synap.ops.plugins.module_utils.info_modules import look_up_all


def main(stream=None, out=None):
    stream = stream or sys.stdin
    out = out or sys.stdout
    request = json.loads(stream.readline())
    calls = [(entry["module"], entry["args"]) for entry in request["look_ups"]]
    keys = [entry["key"] for entry in request["look_ups"]]
    writing = threading.Lock()

    def say(message):
        with writing:
            out.write(json.dumps(message, default=str) + "\n")
            out.flush()

    look_up_all(calls, lambda index, result: say({"key": keys[index], "result": result}))
    say({"done": True})
