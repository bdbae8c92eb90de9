// Argument rules, written once, so that every layer's messages read alike:
// "Cannot <action>: <what> must be …, received <type>; <what to do>".
// Messages name types, never the values a caller passed as data.

import { describe, isConstructor } from "./describe.ts";

/** Throws `Cannot ${action}: ${detail}` as a TypeError (or RangeError). */
export function fail(
  action: string,
  detail: string,
  Type: typeof TypeError | typeof RangeError = TypeError,
): never {
  throw new Type(`Cannot ${action}: ${detail}`);
}

/** One rule: returns the value to use (a default for `undefined`) or throws. */
export type Rule<T> = (value: unknown, what: string, action: string) => T;

// What a value fails: [what it must be, what it is instead, its error class].
type Problem = [string, string?, typeof RangeError?];

const hinted = (hint?: string) => hint === undefined ? "" : `; ${hint}`;
const quoted = (value: unknown) =>
  typeof value === "string" ? JSON.stringify(value) : describe(value);

// A rule that returns `fallback` for undefined and throws
// `${what} must be …, received …` when `problem` finds one.
function rule<T, D>(
  fallback: D | undefined,
  problem: (value: unknown) => Problem | undefined,
): Rule<T | D> {
  return (value, what, action) => {
    if (value === undefined) return fallback as D;
    const [expected, received = describe(value), Type] = problem(value) ?? [];
    if (expected !== undefined) {
      fail(action, `${what} must be ${expected}, received ${received}`, Type);
    }
    return value as T;
  };
}

// Another type is a TypeError; a number of the wrong value (NaN, 1.5) a
// RangeError, as in JavaScript itself.
function numeric(
  value: unknown,
  ok: (n: number) => boolean,
  expected: string,
  hint?: string,
): Problem | undefined {
  if (typeof value === "number" && ok(value)) return undefined;
  return typeof value === "number"
    ? [expected, `${value}${hinted(hint)}`, RangeError]
    : [expected, `${describe(value)}${hinted(hint)}`];
}

/** An integer in `[min, max]`; `fallback` when undefined. */
export function integer<D extends number | undefined = undefined>(
  min: number,
  max: number = Number.MAX_SAFE_INTEGER,
  fallback?: D,
): Rule<number | D> {
  const range = max === Number.MAX_SAFE_INTEGER
    ? `at least ${min}`
    : `between ${min} and ${max}`;
  return rule(fallback, (v) =>
    numeric(v, Number.isInteger, "an integer") ??
      numeric(v, (n) => n >= min && n <= max, range));
}

/**
 * A finite number `>= min` (or `> min` when `above`); `fallback` when
 * undefined. `hint` says what to pass instead.
 */
export function number<D extends number | undefined = undefined>(
  min: number,
  fallback?: D,
  above = false,
  hint?: string,
): Rule<number | D> {
  const range = `${above ? "greater than" : "at least"} ${min}`;
  return rule(
    fallback,
    (v) =>
      numeric(v, Number.isFinite, "a finite number", hint) ??
        numeric(v, (n) => above ? n > min : n >= min, range),
  );
}

/** A finite number; `fallback` when undefined (see {@linkcode number}). */
export function finite<D extends number | undefined = undefined>(
  fallback?: D,
  hint?: string,
): Rule<number | D> {
  return number(-Infinity, fallback, false, hint);
}

/** A boolean; `fallback` when undefined. */
export function boolean<D extends boolean | undefined = undefined>(
  fallback?: D,
): Rule<boolean | D> {
  return rule(
    fallback,
    (v) => typeof v === "boolean" ? undefined : ["a boolean"],
  );
}

/** A non-empty string; `fallback` when undefined. */
export function text<D extends string | undefined = undefined>(
  fallback?: D,
  hint?: string,
): Rule<string | D> {
  return rule(fallback, (v) =>
    typeof v === "string" && v !== "" ? undefined : [
      "a non-empty string",
      `${v === "" ? "an empty string" : describe(v)}${hinted(hint)}`,
    ]);
}

/** One of `choices`; `fallback` when undefined. */
export function oneOf<
  const C extends string,
  D extends C | undefined = undefined,
>(choices: readonly C[], fallback?: D): Rule<C | D> {
  return rule(fallback, (v) =>
    choices.includes(v as C) ? undefined : [
      `one of ${choices.map((c) => JSON.stringify(c)).join(", ")}`,
      quoted(v),
    ]);
}

/** An instance of `type`; `fallback` when undefined. */
export function instance<T extends object, D extends T | undefined = undefined>(
  // deno-lint-ignore no-explicit-any
  type: abstract new (...args: any[]) => T,
  fallback?: D,
): Rule<T | D> {
  return rule(
    fallback,
    (v) => v instanceof type ? undefined : [`an instance of ${type.name}`],
  );
}

/** A function; `fallback` when undefined. */
export function callable<
  // deno-lint-ignore no-explicit-any
  F extends (...args: any[]) => unknown,
  D extends F | undefined = undefined,
>(fallback?: D): Rule<F | D> {
  return rule(
    fallback,
    (v) => typeof v === "function" ? undefined : ["a function"],
  );
}

/**
 * A string that matches `pattern`, described as `expected` ("a lowercase
 * UUID"); `hint` says what to do instead.
 */
export function matches(
  pattern: RegExp,
  expected: string,
  hint?: string,
): Rule<string | undefined> {
  return rule(
    undefined,
    (v) =>
      typeof v === "string" && pattern.test(v)
        ? undefined
        : [expected, `${quoted(v)}${hinted(hint)}`],
  );
}

/** Throws `Cannot ${action}: expected ${what}, received …[; hint]`. */
export function expected(
  action: string,
  what: string,
  value: unknown,
  hint?: string,
): never {
  fail(action, `expected ${what}, received ${describe(value)}${hinted(hint)}`);
}

/** Throws unless `value` is a class: `expected an event class, …; hint`. */
export function assertEventClass(
  value: unknown,
  action: string,
  hint = "pass the class itself, for example UserRegistered",
): asserts value is abstract new (...args: never[]) => object {
  if (!isConstructor(value)) expected(action, "an event class", value, hint);
}

/**
 * Throws unless a standard decorator's `context` is of kind `expected`.
 * `label` names the decorator (`@On(X)`), `only` says what it applies to.
 */
export function assertDecorates(
  context: unknown,
  expected: "class" | "method",
  label: string,
  only: string,
): void {
  const kind = (context as { kind?: unknown } | null | undefined)?.kind;
  // A legacy (experimentalDecorators) call gets no context object.
  if (typeof kind !== "string") {
    throw new TypeError(
      `${label} was called as a legacy decorator: aftercommit uses standard TC39 decorators; remove "experimentalDecorators" from your compiler options`,
    );
  }
  if (kind !== expected) {
    const name = String((context as { name?: unknown }).name);
    throw new TypeError(
      `${label} cannot decorate ${kind} ${name}: it applies to ${only}`,
    );
  }
}

/** Throws unless `value` is undefined or an options object. */
export function assertObject(
  value: unknown,
  what: string,
  action: string,
): asserts value is Record<string, unknown> | undefined {
  if (
    value !== undefined &&
    (typeof value !== "object" || value === null || Array.isArray(value))
  ) {
    fail(action, `${what} must be an object, received ${describe(value)}`);
  }
}

/** The rules of an options object, member by member. */
export type Spec = Record<string, Rule<unknown>>;

/** What {@linkcode readOptions} returns for a spec. */
export type Read<S extends Spec> = {
  -readonly [K in keyof S]: ReturnType<S[K]>;
};

/**
 * Checks an options object against a table of rules and returns each
 * member's value or default; members the table does not name are ignored.
 */
export function readOptions<S extends Spec>(
  options: unknown,
  spec: S,
  action: string,
  what = "options",
): Read<S> {
  assertObject(options, what, action);
  const out = {} as Record<string, unknown>;
  for (const key in spec) {
    out[key] = spec[key]!(options?.[key], `${what}.${key}`, action);
  }
  return out as Read<S>;
}

/**
 * Throws unless `data` survives a JSON round trip unchanged (object members
 * may be `undefined`); the message names the path and what to pass instead.
 */
export function assertJson(data: unknown, what: string, action: string): void {
  if (data === undefined) {
    fail(
      action,
      `${what} is undefined; pass a JSON value such as an object, or null for no data`,
    );
  }
  const fault = jsonFault(data, []);
  if (fault !== undefined) {
    fail(action, `${what} is not JSON-serialisable: ${faultText(what, fault)}`);
  }
}

// The first value that does not survive JSON, with the path segments that
// lead to it and, for a cycle, how many of them lead to the object it refers
// back to. Segments are built only on failure: this runs for every job.
interface JsonFault {
  readonly value: unknown;
  readonly segments: string[];
  readonly cycle?: number;
}

function jsonFault(value: unknown, ancestors: object[]): JsonFault | undefined {
  if (typeof value === "string" || typeof value === "boolean") return undefined;
  if (typeof value === "number" && Number.isFinite(value)) return undefined;
  if (typeof value !== "object") return { value, segments: [] };
  if (value === null) return undefined;
  const cycle = ancestors.indexOf(value);
  if (cycle !== -1) return { value, segments: [], cycle };
  const array = Array.isArray(value);
  if (!array && !isPlain(value)) return { value, segments: [] };
  ancestors.push(value);
  const children = Object.values(value);
  for (let i = 0; i < children.length; i++) {
    const child = children[i];
    if (child === undefined && !array) continue;
    const fault = jsonFault(child, ancestors);
    if (fault !== undefined) {
      const key = Object.keys(value)[i]!;
      fault.segments.unshift(
        array
          ? `[${key}]`
          : /^[A-Za-z_$][\w$]*$/.test(key)
          ? `.${key}`
          : `[${JSON.stringify(key)}]`,
      );
      return fault;
    }
  }
  ancestors.pop();
  return undefined;
}

function isPlain(value: object): boolean {
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

function faultText(
  what: string,
  { value, segments, cycle }: JsonFault,
): string {
  const path = what + segments.join("");
  if (cycle !== undefined) {
    return `${path} refers back to ${
      what + segments.slice(0, cycle).join("")
    }, a cycle JSON cannot represent; pass a tree of plain objects`;
  }
  switch (typeof value) {
    case "number":
      return `${path} is ${value}, which JSON turns into null; pass a finite number, a string or null`;
    case "bigint":
      return `${path} is a bigint, which JSON cannot represent; convert it to a string (String(n)) or a number`;
    case "function":
    case "symbol":
      return `${path} is ${
        describe(value)
      }, which JSON drops; pass data only, and look functions up in the handler`;
    case "undefined":
      return `${path} is undefined inside an array, which JSON turns into null; use null`;
  }
  return value instanceof Date
    ? `${path} is a Date, which JSON turns into a string; pass date.toISOString() and parse it in the handler`
    : `${path} is ${
      describe(value)
    }, which does not survive JSON; pass a plain object or an array`;
}

/** Throws unless `bus` is an object with a `publishAll` method. */
export function assertPublishAll(
  bus: unknown,
  what: string,
  action: string,
  hint = "pass an EventBus, or leave it out to use defaultBus",
): asserts bus is { publishAll(events: readonly object[]): unknown } {
  if (
    bus === null || typeof bus !== "object" ||
    typeof (bus as { publishAll?: unknown }).publishAll !== "function"
  ) {
    fail(
      action,
      `${what} must be an event bus with a publishAll method, received ${
        describe(bus)
      }; ${hint}`,
    );
  }
}

/** What a repair command acts on: some ids, every row of one kind, or all. */
export interface Selection {
  readonly ids?: readonly string[];
  /** The `by` key's value (a queue, an event type). */
  readonly by?: string;
  readonly all?: true;
}

/**
 * Checks a repair selection: exactly one of `{ ids }` (1 to `maxIds`
 * non-empty strings), `{ [by]: value }` (checked by `checkBy`) or
 * `{ all: true }`; messages end with `usage`.
 */
export function selection(
  value: unknown,
  action: string,
  by: string,
  checkBy: (value: unknown) => string,
  ids: { readonly max: number; readonly noun: string },
  usage: string,
): Selection {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    expected(action, "a selection", value, usage);
  }
  const given = Object.entries(value).filter(([, v]) => v !== undefined);
  const [key, chosen] = given[0] ?? [];
  if (given.length !== 1 || !["ids", by, "all"].includes(key!)) {
    fail(
      action,
      `the selection must have exactly one of ids, ${by} or all, received ${
        given.length === 0 ? "none" : given.map(([k]) => k).join(", ")
      }; ${usage}`,
    );
  }
  if (key === by) return { by: checkBy(chosen) };
  if (key === "all") {
    if (chosen !== true) {
      fail(
        action,
        `selection.all must be true, received ${
          chosen === false ? "false" : describe(chosen)
        }; ${usage}`,
      );
    }
    return { all: true };
  }
  const rule =
    `selection.ids must be an array of 1 to ${ids.max} ${ids.noun} (non-empty strings)`;
  if (
    !Array.isArray(chosen) || chosen.length === 0 || chosen.length > ids.max
  ) {
    fail(
      action,
      `${rule}, received ${
        Array.isArray(chosen)
          ? `an array of ${chosen.length}`
          : describe(chosen)
      }; ${usage}`,
    );
  }
  // An index loop: every() skips the holes of a sparse array.
  for (let i = 0; i < chosen.length; i++) {
    const id: unknown = chosen[i];
    if (typeof id !== "string" || id === "") {
      fail(
        action,
        `${rule}, but selection.ids[${i}] is ${
          id === "" ? "an empty string" : describe(id)
        }; ${usage}`,
      );
    }
  }
  return { ids: chosen };
}
