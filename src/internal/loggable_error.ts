import { describe, typeName } from "./describe.ts";

/**
 * A copy of `error` fit for a log record: name, message, stack, cause. Driver
 * errors carry row values in other fields (`detail`, `parameters`), which a
 * log formatter would print.
 */
export function loggableError(error: unknown, depth = 0): Error {
  if (!(error instanceof Error)) {
    const type = error === null ? "null" : typeof error;
    const copy = new Error(`A non-Error value was thrown (${type})`);
    return Object.assign(copy, { name: "NonError" });
  }
  const copy = Object.assign(new Error(error.message), { name: error.name });
  if (error.stack !== undefined) copy.stack = error.stack;
  if (error.cause !== undefined && depth < 5) {
    copy.cause = loggableError(error.cause, depth + 1);
  }
  return copy;
}

/**
 * The error's type name, never its message: for log lines that must not
 * carry a driver's message (it can quote the values of a failed row).
 */
export function errorType(error: unknown): string {
  if (error instanceof Error) return error.name || typeName(error.constructor);
  return describe(error);
}
