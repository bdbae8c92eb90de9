// Dead letters: the error of a job pg-boss failed itself (recorded as
// `{ value: text }` or `{ value: { message } }`), and a retry or count by id,
// in any case, looked up by id.
import assert from "node:assert/strict";
import type { PgBossJobQueue } from "../../../src/adapters/pg-boss/mod.ts";
import {
  Collector,
  openJobsDatabase,
  uniqueQueueName,
} from "../../_helpers/jobs_db.ts";
import { waitFor, waitUntil } from "../../_helpers/poll.ts";

const oneAttempt = {
  retryLimit: 0,
  retryDelaySeconds: 0,
  retryBackoff: false,
} as const;

// Dead-letters one job of a fresh queue whose handler fails until `healed`;
// answers the queue.
async function deadLettered(
  jobs: PgBossJobQueue,
  healed: { value: boolean },
  completed: Collector<number>,
): Promise<string> {
  const queue = uniqueQueueName("dl-fix");
  await jobs.work<{ n: number }>(queue, (job) => {
    if (!healed.value) throw new TypeError("template missing");
    completed.push(job.data.n);
  }, { pollingIntervalSeconds: 0.5 });
  await jobs.enqueue(queue, { n: 1 });
  await waitUntil(
    "the dead letter",
    async () => (await jobs.deadLetters({ queue })).length === 1,
  );
  return queue;
}

Deno.test("pg-boss job queue: a job failed by the queue's stop shows pg-boss's text as its dead letter's error", async () => {
  await using db = await openJobsDatabase({ durable: true });
  const options = { queueDefaults: oneAttempt, stopTimeoutSeconds: 1 };
  const queue = uniqueQueueName("dl-stop");
  const jobs = await db.connect(options);
  try {
    const started = Promise.withResolvers<void>();
    await jobs.work(queue, () => {
      started.resolve();
      return new Promise<void>(() => {}); // Outlives the stop's timeout.
    });
    await jobs.enqueue(queue, { n: 1 });
    await waitFor(started.promise, "the job's start");
  } finally {
    await jobs.stop();
  }
  await using again = await db.connect(options);
  const letters = await again.deadLetters({ queue });
  assert.equal(letters.length, 1);
  assert.equal(letters[0]!.error, "pg-boss shut down while active");
});

Deno.test("pg-boss job queue: dead letters of jobs pg-boss failed, and by id", async (t) => {
  await using db = await openJobsDatabase();
  await using jobs = await db.connect({ queueDefaults: oneAttempt });

  await t.step(
    "a failure pg-boss stored as { value: { message } } (an expiry) shows its message",
    async () => {
      const queue = await deadLettered(
        jobs,
        { value: false },
        new Collector(),
      );
      await db.query(
        `update pgboss.job set source_output = $1::text::jsonb where name = $2`,
        [
          JSON.stringify({ value: { message: "job timed out" } }),
          queue + "__dead",
        ],
      );
      const [letter] = await jobs.deadLetters({ queue });
      assert.equal(letter?.error, "job timed out");
    },
  );

  await t.step(
    "counted and retried by id, in upper case too; other ids match nothing",
    async () => {
      const healed = { value: false };
      const completed = new Collector<number>();
      const queue = await deadLettered(jobs, healed, completed);
      const [letter] = await jobs.deadLetters({ queue });
      const id = letter!.id;
      const other = crypto.randomUUID();
      assert.equal(await jobs.countDeadLetters({ ids: [id] }), 1);
      assert.equal(await jobs.countDeadLetters({ ids: [id.toUpperCase()] }), 1);
      assert.equal(
        await jobs.countDeadLetters({ ids: [other, "not-a-uuid"] }),
        0,
      );
      const many = [
        id.toUpperCase(),
        ...Array.from({ length: 150 }, () => crypto.randomUUID()),
      ];
      assert.equal(await jobs.countDeadLetters({ ids: many }), 1);
      // Ids of letters in different queues (the step above left one).
      const all = await jobs.deadLetters();
      assert.equal(new Set(all.map((l) => l.queue)).size, 2);
      const ids = all.map((l) => l.id);
      assert.equal(await jobs.countDeadLetters({ ids }), 2);
      healed.value = true;
      assert.equal(await jobs.retryDeadLetters({ ids: [id.toUpperCase()] }), 1);
      await completed.atLeast(1, "the retried job's completion");
      assert.equal(await jobs.countDeadLetters({ queue }), 0);
      assert.equal(await jobs.retryDeadLetters({ ids: [id] }), 0);
    },
  );

  await t.step(
    "a dead letter whose data is an array or a string naming the enqueue stamp is retried too",
    async () => {
      const queue = uniqueQueueName("dl-shapes");
      const healed = { value: false };
      const seen = new Collector<unknown>();
      await jobs.work(queue, (job) => {
        if (!healed.value) throw new Error("down");
        seen.push(job.data);
      }, { pollingIntervalSeconds: 0.5 });
      const shapes = [["aftercommit.enqueuedAt"], "aftercommit.enqueuedAt", {
        n: 1,
      }];
      for (const data of shapes) await jobs.enqueue(queue, data);
      await waitUntil(
        "three dead letters",
        async () => (await jobs.countDeadLetters({ queue })) === 3,
      );
      healed.value = true;
      assert.equal(await jobs.retryDeadLetters({ queue }), 3);
      const got = await seen.atLeast(3, "the three retried jobs");
      assert.deepEqual(
        got.map((d) => JSON.stringify(d)).sort(),
        shapes.map((d) => JSON.stringify(d)).sort(),
      );
    },
  );
});
