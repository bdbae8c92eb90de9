import assert from "node:assert/strict";
import { BatchingJobQueue, EventBus, type Job, On } from "../../../mod.ts";
import { jobIdFor } from "../../../src/internal/job_id.ts";
import { InMemoryJobQueue } from "../../../src/testing/mod.ts";

Deno.test("enqueue() stores the job and answers its id; a used key or id answers null and stores nothing", async () => {
  const jobs = new InMemoryJobQueue();
  const plain = await jobs.enqueue("send-receipt", { orderId: "o1" });
  assert.match(plain!, /^[0-9a-f-]{36}$/);
  const keyed = await jobs.enqueue("send-welcome-email", { userId: "u1" }, {
    key: "e1",
  });
  // The pg-boss adapter's id for that queue and key.
  assert.equal(keyed, jobIdFor("send-welcome-email", "e1"));
  assert.equal(keyed, jobs.jobIdFor("send-welcome-email", "e1"));
  assert.equal(
    await jobs.enqueue("send-welcome-email", { userId: "u1" }, { key: "e1" }),
    null,
  );
  const id = crypto.randomUUID();
  assert.equal(await jobs.enqueue("x", 1, { id }), id);
  assert.equal(await jobs.enqueue("x", 2, { id }), null);

  assert.deepEqual(
    jobs.jobs.map((j) => [j.id, j.name, j.data, j.state, j.attempts]),
    [
      [plain, "send-receipt", { orderId: "o1" }, "created", 0],
      [keyed, "send-welcome-email", { userId: "u1" }, "created", 0],
      [id, "x", 1, "created", 0],
    ],
  );
  assert.deepEqual(jobs.jobs[1]!.options, { key: "e1" });
  assert.equal(jobs.writes.length, 5);
  assert.deepEqual(jobs.jobsNamed("x").map((j) => j.data), [1]);
});

Deno.test("a job keeps the data it was enqueued with", async () => {
  const jobs = new InMemoryJobQueue();
  const data = { userId: "u1", tags: ["a"] };
  await jobs.enqueue("send-welcome-email", data);
  data.tags.push("b");
  assert.deepEqual(jobs.jobs[0]!.data, { userId: "u1", tags: ["a"] });
});

Deno.test("enqueueMany() is one write, checked whole before anything is stored", async () => {
  const jobs = new InMemoryJobQueue();
  const ids = await jobs.enqueueMany([
    { name: "a", data: 1 },
    { name: "b", data: 2, options: { key: "k" } },
    { name: "b", data: 3, options: { key: "k" } },
  ]);
  assert.equal(ids.length, 3);
  assert.equal(ids[2], null);
  assert.deepEqual(jobs.writes.map((w) => [w.method, w.jobs.length]), [
    ["enqueueMany", 3],
  ]);
  await assert.rejects(
    jobs.enqueueMany([{ name: "a", data: 4 }, { name: "", data: 5 }]),
    {
      name: "TypeError",
      message:
        /Cannot enqueue jobs\[1\]: expected a queue name, received an empty string/,
    },
  );
  assert.equal(jobs.jobs.length, 2);
  assert.equal(jobs.writes.length, 1);
});

Deno.test("bad jobs get the pg-boss adapter's TypeError or RangeError and write nothing", async () => {
  const jobs = new InMemoryJobQueue();
  const cases: [() => Promise<unknown>, string, RegExp][] = [
    [() => jobs.enqueue("bad name!", {}), "TypeError", /invalid queue name/],
    [() => jobs.enqueue("q", undefined), "TypeError", /data is undefined/],
    [() => jobs.enqueue("q", { n: 1n }), "TypeError", /bigint|JSON/],
    [
      () => jobs.enqueue("q", {}, { key: "" }),
      "TypeError",
      /options\.key must be a non-empty string/,
    ],
    [
      () => jobs.enqueue("q", {}, { key: "k", id: crypto.randomUUID() }),
      "TypeError",
      /pass options\.key or options\.id, not both/,
    ],
    [
      () => jobs.enqueue("q", {}, { id: "job-1" }),
      "TypeError",
      /options\.id must be a lowercase UUID/,
    ],
    [
      () => jobs.enqueue("q", {}, { startAfterSeconds: -1 }),
      "RangeError",
      /startAfterSeconds must be at least 0/,
    ],
    [
      () => jobs.enqueue("q", {}, { priority: 1.5 }),
      "RangeError",
      /priority must be an integer/,
    ],
    [
      () => jobs.enqueueMany("q" as never),
      "TypeError",
      /expected an array of \{ name, data, options \} requests/,
    ],
  ];
  for (const [call, name, message] of cases) {
    await assert.rejects(call(), { name, message });
  }
  assert.equal(jobs.jobs.length, 0);
  assert.equal(jobs.writes.length, 0);
  assert.throws(() => jobs.prepare({ name: "q", data: () => {} }), TypeError);
});

Deno.test("failWrites() makes writes reject until it is called with no argument; stop() makes them reject", async () => {
  const jobs = new InMemoryJobQueue();
  const down = new Error("jobs database down");
  jobs.failWrites(down);
  await assert.rejects(jobs.enqueue("q", 1), (e) => e === down);
  await assert.rejects(
    jobs.enqueueMany([{ name: "q", data: 2 }]),
    (e) => e === down,
  );
  assert.equal(jobs.jobs.length, 0);
  assert.equal(jobs.writes.length, 2, "the attempts are recorded");
  jobs.failWrites();
  assert.notEqual(await jobs.enqueue("q", 3), null);
  await jobs.stop();
  assert.equal(jobs.stopped, true);
  await assert.rejects(
    jobs.enqueue("q", 4),
    /Cannot enqueue job: the queue is stopped; stop\(\) it only after the last enqueue, or create a new one$/,
  );
  assert.deepEqual(jobs.jobs.map((j) => j.data), [3]);
});

Deno.test("runJobs() runs created jobs with a worker, oldest first, jobs they enqueue included; failures are kept", async () => {
  const jobs = new InMemoryJobQueue();
  const log: string[] = [];
  const signals: AbortSignal[] = [];
  await jobs.work<{ n: number }>("step", async (job: Job<{ n: number }>) => {
    signals.push(job.signal);
    assert.equal(job.signal.aborted, false);
    log.push(`step ${job.data.n} attempt ${job.attempt}`);
    if (job.data.n < 3) await jobs.enqueue("step", { n: job.data.n + 1 });
  });
  const boom = new Error("mailer down");
  await jobs.work("mail", () => {
    log.push("mail");
    throw boom;
  });
  await jobs.enqueue("step", { n: 1 });
  await jobs.enqueue("mail", {});
  await jobs.enqueue("no-worker", {});

  const { completed, failed } = await jobs.runJobs();
  assert.deepEqual(log, [
    "step 1 attempt 1",
    "mail",
    "step 2 attempt 1",
    "step 3 attempt 1",
  ]);
  assert.equal(completed.length, 3);
  assert.deepEqual(failed.map((j) => [j.name, j.state, j.error]), [
    ["mail", "failed", boom],
  ]);
  assert.ok(
    signals.every((s) => s.aborted),
    "each attempt's signal aborts when it ends",
  );
  assert.deepEqual(
    jobs.jobs.map((j) => [j.name, j.state]),
    [
      ["step", "completed"],
      ["mail", "failed"],
      ["no-worker", "created"],
      ["step", "completed"],
      ["step", "completed"],
    ],
  );

  await t_retry(jobs, log);
});

async function t_retry(jobs: InMemoryJobQueue, log: string[]): Promise<void> {
  log.length = 0;
  assert.deepEqual(await jobs.runJobs(), { completed: [], failed: [] });
  const retried = await jobs.runJobs({ retryFailed: true, name: "mail" });
  assert.deepEqual(log, ["mail"]);
  assert.equal(retried.failed[0]?.attempts, 2);
}

Deno.test("runJobs() throws instead of running forever when a handler keeps enqueueing", async () => {
  const jobs = new InMemoryJobQueue();
  await jobs.work("loop", async () => {
    await jobs.enqueue("loop", {});
  });
  await jobs.enqueue("loop", {});
  await assert.rejects(
    jobs.runJobs(),
    /a handler probably enqueues a job for itself/,
  );
});

Deno.test("work() rejects a bad queue name or handler", async () => {
  const jobs = new InMemoryJobQueue();
  await assert.rejects(jobs.work("q", "handler" as never), {
    name: "TypeError",
    message:
      /Cannot start worker on queue "q": expected a handler function, received a string/,
  });
  await assert.rejects(jobs.work("", () => {}), { name: "TypeError" });
});

Deno.test("BatchingJobQueue around InMemoryJobQueue writes one publishAll's jobs in one enqueueMany", async () => {
  class UserRegistered {
    constructor(readonly eventId: string, readonly userId: string) {}
  }
  const inner = new InMemoryJobQueue();
  const jobs = new BatchingJobQueue(inner);
  class Welcome {
    @On(UserRegistered)
    async enqueue(e: UserRegistered): Promise<void> {
      await jobs.enqueue("send-welcome-email", { userId: e.userId }, {
        key: e.eventId,
      });
    }
  }
  const bus = new EventBus();
  bus.subscribe(new Welcome());
  await jobs.publisher(bus).publishAll([
    new UserRegistered("e1", "u1"),
    new UserRegistered("e2", "u2"),
    new UserRegistered("e1", "u1"),
  ]);
  assert.deepEqual(inner.writes.map((w) => [w.method, w.jobs.length]), [
    ["enqueueMany", 3],
  ]);
  assert.deepEqual(inner.jobs.map((j) => j.id), [
    inner.jobIdFor("send-welcome-email", "e1"),
    inner.jobIdFor("send-welcome-email", "e2"),
  ]);
});
