#!/usr/bin/env node
// Applies Synap's SQL migrations from a built backend tree, without tsx or any dev dependency.
//
//   DATABASE_URL=postgresql://... node <tree>/lab/migrate.mjs [--status]
//
// Same order and bookkeeping as the upstream runner (packages/database/src/migrate.ts): every
// migrations-drizzle/*.sql in name order, then every migrations-custom/*.sql (the lab's own migrations are
// copied there at build time), each recorded in `_migrations (type, filename)` so a second run is a no-op and
// either runner sees what the other applied. Unlike upstream, each file runs in one transaction with its
// record, so a failure leaves nothing half-applied, and an advisory lock lets several replicas start at once.
import { createRequire } from "node:module";
import { existsSync, readdirSync, readFileSync, realpathSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const tree = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const dirs = [
  ["drizzle", path.join(tree, "packages/database/migrations-drizzle")],
  ["custom", path.join(tree, "packages/database/migrations-custom")],
];
// Any constant: serialises concurrent runners on the same database.
const LOCK_KEY = 7_204_311;

function log(message) {
  process.stderr.write(`migrate: ${message}\n`);
}

// `postgres` (postgres.js) is a dependency of @synap/database, not of the app itself: resolve it from there.
function loadPostgres() {
  const pkg = realpathSync(path.join(tree, "node_modules/@synap/database/package.json"));
  return createRequire(pkg)("postgres");
}

function pendingFiles(applied) {
  const out = [];
  for (const [type, dir] of dirs) {
    if (!existsSync(dir)) continue;
    for (const name of readdirSync(dir).filter((f) => f.endsWith(".sql")).sort()) {
      if (!applied.has(`${type}/${name}`)) out.push({ type, name, file: path.join(dir, name) });
    }
  }
  return out;
}

async function main() {
  const statusOnly = process.argv.includes("--status");
  const url = process.env.DATABASE_URL;
  if (!url) {
    log("DATABASE_URL is required");
    process.exit(2);
  }
  const postgres = loadPostgres();
  // One connection: the session-level advisory lock and every statement share it.
  const sql = postgres(url, { max: 1, onnotice: () => {}, connection: { application_name: "synap-migrate" } });
  try {
    await sql`SELECT pg_advisory_lock(${LOCK_KEY})`;
    // Upstream asks for these too; pgvector is left out (the lab rewrites its type). Each may need a
    // superuser, so a refusal is only a warning, as upstream treats it.
    for (const ext of ["uuid-ossp", "pg_stat_statements"]) {
      try {
        await sql.unsafe(`CREATE EXTENSION IF NOT EXISTS "${ext}"`);
      } catch (err) {
        log(`extension ${ext} not created (${err.message}); continuing`);
      }
    }
    await sql`
      CREATE TABLE IF NOT EXISTS _migrations (
        id SERIAL PRIMARY KEY,
        type TEXT NOT NULL CHECK (type IN ('drizzle', 'custom')),
        filename TEXT NOT NULL,
        applied_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
        UNIQUE (type, filename)
      )`;
    const rows = await sql`SELECT type, filename FROM _migrations`;
    const applied = new Set(rows.map((r) => `${r.type}/${r.filename}`));
    const pending = pendingFiles(applied);
    if (statusOnly) {
      log(`${applied.size} applied, ${pending.length} pending`);
      for (const p of pending) log(`pending ${p.type}/${p.name}`);
      return pending.length === 0 ? 0 : 1;
    }
    for (const p of pending) {
      const started = Date.now();
      const text = readFileSync(p.file, "utf8");
      try {
        await sql.begin(async (tx) => {
          await tx.unsafe(text);
          await tx`INSERT INTO _migrations (type, filename) VALUES (${p.type}, ${p.name})`;
        });
      } catch (err) {
        log(`FAILED ${p.type}/${p.name}: ${err.message}`);
        return 1;
      }
      log(`applied ${p.type}/${p.name} (${Date.now() - started} ms)`);
    }
    log(pending.length ? `${pending.length} applied, ${applied.size} already` : `nothing to do (${applied.size} applied)`);
    return 0;
  } finally {
    await sql.end({ timeout: 5 });
  }
}

main().then(
  (code) => process.exit(code),
  (err) => {
    log(`error: ${err.message}`);
    process.exit(1);
  },
);
