// Argument rules, written once. Every layer checks its arguments here, so a
// rule and its message read the same everywhere: "Cannot <action>: <what>
// must be …, received …; <what to do>". Messages name types, never values a
// caller passed as data (see describe.ts). A check that TypeScript's
// signature already makes for typed callers is kept only where JavaScript
// callers or config files can get it wrong.

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

function received(value: unknown): string {
  return typeof value === "number" ? String(value) : describe(value);
}

// Another type is a TypeError; a number of the wrong value (NaN, 1.5) a
// RangeError, as in JavaScript itself.
function assertNumber(
  value: unknown,
  ok: (n: number) => boolean,
  expected: string,
  what: string,
  action: string,
  hint?: string,
): asserts value is number {
  if (typeof value !== "number" || !ok(value)) {
    fail(
      action,
      `${what} must be ${expected}, received ${received(value)}${
        hint === undefined ? "" : `; ${hint}`
      }`,
      typeof value === "number" ? RangeError : TypeError,
    );
  }
}

/** An integer in `[min, max]`; `fallback` when undefined. */
export function integer<D extends number | undefined = undefined>(
  min: number,
  max: number = Number.MAX_SAFE_INTEGER,
  fallback?: D,
): Rule<number | D> {
  return (value, what, action) => {
    if (value === undefined) return fallback as D;
    assertNumber(value, Number.isInteger, "an integer", what, action);
    if (value < min || value > max) {
      fail(
        action,
        `${what} must be ${
          max === Number.MAX_SAFE_INTEGER
            ? `at least ${min}`
            : `between ${min} and ${max}`
        }, received ${value}`,
        RangeError,
      );
    }
    return value;
  };
}

/**
 * A finite number `>= min` (or `> min` when `above`); `fallback` when
 * undefined.
 */
export function number<D extends number | undefined = undefined>(
  min: number,
  fallback?: D,
  above = false,
  hint?: string,
): Rule<number | D> {
  return (value, what, action) => {
    if (value === undefined) return fallback as D;
    assertNumber(value, Number.isFinite, "a finite number", what, action, hint);
    if (above ? value <= min : value < min) {
      fail(
        action,
        `${what} must be ${
          above ? "greater than" : "at least"
        } ${min}, received ${value}`,
        RangeError,
      );
    }
    return value;
  };
}

/** A boolean; `fallback` when undefined. */
export function boolean<D extends boolean | undefined = undefined>(
  fallback?: D,
): Rule<boolean | D> {
  return (value, what, action) => {
    if (value === undefined) return fallback as D;
    if (typeof value !== "boolean") {
      fail(action, `${what} must be a boolean, received ${describe(value)}`);
    }
    return value;
  };
}

/** A non-empty string; `fallback` when undefined. */
export function text<D extends string | undefined = undefined>(
  fallback?: D,
  hint?: string,
): Rule<string | D> {
  return (value, what, action) => {
    if (value === undefined) return fallback as D;
    if (typeof value !== "string" || value === "") {
      fail(
        action,
        `${what} must be a non-empty string, received ${
          value === "" ? "an empty string" : describe(value)
        }${hint === undefined ? "" : `; ${hint}`}`,
      );
    }
    return value;
  };
}

/** One of `choices`; `fallback` when undefined. */
export function oneOf<
  const C extends string,
  D extends C | undefined = undefined,
>(
  choices: readonly C[],
  fallback?: D,
): Rule<C | D> {
  return (value, what, action) => {
    if (value === undefined) return fallback as D;
    if (!choices.includes(value as C)) {
      fail(
        action,
        `${what} must be one of ${
          choices.map((c) => JSON.stringify(c)).join(", ")
        }, received ${
          typeof value === "string" ? JSON.stringify(value) : describe(value)
        }`,
      );
    }
    return value as C;
  };
}

/** An instance of `type`; `fallback` when undefined. */
export function instance<T extends object, D extends T | undefined = undefined>(
  // deno-lint-ignore no-explicit-any
  type: abstract new (...args: any[]) => T,
  fallback?: D,
): Rule<T | D> {
  return (value, what, action) => {
    if (value === undefined) return fallback as D;
    if (!(value instanceof type)) {
      fail(
        action,
        `${what} must be an instance of ${type.name}, received ${
          describe(value)
        }`,
      );
    }
    return value;
  };
}

/** A function; `fallback` when undefined. */
export function callable<
  // deno-lint-ignore no-explicit-any
  F extends (...args: any[]) => unknown,
  D extends F | undefined = undefined,
>(fallback?: D): Rule<F | D> {
  return (value, what, action) => {
    if (value === undefined) return fallback as D;
    if (typeof value !== "function") {
      fail(action, `${what} must be a function, received ${describe(value)}`);
    }
    return value as F;
  };
}

/**
 * A finite number; `fallback` when undefined. A non-number is a TypeError,
 * `NaN` or `±Infinity` a RangeError; `hint` says what to pass.
 */
export function finite<D extends number | undefined = undefined>(
  fallback?: D,
  hint?: string,
): Rule<number | D> {
  return number(-Infinity, fallback, false, hint);
}

/** Throws `Cannot ${action}: expected ${what}, received …[; hint]`. */
export function expected(
  action: string,
  what: string,
  value: unknown,
  hint?: string,
): never {
  fail(
    action,
    `expected ${what}, received ${describe(value)}${
      hint === undefined ? "" : `; ${hint}`
    }`,
  );
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
 * The `kind` of a standard (TC39) decorator's context, after checking that
 * it is `expected`. `label` names the decorator (`@On(X)`), `only` says what
 * it applies to ("methods only; put it on …"). A decorator called the legacy
 * way (`experimentalDecorators`) gets no context object.
 */
export function assertDecorates(
  context: unknown,
  expected: "class" | "method",
  label: string,
  only: string,
): void {
  const kind = (context as { kind?: unknown } | null | undefined)?.kind;
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
 * member's value (or its default). Members the table does not name are left
 * to the caller.
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
 * Throws unless `data` survives a JSON round trip unchanged: plain objects,
 * arrays, strings, finite numbers, booleans and `null`. Object members that
 * are `undefined` are allowed (JSON drops them, and they read as `undefined`
 * again). The message names the path and what to pass instead.
 */
export function assertJson(data: unknown, what: string, action: string): void {
  if (data === undefined) {
    fail(
      action,
      `${what} is undefined; pass a JSON value such as an object, or null for no data`,
    );
  }
  if (isJson(data, [])) return;
  const problem = jsonProblem(data, what, [], []);
  if (problem !== undefined) {
    fail(action, `${what} is not JSON-serialisable: ${problem}`);
  }
}

// The fast pass: no strings built on the path that succeeds.
function isJson(value: unknown, ancestors: object[]): boolean {
  switch (typeof value) {
    case "string":
    case "boolean":
      return true;
    case "number":
      return Number.isFinite(value);
    case "object":
      break;
    default:
      return false;
  }
  if (value === null) return true;
  if (ancestors.includes(value)) return false;
  if (!Array.isArray(value) && !isPlain(value)) return false;
  ancestors.push(value);
  for (const child of Object.values(value)) {
    if (child === undefined && !Array.isArray(value)) continue;
    if (!isJson(child, ancestors)) return false;
  }
  ancestors.pop();
  return true;
}

function isPlain(value: object): boolean {
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

// The slow pass, only after the fast one failed: says where and why.
function jsonProblem(
  value: unknown,
  path: string,
  ancestors: object[],
  paths: string[],
): string | undefined {
  switch (typeof value) {
    case "string":
    case "boolean":
      return undefined;
    case "number":
      return Number.isFinite(value)
        ? undefined
        : `${path} is ${
          String(value)
        }, which JSON turns into null; pass a finite number, a string or null`;
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
  if (value === null) return undefined;
  const object = value as object;
  const cycle = ancestors.indexOf(object);
  if (cycle !== -1) {
    return `${path} refers back to ${
      paths[cycle]
    }, a cycle JSON cannot represent; pass a tree of plain objects`;
  }
  const array = Array.isArray(object);
  if (!array && !isPlain(object)) {
    return object instanceof Date
      ? `${path} is a Date, which JSON turns into a string; pass date.toISOString() and parse it in the handler`
      : `${path} is ${
        describe(object)
      }, which does not survive JSON; pass a plain object or an array`;
  }
  ancestors.push(object);
  paths.push(path);
  for (const [key, child] of Object.entries(object)) {
    if (child === undefined && !array) continue;
    const childPath = array
      ? `${path}[${key}]`
      : /^[A-Za-z_$][\w$]*$/.test(key)
      ? `${path}.${key}`
      : `${path}[${JSON.stringify(key)}]`;
    const problem = jsonProblem(child, childPath, ancestors, paths);
    if (problem !== undefined) return problem;
  }
  ancestors.pop();
  paths.pop();
  return undefined;
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
  return (value, what, action) => {
    if (value === undefined) return undefined;
    if (typeof value !== "string" || !pattern.test(value)) {
      fail(
        action,
        `${what} must be ${expected}, received ${
          typeof value === "string" ? JSON.stringify(value) : describe(value)
        }${hint === undefined ? "" : `; ${hint}`}`,
      );
    }
    return value;
  };
}

/**
 * Throws unless `bus` is an event bus: an object with a `publishAll`
 * method. `what` names it (`options.bus`); `hint` says what to pass.
 */
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
