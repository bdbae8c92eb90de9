import assert from "node:assert/strict";
import { DomainEvent, EventBus, On, OnAny } from "../../../mod.ts";
import { captureLogs, recordText } from "../../_helpers/logs.ts";

class UserRegistered extends DomainEvent {
  constructor(readonly email: string, readonly name: string) {
    super();
  }
}

const EMAIL = "ada.lovelace@example.org";
const NAME = "Ada Secret-Name";

Deno.test("the bus logs registration, handling and failure with the event type and handler name", async () => {
  const boom = new Error("mailer down");
  const { records } = await captureLogs(async (records) => {
    const bus = new EventBus();
    class Welcome {
      @On(UserRegistered)
      send(_e: UserRegistered): void {
        throw boom;
      }
    }
    bus.register(UserRegistered, function audit() {});
    bus.subscribe(new Welcome());
    const seenBeforeRejection: number[] = [];
    await assert.rejects(
      bus.publish(new UserRegistered(EMAIL, NAME)).catch((e) => {
        // The failure is logged before the caller sees the error.
        seenBeforeRejection.push(
          records.filter((r) => r.level === "error").length,
        );
        throw e;
      }),
      (e) => e === boom,
    );
    assert.deepEqual(seenBeforeRejection, [1]);
  });

  for (const record of records) {
    assert.deepEqual(record.category, ["aftercommit", "bus"]);
  }
  const registered = records.filter((r) =>
    r.level === "debug" && String(r.rawMessage).startsWith("Registered")
  );
  assert.deepEqual(
    registered.map((r) => [r.properties.eventType, r.properties.handler]),
    [["UserRegistered", "audit"], ["UserRegistered", "Welcome.send"]],
  );
  const handling = records.filter((r) =>
    r.level === "debug" && String(r.rawMessage).startsWith("Handling")
  );
  assert.deepEqual(handling.map((r) => r.properties.handler), [
    "audit",
    "Welcome.send",
  ]);
  const errors = records.filter((r) => r.level === "error");
  assert.equal(errors.length, 1);
  assert.equal(errors[0]!.properties.eventType, "UserRegistered");
  assert.equal(errors[0]!.properties.handler, "Welcome.send");
  const logged = errors[0]!.properties.error as Error;
  assert.ok(logged instanceof Error);
  assert.equal(logged.name, boom.name);
  assert.equal(logged.message, boom.message);
  assert.equal(logged.stack, boom.stack);
});

Deno.test("no log record contains an event's field values", async () => {
  const { records } = await captureLogs(async () => {
    for (const errorPolicy of ["fail-fast", "collect"] as const) {
      const bus = new EventBus({ errorPolicy });
      bus.register(UserRegistered, () => {});
      bus.register(UserRegistered, () => {
        throw new Error("handler failed");
      });
      const event = new UserRegistered(EMAIL, NAME);
      await bus.publishAll([event]).catch(() => {});
      await bus.publish(event).catch(() => {});
    }
  });
  assert.ok(records.length >= 8, `expected records, got ${records.length}`);
  const event = new UserRegistered(EMAIL, NAME);
  for (const record of records) {
    const text = recordText(record);
    for (const value of [EMAIL, NAME, "ada.lovelace", "Secret-Name"]) {
      assert.ok(!text.includes(value), `record leaks "${value}": ${text}`);
    }
    assert.ok(!text.includes(event.eventId));
  }
});

Deno.test("an object whose constructor field is data reaches the catch-alls, and no record names that data as its type", async () => {
  const seen: unknown[] = [];
  const { records } = await captureLogs(async () => {
    const bus = new EventBus();
    bus.onAny((event) => {
      seen.push(event);
      throw new Error("audit failed");
    }, { name: "audit" });
    const events = [
      { constructor: { name: NAME } },
      { constructor: EMAIL },
      Object.create(null),
    ];
    for (const event of events) await bus.publish(event).catch(() => {});
  });
  assert.equal(seen.length, 3);
  const failures = records.filter((r) => r.level === "error");
  assert.deepEqual(
    failures.map((r) => [r.properties.eventType, r.properties.handler]),
    Array(3).fill(["(anonymous)", "audit"]),
  );
  for (const record of records) {
    const text = recordText(record);
    for (const value of [EMAIL, NAME]) {
      assert.ok(!text.includes(value), `record leaks "${value}": ${text}`);
    }
  }
});

Deno.test("with an @OnAny instance never subscribed, objects whose constructor field is data get one warning, which names no data", async () => {
  class Audit {
    @OnAny()
    all(_event: object): void {}
  }
  new Audit(); // never subscribed
  const { records } = await captureLogs(async () => {
    const bus = new EventBus();
    for (const value of [NAME, EMAIL, "x"]) {
      await bus.publish({ constructor: { name: value } });
    }
  });
  const warnings = records.filter((r) => r.level === "warning");
  assert.deepEqual(warnings.map((r) => r.message.join("")), [
    "No handler for (anonymous) on this bus, but Audit has @On instance methods for it and no instance was ever subscribed; call bus.subscribe(instance)",
  ]);
  for (const record of records) {
    const text = recordText(record);
    for (const value of [EMAIL, NAME]) {
      assert.ok(!text.includes(value), `record leaks "${value}": ${text}`);
    }
  }
});

Deno.test("a failing handler's error is logged without the fields a driver error carries", async () => {
  // postgres.js puts the failing row's values in `detail` and the query's in
  // `parameters`; a log formatter would print them.
  const driverError = Object.assign(
    new Error(
      'duplicate key value violates unique constraint "users_email_key"',
    ),
    {
      name: "PostgresError",
      detail: `Key (email)=(${EMAIL}) already exists.`,
      parameters: [EMAIL, NAME],
      cause: Object.assign(new Error("inner"), { detail: EMAIL }),
    },
  );
  const { records } = await captureLogs(async () => {
    const bus = new EventBus();
    bus.register(UserRegistered, () => {
      throw driverError;
    });
    await assert.rejects(
      bus.publish(new UserRegistered(EMAIL, NAME)),
      // The caller still gets the original error, every field included.
      (e) => e === driverError,
    );
  });
  const failures = records.filter((r) => r.level === "error");
  assert.equal(failures.length, 1);
  const logged = failures[0]!.properties.error as Error;
  assert.equal(logged.name, "PostgresError");
  assert.match(logged.message, /duplicate key value/);
  assert.equal((logged.cause as Error).message, "inner");
  for (const record of records) {
    const text = recordText(record) +
      Deno.inspect(record.properties, { depth: 10 });
    assert.ok(!text.includes(EMAIL), `record leaks the email: ${text}`);
    assert.ok(!text.includes(NAME), `record leaks the name: ${text}`);
  }
});

Deno.test("a thrown non-Error is logged by its type, not its value", async () => {
  const { records } = await captureLogs(async () => {
    const bus = new EventBus();
    bus.register(UserRegistered, () => {
      throw `could not mail ${EMAIL}`;
    });
    await assert.rejects(bus.publish(new UserRegistered(EMAIL, NAME)));
  });
  const logged = records.find((r) => r.level === "error")!.properties
    .error as Error;
  assert.equal(logged.name, "NonError");
  assert.match(logged.message, /non-Error value was thrown \(string\)/);
  assert.ok(
    !recordText(records.find((r) => r.level === "error")!).includes(EMAIL),
  );
});

Deno.test("without debug enabled the bus emits no debug records", async () => {
  const records: unknown[] = [];
  const { configure, reset } = await import("@logtape/logtape");
  await configure({
    reset: true,
    sinks: { capture: (r) => records.push(r) },
    loggers: [
      { category: ["aftercommit"], lowestLevel: "error", sinks: ["capture"] },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: [] },
    ],
  });
  try {
    const bus = new EventBus();
    bus.register(UserRegistered, () => {});
    await bus.publish(new UserRegistered(EMAIL, NAME));
    assert.equal(records.length, 0);
  } finally {
    await reset();
  }
});
