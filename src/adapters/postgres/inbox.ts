/**
 * The inbox: consumer-side deduplication for at-least-once delivery. A
 * handler's own database effects run at most once per (event id, handler),
 * because the record that they ran is written in the same transaction as
 * the effects.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { describe } from "../../internal/describe.ts";
import { fail, number, readOptions } from "../../internal/rules.ts";
import { quoted, tableName } from "./_outbox.ts";
import type { PostgresOutboxClient } from "./outbox.ts";
import {
  assertClient,
  type Query,
  reservedTransaction,
} from "./_transaction.ts";

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
 * A postgres.js transaction (a `postgres.TransactionSql`): `tx.sql` inside
 * `PostgresUnitOfWork.run`, or the `sql` that `sql.begin` gives.
 */
export interface InboxTransaction {
  /**
   * Runs one query in the transaction.
   *
   * @param strings The query's text around its parameters.
   * @param values The parameters, or identifiers made with `sql(name)`.
   * @returns The rows.
   */
  // deno-lint-ignore no-explicit-any
  (strings: TemplateStringsArray, ...values: any[]): PromiseLike<unknown>;
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
  readonly #name: string;

  /**
   * Creates an inbox on a table; {@linkcode migrateInbox} creates the table.
   *
   * @param options The table.
   * @throws {TypeError} When `options` is not an object or the table name is
   * invalid.
   */
  constructor(options: InboxOptions = {}) {
    this.#name = readOptions(options, {
      table: tableName(DEFAULT_INBOX_TABLE),
    }, "create Inbox").table;
  }

  /** The quoted table name, such as `"aftercommit_inbox"`. */
  get table(): string {
    return quoted(this.#name);
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
    if (typeof eventId !== "string" || eventId === "") {
      fail(
        action,
        `expected an event with a string eventId (a DomainEvent), received ${
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
      fail(
        action,
        `handler must be a name of 1 to ${MAX_HANDLER_LENGTH} characters such as "Stats.countSignup", received ${
          typeof handler === "string"
            ? `a string of ${handler.length} characters`
            : describe(handler)
        }`,
      );
    }
    if (typeof work !== "function") {
      fail(
        action,
        `work must be a function that makes the handler's database effects, received ${
          describe(work)
        }; pass async () => { … }`,
      );
    }
    const tx: Query = sql;
    // The savepoint and the insert go out in one round trip.
    const [, { count }] = await Promise.all([
      tx`savepoint aftercommit_inbox`,
      tx`insert into ${tx(this.#name)} (event_id, handler)
        values (${eventId}, ${handler})
        on conflict (event_id, handler) do nothing`,
    ]);
    if (count === 0) {
      await tx`release savepoint aftercommit_inbox`;
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
      await tx`rollback to savepoint aftercommit_inbox`;
      await tx`release savepoint aftercommit_inbox`;
      throw error;
    }
    await tx`release savepoint aftercommit_inbox`;
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
   * if (deleted > 0) await sql`vacuum aftercommit_inbox`;
   * ```
   */
  async purge(
    sql: PostgresOutboxClient,
    options: { readonly olderThanSeconds: number },
  ): Promise<number> {
    const action = "purge inbox";
    assertClient(sql, action);
    const hint =
      "pass the retention, such as { olderThanSeconds: 30 * 86_400 }";
    if (typeof options?.olderThanSeconds !== "number") {
      fail(
        action,
        `options.olderThanSeconds must be a number of seconds, received ${
          describe(options?.olderThanSeconds)
        }; ${hint}`,
      );
    }
    const { olderThanSeconds } = readOptions(options, {
      olderThanSeconds: number(0),
    }, action);
    const t = sql(this.#name);
    let total = 0;
    for (let deleted = PURGE_BATCH; deleted === PURGE_BATCH;) {
      ({ count: deleted } = await sql`delete from ${t}
        where (event_id, handler) in (
          select event_id, handler from ${t}
          where processed_at <
            clock_timestamp() - ${olderThanSeconds}::float8 * interval '1 second'
          limit ${PURGE_BATCH}::int
        )`);
      total += deleted;
    }
    logger.debug("Deleted {count} inbox records older than {seconds} s", {
      count: total,
      seconds: olderThanSeconds,
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
    const t = sql(this.#name);
    await reservedTransaction(sql, "begin", async (tx) => {
      await tx`select pg_advisory_xact_lock(hashtext(${`aftercommit.inbox:${this.#name}`}))`;
      await tx`create table if not exists ${t} (
        event_id text not null,
        handler text not null,
        processed_at timestamptz not null default clock_timestamp(),
        primary key (event_id, handler)
      )`;
      await tx`create index if not exists ${
        sql(`${this.#name.split(".").at(-1)}_processed_idx`)
      } on ${t} (processed_at)`;
    });
    logger.debug("Inbox table {table} is in place", { table: this.#name });
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

function assertTransaction(
  sql: unknown,
  action: string,
): asserts sql is Query {
  if (typeof sql !== "function") {
    fail(
      action,
      `expected the transaction's sql (tx.sql inside uow.run()), received ${
        describe(sql)
      }`,
    );
  }
  if (typeof (sql as { savepoint?: unknown }).savepoint !== "function") {
    fail(
      action,
      "expected the transaction's sql (tx.sql inside uow.run(), or the sql that sql.begin() gives), received a client that is not in a transaction; the record and the work's effects must commit together",
    );
  }
}
