// Short descriptions of values for error messages. They name types, never
// field values, so an error message cannot leak an event's data.

/** `null`, `undefined`, `a string`, `a number`, `an instance of Foo`, `class Foo`… */
export function describe(value: unknown): string {
  if (value === null) return "null";
  if (value === undefined) return "undefined";
  switch (typeof value) {
    case "string":
      return "a string";
    case "number":
      return "a number";
    case "bigint":
      return "a bigint";
    case "boolean":
      return "a boolean";
    case "symbol":
      return "a symbol";
    case "function":
      return isConstructor(value)
        ? `class ${value.name || "(anonymous)"}`
        : `function ${value.name || "(anonymous)"}`;
    default: {
      if (Array.isArray(value)) return "an array";
      const name = (value as { constructor?: { name?: unknown } }).constructor
        ?.name;
      return typeof name === "string" && name !== "" && name !== "Object"
        ? `an instance of ${name}`
        : "a plain object";
    }
  }
}

/** Whether `value` can be used with `new` and has a prototype for its instances. */
export function isConstructor(value: unknown): value is abstract new (
  ...args: never[]
) => object {
  return typeof value === "function" &&
    typeof (value as { prototype?: unknown }).prototype === "object" &&
    (value as { prototype?: unknown }).prototype !== null;
}

/** The name an event's class goes by in logs and errors. */
export function typeName(type: unknown): string {
  const name = (type as { name?: unknown } | null | undefined)?.name;
  return typeof name === "string" && name !== "" ? name : "(anonymous)";
}
