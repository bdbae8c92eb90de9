// The inbox: consumer-side deduplication for at-least-once delivery.
import { AsyncLocalStorage } from "node:async_hooks";
import { getLogger } from "@logtape/logtape";
import { describe } from "../../internal/describe.ts";
import { expected, fail, number } from "../../internal/rules.ts";
import { deleteInBatches, migrateTable, quoted, readTable } from "./_outbox.ts";
import type { PostgresOutboxClient } from "./outbox.ts";
import { assertClient, type Query } from "./_transaction.ts";

const logger = getLogger(["aftercommit", "inbox"]);

/** The table the inbox uses unless told otherwise. */
export const DEFAULT_INBOX_TABLE = "aftercommit_inbox";

const MAX_HANDLER_LENGTH = 200;

// Savepoints nest as a stack: on one transaction, a once() may start only
// when none runs, or from inside the work of the innermost one running.
interface Running {
  closed: boolean; // its work has settled
  nested?: Promise<unknown>; // a call its work made, settled or not
}
const innermost = new WeakMap<object, Running>(); // by transaction
const running = new AsyncLocalStorage<Running>();

/** Options of {@linkcode Inbox} and {@linkcode migrateInbox}. */
export interface InboxOptions {
  /**
   * The table: `name` or `schema.name` (letters, digits and `_`).
   * @default {"aftercommit_inbox"}
   */
  readonly table?: string;
}

/**
 * A postgres.js transaction: `tx.sql` inside `PostgresUnitOfWork.run`, or the
 * `sql` that `sql.begin` gives.
 */
export interface InboxTransaction {
  /** Runs one query in the transaction. */
  // deno-lint-ignore no-explicit-any
  (strings: TemplateStringsArray, ...values: any[]): PromiseLike<unknown>;
  /** Not called: only a transaction has it, so it tells one from a pool. */
  // deno-lint-ignore no-explicit-any
  savepoint(fn: (sql: any) => any): Promise<unknown>;
}

/** An event with a string `eventId`, as a `DomainEvent` has. */
export interface InboxEvent {
  /** The event's id: the same on every delivery. */
  readonly eventId: string;
}

/** What {@linkcode Inbox.once} did. */
export type OnceResult<T> =
  /** The work ran, in this transaction; `value` is what it returned. */
  | { readonly ran: true; readonly value: T }
  /** This (event, handler) was already processed: the work did not run. */
  | { readonly ran: false };

/**
 * Consumer-side deduplication: {@linkcode Inbox.once} runs a handler's
 * database effects at most once per (event id, handler name), by writing a
 * record in the same transaction as the effects. Effects outside the
 * database (an HTTP call, an email) are not covered.
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
   * @throws {TypeError} When the table name is invalid.
   */
  constructor(options: InboxOptions = {}) {
    this.#name = readTable(options, DEFAULT_INBOX_TABLE, "create Inbox");
  }

  /** The quoted table name, such as `"aftercommit_inbox"`. */
  get table(): string {
    return quoted(this.#name);
  }

  /**
   * Runs `work` in the transaction `sql` unless `handler` (a stable name of
   * at most 200 characters; renaming it makes old events look new) already
   * processed `event`. The record and `work`'s effects commit together.
   * Each call runs in a savepoint, so calls on one transaction cannot
   * overlap: await each before the next, or make one from inside another's
   * `work` (it nests; await it before that work sends anything else, which
   * would land in its savepoint; one still running when the work settles is
   * waited for).
   *
   * @throws {TypeError} When an argument is invalid, or another call on the
   * transaction has not finished; nothing is written.
   * @throws `work`'s own error, after rolling back to before the record.
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
      const whose = event !== null && typeof event === "object"
        ? ` whose eventId is ${describe(eventId)}`
        : "";
      fail(
        action,
        `expected an event with a string eventId (a DomainEvent), received ${
          describe(event)
        }${whose}; pass the event the handler received`,
      );
    }
    if (
      typeof handler !== "string" || handler === "" ||
      handler.length > MAX_HANDLER_LENGTH
    ) {
      const received = typeof handler === "string"
        ? `a string of ${handler.length} characters`
        : describe(handler);
      fail(
        action,
        `handler must be a name of 1 to ${MAX_HANDLER_LENGTH} characters such as "Stats.countSignup", received ${received}`,
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
    const outer = innermost.get(sql);
    const context = running.getStore();
    if (outer !== undefined && (outer !== context || outer.closed)) {
      fail(
        action,
        outer === context
          ? "the work of the once() that makes this call has already settled, and its savepoint is being released; make the call before that work returns, and await it"
          : "another once() on this transaction has not finished, and their savepoints would undo each other; await each call before the next (or make it from inside the other's work)",
      );
    }
    const self: Running = { closed: false };
    innermost.set(sql, self);
    const done = this.#once(sql, eventId, handler, work, self).finally(() => {
      if (outer === undefined) innermost.delete(sql);
      else innermost.set(sql, outer);
    });
    if (outer !== undefined) outer.nested = done.catch(() => {});
    return await done;
  }

  async #once<T>(
    tx: Query,
    eventId: string,
    handler: string,
    work: () => T | PromiseLike<T>,
    self: Running,
  ): Promise<OnceResult<T>> {
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
      value = await running.run(self, work);
    } catch (error) {
      // A nested call the work left in flight ends inside this savepoint.
      self.closed = true;
      await self.nested;
      // Not in a finally: a failed rollback's error must reach the caller.
      await tx`rollback to savepoint aftercommit_inbox`;
      await tx`release savepoint aftercommit_inbox`;
      throw error;
    }
    self.closed = true;
    await self.nested;
    await tx`release savepoint aftercommit_inbox`;
    return { ran: true, value };
  }

  /**
   * Deletes the records older than `olderThanSeconds`, 1,000 at a time. Keep
   * them longer than an event can come back: parked outbox events can be
   * requeued at any time.
   *
   * @returns How many records were deleted.
   * @throws {TypeError} When `sql` is not a postgres.js client or
   * `olderThanSeconds` not a number; a RangeError when it is negative.
   */
  async purge(
    sql: PostgresOutboxClient,
    options: { readonly olderThanSeconds: number },
  ): Promise<number> {
    const action = "purge inbox";
    assertClient(sql, action);
    const olderThanSeconds = options?.olderThanSeconds;
    if (typeof olderThanSeconds !== "number") {
      fail(
        action,
        `options.olderThanSeconds must be a number of seconds, received ${
          describe(olderThanSeconds)
        }; pass the retention, such as { olderThanSeconds: 30 * 86_400 }`,
      );
    }
    number(0)(olderThanSeconds, "options.olderThanSeconds", action);
    const total = await deleteInBatches(
      sql,
      this.#name,
      ["event_id", "handler"],
      sql`processed_at <
        clock_timestamp() - ${olderThanSeconds}::float8 * interval '1 second'`,
    );
    logger.debug("Deleted {count} inbox records older than {seconds} s", {
      count: total,
      seconds: olderThanSeconds,
    });
    return total;
  }

  /** Same as {@linkcode migrateInbox}, on this inbox's table. */
  async migrate(sql: PostgresOutboxClient): Promise<void> {
    assertClient(sql, "migrate inbox");
    const [name, t] = [this.#name, sql(this.#name)];
    await migrateTable(
      sql,
      `aftercommit.inbox:${name}`,
      name,
      async (tx, index) => {
        await tx`create table if not exists ${t} (
        event_id text not null,
        handler text not null,
        processed_at timestamptz not null default clock_timestamp(),
        primary key (event_id, handler)
      )`;
        await tx`create index if not exists ${
          index("processed_idx")
        } on ${t} (processed_at)`;
      },
    );
    logger.debug("Inbox table {table} is in place", { table: name });
  }
}

/**
 * Creates the inbox table when missing; safe at every start and from several
 * processes.
 *
 * @throws {TypeError} When `sql` is not a postgres.js client or the table
 * name is invalid.
 */
export async function migrateInbox(
  sql: PostgresOutboxClient,
  options: InboxOptions = {},
): Promise<void> {
  // Not redundant: a bad client is reported before a bad table name.
  assertClient(sql, "migrate inbox");
  await new Inbox(options).migrate(sql);
}

// Also types `sql` as a Query, which the looser InboxTransaction is not.
function assertTransaction(
  sql: unknown,
  action: string,
): asserts sql is Query {
  if (typeof sql !== "function") {
    expected(action, "the transaction's sql (tx.sql inside uow.run())", sql);
  }
  if (typeof (sql as { savepoint?: unknown }).savepoint !== "function") {
    fail(
      action,
      "expected the transaction's sql (tx.sql inside uow.run(), or the sql that sql.begin() gives), received a client that is not in a transaction; the record and the work's effects must commit together",
    );
  }
}
