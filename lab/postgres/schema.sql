-- The Synap tables the runbook touches (see the shared Synap reference). Run as the application role, which
-- then owns them: by entrypoint.sh in the lab, and by the tests' throwaway cluster (tests/postgres/pg_cluster.py).
-- Every table comes before the first index: bench/pg_diagnostics.py loads the tables alone, then indexes them.

CREATE TABLE workspaces (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  owner_id text,
  name text NOT NULL,
  description text,
  type text NOT NULL DEFAULT 'personal',
  settings jsonb NOT NULL DEFAULT '{}',
  subscription_tier text,
  subscription_status text,
  stripe_customer_id text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE entities (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id text NOT NULL,
  workspace_id uuid,
  project_ids uuid[] NOT NULL DEFAULT '{}',
  type text NOT NULL,
  title text,
  preview text,
  document_id uuid,
  metadata jsonb NOT NULL DEFAULT '{}',
  version int NOT NULL DEFAULT 1,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  deleted_at timestamptz
);

CREATE TABLE proposals (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  workspace_id text NOT NULL,
  target_type text NOT NULL,
  target_id text NOT NULL,
  request jsonb NOT NULL,
  status text NOT NULL DEFAULT 'pending',
  reviewed_by text,
  reviewed_at timestamptz,
  rejection_reason text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- The index the `latency` fault drops: without it every workspace lookup is a sequential scan.
CREATE INDEX entities_workspace_id_idx ON entities (workspace_id);
CREATE INDEX entities_user_id_idx ON entities (user_id);
-- As in Synap: no index on status alone.
CREATE INDEX proposals_workspace_status_idx ON proposals (workspace_id, status);
CREATE INDEX proposals_target_idx ON proposals (target_type, target_id);
