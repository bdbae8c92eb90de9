// Argument checks of the pg-boss adapter. Each throws a TypeError (RangeError
// for numbers out of range) that names the rule and what to do instead, before
// anything reaches the database. Messages name types and paths, never values
// of job data.

import { describe } from "../../internal/describe.ts";

// pg-boss's own rule for queue names (it splices them into SQL text).
const QUEUE_NAME = /^[A-Za-z0-9_.\-/]+$/;

/** Throws when `name` is not a valid queue name. */
export function assertQueueName(name: unknown, action: string): void {
  if (typeof name !== "string" || name === "") {
    throw new TypeError(
      `Cannot ${action}: expected a queue name, received ${
        name === "" ? "an empty string" : describe(name)
      }; pass a name such as "send-welcome-email"`,
    );
  }
  if (!QUEUE_NAME.test(name)) {
    throw new TypeError(
      `Cannot ${action}: invalid queue name ${
        JSON.stringify(name)
      }: use only letters, digits, "_", "-", "." and "/", for example "send-welcome-email"`,
    );
  }
}

/**
 * Throws unless `data` survives a JSON round trip unchanged: plain objects,
 * arrays, strings, finite numbers, booleans and `null`. Object properties
 * that are `undefined` are allowed (JSON drops them, and a missing property
 * reads as `undefined` again).
 */
export function assertJsonData(data: unknown, action: string): void {
  if (data === undefined) {
    throw new TypeError(
      `Cannot ${action}: data is undefined; pass a JSON value such as an object, or null for no data`,
    );
  }
  // The common case, valid data, is checked without building paths; the
  // walk that names the problem runs only when there is one.
  if (isJson(data, [])) return;
  const problem = findJsonProblem(data, "data", [], []);
  if (problem !== undefined) {
    throw new TypeError(
      `Cannot ${action}: data is not JSON-serialisable: ${problem}`,
    );
  }
}

// Whether `value` survives a JSON round trip: the rules of findJsonProblem,
// without the paths. `ancestors` is the stack of enclosing containers.
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
  const object = value as Record<string, unknown>;
  if (ancestors.includes(object)) return false;
  if (Array.isArray(object)) {
    ancestors.push(object);
    for (let i = 0; i < object.length; i++) {
      if (!isJson(object[i], ancestors)) return false;
    }
    ancestors.pop();
    return true;
  }
  const prototype = Object.getPrototypeOf(object);
  if (prototype !== Object.prototype && prototype !== null) return false;
  ancestors.push(object);
  for (const key of Object.keys(object)) {
    const child = object[key];
    if (child !== undefined && !isJson(child, ancestors)) return false;
  }
  ancestors.pop();
  return true;
}

// `ancestors` and `paths` are the stack of enclosing containers, for cycles.
function findJsonProblem(
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
  if (Array.isArray(object)) {
    ancestors.push(object);
    paths.push(path);
    for (let i = 0; i < object.length; i++) {
      const problem = findJsonProblem(
        object[i],
        `${path}[${i}]`,
        ancestors,
        paths,
      );
      if (problem !== undefined) return problem;
    }
    ancestors.pop();
    paths.pop();
    return undefined;
  }
  const prototype = Object.getPrototypeOf(object);
  if (prototype !== Object.prototype && prototype !== null) {
    return object instanceof Date
      ? `${path} is a Date, which JSON turns into a string; pass date.toISOString() and parse it in the handler`
      : `${path} is ${
        describe(object)
      }, which does not survive JSON; pass a plain object or an array`;
  }
  ancestors.push(object);
  paths.push(path);
  for (const [key, child] of Object.entries(object)) {
    if (child === undefined) continue;
    const childPath = /^[A-Za-z_$][\w$]*$/.test(key)
      ? `${path}.${key}`
      : `${path}[${JSON.stringify(key)}]`;
    const problem = findJsonProblem(child, childPath, ancestors, paths);
    if (problem !== undefined) return problem;
  }
  ancestors.pop();
  paths.pop();
  return undefined;
}

/** Throws when `value` is given and is not an integer in `[min, max]`. */
export function assertInteger(
  value: unknown,
  what: string,
  action: string,
  min: number,
  max = Number.MAX_SAFE_INTEGER,
): void {
  if (value === undefined) return;
  if (typeof value !== "number" || !Number.isInteger(value)) {
    throw new TypeError(
      `Cannot ${action}: ${what} must be an integer, received ${
        typeof value === "number" ? String(value) : describe(value)
      }`,
    );
  }
  if (value < min || value > max) {
    throw new RangeError(
      `Cannot ${action}: ${what} must be between ${min} and ${max}, received ${value}`,
    );
  }
}

/** Throws when `value` is given and is not a finite number `>= min`. */
export function assertNumber(
  value: unknown,
  what: string,
  action: string,
  min: number,
): void {
  if (value === undefined) return;
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new TypeError(
      `Cannot ${action}: ${what} must be a finite number, received ${
        typeof value === "number" ? String(value) : describe(value)
      }`,
    );
  }
  if (value < min) {
    throw new RangeError(
      `Cannot ${action}: ${what} must be at least ${min}, received ${value}`,
    );
  }
}

/** Throws when `value` is given and is not a boolean. */
export function assertBoolean(
  value: unknown,
  what: string,
  action: string,
): void {
  if (value !== undefined && typeof value !== "boolean") {
    throw new TypeError(
      `Cannot ${action}: ${what} must be a boolean, received ${
        describe(value)
      }`,
    );
  }
}

/** Throws when `value` is given and is not an object (an options bag). */
export function assertOptionsObject(
  value: unknown,
  what: string,
  action: string,
): void {
  if (
    value !== undefined &&
    (typeof value !== "object" || value === null || Array.isArray(value))
  ) {
    throw new TypeError(
      `Cannot ${action}: ${what} must be an object, received ${
        describe(value)
      }`,
    );
  }
}

/** Throws when `key` is given and is not a non-empty string. */
export function assertKey(key: unknown, action: string): void {
  if (key === undefined) return;
  if (typeof key !== "string" || key === "") {
    throw new TypeError(
      `Cannot ${action}: options.key must be a non-empty string, received ${
        key === "" ? "an empty string" : describe(key)
      }; pass an event id, or leave it out for a job without idempotency`,
    );
  }
}

/**
 * Throws unless `url` is a PostgreSQL connection URL. The message never
 * repeats the URL: it may hold a password.
 */
export function assertDatabaseUrl(
  url: unknown,
  source: string,
  action: string,
): asserts url is string {
  const hint =
    "pass a URL such as postgresql://user:password@host:5432/jobs, or pass nothing (and leave JOB_QUEUE_DATABASE_URL unset) for the embedded database";
  if (typeof url !== "string") {
    throw new TypeError(
      `Cannot ${action}: ${source} must be a string, received ${
        describe(url)
      }; ${hint}`,
    );
  }
  if (url.trim() === "") {
    throw new TypeError(`Cannot ${action}: ${source} is empty; ${hint}`);
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError(
      `Cannot ${action}: ${source} is not a valid URL; ${hint}`,
    );
  }
  if (parsed.protocol !== "postgres:" && parsed.protocol !== "postgresql:") {
    throw new TypeError(
      `Cannot ${action}: ${source} has the scheme "${parsed.protocol}", expected "postgres:" or "postgresql:"; ${hint}`,
    );
  }
  if (parsed.hostname === "" && !parsed.searchParams.has("host")) {
    throw new TypeError(
      `Cannot ${action}: ${source} names no host; ${hint}`,
    );
  }
}

// Lowercase only: PostgreSQL returns uuids in lowercase, and the adapter
// matches the ids it gave against the ids the INSERT returns.
const JOB_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Throws when `id` is given and is not a lowercase UUID, or when both `id`
 * and `key` are given.
 */
export function assertJobId(id: unknown, key: unknown, action: string): void {
  if (id === undefined) return;
  if (typeof id !== "string" || !JOB_ID.test(id)) {
    throw new TypeError(
      `Cannot ${action}: options.id must be a lowercase UUID, received ${
        typeof id === "string" ? JSON.stringify(id) : describe(id)
      }; pass crypto.randomUUID(), or leave it out`,
    );
  }
  if (key !== undefined) {
    throw new TypeError(
      `Cannot ${action}: pass options.key or options.id, not both; a key derives the job id itself`,
    );
  }
}
