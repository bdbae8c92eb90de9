import assert from "node:assert/strict";
import {
  defaultEventRegistry,
  DomainEvent,
  EventBus,
  EventRegistry,
  EventType,
  On,
  UnknownEventTypeError,
} from "../../../../mod.ts";

class UserRegistered extends DomainEvent {
  constructor(
    readonly userId: string,
    readonly profile: { name: string; birthday: Date; tags: string[] },
  ) {
    super();
  }
  greeting(): string {
    return `Welcome, ${this.profile.name}`;
  }
}

function registryWith(): EventRegistry {
  const registry = new EventRegistry();
  registry.register("user.registered", UserRegistered);
  return registry;
}

function roundTrip<E extends object>(registry: EventRegistry, event: E): E {
  const stored = registry.serialize(event);
  return registry.deserialize(stored.type, stored.payload) as E;
}

Deno.test("serialize() then deserialize() rebuilds an instance of the same class with the same id, time and fields", () => {
  const registry = registryWith();
  const event = new UserRegistered("u1", {
    name: "Ada",
    birthday: new Date("1815-12-10T00:00:00Z"),
    tags: ["a", "b"],
  });
  const stored = registry.serialize(event);
  assert.equal(stored.type, "user.registered");
  assert.equal(stored.eventId, event.eventId);
  const copy = registry.deserialize(stored.type, stored.payload);
  assert.ok(copy instanceof UserRegistered);
  assert.equal(copy.constructor, UserRegistered);
  assert.notEqual(copy, event);
  assert.deepEqual(copy, event);
  assert.ok(copy.occurredAt instanceof Date);
  assert.equal(copy.occurredAt.getTime(), event.occurredAt.getTime());
  assert.ok(copy.profile.birthday instanceof Date);
  assert.equal(copy.greeting(), "Welcome, Ada");
});

Deno.test("a rebuilt event reaches the same @On handlers as the original", async () => {
  const registry = registryWith();
  const seen: string[] = [];
  class Welcome {
    @On(UserRegistered)
    onRegistered(event: UserRegistered): void {
      seen.push(`${event.constructor.name}:${event.userId}`);
    }
  }
  const bus = new EventBus();
  bus.subscribe(new Welcome());
  const event = new UserRegistered("u1", {
    name: "Ada",
    birthday: new Date(0),
    tags: [],
  });
  await bus.publish(roundTrip(registry, event));
  assert.deepEqual(seen, ["UserRegistered:u1"]);
});

Deno.test("the type name survives renaming the class, and aliases read former names", () => {
  const stored = registryWith().serialize(
    new UserRegistered("u1", { name: "A", birthday: new Date(0), tags: [] }),
  );
  class AccountOpened extends DomainEvent {}
  const renamed = new EventRegistry();
  renamed.register("account.opened", AccountOpened, {
    aliases: ["user.registered"],
  });
  const copy = renamed.deserialize(stored.type, stored.payload);
  assert.ok(copy instanceof AccountOpened);
  assert.equal((copy as AccountOpened).eventId, stored.eventId);
  assert.equal(renamed.nameOf(AccountOpened), "account.opened");
  assert.equal(renamed.serialize(new AccountOpened()).type, "account.opened");
});

Deno.test("@EventType registers the class in defaultEventRegistry when it is defined", () => {
  @EventType("test.registry.decorated", { aliases: ["test.registry.old"] })
  class Decorated extends DomainEvent {}
  assert.equal(
    defaultEventRegistry.nameOf(Decorated),
    "test.registry.decorated",
  );
  assert.equal(defaultEventRegistry.classOf("test.registry.old"), Decorated);
});

Deno.test("@EventType refuses a bad name at once and a non-class target at definition", () => {
  assert.throws(() => EventType(""), /expected a type name/);
  assert.throws(() => EventType("has space"), /expected a type name/);
  assert.throws(
    () => EventType(42 as unknown as string),
    /received a number/,
  );
  const decorator = EventType("test.registry.method") as unknown as (
    value: unknown,
    context: unknown,
  ) => void;
  assert.throws(
    () => decorator(() => {}, { kind: "method", name: "m" }),
    /cannot decorate method m: it applies to event classes only/,
  );
  assert.throws(() => decorator(class {}, undefined), /legacy decorator/);
});

Deno.test("Dates anywhere in the fields survive, and data shaped like a tag stays data", () => {
  class Scheduled extends DomainEvent {
    constructor(
      readonly at: Date[],
      readonly raw: { $date: string },
      readonly nested: { $literal: { x: number } },
      readonly nothing: null,
    ) {
      super();
    }
  }
  const registry = new EventRegistry();
  registry.register("scheduled", Scheduled);
  const event = new Scheduled(
    [
      new Date("2024-01-01T00:00:00.000Z"),
      new Date("2024-02-01T10:00:00.123Z"),
    ],
    { $date: "not a date, just data" },
    { $literal: { x: 1 } },
    null,
  );
  const copy = roundTrip(registry, event);
  assert.deepEqual(copy, event);
  assert.ok(copy.at.every((d) => d instanceof Date));
  assert.equal(typeof copy.raw.$date, "string");
});

Deno.test("a class with toJSON() and static fromJSON() controls its own form", () => {
  class Moved {
    readonly eventId: string = crypto.randomUUID();
    #to: string;
    constructor(to: string, eventId?: string) {
      this.#to = to;
      if (eventId) this.eventId = eventId;
    }
    get to(): string {
      return this.#to;
    }
    toJSON() {
      return { to: this.#to, eventId: this.eventId };
    }
    static fromJSON(data: { to: string; eventId: string }): Moved {
      return new Moved(data.to, data.eventId);
    }
  }
  const registry = new EventRegistry();
  registry.register("moved", Moved);
  const event = new Moved("Paris");
  const copy = roundTrip(registry, event);
  assert.ok(copy instanceof Moved);
  assert.equal(copy.to, "Paris");
  assert.equal(copy.eventId, event.eventId);

  class Liar {
    readonly eventId = "e1";
    static fromJSON(): object {
      return {};
    }
  }
  registry.register("liar", Liar);
  const stored = registry.serialize(new Liar());
  assert.throws(
    () => registry.deserialize(stored.type, stored.payload),
    /Liar\.fromJSON returned a plain object, expected an instance of Liar/,
  );
});

Deno.test("serialize() refuses what JSON would change, naming the field and never the value", () => {
  class Bag extends DomainEvent {
    constructor(readonly value: unknown) {
      super();
    }
  }
  const registry = new EventRegistry();
  registry.register("bag", Bag);
  const cyclic: Record<string, unknown> = {};
  cyclic.self = cyclic;
  const cases: [unknown, RegExp][] = [
    [new Map([["secret", 1]]), /Bag\.value holds an instance of Map/],
    [new Set(["secret"]), /Bag\.value holds an instance of Set/],
    [{ deep: [1, 10n] }, /Bag\.value\.deep\[1\] holds a bigint/],
    [NaN, /Bag\.value is NaN/],
    [Infinity, /Bag\.value is Infinity/],
    [() => "secret", /Bag\.value holds function/],
    [new Date("nope"), /Bag\.value is an invalid Date/],
    [cyclic, /Bag\.value\.self refers back/],
    [
      new (class Email {
        constructor(readonly address = "secret@example.com") {}
      })(),
      /Bag\.value holds an instance of Email/,
    ],
  ];
  for (const [value, pattern] of cases) {
    const error = (() => {
      try {
        registry.serialize(new Bag(value));
      } catch (e) {
        return e;
      }
    })();
    assert.ok(error instanceof TypeError, `${pattern}: got ${error}`);
    assert.match(error.message, pattern);
    assert.ok(!error.message.includes("secret"), error.message);
  }
  // undefined fields are left out, as JSON.stringify does.
  const copy = roundTrip(registry, new Bag({ a: undefined, b: 1 }));
  assert.deepEqual(copy.value, { b: 1 });
});

Deno.test("serialize() needs a registered class and an eventId", () => {
  const registry = registryWith();
  class Unknown extends DomainEvent {}
  assert.throws(
    () => registry.serialize(new Unknown()),
    /Cannot serialize event Unknown: its class has no registered type name; decorate it with @EventType/,
  );
  class NoId {}
  registry.register("no-id", NoId);
  assert.throws(
    () => registry.serialize(new NoId()),
    /Cannot serialize event NoId: it has no eventId/,
  );
  assert.throws(
    () => registry.serialize(null as unknown as object),
    /expected an event object, received null/,
  );
});

Deno.test("the rebuilt event keeps its eventId, or serialize() or deserialize(…, eventId) says why not", () => {
  const registry = new EventRegistry();
  // toJSON() for HTTP that drops the id, and no fromJSON: refused at once.
  class Shown extends DomainEvent {
    constructor(readonly userId: string) {
      super();
    }
    toJSON() {
      return { userId: this.userId };
    }
  }
  registry.register("shown", Shown);
  assert.throws(
    () => registry.serialize(new Shown("u1")),
    /^TypeError: Cannot serialize event Shown: the event rebuilt from its stored fields \(its toJSON\(\) result\) would not have its eventId; keep eventId in toJSON's result, or add a static fromJSON that restores it$/,
  );
  // An eventId a prototype getter derives from a stored field is kept.
  class Derived {
    constructor(readonly id: string) {}
    get eventId(): string {
      return this.id;
    }
  }
  registry.register("derived", Derived);
  const derived = roundTrip(registry, new Derived("e-1"));
  assert.equal(derived.eventId, "e-1");
  // fromJSON that gives each rebuild a new id: refused when rebuilt with the
  // stored id (as the outbox relay does), accepted without it.
  class Fresh extends DomainEvent {
    constructor(readonly userId: string) {
      super();
    }
    static fromJSON(data: { userId: string }): Fresh {
      return new Fresh(data.userId);
    }
  }
  registry.register("fresh", Fresh);
  const event = new Fresh("u1");
  const { type, payload, eventId } = registry.serialize(event);
  assert.throws(
    () => registry.deserialize(type, payload, eventId),
    /^TypeError: Cannot rebuild event "fresh": Fresh\.fromJSON returned an event without the stored eventId; restore it \(pass it to the constructor\), or a redelivery gets a new identity$/,
  );
  assert.ok(registry.deserialize(type, payload) instanceof Fresh);
  // A row written before serialize() checked it, rebuilt by the relay.
  assert.throws(
    () => registry.deserialize("shown", '{"userId":"u1"}', "e-2"),
    /^TypeError: Cannot rebuild event "shown": its stored fields rebuild an event without the stored eventId \(written before serialize\(\) checked it\); give the class a static fromJSON that restores it$/,
  );
  // An id a getter reads from a #private field: the rebuilt event has none.
  class Hidden {
    #id = crypto.randomUUID();
    get eventId(): string {
      return this.#id;
    }
  }
  registry.register("hidden", Hidden);
  assert.throws(
    () => registry.serialize(new Hidden()),
    /^TypeError: Cannot serialize event Hidden: the event rebuilt from its stored fields/,
  );
});

Deno.test("deserialize() reports an unknown type name and bad payloads clearly", () => {
  const registry = registryWith();
  const error = (() => {
    try {
      registry.deserialize("user.deleted", "{}");
    } catch (e) {
      return e;
    }
  })();
  assert.ok(error instanceof UnknownEventTypeError);
  assert.equal(error.typeName, "user.deleted");
  assert.match(
    error.message,
    /no event class is registered for type name "user\.deleted"/,
  );
  assert.throws(
    () => registry.deserialize("user.registered", "{not json"),
    /payload is not JSON that serialize\(\) wrote/,
  );
  assert.throws(
    () => registry.deserialize("user.registered", "[1]"),
    /expected the payload to be a JSON object of fields, received an array/,
  );
  assert.throws(
    () => registry.deserialize("user.registered", '{"a":{"$date":"nope"}}'),
    /payload is not JSON that serialize\(\) wrote/,
  );
  assert.throws(
    () => registry.deserialize("user.registered", {} as unknown as string),
    /expected the payload as JSON text/,
  );
  // A $literal tag (serialize() wraps data shaped like a tag in one) always
  // holds an object: anything else is a payload serialize() did not write.
  for (const literal of ["5", "null", '"x"']) {
    assert.throws(
      () =>
        registry.deserialize(
          "user.registered",
          `{"a":{"$literal":${literal}}}`,
        ),
      (error: Error) => {
        assert.ok(error instanceof TypeError, String(error));
        assert.match(
          error.message,
          /payload is not JSON that serialize\(\) wrote/,
        );
        assert.equal(
          (error.cause as Error).message,
          "Cannot decode event: a $literal tag holds no object",
        );
        return true;
      },
    );
  }
  // A type name that is not a string is a misuse, not an unknown type.
  for (const type of [42, null, undefined]) {
    assert.throws(
      () => registry.deserialize(type as unknown as string, "{}"),
      (error: Error) => {
        assert.ok(
          error instanceof TypeError &&
            !(error instanceof UnknownEventTypeError),
          String(error),
        );
        assert.match(
          error.message,
          /^Cannot rebuild event: expected a type name, received /,
        );
        return true;
      },
    );
  }
});

Deno.test("a payload cannot set the prototype of a rebuilt event", () => {
  const registry = registryWith();
  const copy = registry.deserialize(
    "user.registered",
    '{"__proto__":{"polluted":true},"userId":"u1"}',
  );
  assert.ok(copy instanceof UserRegistered);
  assert.equal((copy as { polluted?: boolean }).polluted, undefined);
  assert.ok(Object.hasOwn(copy, "__proto__"));
});

Deno.test("register() refuses bad input and conflicting names", () => {
  const registry = registryWith();
  class Other {}
  assert.throws(
    () => registry.register("user.registered", Other),
    /that type name belongs to UserRegistered/,
  );
  assert.throws(
    () => registry.register("user.renamed", UserRegistered),
    /already registered as "user\.registered"; give a class one type name, and former names as aliases/,
  );
  assert.throws(
    () => registry.register("x", "not a class" as never),
    /expected an event class, received a string/,
  );
  assert.throws(() => registry.register("", Other), /expected a type name/);
  assert.throws(
    () => registry.register("other", Other, { aliases: "old" as never }),
    /options\.aliases must be an array/,
  );
  assert.throws(
    () => registry.register("other", Other, { aliases: ["bad name"] }),
    /alias/,
  );
  registry.register("user.registered", UserRegistered); // the same again: no-op
  assert.equal(registry.classOf("user.registered"), UserRegistered);
  assert.equal(
    registry.classOf("other"),
    undefined,
    "a failed register changes nothing",
  );
});
