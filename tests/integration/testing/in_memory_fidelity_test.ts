// InMemoryJobQueue behaves as the pg-boss adapter where a test could tell:
// the data a handler and a test see, a fresh copy per attempt, and work()
// after stop(). The last test runs the same jobs through both.
import assert from "node:assert/strict";
import type { JobQueue } from "../../../mod.ts";
import { InMemoryJobQueue } from "../../../src/testing/mod.ts";
import {
  Collector,
  openJobsDatabase,
  uniqueQueueName,
} from "../../_helpers/jobs_db.ts";

// Data JSON keeps only partly: an undefined member, a -0, an object
// without a prototype.
const lossy = (): unknown => ({
  userId: "u1",
  referrer: undefined,
  b: { y: 1, x: -0 },
  n: Object.assign(Object.create(null), { k: 1 }),
});
const STORED = { userId: "u1", b: { y: 1, x: 0 }, n: { k: 1 } };

// Data JSON cannot represent: both queues refuse it with the same error.
const cyclic = (): unknown => {
  const node: Record<string, unknown> = { id: 1 };
  node.self = node;
  return node;
};
const unrepresentable = (): unknown[] => [
  { at: new Date(0) },
  { n: 1n },
  { tags: new Set(["a"]) },
  { byId: new Map() },
  [1, undefined],
  { ratio: NaN },
  cyclic(),
];

// Runs `data` through `queue` and answers what the handler saw.
async function seen(
  queue: JobQueue,
  run: () => Promise<unknown>,
  data: unknown,
): Promise<unknown> {
  const name = uniqueQueueName("seen");
  const got = new Collector<unknown>();
  await queue.work(name, (job) => got.push(job.data), {
    pollingIntervalSeconds: 0.5,
  });
  await queue.enqueue(name, data);
  await run();
  return (await got.atLeast(1, "the job"))[0];
}

Deno.test("InMemoryJobQueue: job data is what pg-boss stores (jsonb)", async (t) => {
  await t.step("an undefined member is dropped, as in pg-boss", async () => {
    const jobs = new InMemoryJobQueue();
    const data: { userId: string; referrer: string | undefined } = {
      userId: "u1",
      referrer: undefined,
    };
    const handled: unknown[] = [];
    await jobs.work("welcome", (job) => void handled.push(job.data));
    await jobs.enqueue("welcome", data);
    assert.deepEqual(jobs.jobs[0]!.data, { userId: "u1" });
    await jobs.runJobs();
    assert.deepEqual(handled, [{ userId: "u1" }]);
  });

  await t.step("-0 as 0, plain objects only", async () => {
    const jobs = new InMemoryJobQueue();
    await jobs.enqueue("q", lossy());
    const { data } = jobs.jobs[0]! as { data: { b: { x: number } } };
    assert.equal(Object.is(data.b.x, 0), true);
    assert.deepEqual(data, STORED);
  });

  await t.step(
    "data JSON cannot represent is refused as by the adapter",
    async () => {
      const jobs = new InMemoryJobQueue();
      for (const data of unrepresentable()) {
        await assert.rejects(jobs.enqueue("q", data), {
          name: "TypeError",
          message:
            /^Cannot enqueue job on queue "q": data is not JSON-serialisable: data/,
        });
      }
      assert.equal(jobs.jobs.length, 0);
    },
  );
});

Deno.test("InMemoryJobQueue: each attempt gets a fresh copy of the data", async () => {
  const jobs = new InMemoryJobQueue();
  const handled: unknown[] = [];
  await jobs.work<{ userId: string; tags: string[] }>("welcome", (job) => {
    handled.push(structuredClone(job.data));
    job.data.userId = "mutated";
    job.data.tags.push("mutated");
    throw new Error("mailer down");
  });
  await jobs.enqueue("welcome", { userId: "u1", tags: ["a"] });
  const { failed } = await jobs.runJobs();
  await jobs.runJobs({ retryFailed: true });
  const original = { userId: "u1", tags: ["a"] };
  assert.deepEqual(handled, [original, original], "the retry saw the original");
  assert.deepEqual(failed[0]!.data, original);
  assert.deepEqual(jobs.jobs[0]!.data, original);
  // A snapshot a test changes changes nothing either.
  (jobs.jobs[0]!.data as { tags: string[] }).tags.push("test");
  assert.deepEqual(jobs.jobs[0]!.data, original);
});

Deno.test("InMemoryJobQueue: work() after stop() rejects, as on pg-boss", async () => {
  const jobs = new InMemoryJobQueue();
  await jobs.stop();
  await assert.rejects(jobs.work("q", () => {}), {
    name: "Error",
    message:
      'Cannot start worker on queue "q": the queue is stopped; stop() it only after the last enqueue and work, or create a new one',
  });
  // The arguments are checked first, as by the adapter.
  await assert.rejects(jobs.work("q", "handler" as never), TypeError);
});

Deno.test("InMemoryJobQueue and the pg-boss adapter agree", async (t) => {
  await using db = await openJobsDatabase();
  const memory = new InMemoryJobQueue();
  const run = () => memory.runJobs();
  await using boss = await db.connect({
    queueDefaults: { retryLimit: 1, retryDelaySeconds: 0, retryBackoff: false },
  });
  const settled = () => Promise.resolve();

  await t.step("on the data a handler sees", async () => {
    for (const data of [lossy(), [1, "x", null, { b: 1 }], "text", 0]) {
      const inMemory = await seen(memory, run, data);
      const onPgBoss = await seen(boss, settled, data);
      assert.deepEqual(inMemory, onPgBoss);
    }
  });

  await t.step("on the data they refuse, and the error", async () => {
    for (const data of unrepresentable()) {
      const [inMemory, onPgBoss] = await Promise.allSettled([
        memory.enqueue("q", data),
        boss.enqueue("q", data),
      ]);
      assert.equal(inMemory.status, "rejected");
      assert.deepEqual(inMemory, onPgBoss);
    }
  });

  await t.step("on the data a retry sees", async () => {
    for (const queue of [memory, boss]) {
      const name = uniqueQueueName("retry");
      const attempts = new Collector<unknown>();
      await queue.work<{ tags: string[] }>(name, (job) => {
        attempts.push(structuredClone(job.data));
        job.data.tags.push("mutated");
        if (job.attempt === 1) throw new Error("mailer down");
      }, { pollingIntervalSeconds: 0.5 });
      await queue.enqueue(name, { tags: ["a"] });
      if (queue === memory) {
        await memory.runJobs();
        await memory.runJobs({ retryFailed: true });
      }
      assert.deepEqual(await attempts.atLeast(2, "the retry"), [
        { tags: ["a"] },
        { tags: ["a"] },
      ]);
    }
  });

  await t.step("on work() after stop()", async () => {
    await memory.stop();
    await boss.stop();
    for (const queue of [memory, boss]) {
      await assert.rejects(queue.work("late", () => {}), {
        name: "Error",
        message:
          /^Cannot start worker on queue "late": the (job )?queue is stopped; stop\(\) it only after the last enqueue and work, or /,
      });
    }
  });
});
