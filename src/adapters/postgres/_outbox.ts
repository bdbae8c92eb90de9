// The outbox's SQL and the dispatch step shared by the unit of work (right
// after its commit) and the relay (for events left undone).
//
// A row is undone while done_at and parked_at are null. locked_until is a
// lease, counted from clock_timestamp(): a row is written leased to the
// process that commits it, and the relay claims rows by extending their
// lease in one short statement (FOR UPDATE SKIP LOCKED). Dispatching runs
// with no transaction open (handlers may run units of work of their own, on
// a pool of one), within a timeout, and the lease is extended while it
// runs, so a row is dispatched twice only when its process died or could
// not reach the database for a whole lease.
import { reservedTransaction } from "./_transaction.ts";
import { getLogger } from "@logtape/logtape";
import {
  defaultEventRegistry,
  EventRegistry,
} from "../../application/outbox/event_registry.ts";
import type {
  EventDelay,
  EventPublisher,
} from "../../application/unit_of_work.ts";
import { describe, typeName } from "../../internal/describe.ts";
import { errorType } from "../../internal/loggable_error.ts";
import { isConnectionError } from "../../internal/connection_error.ts";
import {
  activeSpanContext,
  activeTraceparent,
  contextFromTraceparent,
  inSpan,
  MESSAGING_SYSTEM,
  meters,
  recordError,
  SpanKind,
  tracing,
} from "../../application/_telemetry.ts";
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
  /** The W3C trace context active when the event was written, if any. */
  readonly traceparent: string | null;
}

/** The outcome of one failed dispatch, as recorded on its row. */
export interface RecordedFailure {
  readonly attempts: number;
  readonly parked: boolean;
}

// deno-lint-ignore no-explicit-any
export type Unsafe = { unsafe(query: string, params?: any[], o?: any): any };

/** The outbox table's statements. */
export class OutboxTable {
  readonly qualified: string;
  readonly #lockKey: string;
  readonly #ddl: string[];
  readonly #insert: string;
  readonly #markDone: string;
  readonly #fail: string;
  readonly #defer: string;
  readonly #extend: string;
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
        parked_at timestamptz,
        not_before timestamptz,
        traceparent text
      )`,
      // Tables created before delayed events had no "not before", and
      // before tracing no trace context.
      `alter table ${t} add column if not exists not_before timestamptz`,
      `alter table ${t} add column if not exists traceparent text`,
      `create index if not exists "${table.name}_undone_idx" on ${t} (seq)
        where done_at is null and parked_at is null`,
      `create index if not exists "${table.name}_done_idx" on ${t} (done_at)
        where done_at is not null`,
      `create index if not exists "${table.name}_parked_idx" on ${t} (seq)
        where parked_at is not null and done_at is null`,
    ];
    // Leases count from clock_timestamp(), the moment the statement runs,
    // not now(), the start of the (possibly long) transaction. A delayed
    // event ("at" or "delay" in its record) is not leased: no process
    // dispatches it at the commit, and the relay claims it once its
    // not_before has passed.
    this.#insert = `insert into ${t}
        (id, type, payload, locked_until, not_before, traceparent)
      select e.value->>'id', e.value->>'type', e.value->'payload',
        case when e.value->>'at' is null and e.value->>'delay' is null
          then clock_timestamp() + $2::float8 * interval '1 second' end,
        coalesce((e.value->>'at')::timestamptz, clock_timestamp() +
          (e.value->>'delay')::float8 * interval '1 second'),
        $3::text
      from json_array_elements($1::text::json) with ordinality as e(value, n)
      order by e.n
      on conflict (id) do nothing`;
    // = any($1::text[]) is an index scan on the primary key.
    this.#markDone = `update ${t}
      set done_at = clock_timestamp(), locked_until = null,
        attempts = attempts + 1
      where id = any($1::text[]) and done_at is null`;
    // In SET, "attempts" is the value before this update.
    this.#fail = `update ${t}
      set attempts = attempts + 1,
        last_error = $2,
        locked_until = clock_timestamp() + least(
          $3::float8 * power(2, least(attempts, 30)), $4::float8
        ) * interval '1 second',
        parked_at = case when attempts + 1 >= $5::int then clock_timestamp() end
      where id = $1 and done_at is null
      returning attempts, parked_at is not null as parked`;
    // An outage: the rows wait out the delay; no attempt is used up.
    this.#defer = `update ${t}
      set locked_until = clock_timestamp() + $2::float8 * interval '1 second',
        last_error = case when id = $3 then $4 else last_error end
      where id = any($1::text[]) and done_at is null and parked_at is null`;
    this.#extend = `update ${t}
      set locked_until = greatest(locked_until,
        clock_timestamp() + $2::float8 * interval '1 second')
      where id = any($1::text[]) and done_at is null and parked_at is null`;
    this.#claim = `with next as (
        select id from ${t}
        where done_at is null and parked_at is null
          and (locked_until is null or locked_until <= clock_timestamp())
          and (not_before is null or not_before <= clock_timestamp())
        order by seq
        limit $1::int
        for update skip locked
      )
      update ${t} as o
      set locked_until = clock_timestamp() + $2::float8 * interval '1 second'
      from next where o.id = next.id
      returning o.id, o.seq, o.type, o.payload::text as payload, o.attempts,
        o.traceparent`;
    this.#cleanup = `delete from ${t} where id in (
        select id from ${t}
        where done_at is not null
          and done_at < now() - $1::float8 * interval '1 second'
        limit $2::int
      )`;
  }

  /** Creates the table and its indexes, under an advisory lock. */
  async migrate(sql: PostgresOutboxClient): Promise<void> {
    await reservedTransaction(sql, "begin", async (tx) => {
      // Concurrent "create table if not exists" can still collide in the
      // catalog; the lock makes starters take turns.
      await tx.unsafe("select pg_advisory_xact_lock(hashtext($1))", [
        this.#lockKey,
      ]);
      for (const statement of this.#ddl) await tx.unsafe(statement);
    });
    logger.debug("Outbox table {table} is in place", { table: this.qualified });
  }

  /**
   * Writes a batch (JSON text of {id, type, payload} records), leased, with
   * the active trace context (a W3C `traceparent`) when tracing.
   */
  async insert(tx: Unsafe, batch: string, leaseSeconds: number): Promise<void> {
    const traceparent = activeTraceparent() ?? null;
    const write = (): Promise<unknown> =>
      tx.unsafe(this.#insert, [batch, String(leaseSeconds), traceparent], {
        prepare: true,
      });
    if (traceparent === null) {
      await write();
      return;
    }
    await inSpan(`outbox write`, {
      attributes: {
        "messaging.system": MESSAGING_SYSTEM,
        "messaging.operation.type": "create",
        "messaging.operation.name": "outbox write",
        "db.collection.name": this.qualified,
      },
    }, write);
  }

  /** Marks rows done, in one statement. */
  async markDone(sql: Unsafe, ids: readonly string[]): Promise<void> {
    await sql.unsafe(this.#markDone, [ids], { prepare: true });
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

  /**
   * Puts undone rows off for `delaySeconds` without using up an attempt,
   * recording `error` on the row `failedId`.
   */
  async defer(
    sql: Unsafe,
    ids: readonly string[],
    delaySeconds: number,
    failedId: string | null,
    error: string | null,
  ): Promise<number> {
    const result = await sql.unsafe(this.#defer, [
      ids,
      String(delaySeconds),
      failedId,
      error,
    ], { prepare: true }) as { count?: number };
    return Number(result.count ?? 0);
  }

  /** Extends the lease of undone rows to `leaseSeconds` from now. */
  async extend(
    sql: Unsafe,
    ids: readonly string[],
    leaseSeconds: number,
  ): Promise<void> {
    await sql.unsafe(this.#extend, [ids, String(leaseSeconds)], {
      prepare: true,
    });
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
        traceparent: typeof r.traceparent === "string" ? r.traceparent : null,
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

/**
 * The lease a process holds on a set of rows (the events of one commit, or
 * one claim), as seen from this process: it expires `seconds` after the
 * statement that took or last extended it was sent, which is never later
 * than the database's own clock says. Rows leave it once they are marked
 * done or their failure is recorded.
 */
export class Lease {
  readonly seconds: number;
  /**
   * The error of an outage met while dispatching these rows: the rest are
   * put off without being dispatched.
   */
  outage: unknown = undefined;
  readonly #open: Set<string>;
  #expiresAt: number;

  constructor(ids: Iterable<string>, seconds: number, sentAt: number) {
    this.seconds = seconds;
    this.#open = new Set(ids);
    this.#expiresAt = sentAt + seconds * 1000;
  }

  /** The rows still held. */
  get open(): string[] {
    return [...this.#open];
  }

  /** Milliseconds until the lease ends (negative once it has). */
  remainingMs(now = performance.now()): number {
    return this.#expiresAt - now;
  }

  /** Lets go of rows that are settled. */
  release(ids: Iterable<string>): void {
    for (const id of ids) this.#open.delete(id);
  }

  /** Records an extension sent at `sentAt`. */
  renewed(sentAt: number): void {
    this.#expiresAt = Math.max(this.#expiresAt, sentAt + this.seconds * 1000);
  }
}

/** An event with its outbox identity, ready to dispatch. */
export interface OutboxItem {
  readonly id: string;
  readonly type: string;
  readonly event: object;
  /** The lease on the row: kept alive while the event is dispatched. */
  readonly lease?: Lease;
  /**
   * Whether the event has a "not before": it is left to the relay, not
   * dispatched after the commit.
   */
  readonly delayed?: boolean;
  /**
   * The trace context stored with the row, for a dispatch by the relay: its
   * span continues the trace of the transaction that wrote the event.
   */
  readonly traceparent?: string | null;
  /** How many attempts the row has used up before this dispatch. */
  readonly attempts?: number;
}

/** Events serialized for one insert. */
export interface PreparedBatch {
  /** JSON text: an array of {id, type, payload}, one per distinct event id. */
  readonly json: string;
  /** One item per event given, in order (duplicates kept). */
  readonly items: OutboxItem[];
}

/** How one dispatch failed. */
export interface DispatchFailure {
  /** The error: the handler's, a timeout, or a dependency's. */
  readonly error: unknown;
  /** Whether the event was parked by this failure. */
  readonly parked: boolean;
  /**
   * Whether a dependency was unreachable: the event was put off without
   * using up an attempt.
   */
  readonly outage: boolean;
  /** Whether the lease ran out before the dispatch began: nothing was run. */
  readonly leaseLost: boolean;
}

/**
 * The reason a dispatch's `AbortSignal` is aborted with when its handlers
 * run past `dispatchTimeoutSeconds`, and the error recorded on the event's
 * row (the attempt counts as failed).
 */
export class DispatchTimeoutError extends Error {
  /**
   * Says which timeout passed.
   *
   * @param seconds The timeout that passed.
   */
  constructor(seconds: number) {
    super(
      `the handlers did not settle within the dispatch timeout of ${seconds} s`,
    );
    this.name = "DispatchTimeoutError";
  }
}

const TIMED_OUT = Symbol("timed out");

/** The validated options and the operations of one outbox. */
export class Outbox {
  readonly table: OutboxTable;
  readonly registry: EventRegistry;
  readonly leaseSeconds: number;
  readonly maxAttempts: number;
  readonly retryDelaySeconds: number;
  readonly maxRetryDelaySeconds: number;
  readonly dispatchTimeoutSeconds: number;

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
    this.dispatchTimeoutSeconds = positive(
      options.dispatchTimeoutSeconds,
      10,
      "dispatchTimeoutSeconds",
      action,
    );
  }

  /**
   * Serializes the events of one transaction. The items share one lease,
   * counted from now (a moment before the insert); delayed events (those
   * with an entry in `delays`) have none.
   *
   * @throws {TypeError} For an event the registry cannot serialize.
   */
  prepare(
    events: readonly object[],
    delays?: readonly (EventDelay | undefined)[],
  ): PreparedBatch {
    const items: OutboxItem[] = new Array(events.length);
    const records: string[] = [];
    const seen = new Set<string>();
    const serialized = events.map((event) => this.registry.serialize(event));
    const lease = new Lease(
      serialized.filter((_, i) => delays?.[i] === undefined).map((s) =>
        s.eventId
      ),
      this.leaseSeconds,
      performance.now(),
    );
    for (let i = 0; i < events.length; i++) {
      const { type, eventId, payload } = serialized[i]!;
      const delay = delays?.[i];
      items[i] = delay === undefined
        ? { id: eventId, type, event: events[i]!, lease }
        : { id: eventId, type, event: events[i]!, delayed: true };
      if (seen.has(eventId)) continue;
      seen.add(eventId);
      const notBefore = delay === undefined
        ? ""
        : delay.at === undefined
        ? `,"delay":${delay.delaySeconds}`
        : `,"at":${JSON.stringify(delay.at.toISOString())}`;
      records.push(
        `{"id":${JSON.stringify(eventId)},"type":${
          JSON.stringify(type)
        },"payload":${payload}${notBefore}}`,
      );
    }
    return { json: `[${records.join(",")}]`, items };
  }

  /**
   * Dispatches one event through the bus, within the dispatch timeout and
   * with an `AbortSignal`, keeping its lease alive meanwhile. A handler
   * failure (or a timeout) is recorded on the row, which is parked at the
   * limit; an unreachable dependency puts the row off for `outageDelaySeconds`
   * without using up an attempt.
   *
   * @returns `undefined` when the event was dispatched, else how it failed.
   */
  dispatch(
    sql: Unsafe,
    bus: EventPublisher,
    item: OutboxItem,
    outageDelaySeconds: number = this.retryDelaySeconds,
  ): Promise<DispatchFailure | undefined> {
    const instruments = meters();
    if (instruments === undefined) {
      return this.#traced(sql, bus, item, outageDelaySeconds);
    }
    const started = performance.now();
    return this.#traced(sql, bus, item, outageDelaySeconds).then((failure) => {
      const eventType = typeName(item.event.constructor);
      instruments.dispatchDuration.record(
        (performance.now() - started) / 1000,
        {
          "aftercommit.event.type": eventType,
          "aftercommit.outcome": outcomeOf(failure),
        },
      );
      if (failure !== undefined && !failure.leaseLost) {
        instruments.failures.add(1, {
          "aftercommit.component": "outbox",
          "aftercommit.event.type": eventType,
          "error.type": errorType(failure.error),
        });
      }
      return failure;
    });
  }

  #traced(
    sql: Unsafe,
    bus: EventPublisher,
    item: OutboxItem,
    outageDelaySeconds: number,
  ): Promise<DispatchFailure | undefined> {
    if (!tracing()) return this.#dispatch(sql, bus, item, outageDelaySeconds);
    // From the relay, the span continues the writer's trace (the context
    // stored with the row) and links to the relay's pass.
    const stored = contextFromTraceparent(item.traceparent);
    const pass = stored === undefined ? undefined : activeSpanContext();
    const eventType = typeName(item.event.constructor);
    return inSpan(`outbox dispatch ${eventType}`, {
      kind: SpanKind.CONSUMER,
      parent: stored,
      ...(pass === undefined ? {} : { links: [{ context: pass }] }),
      attributes: {
        "messaging.system": MESSAGING_SYSTEM,
        "messaging.operation.type": "process",
        "messaging.operation.name": "outbox dispatch",
        "messaging.destination.name": eventType,
        "messaging.message.id": item.id,
        "aftercommit.event.type": eventType,
        "aftercommit.outbox.type": item.type,
        "aftercommit.outbox.attempt": (item.attempts ?? 0) + 1,
        "aftercommit.outbox.relay": item.traceparent !== undefined,
      },
    }, async (span) => {
      const failure = await this.#dispatch(sql, bus, item, outageDelaySeconds);
      span.setAttribute("aftercommit.outcome", outcomeOf(failure));
      if (failure !== undefined) recordError(span, failure.error);
      return failure;
    });
  }

  async #dispatch(
    sql: Unsafe,
    bus: EventPublisher,
    item: OutboxItem,
    outageDelaySeconds: number,
  ): Promise<DispatchFailure | undefined> {
    const lease = item.lease;
    if (lease?.outage !== undefined) {
      // An earlier event of the batch found a dependency unreachable.
      await this.deferOutage(
        sql,
        [item.id],
        outageDelaySeconds,
        undefined,
        undefined,
      );
      lease.release([item.id]);
      return {
        error: lease.outage,
        parked: false,
        outage: true,
        leaseLost: false,
      };
    }
    if (lease !== undefined) {
      if (lease.remainingMs() < lease.seconds * 500) {
        await this.keepLease(sql, lease);
      }
      if (lease.remainingMs() <= 0) {
        // Another process may have claimed the row: leave it to that one.
        return {
          error: new Error(
            "the lease on the event ran out before it was dispatched; the relay will dispatch it",
          ),
          parked: false,
          outage: false,
          leaseLost: true,
        };
      }
    }
    const ms = this.dispatchTimeoutSeconds * 1000;
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    let keeper: ReturnType<typeof setTimeout> | undefined;
    const keep = (): void => {
      if (lease === undefined) return;
      // At half the lease; after a failed extension, not before a tenth of
      // the lease (at most 1 s) has passed.
      keeper = setTimeout(
        () => {
          this.keepLease(sql, lease).finally(() => {
            if (keeper !== undefined) keep();
          });
        },
        Math.max(
          Math.min(1000, lease.seconds * 100),
          lease.remainingMs() - lease.seconds * 500,
        ),
      );
    };
    let outcome: unknown = undefined;
    let failed = false;
    try {
      const publishing = Promise.resolve().then(() =>
        bus.publishAll([item.event], { signal: controller.signal })
      );
      const timeout = new Promise<typeof TIMED_OUT>((resolve) => {
        timer = setTimeout(() => resolve(TIMED_OUT), ms);
      });
      keep();
      const result = await Promise.race([publishing, timeout]);
      if (result === TIMED_OUT) {
        failed = true;
        outcome = new DispatchTimeoutError(this.dispatchTimeoutSeconds);
        controller.abort(outcome);
        logger.warn(
          "Outbox event {eventType} {eventId} timed out after {timeoutSeconds} s; its handlers' signal is aborted and the attempt counts as failed",
          {
            eventType: item.type,
            eventId: item.id,
            timeoutSeconds: this.dispatchTimeoutSeconds,
          },
        );
        // A bus that honours the signal rejects with its reason at once;
        // anything else is the abandoned dispatch settling later.
        publishing.then(
          () => straySettled(item, "returned"),
          (error) => {
            if (error !== outcome) straySettled(item, errorType(error));
          },
        );
      }
    } catch (error) {
      failed = true;
      outcome = error;
    } finally {
      clearTimeout(timer);
      clearTimeout(keeper);
      keeper = undefined;
    }
    if (!failed) return undefined;
    if (isOutage(outcome)) {
      await this.deferOutage(sql, [item.id], outageDelaySeconds, item, outcome);
      if (lease !== undefined) {
        lease.release([item.id]);
        lease.outage = outcome;
      }
      return { error: outcome, parked: false, outage: true, leaseLost: false };
    }
    const recorded = await this.recordFailure(sql, item.id, item.type, outcome);
    if (recorded !== undefined) lease?.release([item.id]);
    return {
      error: outcome,
      parked: recorded?.parked ?? false,
      outage: false,
      leaseLost: false,
    };
  }

  /** Extends a lease; a failure is logged (the lease may then run out). */
  async keepLease(sql: Unsafe, lease: Lease): Promise<void> {
    const ids = lease.open;
    if (ids.length === 0) return;
    const sentAt = performance.now();
    try {
      await this.table.extend(sql, ids, lease.seconds);
      lease.renewed(sentAt);
    } catch (error) {
      logger.warn(
        "Could not extend the lease of {eventCount} outbox events: {errorType}",
        { eventCount: ids.length, errorType: errorType(error) },
      );
    }
  }

  /**
   * Puts rows off for `delaySeconds` after an outage, without using up
   * attempts; records `error` on `failed`'s row. A failure is logged (the
   * rows' leases then run out by themselves).
   */
  async deferOutage(
    sql: Unsafe,
    ids: readonly string[],
    delaySeconds: number,
    failed: { id: string; type: string } | undefined,
    error: unknown,
  ): Promise<void> {
    if (ids.length === 0) return;
    try {
      await this.table.defer(
        sql,
        ids,
        delaySeconds,
        failed?.id ?? null,
        failed === undefined ? null : formatError(error),
      );
    } catch (writeError) {
      logger.warn(
        "Could not put off {eventCount} outbox events after an outage: {errorType}",
        { eventCount: ids.length, errorType: errorType(writeError) },
      );
      return;
    }
    if (failed !== undefined) {
      logger.warn(
        "Outbox event {eventType} {eventId} could not be dispatched: a dependency is unreachable ({errorType}); retrying in {delaySeconds} s without using up an attempt",
        {
          eventType: failed.type,
          eventId: failed.id,
          errorType: errorType(error),
          delaySeconds,
        },
      );
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

function outcomeOf(failure: DispatchFailure | undefined): string {
  return failure === undefined
    ? "ok"
    : failure.leaseLost
    ? "lease-lost"
    : failure.outage
    ? "outage"
    : failure.parked
    ? "parked"
    : "failed";
}

function straySettled(item: OutboxItem, how: string): void {
  logger.info(
    "Outbox event {eventType} {eventId}: a dispatch that had timed out settled later ({how})",
    { eventType: item.type, eventId: item.id, how },
  );
}

// Beyond the lost or refused connections isConnectionError knows: a server
// with no free connection slot, socket errors by their Deno names, and
// node-postgres (under pg-boss), which reports some without a code.
const OUTAGE_CODES = new Set(["53300", "EHOSTDOWN"]);
const OUTAGE_NAMES = new Set([
  "ConnectionRefused",
  "ConnectionReset",
  "ConnectionAborted",
  "BrokenPipe",
  "NotConnected",
]);
const OUTAGE_MESSAGES =
  /^(Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error)/;

/**
 * Whether `error` (or an error it wraps: its cause, the errors of an
 * AggregateError, the error of a SuppressedError) says that a dependency
 * could not be reached, rather than that a handler failed.
 */
export function isOutage(error: unknown, depth = 0): boolean {
  if (error === null || typeof error !== "object" || depth > 8) return false;
  if (isConnectionError(error)) return true;
  const { code, name, message } = error as {
    code?: unknown;
    name?: unknown;
    message?: unknown;
  };
  if (typeof code === "string" && OUTAGE_CODES.has(code)) return true;
  if (typeof name === "string" && OUTAGE_NAMES.has(name)) return true;
  if (typeof message === "string" && OUTAGE_MESSAGES.test(message)) {
    return true;
  }
  const inner: unknown[] = [];
  if (error instanceof AggregateError) inner.push(...error.errors);
  if (error instanceof SuppressedError) inner.push(error.error);
  if ("cause" in error) inner.push((error as { cause?: unknown }).cause);
  return inner.some((e) => isOutage(e, depth + 1));
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
