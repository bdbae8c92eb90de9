// OutboxAdmin: see and repair the transactional outbox.
import type postgres from "postgres";
import { getLogger } from "@logtape/logtape";
import {
  boolean,
  integer,
  readOptions,
  selection,
  text,
} from "../../internal/rules.ts";
import { DEFAULT_OUTBOX_TABLE, readTable } from "./_outbox.ts";
import type { OutboxOptions, PostgresOutboxClient } from "./outbox.ts";
import { assertClient } from "./_transaction.ts";

/** The postgres.js client {@linkcode OutboxAdmin} runs on. */
export type OutboxAdminClient = PostgresOutboxClient;

const logger = getLogger(["aftercommit", "outbox"]);
type Fragment = postgres.PendingQuery<postgres.Row[]>;

/** The outbox's counts, from {@linkcode OutboxAdmin.stats}. */
export interface OutboxStats {
  /**
   * Undone events no process holds: the relay takes them next. (The relay's
   * gauge `aftercommit.outbox.pending` counts `pending + inFlight`.)
   */
  readonly pending: number;
  /** Undone events under a lease: being dispatched, or waiting to retry. */
  readonly inFlight: number;
  /** Events that used up their attempts: they wait for a requeue or purge. */
  readonly parked: number;
  /** Dispatched events, kept until the relay's retention ends. */
  readonly done: number;
  /** Seconds since the oldest undone (pending or in-flight) event was committed, or `null`. */
  readonly oldestPendingAgeSeconds: number | null;
}

/** A parked event, from {@linkcode OutboxAdmin.listParked}. */
export interface ParkedEvent {
  /** The event id. */
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
  /**
   * Only events of this type name.
   * @default {undefined (every type)}
   */
  readonly type?: string;
  /**
   * At most this many, oldest first (1 to 10,000).
   * @default {100}
   */
  readonly limit?: number;
  /**
   * Include each event's fields, which may hold personal data.
   * @default {false}
   */
  readonly includePayload?: boolean;
}

/** Which parked events a requeue or purge is about: ids, a type, or all. */
export type ParkedSelection =
  | { readonly ids: readonly string[] }
  | { readonly type: string }
  | { readonly all: true };

const eventType = text(
  undefined,
  'pass an event type name such as "user.registered"',
);

/**
 * See and repair one outbox: counts, the parked events (whose handlers
 * failed `maxAttempts` times), requeue and purge. The CLI and the dev
 * server's admin endpoints run on it.
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
   * @throws {TypeError} When `sql` is not a postgres.js client or the table
   * name is invalid.
   */
  constructor(
    sql: OutboxAdminClient,
    options: Pick<OutboxOptions, "table"> = {},
  ) {
    const action = "create OutboxAdmin";
    assertClient(sql, action);
    this.#sql = sql;
    this.#table = sql(readTable(options, DEFAULT_OUTBOX_TABLE, action));
  }

  /** Counts the events by state, in one statement over the whole table. */
  async stats(): Promise<OutboxStats> {
    const sql = this.#sql;
    const undone = sql`done_at is null and parked_at is null`;
    const [row] = await sql<[OutboxStats]>`select
        count(*) filter (where ${undone} and
          (locked_until is null or locked_until <= clock_timestamp()))::int
          as pending,
        count(*) filter (where ${undone} and
          locked_until > clock_timestamp())::int as "inFlight",
        count(*) filter (where parked_at is not null and done_at is null)::int
          as parked,
        count(*) filter (where done_at is not null)::int as done,
        extract(epoch from clock_timestamp() -
          min(created_at) filter (where ${undone}))::float8
          as "oldestPendingAgeSeconds"
      from ${this.#table}`;
    const oldest = row.oldestPendingAgeSeconds;
    return {
      ...row,
      oldestPendingAgeSeconds: oldest === null ? null : Math.max(0, oldest),
    };
  }

  /**
   * Lists parked events, oldest first.
   *
   * @throws {TypeError} When an option has the wrong type; a RangeError when
   * `limit` is out of range.
   */
  async listParked(options: ListParkedOptions = {}): Promise<ParkedEvent[]> {
    const { type, limit, includePayload } = readOptions(options, {
      type: eventType,
      limit: integer(1, 10_000, 100),
      includePayload: boolean(false),
    }, "list parked outbox events");
    const sql = this.#sql;
    const rows = await sql<(ParkedEvent & { payload?: string })[]>`select
        id, type, attempts, last_error as "lastError",
        created_at as "createdAt", parked_at as "parkedAt",
        greatest(0, extract(epoch from clock_timestamp() - created_at))::float8
          as "ageSeconds"
        ${includePayload ? sql`, payload::text as payload` : sql``}
      from ${this.#table}
      where parked_at is not null and done_at is null
        ${type === undefined ? sql`` : sql`and type = ${type}`}
      order by seq
      limit ${limit}::int`;
    return rows.map((r) => ({
      ...r,
      createdAt: new Date(r.createdAt),
      parkedAt: new Date(r.parkedAt),
      ...(includePayload ? { payload: JSON.parse(r.payload!) } : {}),
    }));
  }

  /**
   * Counts the parked events `selection` matches, for a confirmation prompt.
   *
   * @throws {TypeError} When the selection is invalid.
   */
  async countParked(selection: ParkedSelection): Promise<number> {
    const { where } = this.#where(selection, "count");
    const [row] = await this.#sql<[{ n: number }]>`
      select count(*)::int as n from ${this.#table} where ${where}`;
    return row.n;
  }

  /**
   * Makes parked events pending again with no attempts used (the last error
   * is kept), and tells how many.
   *
   * @throws {TypeError} When the selection is invalid; nothing changes then.
   */
  requeueParked(selection: ParkedSelection): Promise<number> {
    return this.#change(
      selection,
      "requeue",
      "Requeued",
      (where) =>
        this.#sql`update ${this.#table}
        set parked_at = null, attempts = 0, locked_until = null
        where ${where}`,
    );
  }

  /**
   * Deletes parked events for good, and tells how many.
   *
   * @throws {TypeError} When the selection is invalid; nothing changes then.
   */
  purgeParked(selection: ParkedSelection): Promise<number> {
    return this.#change(
      selection,
      "purge",
      "Purged",
      (where) => this.#sql`delete from ${this.#table} where ${where}`,
    );
  }

  async #change(
    selection: ParkedSelection,
    verb: string,
    done: string,
    statement: (where: Fragment) => PromiseLike<{ count: number }>,
  ): Promise<number> {
    const { where, label } = this.#where(selection, verb);
    const { count } = await statement(where);
    logger.info(`${done} {count} parked outbox events ({selection})`, {
      count,
      selection: label,
    });
    return count;
  }

  // Checks a selection and turns it into a WHERE clause.
  #where(value: unknown, verb: string): { where: Fragment; label: string } {
    const action = `${verb} parked outbox events`;
    const { ids = [], by: type, all } = selection(
      value,
      action,
      "type",
      (v) => eventType(v, "selection.type", action)!,
      { max: 10_000, noun: "event ids" },
      'pass { ids: [...] }, { type: "some.type" } or { all: true }',
    );
    const sql = this.#sql;
    const parked = sql`parked_at is not null and done_at is null`;
    if (all) return { where: parked, label: "all" };
    return type === undefined
      ? {
        where: sql`${parked} and id = any(${ids}::text[])`,
        label: `${ids.length} ids`,
      }
      : { where: sql`${parked} and type = ${type}`, label: `type ${type}` };
  }
}
