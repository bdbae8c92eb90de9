import assert from "node:assert/strict";
import { defaultBus, EventBus, publish } from "../../../mod.ts";
import { EventRecorder, recordEvents } from "../../../src/testing/mod.ts";

class UserRegistered {
  constructor(readonly userId: string) {}
}
class OrderPlaced {
  constructor(readonly orderId: string) {}
}

Deno.test("EventRecorder records every event published on its bus, in order, with or without handlers", async () => {
  const bus = new EventBus();
  bus.register(UserRegistered, () => {});
  using recorder = new EventRecorder(bus);
  const events = [
    new UserRegistered("u1"),
    new OrderPlaced("o1"),
    new UserRegistered("u2"),
  ];
  await bus.publish(events[0]!);
  await bus.publishAll(events.slice(1));
  assert.deepEqual(recorder.events, events);
  assert.equal(recorder.events[0], events[0]);
  assert.deepEqual(recorder.ofType(UserRegistered).map((e) => e.userId), [
    "u1",
    "u2",
  ]);
  assert.deepEqual([...recorder], events);
});

Deno.test("EventRecorder records an event whose handler fails: it runs before every other handler", async () => {
  const bus = new EventBus();
  const boom = new Error("boom");
  bus.register(UserRegistered, () => {
    throw boom;
  }, { order: -1_000_000 });
  using recorder = recordEvents(bus);
  await assert.rejects(
    bus.publish(new UserRegistered("u1")),
    (e) => e === boom,
  );
  assert.equal(recorder.ofType(UserRegistered).length, 1);
});

Deno.test("EventRecorder: clear(), stop() and using", async () => {
  const bus = new EventBus();
  const recorder = recordEvents(bus);
  await bus.publish(new UserRegistered("u1"));
  recorder.clear();
  assert.deepEqual(recorder.events, []);
  await bus.publish(new UserRegistered("u2"));
  assert.equal(recorder.recording, true);
  recorder.stop();
  assert.equal(recorder.recording, false);
  await bus.publish(new UserRegistered("u3"));
  assert.deepEqual(recorder.events, [new UserRegistered("u2")]);
  assert.equal(bus.handlersFor(UserRegistered).length, 0);
  {
    using scoped = recordEvents(bus);
    assert.equal(bus.handlersFor(UserRegistered).length, 1);
    assert.equal(scoped.recording, true);
  }
  assert.equal(bus.handlersFor(UserRegistered).length, 0);
});

Deno.test("recordEvents() listens to defaultBus by default", async () => {
  using recorder = recordEvents();
  await publish(new OrderPlaced("o1"));
  assert.deepEqual(recorder.events, [new OrderPlaced("o1")]);
  recorder.stop();
  assert.equal(defaultBus.handlersFor(OrderPlaced).length, 0);
});

Deno.test("new EventRecorder() rejects what is not a bus", () => {
  for (
    const [value, what] of [[null, "null"], [{}, "a plain object"], [
      "bus",
      "a string",
    ]] as const
  ) {
    assert.throws(() => new EventRecorder(value as never), {
      name: "TypeError",
      message: new RegExp(
        `Cannot record events: expected an EventBus, received ${what}; pass the bus your code publishes on`,
      ),
    });
  }
});
