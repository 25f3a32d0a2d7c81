#!/bin/sh
# The lab's `api` and `jobs` services: `start.sh api` or `start.sh jobs`. Which backend runs is the lab's choice
# (SYNAP_LAB_BACKEND, written to lab/.env by `synap-play lab up`): our stand-ins, or Synap's real backend built
# from its source (lab/backend/README.md).
set -eu
role=$1

if [ "${SYNAP_LAB_BACKEND:-standin}" != real ]; then
  case $role in
    api) exec python3 /srv/api/server.py --port 3000 ;;
    jobs) exec python3 /srv/jobs/worker.py --port 3001 ;;
  esac
  echo "start.sh: unknown role $role" >&2
  exit 2
fi

# Synap's real backend: one program for both roles (the image's tree at /srv/app), running the release the deploy
# checkout holds (/srv/deploy/dist; its node_modules link is the image's dependencies). Every instance applies the
# migrations first: idempotent, and serialised by an advisory lock when replicas start together.
cd /srv/app
node lab/migrate.mjs
if [ "$role" = jobs ]; then
  # The jobs instance is the one Inngest calls: it registers its functions (the SDK does on a PUT of its serve
  # path), and again every 10 s, as Inngest's dev server re-syncs its apps, so a restarted Inngest has them back.
  serve="http://127.0.0.1:${PORT}/api/inngest"
  (
    until curl -fsS -o /dev/null -X PUT "$serve" 2>/dev/null; do sleep 1; done
    while sleep 10; do curl -fsS -o /dev/null -X PUT "$serve" 2>/dev/null || true; done
  ) &
fi
exec node /srv/deploy/dist/index.js
