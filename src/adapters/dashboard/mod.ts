/**
 * The operator's dashboard: one request handler that serves a live page over
 * the transactional outbox and the pg-boss job queue (the flow, the backlog,
 * the failures) with the repairs (requeue parked events, retry dead
 * letters). Plain HTML, CSS and a small script; no build step. It loads no
 * database driver of its own: it works on the `OutboxAdmin` and
 * `PgBossJobQueue` you pass it.
 *
 * @example Serve it on its own port
 * ```ts
 * import assert from "node:assert/strict";
 * import postgres from "postgres";
 * import { dashboard } from "@aftercommit/core/dashboard";
 * import { startEmbeddedPostgres } from "@aftercommit/core/embedded";
 * import { migrateOutbox, OutboxAdmin } from "@aftercommit/core/postgres";
 *
 * await using db = await startEmbeddedPostgres(); // or your DATABASE_URL
 * const sql = db.connect(postgres);
 * await migrateOutbox(sql);
 * const handler = dashboard({
 *   outbox: new OutboxAdmin(sql), // jobs: a PgBossJobQueue, for its panel
 *   token: "s3cret", // sign-in needed; undefined serves it to anyone
 * });
 * await using server = Deno.serve({ port: 0, onListen() {} }, handler);
 *
 * const page = `http://localhost:${server.addr.port}/dashboard`;
 * const response = await fetch(`${page}/api/snapshot`, {
 *   headers: { authorization: "Bearer s3cret" },
 * });
 * const snapshot = await response.json();
 * assert.equal(snapshot.outbox.parked, 0);
 * ```
 *
 * @module
 */
export {
  dashboard,
  type DashboardHandler,
  type DashboardJobs,
  type DashboardOptions,
  type DashboardOutbox,
} from "./dashboard.ts";
