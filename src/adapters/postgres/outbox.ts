/**
 * The transactional outbox on PostgreSQL: its options, its table and the
 * migration that creates it.
 *
 * @module
 */
import type { EventRegistry } from "../../application/outbox/event_registry.ts";
import { DEFAULT_OUTBOX_TABLE, OutboxTable, readTable } from "./_outbox.ts";
import { assertClient } from "./_transaction.ts";
import type { PostgresClient } from "./_transaction.ts";

export { DEFAULT_OUTBOX_TABLE };

/** A postgres.js client (`postgres(url)`), as the outbox uses it. */
export type PostgresOutboxClient = PostgresClient;

/**
 * Options of the outbox mode of `PostgresUnitOfWork` and of
 * {@linkcode OutboxRelay}; give both the same values.
 */
export interface OutboxOptions {
  /**
   * The table: `name` or `schema.name` (letters, digits and `_`, at most 50
   * characters each).
   * @default {"aftercommit_outbox"}
   */
  readonly table?: string;
  /**
   * Names event classes and rebuilds events.
   * @default {defaultEventRegistry}
   */
  readonly registry?: EventRegistry;
  /**
   * Seconds an event is reserved for the process that wrote or claimed it;
   * the holder extends it while dispatching, so it runs out only when that
   * process died or lost the database.
   * @default {30}
   */
  readonly leaseSeconds?: number;
  /**
   * Seconds one event's handlers may take. Then their `AbortSignal` is
   * aborted, the attempt fails with a `DispatchTimeoutError`, and what they
   * still do runs unwatched.
   * @default {10}
   */
  readonly dispatchTimeoutSeconds?: number;
  /**
   * Failed dispatches after which an event is parked (never retried).
   * @default {10}
   */
  readonly maxAttempts?: number;
  /**
   * Seconds before a failed event is retried; doubles after each failure.
   * @default {1}
   */
  readonly retryDelaySeconds?: number;
  /**
   * The upper bound of the retry delay, in seconds.
   * @default {300}
   */
  readonly maxRetryDelaySeconds?: number;
}

/**
 * Where a unit of work in outbox mode stands, for crash tests: committed
 * (nothing dispatched yet) or dispatched (nothing marked done yet).
 */
export type OutboxCheckpoint = "committed" | "dispatched";

/**
 * Creates the outbox table and its indexes when missing; safe at every start
 * and from several processes (`if not exists`, under an advisory lock).
 *
 * @throws {TypeError} When `sql` is not a postgres.js client or the table
 * name is invalid.
 *
 * @example Migrate at start-up
 * ```ts
 * import postgres from "postgres";
 * import { migrateOutbox } from "@aftercommit/core/postgres";
 *
 * const sql = postgres(Deno.env.get("DATABASE_URL")!);
 * await migrateOutbox(sql);
 * ```
 */
export async function migrateOutbox(
  sql: PostgresOutboxClient,
  options: Pick<OutboxOptions, "table"> = {},
): Promise<void> {
  const action = "migrate outbox";
  assertClient(sql, action);
  await new OutboxTable(readTable(options, DEFAULT_OUTBOX_TABLE, action))
    .migrate(sql);
}
