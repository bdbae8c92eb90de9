import assert from "node:assert/strict";
import {
  clearHandlers,
  defaultBus,
  EventBus,
  type HandlerContext,
  publish,
  publishAll,
  register,
  Subscription,
} from "../../../mod.ts";
import { captureLogs } from "../../_helpers/logs.ts";

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

// Handlers for a base class, catch-alls and order.

class Base {
  constructor(readonly id: string) {}
}
class Middle extends Base {}
class Leaf extends Middle {}

Deno.test("register(Base, fn, { subclasses: true }) receives instances of Base and of its subclasses", async (t) => {
  const bus = new EventBus();
  const seen: string[] = [];
  bus.register(Base, (e) => {
    seen.push(`${e.constructor.name}:${e.id}`);
  }, { subclasses: true });
  await bus.publishAll([
    new Base("b"),
    new Middle("m"),
    new Leaf("l"),
    new UserRegistered("u"),
  ]);
  assert.deepEqual(seen, ["Base:b", "Middle:m", "Leaf:l"]);

  await t.step(
    "a handler without the option still gets exact types only",
    async () => {
      const exact = new EventBus();
      const log: string[] = [];
      exact.register(Base, (e) => {
        log.push(e.constructor.name);
      });
      await exact.publishAll([new Base("b"), new Leaf("l")]);
      assert.deepEqual(log, ["Base"]);
    },
  );
});

Deno.test("publish() runs exact-type handlers, then base-class handlers nearest base first, then catch-alls", async () => {
  const bus = new EventBus();
  const log: string[] = [];
  const push = (what: string) => () => {
    log.push(what);
  };
  // Registered in the reverse of the order they run in.
  bus.onAny(push("any"));
  bus.register(Base, push("base"), { subclasses: true });
  bus.register(Middle, push("middle"), { subclasses: true });
  bus.register(Leaf, push("leaf (subclasses)"), { subclasses: true });
  bus.register(Leaf, push("leaf 1"));
  bus.register(Leaf, push("leaf 2"));
  await bus.publish(new Leaf("l"));
  // Handlers for Leaf itself (with or without subclasses) in registration
  // order, then Middle's, Base's, and the catch-all.
  assert.deepEqual(log, [
    "leaf (subclasses)",
    "leaf 1",
    "leaf 2",
    "middle",
    "base",
    "any",
  ]);
  log.length = 0;
  await bus.publish(new Middle("m"));
  assert.deepEqual(log, ["middle", "base", "any"]);
});

Deno.test("subclasses: true follows the whole prototype chain, through an object that is not a class", async () => {
  class Root {}
  // Its parent is a plain object whose prototype is Root.
  class Odd {}
  Object.setPrototypeOf(Odd, Object.create(Root));
  const bus = new EventBus();
  const log: string[] = [];
  bus.register(Root, () => void log.push("root"), { subclasses: true });
  bus.onAny(() => void log.push("any"));
  await bus.publish(new Odd());
  assert.deepEqual(log, ["root", "any"]);
  assert.equal(bus.handlersFor(Odd).length, 2);
});

Deno.test("handlersFor() lists the resolved handlers with their registration type, subclasses flag and order", () => {
  const bus = new EventBus();
  function audit() {}
  function metrics() {}
  function own() {}
  bus.onAny(metrics, { order: 5 });
  bus.register(Base, audit, { subclasses: true });
  bus.register(Leaf, own);
  assert.deepEqual(
    bus.handlersFor(Leaf).map((h) => [
      h.name,
      h.eventType,
      h.subclasses,
      h.order,
      h.target,
    ]),
    [
      ["own", Leaf, false, 0, undefined],
      ["audit", Base, true, 0, undefined],
      ["metrics", undefined, false, 5, undefined],
    ],
  );
  assert.deepEqual(bus.handlersFor(Base).map((h) => h.name), [
    "audit",
    "metrics",
  ]);
  assert.deepEqual(bus.handlersFor(OrderPlaced).map((h) => h.name), [
    "metrics",
  ]);
});

Deno.test("the order option sorts handlers, lower first, registration order among equals, before the class rules", async (t) => {
  await t.step("on one type", async () => {
    const bus = new EventBus();
    const log: string[] = [];
    bus.register(UserRegistered, () => {
      log.push("late");
    }, { order: 10 });
    bus.register(UserRegistered, () => {
      log.push("default 1");
    });
    bus.register(UserRegistered, () => {
      log.push("early");
    }, { order: -10 });
    bus.register(UserRegistered, () => {
      log.push("default 2");
    }, { order: 0 });
    bus.register(UserRegistered, () => {
      log.push("half");
    }, { order: 0.5 });
    await bus.publish(new UserRegistered("u1"));
    assert.deepEqual(log, [
      "early",
      "default 1",
      "default 2",
      "half",
      "late",
    ]);
  });
  await t.step(
    "a catch-all or base-class handler with a lower order runs first",
    async () => {
      const bus = new EventBus();
      const log: string[] = [];
      bus.register(Leaf, () => {
        log.push("leaf");
      });
      bus.register(Base, () => {
        log.push("base");
      }, { subclasses: true, order: -1 });
      bus.onAny(() => {
        log.push("any");
      }, { order: -2 });
      await bus.publish(new Leaf("l"));
      assert.deepEqual(log, ["any", "base", "leaf"]);
    },
  );
});

Deno.test("the resolved handlers are rebuilt after register, unsubscribe and clearHandlers", async () => {
  const bus = new EventBus();
  const log: string[] = [];
  await bus.publish(new Leaf("l")); // resolves (and caches) no handler
  const base = bus.register(Base, () => {
    log.push("base");
  }, { subclasses: true });
  await bus.publish(new Leaf("l"));
  assert.deepEqual(log, ["base"]);
  const any = bus.onAny(() => {
    log.push("any");
  });
  await bus.publish(new Leaf("l"));
  assert.deepEqual(log, ["base", "base", "any"]);
  base.unsubscribe();
  await bus.publish(new Leaf("l"));
  assert.deepEqual(log, ["base", "base", "any", "any"]);
  any.unsubscribe();
  bus.register(Middle, () => {
    log.push("middle");
  }, { subclasses: true });
  bus.onAny(() => {
    log.push("any again");
  });
  bus.clearHandlers();
  await bus.publish(new Leaf("l"));
  assert.deepEqual(log, ["base", "base", "any", "any"]);
  assert.equal(bus.handlersFor(Leaf).length, 0);
});

Deno.test("onAny() receives every event, of any class, in publish order", async () => {
  const bus = new EventBus();
  const seen: object[] = [];
  const sub = bus.onAny((e) => {
    seen.push(e);
  });
  const events = [new UserRegistered("u1"), new OrderPlaced("o1"), {}];
  await bus.publishAll(events);
  await bus.publish(new Leaf("l"));
  assert.equal(seen.length, 4);
  assert.deepEqual(seen.slice(0, 3), events);
  sub.unsubscribe();
  await bus.publish(new UserRegistered("u2"));
  assert.equal(seen.length, 4);
});

Deno.test("a failing base-class or catch-all handler is logged with the event's own type", async () => {
  const boom = new Error("boom");
  const { records } = await captureLogs(async () => {
    const bus = new EventBus();
    bus.register(Base, async function audit() {
      await Promise.resolve();
      throw boom;
    }, { subclasses: true });
    await assert.rejects(bus.publish(new Leaf("l")), (e) => e === boom);
    const any = new EventBus();
    any.onAny(function metrics() {
      throw boom;
    });
    await assert.rejects(any.publish(new Middle("m")), (e) => e === boom);
  });
  const errors = records.filter((r) => r.level === "error");
  assert.deepEqual(
    errors.map((r) => [r.properties.eventType, r.properties.handler]),
    [["Leaf", "audit"], ["Middle", "metrics"]],
  );
});

Deno.test("registering one function twice for a type, with or without subclasses, or as two catch-alls, throws", () => {
  const bus = new EventBus();
  function audit() {}
  bus.register(Base, audit);
  assert.throws(() => bus.register(Base, audit, { subclasses: true }), {
    name: "TypeError",
    message: /Cannot register handler audit for Base: it is already registered/,
  });
  bus.onAny(audit);
  assert.throws(() => bus.onAny(audit), {
    name: "TypeError",
    message:
      /Cannot register handler audit for every event: it is already registered/,
  });
});

// The handler context and AbortSignal.

Deno.test("handlers receive a context: one frozen context whose signal never aborts when no signal is given", async () => {
  const bus = new EventBus();
  const contexts: HandlerContext[] = [];
  bus.register(UserRegistered, (_e, context) => {
    contexts.push(context);
  });
  bus.onAny(async (_e, context) => {
    await Promise.resolve();
    contexts.push(context);
  });
  await bus.publish(new UserRegistered("u1"));
  await bus.publishAll([new UserRegistered("u2")]);
  await bus.publish(new UserRegistered("u3"), {});
  assert.equal(contexts.length, 6);
  for (const context of contexts) {
    assert.equal(context, contexts[0]);
    assert.ok(Object.isFrozen(context));
    assert.ok(context.signal instanceof AbortSignal);
    assert.equal(context.signal.aborted, false);
  }
});

Deno.test("publish(event, { signal }) and publishAll(events, { signal }) hand the signal to every handler", async () => {
  for (const errorPolicy of ["fail-fast", "collect"] as const) {
    const bus = new EventBus({ errorPolicy });
    const signals: AbortSignal[] = [];
    bus.register(UserRegistered, (_e, { signal }) => {
      signals.push(signal);
    });
    bus.register(Base, async (_e, { signal }) => {
      await Promise.resolve();
      signals.push(signal);
    }, { subclasses: true });
    const controller = new AbortController();
    await bus.publish(new UserRegistered("u1"), { signal: controller.signal });
    await bus.publishAll([new Leaf("l"), new UserRegistered("u2")], {
      signal: controller.signal,
    });
    assert.equal(signals.length, 3);
    for (const s of signals) assert.equal(s, controller.signal);
  }
});

Deno.test("an aborted signal stops the dispatch with the signal's reason", async (t) => {
  for (const errorPolicy of ["fail-fast", "collect"] as const) {
    await t.step(
      `${errorPolicy}: already aborted, no handler runs`,
      async () => {
        const bus = new EventBus({ errorPolicy });
        let calls = 0;
        bus.register(UserRegistered, () => {
          calls++;
        });
        const reason = new Error("deadline");
        const signal = AbortSignal.abort(reason);
        await assert.rejects(
          bus.publish(new UserRegistered("u1"), { signal }),
          (e) => e === reason,
        );
        await assert.rejects(
          bus.publishAll([new UserRegistered("u1")], { signal }),
          (e) => e === reason,
        );
        assert.equal(calls, 0);
      },
    );

    await t.step(
      `${errorPolicy}: a handler that ignores the signal is not waited for, later handlers and events do not start`,
      async () => {
        const { records } = await captureLogs(async () => {
          const bus = new EventBus({ errorPolicy });
          const log: string[] = [];
          const stuck = Promise.withResolvers<void>();
          bus.register(UserRegistered, function slow() {
            log.push("slow");
            return stuck.promise; // ignores the signal
          });
          bus.register(UserRegistered, () => {
            log.push("never");
          });
          bus.register(OrderPlaced, () => {
            log.push("next event");
          });
          const controller = new AbortController();
          const reason = new Error("deadline");
          const published = bus.publishAll(
            [new UserRegistered("u1"), new OrderPlaced("o1")],
            { signal: controller.signal },
          );
          await Promise.resolve();
          controller.abort(reason);
          await assert.rejects(published, (e) => e === reason);
          assert.deepEqual(log, ["slow"]);
          // The abandoned handler fails later: logged, not lost.
          stuck.reject(new Error("late failure"));
          await stuck.promise.catch(() => {});
          await Promise.resolve();
        });
        const warnings = records.filter((r) => r.level === "warning");
        assert.deepEqual(
          warnings.map((r) => [r.properties.eventType, r.properties.handler]),
          [["UserRegistered", "slow"]],
        );
        const errors = records.filter((r) => r.level === "error");
        assert.deepEqual(errors.map((r) => r.properties.handler), ["slow"]);
      },
    );
  }

  await t.step(
    "a signal aborted by a handler that then returns stops the dispatch before the next handler, with a warning naming it",
    async () => {
      const { records } = await captureLogs(async () => {
        const bus = new EventBus();
        const controller = new AbortController();
        const reason = new Error("enough");
        const log: string[] = [];
        bus.register(UserRegistered, function first() {
          log.push("first");
          controller.abort(reason);
        });
        bus.register(UserRegistered, function second() {
          log.push("second");
        });
        const { signal } = controller;
        await assert.rejects(
          bus.publish(new UserRegistered("u1"), { signal }),
          (e) => e === reason,
        );
        assert.deepEqual(log, ["first"]);
      });
      const warnings = records.filter((r) => r.level === "warning");
      assert.deepEqual(
        warnings.map((r) => [String(r.rawMessage), r.properties.handler]),
        [[
          "Stopped dispatching {eventType} before handler {handler}: the signal aborted",
          "second",
        ]],
      );
    },
  );

  await t.step(
    "a handler that stops on the signal ends the publish",
    async () => {
      const bus = new EventBus();
      bus.register(
        UserRegistered,
        (_e, { signal }) =>
          new Promise<void>((_resolve, reject) => {
            signal.addEventListener("abort", () => reject(signal.reason), {
              once: true,
            });
          }),
      );
      const controller = new AbortController();
      const published = bus.publish(new UserRegistered("u1"), {
        signal: controller.signal,
      });
      controller.abort();
      await assert.rejects(published, { name: "AbortError" });
    },
  );
});

// Misuse of the new options.

Deno.test("register() and onAny() reject bad options with a TypeError or RangeError saying what to do", async (t) => {
  const bus = new EventBus();
  const fn = () => {};
  await t.step("order that is not a number", () => {
    for (const order of ["1", null, 1n]) {
      assert.throws(
        () => bus.register(UserRegistered, fn, { order: order as never }),
        {
          name: "TypeError",
          message:
            /Cannot register handler for UserRegistered: order must be a finite number, received (a string|null|a bigint); pass a number such as -10 or 10 \(lower runs first, 0 by default\)/,
        },
      );
    }
  });
  await t.step("order that is NaN or infinite", () => {
    for (const order of [NaN, Infinity, -Infinity]) {
      assert.throws(() => bus.register(UserRegistered, fn, { order }), {
        name: "RangeError",
        message: new RegExp(
          `order must be a finite number, received ${order}; pass a number`,
        ),
      });
      assert.throws(() => bus.onAny(fn, { order }), {
        name: "RangeError",
        message: new RegExp(
          `Cannot register catch-all handler: order must be a finite number, received ${order}`,
        ),
      });
    }
  });
  await t.step("subclasses that is not a boolean", () => {
    assert.throws(
      () => bus.register(Base, fn, { subclasses: "yes" as never }),
      {
        name: "TypeError",
        message:
          /Cannot register handler for Base: subclasses must be true or false, received a string/,
      },
    );
  });
  await t.step("subclasses: true on something that is not a class", () => {
    for (
      const [type, what] of [[() => {}, "function"], ["Base", "a string"], [
        undefined,
        "undefined",
      ]] as const
    ) {
      assert.throws(
        () => bus.register(type as never, fn, { subclasses: true }),
        {
          name: "TypeError",
          message: new RegExp(
            `Cannot register handler: subclasses: true needs a base class, received ${what}.*; pass the base class itself \\(for example DomainEvent\\), or use onAny\\(\\) to receive every event`,
          ),
        },
      );
    }
  });
  await t.step("options that are not an object", () => {
    assert.throws(() => bus.register(Base, fn, "first" as never), {
      name: "TypeError",
      message: /Cannot register handler for Base: expected an options object/,
    });
  });
  await t.step("onAny() with a non-function", () => {
    for (
      const [value, what] of [[undefined, "undefined"], ["audit", "a string"], [
        {},
        "a plain object",
      ]] as const
    ) {
      assert.throws(() => bus.onAny(value as never), {
        name: "TypeError",
        message: new RegExp(
          `Cannot register catch-all handler: expected a function, received ${what}; pass a function such as \\(event\\) => audit\\(event\\), or use @OnAny\\(\\) on a method`,
        ),
      });
    }
  });
  assert.equal(bus.handlersFor(UserRegistered).length, 0);
  assert.equal(bus.handlersFor(Base).length, 0);
});

Deno.test("publish() and publishAll() reject options whose signal is not an AbortSignal, before any handler runs", async () => {
  const bus = new EventBus();
  let calls = 0;
  bus.register(UserRegistered, () => {
    calls++;
  });
  for (
    const [options, message] of [
      [
        { signal: "soon" },
        /options\.signal must be an AbortSignal, received a string; pass controller\.signal or AbortSignal\.timeout\(ms\)/,
      ],
      [
        { signal: new AbortController() },
        /options\.signal must be an AbortSignal, received an instance of AbortController/,
      ],
      [null, /expected an options object such as \{ signal \}, received null/],
    ] as const
  ) {
    await assert.rejects(
      bus.publish(new UserRegistered("u1"), options as never),
      {
        name: "TypeError",
        message: new RegExp(`Cannot publish: ${message.source}`),
      },
    );
    await assert.rejects(
      bus.publishAll([new UserRegistered("u1")], options as never),
      {
        name: "TypeError",
        message: new RegExp(`Cannot publish events: ${message.source}`),
      },
    );
  }
  assert.equal(calls, 0);
});

Deno.test("onAny() rejects the subclasses option: a catch-all receives every event", () => {
  assert.throws(
    () => new EventBus().onAny(() => {}, { subclasses: false } as never),
    {
      name: "TypeError",
      message:
        /Cannot register catch-all handler: the subclasses option does not apply to a catch-all, which receives every event; remove it/,
    },
  );
});

Deno.test("the handlers of an event class are resolved once, and again only after a registration change", async () => {
  // A class whose prototype-chain walks are counted: resolving walks it,
  // a cached publish does not.
  let walks = 0;
  class Counted extends Middle {}
  const counted = new Proxy(Counted, {
    getPrototypeOf(target) {
      walks++;
      return Reflect.getPrototypeOf(target);
    },
  });
  Counted.prototype.constructor = counted;
  const bus = new EventBus();
  let calls = 0;
  bus.register(Base, () => {
    calls++;
  }, { subclasses: true });

  await bus.publish(new Counted("c1"));
  const afterFirst = walks;
  assert.ok(afterFirst > 0);
  await bus.publish(new Counted("c2"));
  await bus.publishAll([new Counted("c3"), new Counted("c4")]);
  assert.equal(walks, afterFirst, "cached: no walk");
  assert.equal(calls, 4);

  const sub = bus.register(Middle, () => {
    calls++;
  }, { subclasses: true });
  await bus.publish(new Counted("c5"));
  assert.equal(calls, 6);
  const afterRegister = walks;
  assert.ok(afterRegister > afterFirst, "a registration invalidates");
  sub.unsubscribe();
  await bus.publish(new Counted("c6"));
  assert.equal(calls, 7);
  assert.ok(walks > afterRegister, "an unsubscribe invalidates");
});
