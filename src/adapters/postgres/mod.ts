/**
 * The Unit of Work over `npm:postgres` (postgres.js): each `run` is one
 * `sql.begin` transaction, and the events the tracked aggregates recorded are
 * published on the bus after the `COMMIT`, never on rollback.
 *
 * @example Publish after commit
 * ```ts
 * import postgres from "postgres";
 * import { defaultBus } from "@aftercommit/core";
 * import { PostgresUnitOfWork } from "@aftercommit/core/postgres";
 *
 * class OrderPlaced {
 *   constructor(readonly orderId: string) {}
 * }
 *
 * const sql = postgres(Deno.env.get("DATABASE_URL")!);
 * const uow = new PostgresUnitOfWork(sql, { bus: defaultBus });
 * await uow.run(async (tx) => {
 *   const orderId = crypto.randomUUID();
 *   await tx.sql`insert into orders (id) values (${orderId})`;
 *   tx.publishAfterCommit(new OrderPlaced(orderId));
 * });
 * await sql.end();
 * ```
 *
 * With `outbox: true`, the events are also written to an outbox table in
 * the same transaction, and an {@linkcode OutboxRelay} dispatches those a
 * crash or a failed handler left undone: delivery becomes at least once.
 * In that mode `publishAfterCommit(event, { delaySeconds | at })` delays an
 * event, and {@linkcode Inbox} makes a handler's own database effects run
 * once per event however often it is delivered.
 *
 * @module
 */
export {
  type IsolationLevel,
  type PostgresClient,
  type PostgresContext,
  type PostgresReservedConnection,
  type PostgresTransactionOf,
  PostgresUnitOfWork,
  type PostgresUnitOfWorkOptions,
} from "./postgres_unit_of_work.ts";
export {
  DEFAULT_OUTBOX_TABLE,
  migrateOutbox,
  type OutboxCheckpoint,
  type OutboxOptions,
  type PostgresOutboxClient,
} from "./outbox.ts";
export {
  OutboxRelay,
  type OutboxRelayOptions,
  type OutboxRelayPass,
} from "./outbox_relay.ts";
export {
  type ListParkedOptions,
  OutboxAdmin,
  type OutboxAdminClient,
  type OutboxStats,
  type ParkedEvent,
  type ParkedSelection,
} from "./outbox_admin.ts";
export { DispatchTimeoutError } from "./_outbox.ts";
export {
  DEFAULT_INBOX_TABLE,
  Inbox,
  type InboxEvent,
  type InboxOptions,
  type InboxTransaction,
  migrateInbox,
  type OnceResult,
} from "./inbox.ts";
export {
  CommitError,
  CommitOutcomeUnknownError,
  PublishAfterCommitError,
  type PublishAfterCommitErrorOptions,
  UnitOfWorkError,
} from "../../application/unit_of_work.ts";
