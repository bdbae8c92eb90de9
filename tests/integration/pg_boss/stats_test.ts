// PgBossJobQueue.stats(): counts by queue and state, and the recent window
// (completions, creation → first start latency), on the backend given.
import assert from "node:assert/strict";
import {
  Collector,
  openJobsDatabase,
  uniqueQueueName,
} from "../../_helpers/jobs_db.ts";

async function until(
  what: string,
  check: () => Promise<boolean>,
  ms = 20_000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

Deno.test("pg-boss job queue: stats() counts jobs by queue and state and reports the recent window", async (t) => {
  await using db = await openJobsDatabase();
  await using jobs = await db.connect({
    queueDefaults: { retryLimit: 0, retryDelaySeconds: 0, retryBackoff: false },
  });

  await t.step(
    "waiting jobs count as created; dead-letter queues fold into their queue",
    async () => {
      const queue = uniqueQueueName("stats-wait");
      for (let n = 0; n < 3; n++) await jobs.enqueue(queue, { n });
      const { queues } = await jobs.stats();
      const row = queues.find((q) => q.name === queue);
      assert.deepEqual(row, {
        name: queue,
        created: 3,
        retry: 0,
        active: 0,
        failed: 0,
        deadLetters: 0,
      });
      assert.equal(
        queues.some((q) => q.name.endsWith("__dead")),
        false,
        "dead-letter queues are folded into their queue",
      );
    },
  );

  await t.step(
    "completed jobs fill the window; failed ones count as failed and dead letters",
    async () => {
      const queue = uniqueQueueName("stats-run");
      const done = new Collector<number>();
      const before = (await jobs.stats({ windowSeconds: 60 })).window;
      await jobs.work<{ n: number; fail: boolean }>(queue, (job) => {
        if (job.data.fail) throw new Error("always fails");
        done.push(job.data.n);
      }, { pollingIntervalSeconds: 0.5 });
      for (let n = 0; n < 4; n++) {
        await jobs.enqueue(queue, { n, fail: n === 3 });
      }
      await done.atLeast(3, "three completed jobs");
      await until("the failed job's dead letter", async () => {
        const row = (await jobs.stats()).queues.find((q) => q.name === queue);
        return row?.failed === 1 && row.deadLetters === 1;
      });
      const { queues, window } = await jobs.stats({ windowSeconds: 60 });
      const row = queues.find((q) => q.name === queue)!;
      assert.equal(row.created, 0);
      assert.equal(row.active, 0);
      assert.equal(window.seconds, 60);
      assert.ok(
        window.completed >= before.completed + 3,
        `completed ${before.completed} → ${window.completed}`,
      );
      assert.ok(window.measured >= 3, `measured ${window.measured}`);
      assert.ok(
        window.startLatencyP50Ms !== null && window.startLatencyP50Ms >= 0,
      );
      assert.ok(window.startLatencyP99Ms! >= window.startLatencyP50Ms!);
    },
  );

  await t.step("bad options are refused", async () => {
    await assert.rejects(
      () => jobs.stats({ windowSeconds: 0 }),
      (e: Error) =>
        e instanceof RangeError && /windowSeconds must be/.test(e.message),
    );
    await assert.rejects(
      // deno-lint-ignore no-explicit-any
      () => jobs.stats({ windowSeconds: "10" as any }),
      TypeError,
    );
  });
});
