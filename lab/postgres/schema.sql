-- The Synap tables the runbook touches (see the shared Synap reference), owned by the application role.
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
SET ROLE synap;

CREATE TABLE workspaces (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  owner_id text NOT NULL,
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
  workspace_id uuid REFERENCES workspaces (id),
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
-- The index the `latency` fault drops: without it every workspace lookup is a sequential scan.
CREATE INDEX entities_workspace_id_idx ON entities (workspace_id);
CREATE INDEX entities_user_id_idx ON entities (user_id);

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
-- As in Synap: no index on status alone.
CREATE INDEX proposals_workspace_status_idx ON proposals (workspace_id, status);
CREATE INDEX proposals_target_idx ON proposals (target_type, target_id);
RESET ROLE;
