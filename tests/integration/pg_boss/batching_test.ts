import assert from "node:assert/strict";
import {
  BatchingJobQueue,
  DomainEvent,
  type EnqueueOptions,
  EventBus,
  type JobHandler,
  type JobQueue,
  type JobRequest,
  On,
  type WorkOptions,
} from "../../../mod.ts";
import { PgBossJobQueue } from "../../../src/adapters/pg-boss/mod.ts";
import {
  Collector,
  openJobsDatabase,
  uniqueQueueName,
  waitFor,
} from "../../_helpers/jobs_db.ts";

class UserRegistered extends DomainEvent {
  constructor(readonly userId: string) {
    super();
  }
}

/** Passes every call to the adapter and records the writes and answers. */
class Spy implements JobQueue {
  readonly writes: { method: string; count: number }[] = [];
  readonly answers: (string | null)[][] = [];
  constructor(private readonly inner: PgBossJobQueue) {}
  async enqueue<T>(name: string, data: T, options?: EnqueueOptions) {
    this.writes.push({ method: "enqueue", count: 1 });
    const id = await this.inner.enqueue(name, data, options);
    this.answers.push([id]);
    return id;
  }
  async enqueueMany(jobs: readonly JobRequest[]) {
    this.writes.push({ method: "enqueueMany", count: jobs.length });
    const ids = await this.inner.enqueueMany(jobs);
    this.answers.push(ids);
    return ids;
  }
  prepare(request: JobRequest) {
    return this.inner.prepare(request);
  }
  work<T>(name: string, handler: JobHandler<T>, options?: WorkOptions) {
    return this.inner.work(name, handler, options);
  }
  stop() {
    return this.inner.stop();
  }
}

Deno.test("pg-boss job queue: batched enqueue through BatchingJobQueue", async (t) => {
  await using db = await openJobsDatabase();

  await t.step(
    "1,000 events of one publishAll() make 1,000 jobs in one write; publishing them again makes none; workers run each once",
    async () => {
      const queue = uniqueQueueName("send-welcome-email");
      await using adapter = await db.connect();
      const spy = new Spy(adapter);
      const jobs = new BatchingJobQueue(spy);
      const answers: (string | null)[] = [];
      class Welcome {
        constructor(private readonly jobs: JobQueue) {}
        @On(UserRegistered)
        async enqueue(e: UserRegistered): Promise<void> {
          answers.push(
            await this.jobs.enqueue(queue, { userId: e.userId }, {
              key: e.eventId,
            }),
          );
        }
      }
      const bus = new EventBus();
      using _sub = bus.subscribe(new Welcome(jobs));
      const publisher = jobs.publisher(bus);
      const events = Array.from(
        { length: 1_000 },
        (_, i) => new UserRegistered(`u${i}`),
      );

      await publisher.publishAll(events);
      assert.deepEqual(spy.writes, [{ method: "enqueueMany", count: 1_000 }]);
      const expected = events.map((e) =>
        PgBossJobQueue.jobIdFor(queue, e.eventId)
      );
      assert.deepEqual(answers, expected);
      assert.deepEqual(spy.answers[0], expected, "every job was created");

      // The outbox may deliver the same events again.
      await publisher.publishAll(events);
      assert.equal(spy.writes.length, 2);
      assert.ok(
        spy.answers[1]!.every((id) => id === null),
        "the second publish created no job",
      );

      const received = new Collector<{ id: string; userId: string }>();
      let sentinel: () => void;
      const sentinelRan = new Promise<void>((r) => sentinel = r);
      await jobs.work<{ userId?: string }>(queue, (job) => {
        if (job.data.userId === undefined) sentinel();
        else received.push({ id: job.id, userId: job.data.userId });
      }, { batchSize: 100, concurrency: 2 });
      await received.atLeast(1_000, "1,000 welcome jobs");
      // Enqueued after everything else: once it ran, any duplicate would
      // have run too.
      await jobs.enqueue(queue, {});
      await waitFor(sentinelRan, "the sentinel job");
      assert.equal(received.items.length, 1_000);
      assert.deepEqual(
        received.items.map((r) => r.id).sort(),
        [...expected].sort(),
      );
      assert.deepEqual(
        new Set(received.items.map((r) => r.userId)),
        new Set(events.map((e) => e.userId)),
      );
    },
  );

  await t.step(
    "jobs without a key get the ids their buffered enqueue answered",
    async () => {
      const queue = uniqueQueueName("resize");
      await using adapter = await db.connect();
      const jobs = new BatchingJobQueue(adapter);
      const answered: string[] = [];
      await jobs.batch(async () => {
        for (let n = 0; n < 5; n++) {
          answered.push((await jobs.enqueue(queue, { n }))!);
        }
      });
      const received = new Collector<[string, number]>();
      await jobs.work<{ n: number }>(queue, (job) => {
        received.push([job.id, job.data.n]);
      }, { batchSize: 5 });
      const got = await received.atLeast(5, "five resize jobs");
      assert.deepEqual(
        got.toSorted((a, b) => a[1] - b[1]),
        answered.map((id, n) => [id, n]),
      );
    },
  );

  await t.step(
    "bad input in a handler rejects at its enqueue and the publish writes nothing of it",
    async () => {
      const queue = uniqueQueueName("bad");
      await using adapter = await db.connect();
      const spy = new Spy(adapter);
      const jobs = new BatchingJobQueue(spy);
      const bus = new EventBus();
      bus.register(UserRegistered, async (e) => {
        await jobs.enqueue(queue, { at: new Date(), userId: e.userId });
      });
      await assert.rejects(
        () => jobs.publisher(bus).publishAll([new UserRegistered("u1")]),
        /Cannot enqueue job on queue "bad-[0-9a-f]+": data is not JSON-serialisable: data\.at is a Date/,
      );
      await assert.rejects(
        () => jobs.batch(() => jobs.enqueue("not a queue name!", {})),
        TypeError,
      );
      assert.deepEqual(spy.writes, []);
    },
  );

  await t.step(
    "a write that fails after a stop surfaces from publishAll()",
    async () => {
      const queue = uniqueQueueName("stopped");
      const adapter = await db.connect();
      const jobs = new BatchingJobQueue(adapter);
      const bus = new EventBus();
      bus.register(UserRegistered, async (e) => {
        await jobs.enqueue(queue, { userId: e.userId }, { key: e.eventId });
        await adapter.stop();
      });
      await assert.rejects(
        () => jobs.publisher(bus).publishAll([new UserRegistered("u1")]),
        /Cannot enqueue jobs: the job queue is stopped/,
      );
    },
  );
});

Deno.test("pg-boss job queue: explicit ids, prepare() and jobIdFor()", async (t) => {
  await using db = await openJobsDatabase();
  await using jobs = await db.connect();

  await t.step("enqueue() and enqueueMany() keep an explicit id", async () => {
    const queue = uniqueQueueName("explicit");
    const a = crypto.randomUUID();
    const b = crypto.randomUUID();
    assert.equal(await jobs.enqueue(queue, { n: 1 }, { id: a }), a);
    assert.equal(await jobs.enqueue(queue, { n: 1 }, { id: a }), null);
    assert.deepEqual(
      await jobs.enqueueMany([
        { name: queue, data: { n: 2 }, options: { id: b } },
        { name: queue, data: { n: 2 }, options: { id: b } }, // repeat
        { name: queue, data: { n: 1 }, options: { id: a } }, // used before
      ]),
      [b, null, null],
    );
  });

  await t.step(
    "an id that is not a lowercase UUID, or with a key, is rejected",
    async () => {
      const queue = uniqueQueueName("explicit-bad");
      for (const id of ["x", crypto.randomUUID().toUpperCase(), 5]) {
        await assert.rejects(
          () => jobs.enqueue(queue, {}, { id } as EnqueueOptions),
          /options\.id must be a lowercase UUID/,
        );
      }
      await assert.rejects(
        () =>
          jobs.enqueueMany([{
            name: queue,
            data: {},
            options: { id: crypto.randomUUID(), key: "k" },
          }]),
        /pass options\.key or options\.id, not both/,
      );
    },
  );

  await t.step(
    "prepare() throws what enqueue() would, and writes nothing",
    async () => {
      const queue = uniqueQueueName("prepare");
      assert.throws(
        () => jobs.prepare({ name: "no spaces allowed", data: {} }),
        TypeError,
      );
      assert.throws(
        () => jobs.prepare({ name: queue, data: { n: 1n } }),
        /data\.n is a bigint/,
      );
      assert.throws(
        () =>
          jobs.prepare({ name: queue, data: {}, options: { priority: 1.5 } }),
        /options\.priority must be an integer/,
      );
      const job = jobs.prepare({
        name: queue,
        data: { n: 1 },
        options: { key: "k", startAfterSeconds: 1 },
      });
      assert.equal(job.id, PgBossJobQueue.jobIdFor(queue, "k"));
      // Nothing was written: the key is still free.
      assert.equal(await jobs.enqueue(queue, {}, { key: "k" }), job.id);
      assert.throws(() => PgBossJobQueue.jobIdFor(queue, ""), TypeError);
    },
  );
});
