// Type-level tests: `deno check` and `deno test` type-check this file, so
// every `@ts-expect-error` below must be a real compile error, or the check
// fails with "Unused '@ts-expect-error' directive".
import assert from "node:assert/strict";
import { EventBus, type HandlerContext, On, OnAny } from "../../../mod.ts";

class UserRegistered {
  constructor(readonly userId: string) {}
}
class OrderPlaced {
  constructor(readonly orderId: string, readonly total: number) {}
}

Deno.test("@On accepts methods whose parameter is the event type or wider", async () => {
  class Handlers {
    seen: string[] = [];
    @On(UserRegistered)
    exact(event: UserRegistered): void {
      this.seen.push(event.userId);
    }
    @On(UserRegistered)
    wider(_event: object): void {
      this.seen.push("wider");
    }
    @On(UserRegistered)
    none(): void {
      this.seen.push("none");
    }
    @On(UserRegistered)
    async asyncOne(_event: UserRegistered): Promise<number> {
      this.seen.push("async");
      return await Promise.resolve(1);
    }
  }
  const bus = new EventBus();
  const h = new Handlers();
  bus.subscribe(h);
  await bus.publish(new UserRegistered("u1"));
  assert.deepEqual(h.seen, ["u1", "wider", "none", "async"]);
});

Deno.test("@On rejects, at compile time, methods that take another event type", () => {
  class Wrong {
    // @ts-expect-error: OrderPlaced is not a UserRegistered
    @On(UserRegistered)
    handle(_event: OrderPlaced): void {}

    // @ts-expect-error: a string is not a UserRegistered
    @On(UserRegistered)
    static byName(_event: string): void {}
  }
  assert.ok(Wrong);
});

Deno.test("register() types the handler's parameter from the event class", () => {
  const bus = new EventBus();
  bus.register(UserRegistered, (e) => {
    const id: string = e.userId;
    assert.equal(typeof id, "string");
  });
  // @ts-expect-error: the handler takes an OrderPlaced, not a UserRegistered
  bus.register(UserRegistered, (_e: OrderPlaced) => {});
  // @ts-expect-error: userId does not exist on OrderPlaced
  bus.register(OrderPlaced, (e) => e.userId);
  assert.equal(bus.handlersFor(UserRegistered).length, 2);
});

Deno.test("publish() and On() accept only objects and classes at compile time", () => {
  const bus = new EventBus();
  // @ts-expect-error: a string is not an event
  const rejected = bus.publish("UserRegistered").catch(() => "rejected");
  // @ts-expect-error: a string is not an event class
  assert.throws(() => On("UserRegistered"), TypeError);
  return rejected.then((r) => assert.equal(r, "rejected"));
});

Deno.test("handlers may take the context as their second parameter, typed", async () => {
  class Handlers {
    signals: AbortSignal[] = [];
    @On(UserRegistered)
    withContext(_event: UserRegistered, context: HandlerContext): void {
      this.signals.push(context.signal);
    }
    @On(UserRegistered)
    destructured(_event: UserRegistered, { signal }: HandlerContext): void {
      this.signals.push(signal);
    }
    @OnAny()
    any(_event: object, { signal }: HandlerContext): void {
      this.signals.push(signal);
    }
  }
  const bus = new EventBus();
  const h = new Handlers();
  bus.subscribe(h);
  bus.register(UserRegistered, (_e, { signal }) => {
    const aborted: boolean = signal.aborted;
    assert.equal(aborted, false);
  });
  bus.onAny((event, context) => {
    const e: object = event;
    const s: AbortSignal = context.signal;
    assert.ok(e && s);
  });
  await bus.publish(new UserRegistered("u1"));
  assert.equal(h.signals.length, 3);
});

Deno.test("@On rejects, at compile time, a second parameter that is not a HandlerContext", () => {
  class Wrong {
    // @ts-expect-error: the second argument is a HandlerContext, not a string
    @On(UserRegistered)
    handle(_event: UserRegistered, _name: string): void {}
  }
  assert.ok(Wrong);
});

Deno.test("@On(Base, { subclasses: true }) takes methods whose parameter accepts the base class", () => {
  class Base {
    constructor(readonly id: string) {}
  }
  interface Child extends Base {
    readonly extra: number;
  }
  class Handlers {
    @On(Base, { subclasses: true })
    base(_e: Base): void {}
    // @ts-expect-error: a Base is not always a Child
    @On(Base, { subclasses: true })
    child(_e: Child): void {}
  }
  assert.ok(Handlers);
  const bus = new EventBus();
  // @ts-expect-error: not an option of register
  bus.register(Base, () => {}, { subclass: true });
  assert.throws(
    // @ts-expect-error: onAny takes no subclasses option
    () => bus.onAny(() => {}, { subclasses: true }),
    TypeError,
  );
  assert.equal(bus.handlersFor(Base).length, 1);
});
