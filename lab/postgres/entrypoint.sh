#!/bin/sh
# PostgreSQL 15 for the rehearsal lab: create the cluster and the seeded `synap` database on first start
# (the data volume keeps them across restarts), then run the server in the foreground.
set -eu
PGDATA=${PGDATA:-/var/lib/postgresql/data}
export PGDATA
here=$(dirname "$0")
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }

mkdir -p "$PGDATA" /run/postgresql
chown postgres:postgres "$PGDATA" /run/postgresql
chmod 700 "$PGDATA"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  echo "initialising the lab cluster"
  as_postgres initdb -D "$PGDATA" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >/dev/null
  # initdb -A trust covers local sockets only; the lab's other containers and the host come over TCP.
  echo "host all all 0.0.0.0/0 trust" >>"$PGDATA/pg_hba.conf"
  cat "$here/postgresql.conf" >>"$PGDATA/postgresql.conf"
  as_postgres pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  as_postgres psql -v ON_ERROR_STOP=1 -q -U postgres -d postgres -f "$here/roles.sql"
  as_postgres psql -v ON_ERROR_STOP=1 -q -U postgres -d synap -c "CREATE EXTENSION pg_stat_statements"
  # The stand-ins' tables and data; with Synap's real backend its own migrations make the schema and
  # `synap-play lab up` seeds it (lab/backend/seed.sql).
  if [ "${SYNAP_LAB_BACKEND:-standin}" != real ]; then
    as_postgres psql -v ON_ERROR_STOP=1 -q -U postgres -d synap -c "SET ROLE synap" -f "$here/schema.sql"
    as_postgres psql -v ON_ERROR_STOP=1 -q -U postgres -d synap -f "$here/seed.sql"
    # The seed state kept aside, before any client connects: `synap-play lab reset` copies it back in seconds.
    as_postgres psql -v ON_ERROR_STOP=1 -q -U postgres -d postgres -c "CREATE DATABASE synap_seed TEMPLATE synap"
  fi
  as_postgres pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "lab cluster ready"
fi

exec setpriv --reuid=postgres --regid=postgres --init-groups postgres -D "$PGDATA"
