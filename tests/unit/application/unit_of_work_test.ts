// The Unit of Work base over a fake transaction runner: no database.
import assert from "node:assert/strict";
import { configure, type LogRecord, reset } from "@logtape/logtape";
import {
  AggregateRoot,
  CommitError,
  EventBus,
  PublishAfterCommitError,
  UnitOfWork,
  type UnitOfWorkContext,
  UnitOfWorkError,
  type UnitOfWorkOptions,
} from "../../../mod.ts";

class Deposited {
  constructor(readonly accountId: string, readonly amount: number) {}
}

class Noted {
  constructor(readonly text: string) {}
}

class Account extends AggregateRoot {
  constructor(readonly id: string) {
    super();
  }
  deposit(amount: number): void {
    this.recordEvent(new Deposited(this.id, amount));
  }
}

interface FakeTx {
  readonly id: number;
}

interface FakeContext extends UnitOfWorkContext {
  readonly tx: FakeTx;
}

type Failure = "begin" | "commit" | undefined;

/** Records begin/commit/rollback in `journal`; fails where told. */
class FakeUnitOfWork extends UnitOfWork<FakeTx, FakeContext> {
  readonly journal: string[] = [];
  fail: Failure;
  readonly driverError = new Error("driver said no");
  #next = 0;

  constructor(options: UnitOfWorkOptions & { fail?: Failure } = {}) {
    super(options);
    this.fail = options.fail;
  }

  protected override async transaction<T>(
    body: (handle: FakeTx) => Promise<T>,
  ): Promise<T> {
    const tx = { id: ++this.#next };
    if (this.fail === "begin") throw this.driverError;
    this.journal.push(`begin ${tx.id}`);
    let result: T;
    try {
      result = await body(tx);
    } catch (error) {
      this.journal.push(`rollback ${tx.id}`);
      throw error;
    }
    if (this.fail === "commit") {
      this.journal.push(`commit failed ${tx.id}`);
      throw this.driverError;
    }
    this.journal.push(`commit ${tx.id}`);
    return result;
  }

  protected override createContext(
    tx: FakeTx,
    context: UnitOfWorkContext,
  ): FakeContext {
    return {
      tx,
      track: context.track,
      publishAfterCommit: context.publishAfterCommit,
    };
  }
}

/** A bus whose handlers write into the unit of work's journal. */
function setUp(
  options: { fail?: Failure } = {},
): { uow: FakeUnitOfWork; bus: EventBus } {
  const bus = new EventBus();
  const uow = new FakeUnitOfWork({ bus, ...options });
  bus.register(Deposited, (e) => {
    uow.journal.push(`publish Deposited ${e.accountId} ${e.amount}`);
  });
  bus.register(Noted, (e) => {
    uow.journal.push(`publish Noted ${e.text}`);
  });
  return { uow, bus };
}

Deno.test("run() publishes tracked and explicit events after the commit, in recording order", async () => {
  const { uow } = setUp();
  const result = await uow.run((ctx) => {
    const a = ctx.track(new Account("a"));
    const b = new Account("b");
    b.deposit(1);
    a.deposit(2);
    ctx.publishAfterCommit(new Noted("x"));
    ctx.track(b);
    b.deposit(3);
    uow.journal.push(`work in ${ctx.tx.id}`);
    return "done";
  });
  assert.equal(result, "done");
  assert.deepEqual(uow.journal, [
    "begin 1",
    "work in 1",
    "commit 1",
    "publish Deposited b 1",
    "publish Deposited a 2",
    "publish Noted x",
    "publish Deposited b 3",
  ]);
});

Deno.test("run() with no events commits and publishes nothing", async () => {
  const calls: unknown[] = [];
  const uow = new FakeUnitOfWork({
    bus: {
      publishAll: (events) => {
        calls.push(events);
        return Promise.resolve();
      },
    },
  });
  assert.equal(await uow.run(() => Promise.resolve(7)), 7);
  assert.deepEqual(uow.journal, ["begin 1", "commit 1"]);
  assert.deepEqual(calls, []);
});

Deno.test("run() rethrows work's error after the rollback, publishes nothing and drops the events", async () => {
  const { uow } = setUp();
  const account = new Account("a");
  const boom = new RangeError("amount too large");
  await assert.rejects(
    uow.run((ctx) => {
      ctx.track(account).deposit(1);
      throw boom;
    }),
    (error) => error === boom,
  );
  assert.deepEqual(uow.journal, ["begin 1", "rollback 1"]);
  assert.deepEqual(account.peekEvents(), []);
});

Deno.test("run() wraps a failed COMMIT in CommitError with the driver's error as cause", async () => {
  const { uow } = setUp({ fail: "commit" });
  const error = await uow.run((ctx) => {
    ctx.track(new Account("a")).deposit(1);
  }).catch((e: unknown) => e);
  assert.ok(error instanceof CommitError);
  assert.ok(error instanceof UnitOfWorkError);
  assert.equal(error.committed, false);
  assert.equal(error.cause, uow.driverError);
  assert.equal(error.name, "CommitError");
  assert.match(error.message, /^Unit of work not committed: COMMIT failed$/);
  assert.deepEqual(uow.journal, ["begin 1", "commit failed 1"]);
});

Deno.test("run() wraps a failed BEGIN in CommitError and never calls work", async () => {
  const { uow } = setUp({ fail: "begin" });
  let called = false;
  const error = await uow.run(() => {
    called = true;
  }).catch((e: unknown) => e);
  assert.ok(error instanceof CommitError);
  assert.equal(error.cause, uow.driverError);
  assert.match(error.message, /could not begin/);
  assert.equal(called, false);
});

Deno.test("run() throws PublishAfterCommitError (committed: true) when a handler fails after the commit", async () => {
  const { uow, bus } = setUp();
  const handlerError = new Error("smtp down");
  bus.register(Deposited, () => {
    throw handlerError;
  });
  const error = await uow.run((ctx) => {
    ctx.track(new Account("a")).deposit(1);
    ctx.publishAfterCommit(new Noted("after"));
  }).catch((e: unknown) => e);
  assert.ok(error instanceof PublishAfterCommitError);
  assert.ok(error instanceof UnitOfWorkError);
  assert.equal(error.committed, true);
  assert.equal(error.cause, handlerError);
  assert.deepEqual(uow.journal, [
    "begin 1",
    "commit 1",
    "publish Deposited a 1",
  ]);
});

Deno.test("beforeCommit() gets the events in order inside the transaction, and its failure rolls back", async (t) => {
  class OutboxUnitOfWork extends FakeUnitOfWork {
    outboxError: Error | undefined;
    protected override beforeCommit(
      tx: FakeTx,
      events: readonly object[],
    ): Promise<void> {
      this.journal.push(
        `outbox in ${tx.id}: ${
          events.map((e) => e.constructor.name).join(",")
        }`,
      );
      return this.outboxError === undefined
        ? Promise.resolve()
        : Promise.reject(this.outboxError);
    }
  }
  const bus = new EventBus();
  const published: object[] = [];
  bus.register(Noted, (e) => {
    published.push(e);
  });

  await t.step("success: outbox before commit, publish after", async () => {
    const uow = new OutboxUnitOfWork({ bus });
    await uow.run((ctx) => {
      ctx.track(new Account("a")).deposit(1);
      ctx.publishAfterCommit(new Noted("n"));
    });
    assert.deepEqual(uow.journal, [
      "begin 1",
      "outbox in 1: Deposited,Noted",
      "commit 1",
    ]);
    assert.equal(published.length, 1);
  });

  await t.step("failure: CommitError, nothing published", async () => {
    const uow = new OutboxUnitOfWork({ bus });
    uow.outboxError = new Error("outbox table missing");
    published.length = 0;
    const error = await uow.run((ctx) => {
      ctx.publishAfterCommit(new Noted("n"));
    }).catch((e: unknown) => e);
    assert.ok(error instanceof CommitError);
    assert.equal(error.cause, uow.outboxError);
    assert.match(error.message, /pre-commit step failed/);
    assert.deepEqual(published, []);
    assert.equal(uow.journal.at(-1), "rollback 1");
  });
});

Deno.test("run() collects events per run: concurrent runs publish only their own", async () => {
  const batches: string[][] = [];
  const uow = new FakeUnitOfWork({
    bus: {
      publishAll: (events) => {
        batches.push(
          [...events].map((e) => (e as Deposited).accountId),
        );
        return Promise.resolve();
      },
    },
  });
  await Promise.all(
    Array.from({ length: 20 }, (_, i) =>
      uow.run(async (ctx) => {
        const account = ctx.track(new Account(`r${i}`));
        account.deposit(1);
        await new Promise((r) => setTimeout(r, (i * 3) % 4));
        account.deposit(2);
      })),
  );
  assert.equal(batches.length, 20);
  for (const batch of batches) {
    assert.equal(batch.length, 2);
    assert.equal(batch[0], batch[1]);
  }
  assert.equal(new Set(batches.map((b) => b[0])).size, 20);
});

Deno.test("run() refuses to nest inside an open transaction, and allows a follow-on run from a handler", async (t) => {
  await t.step("nested in work: TypeError, outer rolls back", async () => {
    const { uow } = setUp();
    await assert.rejects(
      uow.run(async () => {
        await uow.run(() => {});
      }),
      {
        name: "TypeError",
        message:
          /^Cannot run a unit of work inside another one's open transaction/,
      },
    );
    assert.deepEqual(uow.journal, ["begin 1", "rollback 1"]);
  });

  await t.step("another unit of work on another resource may run", async () => {
    const { uow } = setUp();
    const other = setUp().uow;
    await uow.run(async () => {
      await other.run(() => {});
    });
    assert.deepEqual(other.journal, ["begin 1", "commit 1"]);
  });

  await t.step(
    "from a handler, after the commit: a new transaction",
    async () => {
      const { uow, bus } = setUp();
      bus.register(Deposited, async (e) => {
        if (e.amount !== 1) return;
        await uow.run((ctx) => {
          ctx.publishAfterCommit(new Noted("follow-on"));
        });
      });
      await uow.run((ctx) => {
        ctx.track(new Account("a")).deposit(1);
      });
      assert.deepEqual(uow.journal, [
        "begin 1",
        "commit 1",
        "publish Deposited a 1",
        "begin 2",
        "commit 2",
        "publish Noted follow-on",
      ]);
    },
  );

  await t.step(
    "after the run: a detached continuation may run again",
    async () => {
      const { uow } = setUp();
      let later: Promise<void> | undefined;
      await uow.run(() => {
        later = new Promise((r) => setTimeout(r, 1)).then(() =>
          uow.run(() => {})
        );
      });
      await later;
      assert.deepEqual(uow.journal, [
        "begin 1",
        "commit 1",
        "begin 2",
        "commit 2",
      ]);
    },
  );
});

Deno.test("bad input gets a TypeError that names the rule", async (t) => {
  const { uow } = setUp();

  await t.step("run() without a function", async () => {
    for (const value of [undefined, "work", {}]) {
      await assert.rejects(
        // @ts-expect-error: not a function
        uow.run(value),
        {
          name: "TypeError",
          message: /^Cannot run unit of work: expected a function/,
        },
      );
    }
    assert.deepEqual(uow.journal, [], "no transaction was opened");
  });

  await t.step("track() of something that is not an aggregate", async () => {
    await assert.rejects(
      uow.run((ctx) => {
        // @ts-expect-error: not an AggregateRoot
        ctx.track({ pullEvents: () => [] });
      }),
      {
        name: "TypeError",
        message:
          /^Cannot track a plain object: expected an AggregateRoot; extend AggregateRoot, or use publishAfterCommit/,
      },
    );
  });

  await t.step("publishAfterCommit() of a non-object", async () => {
    await assert.rejects(
      // @ts-expect-error: not an object
      uow.run((ctx) => ctx.publishAfterCommit("UserRegistered")),
      { name: "TypeError", message: /expected an event object.*a string/ },
    );
  });

  await t.step(
    "track() and publishAfterCommit() after work returned",
    async () => {
      let saved: UnitOfWorkContext | undefined;
      await uow.run((ctx) => {
        saved = ctx;
      });
      assert.throws(() => saved!.track(new Account("late")), {
        name: "TypeError",
        message: /work has already returned/,
      });
      assert.throws(() => saved!.publishAfterCommit(new Noted("late")), {
        name: "TypeError",
        message: /work has already returned/,
      });
    },
  );

  await t.step("a bus without publishAll", () => {
    assert.throws(
      // @ts-expect-error: not a bus
      () => new FakeUnitOfWork({ bus: {} }),
      { name: "TypeError", message: /options\.bus must be an event bus/ },
    );
  });
});

Deno.test("logs commit, rollback and event counts under [aftercommit, uow], never field values", async () => {
  const records: LogRecord[] = [];
  await configure({
    reset: true,
    sinks: { memory: (record) => records.push(record) },
    loggers: [
      {
        category: ["aftercommit", "uow"],
        sinks: ["memory"],
        lowestLevel: "debug",
      },
      { category: ["logtape", "meta"], sinks: [], lowestLevel: "warning" },
    ],
  });
  try {
    const { uow, bus } = setUp();
    const secret = "secret-account-4242";
    await uow.run((ctx) => {
      const account = ctx.track(new Account(secret));
      account.deposit(99_001);
      account.deposit(99_002);
    });
    await uow.run(() => {
      throw new Error(`Invalid ${secret}`);
    }).catch(() => {});
    uow.fail = "commit";
    await uow.run((ctx) => ctx.publishAfterCommit(new Noted(secret)))
      .catch(() => {});
    uow.fail = undefined;
    bus.register(Noted, () => {
      throw new Error(`handler saw ${secret}`);
    });
    await uow.run((ctx) => ctx.publishAfterCommit(new Noted(secret)))
      .catch(() => {});

    const lines = records.map((r) =>
      `${r.level} ${r.message.map((part) => String(part)).join("")}`
    );
    assert.deepEqual(lines, [
      "debug Committed unit of work with 2 events to publish",
      "debug Published 2 events after commit",
      "info Rolled back unit of work: work threw Error",
      "error Unit of work not committed: COMMIT failed: Error",
      "debug Committed unit of work with 1 events to publish",
      "error Unit of work committed, but publishing its 1 events failed: Error",
    ]);
    for (const record of records) {
      assert.deepEqual(record.category, ["aftercommit", "uow"]);
      const text = JSON.stringify(record.properties) +
        JSON.stringify(record.message);
      assert.ok(!text.includes(secret), `log leaks a field: ${text}`);
      assert.ok(!text.includes("9900"), `log leaks a field: ${text}`);
    }
  } finally {
    await reset();
  }
});

Deno.test("publishCommitted() is the after-commit step: an override replaces publishing, and its PublishAfterCommitError reaches the caller as is", async () => {
  const thrown = new PublishAfterCommitError("kept for the relay", {
    cause: new Error("handler failed"),
    relayWillRetry: true,
  });
  class Dispatching extends FakeUnitOfWork {
    readonly received: object[][] = [];
    fail2: unknown;
    protected override publishCommitted(
      events: readonly object[],
    ): Promise<void> {
      this.received.push([...events]);
      return this.fail2 === undefined
        ? Promise.resolve()
        : Promise.reject(this.fail2);
    }
  }
  const bus = new EventBus();
  let published = 0;
  bus.register(Noted, () => {
    published++;
  });
  const uow = new Dispatching({ bus });
  await uow.run((tx) => tx.publishAfterCommit(new Noted("a")));
  assert.equal(uow.received.length, 1);
  assert.equal(published, 0, "the override replaced bus.publishAll");
  await uow.run(() => {});
  assert.equal(uow.received.length, 1, "not called without events");

  uow.fail2 = thrown;
  await assert.rejects(
    uow.run((tx) => tx.publishAfterCommit(new Noted("b"))),
    (error) => error === thrown,
  );
  const plain = new Error("boom");
  uow.fail2 = plain;
  const wrapped = await uow.run((tx) => tx.publishAfterCommit(new Noted("c")))
    .then(() => undefined, (e: unknown) => e);
  assert.ok(wrapped instanceof PublishAfterCommitError);
  assert.equal(wrapped.cause, plain);
  assert.equal(wrapped.relayWillRetry, false, "false unless an outbox says so");
});

/** Calls the body again after a failure, as a retrying adapter might. */
class RetryingUnitOfWork extends FakeUnitOfWork {
  failBeforeCommit = 1;

  protected override async transaction<T>(
    body: (handle: FakeTx) => Promise<T>,
  ): Promise<T> {
    try {
      return await super.transaction(body);
    } catch {
      return await super.transaction(body);
    }
  }

  protected override beforeCommit(): void {
    if (this.failBeforeCommit-- > 0) throw new Error("serialization failure");
  }
}

Deno.test("a transaction() that calls its body twice is refused: the first attempt's events are never published", async (t) => {
  for (const firstAttempt of ["beforeCommit fails", "work throws"]) {
    await t.step(firstAttempt, async () => {
      const bus = new EventBus();
      const seen: string[] = [];
      bus.register(Noted, (e) => void seen.push(e.text));
      const uow = new RetryingUnitOfWork({ bus });
      if (firstAttempt === "work throws") uow.failBeforeCommit = 0;
      let attempt = 0;
      const error = await uow.run((tx) => {
        tx.publishAfterCommit(new Noted(`attempt ${++attempt}`));
        if (firstAttempt === "work throws" && attempt === 1) {
          throw new Error("work failed");
        }
      }).then(() => undefined, (e: unknown) => e);
      assert.equal(
        attempt,
        1,
        "the second call of the body never reaches work",
      );
      const refusal = error instanceof CommitError ? error.cause : error;
      assert.ok(refusal instanceof TypeError, String(error));
      assert.match(
        refusal.message,
        /run the work of a unit of work twice.*calls its body once.*call run\(\) again/,
      );
      assert.deepEqual(seen, []);
      assert.deepEqual(uow.journal, [
        "begin 1",
        "rollback 1",
        "begin 2",
        "rollback 2",
      ]);
    });
  }
});
