import assert from "node:assert/strict";
import { PgBossJobQueue } from "../../../src/adapters/pg-boss/mod.ts";
import { openJobsDatabase } from "../../_helpers/jobs_db.ts";
import { captureLogs } from "../../_helpers/logs.ts";

Deno.test("pg-boss job queue: ping() for a health endpoint", async (t) => {
  await using db = await openJobsDatabase();

  await t.step("answers true while connected", async () => {
    await using jobs = await db.connect();
    assert.equal(await jobs.ping(), true);
    assert.equal(await jobs.ping(0.5), true);
  });

  await t.step("answers false once stopped, without logging", async () => {
    const jobs = await db.connect();
    assert.equal(await jobs.ping(), true);
    const { records } = await captureLogs(async () => {
      const stopping = jobs.stop();
      assert.equal(await jobs.ping(), false, "while stopping");
      await stopping;
      assert.equal(await jobs.ping(), false, "after the stop");
    });
    assert.deepEqual(records.filter((r) => r.level !== "debug"), []);
  });

  await t.step(
    "answers false, and logs a warning, when the database is gone",
    async () => {
      // A database of its own, closed under the running queue.
      const { PGlite } = await import("@electric-sql/pglite");
      const pglite = await PGlite.create();
      const jobs = await PgBossJobQueue.connect(pglite, {
        supervise: false,
        listenNotify: false,
      });
      try {
        assert.equal(await jobs.ping(), true);
        await pglite.close();
        const { records } = await captureLogs(async () => {
          assert.equal(await jobs.ping(), false);
        });
        const warning = records.find((r) => r.level === "warning");
        assert.ok(warning, "expected a warning");
        assert.deepEqual(warning.category, ["aftercommit", "jobs"]);
      } finally {
        await jobs.stop().catch(() => {});
      }
    },
  );

  await t.step("rejects a bad timeout", async () => {
    await using jobs = await db.connect();
    await assert.rejects(() => jobs.ping(0), RangeError);
    await assert.rejects(
      () => jobs.ping(Number.NaN),
      /timeoutSeconds must be a finite number/,
    );
  });
});
