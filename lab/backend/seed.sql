-- Deterministic seed data of realistic volume for Synap's real schema (after `node lab/migrate.mjs`): the
-- counterpart of lab/postgres/seed.sql. Re-runnable: it empties the tables it fills first.
-- Ids are md5-derived, so a load generator can compute them: workspace n (owned by user_<n>) is
-- seed_uuid('workspace:' || n), its table view seed_uuid('view:' || n), with seed_uuid below: the md5 with
-- the version digit set to 4 and the variant digit to 8, as the API's zod .uuid() inputs require.
-- One transaction: a failed run leaves the previous data, and now() is one instant for every row.
BEGIN;
SET ROLE synap;
SELECT setseed(0.42);
CREATE FUNCTION pg_temp.seed_uuid(key text) RETURNS uuid LANGUAGE sql IMMUTABLE
  AS $$ SELECT (substr(md5(key), 1, 12) || '4' || substr(md5(key), 14, 3) || '8' || substr(md5(key), 18))::uuid $$;

-- TRUNCATE workspaces CASCADE would also empty `roles`, whose four system roles come from migration 0007:
-- keep them aside and put them back.
CREATE TEMP TABLE seed_system_roles AS SELECT * FROM roles WHERE workspace_id IS NULL;
-- Also the app's own rows about the seeded users: preferences, and the event log, whose latest 100
-- *.requested / *.validated rows the API's event processor re-sends to Inngest every 5 s.
TRUNCATE users, workspaces, workspace_members, views, entities, proposals, user_preferences, events CASCADE;
INSERT INTO roles SELECT * FROM seed_system_roles;

-- 5,000 users, one workspace each. Only setup.status reads `users` (any row: "initialized"); rows are here
-- so that every session's userId is a real account.
INSERT INTO users (id, email, name, kratos_identity_id, email_verified, created_at, updated_at)
SELECT 'user_' || n,
       'user_' || n || '@example.invalid',
       'User ' || n,
       pg_temp.seed_uuid('kratos:' || n)::text,
       true,
       now() - (n || ' hours')::interval - interval '1 hour',
       now() - (n || ' hours')::interval - interval '1 hour'
FROM generate_series(1, 5000) AS n;

-- 30 % auto-approve AI changes (global-validator reads settings.aiAutoApprove); 60 % have a paid plan
-- (the others have no billing block, which the bad-deploy release does not expect).
INSERT INTO workspaces (id, owner_id, name, type, settings, subscription_tier, subscription_status,
                        created_at, updated_at)
SELECT pg_temp.seed_uuid('workspace:' || n),
       'user_' || n,
       'Workspace ' || n,
       CASE WHEN n % 7 = 0 THEN 'team' ELSE 'personal' END,
       jsonb_build_object('aiAutoApprove', n % 10 < 3)
         || CASE WHEN n % 5 < 3 THEN jsonb_build_object('billing', jsonb_build_object('plan', 'pro')) ELSE '{}' END,
       CASE WHEN n % 5 < 3 THEN 'pro' ELSE 'free' END,
       CASE WHEN n % 5 < 3 THEN 'active' END,
       now() - (n || ' hours')::interval,
       now() - (n || ' hours')::interval
FROM generate_series(1, 5000) AS n;

-- The owner's membership: workspaces.list/get, views.execute and the validator's permission check read it.
INSERT INTO workspace_members (id, workspace_id, user_id, role, joined_at)
SELECT pg_temp.seed_uuid('member:' || n), pg_temp.seed_uuid('workspace:' || n), 'user_' || n, 'owner',
       now() - (n || ' hours')::interval
FROM generate_series(1, 5000) AS n;

-- One structured view per workspace: views.execute runs its query over entities by workspace_id.
INSERT INTO views (id, workspace_id, user_id, type, category, name, metadata, created_at, updated_at)
SELECT pg_temp.seed_uuid('view:' || n),
       pg_temp.seed_uuid('workspace:' || n),
       'user_' || n,
       'table',
       'structured',
       'All entities',
       jsonb_build_object('config', jsonb_build_object('category', 'structured',
                                                       'query', jsonb_build_object('limit', 50)),
                          'entityCount', 40, 'createdBy', 'user_' || n),
       now() - (n || ' hours')::interval,
       now() - (n || ' hours')::interval
FROM generate_series(1, 5000) AS n;

-- 1,000,000 entities, 200 per workspace (entity e goes to workspace 1 + (e * 7919) % 5000, as in the stand-in),
-- owned by the workspace's owner. Only types the API's EntitySchema knows, with metadata its per-type schemas
-- accept: entities.list validates its output, and one `page` or `habit` row (or an `event` without
-- startTime/endTime) among a user's latest 50 turns the whole call into a 500. Notes and tasks dominate.
INSERT INTO entities (id, user_id, workspace_id, type, title, preview, metadata, created_at, updated_at)
SELECT pg_temp.seed_uuid('entity:' || e),
       'user_' || w,
       pg_temp.seed_uuid('workspace:' || w),
       t.type,
       'Entity ' || e,
       repeat(md5(e::text), 3),
       jsonb_build_object('source', CASE WHEN e % 3 = 0 THEN 'ai' ELSE 'user' END)
         || CASE t.type
              WHEN 'note' THEN jsonb_build_object('tags', '[]'::jsonb, 'format', 'markdown', 'isFavorite', e % 11 = 0)
              WHEN 'task' THEN jsonb_build_object('status', (ARRAY['todo', 'in_progress', 'done'])[1 + e % 3],
                                                  'priority', (ARRAY['low', 'medium', 'high'])[1 + e % 3])
              WHEN 'project' THEN jsonb_build_object('status', 'active')
              -- zod's .datetime(): UTC with a Z, no offset.
              WHEN 'event' THEN jsonb_build_object(
                'startTime', to_char((now() + (e || ' minutes')::interval) AT TIME ZONE 'UTC',
                                     'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                'endTime', to_char((now() + (e + 30 || ' minutes')::interval) AT TIME ZONE 'UTC',
                                   'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
              WHEN 'person' THEN jsonb_build_object('email', 'person' || e || '@example.invalid')
              WHEN 'file' THEN jsonb_build_object('mimeType', 'application/pdf', 'sizeBytes', 1024 + e,
                                                  'extension', 'pdf')
            END,
       now() - (e || ' minutes')::interval,
       now() - (e || ' minutes')::interval
FROM generate_series(1, 1000000) AS e
CROSS JOIN LATERAL (SELECT 1 + (e::bigint * 7919) % 5000 AS w) AS ws
-- (e - 1) / 5000 walks each workspace's own entities, so every workspace gets the mix.
CROSS JOIN LATERAL (
  SELECT (ARRAY['note', 'note', 'note', 'task', 'task', 'task', 'project', 'event', 'person', 'file'])
           [1 + ((e - 1) / 5000 + e) % 10] AS type
) AS t;

-- 60,000 proposals about the oldest 60,000 entities (940,001 to 1,000,000), shaped as global-validator's create-proposal step
-- writes them. Statuses only as the code sets them: pending, then validated (approve) or rejected
-- (reject); the stand-in's `approved` share is folded into validated. Draws are taken in a fixed order so
-- that setseed makes them repeatable.
CREATE TEMP TABLE seed_draws AS SELECT p, random() AS r FROM generate_series(1, 60000) AS p ORDER BY p;

INSERT INTO proposals (id, workspace_id, target_type, target_id, request, status, reviewed_by, reviewed_at,
                       rejection_reason, created_at, updated_at)
SELECT pg_temp.seed_uuid('proposal:' || d.p),
       e.workspace_id::text,
       'entity',
       e.id::text,
       jsonb_build_object(
         'requestId', pg_temp.seed_uuid('request:' || d.p), 'source', 'ai', 'sourceId', NULL,
         'targetType', 'entity', 'targetId', e.id, 'changeType', 'update',
         'data', jsonb_build_object('entityId', e.id, 'workspaceId', e.workspace_id, 'title', e.title || ' (revised)',
                                    'source', 'ai', 'userId', e.user_id),
         'reasoning', 'Suggested title', 'aiMetadata', '{}'::jsonb),
       s.status,
       CASE WHEN s.status <> 'pending' THEN e.user_id END,
       CASE WHEN s.status <> 'pending' THEN e.created_at + interval '5 minutes' END,
       CASE WHEN s.status = 'rejected' THEN 'not relevant' END,
       e.created_at,
       CASE WHEN s.status <> 'pending' THEN e.created_at + interval '5 minutes' ELSE e.created_at END
FROM seed_draws AS d
-- Entity 940000 + p, computed as above instead of joined: the same values, without 60,000 look-ups.
CROSS JOIN LATERAL (
  SELECT pg_temp.seed_uuid('entity:' || (940000 + d.p)) AS id,
         pg_temp.seed_uuid('workspace:' || (1 + ((940000 + d.p)::bigint * 7919) % 5000)) AS workspace_id,
         'user_' || (1 + ((940000 + d.p)::bigint * 7919) % 5000) AS user_id,
         'Entity ' || (940000 + d.p) AS title,
         now() - ((940000 + d.p) || ' minutes')::interval AS created_at
) AS e
CROSS JOIN LATERAL (
  SELECT CASE WHEN d.r < 0.70 THEN 'validated' WHEN d.r < 0.85 THEN 'pending' ELSE 'rejected' END AS status
) AS s;

DROP TABLE seed_system_roles, seed_draws;
RESET ROLE;
COMMIT;
ANALYZE users;
ANALYZE workspaces;
ANALYZE workspace_members;
ANALYZE views;
ANALYZE entities;
ANALYZE proposals;
-- Statement statistics start with the application's own traffic, not with the seeding above. Skipped
-- where the extension is missing or the role may not reset it.
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements') THEN
    PERFORM pg_stat_statements_reset();
  END IF;
EXCEPTION WHEN insufficient_privilege THEN
  RAISE NOTICE 'pg_stat_statements_reset() not allowed for %, statistics kept', current_user;
END
$$;
