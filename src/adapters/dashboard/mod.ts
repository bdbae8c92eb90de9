/**
 * The operator's dashboard: one request handler that serves a live page over
 * the transactional outbox and the pg-boss job queue (the flow, the backlog,
 * the failures) with the repairs (requeue parked events, retry dead
 * letters). Plain HTML, CSS and a small script; no build step. It loads no
 * database driver of its own: it works on the `OutboxAdmin` and
 * `PgBossJobQueue` you pass it.
 *
 * @example Serve it on its own port
 * ```ts ignore
 * import postgres from "postgres";
 * import { dashboard } from "@aftercommit/core/dashboard";
 * import { PgBossJobQueue } from "@aftercommit/core/pg-boss";
 * import { OutboxAdmin } from "@aftercommit/core/postgres";
 *
 * const sql = postgres(Deno.env.get("DATABASE_URL")!);
 * await using jobs = await PgBossJobQueue.connect();
 * const handler = dashboard({
 *   outbox: new OutboxAdmin(sql),
 *   jobs,
 *   token: Deno.env.get("ADMIN_TOKEN"), // sign-in needed when set
 * });
 * Deno.serve({ port: 8001 }, handler); // http://localhost:8001/dashboard
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
