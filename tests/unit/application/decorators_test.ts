import assert from "node:assert/strict";
import {
  clearHandlers,
  defaultBus,
  EventBus,
  On,
  OnAny,
  publish,
} from "../../../mod.ts";
import { captureLogs } from "../../_helpers/logs.ts";

class UserRegistered {
  constructor(readonly userId: string) {}
}
class UserRenamed {
  constructor(readonly userId: string) {}
}

Deno.test("@On on a static method registers it on defaultBus when the class is defined", async () => {
  clearHandlers();
  try {
    assert.equal(defaultBus.handlersFor(UserRegistered).length, 0);
    class Audit {
      static trail: string[] = [];
      @On(UserRegistered)
      static record(event: UserRegistered): void {
        // `this` is the class: static handlers are bound to it.
        this.trail.push(event.userId);
      }
    }
    const handlers = defaultBus.handlersFor(UserRegistered);
    assert.deepEqual(handlers.map((h) => h.name), ["Audit.record"]);
    assert.equal(handlers[0]?.target, Audit);
    await publish(new UserRegistered("u1"));
    assert.deepEqual(Audit.trail, ["u1"]);
  } finally {
    clearHandlers();
  }
});

Deno.test("@On on an instance method registers nothing until subscribe(instance)", async () => {
  class Welcome {
    sent: string[] = [];
    constructor(readonly prefix: string) {}
    @On(UserRegistered)
    async send(event: UserRegistered): Promise<void> {
      await Promise.resolve();
      this.sent.push(`${this.prefix}${event.userId}`);
    }
  }
  const bus = new EventBus();
  assert.equal(defaultBus.handlersFor(UserRegistered).length, 0);
  const a = new Welcome("a:");
  const b = new Welcome("b:");
  const subA = bus.subscribe(a);
  bus.subscribe(b);
  assert.deepEqual(
    bus.handlersFor(UserRegistered).map((h) => [h.name, h.target]),
    [
      ["Welcome.send", a],
      ["Welcome.send", b],
    ],
  );
  await bus.publish(new UserRegistered("u1"));
  assert.deepEqual(a.sent, ["a:u1"]);
  assert.deepEqual(b.sent, ["b:u1"]);
  subA.unsubscribe();
  await bus.publish(new UserRegistered("u2"));
  assert.deepEqual(a.sent, ["a:u1"]);
  assert.deepEqual(b.sent, ["b:u1", "b:u2"]);
});

Deno.test("subscribe(instance) registers every @On method in declaration order", async () => {
  class Projector {
    log: string[] = [];
    @On(UserRenamed)
    renamed(e: UserRenamed): void {
      this.log.push(`renamed:${e.userId}`);
    }
    @On(UserRegistered)
    registered(e: UserRegistered): void {
      this.log.push(`registered:${e.userId}`);
    }
    @On(UserRegistered)
    alsoRegistered(e: UserRegistered): void {
      this.log.push(`also:${e.userId}`);
    }
    notAHandler(): void {
      this.log.push("never");
    }
  }
  const bus = new EventBus();
  const p = new Projector();
  bus.subscribe(p);
  await bus.publishAll([new UserRegistered("u1"), new UserRenamed("u1")]);
  assert.deepEqual(p.log, ["registered:u1", "also:u1", "renamed:u1"]);
});

Deno.test("a method may carry several @On, one per event type", async () => {
  class Counter {
    seen: string[] = [];
    @On(UserRegistered)
    @On(UserRenamed)
    count(e: UserRegistered | UserRenamed): void {
      this.seen.push(e.constructor.name);
    }
  }
  const bus = new EventBus();
  const c = new Counter();
  bus.subscribe(c);
  await bus.publish(new UserRegistered("u1"));
  await bus.publish(new UserRenamed("u1"));
  assert.deepEqual(c.seen, ["UserRegistered", "UserRenamed"]);
});

Deno.test("subclasses inherit handlers without changing their parent's", async (t) => {
  class Base {
    log: string[] = [];
    @On(UserRegistered)
    onRegistered(e: UserRegistered): void {
      this.log.push(`base:${e.userId}`);
    }
  }
  class Child extends Base {
    @On(UserRenamed)
    onRenamed(e: UserRenamed): void {
      this.log.push(`child:${e.userId}`);
    }
  }
  class Overriding extends Base {
    override onRegistered(e: UserRegistered): void {
      this.log.push(`override:${e.userId}`);
    }
  }
  class Redecorated extends Base {
    @On(UserRegistered)
    override onRegistered(e: UserRegistered): void {
      this.log.push(`redecorated:${e.userId}`);
    }
  }

  await t.step(
    "a child gets its parent's handlers and its own, parent's first",
    async () => {
      const bus = new EventBus();
      const child = new Child();
      bus.subscribe(child);
      await bus.publishAll([new UserRenamed("u1"), new UserRegistered("u1")]);
      assert.deepEqual(child.log, ["child:u1", "base:u1"]);
      assert.deepEqual(bus.handlersFor(UserRegistered).map((h) => h.name), [
        "Child.onRegistered",
      ]);
    },
  );

  await t.step("the parent does not get the child's handlers", async () => {
    const bus = new EventBus();
    const base = new Base();
    bus.subscribe(base);
    assert.equal(bus.handlersFor(UserRenamed).length, 0);
    await bus.publish(new UserRenamed("u1"));
    assert.deepEqual(base.log, []);
  });

  await t.step("an override runs in place of the parent's method", async () => {
    const bus = new EventBus();
    const o = new Overriding();
    bus.subscribe(o);
    await bus.publish(new UserRegistered("u1"));
    assert.deepEqual(o.log, ["override:u1"]);
  });

  await t.step("re-decorating an override registers it once", async () => {
    const bus = new EventBus();
    const r = new Redecorated();
    bus.subscribe(r);
    await bus.publish(new UserRegistered("u1"));
    assert.deepEqual(r.log, ["redecorated:u1"]);
  });

  await t.step(
    "an override decorated again takes the child's decorators: its types, order and subclasses, in the parent's place",
    async () => {
      class Other {}
      class SubRegistered extends UserRegistered {}
      class Parent {
        log: string[] = [];
        @On(UserRegistered)
        first(e: UserRegistered): void {
          this.log.push(`first:${e.userId}`);
        }
        @On(UserRegistered)
        second(): void {
          this.log.push("second");
        }
        @OnAny()
        any(): void {}
      }
      class Retargeted extends Parent {
        @On(UserRenamed)
        override first(e: UserRenamed): void {
          this.log.push(`renamed:${e.userId}`);
        }
      }
      class Reordered extends Parent {
        @On(UserRegistered, { order: 10, subclasses: true })
        override first(e: UserRegistered): void {
          this.log.push(`first:${e.userId}`);
        }
        @OnAny({ order: -5 })
        override any(): void {}
      }
      const names = (bus: EventBus, type: new (id: string) => object) =>
        bus.handlersFor(type).map((h) => `${h.name}@${h.order}`);

      const bus = new EventBus();
      const r = new Retargeted();
      bus.subscribe(r);
      await bus.publishAll([new UserRegistered("u1"), new UserRenamed("u2")]);
      assert.deepEqual(r.log, ["second", "renamed:u2"]);
      assert.deepEqual(names(bus, UserRegistered), [
        "Retargeted.second@0",
        "Retargeted.any@0",
      ]);

      const other = new EventBus();
      other.subscribe(new Reordered());
      assert.deepEqual(names(other, UserRegistered), [
        "Reordered.any@-5",
        "Reordered.second@0",
        "Reordered.first@10",
      ]);
      assert.deepEqual(names(other, SubRegistered), [
        "Reordered.any@-5",
        "Reordered.first@10",
      ]);
      assert.deepEqual(names(other, Other as never), ["Reordered.any@-5"]);
    },
  );

  await t.step(
    "the parent's own metadata was not mutated by its children",
    () => {
      const meta = Base[Symbol.metadata]!;
      const own = Object.getOwnPropertySymbols(meta).map((s) =>
        (meta as Record<symbol, unknown[]>)[s]
      ).filter(Array.isArray);
      assert.equal(own.length, 1);
      assert.equal(own[0]!.length, 1);
    },
  );
});

Deno.test("a static and an instance method of one name, both @On the same type, are both registered", async () => {
  class Twin {
    static log: string[] = [];
    @On(UserRegistered)
    static m(e: UserRegistered): void {
      Twin.log.push(`static:${e.userId}`);
    }
    @On(UserRegistered)
    m(e: UserRegistered): void {
      Twin.log.push(`instance:${e.userId}`);
    }
  }
  try {
    const bus = new EventBus();
    using _sub = bus.subscribe(new Twin());
    await bus.publish(new UserRegistered("u1"));
    assert.deepEqual(Twin.log, ["instance:u1"]);
  } finally {
    clearHandlers(); // the static one registered itself on defaultBus
  }
});

Deno.test("subscribe(Class) puts its static @On methods on another bus", async () => {
  clearHandlers();
  try {
    class Stats {
      static count = 0;
      @On(UserRegistered)
      static bump(_e: UserRegistered): void {
        this.count++;
      }
    }
    const bus = new EventBus();
    bus.subscribe(Stats);
    await bus.publish(new UserRegistered("u1"));
    assert.equal(Stats.count, 1);
    // Already on defaultBus since the class was defined: a second time throws.
    assert.throws(() => defaultBus.subscribe(Stats), {
      name: "TypeError",
      message: /Stats\.bump for UserRegistered: it is already registered/,
    });
  } finally {
    clearHandlers();
  }
});

Deno.test("subscribing the same instance twice throws a TypeError naming the method", () => {
  class Welcome {
    @On(UserRegistered)
    send(_e: UserRegistered): void {}
  }
  const bus = new EventBus();
  const w = new Welcome();
  bus.subscribe(w);
  assert.throws(() => bus.subscribe(w), {
    name: "TypeError",
    message:
      /Cannot register handler Welcome\.send for UserRegistered: it is already registered on this bus/,
  });
  assert.equal(bus.handlersFor(UserRegistered).length, 1);
  // Another instance is another handler.
  bus.subscribe(new Welcome());
  assert.equal(bus.handlersFor(UserRegistered).length, 2);
});

Deno.test("two @On of the same type on one static method throw when the class is defined", () => {
  clearHandlers();
  try {
    assert.throws(
      () => {
        class Twice {
          @On(UserRegistered)
          @On(UserRegistered)
          static handle(_e: UserRegistered): void {}
        }
        return Twice;
      },
      {
        name: "TypeError",
        message: /Twice\.handle for UserRegistered: it is already registered/,
      },
    );
  } finally {
    clearHandlers();
  }
});

Deno.test("On() rejects what is not an event class", async (t) => {
  for (
    const [value, what] of [
      [undefined, "undefined"],
      [null, "null"],
      ["UserRegistered", "a string"],
      [{}, "a plain object"],
      [() => {}, "function"],
    ] as const
  ) {
    await t.step(what, () => {
      assert.throws(() => On(value as unknown as typeof UserRegistered), {
        name: "TypeError",
        message: new RegExp(
          `Cannot create @On decorator: expected an event class, received ${what}.*@On\\(UserRegistered\\)`,
        ),
      });
    });
  }
});

Deno.test("@On on anything but a method throws when the class is defined", async (t) => {
  // The casts stand for JavaScript callers: TypeScript already rejects these.
  const anyOn = On(UserRegistered) as unknown as (
    value: unknown,
    context: unknown,
  ) => void;
  await t.step("a field", () => {
    assert.throws(() => {
      class WithField {
        @anyOn
        handler = (_e: UserRegistered) => {};
      }
      return WithField;
    }, {
      name: "TypeError",
      message:
        /@On\(UserRegistered\) cannot decorate field handler: it applies to methods only/,
    });
  });
  await t.step("a getter", () => {
    assert.throws(() => {
      class WithGetter {
        @anyOn
        get handler(): number {
          return 1;
        }
      }
      return WithGetter;
    }, { name: "TypeError", message: /cannot decorate getter handler/ });
  });
  await t.step("a setter", () => {
    assert.throws(() => {
      class WithSetter {
        @anyOn
        set handler(_v: number) {}
      }
      return WithSetter;
    }, { name: "TypeError", message: /cannot decorate setter handler/ });
  });
  await t.step("an auto-accessor", () => {
    assert.throws(() => {
      class WithAccessor {
        @anyOn
        accessor handler = 1;
      }
      return WithAccessor;
    }, { name: "TypeError", message: /cannot decorate accessor handler/ });
  });
  await t.step("a class", () => {
    assert.throws(() => {
      @anyOn
      class Decorated {}
      return Decorated;
    }, { name: "TypeError", message: /cannot decorate class Decorated/ });
  });
  await t.step("a legacy (experimental) decorator call", () => {
    assert.throws(() => anyOn({}, "handler"), {
      name: "TypeError",
      message: /legacy decorator.*remove "experimentalDecorators"/,
    });
  });
});

Deno.test("subscribe() rejects targets without @On methods and non-objects", async (t) => {
  const bus = new EventBus();
  class Plain {
    handle(_e: UserRegistered): void {}
  }
  class OnlyInstance {
    @On(UserRegistered)
    handle(_e: UserRegistered): void {}
  }
  await t.step("an instance with no @On methods", () => {
    assert.throws(() => bus.subscribe(new Plain()), {
      name: "TypeError",
      message:
        /Cannot subscribe an instance of Plain: its class has no @On instance methods; decorate a method with @On\(EventClass\) or use register\(\)/,
    });
  });
  await t.step("a plain object", () => {
    assert.throws(() => bus.subscribe({ handle() {} }), {
      name: "TypeError",
      message:
        /Cannot subscribe a plain object: its class has no @On instance methods/,
    });
  });
  await t.step("a class with only instance @On methods", () => {
    assert.throws(() => bus.subscribe(OnlyInstance), {
      name: "TypeError",
      message:
        /Cannot subscribe class OnlyInstance: it has no static @On methods; subscribe an instance/,
    });
  });
  await t.step("null and primitives", () => {
    for (const value of [null, undefined, "x", 1]) {
      assert.throws(() => bus.subscribe(value as unknown as object), {
        name: "TypeError",
        message:
          /Cannot subscribe: expected an instance or a class with @On methods/,
      });
    }
  });
  assert.equal(bus.handlersFor(UserRegistered).length, 0);
});

Deno.test("a failed subscribe registers none of the target's handlers", () => {
  class Two {
    @On(UserRegistered)
    a(_e: UserRegistered): void {}
    @On(UserRenamed)
    b(_e: UserRenamed): void {}
  }
  const bus = new EventBus();
  const t = new Two();
  // Shadow the second handler with a non-function: the first one checks out,
  // the second does not, and neither may be registered.
  Object.defineProperty(t, "b", { value: 42 });
  assert.throws(() => bus.subscribe(t), {
    name: "TypeError",
    message: /Cannot subscribe Two: b is no longer a method \(it is a number\)/,
  });
  assert.equal(bus.handlersFor(UserRegistered).length, 0);
  assert.equal(bus.handlersFor(UserRenamed).length, 0);
});

// Options, @OnAny, and the never-subscribed warning.

class DomainBase {
  constructor(readonly id: string) {}
}
class ItemAdded extends DomainBase {}

Deno.test("@On(Base, { subclasses: true, order }) and @OnAny() on instance methods", async () => {
  class Projector {
    log: string[] = [];
    @OnAny()
    any(e: object): void {
      this.log.push(`any:${e.constructor.name}`);
    }
    @On(DomainBase, { subclasses: true })
    base(e: DomainBase): void {
      this.log.push(`base:${e.constructor.name}`);
    }
    @On(ItemAdded)
    added(_e: ItemAdded): void {
      this.log.push("added");
    }
    @On(ItemAdded, { order: -1 })
    first(_e: ItemAdded): void {
      this.log.push("first");
    }
  }
  const bus = new EventBus();
  const p = new Projector();
  bus.subscribe(p);
  await bus.publishAll([new ItemAdded("i1"), new UserRegistered("u1")]);
  assert.deepEqual(p.log, [
    "first",
    "added",
    "base:ItemAdded",
    "any:ItemAdded",
    "any:UserRegistered",
  ]);
  assert.deepEqual(
    bus.handlersFor(ItemAdded).map((h) => [h.name, h.eventType, h.order]),
    [
      ["Projector.first", ItemAdded, -1],
      ["Projector.added", ItemAdded, 0],
      ["Projector.base", DomainBase, 0],
      ["Projector.any", undefined, 0],
    ],
  );
});

Deno.test("static @On with order: the order option decides, not the order in which classes are defined", async () => {
  clearHandlers();
  try {
    const log: string[] = [];
    class Mailer {
      @On(UserRegistered, { order: 10 })
      static send(_e: UserRegistered): void {
        log.push("mailer");
      }
    }
    class Audit {
      @OnAny({ order: -10 })
      static record(_e: object): void {
        log.push("audit");
      }
    }
    class Accounts {
      @On(UserRegistered)
      static open(_e: UserRegistered): void {
        log.push("accounts");
      }
    }
    await publish(new UserRegistered("u1"));
    assert.deepEqual(log, ["audit", "accounts", "mailer"]);
    assert.deepEqual(
      defaultBus.handlersFor(UserRegistered).map((h) => h.target),
      [
        Audit,
        Accounts,
        Mailer,
      ],
    );
  } finally {
    clearHandlers();
  }
});

Deno.test("On() and OnAny() reject bad options when called", async (t) => {
  await t.step("order NaN or infinite: RangeError", () => {
    for (const order of [NaN, Infinity]) {
      assert.throws(() => On(UserRegistered, { order }), {
        name: "RangeError",
        message: new RegExp(
          `Cannot create @On\\(UserRegistered\\) decorator: order must be a finite number, received ${order}; pass a number such as -10 or 10`,
        ),
      });
      assert.throws(() => OnAny({ order }), {
        name: "RangeError",
        message:
          /Cannot create @OnAny decorator: order must be a finite number/,
      });
    }
  });
  await t.step("order not a number: TypeError", () => {
    assert.throws(() => On(UserRegistered, { order: "1" as never }), {
      name: "TypeError",
      message: /order must be a finite number, received a string/,
    });
    assert.throws(() => OnAny({ order: "last" as never }), {
      name: "TypeError",
      message:
        /Cannot create @OnAny decorator: order must be a finite number, received a string/,
    });
  });
  await t.step("subclasses not a boolean: TypeError", () => {
    assert.throws(() => On(UserRegistered, { subclasses: 1 as never }), {
      name: "TypeError",
      message:
        /Cannot create @On\(UserRegistered\) decorator: subclasses must be true or false, received a number/,
    });
  });
  await t.step("subclasses on something that is not a class: TypeError", () => {
    assert.throws(
      () => On((() => {}) as never, { subclasses: true }),
      {
        name: "TypeError",
        message: /Cannot create @On decorator: expected an event class/,
      },
    );
  });
});

Deno.test("@OnAny on anything but a method throws when the class is defined", () => {
  const anyOn = OnAny() as unknown as (
    value: unknown,
    context: unknown,
  ) => void;
  assert.throws(() => {
    class WithField {
      @anyOn
      handler = (_e: object) => {};
    }
    return WithField;
  }, {
    name: "TypeError",
    message:
      /@OnAny\(\) cannot decorate field handler: it applies to methods only; put it on a method that receives events/,
  });
});

Deno.test("the misuse message names the event type without a wrong article", () => {
  const anyOn = On(ItemAdded) as unknown as (v: unknown, c: unknown) => void;
  assert.throws(() => {
    class WithField {
      @anyOn
      handler = 1;
    }
    return WithField;
  }, (e: unknown) => {
    assert.ok(e instanceof TypeError);
    assert.match(e.message, /put it on a method that receives ItemAdded$/);
    assert.doesNotMatch(e.message, /\ba ItemAdded\b/);
    return true;
  });
});

Deno.test("publishing a plain object that no handler receives warns once per bus that handlers are found by class; a catch-all silences it", async () => {
  const bus = new EventBus();
  const { records } = await captureLogs(async () => {
    await bus.publish({ type: "user.registered" });
    await bus.publishAll([
      { type: "a" },
      Object.create(null),
      { constructor: "a" },
      { constructor: 1 },
    ]);
    bus.onAny(() => {});
    await bus.publish({ type: "b" });
  });
  const warnings = records.filter((r) => r.level === "warning");
  assert.deepEqual(warnings.map((r) => r.message.join("")), [
    "No handler for a plain object on this bus: handlers are found by the event's class (event.constructor); publish an instance of an event class, such as new UserRegistered(…)",
  ]);
});

Deno.test("a plain object whose only handler is an @On(Object) method never subscribed gets the forgotten-subscribe warning, not the plain-object one", async () => {
  class ObjectListener {
    @On(Object)
    heard(_event: object): void {}
  }
  new ObjectListener(); // never subscribed
  const { records } = await captureLogs(() => new EventBus().publish({ k: 1 }));
  assert.deepEqual(
    records.filter((r) => r.level === "warning").map((r) => r.message.join("")),
    [
      "No handler for Object on this bus, but ObjectListener has @On instance methods for it and no instance was ever subscribed; call bus.subscribe(instance)",
    ],
  );
});

Deno.test("publishing an event with no handler warns once when a class with @On methods for it was instantiated but never subscribed", async (t) => {
  class Forgotten {
    constructor(readonly id: string) {}
  }
  class ForgottenHandler {
    @On(Forgotten)
    handle(_e: Forgotten): void {}
  }
  class AlsoForgotten extends DomainBase {}
  class BaseForgottenHandler {
    @On(DomainBase, { subclasses: true })
    handle(_e: DomainBase): void {}
  }
  class NeverInstantiated {
    constructor(readonly id: string) {}
  }
  class NeverInstantiatedHandler {
    @On(NeverInstantiated)
    handle(_e: NeverInstantiated): void {}
  }
  assert.ok(NeverInstantiatedHandler);

  await t.step("an instance that was never subscribed", async () => {
    const { records } = await captureLogs(async () => {
      const bus = new EventBus();
      new ForgottenHandler(); // the mistake: created, not subscribed
      new BaseForgottenHandler();
      await bus.publish(new Forgotten("f1"));
      await bus.publish(new Forgotten("f2")); // once per type and bus
      await bus.publishAll([new AlsoForgotten("a1")]);
      await bus.publish(new NeverInstantiated("n1")); // no instance: no hint
    });
    const warnings = records.filter((r) => r.level === "warning");
    assert.deepEqual(
      warnings.map((r) => [r.properties.eventType, r.properties.classes]),
      [
        ["Forgotten", "ForgottenHandler"],
        ["AlsoForgotten", "BaseForgottenHandler"],
      ],
    );
    assert.match(
      warnings[0]!.message.join(""),
      /^No handler for Forgotten on this bus, but ForgottenHandler has @On instance methods for it and no instance was ever subscribed; call bus.subscribe\(instance\)/,
    );
  });

  await t.step(
    "a subclass whose override was re-decorated for another type is not named for the parent's",
    async () => {
      class Moved {}
      class Renamed {}
      class Parent {
        @On(Moved)
        handle(_e: object): void {}
      }
      class Retargeted extends Parent {
        @On(Renamed)
        override handle(_e: object): void {}
      }
      const { records } = await captureLogs(async () => {
        new Retargeted();
        const bus = new EventBus();
        await bus.publish(new Moved());
        await bus.publish(new Renamed());
      });
      const warnings = records.filter((r) => r.level === "warning");
      assert.deepEqual(
        warnings.map((r) => [r.properties.eventType, r.properties.classes]),
        [["Renamed", "Retargeted"]],
      );
    },
  );

  await t.step("several classes are named together", async () => {
    class Shipped {}
    class Invoicing {
      @On(Shipped)
      handle(_e: Shipped): void {}
    }
    class Tracking {
      @OnAny()
      all(_e: object): void {}
    }
    const { records } = await captureLogs(async () => {
      new Tracking();
      new Invoicing();
      await new EventBus().publish(new Shipped());
    });
    const warnings = records.filter((r) => r.level === "warning");
    assert.equal(warnings.length, 1);
    assert.match(
      warnings[0]!.message.join(""),
      /^No handler for Shipped on this bus, but Invoicing, Tracking have @On instance methods for it and no instance of them was ever subscribed/,
    );
    // A catch-all class waits for every event type: subscribe one instance
    // so that the next steps see no hint about it.
    new EventBus().subscribe(new Tracking()).unsubscribe();
  });

  await t.step(
    "no warning once an instance of the class is subscribed",
    async () => {
      const { records } = await captureLogs(async () => {
        const other = new EventBus();
        using _sub = other.subscribe(new ForgottenHandler());
        other.subscribe(new BaseForgottenHandler()).unsubscribe();
        await new EventBus().publish(new Forgotten("f3"));
        await new EventBus().publish(new AlsoForgotten("a2"));
      });
      assert.deepEqual(records.filter((r) => r.level === "warning"), []);
    },
  );
});
