// The outbox's SQL and the dispatch step shared by the unit of work (after
// its commit) and the relay (for events left undone). A row is undone while
// done_at and parked_at are null; locked_until is a lease counted from
// clock_timestamp(), extended while its holder dispatches with no
// transaction open, so a row is dispatched twice only when its process died
// or lost the database for a whole lease, or its mark done waited longer.
import { getLogger } from "@logtape/logtape";
import type postgres from "postgres";
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
  instance,
  integer,
  matches,
  number,
  readOptions,
  type Rule,
} from "../../internal/rules.ts";
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
} from "../../internal/telemetry.ts";
import {
  type Query,
  reservedTransaction,
  type Sql,
  withDeadline,
} from "./_transaction.ts";

const logger = getLogger(["aftercommit", "outbox"]);
type Helper = postgres.Helper<string>;
type Named = { readonly id: string; readonly type: string };

/** The table the outbox uses unless told otherwise. */
export const DEFAULT_OUTBOX_TABLE = "aftercommit_outbox";

const MAX_ERROR_LENGTH = 2000;
const DELETE_BATCH = 1000;
const validName = matches(
  /^[A-Za-z_]\w{0,49}(\.[A-Za-z_]\w{0,49})?$/,
  "a table name or schema.name of letters, digits and _ (at most 50 characters each, not starting with a digit)",
);
const tableName = (fallback: string): Rule<string> => (value, what, action) =>
  validName(value, what, action) ?? fallback;

/** Checks `options.table` alone; `fallback` when undefined. */
export function readTable(
  options: unknown,
  fallback: string,
  action: string,
): string {
  return readOptions(options, { table: tableName(fallback) }, action).table;
}

/** `"name"` or `"schema"."name"`, as postgres.js's `sql(name)` writes it. */
export function quoted(table: string): string {
  return `"${table.replace(".", '"."')}"`;
}

/**
 * Runs `create` in a transaction under the advisory lock `key` (concurrent
 * "if not exists" can still collide in the catalog), without the notices;
 * `index(suffix)` names an index of table `name` in its schema.
 */
export async function migrateTable(
  sql: Sql,
  key: string,
  name: string,
  create: (tx: Query, index: (suffix: string) => Helper) => Promise<void>,
): Promise<void> {
  const index = (suffix: string) => sql(`${name.split(".").at(-1)}_${suffix}`);
  await reservedTransaction(sql, "begin", async (tx) => {
    await tx`select pg_advisory_xact_lock(hashtext(${key}))`;
    await tx`set local client_min_messages = warning`;
    await create(tx, index);
  });
}

/**
 * Deletes the rows of `table` that `where` selects, 1,000 per statement,
 * until none is left or `stop()`; returns how many. `key` is the primary key.
 */
export async function deleteInBatches(
  sql: Sql,
  table: string,
  key: string[],
  where: postgres.PendingQuery<postgres.Row[]>,
  stop = () => false,
): Promise<number> {
  const [t, k] = [sql(table), sql(key)];
  let total = 0;
  for (;;) {
    const { count } = await sql`delete from ${t} where (${k}) in (
        select ${k} from ${t} where ${where} limit ${DELETE_BATCH}::int
      )`;
    total += count;
    if (count < DELETE_BATCH || stop()) return total;
  }
}

/** One outbox row claimed by the relay. */
export interface ClaimedRow {
  readonly id: string;
  readonly type: string;
  readonly payload: string;
  readonly attempts: number;
  readonly traceparent: string | null;
}

/** The outbox table, `name` or `schema.name`: migration, insert, claim. */
export class OutboxTable {
  constructor(readonly name: string) {}

  /** What to do when `error` says this table does not exist, or undefined. */
  missing(error: unknown): string | undefined {
    const { code, message } = Object(error) as Record<string, unknown>;
    const table = JSON.stringify(this.name);
    // Another relation (a trigger's, say) may be the one missing.
    if (code !== "42P01" || !String(message).includes(table)) return;
    return `the outbox table ${table} does not exist (SQLSTATE 42P01); run migrateOutbox(sql) with the same table option at start-up, before outbox mode or the relay uses it`;
  }

  async migrate(sql: Sql): Promise<void> {
    const t = sql(this.name);
    // Earlier releases' key ("schema.name", the schema empty when there is
    // none), so that old and new starters take turns too.
    const dot = this.name.includes(".") ? "" : ".";
    const key = `aftercommit.outbox:${dot}${this.name}`;
    await migrateTable(sql, key, this.name, async (tx, index) => {
      await tx`create table if not exists ${t} (
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
      )`;
      // Tables of releases before delayed events and before tracing.
      await tx`alter table ${t} add column if not exists not_before timestamptz`;
      await tx`alter table ${t} add column if not exists traceparent text`;
      await tx`create index if not exists ${index("undone_idx")} on ${t} (seq)
        where done_at is null and parked_at is null`;
      await tx`create index if not exists ${index("done_idx")} on ${t} (done_at)
        where done_at is not null`;
      await tx`create index if not exists ${index("parked_idx")} on ${t} (seq)
        where parked_at is not null and done_at is null`;
    });
    logger.debug("Outbox table {table} is in place", { table: this.name });
  }

  /**
   * Writes a batch (JSON text of {id, type, payload} records) leased from
   * clock_timestamp(), not from the start of the transaction; a delayed
   * record ("at" or "delay") gets no lease.
   */
  async insert(tx: Query, batch: string, leaseSeconds: number): Promise<void> {
    const traceparent = activeTraceparent() ?? null;
    const write = () =>
      tx`insert into ${tx(this.name)}
          (id, type, payload, locked_until, not_before, traceparent)
        select e.value->>'id', e.value->>'type', e.value->'payload',
          case when e.value->>'at' is null and e.value->>'delay' is null
            then clock_timestamp() + ${leaseSeconds}::float8 * interval '1 second' end,
          coalesce((e.value->>'at')::timestamptz, clock_timestamp() +
            (e.value->>'delay')::float8 * interval '1 second'),
          ${traceparent}::text
        from json_array_elements(${batch}::text::json) with ordinality as e(value, n)
        order by e.n
        on conflict (id) do nothing`;
    await (traceparent === null ? write() : inSpan(`outbox write`, {
      attributes: {
        "messaging.system": MESSAGING_SYSTEM,
        "messaging.operation.type": "create",
        "messaging.operation.name": "outbox write",
        "db.collection.name": this.name,
      },
    }, write));
  }

  /** Claims up to `limit` undone rows whose lease is over, oldest first. */
  async claim(
    sql: Query,
    limit: number,
    leaseSeconds: number,
  ): Promise<ClaimedRow[]> {
    const t = sql(this.name);
    const rows = await sql<(ClaimedRow & { seq: string })[]>`with next as (
        select id from ${t}
        where done_at is null and parked_at is null
          and (locked_until is null or locked_until <= clock_timestamp())
          and (not_before is null or not_before <= clock_timestamp())
        order by seq
        limit ${limit}::int
        for update skip locked
      )
      update ${t} as o
      set locked_until = clock_timestamp() + ${leaseSeconds}::float8 * interval '1 second'
      from next where o.id = next.id
      returning o.id, o.seq, o.type, o.payload::text as payload, o.attempts,
        o.traceparent`;
    return [...rows].sort((a, b) => Number(a.seq) - Number(b.seq));
  }
}

/**
 * The lease a process holds on the rows of one commit or one claim: it ends
 * `seconds` after the statement that took or last extended it was sent
 * (never later than by the database's clock). Settled rows leave it.
 */
export class Lease {
  /** The error of an outage met while dispatching: the rest are put off. */
  outage: unknown = undefined;
  readonly open: Set<string>;
  #expiresAt: number;

  constructor(ids: Iterable<string>, readonly seconds: number, sentAt: number) {
    this.open = new Set(ids);
    this.#expiresAt = sentAt + seconds * 1000;
  }

  /** Milliseconds until the lease ends (negative once it has). */
  remainingMs(): number {
    return this.#expiresAt - performance.now();
  }

  release(ids: Iterable<string>): void {
    for (const id of ids) this.open.delete(id);
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
  /** Kept alive while the event is dispatched. */
  readonly lease?: Lease;
  /** Has a "not before": left to the relay, not dispatched after the commit. */
  readonly delayed?: boolean;
  /** Stored with the row; set only for a dispatch by the relay. */
  readonly traceparent?: string | null;
  /** Attempts the row used up before this dispatch. */
  readonly attempts?: number;
}

/** One insert's JSON (one record per distinct id) and one item per event. */
export class PreparedBatch {
  constructor(readonly json: string, readonly items: OutboxItem[]) {}
}

/** How one dispatch failed ("lease-lost" ran nothing). */
export interface DispatchFailure {
  readonly error: unknown;
  readonly outcome: "failed" | "parked" | "outage" | "lease-lost";
}

/**
 * The reason a dispatch's `AbortSignal` is aborted with when its handlers
 * run past `dispatchTimeoutSeconds`; recorded on the row as a failed attempt.
 */
export class DispatchTimeoutError extends Error {
  /** Says which timeout, in seconds, passed. */
  constructor(seconds: number) {
    super(
      `the handlers did not settle within the dispatch timeout of ${seconds} s`,
    );
    this.name = "DispatchTimeoutError";
  }
}

/** A number of seconds greater than 0; `fallback` when undefined. */
export const seconds = (fallback: number): Rule<number> =>
  number(0, fallback, true);
const OPTIONS = {
  table: tableName(DEFAULT_OUTBOX_TABLE),
  registry: instance(EventRegistry, defaultEventRegistry),
  leaseSeconds: seconds(30),
  maxAttempts: integer(1, 1_000_000, 10),
  retryDelaySeconds: number(0, 1),
  maxRetryDelaySeconds: number(0, 300),
  dispatchTimeoutSeconds: seconds(10),
};

/** The validated options and the operations of one outbox. */
export class Outbox {
  readonly table: OutboxTable;
  readonly registry!: EventRegistry;
  readonly leaseSeconds!: number;
  readonly maxAttempts!: number;
  readonly retryDelaySeconds!: number;
  readonly maxRetryDelaySeconds!: number;
  readonly dispatchTimeoutSeconds!: number;

  /** Checks `options` (the `OutboxOptions`, named `what`) for `action`. */
  constructor(options: unknown, action: string, what = "options") {
    const { table, ...rest } = readOptions(options, OPTIONS, action, what);
    this.table = new OutboxTable(table);
    Object.assign(this, rest);
  }

  /**
   * Serializes one transaction's events (a TypeError for one the registry
   * cannot serialize); the undelayed ones share one lease counted from now.
   */
  prepare(
    events: readonly object[],
    delays?: readonly (EventDelay | undefined)[],
  ): PreparedBatch {
    const lease = new Lease([], this.leaseSeconds, performance.now());
    const records = new Map<string, string>();
    const items = events.map((event, i): OutboxItem => {
      const { type, eventId: id, payload } = this.registry.serialize(event);
      const delay = delays?.[i];
      if (!records.has(id)) {
        // The payload is JSON text already: spliced in, not parsed again.
        const { at, delaySeconds } = delay ?? {};
        const head = JSON.stringify({ id, type, at, delay: delaySeconds });
        records.set(id, `${head.slice(0, -1)},"payload":${payload}}`);
      }
      if (delay !== undefined) return { id, type, event, delayed: true };
      lease.open.add(id);
      return { id, type, event, lease };
    });
    return new PreparedBatch(`[${[...records.values()].join(",")}]`, items);
  }

  /**
   * Dispatches one event within the dispatch timeout, keeping its lease
   * alive; returns how it failed, if it did. A failure is recorded on the
   * row (parked at the limit); an unreachable dependency puts the row off for
   * `outageDelaySeconds` without using up an attempt.
   */
  async dispatch(
    sql: Query,
    bus: EventPublisher,
    item: OutboxItem,
    outageDelaySeconds: number = this.retryDelaySeconds,
  ): Promise<DispatchFailure | undefined> {
    const started = performance.now();
    const eventType = typeName(item.event.constructor);
    const failure = await inDispatchSpan(
      eventType,
      item,
      () => this.#dispatch(sql, bus, item, outageDelaySeconds),
    );
    meters()?.dispatchDuration.record((performance.now() - started) / 1000, {
      "aftercommit.event.type": eventType,
      "aftercommit.outcome": failure?.outcome ?? "ok",
    });
    if (failure !== undefined && failure.outcome !== "lease-lost") {
      countFailure(eventType, failure.error);
    }
    return failure;
  }

  async #dispatch(
    sql: Query,
    bus: EventPublisher,
    item: OutboxItem,
    outageDelaySeconds: number,
  ): Promise<DispatchFailure | undefined> {
    const lease = item.lease;
    if (lease?.outage !== undefined) {
      // An earlier event of the batch found a dependency unreachable.
      await this.deferOutage(sql, [item.id], outageDelaySeconds);
      lease.release([item.id]);
      return { error: lease.outage, outcome: "outage" };
    }
    if (lease !== undefined) {
      if (lease.remainingMs() < lease.seconds * 500) {
        await this.keepLease(sql, lease);
      }
      if (lease.remainingMs() <= 0) {
        // Another process may have claimed the row: leave it to that one.
        const error = new Error(
          "the lease on the event ran out before it was dispatched; the relay will dispatch it",
        );
        return { error, outcome: "lease-lost" };
      }
    }
    const controller = new AbortController();
    const ms = this.dispatchTimeoutSeconds * 1000;
    let keeper: ReturnType<typeof setTimeout> | undefined;
    const keep = (): void => {
      if (lease === undefined) return;
      // At half the lease; after a failed extension, not before a tenth of
      // the lease (at most 1 s) has passed. None when the deadline (plus a
      // second) comes first: the dispatch ends before the timer would fire.
      const delay = Math.max(
        Math.min(1000, lease.seconds * 100),
        lease.remainingMs() - lease.seconds * 500,
      );
      if (keeper === undefined && delay > ms + 1000) return;
      keeper = setTimeout(() => {
        this.keepLease(sql, lease).finally(() => {
          if (keeper !== undefined) keep();
        });
      }, delay);
    };
    let outcome: unknown;
    try {
      const publishing = Promise.resolve().then(() =>
        bus.publishAll([item.event], { signal: controller.signal })
      );
      keep();
      if (await withDeadline(publishing.then(() => true), ms)) return undefined;
      outcome = new DispatchTimeoutError(this.dispatchTimeoutSeconds);
      controller.abort(outcome);
      logger.warn(
        "Outbox event {eventType} {eventId} timed out after {timeoutSeconds} s; its handlers' signal is aborted and the attempt counts as failed",
        { ...about(item), timeoutSeconds: this.dispatchTimeoutSeconds },
      );
      // A bus that honours the signal rejects with its reason at once;
      // anything else is the abandoned dispatch settling later.
      const settled = (how: string) =>
        logger.info(
          "Outbox event {eventType} {eventId}: a dispatch that had timed out settled later ({how})",
          { ...about(item), how },
        );
      publishing.then(
        () => settled("returned"),
        (error) => error !== outcome && settled(errorType(error)),
      );
    } catch (error) {
      outcome = error;
    } finally {
      clearTimeout(keeper);
      keeper = undefined;
    }
    if (isOutage(outcome)) {
      await this.deferOutage(sql, [item.id], outageDelaySeconds, item, outcome);
      lease?.release([item.id]);
      if (lease !== undefined) lease.outage = outcome;
      return { error: outcome, outcome: "outage" };
    }
    return await this.#failed(sql, item, outcome, lease);
  }

  // Records a failed attempt; the lease lets go of the row once recorded.
  async #failed(
    sql: Query,
    item: Named,
    error: unknown,
    lease: Lease | undefined,
  ): Promise<DispatchFailure> {
    const recorded = await this.recordFailure(sql, item, error);
    if (recorded !== undefined) lease?.release([item.id]);
    return { error, outcome: recorded?.parked ? "parked" : "failed" };
  }

  /** Extends a lease; a failure is logged (the lease may then run out). */
  async keepLease(sql: Query, lease: Lease): Promise<void> {
    const ids = [...lease.open];
    if (ids.length === 0) return;
    const sentAt = performance.now();
    const extended = await attempt(
      sql`update ${sql(this.table.name)}
        set locked_until = greatest(locked_until,
          clock_timestamp() + ${lease.seconds}::float8 * interval '1 second')
        where id = any(${ids}::text[]) and done_at is null and parked_at is null`,
      "warn",
      "Could not extend the lease of {eventCount} outbox events: {errorType}",
      { eventCount: ids.length },
    );
    if (extended !== undefined) lease.renewed(sentAt);
  }

  /**
   * Puts rows off after an outage without using up attempts, recording
   * `error` on `failed`'s row; a failure is logged (the leases then run out).
   */
  async deferOutage(
    sql: Query,
    ids: readonly string[],
    delaySeconds: number,
    failed?: Named,
    error?: unknown,
  ): Promise<void> {
    if (ids.length === 0) return;
    const note = failed === undefined ? null : formatError(error);
    const deferred = await attempt(
      sql`update ${sql(this.table.name)}
        set locked_until = clock_timestamp() + ${delaySeconds}::float8 * interval '1 second',
          last_error = case when id = ${failed?.id ?? null}::text
            then ${note}::text else last_error end
        where id = any(${ids}::text[]) and done_at is null and parked_at is null`,
      "warn",
      "Could not put off {eventCount} outbox events after an outage: {errorType}",
      { eventCount: ids.length },
    );
    if (deferred !== undefined && failed !== undefined) {
      logger.warn(
        "Outbox event {eventType} {eventId} could not be dispatched: a dependency is unreachable ({errorType}); retrying in {delaySeconds} s without using up an attempt",
        { ...about(failed), errorType: errorType(error), delaySeconds },
      );
    }
  }

  /**
   * Rebuilds a claimed row's event and dispatches it; an event that cannot
   * be rebuilt is a failed attempt, traced and counted.
   */
  async dispatchRow(
    sql: Query,
    bus: EventPublisher,
    row: ClaimedRow,
    lease: Lease,
    outageDelaySeconds: number,
  ): Promise<DispatchFailure | undefined> {
    let event: object;
    try {
      event = this.registry.deserialize(row.type, row.payload, row.id);
    } catch (error) {
      countFailure(row.type, error);
      return await inDispatchSpan(
        row.type,
        row,
        () => this.#failed(sql, row, error, lease),
      );
    }
    const item = { ...row, event, lease };
    return await this.dispatch(sql, bus, item, outageDelaySeconds);
  }

  /** Records and logs a failure of `item`; `undefined` if not recorded. */
  async recordFailure(
    sql: Query,
    item: Named,
    error: unknown,
  ): Promise<{ attempts: number; parked: boolean } | undefined> {
    // In SET, "attempts" is the value before this update. When the update
    // fails, the row keeps its lease and stays undone: the relay retries it.
    const rows = await attempt(
      sql<{ attempts: number; parked: boolean }[]>`update ${
        sql(this.table.name)
      }
        set attempts = attempts + 1,
          last_error = ${formatError(error)},
          locked_until = clock_timestamp() + least(
            ${this.retryDelaySeconds}::float8 * power(2, least(attempts, 30)),
            ${this.maxRetryDelaySeconds}::float8
          ) * interval '1 second',
          parked_at = case when attempts + 1 >= ${this.maxAttempts}::int
            then clock_timestamp() end
        where id = ${item.id} and done_at is null
        returning attempts, parked_at is not null as parked`,
      "error",
      "Could not record the failure of outbox event {eventType} {eventId}: {errorType}",
      about(item),
    );
    const recorded = rows?.[0];
    if (recorded === undefined) return undefined;
    const { attempts, parked } = recorded;
    logger[parked ? "error" : "warn"](
      parked
        ? "Parked outbox event {eventType} {eventId} after {attempts} failed attempts: {errorType}; it will not be retried"
        : "Outbox event {eventType} {eventId} failed on attempt {attempts}: {errorType}; the relay will retry it",
      { ...about(item), attempts, errorType: errorType(error) },
    );
    return recorded;
  }

  /**
   * Marks events done; a failure is logged (the relay will redeliver). A lost
   * mark is redone by the relay, so its commit does not wait for the WAL
   * flush: a crash can lose a mark, never an event.
   */
  async markDone(sql: Query, ids: readonly string[]): Promise<boolean> {
    if (ids.length === 0) return true;
    try {
      // Unnamed, so planned each run (unsafe() is the driver's only way): a
      // prepared statement's generic plan, made while the table was small,
      // stays a sequential scan as it grows.
      await sql.unsafe(
        `update ${quoted(this.table.name)}
        set done_at = clock_timestamp(), locked_until = null,
          attempts = attempts + 1
        where id = any($1::text[]) and done_at is null
          and (select set_config('synchronous_commit', 'off', true)) = 'off'`,
        [ids as string[]],
        { prepare: false },
      );
      return true;
    } catch (error) {
      const ended = (error as { code?: unknown }).code === "CONNECTION_ENDED";
      logger.warn(
        ended
          ? "Could not mark {eventCount} dispatched outbox events done: the client was ended first (await uow.flush() and relay.stop() before sql.end()); the relay will dispatch them again"
          : "Could not mark {eventCount} dispatched outbox events done: {errorType}; the relay will dispatch them again",
        { eventCount: ids.length, errorType: errorType(error) },
      );
      return false;
    }
  }
}

// Runs `work` in an `outbox dispatch` span when tracing. From the relay, the
// span continues the writer's trace (stored with the row) and links the pass.
async function inDispatchSpan(
  eventType: string,
  item: Pick<OutboxItem, "id" | "type" | "traceparent" | "attempts">,
  work: () => Promise<DispatchFailure | undefined>,
): Promise<DispatchFailure | undefined> {
  if (!tracing()) return await work();
  const stored = contextFromTraceparent(item.traceparent);
  const pass = stored === undefined ? undefined : activeSpanContext();
  return await inSpan(`outbox dispatch ${eventType}`, {
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
    const failure = await work();
    span.setAttribute("aftercommit.outcome", failure?.outcome ?? "ok");
    if (failure?.error !== undefined) recordError(span, failure.error);
    return failure;
  });
}

function countFailure(eventType: string, error: unknown): void {
  meters()?.failures.add(1, {
    "aftercommit.component": "outbox",
    "aftercommit.event.type": eventType,
    "error.type": errorType(error),
  });
}

// Runs one statement; a failure is logged with its type and gives undefined.
async function attempt<T>(
  statement: PromiseLike<T>,
  level: "warn" | "error",
  message: string,
  fields: Record<string, unknown>,
): Promise<T | undefined> {
  try {
    return await statement;
  } catch (error) {
    logger[level](message, { ...fields, errorType: errorType(error) });
    return undefined;
  }
}

const about = (item: Named) => ({ eventType: item.type, eventId: item.id });

// Beyond isConnectionError's lost or refused connections: a server with no
// free slot, Deno's socket error names, and node-postgres (under pg-boss),
// which reports some without a code.
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
 * Whether `error`, or one it wraps (cause, AggregateError's errors,
 * SuppressedError's error), says a dependency was unreachable.
 */
export function isOutage(error: unknown, depth = 0): boolean {
  if (error === null || typeof error !== "object" || depth > 8) return false;
  const { code, name, message } = error as Record<string, unknown>;
  if (
    isConnectionError(error) || OUTAGE_CODES.has(code as string) ||
    OUTAGE_NAMES.has(name as string) ||
    (typeof message === "string" && OUTAGE_MESSAGES.test(message))
  ) {
    return true;
  }
  const inner: unknown[] = [];
  if (error instanceof AggregateError) inner.push(...error.errors);
  if (error instanceof SuppressedError) inner.push(error.error);
  if ("cause" in error) inner.push(error.cause);
  return inner.some((e) => isOutage(e, depth + 1));
}

/** `Name: message`, and the inner errors of an AggregateError, truncated. */
export function formatError(error: unknown): string {
  const one = (e: unknown) =>
    e instanceof Error
      ? `${e.name || typeName(e.constructor)}: ${e.message}`
      : `thrown ${describe(e)}`;
  let text = one(error);
  if (error instanceof AggregateError) {
    text += ` [${error.errors.map(one).join("; ")}]`;
  }
  return text.length > MAX_ERROR_LENGTH
    ? `${text.slice(0, MAX_ERROR_LENGTH - 1)}…`
    : text;
}
