/**
 * Assertions over published events, for tests.
 *
 * @module
 */
import { AssertionError } from "node:assert";
import { inspect, isDeepStrictEqual } from "node:util";
import type { EventClass } from "../application/types.ts";
import { describe, isConstructor, typeName } from "../internal/describe.ts";

/**
 * What an event must look like: some of its fields (each compared with
 * deep strict equality), or a predicate.
 *
 * @typeParam E The event type.
 */
export type EventMatch<E extends object> =
  | { readonly [K in keyof E]?: unknown }
  | ((event: E) => boolean);

/** Options of {@linkcode expectPublished}. */
export interface ExpectPublishedOptions {
  /**
   * How many matching events there must be.
   *
   * @default {undefined (at least one)}
   */
  readonly count?: number;
  /**
   * Whether instances of subclasses of the class count too.
   *
   * @default {false}
   */
  readonly subclasses?: boolean;
}

/**
 * Asserts that events of class `type` (matching `match`, when given) were
 * published, and returns them.
 *
 * @typeParam E The event type.
 * @param published The events: an {@linkcode EventRecorder} or any iterable.
 * @param type The event class.
 * @param match Fields the events must have, or a predicate.
 * @param options `count` (exactly that many), `subclasses`.
 * @returns The matching events, in publish order.
 * @throws {AssertionError} When no event matches, or not `count` of them.
 * @throws {TypeError} When an argument has the wrong type.
 * @throws {RangeError} When `count` is not a non-negative integer.
 *
 * @example Assert what a handler published
 * ```ts
 * import assert from "node:assert/strict";
 * import { EventBus } from "@aftercommit/core";
 * import { expectPublished, recordEvents } from "@aftercommit/core/testing";
 *
 * class UserRegistered {
 *   constructor(readonly userId: string, readonly email: string) {}
 * }
 * const bus = new EventBus();
 * using recorder = recordEvents(bus);
 * await bus.publish(new UserRegistered("u1", "ada@example.org"));
 *
 * const [event] = expectPublished(recorder, UserRegistered, { userId: "u1" });
 * assert.equal(event?.email, "ada@example.org");
 * expectPublished(recorder, UserRegistered, (e) => e.email.endsWith(".org"), {
 *   count: 1,
 * });
 * assert.throws(
 *   () => expectPublished(recorder, UserRegistered, { userId: "u2" }),
 *   /Expected a UserRegistered matching \{ userId: 'u2' \} to be published: 1 UserRegistered published, none matching/,
 * );
 * ```
 */
export function expectPublished<E extends object>(
  published: Iterable<object>,
  type: EventClass<E>,
  match?: EventMatch<E>,
  options: ExpectPublishedOptions = {},
): E[] {
  const { events, ofType, found, what } = find(
    published,
    type,
    match,
    options,
    "expectPublished",
  );
  const { count } = options;
  if (count === undefined ? found.length > 0 : found.length === count) {
    return found;
  }
  const expected = count === undefined ? `a ${what}` : `${count} × ${what}`;
  throw new AssertionError({
    message: `Expected ${expected} to be published: ${
      summary(events, ofType, found, type, match)
    }`,
    actual: found.length,
    expected: count ?? 1,
    operator: "expectPublished",
  });
}

/**
 * Asserts that no event of class `type` (matching `match`, when given) was
 * published.
 *
 * @typeParam E The event type.
 * @param published The events: an {@linkcode EventRecorder} or any iterable.
 * @param type The event class.
 * @param match Fields the events must not have all together, or a
 * predicate.
 * @param options `subclasses`.
 * @throws {AssertionError} When an event matches.
 * @throws {TypeError} When an argument has the wrong type.
 *
 * @example Assert that a rollback published nothing
 * ```ts
 * import assert from "node:assert/strict";
 * import { EventBus } from "@aftercommit/core";
 * import { expectNotPublished, recordEvents } from "@aftercommit/core/testing";
 *
 * class UserRegistered {}
 * class OrderPlaced {}
 * const bus = new EventBus();
 * using recorder = recordEvents(bus);
 * await bus.publish(new OrderPlaced());
 * expectNotPublished(recorder, UserRegistered);
 * assert.throws(() => expectNotPublished(recorder, OrderPlaced), {
 *   message: "Expected no OrderPlaced to be published: 1 found",
 * });
 * ```
 */
export function expectNotPublished<E extends object>(
  published: Iterable<object>,
  type: EventClass<E>,
  match?: EventMatch<E>,
  options: Pick<ExpectPublishedOptions, "subclasses"> = {},
): void {
  const { found, what } = find(
    published,
    type,
    match,
    options,
    "expectNotPublished",
  );
  if (found.length === 0) return;
  throw new AssertionError({
    message: `Expected no ${what} to be published: ${found.length} found`,
    actual: found.length,
    expected: 0,
    operator: "expectNotPublished",
  });
}

function find<E extends object>(
  published: Iterable<object>,
  type: EventClass<E>,
  match: EventMatch<E> | undefined,
  options: ExpectPublishedOptions,
  fn: string,
): { events: object[]; ofType: E[]; found: E[]; what: string } {
  if (
    published === null || published === undefined ||
    typeof (published as { [Symbol.iterator]?: unknown })[Symbol.iterator] !==
      "function"
  ) {
    throw new TypeError(
      `Cannot ${fn}: expected the published events (an EventRecorder or an array), received ${
        describe(published)
      }`,
    );
  }
  if (!isConstructor(type)) {
    throw new TypeError(
      `Cannot ${fn}: expected an event class, received ${
        describe(type)
      }; pass the class itself, for example UserRegistered`,
    );
  }
  if (
    match !== undefined && typeof match !== "function" &&
    (match === null || typeof match !== "object")
  ) {
    throw new TypeError(
      `Cannot ${fn}: expected the fields to match (an object) or a predicate, received ${
        describe(match)
      }`,
    );
  }
  if (options === null || typeof options !== "object") {
    throw new TypeError(
      `Cannot ${fn}: expected an options object such as { count: 1 }, received ${
        describe(options)
      }`,
    );
  }
  const { count, subclasses = false } = options;
  if (count !== undefined) {
    if (typeof count !== "number") {
      throw new TypeError(
        `Cannot ${fn}: count must be a number, received ${describe(count)}`,
      );
    }
    if (!Number.isInteger(count) || count < 0) {
      throw new RangeError(
        `Cannot ${fn}: count must be an integer of 0 or more, received ${count}; leave it out for "at least one"`,
      );
    }
  }
  if (typeof subclasses !== "boolean") {
    throw new TypeError(
      `Cannot ${fn}: subclasses must be true or false, received ${
        describe(subclasses)
      }`,
    );
  }
  const events = [...published];
  const ofType = events.filter((e): e is E =>
    e !== null && typeof e === "object" &&
    (subclasses ? e instanceof type : e.constructor === type)
  );
  const found = match === undefined
    ? ofType
    : ofType.filter((e) => matches(e, match));
  const what = match === undefined || typeof match === "function"
    ? `${typeName(type)}${
      typeof match === "function" ? " matching the predicate" : ""
    }`
    : `${typeName(type)} matching ${inspect(match, { breakLength: Infinity })}`;
  return { events, ofType, found, what };
}

function matches<E extends object>(event: E, match: EventMatch<E>): boolean {
  if (typeof match === "function") return match(event);
  for (const key of Object.keys(match)) {
    if (
      !isDeepStrictEqual(
        (event as Record<string, unknown>)[key],
        (match as Record<string, unknown>)[key],
      )
    ) {
      return false;
    }
  }
  return true;
}

// What was published, by type, for a failure message: types and counts,
// not field values (the expected fields are the test's own).
function summary(
  events: readonly object[],
  ofType: readonly object[],
  found: readonly object[],
  type: EventClass,
  match: unknown,
): string {
  if (events.length === 0) return "nothing was published";
  const name = typeName(type);
  if (ofType.length > 0) {
    return match === undefined
      ? `${ofType.length} ${name} published`
      : `${ofType.length} ${name} published, ${
        found.length === 0 ? "none" : found.length
      } matching`;
  }
  const counts = new Map<string, number>();
  for (const e of events) {
    const n = typeName(e.constructor);
    counts.set(n, (counts.get(n) ?? 0) + 1);
  }
  return `none was; published: ${
    [...counts].map(([n, c]) => `${n} × ${c}`).join(", ")
  }`;
}
