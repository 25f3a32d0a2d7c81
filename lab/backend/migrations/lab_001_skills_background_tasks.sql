-- Lab migration: the `skills` and `background_tasks` tables.
-- Why: packages/database/src/schema/skills.ts and background-tasks.ts define them and the API (skills.*,
-- backgroundTasks.* routers, the background-task scheduler, the skills and background-tasks executors) uses
-- them, but no upstream migration creates them. Written from those two schema files, column for column.
-- Copied into migrations-custom/ at build time (after upstream's files in name order); IF NOT EXISTS keeps it
-- harmless if upstream later adds the tables itself.

CREATE TABLE IF NOT EXISTS "skills" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"user_id" text NOT NULL,
	"workspace_id" uuid REFERENCES "public"."workspaces"("id") ON DELETE cascade,
	"name" text NOT NULL,
	"description" text,
	"code" text NOT NULL,
	"parameters" jsonb,
	"category" text,
	"execution_mode" text DEFAULT 'sync' NOT NULL,
	"timeout_seconds" integer DEFAULT 30,
	"status" text DEFAULT 'active' NOT NULL,
	"error_message" text,
	"metadata" jsonb DEFAULT '{}' NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
CREATE INDEX IF NOT EXISTS "skills_user_id_idx" ON "skills" ("user_id");
CREATE INDEX IF NOT EXISTS "skills_workspace_id_idx" ON "skills" ("workspace_id");
CREATE INDEX IF NOT EXISTS "skills_status_idx" ON "skills" ("status");
CREATE INDEX IF NOT EXISTS "skills_name_idx" ON "skills" ("name");

CREATE TABLE IF NOT EXISTS "background_tasks" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"user_id" text NOT NULL,
	"workspace_id" uuid REFERENCES "public"."workspaces"("id") ON DELETE cascade,
	"name" text NOT NULL,
	"description" text,
	"type" text NOT NULL,
	"schedule" text,
	"action" text NOT NULL,
	"context" jsonb DEFAULT '{}' NOT NULL,
	"status" text DEFAULT 'active' NOT NULL,
	"error_message" text,
	"last_run_at" timestamp with time zone,
	"next_run_at" timestamp with time zone,
	"execution_count" integer DEFAULT 0 NOT NULL,
	"success_count" integer DEFAULT 0 NOT NULL,
	"failure_count" integer DEFAULT 0 NOT NULL,
	"metadata" jsonb DEFAULT '{}' NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL
);
CREATE INDEX IF NOT EXISTS "background_tasks_user_id_idx" ON "background_tasks" ("user_id");
CREATE INDEX IF NOT EXISTS "background_tasks_workspace_id_idx" ON "background_tasks" ("workspace_id");
CREATE INDEX IF NOT EXISTS "background_tasks_status_idx" ON "background_tasks" ("status");
CREATE INDEX IF NOT EXISTS "background_tasks_type_idx" ON "background_tasks" ("type");
CREATE INDEX IF NOT EXISTS "background_tasks_next_run_at_idx" ON "background_tasks" ("next_run_at");
