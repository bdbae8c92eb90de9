import assert from "node:assert/strict";
import { DomainEvent, EventBus, type JobQueue, On } from "../../../mod.ts";
import { PgBossJobQueue } from "../../../src/adapters/pg-boss/mod.ts";
import {
  Collector,
  openJobsDatabase,
  uniqueQueueName,
  waitFor,
} from "../../_helpers/jobs_db.ts";

class OrderPlaced extends DomainEvent {
  constructor(readonly orderId: string) {
    super();
  }
}

Deno.test("pg-boss job queue: idempotent enqueue", async (t) => {
  await using db = await openJobsDatabase();
  await using jobs = await db.connect();

  // Runs every job of `queue` (one worker, one at a time, oldest first) and
  // resolves with their data, sorted, once the sentinel enqueued last has run.
  async function drain(queue: string): Promise<unknown[]> {
    const seen = new Collector<unknown>();
    let done: () => void;
    const finished = new Promise<void>((resolve) => done = resolve);
    await jobs.work(queue, (job) => {
      if ((job.data as { sentinel?: boolean } | null)?.sentinel) done();
      else seen.push(job.data);
    });
    await jobs.enqueue(queue, { sentinel: true });
    await waitFor(finished, `the sentinel job of ${queue}`);
    return seen.items.toSorted((a, b) =>
      JSON.stringify(a).localeCompare(JSON.stringify(b))
    );
  }

  await t.step(
    "the same key twice creates one job; the second enqueue returns null",
    async () => {
      const queue = uniqueQueueName("send-receipt");
      const first = await jobs.enqueue(queue, { orderId: "o1" }, {
        key: "evt-1",
      });
      const second = await jobs.enqueue(queue, { orderId: "o1-again" }, {
        key: "evt-1",
      });
      const other = await jobs.enqueue(queue, { orderId: "o2" }, {
        key: "evt-2",
      });
      assert.equal(first, PgBossJobQueue.jobIdFor(queue, "evt-1"));
      assert.equal(second, null);
      assert.equal(other, PgBossJobQueue.jobIdFor(queue, "evt-2"));
      assert.deepEqual(await drain(queue), [{ orderId: "o1" }, {
        orderId: "o2",
      }]);
    },
  );

  await t.step("the same key on two queues makes one job on each", async () => {
    const a = uniqueQueueName("queue-a");
    const b = uniqueQueueName("queue-b");
    const idA = await jobs.enqueue(a, { n: 1 }, { key: "evt" });
    const idB = await jobs.enqueue(b, { n: 1 }, { key: "evt" });
    assert.equal(typeof idA, "string");
    assert.equal(typeof idB, "string");
    assert.notEqual(idA, idB);
  });

  await t.step("without a key, every enqueue creates a job", async () => {
    const queue = uniqueQueueName("no-key");
    const ids = [
      await jobs.enqueue(queue, { n: 1 }),
      await jobs.enqueue(queue, { n: 1 }),
    ];
    assert.ok(ids.every((id) => typeof id === "string"));
    assert.notEqual(ids[0], ids[1]);
    assert.deepEqual(await drain(queue), [{ n: 1 }, { n: 1 }]);
  });

  await t.step(
    "enqueueMany() returns null for keys used before and for repeats within the call",
    async () => {
      const queue = uniqueQueueName("batch-keys");
      await jobs.enqueue(queue, { n: 0 }, { key: "k0" });
      const ids = await jobs.enqueueMany([
        { name: queue, data: { n: 1 }, options: { key: "k0" } }, // used before
        { name: queue, data: { n: 2 }, options: { key: "k1" } },
        { name: queue, data: { n: 3 }, options: { key: "k1" } }, // repeat
        { name: queue, data: { n: 4 } },
      ]);
      assert.equal(ids[0], null);
      assert.equal(ids[1], PgBossJobQueue.jobIdFor(queue, "k1"));
      assert.equal(ids[2], null);
      assert.equal(typeof ids[3], "string");
      assert.deepEqual(await drain(queue), [{ n: 0 }, { n: 2 }, { n: 4 }]);
    },
  );

  await t.step(
    "an event delivered twice through the bus enqueues one job",
    async () => {
      const queue = uniqueQueueName("fulfil-order");
      class Fulfilment {
        constructor(private readonly jobs: JobQueue) {}
        @On(OrderPlaced)
        async enqueue(e: OrderPlaced): Promise<void> {
          await this.jobs.enqueue(queue, { orderId: e.orderId }, {
            key: `${e.eventId}:Fulfilment.enqueue`,
          });
        }
      }
      const bus = new EventBus();
      using _sub = bus.subscribe(new Fulfilment(jobs));
      const event = new OrderPlaced("o-42");
      await bus.publishAll([event]);
      // At-least-once delivery (the outbox) may publish the same event again.
      await bus.publishAll([event]);
      assert.deepEqual(await drain(queue), [{ orderId: "o-42" }]);
    },
  );
});
