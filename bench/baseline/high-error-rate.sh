#!/usr/bin/env bash
# Runbook scenario 1, High Error Rate: its Diagnosis Steps as written, against the lab, one after another.
. "$(dirname "$0")/lab-env.sh"

# 1. Check recent deployments
cd "$DEPLOY_DIR" && git log --oneline -10

# 2. Check API logs for errors
cd "$LAB_DIR" && docker compose logs api --tail=100 | grep ERROR

# 3. Check database connectivity
psql $DATABASE_URL -c "SELECT 1;"

# 4. Check Inngest worker status (as written: /api/health is not an API route and answers the UI's HTML page)
curl $INNGEST_URL/api/health
