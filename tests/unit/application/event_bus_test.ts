import assert from "node:assert/strict";
import {
  clearHandlers,
  defaultBus,
  EventBus,
  publish,
  publishAll,
  register,
  Subscription,
} from "../../../mod.ts";

class UserRegistered {
  constructor(readonly userId: string) {}
}
class OrderPlaced {
  constructor(readonly orderId: string) {}
}
class SpecialRegistration extends UserRegistered {}

// The seven cases of the Python module this project ports.

Deno.test("register() adds a handler for the event type", () => {
  const bus = new EventBus();
  const handler = (_e: UserRegistered) => {};
  bus.register(UserRegistered, handler);
  const handlers = bus.handlersFor(UserRegistered);
  assert.equal(handlers.length, 1);
  assert.equal(handlers[0]?.handler, handler);
  assert.equal(handlers[0]?.name, "handler");
  assert.equal(handlers[0]?.target, undefined);
});

Deno.test("publish() calls the handler with the event", async () => {
  const bus = new EventBus();
  const received: UserRegistered[] = [];
  bus.register(UserRegistered, (e) => {
    received.push(e);
  });
  const event = new UserRegistered("u1");
  await bus.publish(event);
  assert.deepEqual(received, [event]);
  assert.equal(received[0], event);
});

Deno.test("publish() runs several handlers one after another, in registration order", async () => {
  const bus = new EventBus();
  const log: string[] = [];
  bus.register(UserRegistered, async () => {
    log.push("first:start");
    await new Promise((r) => setTimeout(r, 5));
    log.push("first:end");
  });
  bus.register(UserRegistered, () => {
    log.push("second");
  });
  bus.register(UserRegistered, async () => {
    await Promise.resolve();
    log.push("third");
  });
  await bus.publish(new UserRegistered("u1"));
  assert.deepEqual(log, ["first:start", "first:end", "second", "third"]);
});

Deno.test("publish() of a type with no handlers is a no-op", async () => {
  const bus = new EventBus();
  let called = false;
  bus.register(UserRegistered, () => {
    called = true;
  });
  await bus.publish(new OrderPlaced("o1"));
  assert.equal(called, false);
});

Deno.test("clearHandlers() removes every handler", async () => {
  const bus = new EventBus();
  let calls = 0;
  bus.register(UserRegistered, () => {
    calls++;
  });
  bus.register(OrderPlaced, () => {
    calls++;
  });
  bus.clearHandlers();
  assert.equal(bus.handlersFor(UserRegistered).length, 0);
  assert.equal(bus.handlersFor(OrderPlaced).length, 0);
  await bus.publish(new UserRegistered("u1"));
  await bus.publish(new OrderPlaced("o1"));
  assert.equal(calls, 0);
});

Deno.test("publishAll() publishes every event, event by event, in order", async () => {
  const bus = new EventBus();
  const log: string[] = [];
  bus.register(UserRegistered, async (e) => {
    await new Promise((r) => setTimeout(r, 2));
    log.push(`user:${e.userId}:a`);
  });
  bus.register(UserRegistered, (e) => {
    log.push(`user:${e.userId}:b`);
  });
  bus.register(OrderPlaced, (e) => {
    log.push(`order:${e.orderId}`);
  });
  await bus.publishAll([
    new UserRegistered("u1"),
    new OrderPlaced("o1"),
    new UserRegistered("u2"),
  ]);
  assert.deepEqual(log, [
    "user:u1:a",
    "user:u1:b",
    "order:o1",
    "user:u2:a",
    "user:u2:b",
  ]);
});

Deno.test("publish() rethrows a handler's error after logging it", async () => {
  // The logging half of this case is asserted in logging_test.ts.
  const bus = new EventBus();
  const boom = new Error("boom");
  bus.register(UserRegistered, () => {
    throw boom;
  });
  await assert.rejects(
    bus.publish(new UserRegistered("u1")),
    (e) => e === boom,
  );
});

// Dispatch rules.

Deno.test("publish() dispatches on the exact class, not on parent classes", async (t) => {
  const bus = new EventBus();
  const log: string[] = [];
  bus.register(UserRegistered, () => {
    log.push("parent");
  });
  await t.step(
    "a subclass instance does not reach the parent's handlers",
    async () => {
      await bus.publish(new SpecialRegistration("u1"));
      assert.deepEqual(log, []);
    },
  );
  await t.step("a subclass has handlers of its own", async () => {
    bus.register(SpecialRegistration, () => {
      log.push("child");
    });
    await bus.publish(new SpecialRegistration("u1"));
    assert.deepEqual(log, ["child"]);
  });
});

Deno.test("publish() accepts events of any class, with no base class", async () => {
  const bus = new EventBus();
  class Plain {}
  const seen: object[] = [];
  bus.register(Plain, (e) => {
    seen.push(e);
  });
  const event = new Plain();
  await bus.publish(event);
  assert.deepEqual(seen, [event]);
});

Deno.test("publish() awaits a handler that returns a promise before resolving", async () => {
  const bus = new EventBus();
  let done = false;
  bus.register(UserRegistered, async () => {
    await new Promise((r) => setTimeout(r, 10));
    done = true;
  });
  await bus.publish(new UserRegistered("u1"));
  assert.equal(done, true);
});

Deno.test("a handler registered during a publish runs from the next publish on", async () => {
  const bus = new EventBus();
  const log: string[] = [];
  bus.register(UserRegistered, () => {
    log.push("first");
    if (bus.handlersFor(UserRegistered).length === 1) {
      bus.register(UserRegistered, () => {
        log.push("late");
      });
    }
  });
  await bus.publish(new UserRegistered("u1"));
  assert.deepEqual(log, ["first"]);
  await bus.publish(new UserRegistered("u2"));
  assert.deepEqual(log, ["first", "first", "late"]);
});

// Error policies.

Deno.test("the fail-fast policy runs no later handler and no later event", async (t) => {
  const bus = new EventBus();
  assert.equal(bus.errorPolicy, "fail-fast");
  const log: string[] = [];
  const boom = new Error("boom");
  bus.register(UserRegistered, function first() {
    log.push("first");
  });
  bus.register(UserRegistered, function failing() {
    log.push("failing");
    throw boom;
  });
  bus.register(UserRegistered, function never() {
    log.push("never");
  });
  bus.register(OrderPlaced, () => {
    log.push("order");
  });
  await t.step("publish", async () => {
    await assert.rejects(
      bus.publish(new UserRegistered("u1")),
      (e) => e === boom,
    );
    assert.deepEqual(log, ["first", "failing"]);
  });
  await t.step("publishAll", async () => {
    log.length = 0;
    await assert.rejects(
      bus.publishAll([new UserRegistered("u1"), new OrderPlaced("o1")]),
      (e) => e === boom,
    );
    assert.deepEqual(log, ["first", "failing"]);
  });
  await t.step("an async rejection counts as a failure", async () => {
    const asyncBus = new EventBus();
    const reason = new Error("async boom");
    let after = false;
    asyncBus.register(UserRegistered, async () => {
      await Promise.resolve();
      throw reason;
    });
    asyncBus.register(UserRegistered, () => {
      after = true;
    });
    await assert.rejects(
      asyncBus.publish(new UserRegistered("u1")),
      (e) => e === reason,
    );
    assert.equal(after, false);
  });
});

Deno.test("the collect policy runs every handler, then throws an AggregateError of all failures in order", async (t) => {
  const bus = new EventBus({ errorPolicy: "collect" });
  assert.equal(bus.errorPolicy, "collect");
  const log: string[] = [];
  const e1 = new Error("one");
  const e2 = new Error("two");
  const e3 = new Error("three");
  bus.register(UserRegistered, () => {
    log.push("a");
    throw e1;
  });
  bus.register(UserRegistered, () => {
    log.push("b");
  });
  bus.register(UserRegistered, async () => {
    log.push("c");
    await Promise.resolve();
    throw e2;
  });
  bus.register(OrderPlaced, () => {
    log.push("order");
    throw e3;
  });
  await t.step("publish", async () => {
    const error = await bus.publish(new UserRegistered("u1")).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(error instanceof AggregateError);
    assert.deepEqual(error.errors, [e1, e2]);
    assert.match(error.message, /2 handlers failed for UserRegistered/);
    assert.deepEqual(log, ["a", "b", "c"]);
  });
  await t.step(
    "publishAll goes on across events and aggregates every failure",
    async () => {
      log.length = 0;
      const error = await bus.publishAll([
        new UserRegistered("u1"),
        new OrderPlaced("o1"),
      ]).then(() => undefined, (e: unknown) => e);
      assert.ok(error instanceof AggregateError);
      assert.deepEqual(error.errors, [e1, e2, e3]);
      assert.deepEqual(log, ["a", "b", "c", "order"]);
    },
  );
  await t.step("no failure, no error", async () => {
    const ok = new EventBus({ errorPolicy: "collect" });
    ok.register(UserRegistered, () => {});
    await ok.publish(new UserRegistered("u1"));
  });
});

Deno.test("new EventBus() rejects an unknown error policy", () => {
  assert.throws(
    // @ts-expect-error: not a policy
    () => new EventBus({ errorPolicy: "ignore" }),
    {
      name: "TypeError",
      message: /unknown errorPolicy "ignore".*"fail-fast" or "collect"/,
    },
  );
});

// Subscriptions.

Deno.test("Subscription.unsubscribe() removes exactly its handler, once", async () => {
  const bus = new EventBus();
  const log: string[] = [];
  const a = bus.register(UserRegistered, () => {
    log.push("a");
  });
  bus.register(UserRegistered, () => {
    log.push("b");
  });
  assert.ok(a instanceof Subscription);
  assert.equal(a.active, true);
  a.unsubscribe();
  assert.equal(a.active, false);
  a.unsubscribe();
  await bus.publish(new UserRegistered("u1"));
  assert.deepEqual(log, ["b"]);
});

Deno.test("a Subscription works with using", async () => {
  const bus = new EventBus();
  let calls = 0;
  {
    using _sub = bus.register(UserRegistered, () => {
      calls++;
    });
    await bus.publish(new UserRegistered("u1"));
  }
  await bus.publish(new UserRegistered("u2"));
  assert.equal(calls, 1);
  assert.equal(bus.handlersFor(UserRegistered).length, 0);
});

Deno.test("a handler may be registered again after it was unsubscribed", async () => {
  const bus = new EventBus();
  let calls = 0;
  const handler = () => {
    calls++;
  };
  bus.register(UserRegistered, handler).unsubscribe();
  bus.register(UserRegistered, handler);
  await bus.publish(new UserRegistered("u1"));
  assert.equal(calls, 1);
});

Deno.test("handlersFor() returns a snapshot in run order", () => {
  const bus = new EventBus();
  bus.register(UserRegistered, function first() {});
  const snapshot = bus.handlersFor(UserRegistered);
  bus.register(UserRegistered, function second() {}, { name: "Custom.name" });
  assert.deepEqual(snapshot.map((h) => h.name), ["first"]);
  assert.deepEqual(bus.handlersFor(UserRegistered).map((h) => h.name), [
    "first",
    "Custom.name",
  ]);
});

Deno.test("buses are isolated from each other and from defaultBus", async () => {
  const a = new EventBus();
  const b = new EventBus();
  const log: string[] = [];
  a.register(UserRegistered, () => {
    log.push("a");
  });
  b.register(UserRegistered, () => {
    log.push("b");
  });
  await a.publish(new UserRegistered("u1"));
  assert.deepEqual(log, ["a"]);
  assert.equal(defaultBus.handlersFor(UserRegistered).length, 0);
});

Deno.test("the module-level functions act on defaultBus", async () => {
  clearHandlers();
  try {
    const seen: string[] = [];
    const sub = register(UserRegistered, (e) => {
      seen.push(e.userId);
    });
    assert.equal(defaultBus.handlersFor(UserRegistered).length, 1);
    await publish(new UserRegistered("u1"));
    await publishAll([new UserRegistered("u2"), new UserRegistered("u3")]);
    assert.deepEqual(seen, ["u1", "u2", "u3"]);
    sub.unsubscribe();
    register(UserRegistered, () => {});
    clearHandlers();
    assert.equal(defaultBus.handlersFor(UserRegistered).length, 0);
  } finally {
    clearHandlers();
  }
});

// Double registration.

Deno.test("registering the same function twice for one type throws a TypeError naming it", async () => {
  const bus = new EventBus();
  let calls = 0;
  function sendWelcome() {
    calls++;
  }
  bus.register(UserRegistered, sendWelcome);
  assert.throws(() => bus.register(UserRegistered, sendWelcome), {
    name: "TypeError",
    message:
      /Cannot register handler sendWelcome for UserRegistered: it is already registered on this bus/,
  });
  // The same function for another type, or on another bus, is fine.
  bus.register(OrderPlaced, sendWelcome);
  new EventBus().register(UserRegistered, sendWelcome);
  await bus.publish(new UserRegistered("u1"));
  assert.equal(calls, 1);
});

// Misuse.

Deno.test("register() rejects what is not an event class or not a function", async (t) => {
  const bus = new EventBus();
  const cases: [string, unknown][] = [
    ["undefined", undefined],
    ["null", null],
    ["a string", "UserRegistered"],
    ["a plain object", {}],
    ["an arrow function", () => {}],
  ];
  for (const [what, type] of cases) {
    await t.step(`type: ${what}`, () => {
      assert.throws(
        () => bus.register(type as typeof UserRegistered, () => {}),
        {
          name: "TypeError",
          message: new RegExp(
            `Cannot register handler: expected an event class, received ${
              what === "an arrow function" ? "function" : what
            }.*pass the class itself`,
          ),
        },
      );
    });
  }
  for (
    const [what, handler] of [["undefined", undefined], ["a string", "send"], [
      "a plain object",
      {},
    ]] as const
  ) {
    await t.step(`handler: ${what}`, () => {
      assert.throws(
        () => bus.register(UserRegistered, handler as unknown as () => void),
        {
          name: "TypeError",
          message: new RegExp(
            `Cannot register handler for UserRegistered: expected a function, received ${what}`,
          ),
        },
      );
    });
  }
  assert.equal(bus.handlersFor(UserRegistered).length, 0);
});

Deno.test("publish() rejects null, undefined and primitives with a TypeError", async () => {
  const bus = new EventBus();
  let calls = 0;
  bus.register(UserRegistered, () => {
    calls++;
  });
  for (
    const [value, what] of [
      [null, "null"],
      [undefined, "undefined"],
      ["UserRegistered", "a string"],
      [42, "a number"],
      [true, "a boolean"],
    ] as const
  ) {
    await assert.rejects(bus.publish(value as unknown as object), {
      name: "TypeError",
      message: new RegExp(
        `Cannot publish: expected an event object \\(a class instance\\), received ${what}`,
      ),
    });
  }
  assert.equal(calls, 0);
});

Deno.test("publishAll() checks every event before running any handler", async (t) => {
  const bus = new EventBus();
  let calls = 0;
  bus.register(UserRegistered, () => {
    calls++;
  });
  await t.step("a bad element", async () => {
    await assert.rejects(
      bus.publishAll([new UserRegistered("u1"), null as unknown as object]),
      {
        name: "TypeError",
        message:
          /Cannot publish event at index 1: expected an event object.*received null/,
      },
    );
    assert.equal(calls, 0);
  });
  await t.step("not an iterable", async () => {
    for (const value of [null, undefined, 42, new UserRegistered("u1")]) {
      await assert.rejects(bus.publishAll(value as unknown as object[]), {
        name: "TypeError",
        message: /Cannot publish events: expected an iterable of events/,
      });
    }
    assert.equal(calls, 0);
  });
  await t.step("any iterable works", async () => {
    function* events() {
      yield new UserRegistered("u1");
      yield new UserRegistered("u2");
    }
    await bus.publishAll(events());
    await bus.publishAll(new Set([new UserRegistered("u3")]));
    assert.equal(calls, 3);
  });
});

Deno.test("handlersFor() rejects what is not an event class", () => {
  assert.throws(
    () =>
      new EventBus().handlersFor(
        "UserRegistered" as unknown as typeof UserRegistered,
      ),
    {
      name: "TypeError",
      message: /Cannot list handlers: expected an event class/,
    },
  );
});
