// The dev server's admin endpoints (src/dev/admin.ts) on a real outbox and
// job queue: off without a token, 401 without the right one, and the
// repairs answer with how many rows they changed.
import assert from "node:assert/strict";
import { EventBus } from "../../../mod.ts";
import {
  OutboxAdmin,
  OutboxRelay,
} from "../../../src/adapters/postgres/mod.ts";
import { createAdminHandler } from "../../../src/dev/admin.ts";
import { openAppDatabase } from "../../_helpers/app_db.ts";
import { openJobsDatabase } from "../../_helpers/jobs_db.ts";
import { countWhere, freshOutbox, insertUndone, Noted } from "./_helpers.ts";

const TOKEN = "s3cret-admin-token";

Deno.test({
  name: "Dev server admin endpoints",
  sanitizeOps: true,
  sanitizeResources: true,
  async fn(t) {
    await using db = await openAppDatabase();
    await using jobsDb = await openJobsDatabase();
    await using jobs = await jobsDb.connect();
    const options = await freshOutbox(db.sql, { maxAttempts: 1 });
    const events = [new Noted(1), new Noted(2), new Noted(3)];
    await insertUndone(db.sql, options, events);
    const bus = new EventBus();
    bus.register(Noted, () => {
      throw new Error("no");
    });
    const relay = new OutboxRelay(db.sql, { ...options, bus });
    while ((await relay.runOnce()).claimed > 0) { /* park them all */ }
    const outbox = new OutboxAdmin(db.sql, options);

    const call = async (
      handler: ReturnType<typeof createAdminHandler>,
      method: string,
      path: string,
      body?: unknown,
      token: string | null = TOKEN,
    ) => {
      const request = new Request(`http://localhost${path}`, {
        method,
        headers: token === null ? {} : { authorization: `Bearer ${token}` },
        ...(body === undefined
          ? {}
          : { body: typeof body === "string" ? body : JSON.stringify(body) }),
      });
      const response = await handler(request, new URL(request.url));
      return response === undefined
        ? undefined
        : { status: response.status, body: await response.json() };
    };

    await t.step(
      "off without ADMIN_TOKEN; other paths are not its business",
      async () => {
        const off = createAdminHandler({ token: undefined, outbox, jobs });
        const answer = await call(off, "GET", "/admin/outbox");
        assert.equal(answer?.status, 404);
        assert.match(answer!.body.error, /ADMIN_TOKEN/);
        assert.equal(await call(off, "GET", "/stats"), undefined);
      },
    );

    const admin = createAdminHandler({ token: TOKEN, outbox, jobs });

    await t.step("401 without the token or with a wrong one", async () => {
      for (
        const token of [null, "", "wrong", `${TOKEN}x`, TOKEN.slice(1)]
      ) {
        const answer = await call(
          admin,
          "GET",
          "/admin/outbox",
          undefined,
          token,
        );
        assert.equal(answer?.status, 401, `token ${token}`);
      }
    });

    await t.step("counts and parked events, without event fields", async () => {
      const stats = await call(admin, "GET", "/admin/outbox");
      assert.equal(stats?.status, 200);
      assert.equal(stats!.body.parked, 3);
      const list = await call(admin, "GET", "/admin/outbox/parked?limit=2");
      assert.equal(list!.body.length, 2);
      assert.equal(list!.body[0].lastError, "Error: no");
      assert.equal("payload" in list!.body[0], false);
      assert.equal(
        (await call(admin, "GET", "/admin/outbox/parked?limit=0"))?.status,
        400,
      );
      const letters = await call(admin, "GET", "/admin/dead-letters");
      assert.deepEqual([letters?.status, letters?.body], [200, []]);
    });

    await t.step("bad bodies get a 400 and change nothing", async () => {
      for (
        const body of [
          "not json",
          [],
          {},
          { all: true, type: "x" },
          { ids: [] },
          { queue: "x" },
          { all: true, dryRun: "yes" },
        ]
      ) {
        const answer = await call(admin, "POST", "/admin/outbox/purge", body);
        assert.equal(answer?.status, 400, JSON.stringify(body));
        assert.equal(typeof answer!.body.error, "string");
      }
      assert.equal(
        await countWhere(db.observer, options.table, "parked_at is not null"),
        3,
      );
    });

    await t.step("dry run counts; requeue and purge say how many", async () => {
      const dry = await call(admin, "POST", "/admin/outbox/requeue", {
        all: true,
        dryRun: true,
      });
      assert.deepEqual(dry?.body, { matched: 3 });
      assert.equal(
        await countWhere(db.observer, options.table, "parked_at is not null"),
        3,
      );
      const requeued = await call(admin, "POST", "/admin/outbox/requeue", {
        ids: [events[0]!.eventId],
      });
      assert.deepEqual([requeued?.status, requeued?.body], [200, {
        requeued: 1,
      }]);
      const purged = await call(admin, "POST", "/admin/outbox/purge", {
        type: "test.outbox.noted",
      });
      assert.deepEqual(purged?.body, { purged: 2 });
      const stats = await outbox.stats();
      assert.deepEqual([stats.parked, stats.pending], [0, 1]);
    });
  },
});
