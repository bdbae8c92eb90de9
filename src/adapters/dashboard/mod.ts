/**
 * The operator's dashboard: one request handler, {@linkcode dashboard}, that
 * serves a live page over the outbox and the pg-boss job queue (the flow,
 * the backlog, the failures) with the repairs (requeue parked events, retry
 * dead letters). It loads no driver: it works on the `OutboxAdmin` and
 * `PgBossJobQueue` you pass it.
 *
 * @example Sign-in guards every route under `/dashboard`
 * ```ts
 * import assert from "node:assert/strict";
 * import { dashboard } from "@aftercommit/core/dashboard";
 *
 * // Pass outbox: new OutboxAdmin(sql) and jobs: a PgBossJobQueue to see them;
 * // route /dashboard and everything under it to `ops` (token undefined: no sign-in).
 * const ops = dashboard({ token: "s3cret" });
 * const url = "http://localhost/dashboard/api/snapshot";
 * const anonymous = await ops(new Request(url));
 * assert.equal(anonymous.status, 401);
 * await anonymous.body?.cancel();
 * const headers = { authorization: "Bearer s3cret" };
 * const signedIn = await ops(new Request(url, { headers }));
 * assert.deepEqual((await signedIn.json()).sources, { outbox: false, jobs: false });
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
