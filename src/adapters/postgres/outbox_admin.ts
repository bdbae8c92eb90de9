/**
 * {@linkcode OutboxAdmin}: see and repair the transactional outbox: counts,
 * parked events, requeue and purge.
 *
 * @module
 */
import type postgres from "postgres";
import { getLogger } from "@logtape/logtape";
import { describe } from "../../internal/describe.ts";
import {
  boolean,
  fail,
  integer,
  readOptions,
  text,
} from "../../internal/rules.ts";
import { DEFAULT_OUTBOX_TABLE, tableName } from "./_outbox.ts";
import type { OutboxOptions, PostgresOutboxClient } from "./outbox.ts";
import { assertClient } from "./_transaction.ts";

/** The postgres.js client {@linkcode OutboxAdmin} runs on. */
export type OutboxAdminClient = PostgresOutboxClient;

const logger = getLogger(["aftercommit", "outbox"]);

/** The outbox's counts, from {@linkcode OutboxAdmin.stats}. */
export interface OutboxStats {
  /** Undone events no process holds: the relay takes them next. */
  readonly pending: number;
  /**
   * Undone events under a lease: being dispatched, or waiting out the
   * delay after a failed attempt or an outage.
   */
  readonly inFlight: number;
  /** Events that used up their attempts; they wait for a requeue or a purge. */
  readonly parked: number;
  /** Dispatched events, kept until the relay's retention ends. */
  readonly done: number;
  /**
   * Seconds since the oldest undone, unparked event was committed, or
   * `null` when there is none: a growing value means the backlog does not
   * drain.
   */
  readonly oldestPendingAgeSeconds: number | null;
}

/** A parked event, from {@linkcode OutboxAdmin.listParked}. */
export interface ParkedEvent {
  /** The event id (the row's primary key). */
  readonly id: string;
  /** The event's registered type name. */
  readonly type: string;
  /** Failed attempts. */
  readonly attempts: number;
  /** The last failure, `Name: message`. */
  readonly lastError: string | null;
  /** When the event was committed. */
  readonly createdAt: Date;
  /** When it was parked. */
  readonly parkedAt: Date;
  /** Seconds since it was committed. */
  readonly ageSeconds: number;
  /** The event's fields; only with `includePayload: true`. */
  readonly payload?: unknown;
}

/** Options of {@linkcode OutboxAdmin.listParked}. */
export interface ListParkedOptions {
  /** Only events of this type name. @default {undefined (every type)} */
  readonly type?: string;
  /** At most this many, oldest first (1 to 10,000). @default {100} */
  readonly limit?: number;
  /**
   * Include each event's fields, which may hold personal data (leave it off
   * for logs and dashboards). @default {false}
   */
  readonly includePayload?: boolean;
}

/**
 * Which parked events a requeue or a purge is about: some ids, every event
 * of one type, or all of them.
 */
export type ParkedSelection =
  | { readonly ids: readonly string[] }
  | { readonly type: string }
  | { readonly all: true };

const MAX_IDS = 10_000;
const TYPE_HINT = 'pass an event type name such as "user.registered"';
const LIST_OPTIONS = {
  type: text(undefined, TYPE_HINT),
  limit: integer(1, 10_000, 100),
  includePayload: boolean(false),
};

/**
 * See and repair the outbox of one application database: counts, the
 * parked events (those whose handlers failed `maxAttempts` times), and
 * the two repairs, requeue (try them again, with a fresh set of attempts)
 * and purge (delete them). The CLI (`@aftercommit/core/cli`) and the dev
 * server's admin endpoints run on it.
 *
 * Listing shows type names, attempts, errors and ages, never the events'
 * fields unless asked (`includePayload`). Changes are logged with counts
 * only.
 *
 * @example Requeue what a bug parked, once it is fixed
 * ```ts
 * import postgres from "postgres";
 * import { OutboxAdmin } from "@aftercommit/core/postgres";
 *
 * const sql = postgres(Deno.env.get("DATABASE_URL")!);
 * const admin = new OutboxAdmin(sql);
 * const { parked } = await admin.stats();
 * const listed = await admin.listParked({ type: "user.registered" });
 * if (parked > 0 && listed.every((e) => e.lastError?.includes("smtp"))) {
 *   await admin.requeueParked({ type: "user.registered" });
 * }
 * ```
 */
export class OutboxAdmin {
  readonly #sql: postgres.Sql;
  readonly #table: postgres.Helper<string>;

  /**
   * Creates the admin view of one outbox table.
   *
   * @param sql A postgres.js client on the application database.
   * @param options `table`: the outbox table (other outbox options are
   * ignored).
   * @throws {TypeError} When `sql` is not a postgres.js client or the table
   * name is invalid.
   */
  constructor(
    sql: OutboxAdminClient,
    options: Pick<OutboxOptions, "table"> = {},
  ) {
    const action = "create OutboxAdmin";
    assertClient(sql, action);
    const { table } = readOptions(options, {
      table: tableName(DEFAULT_OUTBOX_TABLE),
    }, action);
    this.#sql = sql;
    this.#table = sql(table);
  }

  /**
   * Counts the outbox's events by state, and the age of the oldest undone
   * one. Reads the whole table (done events included) in one statement.
   *
   * @returns The counts.
   * @throws The driver's error when the statement fails.
   */
  async stats(): Promise<OutboxStats> {
    const sql = this.#sql;
    const undone = sql`done_at is null and parked_at is null`;
    const [row] = await sql<
      [{
        pending: number;
        in_flight: number;
        parked: number;
        done: number;
        oldest: number | null;
      }]
    >`select
        count(*) filter (where ${undone} and
          (locked_until is null or locked_until <= clock_timestamp()))::int
          as pending,
        count(*) filter (where ${undone} and
          locked_until > clock_timestamp())::int as in_flight,
        count(*) filter (where parked_at is not null and done_at is null)::int
          as parked,
        count(*) filter (where done_at is not null)::int as done,
        extract(epoch from clock_timestamp() -
          min(created_at) filter (where ${undone}))::float8 as oldest
      from ${this.#table}`;
    const { pending, in_flight, parked, done, oldest } = row;
    return {
      pending,
      inFlight: in_flight,
      parked,
      done,
      oldestPendingAgeSeconds: oldest === null ? null : Math.max(0, oldest),
    };
  }

  /**
   * Lists parked events, oldest first.
   *
   * @param options A type filter, a limit, and whether to include fields.
   * @returns The parked events.
   * @throws {TypeError} When an option has the wrong type.
   * @throws {RangeError} When `limit` is out of range.
   */
  async listParked(options: ListParkedOptions = {}): Promise<ParkedEvent[]> {
    const { type, limit, includePayload } = readOptions(
      options,
      LIST_OPTIONS,
      "list parked outbox events",
    );
    const sql = this.#sql;
    const rows = await sql<{
      id: string;
      type: string;
      attempts: number;
      last_error: string | null;
      created_at: Date;
      parked_at: Date;
      age: number;
      payload?: string;
    }[]>`select id, type, attempts, last_error, created_at, parked_at,
        extract(epoch from clock_timestamp() - created_at)::float8 as age
        ${includePayload ? sql`, payload::text as payload` : sql``}
      from ${this.#table}
      where parked_at is not null and done_at is null
        ${type === undefined ? sql`` : sql`and type = ${type}`}
      order by seq
      limit ${limit}::int`;
    return rows.map((r) => ({
      id: r.id,
      type: r.type,
      attempts: r.attempts,
      lastError: r.last_error,
      createdAt: new Date(r.created_at),
      parkedAt: new Date(r.parked_at),
      ageSeconds: Math.max(0, r.age),
      ...(includePayload ? { payload: JSON.parse(r.payload!) } : {}),
    }));
  }

  /**
   * Counts the parked events a requeue or purge of `selection` would
   * change (for a confirmation prompt).
   *
   * @param selection `{ ids }`, `{ type }` or `{ all: true }`.
   * @returns How many parked events match.
   * @throws {TypeError} When the selection is invalid.
   */
  async countParked(selection: ParkedSelection): Promise<number> {
    const where = this.#where(selection, "count parked outbox events");
    const [row] = await this.#sql<[{ n: number }]>`
      select count(*)::int as n from ${this.#table} where ${where.sql}`;
    return row.n;
  }

  /**
   * Requeues parked events: they become pending again with no attempts
   * used (their last error is kept), and the relay dispatches them at its
   * next pass.
   *
   * @param selection `{ ids }`, `{ type }` or `{ all: true }`.
   * @returns How many events were requeued.
   * @throws {TypeError} When the selection is invalid; nothing changes then.
   */
  async requeueParked(selection: ParkedSelection): Promise<number> {
    const where = this.#where(selection, "requeue parked outbox events");
    return await this.#change(
      "Requeued",
      where.label,
      this.#sql`update ${this.#table}
        set parked_at = null, attempts = 0, locked_until = null
        where ${where.sql}`,
    );
  }

  /**
   * Deletes parked events for good: their handlers will never run.
   *
   * @param selection `{ ids }`, `{ type }` or `{ all: true }`.
   * @returns How many events were deleted.
   * @throws {TypeError} When the selection is invalid; nothing changes then.
   */
  async purgeParked(selection: ParkedSelection): Promise<number> {
    const where = this.#where(selection, "purge parked outbox events");
    return await this.#change(
      "Purged",
      where.label,
      this.#sql`delete from ${this.#table} where ${where.sql}`,
    );
  }

  async #change(
    verb: string,
    selection: string,
    statement: PromiseLike<{ count: number }>,
  ): Promise<number> {
    const { count } = await statement;
    logger.info(`${verb} {count} parked outbox events ({selection})`, {
      count,
      selection,
    });
    return count;
  }

  // Checks a selection and turns it into a WHERE clause: exactly one of
  // { ids } (1 to 10,000 non-empty strings), { type } or { all: true }.
  #where(
    selection: unknown,
    action: string,
  ): { sql: postgres.PendingQuery<postgres.Row[]>; label: string } {
    const usage = 'pass { ids: [...] }, { type: "some.type" } or { all: true }';
    if (
      selection === null || typeof selection !== "object" ||
      Array.isArray(selection)
    ) {
      fail(
        action,
        `expected a selection, received ${describe(selection)}; ${usage}`,
      );
    }
    const given = Object.entries(selection).filter(([, v]) => v !== undefined);
    const [key, value] = given[0] ?? [];
    if (given.length !== 1 || !["ids", "type", "all"].includes(key!)) {
      fail(
        action,
        `the selection must have exactly one of ids, type or all, received ${
          given.length === 0 ? "none" : given.map(([k]) => k).join(", ")
        }; ${usage}`,
      );
    }
    const sql = this.#sql;
    const base = sql`parked_at is not null and done_at is null`;
    if (key === "all") {
      if (value !== true) {
        fail(
          action,
          `selection.all must be true, received ${describe(value)}; ${usage}`,
        );
      }
      return { sql: base, label: "all" };
    }
    if (key === "type") {
      const type = text(undefined, TYPE_HINT)(value, "selection.type", action)!;
      return { sql: sql`${base} and type = ${type}`, label: `type ${type}` };
    }
    if (
      !Array.isArray(value) || value.length === 0 || value.length > MAX_IDS ||
      !value.every((id) => typeof id === "string" && id !== "")
    ) {
      fail(
        action,
        `selection.ids must be an array of 1 to ${MAX_IDS} event ids (non-empty strings), received ${
          Array.isArray(value) ? `an array of ${value.length}` : describe(value)
        }`,
      );
    }
    return {
      sql: sql`${base} and id = any(${value}::text[])`,
      label: `${value.length} ids`,
    };
  }
}
