#!/usr/bin/env bash
# Runbook scenario 5, Proposal System Failure: its Diagnosis Steps as written, against the lab, one after another.
. "$(dirname "$0")/lab-env.sh"

# 1. Check global validator logs
cd "$LAB_DIR" && docker compose logs jobs | grep global-validator

# 2. Check proposals table
psql $DATABASE_URL -c "
  SELECT status, count(*) 
  FROM proposals 
  GROUP BY status;
"

# 3. Check Inngest events ("navigate to http://localhost:8288 -> Events, look for *.requested events"). The
#    Events page is the documented GET /v1/events (last hour, at most 51, exact names only), so *.requested is
#    matched here, as the eye does on the page.
curl -s -H "Authorization: Bearer $INNGEST_SIGNING_KEY" "$INNGEST_URL/v1/events?limit=51" \
  | grep -o '"name": *"[^"]*\.requested"' | sort | uniq -c

# 4. Check workspace settings
psql $DATABASE_URL -c "
  SELECT id, settings->>'aiAutoApprove' 
  FROM workspaces 
  LIMIT 10;
"
