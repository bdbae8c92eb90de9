import assert from "node:assert/strict";
import {
  Collector,
  openJobsDatabase,
  uniqueQueueName,
  waitFor,
} from "../../_helpers/jobs_db.ts";

Deno.test("pg-boss job queue: graceful stop and restart", async (t) => {
  // Durable: embedded, each connect opens the same data directory again.
  await using db = await openJobsDatabase({ durable: true });

  await t.step(
    "stop() lets the running job finish, fetches nothing new, and loses nothing",
    async () => {
      const queue = uniqueQueueName("slow");
      const order: string[] = [];
      const started = Promise.withResolvers<void>();
      const release = Promise.withResolvers<void>();
      let abortedAtEnd: boolean | undefined;
      const jobs = await db.connect();
      try {
        await jobs.work<{ n: number }>(queue, async (job) => {
          order.push(`start ${job.data.n}`);
          started.resolve();
          await release.promise;
          abortedAtEnd = job.signal.aborted;
          order.push(`finish ${job.data.n}`);
        });
        await jobs.enqueue(queue, { n: 1 });
        await waitFor(started.promise, "the first job to start");
        await jobs.enqueue(queue, { n: 2 }); // waits behind the running job

        const stopped = jobs.stop().then(() => order.push("stopped"));
        await assert.rejects(
          jobs.enqueue(queue, { n: 3 }),
          /Cannot enqueue job on queue "slow-[^"]+": the job queue is stopped; stop\(\) it only after the last enqueue and work, or connect a new one$/,
        );
        await assert.rejects(
          jobs.work(queue, () => {}),
          /the job queue is stopped/,
        );
        // Give stop() every chance to finish early, which it must not.
        await new Promise((resolve) => setTimeout(resolve, 200));
        release.resolve();
        await waitFor(stopped, "stop()");
      } finally {
        release.resolve();
        await jobs.stop();
      }
      assert.deepEqual(order, ["start 1", "finish 1", "stopped"]);
      assert.equal(abortedAtEnd, false);

      // Job 2 was never fetched, and job 1 is done: only job 2 runs now.
      await using again = await db.connect();
      const seen = new Collector<number>();
      await again.work<{ n: number }>(queue, (job) => {
        seen.push(job.data.n);
      });
      // A sentinel, enqueued last; it may start at its insert on the free
      // worker before the first fetch takes job 2, so the order is not fixed.
      await again.enqueue(queue, { n: 99 });
      const got = await seen.atLeast(2, "job 2 and the sentinel");
      assert.deepEqual([...got].sort((a, b) => a - b), [2, 99]);
    },
  );

  await t.step(
    "jobs left queued at shutdown all run after a restart",
    async () => {
      const queue = uniqueQueueName("queued");
      let ids: (string | null)[];
      {
        await using jobs = await db.connect();
        ids = await jobs.enqueueMany(
          Array.from({ length: 20 }, (_, i) => ({
            name: queue,
            data: { n: i },
            options: { key: `evt-${i}` },
          })),
        );
        ids.push(await jobs.enqueue(queue, { n: 20 }));
      } // stopped with 21 jobs queued and no worker

      await using jobs = await db.connect();
      const seen = new Collector<{ id: string; n: number }>();
      await jobs.work<{ n: number }>(queue, (job) => {
        seen.push({ id: job.id, n: job.data.n });
      }, { batchSize: 5 });
      const got = await seen.atLeast(21, "the 21 queued jobs");
      assert.deepEqual(
        got.map((j) => j.n).sort((a, b) => a - b),
        Array.from({ length: 21 }, (_, i) => i),
      );
      assert.deepEqual(
        new Set(got.map((j) => j.id)),
        new Set(ids),
      );
      // The keys are remembered across the restart.
      assert.equal(await jobs.enqueue(queue, { n: 0 }, { key: "evt-0" }), null);
    },
  );

  await t.step(
    "stop() is idempotent and Symbol.asyncDispose stops",
    async () => {
      const jobs = await db.connect();
      const first = jobs.stop();
      assert.equal(jobs.stop(), first);
      assert.equal(jobs[Symbol.asyncDispose](), first);
      await first;
    },
  );
});
