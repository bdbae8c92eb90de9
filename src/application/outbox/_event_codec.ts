// An event's fields as JSON and back. A Date is written as {"$date": "<ISO>"};
// data shaped like a tag (one key, "$date" or "$literal") is wrapped as
// {"$literal": value}. What JSON cannot carry faithfully (a Map, a class
// instance, a bigint, NaN) is refused when written, not lost when rebuilt.
import { describe } from "../../internal/describe.ts";
import { fail } from "../../internal/rules.ts";

const DATE = "$date";
const LITERAL = "$literal";

function looksLikeTag(value: object): boolean {
  const keys = Object.keys(value);
  return keys.length === 1 && (keys[0] === DATE || keys[0] === LITERAL);
}

/**
 * Encodes `value` (an event's fields) as JSON-safe data, or throws a
 * `TypeError` for `action` that names the field at `path`.
 */
export function encode(
  value: unknown,
  path: string,
  action: string,
  seen: Set<object> = new Set(),
): unknown {
  if (typeof value === "number" && !Number.isFinite(value)) {
    fail(action, `${path} is ${value}, which JSON cannot hold`);
  }
  const type = typeof value;
  if (type === "string" || type === "boolean" || type === "number") {
    return value;
  }
  if (value === null) return null;
  if (typeof value !== "object") {
    fail(action, `${path} holds ${describe(value)}, which JSON cannot hold`);
  }
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime())) {
      fail(action, `${path} is an invalid Date`);
    }
    return { [DATE]: value.toISOString() };
  }
  if (seen.has(value)) {
    fail(action, `${path} refers back to an enclosing object (a cycle)`);
  }
  seen.add(value);
  try {
    if (Array.isArray(value)) {
      // Array.from visits holes too, so a sparse array is refused.
      return Array.from(
        value,
        (item, i) => encode(item, `${path}[${i}]`, action, seen),
      );
    }
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      fail(
        action,
        `${path} holds ${
          describe(value)
        }, which would come back as a plain object; store plain data, or give the event class toJSON() and static fromJSON()`,
      );
    }
    const fields: [string, unknown][] = [];
    for (const [key, field] of Object.entries(value)) {
      if (field === undefined) continue; // as JSON.stringify does
      fields.push([key, encode(field, `${path}.${key}`, action, seen)]);
    }
    // fromEntries defines own fields, even one named `__proto__`.
    const out = Object.fromEntries(fields);
    return looksLikeTag(out) ? { [LITERAL]: out } : out;
  } finally {
    seen.delete(value);
  }
}

/** Decodes what {@linkcode encode} wrote: tags become Dates again. */
export function decode(value: unknown): unknown {
  if (value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map(decode);
  let record = value as Record<string, unknown>;
  if (looksLikeTag(record)) {
    if (DATE in record) {
      const date = new Date(record[DATE] as string);
      if (typeof record[DATE] !== "string" || Number.isNaN(date.getTime())) {
        throw new TypeError(
          "Cannot decode event: a $date tag holds no valid ISO date",
        );
      }
      return date;
    }
    const literal = record[LITERAL];
    if (literal === null || typeof literal !== "object") {
      throw new TypeError(
        "Cannot decode event: a $literal tag holds no object",
      );
    }
    record = literal as Record<string, unknown>;
  }
  // fromEntries defines own fields, even one named `__proto__`.
  return Object.fromEntries(
    Object.keys(record).map((key) => [key, decode(record[key])]),
  );
}
