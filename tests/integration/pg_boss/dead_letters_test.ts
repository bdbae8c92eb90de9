// Dead letters: list, retry into the original queue, delete; and a handler
// that ignores its abort signal does not hold its worker past the expiry.
import assert from "node:assert/strict";
import type { PgBossJobQueue } from "../../../src/adapters/pg-boss/mod.ts";
import {
  Collector,
  openJobsDatabase,
  uniqueQueueName,
  waitFor,
} from "../../_helpers/jobs_db.ts";

const EMAIL = "ada.lovelace@example.org";

const oneAttempt = {
  retryLimit: 0,
  retryDelaySeconds: 0,
  retryBackoff: false,
} as const;

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

Deno.test("pg-boss job queue: dead letters can be seen, retried and deleted", async (t) => {
  await using db = await openJobsDatabase();

  // Dead-letters `count` jobs of a fresh queue whose handler fails until
  // `healed.value` is true, and returns the queue.
  async function deadLettered(
    jobs: PgBossJobQueue,
    count: number,
    healed: { value: boolean },
    completed: Collector<number>,
  ): Promise<string> {
    const queue = uniqueQueueName("dl");
    await jobs.work<{ n: number; email: string }>(queue, (job) => {
      if (!healed.value) throw new TypeError("template missing");
      completed.push(job.data.n);
    }, { pollingIntervalSeconds: 0.5 });
    for (let n = 0; n < count; n++) {
      await jobs.enqueue(queue, { n, email: EMAIL }, { key: `e${n}` });
    }
    await until(
      `${count} dead letters`,
      async () => (await jobs.deadLetters({ queue })).length === count,
    );
    return queue;
  }

  await t.step(
    "deadLetters() lists them with queue, attempts and error, without data unless asked",
    async () => {
      await using jobs = await db.connect({ queueDefaults: oneAttempt });
      const healed = { value: false };
      const queue = await deadLettered(jobs, 2, healed, new Collector());
      const letters = await jobs.deadLetters({ queue });
      assert.equal(letters.length, 2);
      for (const letter of letters) {
        assert.equal(letter.queue, queue);
        assert.equal(letter.deadLetterQueue, `${queue}__dead`);
        assert.equal(letter.attempts, 1);
        assert.equal(letter.error, "TypeError: template missing");
        assert.ok(letter.ageSeconds >= 0);
        assert.equal("data" in letter, false, "no data by default");
        assert.ok(!JSON.stringify(letter).includes(EMAIL));
      }
      const withData = await jobs.deadLetters({ queue, includeData: true });
      assert.deepEqual(
        withData.map((l) => (l.data as { n: number }).n).sort(),
        [0, 1],
      );
      assert.ok(
        (await jobs.deadLetters()).length >= 2,
        "every dead-letter queue without a filter",
      );
    },
  );

  await t.step(
    "retryDeadLetters() sends them back to their queue, where they complete",
    async () => {
      await using jobs = await db.connect({ queueDefaults: oneAttempt });
      const healed = { value: false };
      const completed = new Collector<number>();
      const queue = await deadLettered(jobs, 3, healed, completed);
      const [first] = await jobs.deadLetters({ queue });
      healed.value = true;
      assert.equal(await jobs.countDeadLetters({ ids: [first!.id] }), 1);
      assert.equal(await jobs.retryDeadLetters({ ids: [first!.id] }), 1);
      await completed.atLeast(1, "the retried job");
      assert.equal((await jobs.deadLetters({ queue })).length, 2);
      assert.equal(await jobs.countDeadLetters({ queue }), 2);
      assert.equal(await jobs.retryDeadLetters({ queue }), 2);
      assert.deepEqual(
        [...await completed.atLeast(3, "every retried job")].sort(),
        [0, 1, 2],
      );
      assert.equal(await jobs.countDeadLetters({ queue }), 0);
    },
  );

  await t.step("deleteDeadLetters() deletes them", async () => {
    await using jobs = await db.connect({ queueDefaults: oneAttempt });
    const queue = await deadLettered(
      jobs,
      2,
      { value: false },
      new Collector(),
    );
    assert.equal(await jobs.deleteDeadLetters({ queue }), 2);
    assert.deepEqual(await jobs.deadLetters({ queue }), []);
  });

  await t.step(
    "bad selections throw a TypeError and change nothing",
    async () => {
      await using jobs = await db.connect({ queueDefaults: oneAttempt });
      const queue = await deadLettered(
        jobs,
        1,
        { value: false },
        new Collector(),
      );
      const bad: unknown[] = [
        undefined,
        null,
        {},
        { all: false },
        { all: true, queue },
        { ids: [] },
        { ids: "x" },
        { ids: [1] },
        { queue: "bad name!" },
        { type: queue },
      ];
      for (const selection of bad) {
        await assert.rejects(
          jobs.retryDeadLetters(selection as never),
          TypeError,
          `retry ${JSON.stringify(selection)}`,
        );
        await assert.rejects(
          jobs.deleteDeadLetters(selection as never),
          TypeError,
          `delete ${JSON.stringify(selection)}`,
        );
      }
      await assert.rejects(jobs.deadLetters({ limit: 0 }), RangeError);
      await assert.rejects(
        jobs.deadLetters({ includeData: "yes" as never }),
        TypeError,
      );
      assert.equal((await jobs.deadLetters({ queue })).length, 1);
      assert.equal(
        await jobs.retryDeadLetters({ ids: [crypto.randomUUID()] }),
        0,
        "an unknown id matches nothing",
      );
    },
  );
});

Deno.test("pg-boss job queue: a handler that ignores its signal frees its worker at expiry", async () => {
  await using db = await openJobsDatabase();
  const queue = uniqueQueueName("stuck");
  await using jobs = await db.connect({
    queueDefaults: { ...oneAttempt, expireInSeconds: 1 },
  });
  const started = new Collector<number>();
  const finished = new Collector<number>();
  const signals: AbortSignal[] = [];
  await jobs.work<{ n: number }>(queue, async (job) => {
    started.push(job.data.n);
    signals.push(job.signal);
    if (job.data.n === 0) {
      await new Promise(() => {}); // never settles, ignores the signal
    }
    finished.push(job.data.n);
  }, { concurrency: 1, batchSize: 1, pollingIntervalSeconds: 0.5 });
  await jobs.enqueue(queue, { n: 0 });
  await started.atLeast(1, "the stuck job to start");
  await jobs.enqueue(queue, { n: 1 });
  await jobs.enqueue(queue, { n: 2 });
  // One worker slot: the next jobs run only once the stuck one is let go.
  await waitFor(
    finished.atLeast(2, "the jobs behind the stuck one"),
    "the jobs behind the stuck one",
    15_000,
  );
  assert.deepEqual(finished.items, [1, 2]);
  assert.equal(signals[0]!.aborted, true, "the stuck job's signal aborted");
  const letters = await jobs.deadLetters({ queue });
  assert.equal(letters.length, 1, "the stuck job failed and was dead-lettered");
  assert.match(letters[0]!.error ?? "", /exceeded|JobAbandonedError/);
});
