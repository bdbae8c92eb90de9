// BatchingJobQueue over a recording fake queue: no database.
import assert from "node:assert/strict";
import {
  BatchingJobQueue,
  EventBus,
  type JobQueue,
  On,
  PublishAfterCommitError,
} from "../../../mod.ts";
import { InMemoryJobQueue } from "../../../src/testing/mod.ts";
import { captureLogs, recordText } from "../../_helpers/logs.ts";
import { NoTransaction } from "../../_helpers/no_transaction.ts";

// The test kit's in-memory queue: it records every write, checks jobs with
// the pg-boss adapter's rules and gives keyed jobs the adapter's ids.
const inner0 = new InMemoryJobQueue();
/** The id a job enqueued with `key` on queue `name` gets. */
const idFor = (name: string, key: string): string => inner0.jobIdFor(name, key);
/** The ids of the jobs stored in `queue`, in creation order. */
const storedIds = (queue: InMemoryJobQueue): string[] =>
  queue.jobs.map((j) => j.id);

class UserRegistered {
  constructor(readonly eventId: string, readonly userId: string) {}
}

class OrderPlaced {
  constructor(readonly orderId: string) {}
}

/** Handlers that enqueue, and record what their enqueue answered. */
class Handlers {
  readonly answers: (string | null)[] = [];
  constructor(private readonly jobs: JobQueue) {}

  @On(UserRegistered)
  async welcome(e: UserRegistered): Promise<void> {
    this.answers.push(
      await this.jobs.enqueue("send-welcome-email", { userId: e.userId }, {
        key: e.eventId,
      }),
    );
  }

  @On(OrderPlaced)
  async receipt(e: OrderPlaced): Promise<void> {
    this.answers.push(
      await this.jobs.enqueue("send-receipt", { orderId: e.orderId }),
    );
  }
}

function setUp(): {
  inner: InMemoryJobQueue;
  jobs: BatchingJobQueue;
  bus: EventBus;
  handlers: Handlers;
} {
  const inner = new InMemoryJobQueue();
  const jobs = new BatchingJobQueue(inner);
  const bus = new EventBus();
  const handlers = new Handlers(jobs);
  bus.subscribe(handlers);
  return { inner, jobs, bus, handlers };
}

Deno.test("publisher().publishAll() writes the jobs of its handlers with one enqueueMany, in order", async () => {
  const { inner, jobs, bus, handlers } = setUp();
  const events = [
    new UserRegistered("e1", "u1"),
    new OrderPlaced("o1"),
    new UserRegistered("e2", "u2"),
  ];
  await jobs.publisher(bus).publishAll(events);

  assert.equal(inner.writes.length, 1);
  assert.equal(inner.writes[0]!.method, "enqueueMany");
  const written = inner.writes[0]!.jobs;
  assert.deepEqual(written.map((j) => j.name), [
    "send-welcome-email",
    "send-receipt",
    "send-welcome-email",
  ]);
  assert.deepEqual(written.map((j) => j.data), [
    { userId: "u1" },
    { orderId: "o1" },
    { userId: "u2" },
  ]);
  // The handlers got the ids the jobs have in the queue.
  assert.deepEqual(handlers.answers, storedIds(inner));
  assert.equal(handlers.answers[0], idFor("send-welcome-email", "e1"));
  assert.equal(handlers.answers[2], idFor("send-welcome-email", "e2"));
});

Deno.test("a buffered enqueue answers with the job's id at once", async (t) => {
  await t.step("a keyed job gets the queue's key-derived id", async () => {
    const { inner, jobs } = setUp();
    let id: string | null | undefined;
    await jobs.batch(async () => {
      id = await jobs.enqueue("send-welcome-email", {}, { key: "e1" });
      assert.equal(
        inner.writes.length,
        0,
        "nothing is written inside the batch",
      );
    });
    assert.equal(id, idFor("send-welcome-email", "e1"));
    assert.deepEqual(storedIds(inner), [id]);
  });

  await t.step(
    "a job without a key gets a fresh UUID, given to the queue as options.id",
    async () => {
      const { inner, jobs } = setUp();
      const ids: (string | null)[] = [];
      await jobs.batch(async () => {
        ids.push(await jobs.enqueue("send-receipt", { n: 1 }));
        ids.push(
          await jobs.enqueue("send-receipt", { n: 2 }, { priority: 3 }),
        );
      });
      assert.match(ids[0]!, /^[0-9a-f-]{36}$/);
      assert.notEqual(ids[0], ids[1]);
      const written = inner.writes[0]!.jobs;
      assert.deepEqual(written.map((j) => j.options), [
        { id: ids[0] },
        { priority: 3, id: ids[1] },
      ]);
      assert.deepEqual(storedIds(inner), ids);
    },
  );

  await t.step("an explicit id is kept", async () => {
    const { inner, jobs } = setUp();
    const id = crypto.randomUUID();
    let answer: string | null | undefined;
    await jobs.batch(async () => {
      answer = await jobs.enqueue("send-receipt", {}, { id });
    });
    assert.equal(answer, id);
    assert.deepEqual(inner.writes[0]!.jobs[0]!.options, { id });
  });

  await t.step(
    "a used key answers with the id, not null, and creates nothing",
    async () => {
      const { inner, jobs, bus, handlers } = setUp();
      const event = new UserRegistered("e1", "u1");
      const publisher = jobs.publisher(bus);
      await publisher.publishAll([event]);
      await publisher.publishAll([event]);
      assert.deepEqual(handlers.answers, [
        idFor("send-welcome-email", "e1"),
        idFor("send-welcome-email", "e1"),
      ]);
      assert.equal(inner.writes.length, 2);
      assert.equal(inner.jobs.length, 1);
    },
  );

  await t.step(
    "enqueueMany() inside a batch is buffered with the rest",
    async () => {
      const { inner, jobs } = setUp();
      let ids: (string | null)[] = [];
      await jobs.batch(async () => {
        await jobs.enqueue("first", 1);
        ids = await jobs.enqueueMany([
          { name: "second", data: 2, options: { key: "k" } },
          { name: "third", data: 3 },
        ]);
      });
      assert.equal(inner.writes.length, 1);
      assert.deepEqual(inner.writes[0]!.jobs.map((j) => j.data), [1, 2, 3]);
      assert.equal(ids[0], idFor("second", "k"));
      assert.equal(ids[1], inner.writes[0]!.jobs[2]!.options?.id);
    },
  );
});

Deno.test("batch() returns what its function returned, after the write", async () => {
  const { inner, jobs } = setUp();
  const result = await jobs.batch(async () => {
    await jobs.enqueue("a", 1);
    return "done";
  });
  assert.equal(result, "done");
  assert.equal(inner.jobs.length, 1);
});

Deno.test("a batch with no enqueue writes nothing", async () => {
  const { inner, jobs, bus } = setUp();
  await jobs.publisher(bus).publishAll([]);
  await jobs.batch(() => {});
  assert.equal(inner.writes.length, 0);
});

Deno.test("a nested batch joins the outer one", async () => {
  const { inner, jobs, bus } = setUp();
  const publisher = jobs.publisher(bus);
  await jobs.batch(async () => {
    await publisher.publishAll([new UserRegistered("e1", "u1")]);
    await jobs.batch(async () => {
      await jobs.enqueue("inner-batch", {});
    });
    await publisher.publishAll([new OrderPlaced("o1")]);
    assert.equal(inner.writes.length, 0, "inner batches write nothing");
  });
  assert.equal(inner.writes.length, 1);
  assert.deepEqual(inner.writes[0]!.jobs.map((j) => j.name), [
    "send-welcome-email",
    "inner-batch",
    "send-receipt",
  ]);
});

Deno.test("concurrent publishes have separate buffers", async () => {
  const { inner, jobs, bus } = setUp();
  const publisher = jobs.publisher(bus);
  // Interleave the two publishes: each handler yields before enqueueing.
  bus.register(UserRegistered, () => new Promise((r) => setTimeout(r, 1)));
  await Promise.all([
    publisher.publishAll([
      new UserRegistered("a1", "ua1"),
      new UserRegistered("a2", "ua2"),
    ]),
    publisher.publishAll([
      new UserRegistered("b1", "ub1"),
      new UserRegistered("b2", "ub2"),
      new UserRegistered("b3", "ub3"),
    ]),
  ]);
  assert.equal(inner.writes.length, 2);
  const batches = inner.writes.map((c) =>
    c.jobs.map((j) => (j.data as { userId: string }).userId)
  ).sort((x, y) => x.length - y.length);
  assert.deepEqual(batches, [["ua1", "ua2"], ["ub1", "ub2", "ub3"]]);
});

Deno.test("bad input throws at the enqueue call, before anything is written", async (t) => {
  await t.step("an invalid queue name", async () => {
    const { inner, jobs } = setUp();
    await jobs.batch(async () => {
      await jobs.enqueue("fine", 1);
      await assert.rejects(
        () => jobs.enqueue("Not Valid!", 2),
        TypeError,
      );
      await assert.rejects(
        () => jobs.enqueue("fine", 3n),
        /data is a bigint/,
      );
    });
    assert.deepEqual(inner.writes[0]!.jobs.map((j) => j.data), [1]);
  });

  await t.step("one bad request buffers none of an enqueueMany", async () => {
    const { inner, jobs } = setUp();
    await jobs.batch(async () => {
      await assert.rejects(
        () =>
          jobs.enqueueMany([{ name: "ok", data: 1 }, {
            name: "ok",
            data: 2n,
          }]),
        TypeError,
      );
    });
    assert.equal(inner.writes.length, 0);
  });

  await t.step(
    "a handler's bad enqueue fails the publish and writes what came before",
    async () => {
      const inner = new InMemoryJobQueue();
      const jobs = new BatchingJobQueue(inner);
      const bus = new EventBus();
      bus.register(UserRegistered, async (e) => {
        await jobs.enqueue(e.userId === "bad" ? "BAD NAME" : "ok", {});
      });
      await assert.rejects(
        () =>
          jobs.publisher(bus).publishAll([
            new UserRegistered("e1", "good"),
            new UserRegistered("e2", "bad"),
            new UserRegistered("e3", "never"),
          ]),
        TypeError,
      );
      // As without batching: the first job was enqueued, the third never was.
      assert.equal(inner.writes.length, 1);
      assert.equal(inner.writes[0]!.jobs.length, 1);
    },
  );
});

Deno.test("a failed write surfaces from publishAll()", async (t) => {
  await t.step("the queue's error, as is, and it is logged", async () => {
    const { inner, jobs, bus } = setUp();
    const down = new Error("jobs database down");
    inner.failWrites(down);
    const { records } = await captureLogs(async () => {
      await assert.rejects(
        () => jobs.publisher(bus).publishAll([new UserRegistered("e1", "u1")]),
        (error) => error === down,
      );
    });
    const failure = records.find((r) => r.level === "error");
    assert.ok(failure, "expected an error record");
    assert.deepEqual(failure.category, ["aftercommit", "jobs"]);
    assert.equal(failure.properties.jobCount, 1);
    assert.ok(!recordText(failure).includes("u1"), "no job data in logs");
  });

  await t.step(
    "a handler error and a write error together give a SuppressedError",
    async () => {
      const { inner, jobs, bus } = setUp();
      const down = new Error("jobs database down");
      inner.failWrites(down);
      const boom = new Error("handler failed");
      bus.register(UserRegistered, () => {
        throw boom;
      });
      await captureLogs(async () => {
        await assert.rejects(
          () =>
            jobs.publisher(bus).publishAll([new UserRegistered("e1", "u1")]),
          (error) =>
            error instanceof SuppressedError &&
            error.error === down && error.suppressed === boom,
        );
      });
    },
  );

  await t.step(
    "a Unit of Work reports it as PublishAfterCommitError",
    async () => {
      const { inner, jobs, bus } = setUp();
      const down = new Error("jobs database down");
      inner.failWrites(down);
      const uow = new NoTransaction({ bus: jobs.publisher(bus) });
      await captureLogs(async () => {
        await assert.rejects(
          () =>
            uow.run((ctx) => {
              ctx.publishAfterCommit(new UserRegistered("e1", "u1"));
            }),
          (error) =>
            error instanceof PublishAfterCommitError &&
            error.cause === down,
        );
      });
    },
  );
});

Deno.test("a handler error still writes the jobs enqueued before it, then rethrows", async () => {
  const { inner, jobs, bus } = setUp();
  const boom = new Error("handler failed");
  bus.register(UserRegistered, () => {
    throw boom;
  });
  await captureLogs(async () => {
    await assert.rejects(
      () => jobs.publisher(bus).publishAll([new UserRegistered("e1", "u1")]),
      (error) => error === boom,
    );
  });
  assert.deepEqual(storedIds(inner), [idFor("send-welcome-email", "e1")]);
});

Deno.test("outside a batch every call goes straight through", async (t) => {
  await t.step("enqueue and enqueueMany", async () => {
    const { inner, jobs } = setUp();
    assert.equal(jobs.batching, false);
    assert.equal(await jobs.enqueue("a", 1, { key: "k" }), idFor("a", "k"));
    assert.equal(await jobs.enqueue("a", 1, { key: "k" }), null);
    const [id] = await jobs.enqueueMany([{ name: "b", data: 2 }]);
    assert.equal(id, inner.jobs[1]!.id);
    assert.deepEqual(inner.writes.map((c) => c.method), [
      "enqueue",
      "enqueue",
      "enqueueMany",
    ]);
  });

  await t.step(
    "an enqueue that runs after its batch ended (a timer) is written at once",
    async () => {
      const { inner, jobs } = setUp();
      let late: Promise<string | null> | undefined;
      const { promise, resolve } = Promise.withResolvers<void>();
      await jobs.batch(() => {
        setTimeout(() => {
          late = jobs.enqueue("late", {}, { key: "k" });
          resolve();
        }, 5);
      });
      await promise;
      assert.equal(await late, idFor("late", "k"));
      assert.deepEqual(inner.writes.map((c) => c.method), ["enqueue"]);
    },
  );

  await t.step(
    "a queue without jobIdFor and validate is never buffered",
    async () => {
      const written: string[] = [];
      const plain: JobQueue = {
        enqueue: (name) => {
          written.push(name);
          return Promise.resolve(`id-${name}`);
        },
        enqueueMany: () => Promise.resolve([]),
        work: () => Promise.resolve("worker"),
        stop: () => Promise.resolve(),
      };
      const jobs = new BatchingJobQueue(plain);
      await jobs.batch(async () => {
        assert.equal(await jobs.enqueue("a", 1), "id-a");
        assert.deepEqual(written, ["a"]);
      });
    },
  );

  await t.step("work and stop go to the wrapped queue", async () => {
    const { inner, jobs } = setUp();
    assert.match(await jobs.work("a", () => {}), /^in-memory-worker-/);
    assert.equal(inner.stopped, false);
    await jobs.stop();
    assert.equal(inner.stopped, true);
  });
});

Deno.test("a flush logs how many jobs it wrote, without their data", async () => {
  const { jobs, bus } = setUp();
  const event = new UserRegistered("e1", "secret-user");
  const { records } = await captureLogs(async () => {
    await jobs.publisher(bus).publishAll([event, new OrderPlaced("o1")]);
    await jobs.publisher(bus).publishAll([event]);
  });
  const flushes = records.filter((r) =>
    r.category.join(".") === "aftercommit.jobs"
  );
  assert.deepEqual(
    flushes.map((r) => [
      r.properties.jobCount,
      r.properties.createdCount,
      r.properties.existingCount,
    ]),
    [[2, 2, 0], [1, 0, 1]],
  );
  for (const r of flushes) {
    assert.ok(!recordText(r).includes("secret-user"));
  }
});

Deno.test("bad arguments to the wrapper throw TypeError", async (t) => {
  await t.step("a non-queue", () => {
    assert.throws(
      () => new BatchingJobQueue({} as JobQueue),
      /Cannot create batching job queue: expected a JobQueue/,
    );
  });
  await t.step("a non-bus", () => {
    const { jobs } = setUp();
    assert.throws(
      () => jobs.publisher(null as unknown as EventBus),
      /Cannot create batching publisher/,
    );
  });
  await t.step("a non-function batch", async () => {
    const { jobs } = setUp();
    await assert.rejects(
      () => jobs.batch("nope" as unknown as () => void),
      /Cannot run batch: expected a function/,
    );
  });
});

Deno.test("publisher(bus).publishAll() hands the caller's signal to the handlers", async () => {
  const bus = new EventBus();
  const seen: AbortSignal[] = [];
  bus.register(OrderPlaced, (_event, context) => {
    seen.push(context.signal);
  });
  const publisher = new BatchingJobQueue(new InMemoryJobQueue()).publisher(
    bus,
  );
  const controller = new AbortController();
  await publisher.publishAll([new OrderPlaced("o1")], {
    signal: controller.signal,
  });
  assert.equal(seen.length, 1);
  assert.equal(seen[0]!.aborted, false);
  controller.abort();
  assert.equal(
    seen[0]!.aborted,
    true,
    "the handler's signal follows the caller's",
  );
});
