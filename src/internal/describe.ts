/**
 * A value's type for an error message (`a string`, `an instance of Foo`,
 * `class Foo`…), never its content, which could leak an event's data.
 */
export function describe(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (typeof value === "function") {
    return `${isConstructor(value) ? "class" : "function"} ${typeName(value)}`;
  }
  if (typeof value !== "object") return `a ${typeof value}`;
  if (Array.isArray(value)) return "an array";
  const name = typeName(value.constructor);
  return name === "(anonymous)" || name === "Object"
    ? "a plain object"
    : `an instance of ${name}`;
}

/** Whether `value` can be used with `new` and has a prototype for its instances. */
export function isConstructor(value: unknown): value is abstract new (
  ...args: never[]
) => object {
  const prototype = (value as { prototype?: unknown } | null)?.prototype;
  return typeof value === "function" && typeof prototype === "object" &&
    prototype !== null;
}

/** The name an event's class goes by in logs and errors. */
export function typeName(type: unknown): string {
  const name = (type as { name?: unknown } | null | undefined)?.name;
  return typeof name === "string" && name !== "" ? name : "(anonymous)";
}
