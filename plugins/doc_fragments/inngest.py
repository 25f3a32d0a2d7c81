# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # Connection options shared by every synap.ops Inngest module.
    DOCUMENTATION = r"""
options:
  url:
    description:
      - Base URL of the Inngest server (the runbook's dashboard, port 8288).
      - Inventory variable C(synap_inngest_url).
    type: str
    default: http://localhost:8288
  signing_key:
    description:
      - Inngest signing key, sent as an C(Authorization) bearer token on C(/v1) and C(/v2) requests.
      - A dev server (C(inngest dev)) checks no key, so it may be left out there.
      - If not set, the E(INNGEST_SIGNING_KEY) environment variable is used. Never returned or logged.
    type: str
  timeout:
    description: Seconds to wait for each HTTP answer.
    type: float
    default: 10.0
  validate_certs:
    description: Verify the server's TLS certificate when O(url) is HTTPS.
    type: bool
    default: true
notes:
  - Only the endpoints of the open-source Inngest server's HTTP API are used, so a self-hosted server,
    a dev server and the rehearsal lab's stand-in all work.
"""

    EVENT_KEY = r"""
options:
  event_key:
    description:
      - Inngest event key, the path of C(POST /e/{key}). Any value works against a dev server.
      - If not set, the E(INNGEST_EVENT_KEY) environment variable is used. Never returned or logged.
    type: str
"""
