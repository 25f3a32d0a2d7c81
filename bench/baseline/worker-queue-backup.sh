#!/usr/bin/env bash
# Runbook scenario 2, Worker Queue Backup: its Diagnosis Steps as written, against the lab, one after another.
. "$(dirname "$0")/lab-env.sh"

# 1. Check Inngest dashboard ("open http://localhost:8288"). The dashboard's queue depth is the server's gauge
#    on /metrics, the closest documented HTTP call.
curl -s $INNGEST_URL/metrics | grep inngest_queue_depth

# 2. Check for stuck jobs: look for jobs in "running" state for > 5 minutes. The UI lists runs with the
#    GraphQL runs query on /v0/gql (documented, no key needed): RUNNING runs started before the threshold.
from=$(date -u -d '1 day ago' +%Y-%m-%dT%H:%M:%SZ)
until=$(date -u -d "$STUCK_SECONDS seconds ago" +%Y-%m-%dT%H:%M:%SZ)
query='query($from: Time!, $until: Time) { runs(first: 100, orderBy: [{field: STARTED_AT, direction: ASC}], filter: {from: $from, until: $until, timeField: STARTED_AT, status: [RUNNING]}) { edges { node { id status startedAt function { slug } eventName } } totalCount } }'
curl -s -X POST $INNGEST_URL/v0/gql -H 'Content-Type: application/json' \
  --data "{\"query\": \"$query\", \"variables\": {\"from\": \"$from\", \"until\": \"$until\"}}"
echo

# 3. Check worker logs
cd "$LAB_DIR" && docker compose logs jobs --tail=100

# 4. Check database load
psql $DATABASE_URL -c "SELECT * FROM pg_stat_activity WHERE state = 'active';"
