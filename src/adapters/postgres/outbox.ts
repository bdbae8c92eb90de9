/**
 * The transactional outbox on PostgreSQL: its options, its table and the
 * migration that creates it.
 *
 * @module
 */
import type { EventRegistry } from "../../application/outbox/event_registry.ts";
import { readOptions } from "../../internal/rules.ts";
import { DEFAULT_OUTBOX_TABLE, OutboxTable, tableName } from "./_outbox.ts";
import { assertClient } from "./_transaction.ts";
import type { PostgresClient } from "./postgres_unit_of_work.ts";

export { DEFAULT_OUTBOX_TABLE };

/** A postgres.js client (`postgres(url)`), as the outbox uses it. */
export type PostgresOutboxClient = PostgresClient;

/**
 * Options shared by the outbox mode of `PostgresUnitOfWork` and by
 * {@linkcode OutboxRelay}. Give both the same values.
 */
export interface OutboxOptions {
  /**
   * The outbox table: a name, or `schema.name` (letters, digits and `_`, at
   * most 50 characters each).
   *
   * @default {"aftercommit_outbox"}
   */
  readonly table?: string;
  /**
   * The registry that names event classes and rebuilds events.
   *
   * @default {defaultEventRegistry}
   */
  readonly registry?: EventRegistry;
  /**
   * Seconds an event is reserved for the process that wrote it (counted
   * from the insert, not from the start of the transaction) or that claimed
   * it (in the relay); no relay takes it before the lease ends. The holder
   * extends the lease while it is still dispatching, so it only runs out
   * when that process died or could not reach the database for this long.
   *
   * @default {30}
   */
  readonly leaseSeconds?: number;
  /**
   * Seconds one event's dispatch (all of its handlers) may take. Handlers
   * get an `AbortSignal` (the bus's second argument, `{ signal }`) that is
   * aborted then; a dispatch that outlives it counts as a failed attempt,
   * recorded with a `DispatchTimeoutError`, and the next event goes on. The
   * handler's promise is not awaited any longer: whatever it still does
   * runs unwatched, so handlers should stop on the signal.
   *
   * @default {10}
   */
  readonly dispatchTimeoutSeconds?: number;
  /**
   * Failed dispatches after which an event is parked: kept, logged, never
   * retried again.
   *
   * @default {10}
   */
  readonly maxAttempts?: number;
  /**
   * Seconds before an event whose dispatch failed may be tried again;
   * doubles after every further failure.
   *
   * @default {1}
   */
  readonly retryDelaySeconds?: number;
  /**
   * The upper bound of the retry delay, in seconds.
   *
   * @default {300}
   */
  readonly maxRetryDelaySeconds?: number;
}

/** Where a unit of work in outbox mode stands, for crash tests. */
export type OutboxCheckpoint =
  /** The transaction committed; no event has been dispatched yet. */
  | "committed"
  /** Every event has been dispatched; none is marked done yet. */
  | "dispatched";

/**
 * Creates the outbox table and its indexes when they are missing. It is
 * safe to run at every start and from several processes at once: the
 * statements are `create … if not exists`, run in one transaction under an
 * advisory lock.
 *
 * @param sql A postgres.js client on the application database.
 * @param options `table`: the outbox table (other options are ignored).
 * @returns A promise that settles when the table exists.
 * @throws {TypeError} When `sql` is not a postgres.js client or the table
 * name is invalid.
 * @throws The driver's error when a statement fails.
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
  const { table } = readOptions(options, {
    table: tableName(DEFAULT_OUTBOX_TABLE),
  }, action);
  await new OutboxTable(table).migrate(sql);
}
