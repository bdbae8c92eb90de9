/**
 * The operator's dashboard: one request handler, {@linkcode dashboard}, that
 * serves a live page over the outbox and the pg-boss job queue (the flow,
 * the backlog, the failures) with the repairs (requeue parked events, retry
 * dead letters). It loads no driver: it works on the `OutboxAdmin` and
 * `PgBossJobQueue` you pass it.
 *
 * @example Mount it next to your routes
 * ```ts
 * import assert from "node:assert/strict";
 * import { dashboard } from "@aftercommit/core/dashboard";
 *
 * // Pass outbox: new OutboxAdmin(sql) and jobs: a PgBossJobQueue to see them.
 * const ops = dashboard({ token: "s3cret" }); // undefined: no sign-in
 * const app = (request: Request): Promise<Response> | Response => {
 *   const { pathname } = new URL(request.url);
 *   if (pathname === "/dashboard" || pathname.startsWith("/dashboard/")) {
 *     return ops(request);
 *   }
 *   return new Response("Not found", { status: 404 });
 * }; // Deno.serve(app)
 *
 * const url = "http://localhost/dashboard/api/snapshot";
 * const anonymous = await app(new Request(url));
 * assert.equal(anonymous.status, 401);
 * await anonymous.body?.cancel();
 * const signedIn = await app(
 *   new Request(url, { headers: { authorization: "Bearer s3cret" } }),
 * );
 * const snapshot = await signedIn.json();
 * assert.deepEqual(snapshot.sources, { outbox: false, jobs: false });
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
