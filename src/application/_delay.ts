// Checks of "not before" values (a delay in seconds, or a Date), shared by
// publishAfterCommit and the job queues' startAfter.
import { describe } from "../internal/describe.ts";
import { fail } from "../internal/rules.ts";

// 100 years: more is a mistake (milliseconds for seconds).
const MAX_DELAY_SECONDS = 3_155_760_000;
// The last moment PostgreSQL and toISOString() agree on (year 9999).
const MAX_TIME = Date.UTC(9999, 11, 31, 23, 59, 59, 999);

/** Throws unless `value` is 0 s to 100 years (a `RangeError` for a number). */
export function assertDelaySeconds(
  value: unknown,
  what: string,
  action: string,
): asserts value is number {
  if (typeof value !== "number") {
    fail(
      action,
      `${what} must be a number of seconds, received ${
        describe(value)
      }; pass a delay such as 60 (one minute)`,
    );
  }
  const problem = !Number.isFinite(value)
    ? `must be a finite number of seconds, received ${value}; pass a delay such as 60, or a Date`
    : value < 0
    ? `must be 0 or more seconds, received ${value}; a delay cannot point into the past, pass 0 (or leave it out) to go now`
    : value > MAX_DELAY_SECONDS
    ? `must be at most ${MAX_DELAY_SECONDS} seconds (100 years), received ${value}; give the delay in seconds, not milliseconds`
    : undefined;
  if (problem !== undefined) fail(action, `${what} ${problem}`, RangeError);
}

/** Throws unless `value` is a valid `Date` from `now` to the year 9999. */
export function assertFutureDate(
  value: unknown,
  what: string,
  action: string,
  now: number = Date.now(),
): asserts value is Date {
  if (!(value instanceof Date)) {
    fail(
      action,
      `${what} must be a Date, received ${
        describe(value)
      }; pass new Date(…) or a number of seconds`,
    );
  }
  const time = value.getTime();
  const problem = Number.isNaN(time)
    ? `is an invalid Date; build it from a valid time, such as new Date("2030-01-01T09:00:00Z")`
    : time < now
    ? `is in the past (${value.toISOString()}, ${
      ((now - time) / 1000).toFixed(3)
    } s ago); pass a moment that has not come yet, or leave it out to go now`
    : time > MAX_TIME
    ? "is after the year 9999, which the database cannot store; pass an earlier moment"
    : undefined;
  if (problem !== undefined) fail(action, `${what} ${problem}`, RangeError);
}

/** Throws unless `value` is a delay in seconds or a future `Date` (above). */
export function assertStartAfter(
  value: unknown,
  what: string,
  action: string,
): asserts value is number | Date {
  if (value instanceof Date) return assertFutureDate(value, what, action);
  if (typeof value === "number") return assertDelaySeconds(value, what, action);
  fail(
    action,
    `${what} must be a number of seconds or a Date, received ${
      describe(value)
    }; pass 60 for one minute from now, or new Date(…) for a moment`,
  );
}
