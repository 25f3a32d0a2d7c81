# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One mitigator at a time: two runs of one scenario against one target must not both mitigate.

Two layers, both released by the operating system or the server when the holder dies, so a crashed holder
never leaves a stale lock behind:

* A PostgreSQL session-level advisory lock on the target's own database, held on a dedicated connection for
  the whole run. Every operator who can reach the database sees it: the holder's connection carries
  ``application_name = "synap-play lock <operator>@<host> <incident>"`` and its last statement (what
  ``pg_stat_activity.query`` shows) ends in a JSON comment with operator, host, incident id, pid and since.
  When the holder's process dies its connection closes and PostgreSQL drops the lock at once; TCP keepalives
  cover a holder whose machine vanished.
* A local lock file (``fcntl.flock``) in a shared directory, always taken too: it keeps two runs on one machine
  apart when the database is down, which is exactly when database-connection-failure runs. The kernel drops
  a flock when its process dies.

Diagnosis (``--check``) never takes either. The synap.ops.incident callback takes it in ansible-playbook's own
process when a scenario's play starts and holds it until the playbook ends, whoever started the playbook.

    with mitigator_lock("worker-queue-backup", target, dsn=url, operator="alice", incident_id=iid) as held:
        ...  # held.where says which layers hold it

The second run gets ``MitigatorBusy`` (exit code 5) naming the holder, or waits ``wait`` seconds first.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import json
import os
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ansible_collections.synap.ops.plugins.plugin_utils.incident_record import iso, utcnow
from ansible_collections.synap.ops.plugins.plugin_utils.protocol import LOCK_DIR_ENV, ExitCode

# First half of the two-int advisory key: marks the lock as synap-play's among any other advisory locks.
LOCK_NAMESPACE = int.from_bytes(hashlib.blake2b(b"synap-play mitigator", digest_size=4).digest()) & 0x7FFFFFFF
HOLDER_MARK = "synap-play holder: "
# Shared by every operator of this machine; $SYNAP_PLAY_LOCK_DIR moves it (tests use a private one).
DEFAULT_LOCK_DIR = Path(tempfile.gettempdir()) / "synap-play-locks"
POLL_SECONDS = 1.0


@dataclass(frozen=True)
class Holder:
    operator: str
    host: str
    incident_id: str
    since: str
    pid: int
    where: str = ""

    def describe(self) -> str:
        return (f"operator {self.operator} on host {self.host}, incident {self.incident_id}, since {self.since} "
                f"(pid {self.pid}, {self.where})")


@dataclass
class HeldLock:
    """What the caller holds: ``where`` lists the layers ("postgresql host:port/db", "file /path")."""

    scenario: str
    target: str
    holder: Holder
    where: list[str] = field(default_factory=list)


class MitigatorBusy(Exception):
    """Another run is mitigating this scenario on this target."""

    exit_code = int(ExitCode.LOCKED)

    def __init__(self, scenario: str, target: str, holder: Holder | None):
        self.scenario, self.target, self.holder = scenario, target, holder
        who = holder.describe() if holder else "holder unknown"
        super().__init__(f"another synap-play run is mitigating {scenario} on {target}: {who}; wait for it to "
                         f"finish, or run with --check to diagnose only")


def lock_key(scenario: str, target: str) -> int:
    """Second half of the advisory key: stable across hosts and Python versions (hash() is salted)."""
    digest = hashlib.blake2b(f"{scenario}\0{target}".encode(), digest_size=4).digest()
    return int.from_bytes(digest) & 0x7FFFFFFF


def describe_dsn(dsn: str) -> str:
    """host:port/db of a DSN, without user or password: the lock's target and what messages may show."""
    from psycopg.conninfo import conninfo_to_dict

    try:
        parts = conninfo_to_dict(dsn)
    except Exception:  # psycopg raises ProgrammingError for garbage; the DSN itself must not leak into a message
        return "an unparsable database URL"
    return f"{parts.get('host') or 'localhost'}:{parts.get('port') or 5432}/{parts.get('dbname') or ''}"


@contextlib.contextmanager
def mitigator_lock(scenario: str, target: str, *, dsn: str | None, operator: str, incident_id: str,
                   wait: float = 0.0, check: bool = False, lock_dir: Path | None = None,
                   connect_timeout: int = 5) -> Iterator[HeldLock | None]:
    """Hold the scenario+target lock for the block; MitigatorBusy if someone else holds it after ``wait`` s.

    ``check``: diagnosis only, take nothing and yield None. ``dsn`` None or unreachable: the file layer only.
    """
    if check:
        yield None
        return
    holder = Holder(operator=operator, host=socket.gethostname(), incident_id=incident_id, since=iso(utcnow()),
                    pid=os.getpid())
    held = HeldLock(scenario, target, holder)
    deadline = time.monotonic() + max(0.0, wait)
    key = lock_key(scenario, target)
    with contextlib.ExitStack() as stack:
        lock_dir = lock_dir or Path(os.environ.get(LOCK_DIR_ENV) or DEFAULT_LOCK_DIR)
        file_path = stack.enter_context(_file_lock(lock_dir, scenario, key, holder, deadline,
                                                   scenario_target=(scenario, target)))
        held.where.append(f"file {file_path}")
        connection = _connect(dsn, holder, connect_timeout) if dsn else None
        if connection is not None:
            stack.callback(connection.close)
            _advisory_lock(connection, key, holder, deadline, scenario, target)
            held.where.append(f"postgresql {describe_dsn(dsn)}")
        yield held


# -- the file layer -------------------------------------------------------------------------------------
@contextlib.contextmanager
def _file_lock(lock_dir: Path, scenario: str, key: int, holder: Holder, deadline: float,
               scenario_target: tuple[str, str]) -> Iterator[Path]:
    lock_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(PermissionError):
        lock_dir.chmod(0o1777)  # every operator on this machine shares it, like /tmp
    path = lock_dir / f"{scenario}-{key:08x}.lock"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        writable = True
        with contextlib.suppress(PermissionError):
            os.fchmod(fd, 0o666)  # past the umask: the next operator must be able to record themselves too
    except PermissionError:
        # Another operator's file we may not write: flock works on a read-only descriptor all the same.
        fd, writable = os.open(path, os.O_RDONLY), False
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise MitigatorBusy(*scenario_target, _holder_from_file(path)) from None
                time.sleep(POLL_SECONDS)
        if writable:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(asdict(holder)).encode(), 0)
        try:
            yield path
        finally:
            if writable:
                os.ftruncate(fd, 0)  # the file stays (removing it would race a waiter); only its holder goes
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _holder_from_file(path: Path) -> Holder | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Holder(**{**data, "where": f"lock file {path}"})
    except (OSError, ValueError, TypeError):
        return None


# -- the PostgreSQL layer -------------------------------------------------------------------------------
def _connect(dsn: str, holder: Holder, connect_timeout: int):
    """A dedicated autocommit connection, or None when the database cannot be reached (the file lock stands)."""
    import psycopg

    application_name = f"synap-play lock {holder.operator}@{holder.host} {holder.incident_id}"[:63]
    try:
        return psycopg.connect(dsn, autocommit=True, application_name=application_name,
                               connect_timeout=connect_timeout, keepalives=1, keepalives_idle=30,
                               keepalives_interval=10, keepalives_count=3)
    except psycopg.Error:
        return None


def _advisory_lock(connection, key: int, holder: Holder, deadline: float, scenario: str, target: str) -> None:
    # The holder rides in a comment of the lock statement, so pg_stat_activity.query shows it to everyone.
    # No bound parameters: the statement text is then exactly what other sessions see.
    comment = json.dumps(asdict(holder)).replace("*/", "* /")
    statement = f"SELECT pg_try_advisory_lock({LOCK_NAMESPACE}, {key}) /* {HOLDER_MARK}{comment} */"
    while True:
        if connection.execute(statement).fetchone()[0]:
            return
        if time.monotonic() >= deadline:
            raise MitigatorBusy(scenario, target, advisory_holder(connection, key))
        time.sleep(POLL_SECONDS)


def advisory_holder(connection, key: int) -> Holder | None:
    """Who holds synap-play's advisory lock ``key``, as every session can see it."""
    row = connection.execute(
        "SELECT a.pid, a.application_name, a.query, a.backend_start, host(a.client_addr)"
        " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.granted AND l.classid = %s AND l.objid = %s AND l.objsubid = 2",
        (LOCK_NAMESPACE, key),
    ).fetchone()
    if row is None:
        return None
    backend_pid, application_name, query, backend_start, client = row
    where = f"postgresql backend {backend_pid}"
    if query and HOLDER_MARK in query:
        try:
            data = json.loads(query.split(HOLDER_MARK, 1)[1].rsplit("*/", 1)[0])
            return Holder(**{**data, "where": where})
        except (ValueError, TypeError):
            pass
    # Query text is hidden from other roles without pg_read_all_stats; application_name is not.
    return Holder(operator=application_name or "unknown", host=client or "local socket", incident_id="unknown",
                  since=iso(backend_start) or "unknown", pid=backend_pid, where=where)


def lock_target(dsn: str | None, inventory_label: str, limit: str | None = None) -> str:
    """What "the same target" means: the same database when the run has one, else the same inventory and limit."""
    if dsn:
        return describe_dsn(dsn)
    return f"inventory {inventory_label}" + (f" (limit {limit})" if limit else "")
