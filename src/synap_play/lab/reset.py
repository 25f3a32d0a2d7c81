"""`synap-play lab reset`: back to the healthy seed state.

In place where the lab kept its seed (the stand-ins' database copied aside as it was seeded, the deploy checkout's
first release tagged): the faults' own services and the monitoring removed, PostgreSQL's settings and database
restored from the copy, the checkout back at its tag, the other services created anew as compose.yaml has them (one
replica each), then the monitoring, once they are healthy, as up starts it. That takes seconds where down and up
take a minute and more; a lab without a kept seed (Synap's real backend, a lab brought up before there was one) is
taken down and up again."""

from __future__ import annotations

from synap_play.lab import access, ssh
from synap_play.lab.checkout import SEED_TAG
from synap_play.lab.stack import SERVICES, Lab

SEED_DATABASE = "synap_seed"  # lab/postgres/entrypoint.sh copies the seeded database to it
IN_PLACE, DOWN_AND_UP = "in place", "down and up"


def reset(lab: Lab) -> str:
    """Reset LAB; how it was done (IN_PLACE or DOWN_AND_UP)."""
    lab.check_engine()
    if seed_kept(lab):
        _reset_in_place(lab)
        return IN_PLACE
    running_backend = lab.running_backend()
    lab.down()
    lab.up(running_backend)
    return DOWN_AND_UP


def seed_kept(lab: Lab) -> bool:
    """Whether the lab is up with its seed kept: its database copy (PostgreSQL started if a fault stopped it) and
    the checkout's tag."""
    if "postgres" not in lab.services() or not lab.deploy.exists():
        return False
    if SEED_TAG not in lab.deploy.git("tag", "--list", SEED_TAG).split():
        return False
    lab.start_service("postgres")
    lab.wait_healthy(["postgres"], timeout=60)
    return bool(access.sql("SELECT 1 FROM pg_database WHERE datname = %s", (SEED_DATABASE,), database="postgres"))


def _reset_in_place(lab: Lab) -> None:
    # Monitoring goes first and comes back last, anew, as after up: the reset itself (the database dropped and
    # copied back, PostgreSQL restarted) would otherwise fire alerts and page the receiver, and an alert of the
    # fault before would stay active in Alertmanager for minutes.
    kept = {*SERVICES, ssh.SERVICE}
    extra = sorted(set(lab.services()) - kept)
    if extra:
        lab.progress(f"removing {', '.join(extra)}")
        lab.compose("rm", "--stop", "--force", *extra)
    lab.progress("stopping api and jobs")
    lab.compose("stop", "--timeout", "5", "api", "jobs")  # their sessions would hold the database
    _restore_database(lab)
    lab.progress(f"deploy checkout back to {SEED_TAG}")
    lab.deploy.git("reset", "-q", "--hard", SEED_TAG)
    lab.deploy.git("clean", "-fdq")
    # Created anew: Inngest's stand-in keeps its queue and runs in memory, the api its integration switches, and a
    # fault or a mitigation may have scaled, stopped or reconfigured any of them. Removed first, so that the one
    # replica left is number 1 again (synap-lab-api-1), as after up.
    services = [name for name in SERVICES if name != "postgres"]
    lab.progress(f"creating {', '.join(services)} anew, one replica each")
    lab.compose("rm", "--stop", "--force", *services)
    lab.compose("up", "-d", "--no-deps", *services)
    lab.wait_ready()
    lab.start_monitoring()
    if lab.services().get(ssh.SERVICE, {}).get("state") != "running":
        lab.start_ssh_host()
    (lab.state_dir / "faults.json").unlink(missing_ok=True)


def _restore_database(lab: Lab) -> None:
    """PostgreSQL's settings as postgresql.conf has them, the database copied back from its seed, statistics reset
    (a statement's mean since the reset is what the diagnosis ranks)."""
    changed = access.sql("SELECT count(*) FROM pg_file_settings WHERE sourcefile LIKE '%postgresql.auto.conf'",
                         database="postgres")[0][0]
    if changed:
        lab.progress("PostgreSQL's settings back to postgresql.conf (restart)")
        access.sql("ALTER SYSTEM RESET ALL", database="postgres")
        lab.compose("restart", "--timeout", "20", "postgres")
        lab.wait_healthy(["postgres"], timeout=60)
    lab.progress(f"database synap copied from {SEED_DATABASE}")
    access.sql("DROP DATABASE IF EXISTS synap WITH (FORCE)", database="postgres", timeout=30)
    access.sql(f"CREATE DATABASE synap OWNER synap TEMPLATE {SEED_DATABASE}", database="postgres", timeout=60)
    access.sql("SELECT pg_stat_statements_reset()")
    access.sql("SELECT pg_stat_reset()")
