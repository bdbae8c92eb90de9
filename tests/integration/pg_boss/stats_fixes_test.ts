// PgBossJobQueue.stats() on a schema named with capitals (pg-boss writes it
// unquoted, folded to lower case).
import assert from "node:assert/strict";
import { openJobsDatabase, uniqueQueueName } from "../../_helpers/jobs_db.ts";

Deno.test("pg-boss job queue: stats() reads a schema named with capitals", async () => {
  await using db = await openJobsDatabase();
  await using jobs = await db.connect({ schema: "JobsV2" });
  const queue = uniqueQueueName("stats-schema");
  await jobs.enqueue(queue, { n: 1 });
  const { queues, window } = await jobs.stats();
  assert.deepEqual(queues.find((q) => q.name === queue), {
    name: queue,
    created: 1,
    retry: 0,
    active: 0,
    failed: 0,
    deadLetters: 0,
  });
  assert.equal(window.completed, 0);
  assert.deepEqual(await jobs.deadLetters(), []);
});
