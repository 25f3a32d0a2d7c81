#!/usr/bin/env bash
# Runbook scenario 3, Database Connection Failure: its Diagnosis Steps as written, against the lab, one after
# another.
. "$(dirname "$0")/lab-env.sh"

# 1. Check PostgreSQL is running
cd "$LAB_DIR" && docker compose ps postgres

# 2. Check connection count. As written, PostgreSQL rejects it (s.max_connections must appear in GROUP BY);
#    the person then runs it again with the GROUP BY, so both are here.
psql $DATABASE_URL -c "
  SELECT count(*) as connections, 
         max_connections 
  FROM pg_stat_activity, 
       (SELECT setting::int as max_connections FROM pg_settings WHERE name='max_connections') s;
"
psql $DATABASE_URL -c "
  SELECT count(*) as connections, 
         max_connections 
  FROM pg_stat_activity, 
       (SELECT setting::int as max_connections FROM pg_settings WHERE name='max_connections') s
  GROUP BY max_connections;
"

# 3. Check for connection leaks
psql $DATABASE_URL -c "
  SELECT application_name, count(*) 
  FROM pg_stat_activity 
  GROUP BY application_name;
"
