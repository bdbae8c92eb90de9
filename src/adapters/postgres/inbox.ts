/**
 * The inbox: consumer-side deduplication for at-least-once delivery. A
 * handler's own database effects run at most once per (event id, handler),
 * because the record that they ran is written in the same transaction as
 * the effects.
 *
 * @module
 */
import { reservedTransaction } from "./_transaction.ts";
import { getLogger } from "@logtape/logtape";
import { describe } from "../../internal/describe.ts";
import { resolveTableName, type TableName, type Unsafe } from "./_outbox.ts";
import { assertClient, type PostgresOutboxClient } from "./outbox.ts";

const logger = getLogger(["aftercommit", "inbox"]);

/** The table the inbox uses unless told otherwise. */
export const DEFAULT_INBOX_TABLE = "aftercommit_inbox";

const MAX_HANDLER_LENGTH = 200;
const PURGE_BATCH = 1000;

/** Options of {@linkcode Inbox} and {@linkcode migrateInbox}. */
export interface InboxOptions {
  /**
   * The inbox table: a name, or `schema.name` (letters, digits and `_`, at
   * most 50 characters each).
   *
   * @default {"aftercommit_inbox"}
   */
  readonly table?: string;
}

/**
 * The part of a postgres.js transaction (`tx.sql` inside
 * `PostgresUnitOfWork.run`, or the `sql` that `sql.begin` gives) the inbox
 * uses: `unsafe` for its statements, and `savepoint`, which only a
 * transaction has.
 */
export interface InboxTransaction {
  /**
   * Runs one statement with `$1`-style parameters.
   *
   * @param query The SQL text.
   * @param parameters The parameters.
   * @param options `prepare: true` to use a named prepared statement.
   * @returns The rows.
   */
  unsafe(
    query: string,
    // deno-lint-ignore no-explicit-any
    parameters?: any[],
    options?: { prepare?: boolean },
  ): PromiseLike<readonly unknown[]>;
  /**
   * Runs `fn` in a savepoint. The inbox does not call it: only a
   * transaction has it, so it tells a transaction from a pool.
   *
   * @param fn The work.
   * @returns What `fn` resolved to.
   */
  // deno-lint-ignore no-explicit-any
  savepoint(fn: (sql: any) => any): Promise<unknown>;
}

/** An event the inbox can key: it has a string `eventId`, as a `DomainEvent` does. */
export interface InboxEvent {
  /** The event's id: the same on every delivery of the event. */
  readonly eventId: string;
}

/** What {@linkcode Inbox.once} did. */
export type OnceResult<T> =
  /** The work ran, in this transaction; `value` is what it returned. */
  | { readonly ran: true; readonly value: T }
  /** This (event, handler) was already processed: the work did not run. */
  | { readonly ran: false };

/**
 * Consumer-side deduplication: {@linkcode Inbox.once} runs a handler's own
 * database effects at most once per (event id, handler name), however many
 * times the event is delivered.
 *
 * With the outbox, delivery is at least once: after a crash between a
 * handler's work and the outbox marking the event done, the relay delivers
 * the event again. A handler whose effects are writes to the application
 * database wraps them in `inbox.once(tx.sql, event, "Handler.name", work)`
 * inside a unit of work: the inbox table gets a row for (event id, handler)
 * in the same transaction as the effects, so either both commit or
 * neither does, and a later delivery finds the row and skips the work.
 *
 * - **Concurrent deliveries** of one event to one handler (two relays, a
 *   retry racing a slow first attempt) are safe: the second insert waits
 *   for the first transaction, and then skips (it committed) or runs (it
 *   rolled back).
 * - **A failing work** rolls back to a savepoint taken before the row was
 *   written, then rethrows: no record is left, so a redelivery runs it
 *   again, even if the caller catches the error and commits.
 * - **Retention**: rows are kept until {@linkcode Inbox.purge} deletes them.
 *   Keep them longer than an event can come back: parked outbox events can
 *   be requeued by hand, at any time.
 * - Effects outside the database (an HTTP call, an email) are not covered:
 *   enqueue a job with an idempotency key for those.
 *
 * Logs go to `["aftercommit", "inbox"]`: event ids and handler names, never
 * field values.
 *
 * @example Count each registration once, whatever the redeliveries
 * ```ts
 * import postgres from "postgres";
 * import { DomainEvent, EventBus } from "@aftercommit/core";
 * import {
 *   Inbox,
 *   migrateInbox,
 *   PostgresUnitOfWork,
 * } from "@aftercommit/core/postgres";
 *
 * class UserRegistered extends DomainEvent {}
 *
 * const sql = postgres(Deno.env.get("DATABASE_URL")!);
 * await migrateInbox(sql);
 * const inbox = new Inbox();
 * const uow = new PostgresUnitOfWork(sql);
 * const bus = new EventBus();
 * bus.register(UserRegistered, (event) =>
 *   uow.run((tx) =>
 *     inbox.once(tx.sql, event, "Stats.countSignup", async () => {
 *       await tx.sql`update stats set signups = signups + 1`;
 *     })
 *   ).then(() => {}));
 * ```
 */
export class Inbox {
  readonly #table: TableName;
  readonly #qualified: string;
  readonly #lockKey: string;
  readonly #claim: string;
  readonly #purge: string;

  /**
   * Creates an inbox on a table; {@linkcode migrateInbox} creates the table.
   *
   * @param options The table.
   * @throws {TypeError} When `options` is not an object or the table name is
   * invalid.
   */
  constructor(options: InboxOptions = {}) {
    this.#table = resolveOptions(options, "create Inbox");
    const { schema, name } = this.#table;
    const t = schema === undefined ? `"${name}"` : `"${schema}"."${name}"`;
    this.#qualified = t;
    this.#lockKey = `aftercommit.inbox:${schema ?? ""}.${name}`;
    this.#claim = `insert into ${t} (event_id, handler) values ($1, $2)
      on conflict (event_id, handler) do nothing`;
    this.#purge = `delete from ${t} where (event_id, handler) in (
        select event_id, handler from ${t}
        where processed_at < clock_timestamp() - $1::float8 * interval '1 second'
        limit $2::int
      )`;
  }

  /** The quoted table name, such as `"aftercommit_inbox"`. */
  get table(): string {
    return this.#qualified;
  }

  /**
   * Runs `work` unless `handler` already processed `event`: writes the
   * record (event id, handler) and runs `work` in the transaction `sql`,
   * inside a savepoint, so the record commits exactly when `work`'s
   * effects do.
   *
   * @typeParam T What `work` returns.
   * @param sql The transaction's `sql` (`tx.sql` inside `uow.run`, or the
   * `sql` that `sql.begin` gives); not a pool.
   * @param event The event being handled: it needs a string `eventId`.
   * @param handler A stable name for the handler, such as
   * `"Stats.countSignup"` (at most 200 characters). Several handlers of one
   * event each get their own record. Renaming it makes old events look new.
   * @param work The handler's database effects, made with the same
   * transaction.
   * @returns `{ ran: true, value }` when `work` ran, `{ ran: false }` when
   * the record was there (nothing ran).
   * @throws {TypeError} When `sql` is not a transaction, `event` has no
   * string `eventId`, `handler` is not a non-empty string, or `work` is not
   * a function; nothing is written then.
   * @throws `work`'s own error, after rolling back to before the record.
   * @throws The driver's error when a statement fails.
   *
   * @example In a handler, with the handler's own unit of work
   * ```ts
   * import postgres from "postgres";
   * import { DomainEvent, On } from "@aftercommit/core";
   * import { Inbox, PostgresUnitOfWork } from "@aftercommit/core/postgres";
   *
   * class OrderPaid extends DomainEvent {
   *   constructor(readonly orderId: string) {
   *     super();
   *   }
   * }
   *
   * class Ledger {
   *   constructor(
   *     private readonly uow: PostgresUnitOfWork<postgres.Sql>,
   *     private readonly inbox: Inbox,
   *   ) {}
   *
   *   @On(OrderPaid)
   *   async book(event: OrderPaid): Promise<void> {
   *     await this.uow.run((tx) =>
   *       this.inbox.once(tx.sql, event, "Ledger.book", async () => {
   *         await tx.sql`insert into ledger (order_id) values (${event.orderId})`;
   *       })
   *     );
   *   }
   * }
   * ```
   */
  async once<T>(
    sql: InboxTransaction,
    event: InboxEvent,
    handler: string,
    work: () => T | PromiseLike<T>,
  ): Promise<OnceResult<T>> {
    const action = "run once";
    assertTransaction(sql, action);
    const eventId = (event as { eventId?: unknown } | null)?.eventId;
    if (
      event === null || typeof event !== "object" ||
      typeof eventId !== "string" || eventId === ""
    ) {
      throw new TypeError(
        `Cannot ${action}: expected an event with a string eventId (a DomainEvent), received ${
          describe(event)
        }${
          event !== null && typeof event === "object"
            ? ` whose eventId is ${describe(eventId)}`
            : ""
        }; pass the event the handler received`,
      );
    }
    if (
      typeof handler !== "string" || handler === "" ||
      handler.length > MAX_HANDLER_LENGTH
    ) {
      throw new TypeError(
        `Cannot ${action}: handler must be a name of 1 to ${MAX_HANDLER_LENGTH} characters such as "Stats.countSignup", received ${
          typeof handler === "string"
            ? `a string of ${handler.length} characters`
            : describe(handler)
        }`,
      );
    }
    if (typeof work !== "function") {
      throw new TypeError(
        `Cannot ${action}: work must be a function that makes the handler's database effects, received ${
          describe(work)
        }; pass async () => { … }`,
      );
    }
    const tx = sql as unknown as Unsafe;
    // The savepoint and the insert go out in one round trip.
    const [, claimed] = await Promise.all([
      tx.unsafe("savepoint aftercommit_inbox"),
      tx.unsafe(this.#claim, [eventId, handler], { prepare: true }),
    ]) as [unknown, { count?: number }];
    if (Number(claimed.count ?? 0) === 0) {
      await tx.unsafe("release savepoint aftercommit_inbox");
      logger.debug(
        "Skipped {handler} for event {eventId}: already processed",
        { handler, eventId },
      );
      return { ran: false };
    }
    let value: T;
    try {
      value = await work();
    } catch (error) {
      await tx.unsafe("rollback to savepoint aftercommit_inbox");
      await tx.unsafe("release savepoint aftercommit_inbox");
      throw error;
    }
    await tx.unsafe("release savepoint aftercommit_inbox");
    return { ran: true, value };
  }

  /**
   * Deletes the records of events processed more than `olderThanSeconds`
   * ago, 1,000 at a time, and tells how many. After that, a redelivery of
   * such an event runs its handlers again: keep records longer than any
   * event can come back (parked outbox events can be requeued at any time).
   * Run it every day or so, from a job schedule or a timer.
   *
   * @param sql A postgres.js client on the application database.
   * @param options `olderThanSeconds`: the retention, in seconds.
   * @returns How many records were deleted.
   * @throws {TypeError} When `sql` is not a postgres.js client or
   * `olderThanSeconds` is not a number.
   * @throws {RangeError} When `olderThanSeconds` is negative or not finite.
   * @throws The driver's error when a statement fails.
   *
   * @example Keep 30 days
   * ```ts
   * import postgres from "postgres";
   * import { Inbox } from "@aftercommit/core/postgres";
   *
   * const sql = postgres(Deno.env.get("DATABASE_URL")!);
   * const deleted = await new Inbox().purge(sql, {
   *   olderThanSeconds: 30 * 86_400,
   * });
   * console.log(deleted);
   * ```
   */
  async purge(
    sql: PostgresOutboxClient,
    options: { readonly olderThanSeconds: number },
  ): Promise<number> {
    const action = "purge inbox";
    assertClient(sql, action);
    const olderThan = (options as { olderThanSeconds?: unknown } | undefined)
      ?.olderThanSeconds;
    if (typeof olderThan !== "number") {
      throw new TypeError(
        `Cannot ${action}: options.olderThanSeconds must be a number of seconds, received ${
          describe(olderThan)
        }; pass the retention, such as { olderThanSeconds: 30 * 86_400 }`,
      );
    }
    if (!Number.isFinite(olderThan) || olderThan < 0) {
      throw new RangeError(
        `Cannot ${action}: options.olderThanSeconds must be a finite number of seconds, 0 or more, received ${olderThan}`,
      );
    }
    let total = 0;
    for (;;) {
      const result = await (sql as unknown as Unsafe).unsafe(this.#purge, [
        String(olderThan),
        String(PURGE_BATCH),
      ], { prepare: true }) as { count?: number };
      const deleted = Number(result.count ?? 0);
      total += deleted;
      if (deleted < PURGE_BATCH) break;
    }
    logger.debug("Deleted {count} inbox records older than {seconds} s", {
      count: total,
      seconds: olderThan,
    });
    return total;
  }

  /**
   * Creates the inbox table and its index when missing, in one transaction
   * under an advisory lock. {@linkcode migrateInbox} does the same.
   *
   * @param sql A postgres.js client on the application database.
   * @returns A promise that settles when the table exists.
   * @throws {TypeError} When `sql` is not a postgres.js client.
   */
  async migrate(sql: PostgresOutboxClient): Promise<void> {
    assertClient(sql, "migrate inbox");
    const t = this.#qualified;
    await reservedTransaction(sql, "begin", async (tx) => {
      await tx.unsafe("select pg_advisory_xact_lock(hashtext($1))", [
        this.#lockKey,
      ]);
      await tx.unsafe(`create table if not exists ${t} (
        event_id text not null,
        handler text not null,
        processed_at timestamptz not null default clock_timestamp(),
        primary key (event_id, handler)
      )`);
      await tx.unsafe(
        `create index if not exists "${this.#table.name}_processed_idx"
          on ${t} (processed_at)`,
      );
    });
    logger.debug("Inbox table {table} is in place", { table: t });
  }
}

/**
 * Creates the inbox table when it is missing. Safe at every start and from
 * several processes at once (`create … if not exists` under an advisory
 * lock).
 *
 * @param sql A postgres.js client on the application database.
 * @param options `table`: the inbox table.
 * @returns A promise that settles when the table exists.
 * @throws {TypeError} When `sql` is not a postgres.js client or the table
 * name is invalid.
 * @throws The driver's error when a statement fails.
 *
 * @example Migrate at start-up
 * ```ts
 * import postgres from "postgres";
 * import { migrateInbox } from "@aftercommit/core/postgres";
 *
 * const sql = postgres(Deno.env.get("DATABASE_URL")!);
 * await migrateInbox(sql);
 * ```
 */
export async function migrateInbox(
  sql: PostgresOutboxClient,
  options: InboxOptions = {},
): Promise<void> {
  assertClient(sql, "migrate inbox");
  await new Inbox(options).migrate(sql);
}

function resolveOptions(options: InboxOptions, action: string): TableName {
  if (options === null || typeof options !== "object") {
    throw new TypeError(
      `Cannot ${action}: options must be an object, received ${
        describe(options)
      }`,
    );
  }
  return resolveTableName(options.table ?? DEFAULT_INBOX_TABLE, action);
}

function assertTransaction(sql: unknown, action: string): void {
  const s = sql as { unsafe?: unknown; savepoint?: unknown } | null;
  if (
    (typeof s !== "function" && (typeof s !== "object" || s === null)) ||
    typeof s.unsafe !== "function"
  ) {
    throw new TypeError(
      `Cannot ${action}: expected the transaction's sql (tx.sql inside uow.run()), received ${
        describe(sql)
      }`,
    );
  }
  if (typeof s.savepoint !== "function") {
    throw new TypeError(
      `Cannot ${action}: expected the transaction's sql (tx.sql inside uow.run(), or the sql that sql.begin() gives), received a client that is not in a transaction; the record and the work's effects must commit together`,
    );
  }
}
