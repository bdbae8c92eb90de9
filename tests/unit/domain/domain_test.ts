import assert from "node:assert/strict";
import { AggregateRoot, DomainEvent } from "../../../mod.ts";

class UserRegistered extends DomainEvent {
  constructor(
    readonly userId: string,
    init?: { eventId?: string; occurredAt?: Date },
  ) {
    super(init);
  }
}

class User extends AggregateRoot {
  constructor(readonly id: string) {
    super();
  }
  register(): void {
    this.recordEvent(new UserRegistered(this.id));
  }
  recordRaw(value: unknown): void {
    this.recordEvent(value as object);
  }
}

Deno.test("DomainEvent gives each event a unique id and a timestamp", () => {
  const before = Date.now();
  const a = new UserRegistered("u1");
  const b = new UserRegistered("u1");
  assert.match(a.eventId, /^[0-9a-f-]{36}$/);
  assert.notEqual(a.eventId, b.eventId);
  assert.ok(
    a.occurredAt.getTime() >= before && a.occurredAt.getTime() <= Date.now(),
  );
});

Deno.test("DomainEvent keeps a given id and time, for events rebuilt from storage", async (t) => {
  const at = new Date("2026-01-02T03:04:05Z");
  const e = new UserRegistered("u1", { eventId: "evt-1", occurredAt: at });
  assert.equal(e.eventId, "evt-1");
  assert.equal(e.occurredAt, at);
  await t.step("an empty id is rejected", () => {
    assert.throws(() => new UserRegistered("u1", { eventId: "" }), {
      name: "TypeError",
      message: /eventId must be a non-empty string/,
    });
  });
  await t.step("an invalid date is rejected", () => {
    assert.throws(
      () => new UserRegistered("u1", { occurredAt: new Date("nope") }),
      {
        name: "TypeError",
        message: /occurredAt must be a valid Date/,
      },
    );
  });
});

Deno.test("AggregateRoot hands its events over once, oldest first", () => {
  const user = new User("u1");
  user.register();
  user.register();
  assert.equal(user.peekEvents().length, 2);
  const events = user.pullEvents();
  assert.equal(events.length, 2);
  assert.ok(events.every((e) => e instanceof UserRegistered));
  assert.ok(
    (events[0] as UserRegistered).occurredAt <=
      (events[1] as UserRegistered).occurredAt,
  );
  assert.deepEqual(user.pullEvents(), []);
  assert.deepEqual(user.peekEvents(), []);
});

Deno.test("AggregateRoot rejects recording a non-object", () => {
  const user = new User("u1");
  for (const value of [null, undefined, "UserRegistered", 1]) {
    assert.throws(() => user.recordRaw(value), {
      name: "TypeError",
      message: /Cannot record event: expected an object/,
    });
  }
  assert.deepEqual(user.pullEvents(), []);
});
