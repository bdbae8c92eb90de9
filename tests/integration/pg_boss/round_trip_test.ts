import assert from "node:assert/strict";
import {
  DomainEvent,
  EventBus,
  type Job,
  type JobQueue,
  On,
} from "../../../mod.ts";
import { PgBossJobQueue } from "../../../src/adapters/pg-boss/mod.ts";
import {
  Collector,
  openJobsDatabase,
  uniqueQueueName,
} from "../../_helpers/jobs_db.ts";

class UserRegistered extends DomainEvent {
  constructor(readonly userId: string) {
    super();
  }
}

Deno.test("pg-boss job queue: round trip from publishAll() to the worker", async (t) => {
  await using db = await openJobsDatabase();

  await t.step(
    "publishAll() through an @On handler's enqueue reaches the worker",
    async () => {
      const queue = uniqueQueueName("send-welcome-email");
      await using jobs = await db.connect();
      const received = new Collector<
        { job: Job<{ userId: string }>; abortedWhileRunning: boolean }
      >();
      await jobs.work<{ userId: string }>(queue, (job) => {
        received.push({ job, abortedWhileRunning: job.signal.aborted });
      });

      class Welcome {
        constructor(private readonly jobs: JobQueue) {}
        @On(UserRegistered)
        async enqueue(e: UserRegistered): Promise<void> {
          await this.jobs.enqueue(queue, { userId: e.userId }, {
            key: e.eventId,
          });
        }
      }
      const bus = new EventBus();
      using _sub = bus.subscribe(new Welcome(jobs));
      const events = [
        new UserRegistered("u1"),
        new UserRegistered("u2"),
        new UserRegistered("u3"),
      ];
      await bus.publishAll(events);

      const got = await received.atLeast(3, "three welcome jobs");
      assert.deepEqual(
        got.map(({ job }) => job.data.userId).sort(),
        ["u1", "u2", "u3"],
      );
      for (const { job, abortedWhileRunning } of got) {
        const event = events.find((e) => e.userId === job.data.userId)!;
        assert.equal(
          job.id,
          PgBossJobQueue.jobIdFor(queue, event.eventId),
        );
        assert.equal(job.name, queue);
        assert.equal(job.attempt, 1);
        assert.ok(job.signal instanceof AbortSignal);
        assert.equal(abortedWhileRunning, false);
      }
    },
  );

  await t.step(
    "enqueueMany() inserts a batch that a batched worker runs exactly once each",
    async () => {
      const queue = uniqueQueueName("batch");
      await using jobs = await db.connect();
      const requests = Array.from({ length: 300 }, (_, i) => ({
        name: queue,
        data: { n: i },
        // Half with keys, half without: both paths end up in the same INSERT.
        ...(i % 2 === 0 ? { options: { key: `event-${i}` } } : {}),
      }));
      const ids = await jobs.enqueueMany(requests);
      assert.equal(ids.length, 300);
      assert.ok(ids.every((id) => typeof id === "string"));
      assert.equal(new Set(ids).size, 300);
      assert.equal(ids[0], PgBossJobQueue.jobIdFor(queue, "event-0"));

      const received = new Collector<number>();
      await jobs.work<{ n: number }>(queue, (job) => {
        received.push(job.data.n);
      }, { batchSize: 50, concurrency: 2 });
      const got = await received.atLeast(300, "300 batched jobs");
      assert.deepEqual(
        [...got].sort((a, b) => a - b),
        Array.from({ length: 300 }, (_, i) => i),
      );
    },
  );

  await t.step(
    "enqueueMany() spreads jobs over several queues and keeps their order in the result",
    async () => {
      const a = uniqueQueueName("queue-a");
      const b = uniqueQueueName("queue-b");
      await using jobs = await db.connect();
      const ids = await jobs.enqueueMany([
        { name: a, data: { to: "a1" }, options: { key: "k1" } },
        { name: b, data: { to: "b1" }, options: { key: "k1" } },
        { name: a, data: { to: "a2" } },
      ]);
      assert.equal(ids[0], PgBossJobQueue.jobIdFor(a, "k1"));
      assert.equal(ids[1], PgBossJobQueue.jobIdFor(b, "k1"));
      assert.notEqual(ids[0], ids[1]);
      assert.equal(typeof ids[2], "string");

      const received = new Collector<string>();
      const record = (job: Job<{ to: string }>) => {
        received.push(`${job.name === a ? "a" : "b"}:${job.data.to}`);
      };
      await jobs.work(a, record);
      await jobs.work(b, record);
      const got = await received.atLeast(3, "jobs of both queues");
      assert.deepEqual([...got].sort(), ["a:a1", "a:a2", "b:b1"]);
    },
  );

  await t.step("enqueueMany() of nothing returns an empty array", async () => {
    await using jobs = await db.connect();
    assert.deepEqual(await jobs.enqueueMany([]), []);
  });
});
