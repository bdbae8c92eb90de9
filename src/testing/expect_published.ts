import { AssertionError } from "node:assert";
import { inspect, isDeepStrictEqual } from "node:util";
import type { EventClass } from "../application/types.ts";
import { typeName } from "../internal/describe.ts";
import {
  assertEventClass,
  boolean,
  expected,
  integer,
  readOptions,
} from "../internal/rules.ts";

/** Some of an event's fields (compared deep and strict), or a predicate. */
export type EventMatch<E extends object> =
  | { readonly [K in keyof E]?: unknown }
  | ((event: E) => boolean);

/** Options of {@linkcode expectPublished}. */
export interface ExpectPublishedOptions {
  /** Exactly this many must match. Default: at least one. */
  readonly count?: number;
  /** Whether instances of subclasses count too. Default: false. */
  readonly subclasses?: boolean;
}

/**
 * Asserts that events of class `type` matching `match` are among
 * `published` (an {@linkcode EventRecorder} or any iterable) and returns
 * them. Its `AssertionError` names types and counts, and your `match`,
 * never the published events' field values.
 *
 * @example Assert what was published, by fields or by a predicate
 * ```ts
 * import assert from "node:assert/strict";
 * import { expectPublished } from "@aftercommit/core/testing";
 *
 * class UserRegistered {
 *   constructor(readonly userId: string, readonly email: string) {}
 * }
 * const published = [new UserRegistered("u1", "ada@example.org")];
 * const [event] = expectPublished(published, UserRegistered, { userId: "u1" });
 * assert.equal(event?.email, "ada@example.org");
 * expectPublished(published, UserRegistered, (e) => e.email.endsWith(".org"));
 * assert.throws(
 *   () => expectPublished(published, UserRegistered, { userId: "u2" }),
 *   /Expected a UserRegistered matching \{ userId: 'u2' \} to be published/,
 * );
 * ```
 */
export function expectPublished<E extends object>(
  published: Iterable<object>,
  type: EventClass<E>,
  match?: EventMatch<E>,
  options: ExpectPublishedOptions = {},
): E[] {
  const seen = find("expectPublished", published, type, match, options);
  const { events, ofType, found, what } = seen, { count } = options;
  if (count === undefined ? found.length > 0 : found.length === count) {
    return found;
  }
  let summary = `${ofType.length} ${typeName(type)} published`;
  if (events.length === 0) summary = "nothing was published";
  else if (ofType.length === 0) {
    const byType = Map.groupBy(events, (e) => typeName(e?.constructor));
    const counts = [...byType].map(([n, all]) => `${n} × ${all.length}`);
    summary = `none was; published: ${counts.join(", ")}`;
  } else if (match !== undefined) {
    summary += `, ${found.length || "none"} matching`;
  }
  const wanted = count === undefined ? `a ${what}` : `${count} × ${what}`;
  throw new AssertionError({
    message: `Expected ${wanted} to be published: ${summary}`,
    actual: found.length,
    expected: count ?? 1,
    operator: "expectPublished",
  });
}

/** Asserts that no event as {@linkcode expectPublished} finds was published. */
export function expectNotPublished<E extends object>(
  published: Iterable<object>,
  type: EventClass<E>,
  match?: EventMatch<E>,
  options: Pick<ExpectPublishedOptions, "subclasses"> = {},
): void {
  const fn = "expectNotPublished";
  const { found, what } = find(fn, published, type, match, options);
  if (found.length === 0) return;
  throw new AssertionError({
    message: `Expected no ${what} to be published: ${found.length} found`,
    actual: found.length,
    expected: 0,
    operator: fn,
  });
}

function find<E extends object>(
  fn: string,
  published: Iterable<object>,
  type: EventClass<E>,
  match: EventMatch<E> | undefined,
  options: ExpectPublishedOptions,
): { events: object[]; ofType: E[]; found: E[]; what: string } {
  if (typeof Object(published)[Symbol.iterator] !== "function") {
    expected(
      fn,
      "the published events (an EventRecorder or an array)",
      published,
    );
  }
  assertEventClass(type, fn);
  if (
    match === null ||
    !["undefined", "function", "object"].includes(typeof match)
  ) {
    expected(fn, "the fields to match (an object) or a predicate", match);
  }
  const { subclasses } = readOptions(options, {
    count: integer(0),
    subclasses: boolean(false),
  }, fn);
  const events = [...published];
  const ofType = events.filter((e): e is E =>
    subclasses ? e instanceof type : e?.constructor === type
  );
  const fields = Object.entries(match ?? {});
  const found = ofType.filter((e) =>
    typeof match === "function"
      ? match(e)
      : fields.every(([k, v]) =>
        isDeepStrictEqual((e as Record<string, unknown>)[k], v)
      )
  );
  const shown = typeof match === "function"
    ? "the predicate"
    : inspect(match, { breakLength: Infinity });
  const what = `${typeName(type)}${match ? ` matching ${shown}` : ""}`;
  return { events, ofType, found, what };
}
