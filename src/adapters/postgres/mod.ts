/**
 * The Unit of Work over `npm:postgres` (postgres.js): events published after
 * the `COMMIT`; with `outbox: true` also written in the transaction for the
 * {@linkcode OutboxRelay}. {@linkcode Inbox} runs a handler's effects once.
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
 * @module
 */
export type {
  PostgresClient,
  PostgresReservedConnection,
} from "./_transaction.ts";
export {
  type IsolationLevel,
  type PostgresContext,
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
