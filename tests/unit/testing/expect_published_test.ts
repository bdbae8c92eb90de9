import assert from "node:assert/strict";
import { AssertionError } from "node:assert";
import { EventBus } from "../../../mod.ts";
import {
  expectNotPublished,
  expectPublished,
  recordEvents,
} from "../../../src/testing/mod.ts";

class UserRegistered {
  constructor(
    readonly userId: string,
    readonly profile: { name: string; tags: string[] },
  ) {}
}
class VipRegistered extends UserRegistered {}
class OrderPlaced {
  constructor(readonly orderId: string) {}
}

const ada = new UserRegistered("u1", { name: "Ada", tags: ["a"] });
const bob = new UserRegistered("u2", { name: "Bob", tags: [] });
const vip = new VipRegistered("u3", { name: "Vi", tags: [] });
const order = new OrderPlaced("o1");

Deno.test("expectPublished() returns the matching events: by class, by fields (deep), by predicate", async (t) => {
  const bus = new EventBus();
  using recorder = recordEvents(bus);
  await bus.publishAll([ada, order, bob, vip]);

  await t.step("by class (exact by default)", () => {
    assert.deepEqual(expectPublished(recorder, UserRegistered), [ada, bob]);
  });
  await t.step("by fields, compared deeply", () => {
    assert.deepEqual(
      expectPublished(recorder, UserRegistered, {
        profile: { name: "Ada", tags: ["a"] },
      }),
      [ada],
    );
  });
  await t.step("by predicate", () => {
    assert.deepEqual(
      expectPublished(
        recorder,
        UserRegistered,
        (e) => e.profile.tags.length === 0,
      ),
      [bob],
    );
  });
  await t.step("with subclasses", () => {
    assert.deepEqual(
      expectPublished(recorder, UserRegistered, undefined, {
        subclasses: true,
      }),
      [ada, bob, vip],
    );
  });
  await t.step("an exact count", () => {
    expectPublished(recorder, UserRegistered, undefined, { count: 2 });
    expectPublished(recorder, VipRegistered, { userId: "u3" }, { count: 1 });
  });
  await t.step("a plain array works too", () => {
    assert.deepEqual(expectPublished([order, ada], OrderPlaced), [order]);
  });
});

Deno.test("expectPublished() fails with an AssertionError saying what was published instead", async (t) => {
  await t.step("nothing published", () => {
    assert.throws(() => expectPublished([], UserRegistered), {
      name: "AssertionError",
      message:
        "Expected a UserRegistered to be published: nothing was published",
    });
  });
  await t.step("other types only", () => {
    assert.throws(() => expectPublished([order, order, vip], UserRegistered), {
      message:
        "Expected a UserRegistered to be published: none was; published: OrderPlaced × 2, VipRegistered × 1",
    });
  });
  await t.step("a null among them: an AssertionError, not a crash", () => {
    assert.throws(
      () => expectPublished([null as unknown as object, order], UserRegistered),
      {
        name: "AssertionError",
        message:
          "Expected a UserRegistered to be published: none was; published: (anonymous) × 1, OrderPlaced × 1",
      },
    );
  });
  await t.step("the type, but no match", () => {
    assert.throws(
      () => expectPublished([ada, bob], UserRegistered, { userId: "u9" }),
      {
        message:
          "Expected a UserRegistered matching { userId: 'u9' } to be published: 2 UserRegistered published, none matching",
      },
    );
    assert.throws(
      () => expectPublished([ada], UserRegistered, () => false),
      /Expected a UserRegistered matching the predicate to be published/,
    );
  });
  await t.step("the wrong count", () => {
    const error = (() => {
      try {
        expectPublished([ada, bob], UserRegistered, undefined, { count: 1 });
      } catch (e) {
        return e;
      }
    })();
    assert.ok(error instanceof AssertionError);
    assert.equal(
      error.message,
      "Expected 1 × UserRegistered to be published: 2 UserRegistered published",
    );
    assert.equal(error.actual, 2);
    assert.equal(error.expected, 1);
  });
});

Deno.test("expectNotPublished() passes when nothing matches, fails with the count otherwise", () => {
  expectNotPublished([order], UserRegistered);
  expectNotPublished([ada], UserRegistered, { userId: "u2" });
  expectNotPublished([vip], UserRegistered);
  assert.throws(
    () =>
      expectNotPublished([vip], UserRegistered, undefined, {
        subclasses: true,
      }),
    {
      name: "AssertionError",
      message: "Expected no UserRegistered to be published: 1 found",
    },
  );
  assert.throws(
    () => expectNotPublished([ada, bob], UserRegistered, { userId: "u1" }),
    {
      message:
        "Expected no UserRegistered matching { userId: 'u1' } to be published: 1 found",
    },
  );
});

Deno.test("expectPublished() rejects bad arguments with a TypeError or RangeError", async (t) => {
  await t.step("published is not iterable", () => {
    for (const value of [null, undefined, 42, ada]) {
      assert.throws(() => expectPublished(value as never, UserRegistered), {
        name: "TypeError",
        message:
          /Cannot expectPublished: expected the published events \(an EventRecorder or an array\)/,
      });
    }
  });
  await t.step("type is not a class", () => {
    assert.throws(() => expectNotPublished([], "UserRegistered" as never), {
      name: "TypeError",
      message:
        /Cannot expectNotPublished: expected an event class, received a string; pass the class itself/,
    });
  });
  await t.step("match is neither fields nor a predicate", () => {
    assert.throws(() => expectPublished([ada], UserRegistered, "u1" as never), {
      name: "TypeError",
      message:
        /expected the fields to match \(an object\) or a predicate, received a string/,
    });
  });
  await t.step("count", () => {
    // A number of the wrong value is a RangeError, another type a TypeError.
    for (const count of ["1", 1.5, NaN]) {
      assert.throws(
        () =>
          expectPublished([ada], UserRegistered, undefined, {
            count: count as never,
          }),
        {
          name: typeof count === "number" ? "RangeError" : "TypeError",
          message:
            /Cannot expectPublished: options\.count must be an integer, received/,
        },
      );
    }
    assert.throws(
      () => expectPublished([ada], UserRegistered, undefined, { count: -1 }),
      {
        name: "RangeError",
        message: /options\.count must be at least 0, received -1/,
      },
    );
  });
  await t.step("subclasses", () => {
    assert.throws(
      () =>
        expectPublished([ada], UserRegistered, undefined, {
          subclasses: 1 as never,
        }),
      {
        name: "TypeError",
        message: /options\.subclasses must be a boolean, received a number/,
      },
    );
  });
});
