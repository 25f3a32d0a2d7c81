# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  dsn:
    description:
      - PostgreSQL connection string, as a URL (V(postgresql://user:pass@host:5432/synap)) or C(key=value) pairs.
      - Falls back to the E(DATABASE_URL) environment variable, as the runbook's C(psql $DATABASE_URL) does.
      - The password part is never returned; messages show the target as C(user@host:port/db).
    type: str
  login_host:
    description:
      - Host to connect to. Overrides the host of O(dsn).
    type: str
  login_port:
    description:
      - Port to connect to. Overrides the port of O(dsn).
    type: int
  login_user:
    description:
      - User to connect as. Overrides the user of O(dsn).
      - Connect as a superuser to diagnose a saturated server; superusers use the reserved connection slots.
    type: str
  login_password:
    description:
      - Password of O(login_user). Overrides the password of O(dsn).
    type: str
  db:
    description:
      - Database to connect to. Overrides the database of O(dsn).
    type: str
  connect_timeout:
    description:
      - Seconds to wait for the connection before reporting a C(timeout).
    type: int
    default: 5
  statement_timeout:
    description:
      - Seconds any single statement of the module may run before the server cancels it.
      - Low by default so a diagnosis never adds load to a server that is already in trouble.
    type: float
    default: 3.0
  lock_timeout:
    description:
      - Seconds the module waits for a lock before giving up, so it never joins a blocking chain.
    type: float
    default: 1.0
notes:
  - The module opens exactly one connection, with C(application_name=synap-play).
  - "A failed connection is classified as one of V(refused), V(too_many_clients), V(auth_failed),
    V(database_missing), V(timeout), V(dns) (the host name does not resolve), V(tls) (SSL refused or a
    certificate problem) or V(error)."
requirements:
  - psycopg >= 3.1
"""
