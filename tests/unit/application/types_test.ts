// Type-level tests: `deno check` and `deno test` type-check this file, so
// every `@ts-expect-error` below must be a real compile error, or the check
// fails with "Unused '@ts-expect-error' directive".
import assert from "node:assert/strict";
import { EventBus, On } from "../../../mod.ts";

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
