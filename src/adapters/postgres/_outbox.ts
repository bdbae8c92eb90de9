// The outbox's SQL and the dispatch step shared by the unit of work (right
// after its commit) and the relay (for events left undone).
//
// A row is undone while done_at and parked_at are null. locked_until is a
// lease: a row is written leased to the process that commits it, and the
// relay claims rows by extending their lease in one short statement
// (FOR UPDATE SKIP LOCKED), dispatches them with no transaction open (their
// handlers may run units of work of their own, on a pool of one), then
// marks them done.
import { getLogger } from "@logtape/logtape";
import {
  defaultEventRegistry,
  EventRegistry,
} from "../../application/outbox/event_registry.ts";
import type { EventPublisher } from "../../application/unit_of_work.ts";
import { describe, typeName } from "../../application/_describe.ts";
import { errorType } from "../../application/_loggable_error.ts";
import type { OutboxOptions, PostgresOutboxClient } from "./outbox.ts";

const logger = getLogger(["aftercommit", "outbox"]);

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,49}$/;
const MAX_ERROR_LENGTH = 2000;

/** A table name split into its optional schema and its name. */
export interface TableName {
  readonly schema: string | undefined;
  readonly name: string;
}

/** Validates a table name of the form `name` or `schema.name`. */
export function resolveTableName(value: unknown, action: string): TableName {
  const parts = typeof value === "string" ? value.split(".") : [];
  if (
    parts.length < 1 || parts.length > 2 ||
    !parts.every((p) => IDENTIFIER.test(p))
  ) {
    throw new TypeError(
      `Cannot ${action}: options.table must be a table name or schema.name of letters, digits and _ (at most 50 characters each, not starting with a digit), received ${
        typeof value === "string" ? JSON.stringify(value) : describe(value)
      }`,
    );
  }
  return parts.length === 2
    ? { schema: parts[0]!, name: parts[1]! }
    : { schema: undefined, name: parts[0]! };
}

/** One outbox row claimed by the relay. */
export interface ClaimedRow {
  readonly id: string;
  readonly seq: number;
  readonly type: string;
  readonly payload: string;
  readonly attempts: number;
}

/** The outcome of one failed dispatch, as recorded on its row. */
export interface RecordedFailure {
  readonly attempts: number;
  readonly parked: boolean;
}

// deno-lint-ignore no-explicit-any
type Unsafe = { unsafe(query: string, params?: any[], o?: any): any };

/** The outbox table's statements. */
export class OutboxTable {
  readonly qualified: string;
  readonly #lockKey: string;
  readonly #ddl: string[];
  readonly #insert: string;
  readonly #markDone: string;
  readonly #fail: string;
  readonly #claim: string;
  readonly #cleanup: string;

  constructor(table: TableName) {
    const t = table.schema === undefined
      ? `"${table.name}"`
      : `"${table.schema}"."${table.name}"`;
    this.qualified = t;
    this.#lockKey = `aftercommit.outbox:${table.schema ?? ""}.${table.name}`;
    this.#ddl = [
      `create table if not exists ${t} (
        id text primary key,
        seq bigint generated always as identity,
        type text not null,
        payload json not null,
        created_at timestamptz not null default now(),
        locked_until timestamptz,
        attempts integer not null default 0,
        last_error text,
        done_at timestamptz,
        parked_at timestamptz
      )`,
      `create index if not exists "${table.name}_undone_idx" on ${t} (seq)
        where done_at is null and parked_at is null`,
      `create index if not exists "${table.name}_done_idx" on ${t} (done_at)
        where done_at is not null`,
    ];
    this.#insert = `insert into ${t} (id, type, payload, locked_until)
      select e.value->>'id', e.value->>'type', e.value->'payload',
        now() + $2::float8 * interval '1 second'
      from json_array_elements($1::text::json) with ordinality as e(value, n)
      order by e.n
      on conflict (id) do nothing`;
    this.#markDone = `update ${t}
      set done_at = now(), locked_until = null, attempts = attempts + 1
      where id in (select json_array_elements_text($1::text::json))
        and done_at is null`;
    // In SET, "attempts" is the value before this update.
    this.#fail = `update ${t}
      set attempts = attempts + 1,
        last_error = $2,
        locked_until = now() + least(
          $3::float8 * power(2, least(attempts, 30)), $4::float8
        ) * interval '1 second',
        parked_at = case when attempts + 1 >= $5::int then now() end
      where id = $1 and done_at is null
      returning attempts, parked_at is not null as parked`;
    this.#claim = `with next as (
        select id from ${t}
        where done_at is null and parked_at is null
          and (locked_until is null or locked_until <= now())
        order by seq
        limit $1::int
        for update skip locked
      )
      update ${t} as o
      set locked_until = now() + $2::float8 * interval '1 second'
      from next where o.id = next.id
      returning o.id, o.seq, o.type, o.payload::text as payload, o.attempts`;
    this.#cleanup = `delete from ${t} where id in (
        select id from ${t}
        where done_at is not null
          and done_at < now() - $1::float8 * interval '1 second'
        limit $2::int
      )`;
  }

  /** Creates the table and its indexes, under an advisory lock. */
  async migrate(sql: PostgresOutboxClient): Promise<void> {
    await sql.begin("", async (tx: Unsafe) => {
      // Concurrent "create table if not exists" can still collide in the
      // catalog; the lock makes starters take turns.
      await tx.unsafe("select pg_advisory_xact_lock(hashtext($1))", [
        this.#lockKey,
      ]);
      for (const statement of this.#ddl) await tx.unsafe(statement);
    });
    logger.debug("Outbox table {table} is in place", { table: this.qualified });
  }

  /** Writes a batch (JSON text of {id, type, payload} records), leased. */
  async insert(tx: Unsafe, batch: string, leaseSeconds: number): Promise<void> {
    await tx.unsafe(this.#insert, [batch, String(leaseSeconds)], {
      prepare: true,
    });
  }

  /** Marks rows done, in one statement. */
  async markDone(sql: Unsafe, ids: readonly string[]): Promise<void> {
    await sql.unsafe(this.#markDone, [JSON.stringify(ids)], { prepare: true });
  }

  /** Records a failed dispatch; parks the row at the limit. */
  async recordFailure(
    sql: Unsafe,
    id: string,
    error: string,
    retryDelaySeconds: number,
    maxRetryDelaySeconds: number,
    maxAttempts: number,
  ): Promise<RecordedFailure | undefined> {
    const rows = await sql.unsafe(this.#fail, [
      id,
      error,
      String(retryDelaySeconds),
      String(maxRetryDelaySeconds),
      String(maxAttempts),
    ], { prepare: true }) as { attempts: number; parked: boolean }[];
    const row = rows[0];
    return row === undefined
      ? undefined
      : { attempts: Number(row.attempts), parked: row.parked === true };
  }

  /** Claims up to `limit` undone rows whose lease is over, oldest first. */
  async claim(
    sql: Unsafe,
    limit: number,
    leaseSeconds: number,
  ): Promise<ClaimedRow[]> {
    const rows = await sql.unsafe(this.#claim, [
      String(limit),
      String(leaseSeconds),
    ], { prepare: true }) as Record<string, unknown>[];
    return rows
      .map((r) => ({
        id: String(r.id),
        seq: Number(r.seq),
        type: String(r.type),
        payload: String(r.payload),
        attempts: Number(r.attempts),
      }))
      .sort((a, b) => a.seq - b.seq);
  }

  /** Deletes up to `limit` rows done for longer than the retention. */
  async cleanup(
    sql: Unsafe,
    retentionSeconds: number,
    limit: number,
  ): Promise<number> {
    const result = await sql.unsafe(this.#cleanup, [
      String(retentionSeconds),
      String(limit),
    ], { prepare: true }) as { count?: number };
    return Number(result.count ?? 0);
  }
}

/** An event with its outbox identity, ready to dispatch. */
export interface OutboxItem {
  readonly id: string;
  readonly type: string;
  readonly event: object;
}

/** Events serialized for one insert. */
export interface PreparedBatch {
  /** JSON text: an array of {id, type, payload}, one per distinct event id. */
  readonly json: string;
  /** One item per event given, in order (duplicates kept). */
  readonly items: OutboxItem[];
}

/** The validated options and the operations of one outbox. */
export class Outbox {
  readonly table: OutboxTable;
  readonly registry: EventRegistry;
  readonly leaseSeconds: number;
  readonly maxAttempts: number;
  readonly retryDelaySeconds: number;
  readonly maxRetryDelaySeconds: number;

  constructor(options: OutboxOptions, action: string) {
    if (options === null || typeof options !== "object") {
      throw new TypeError(
        `Cannot ${action}: outbox options must be an object, received ${
          describe(options)
        }`,
      );
    }
    this.table = new OutboxTable(
      resolveTableName(options.table ?? "aftercommit_outbox", action),
    );
    const registry = options.registry ?? defaultEventRegistry;
    if (!(registry instanceof EventRegistry)) {
      throw new TypeError(
        `Cannot ${action}: options.registry must be an EventRegistry, received ${
          describe(registry)
        }`,
      );
    }
    this.registry = registry;
    this.leaseSeconds = positive(
      options.leaseSeconds,
      30,
      "leaseSeconds",
      action,
    );
    this.maxAttempts = positiveInteger(
      options.maxAttempts,
      10,
      "maxAttempts",
      action,
    );
    this.retryDelaySeconds = nonNegative(
      options.retryDelaySeconds,
      1,
      "retryDelaySeconds",
      action,
    );
    this.maxRetryDelaySeconds = nonNegative(
      options.maxRetryDelaySeconds,
      300,
      "maxRetryDelaySeconds",
      action,
    );
  }

  /**
   * Serializes the events of one transaction.
   *
   * @throws {TypeError} For an event the registry cannot serialize.
   */
  prepare(events: readonly object[]): PreparedBatch {
    const items: OutboxItem[] = new Array(events.length);
    const records: string[] = [];
    const seen = new Set<string>();
    for (let i = 0; i < events.length; i++) {
      const event = events[i]!;
      const { type, eventId, payload } = this.registry.serialize(event);
      items[i] = { id: eventId, type, event };
      if (seen.has(eventId)) continue;
      seen.add(eventId);
      records.push(
        `{"id":${JSON.stringify(eventId)},"type":${
          JSON.stringify(type)
        },"payload":${payload}}`,
      );
    }
    return { json: `[${records.join(",")}]`, items };
  }

  /**
   * Dispatches one event through the bus. On failure, records the error on
   * its row (and parks it at the limit) and returns the error.
   */
  async dispatch(
    sql: Unsafe,
    bus: EventPublisher,
    item: OutboxItem,
  ): Promise<{ error: unknown; parked: boolean } | undefined> {
    try {
      await bus.publishAll([item.event]);
      return undefined;
    } catch (error) {
      const recorded = await this.recordFailure(sql, item.id, item.type, error);
      return { error, parked: recorded?.parked ?? false };
    }
  }

  /** Records a failure of `id`, logs it, and tells whether it was parked. */
  async recordFailure(
    sql: Unsafe,
    id: string,
    type: string,
    error: unknown,
  ): Promise<RecordedFailure | undefined> {
    let recorded: RecordedFailure | undefined;
    try {
      recorded = await this.table.recordFailure(
        sql,
        id,
        formatError(error),
        this.retryDelaySeconds,
        this.maxRetryDelaySeconds,
        this.maxAttempts,
      );
    } catch (writeError) {
      // The row keeps its lease and stays undone: the relay retries it.
      logger.error(
        "Could not record the failure of outbox event {eventType} {eventId}: {errorType}",
        { eventType: type, eventId: id, errorType: errorType(writeError) },
      );
      return undefined;
    }
    if (recorded === undefined) return undefined;
    if (recorded.parked) {
      logger.error(
        "Parked outbox event {eventType} {eventId} after {attempts} failed attempts: {errorType}; it will not be retried",
        {
          eventType: type,
          eventId: id,
          attempts: recorded.attempts,
          errorType: errorType(error),
        },
      );
    } else {
      logger.warn(
        "Outbox event {eventType} {eventId} failed on attempt {attempts}: {errorType}; the relay will retry it",
        {
          eventType: type,
          eventId: id,
          attempts: recorded.attempts,
          errorType: errorType(error),
        },
      );
    }
    return recorded;
  }

  /** Marks events done; a failure is logged (the relay will redeliver). */
  async markDone(sql: Unsafe, ids: readonly string[]): Promise<boolean> {
    if (ids.length === 0) return true;
    try {
      await this.table.markDone(sql, ids);
      return true;
    } catch (error) {
      logger.warn(
        "Could not mark {eventCount} dispatched outbox events done: {errorType}; the relay will dispatch them again",
        { eventCount: ids.length, errorType: errorType(error) },
      );
      return false;
    }
  }
}

/** `Name: message`, and the inner errors of an AggregateError, truncated. */
export function formatError(error: unknown): string {
  let text: string;
  if (error instanceof Error) {
    text = `${error.name || typeName(error.constructor)}: ${error.message}`;
    if (error instanceof AggregateError) {
      text += ` [${
        error.errors.map((e) =>
          e instanceof Error
            ? `${e.name}: ${e.message}`
            : `thrown ${describe(e)}`
        ).join("; ")
      }]`;
    }
  } else {
    text = `thrown ${describe(error)}`;
  }
  return text.length > MAX_ERROR_LENGTH
    ? `${text.slice(0, MAX_ERROR_LENGTH - 1)}…`
    : text;
}

function checkNumber(
  value: unknown,
  name: string,
  action: string,
  what: string,
  ok: (n: number) => boolean,
): number {
  if (typeof value !== "number") {
    throw new TypeError(
      `Cannot ${action}: options.${name} must be ${what}, received ${
        describe(value)
      }`,
    );
  }
  if (!ok(value)) {
    throw new RangeError(
      `Cannot ${action}: options.${name} must be ${what}, received ${value}`,
    );
  }
  return value;
}

/** A finite number > 0, or the default. */
export function positive(
  value: unknown,
  fallback: number,
  name: string,
  action: string,
): number {
  if (value === undefined) return fallback;
  return checkNumber(
    value,
    name,
    action,
    "a finite number of seconds above 0",
    (n) => Number.isFinite(n) && n > 0,
  );
}

/** A finite number >= 0, or the default. */
export function nonNegative(
  value: unknown,
  fallback: number,
  name: string,
  action: string,
): number {
  if (value === undefined) return fallback;
  return checkNumber(
    value,
    name,
    action,
    "a finite number of seconds, 0 or more",
    (n) => Number.isFinite(n) && n >= 0,
  );
}

/** An integer >= 1, or the default. */
export function positiveInteger(
  value: unknown,
  fallback: number,
  name: string,
  action: string,
): number {
  if (value === undefined) return fallback;
  return checkNumber(
    value,
    name,
    action,
    "an integer of 1 or more",
    (n) => Number.isSafeInteger(n) && n >= 1,
  );
}
