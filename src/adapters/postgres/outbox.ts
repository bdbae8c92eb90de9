// The transactional outbox on PostgreSQL: its options and its migration.
import type { EventRegistry } from "../../application/outbox/event_registry.ts";
import { DEFAULT_OUTBOX_TABLE, OutboxTable, readTable } from "./_outbox.ts";
import { assertClient, type PostgresClient } from "./_transaction.ts";

export { DEFAULT_OUTBOX_TABLE };

/** A postgres.js client (`postgres(url)`), as the outbox uses it. */
export type PostgresOutboxClient = PostgresClient;

/**
 * Options of the outbox mode of `PostgresUnitOfWork` and of
 * {@linkcode OutboxRelay}; give both the same values.
 */
export interface OutboxOptions {
  /**
   * The table: `name` or `schema.name` (letters, digits and `_`).
   * @default {"aftercommit_outbox"}
   */
  readonly table?: string;
  /**
   * Names event classes and rebuilds events.
   * @default {defaultEventRegistry}
   */
  readonly registry?: EventRegistry;
  /**
   * Seconds an event is reserved for the process that wrote or claimed it,
   * extended while it dispatches.
   * @default {30}
   */
  readonly leaseSeconds?: number;
  /**
   * Seconds one event's handlers may take; then their `AbortSignal` is
   * aborted and the attempt fails with a `DispatchTimeoutError`.
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

/** Where a unit of work in outbox mode stands, for crash tests. */
export type OutboxCheckpoint = "committed" | "dispatched";

/**
 * Creates the outbox table and its indexes when missing; safe at every start
 * and from several processes.
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
  const table = readTable(options, DEFAULT_OUTBOX_TABLE, action);
  await new OutboxTable(table).migrate(sql);
}
