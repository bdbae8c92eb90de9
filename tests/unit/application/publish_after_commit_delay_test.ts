// publishAfterCommit(event, { delaySeconds | at }): every misuse is a
// TypeError or RangeError that says what to do, at the call.
import assert from "node:assert/strict";
import { EventBus, type EventDelay } from "../../../mod.ts";
import { NoTransaction } from "../../_helpers/no_transaction.ts";

class Pinged {}

// A unit of work without a database that accepts delays (as an outbox
// does) and reports what beforeCommit was given.
class Recording extends NoTransaction {
  delays: readonly (EventDelay | undefined)[] | undefined = [];
  constructor(readonly accepts: boolean, bus: EventBus) {
    super({ bus });
  }
  protected override get acceptsDelayedEvents(): boolean {
    return this.accepts;
  }
  protected override beforeCommit(
    _handle: null,
    _events: readonly object[],
    delays?: readonly (EventDelay | undefined)[],
  ): void {
    this.delays = delays;
  }
}

function thrown(accepts: boolean, options: unknown): unknown {
  const uow = new Recording(accepts, new EventBus());
  let error: unknown;
  return uow.run((tx) => {
    try {
      // deno-lint-ignore no-explicit-any
      tx.publishAfterCommit(new Pinged(), options as any);
    } catch (e) {
      error = e;
    }
  }).then(() => error);
}

Deno.test("publishAfterCommit() rejects bad delays with what to do", async (t) => {
  const cases: [string, unknown, ErrorConstructor, RegExp][] = [
    [
      "a negative delay",
      { delaySeconds: -1 },
      RangeError,
      /options\.delaySeconds must be 0 or more seconds, received -1; a delay cannot point into the past/,
    ],
    [
      "NaN",
      { delaySeconds: NaN },
      RangeError,
      /options\.delaySeconds must be a finite number of seconds, received NaN/,
    ],
    [
      "Infinity",
      { delaySeconds: Infinity },
      RangeError,
      /must be a finite number of seconds, received Infinity/,
    ],
    [
      "a delay in milliseconds by mistake (over 100 years)",
      { delaySeconds: 1e13 },
      RangeError,
      /options\.delaySeconds must be at most 3155760000 seconds \(100 years\), received 10000000000000; give the delay in seconds, not milliseconds/,
    ],
    [
      "a Date after the year 9999",
      { at: new Date(Date.UTC(10000, 0, 1)) },
      RangeError,
      /options\.at is after the year 9999, which the database cannot store/,
    ],
    [
      "a string",
      { delaySeconds: "60" },
      TypeError,
      /options\.delaySeconds must be a number of seconds, received a string; pass a delay such as 60/,
    ],
    [
      "an invalid Date",
      { at: new Date("nope") },
      RangeError,
      /options\.at is an invalid Date; build it from a valid time/,
    ],
    [
      "a Date in the past",
      { at: new Date(Date.now() - 60_000) },
      RangeError,
      /options\.at is in the past \(.+, 6\d\.\d{3} s ago\); pass a moment that has not come yet/,
    ],
    [
      "a timestamp instead of a Date",
      { at: Date.now() + 1000 },
      TypeError,
      /options\.at must be a Date, received a number/,
    ],
    [
      "both delaySeconds and at",
      { delaySeconds: 1, at: new Date(Date.now() + 1000) },
      TypeError,
      /pass options\.delaySeconds or options\.at, not both/,
    ],
    [
      "options that are not an object",
      60,
      TypeError,
      /options must be an object such as \{ delaySeconds: 60 \}/,
    ],
  ];
  for (const [what, options, type, message] of cases) {
    await t.step(what, async () => {
      for (const accepts of [true, false]) {
        const error = await thrown(accepts, options);
        assert.ok(error instanceof type, `${what}: ${error}`);
        assert.match((error as Error).message, message);
      }
    });
  }
});

Deno.test("publishAfterCommit() with a delay needs a unit of work that accepts it", async () => {
  const error = await thrown(false, { delaySeconds: 5 });
  assert.ok(error instanceof TypeError);
  assert.match(
    (error as Error).message,
    /^Cannot publish after commit with a delay: this unit of work has no outbox to hold the event until its time; use outbox mode/,
  );
  assert.equal(await thrown(false, { delaySeconds: 0 }), undefined);
  assert.equal(await thrown(false, {}), undefined);
});

Deno.test("beforeCommit() gets each event's delay, parallel to the events", async () => {
  const bus = new EventBus();
  const published: object[] = [];
  bus.register(Pinged, (e) => {
    published.push(e);
  });
  const uow = new Recording(true, bus);
  const at = new Date(Date.now() + 60_000);
  await uow.run((tx) => {
    tx.publishAfterCommit(new Pinged());
    tx.publishAfterCommit(new Pinged(), { delaySeconds: 2 });
    tx.publishAfterCommit(new Pinged(), { at });
    tx.publishAfterCommit(new Pinged(), { delaySeconds: 0 });
  });
  assert.deepEqual(uow.delays, [
    undefined,
    { delaySeconds: 2 },
    { at },
    undefined,
  ]);
  await uow.run((tx) => {
    tx.publishAfterCommit(new Pinged());
  });
  assert.equal(uow.delays, undefined, "undefined when no event has a delay");
});
