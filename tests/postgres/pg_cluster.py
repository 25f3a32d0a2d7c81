"""A throwaway PostgreSQL 15 cluster: initdb + pg_ctl on a temporary directory and a free port.

Used by the tests' fixtures and by bench/pg_diagnostics.py. initdb refuses to run as root, so when we are
root the server runs as the ``postgres`` system user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

SUPERUSER = "postgres"
SUPERUSER_PASSWORD = "synap-test-superuser"
APP_USER = "synap_app"
APP_PASSWORD = "synap-test-app"

# Synap's tables and indexes: the lab's schema, the one copy of it.
SYNAP_SCHEMA = (Path(__file__).resolve().parents[2] / "lab" / "postgres" / "schema.sql").read_text()


def find_bindir() -> Path:
    candidates = []
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False).stdout.strip()
        if out:
            candidates.append(Path(out))
    candidates.append(Path("/usr/lib/postgresql/15/bin"))
    for candidate in candidates:
        if (candidate / "initdb").exists() and (candidate / "pg_ctl").exists():
            return candidate
    raise RuntimeError("PostgreSQL server binaries not found; install postgresql-15 (apt-get install postgresql-15)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Cluster:
    """One PostgreSQL server; ``start()`` creates it on first use, ``destroy()`` stops it and removes it."""

    def __init__(self, max_connections: int = 25, extra_settings: dict | None = None):
        self.bindir = find_bindir()
        self.port = free_port()
        self.max_connections = max_connections
        self.extra_settings = extra_settings or {}
        self.base = Path(tempfile.mkdtemp(prefix="synap-pg-"))
        self.datadir = self.base / "data"
        self.logfile = self.base / "server.log"
        self.run_as = None
        if os.geteuid() == 0:
            self.run_as = pwd.getpwnam("postgres")
            os.chown(self.base, self.run_as.pw_uid, self.run_as.pw_gid)
        self._initdb()

    # -- process control -------------------------------------------------------------------------
    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(a) for a in args]
        if self.run_as is not None:
            cmd = ["runuser", "-u", self.run_as.pw_name, "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=self.base)
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stdout}{proc.stderr}")
        return proc

    def _initdb(self) -> None:
        pwfile = self.base / "pwfile"
        pwfile.write_text(SUPERUSER_PASSWORD + "\n")
        if self.run_as is not None:
            os.chown(pwfile, self.run_as.pw_uid, self.run_as.pw_gid)
        self._run(self.bindir / "initdb", "-D", self.datadir, "-U", SUPERUSER, "--pwfile", pwfile,
                  "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
        pwfile.unlink()
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": self.port,
            "unix_socket_directories": f"'{self.base}'",
            "max_connections": self.max_connections,
            "superuser_reserved_connections": 3,
            "shared_preload_libraries": "'pg_stat_statements'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "shared_buffers": "'128MB'",
            "log_min_messages": "warning",
            "deadlock_timeout": "'60s'",  # keeps deliberate lock waits from turning into deadlock checks
        }
        settings.update(self.extra_settings)
        with (self.datadir / "postgresql.conf").open("a") as conf:
            for key, value in settings.items():
                conf.write(f"{key} = {value}\n")

    def start(self) -> None:
        self._run(self.bindir / "pg_ctl", "-D", self.datadir, "-l", self.logfile, "-w", "-t", "60", "start")

    def stop(self) -> None:
        self._run(self.bindir / "pg_ctl", "-D", self.datadir, "-m", "immediate", "-w", "stop", check=False)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.base, ignore_errors=True)

    # -- connecting --------------------------------------------------------------------------------
    def dsn(self, db: str = "synap", user: str = SUPERUSER, password: str | None = None) -> str:
        if password is None:
            password = SUPERUSER_PASSWORD if user == SUPERUSER else APP_PASSWORD
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{db}"

    def connect(self, db: str = "synap", user: str = SUPERUSER, application_name: str = "pytest", **kwargs):
        import psycopg

        return psycopg.connect(self.dsn(db, user), application_name=application_name, autocommit=True, **kwargs)

    def prepare_synap(self) -> None:
        """Create the application role, the ``synap`` database with Synap's tables, and pg_stat_statements."""
        with self.connect(db="postgres") as conn:
            conn.execute(f"CREATE ROLE {APP_USER} LOGIN PASSWORD '{APP_PASSWORD}'")
            conn.execute(f"CREATE DATABASE synap OWNER {APP_USER}")
        with self.connect() as conn:
            conn.execute(f"SET ROLE {APP_USER}")
            conn.execute(SYNAP_SCHEMA)
            conn.execute("RESET ROLE")
            conn.execute("CREATE EXTENSION pg_stat_statements")
