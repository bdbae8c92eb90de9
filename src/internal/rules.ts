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

const hinted = (hint?: string) => hint === undefined ? "" : `; ${hint}`;
const quoted = (v: unknown) =>
  typeof v === "string" ? JSON.stringify(v) : describe(v);
const numeral = (v: unknown) => typeof v === "number" ? `${v}` : describe(v);
const nonEmpty = (v: unknown) => v === "" ? "an empty string" : describe(v);

// Returns `fallback` for undefined and a value that passes `test`, else throws
// `${what} must be ${expected}, received ${shown(value)}[; hint]`. Numeric
// rules (shown as a `numeral`) throw a RangeError for a number of the wrong
// value (NaN, 1.5), as JavaScript does.
function rule<T>(
  fallback: unknown,
  // deno-lint-ignore no-explicit-any
  test: (value: any) => boolean,
  expected: string | ((value: unknown) => string),
  shown: (value: unknown) => string = describe,
  hint?: string,
): Rule<T> {
  return (value, what, action) => {
    if (value === undefined) return fallback as T;
    if (test(value)) return value as T;
    const must = typeof expected === "string" ? expected : expected(value);
    fail(
      action,
      `${what} must be ${must}, received ${shown(value)}${hinted(hint)}`,
      shown === numeral && typeof value === "number" ? RangeError : TypeError,
    );
  };
}

// A number of `kind` (Number.isInteger or isFinite) within a range.
function numeric<T>(
  fallback: unknown,
  [kind, noun]: [(value: unknown) => boolean, string],
  [inRange, range]: [(n: number) => boolean, string],
  hint?: string,
): Rule<T> {
  const test = (v: number) => kind(v) && inRange(v);
  return rule(fallback, test, (v) => kind(v) ? range : noun, numeral, hint);
}

/** An integer in `[min, max]`; `fallback` when undefined. */
export function integer<D extends number | undefined = undefined>(
  min: number,
  max: number = Number.MAX_SAFE_INTEGER,
  fallback?: D,
): Rule<number | D> {
  return numeric(fallback, [Number.isInteger, "an integer"], [
    (n) => n >= min && n <= max,
    max === Number.MAX_SAFE_INTEGER
      ? `at least ${min}`
      : `between ${min} and ${max}`,
  ]);
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
  return numeric(fallback, [Number.isFinite, "a finite number"], [
    (n) => above ? n > min : n >= min,
    `${above ? "greater than" : "at least"} ${min}`,
  ], hint);
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
  return rule(fallback, (v) => typeof v === "boolean", "a boolean");
}

/** A non-empty string; `fallback` when undefined. */
export function text<D extends string | undefined = undefined>(
  fallback?: D,
  hint?: string,
): Rule<string | D> {
  const test = (v: unknown) => typeof v === "string" && v !== "";
  return rule(fallback, test, "a non-empty string", nonEmpty, hint);
}

/** One of `choices`; `fallback` when undefined. */
export function oneOf<
  const C extends string,
  D extends C | undefined = undefined,
>(choices: readonly C[], fallback?: D): Rule<C | D> {
  const list = choices.map((c) => JSON.stringify(c)).join(", ");
  return rule(fallback, (v) => choices.includes(v), `one of ${list}`, quoted);
}

/** An instance of `type`; `fallback` when undefined. */
export function instance<T extends object, D extends T | undefined = undefined>(
  // deno-lint-ignore no-explicit-any
  type: abstract new (...args: any[]) => T,
  fallback?: D,
): Rule<T | D> {
  const expected = `an instance of ${type.name}`;
  return rule(fallback, (v) => v instanceof type, expected);
}

/** A function; `fallback` when undefined. */
export function callable<
  // deno-lint-ignore no-explicit-any
  F extends (...args: any[]) => unknown,
  D extends F | undefined = undefined,
>(fallback?: D): Rule<F | D> {
  return rule(fallback, (v) => typeof v === "function", "a function");
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
  const test = (v: unknown) => typeof v === "string" && pattern.test(v);
  return rule(undefined, test, expected, quoted, hint);
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
  const { kind, name } = (context ?? {}) as { kind?: unknown; name?: unknown };
  // A legacy (experimentalDecorators) call gets no context object.
  if (typeof kind !== "string") {
    throw new TypeError(
      `${label} was called as a legacy decorator: aftercommit uses standard TC39 decorators; remove "experimentalDecorators" from your compiler options`,
    );
  }
  if (kind !== expected) {
    throw new TypeError(
      `${label} cannot decorate ${kind} ${String(name)}: it applies to ${only}`,
    );
  }
}

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);
const anObject = rule(undefined, isObject, "an object");

/** Throws unless `value` is undefined or an options object. */
export function assertObject(
  value: unknown,
  what: string,
  action: string,
): asserts value is Record<string, unknown> | undefined {
  anObject(value, what, action);
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

// What JSON does to a value it cannot keep, by kind, and what to pass instead.
const LOSS: Record<string, string> = {
  number:
    ", which JSON turns into null; pass a finite number, a string or null",
  bigint:
    ", which JSON cannot represent; convert it to a string (String(n)) or a number",
  function:
    ", which JSON drops; pass data only, and look functions up in the handler",
  undefined: " inside an array, which JSON turns into null; use null",
  Date:
    ", which JSON turns into a string; pass date.toISOString() and parse it in the handler",
  object: ", which does not survive JSON; pass a plain object or an array",
};
LOSS.symbol = LOSS.function!;
const PLAIN = [Object.prototype, null];
// PostgreSQL's jsonb (pg-boss's data column) refuses both.
const storable = (text: string) => !text.includes("\0") && text.isWellFormed();
const NOT_STORABLE =
  "with a NUL character or a lone surrogate, which PostgreSQL's jsonb cannot store; remove it, or encode the text (base64, for example)";
const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

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
  // The objects being walked, and the key of each one's child on the path;
  // segments are formatted only on failure: this runs for every job.
  const objects: object[] = [], keys: string[] = [];
  const path = (n = keys.length) =>
    what +
    keys.slice(0, n).map((k, i) =>
      Array.isArray(objects[i])
        ? `[${k}]`
        : IDENTIFIER.test(k)
        ? `.${k}`
        : `[${JSON.stringify(k)}]`
    ).join("");
  const refuse = (detail: string) =>
    fail(action, `${what} is not JSON-serialisable: ${path()} ${detail}`);
  const walk = (value: unknown): void => {
    if (typeof value === "string") {
      if (storable(value)) return;
      refuse(`is a string ${NOT_STORABLE}`);
    }
    if (
      value === null || typeof value === "boolean" || Number.isFinite(value)
    ) return;
    const cycle = objects.indexOf(value as object);
    if (cycle !== -1) {
      const to = path(cycle);
      refuse(
        `refers back to ${to}, a cycle JSON cannot represent; pass a tree of plain objects`,
      );
    }
    const array = Array.isArray(value);
    if (
      typeof value !== "object" ||
      !(array || PLAIN.includes(Object.getPrototypeOf(value)))
    ) {
      const date = value instanceof Date;
      const shown = date ? "a Date" : numeral(value);
      refuse(`is ${shown}${LOSS[date ? "Date" : typeof value]}`);
    }
    objects.push(value!);
    for (const key of Object.keys(value!)) {
      const child = (value as Record<string, unknown>)[key];
      if (child === undefined && !array) continue;
      if (!storable(key)) refuse(`has a key ${NOT_STORABLE}`);
      keys.push(key);
      walk(child);
      keys.pop();
    }
    objects.pop();
  };
  walk(data);
}

/** Throws unless `bus` is an object with a `publishAll` method. */
export function assertPublishAll(
  bus: unknown,
  what: string,
  action: string,
  hint = "pass an EventBus, or leave it out to use defaultBus",
): asserts bus is { publishAll(events: readonly object[]): unknown } {
  if (
    typeof bus !== "object" ||
    typeof (bus as { publishAll?: unknown } | null)?.publishAll !== "function"
  ) {
    const shown = describe(bus);
    fail(
      action,
      `${what} must be an event bus with a publishAll method, received ${shown}; ${hint}`,
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
 * Checks a repair selection: exactly one of `{ ids }` (1 to `ids.max`
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
  function refuse(detail: string): never {
    fail(action, `${detail}; ${usage}`);
  }
  if (!isObject(value)) expected(action, "a selection", value, usage);
  const given = Object.entries(value).filter(([, v]) => v !== undefined);
  const [key, chosen] = given[0] ?? [];
  if (given.length !== 1 || !["ids", by, "all"].includes(key!)) {
    const keys = given.length ? given.map(([k]) => k).join(", ") : "none";
    refuse(
      `the selection must have exactly one of ids, ${by} or all, received ${keys}`,
    );
  }
  if (key === by) return { by: checkBy(chosen) };
  if (key === "all") {
    if (chosen === true) return { all: true };
    const shown = chosen === false ? "false" : describe(chosen);
    refuse(`selection.all must be true, received ${shown}`);
  }
  const rule =
    `selection.ids must be an array of 1 to ${ids.max} ${ids.noun} (non-empty strings)`;
  if (!Array.isArray(chosen) || !chosen.length || chosen.length > ids.max) {
    const shown = Array.isArray(chosen)
      ? `an array of ${chosen.length}`
      : describe(chosen);
    refuse(`${rule}, received ${shown}`);
  }
  // findIndex, unlike every(), visits the holes of a sparse array.
  const i = chosen.findIndex((id) => typeof id !== "string" || id === "");
  if (i !== -1) {
    refuse(`${rule}, but selection.ids[${i}] is ${nonEmpty(chosen[i])}`);
  }
  return { ids: chosen };
}
