-- Deterministic seed data of realistic volume. Re-runnable: `synap-play lab reset` empties the tables first.
SET ROLE synap;
SELECT setseed(0.42);

TRUNCATE proposals, entities, workspaces;

-- 5,000 workspaces: 30 % auto-approve AI changes; 60 % have a paid plan (the others have no billing block,
-- which the bad-deploy release does not expect).
INSERT INTO workspaces (owner_id, name, type, settings, subscription_tier, subscription_status, created_at)
SELECT 'user_' || n,
       'Workspace ' || n,
       CASE WHEN n % 7 = 0 THEN 'team' ELSE 'personal' END,
       jsonb_build_object('aiAutoApprove', n % 10 < 3)
         || CASE WHEN n % 5 < 3 THEN jsonb_build_object('billing', jsonb_build_object('plan', 'pro')) ELSE '{}' END,
       CASE WHEN n % 5 < 3 THEN 'pro' ELSE 'free' END,
       CASE WHEN n % 5 < 3 THEN 'active' ELSE NULL END,
       now() - (n || ' hours')::interval
FROM generate_series(1, 5000) AS n;

CREATE TEMP TABLE seed_workspaces AS
SELECT row_number() OVER (ORDER BY created_at DESC) AS n, id, owner_id FROM workspaces;

-- 200,000 entities spread over the workspaces.
INSERT INTO entities (user_id, workspace_id, type, title, preview, metadata, created_at, updated_at)
SELECT w.owner_id,
       w.id,
       (ARRAY['note', 'task', 'project', 'page', 'habit', 'event', 'person', 'file'])[1 + e % 8],
       'Entity ' || e,
       repeat(md5(e::text), 3),
       jsonb_build_object('source', CASE WHEN e % 3 = 0 THEN 'ai' ELSE 'user' END),
       now() - (e || ' minutes')::interval,
       now() - (e || ' minutes')::interval
FROM generate_series(1, 200000) AS e
JOIN seed_workspaces w ON w.n = 1 + (e * 7919) % 5000;

-- 60,000 proposals in mixed statuses, each about one entity.
INSERT INTO proposals (workspace_id, target_type, target_id, request, status, reviewed_by, reviewed_at,
                       rejection_reason, created_at, updated_at)
SELECT e.workspace_id::text,
       'entity',
       e.id::text,
       jsonb_build_object('type', 'entities.update', 'source', 'ai', 'data', jsonb_build_object('title', e.title)),
       s.status,
       CASE WHEN s.status IN ('validated', 'approved', 'rejected') THEN e.user_id END,
       CASE WHEN s.status IN ('validated', 'approved', 'rejected') THEN e.created_at + interval '5 minutes' END,
       CASE WHEN s.status = 'rejected' THEN 'not relevant' END,
       e.created_at,
       e.created_at
FROM (SELECT * FROM entities ORDER BY created_at LIMIT 60000) AS e
CROSS JOIN LATERAL (
  SELECT CASE WHEN r < 0.60 THEN 'validated' WHEN r < 0.75 THEN 'pending' WHEN r < 0.90 THEN 'rejected'
              ELSE 'approved' END AS status
  FROM (SELECT random() + (e.version - 1) AS r) AS rnd
) AS s;

RESET ROLE;
ANALYZE workspaces;
ANALYZE entities;
ANALYZE proposals;
-- Statement statistics start with the application's own traffic, as on a server that has run for a while,
-- not with the one-off seeding above.
SELECT pg_stat_statements_reset();
