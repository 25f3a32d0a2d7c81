#!/usr/bin/env bash
# Runbook scenario 4, Elevated Latency: its Diagnosis Steps as written, against the lab, one after another.
. "$(dirname "$0")/lab-env.sh"

# 1. Check API metrics
curl $API_URL/metrics | grep api_request_duration

# 2. Check database query performance
psql $DATABASE_URL -c "
  SELECT query, calls, mean_exec_time, max_exec_time 
  FROM pg_stat_statements 
  ORDER BY mean_exec_time DESC 
  LIMIT 10;
"

# 3. Check for N+1 queries: "review recent code changes for missing includes/joins" is reading code, with no
#    command in the runbook; not timed here.

# 4. Check external service latency: "review Hub Protocol request logs". In the lab the Hub Protocol is the
#    compose service hub; its log is the closest thing to read.
cd "$LAB_DIR" && docker compose logs hub --tail=100
