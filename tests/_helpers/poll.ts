// Waiting for something that happens in the background: poll until it
// holds, or fail after a timeout saying what was awaited (and what was seen)
// instead of hanging the test run.
import {
  OutboxRelay,
  type OutboxRelayOptions,
  type PostgresOutboxClient,
} from "../../src/adapters/postgres/mod.ts";

/** What is awaited; a function is called at the timeout, to say what was seen. */
export type WaitingFor = string | (() => string | Promise<string>);

/**
 * Calls `check` every `intervalMs` until it returns true; after `ms` throws
 * "Timed out waiting for <what>".
 */
export async function waitUntil(
  what: WaitingFor,
  check: () => boolean | Promise<boolean>,
  ms = 30_000,
  intervalMs = 25,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) {
      const said = typeof what === "string" ? what : await what();
      throw new Error(`Timed out after ${ms} ms waiting for ${said}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/**
 * Waits for `promise`, failing with `what` after `ms` instead of hanging the
 * test run when the awaited thing never happens.
 */
export async function waitFor<T>(
  promise: Promise<T>,
  what: string,
  ms = 15_000,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`Timed out after ${ms} ms waiting for ${what}`)),
      ms,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs an outbox relay (a pass every 0.1 s unless `options` say otherwise)
 * until `check` holds, then stops it: how a process taking over after a
 * crash waits for the relay's redelivery.
 */
export async function relayUntil(
  sql: PostgresOutboxClient,
  options: OutboxRelayOptions,
  what: WaitingFor,
  check: () => boolean | Promise<boolean>,
): Promise<void> {
  await using _relay = new OutboxRelay(sql, {
    pollIntervalSeconds: 0.1,
    ...options,
  }).start();
  await waitUntil(what, check, 30_000, 50);
}
