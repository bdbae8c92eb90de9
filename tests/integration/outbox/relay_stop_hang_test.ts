// OutboxRelay.stop() when the database hangs: the README promises it returns
// within `dispatchTimeoutSeconds` + 5 s "even if the database hangs" (the
// pass then ends by itself). Another session holds an ACCESS EXCLUSIVE lock
// on the outbox table, so the relay's claim waits on it for as long as the
// lock is held. Server only: embedded PGlite has one session, so nothing can
// hold a lock while the relay waits on it (the test is ignored there rather
// than start a PGlite it cannot use).
import assert from "node:assert/strict";
import { EventBus } from "../../../mod.ts";
import {
  migrateOutbox,
  OutboxRelay,
} from "../../../src/adapters/postgres/mod.ts";
import { openAppDatabase } from "../../_helpers/app_db.ts";
import { captureLogs } from "../../_helpers/logs.ts";
import { waitFor, waitUntil } from "../../_helpers/poll.ts";

Deno.test({
  name: "OutboxRelay.stop() on a hanging database",
  ignore: !Deno.env.get("TEST_DATABASE_URL"), // needs a second session
  async fn(t) {
    await using db = await openAppDatabase();

    await t.step({
      name:
        "stop() returns while the relay's claim still waits on a lock, and warns that the pass did not finish",
      fn: async () => {
        const table = `outbox_${
          crypto.randomUUID().replaceAll("-", "").slice(0, 12)
        }`;
        await migrateOutbox(db.sql, { table });
        // Statements of the relay's claim waiting on a lock on the table.
        const waiting = async () => {
          const [row] = await db.observer<[{ n: number }]>`
            select count(*)::int as n from pg_locks
            where relation = to_regclass(${table}) and not granted`;
          return row.n;
        };
        const locker = await db.sql.reserve();
        try {
          await locker`begin`;
          await locker`lock table ${locker(table)} in access exclusive mode`;
          const relay = new OutboxRelay(db.sql, {
            table,
            bus: new EventBus(),
            dispatchTimeoutSeconds: 1,
            pollIntervalSeconds: 0.1,
          });
          const { records } = await captureLogs(async () => {
            relay.start();
            await waitUntil(
              "the relay's claim to wait on the lock",
              async () => await waiting() > 0,
              15_000,
            );
            // Promised: 1 s + 5 s; 15 s leaves room for a loaded machine
            // while still failing when stop() waits for the lock.
            await waitFor(relay.stop(), "stop() to return", 15_000);
          });
          assert.equal(relay.running, false);
          assert.equal(
            await waiting(),
            1,
            "the claim still waits: the database still hangs",
          );
          assert.deepEqual(
            records.filter((r) => r.level === "warning").map((r) =>
              r.message.join("")
            ),
            [
              `Outbox relay on ${table} did not finish its pass within 6000 ms of stop(); returning, the pass ends by itself`,
            ],
          );
        } finally {
          await locker`rollback`;
          locker.release();
        }
        // With the lock gone the pass ends by itself: nothing of the relay
        // runs on after the test.
        await waitUntil("the relay's claim to end", async () => {
          const [row] = await db.observer<[{ n: number }]>`
            select count(*)::int as n from pg_stat_activity
            where datname = current_database() and state <> 'idle'
              and pid <> pg_backend_pid()`;
          return row.n === 0 && await waiting() === 0;
        }, 15_000);
      },
    });
  },
});
