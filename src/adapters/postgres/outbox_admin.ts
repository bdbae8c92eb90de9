/**
 * {@linkcode OutboxAdmin}: see and repair the transactional outbox: counts,
 * parked events, requeue and purge.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import { describe } from "../../internal/describe.ts";
import { resolveTableName, type Unsafe } from "./_outbox.ts";
import {
  DEFAULT_OUTBOX_TABLE,
  type OutboxOptions,
  type PostgresOutboxClient,
} from "./outbox.ts";

/** The part of a postgres.js client {@linkcode OutboxAdmin} uses: `unsafe`. */
export type OutboxAdminClient = Pick<PostgresOutboxClient, "unsafe">;

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
  /**
   * Only events of this type name.
   *
   * @default {undefined (every type)}
   */
  readonly type?: string;
  /**
   * At most this many, oldest first (1 to 10,000).
   *
   * @default {100}
   */
  readonly limit?: number;
  /**
   * Include each event's fields. They may hold personal data: leave it off
   * for logs and dashboards.
   *
   * @default {false}
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
 * const { parked, oldestPendingAgeSeconds } = await admin.stats();
 * console.log(parked, oldestPendingAgeSeconds);
 * for (const event of await admin.listParked({ limit: 10 })) {
 *   console.log(event.type, event.attempts, event.lastError);
 * }
 * const requeued = await admin.requeueParked({ type: "user.registered" });
 * console.log(`${requeued} events will be dispatched again`);
 * ```
 */
export class OutboxAdmin {
  readonly #sql: Unsafe;
  readonly #table: string;

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
    if (typeof (sql as { unsafe?: unknown } | null)?.unsafe !== "function") {
      throw new TypeError(
        `Cannot ${action}: expected a postgres.js client with unsafe(), received ${
          describe(sql)
        }; pass the client that postgres(url) returns`,
      );
    }
    if (options === null || typeof options !== "object") {
      throw new TypeError(
        `Cannot ${action}: options must be an object, received ${
          describe(options)
        }`,
      );
    }
    const table = resolveTableName(
      options.table ?? DEFAULT_OUTBOX_TABLE,
      action,
    );
    this.#sql = sql as unknown as Unsafe;
    this.#table = table.schema === undefined
      ? `"${table.name}"`
      : `"${table.schema}"."${table.name}"`;
  }

  /**
   * Counts the outbox's events by state, and the age of the oldest undone
   * one. Reads the whole table (done events included) in one statement.
   *
   * @returns The counts.
   * @throws The driver's error when the statement fails.
   */
  async stats(): Promise<OutboxStats> {
    const undone = "done_at is null and parked_at is null";
    const [row] = await this.#sql.unsafe(
      `select
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
      from ${this.#table}`,
    ) as Record<string, unknown>[];
    return {
      pending: Number(row?.pending ?? 0),
      inFlight: Number(row?.in_flight ?? 0),
      parked: Number(row?.parked ?? 0),
      done: Number(row?.done ?? 0),
      oldestPendingAgeSeconds: row?.oldest == null
        ? null
        : Math.max(0, Number(row.oldest)),
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
    const action = "list parked outbox events";
    if (options === null || typeof options !== "object") {
      throw new TypeError(
        `Cannot ${action}: options must be an object, received ${
          describe(options)
        }`,
      );
    }
    const { type, limit = 100, includePayload = false } = options;
    if (type !== undefined) assertTypeName(type, action);
    assertLimit(limit, action);
    if (typeof includePayload !== "boolean") {
      throw new TypeError(
        `Cannot ${action}: options.includePayload must be a boolean, received ${
          describe(includePayload)
        }`,
      );
    }
    const rows = await this.#sql.unsafe(
      `select id, type, attempts, last_error, created_at, parked_at,
        extract(epoch from clock_timestamp() - created_at)::float8 as age
        ${includePayload ? ", payload::text as payload" : ""}
      from ${this.#table}
      where parked_at is not null and done_at is null
        and ($1::text is null or type = $1)
      order by seq
      limit $2::int`,
      [type ?? null, limit],
    ) as Record<string, unknown>[];
    return rows.map((r) => ({
      id: String(r.id),
      type: String(r.type),
      attempts: Number(r.attempts),
      lastError: r.last_error == null ? null : String(r.last_error),
      createdAt: new Date(r.created_at as string | Date),
      parkedAt: new Date(r.parked_at as string | Date),
      ageSeconds: Math.max(0, Number(r.age)),
      ...(includePayload ? { payload: JSON.parse(String(r.payload)) } : {}),
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
    const where = parkedWhere(selection, "count parked outbox events");
    const [row] = await this.#sql.unsafe(
      `select count(*)::int as n from ${this.#table} where ${where.sql}`,
      where.params,
    ) as { n: number }[];
    return Number(row?.n ?? 0);
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
    const where = parkedWhere(selection, "requeue parked outbox events");
    const result = await this.#sql.unsafe(
      `update ${this.#table}
      set parked_at = null, attempts = 0, locked_until = null
      where ${where.sql}`,
      where.params,
    ) as { count?: number };
    const count = Number(result.count ?? 0);
    logger.info("Requeued {count} parked outbox events ({selection})", {
      count,
      selection: where.label,
    });
    return count;
  }

  /**
   * Deletes parked events for good: their handlers will never run.
   *
   * @param selection `{ ids }`, `{ type }` or `{ all: true }`.
   * @returns How many events were deleted.
   * @throws {TypeError} When the selection is invalid; nothing changes then.
   */
  async purgeParked(selection: ParkedSelection): Promise<number> {
    const where = parkedWhere(selection, "purge parked outbox events");
    const result = await this.#sql.unsafe(
      `delete from ${this.#table} where ${where.sql}`,
      where.params,
    ) as { count?: number };
    const count = Number(result.count ?? 0);
    logger.info("Purged {count} parked outbox events ({selection})", {
      count,
      selection: where.label,
    });
    return count;
  }
}

function assertTypeName(type: unknown, action: string): void {
  if (typeof type !== "string" || type === "") {
    throw new TypeError(
      `Cannot ${action}: the type must be a non-empty event type name such as "user.registered", received ${
        type === "" ? "an empty string" : describe(type)
      }`,
    );
  }
}

function assertLimit(limit: unknown, action: string): void {
  if (typeof limit !== "number") {
    throw new TypeError(
      `Cannot ${action}: options.limit must be an integer from 1 to 10000, received ${
        describe(limit)
      }`,
    );
  }
  if (!Number.isSafeInteger(limit) || limit < 1 || limit > 10_000) {
    throw new RangeError(
      `Cannot ${action}: options.limit must be an integer from 1 to 10000, received ${limit}`,
    );
  }
}

/**
 * Checks a selection of parked events and turns it into a WHERE clause.
 *
 * @throws {TypeError} Unless it is exactly one of `{ ids }` (1 to 10,000
 * non-empty strings), `{ type }` (a non-empty string) or `{ all: true }`.
 */
export function parkedWhere(
  selection: unknown,
  action: string,
): { sql: string; params: unknown[]; label: string } {
  const usage = 'pass { ids: [...] }, { type: "some.type" } or { all: true }';
  if (
    selection === null || typeof selection !== "object" ||
    Array.isArray(selection)
  ) {
    throw new TypeError(
      `Cannot ${action}: expected a selection, received ${
        describe(selection)
      }; ${usage}`,
    );
  }
  const keys = Object.keys(selection).filter((k) =>
    (selection as Record<string, unknown>)[k] !== undefined
  );
  if (
    keys.length !== 1 || !["ids", "type", "all"].includes(keys[0]!)
  ) {
    throw new TypeError(
      `Cannot ${action}: the selection must have exactly one of ids, type or all, received ${
        keys.length === 0 ? "none" : keys.join(", ")
      }; ${usage}`,
    );
  }
  const base = "parked_at is not null and done_at is null";
  const { ids, type, all } = selection as {
    ids?: unknown;
    type?: unknown;
    all?: unknown;
  };
  if (keys[0] === "all") {
    if (all !== true) {
      throw new TypeError(
        `Cannot ${action}: selection.all must be true, received ${
          describe(all)
        }; ${usage}`,
      );
    }
    return { sql: base, params: [], label: "all" };
  }
  if (keys[0] === "type") {
    assertTypeName(type, action);
    return {
      sql: `${base} and type = $1`,
      params: [type],
      label: `type ${type}`,
    };
  }
  if (
    !Array.isArray(ids) || ids.length === 0 || ids.length > MAX_IDS ||
    !ids.every((id) => typeof id === "string" && id !== "")
  ) {
    throw new TypeError(
      `Cannot ${action}: selection.ids must be an array of 1 to ${MAX_IDS} event ids (non-empty strings), received ${
        Array.isArray(ids) ? `an array of ${ids.length}` : describe(ids)
      }`,
    );
  }
  return {
    sql: `${base} and id = any($1::text[])`,
    params: [ids],
    label: `${ids.length} ids`,
  };
}
