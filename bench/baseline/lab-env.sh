# Sourced by the baseline scripts: where the runbook's commands point when they run against the rehearsal lab.
# The values are inventory/lab/group_vars/all.yml's (the lab's throwaway endpoints and keys); each can be moved
# with an environment variable, as the lab's ports can.
SYNAP_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export DATABASE_URL=${SYNAP_LAB_DATABASE_URL:-postgresql://postgres@127.0.0.1:25432/synap}
# The runbook runs `docker compose` in the stack's folder; the lab's folder is lab/, its project synap-lab.
export COMPOSE_PROJECT_NAME=synap-lab
LAB_DIR=${SYNAP_LAB_DIR:-$SYNAP_ROOT/lab}
DEPLOY_DIR=${SYNAP_LAB_DEPLOY_DIR:-$SYNAP_ROOT/lab/state/deploy}
API_URL=${SYNAP_LAB_API_URL:-http://127.0.0.1:3000}
INNGEST_URL=${SYNAP_LAB_INNGEST_URL:-http://127.0.0.1:8288}
INNGEST_SIGNING_KEY=${SYNAP_LAB_INNGEST_SIGNING_KEY:-signkey-lab-8d2f4c1e6a7b9053}
# The lab shortens the runbook's "running for > 5 minutes" (synap_threshold_stuck_run_seconds), so both sides
# of the benchmark look at the same runs.
STUCK_SECONDS=${SYNAP_LAB_STUCK_SECONDS:-5}
# psql ships with the PostgreSQL server binaries that scripts/bootstrap installs.
command -v psql >/dev/null || PATH=/usr/lib/postgresql/15/bin:$PATH
# A stopped server answers "refused" at once; a hung one should not hold the script forever.
export PGCONNECT_TIMEOUT=${PGCONNECT_TIMEOUT:-10}
