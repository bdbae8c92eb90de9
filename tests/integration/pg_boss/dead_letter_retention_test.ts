// A queue's retentionSeconds reaches its dead letters: pg-boss keeps a
// dead-letter copy for its dead-letter queue's retention, so `<name>__dead`
// is created with the queue's.
import assert from "node:assert/strict";
import { PgBossJobQueue } from "../../../src/adapters/pg-boss/mod.ts";
import { openJobsDatabase, uniqueQueueName } from "../../_helpers/jobs_db.ts";
import { waitUntil } from "../../_helpers/poll.ts";

Deno.test({
  name: "Dead letters: a queue's retentionSeconds is its dead letters' too",
  sanitizeOps: true,
  sanitizeResources: true,
  async fn() {
    await using db = await openJobsDatabase();
    const queue = uniqueQueueName("kept");
    const other = uniqueQueueName("default");
    const dead = PgBossJobQueue.deadLetterQueueName(queue);
    await using jobs = await db.connect({
      queueDefaults: { retryLimit: 0 },
      queues: { [queue]: { retentionSeconds: 3600 } },
    });
    await jobs.work(queue, () => {
      throw new Error("refused");
    }, { pollingIntervalSeconds: 0.5 });
    await jobs.enqueue(queue, {});
    await jobs.enqueue(other, {});

    const retention = Object.fromEntries(
      (await db.query(
        "select name, retention_seconds from pgboss.queue where name = any($1)",
        [[queue, dead, other, PgBossJobQueue.deadLetterQueueName(other)]],
      )).map((row) => [row.name, row.retention_seconds]),
    );
    assert.deepEqual(retention, {
      [queue]: 3600,
      [dead]: 3600,
      [other]: 1_209_600,
      [`${other}__dead`]: 1_209_600,
    });

    // The dead letter itself is kept that long.
    let kept: unknown[] = [];
    await waitUntil("the dead letter", async () => {
      kept = (await db.query(
        `select extract(epoch from keep_until - created_on)::int as kept
          from pgboss.job where name = $1`,
        [dead],
      )).map((row) => Number(row.kept));
      return kept.length > 0;
    });
    assert.deepEqual(kept, [3600]);
  },
});
