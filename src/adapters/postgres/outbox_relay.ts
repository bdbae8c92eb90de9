// OutboxRelay: dispatches the outbox events that no process finished (a
// crash between the commit and the mark, or a failed handler).
import { getLogger } from "@logtape/logtape";
import type { BatchObservableResult } from "@opentelemetry/api";
import { defaultBus } from "../../application/event_bus.ts";
import type { EventPublisher } from "../../application/unit_of_work.ts";
import {
  inSpan,
  MESSAGING_SYSTEM,
  meter,
  tracing,
} from "../../internal/telemetry.ts";
import { errorType } from "../../internal/loggable_error.ts";
import {
  assertPublishAll,
  fail,
  integer,
  number,
  type Read,
  readOptions,
} from "../../internal/rules.ts";
import {
  type ClaimedRow,
  deleteInBatches,
  isOutage,
  Lease,
  Outbox,
  seconds,
} from "./_outbox.ts";
import type { OutboxOptions, PostgresOutboxClient } from "./outbox.ts";
import { assertClient, type Sql, withDeadline } from "./_transaction.ts";

const logger = getLogger(["aftercommit", "outbox"]);

/** Options of {@linkcode OutboxRelay}: the outbox's own, plus the relay's. */
export interface OutboxRelayOptions extends OutboxOptions {
  /**
   * The bus to dispatch on: the units of work's.
   * @default {defaultBus}
   */
  readonly bus?: EventPublisher;
  /**
   * Events one pass claims at most.
   * @default {100}
   */
  readonly batchSize?: number;
  /**
   * Seconds between passes (none after a full batch).
   * @default {1}
   */
  readonly pollIntervalSeconds?: number;
  /**
   * Seconds done events are kept (parked ones are never deleted).
   * @default {604800 (7 days)}
   */
  readonly retentionSeconds?: number;
  /**
   * Seconds between two deletions of done events.
   * @default {60}
   */
  readonly cleanupIntervalSeconds?: number;
  /**
   * Seconds to wait after a pass found a dependency unreachable, doubling
   * while the outage lasts; such passes use up no attempts.
   * @default {1}
   */
  readonly outageDelaySeconds?: number;
  /**
   * The upper bound of the wait after an outage, in seconds.
   * @default {30}
   */
  readonly maxOutageDelaySeconds?: number;
}

/** What one pass of the relay did, in events. */
export interface OutboxRelayPass {
  /** Claimed. */
  readonly claimed: number;
  /** Dispatched and marked done. */
  readonly dispatched: number;
  /** Failed to dispatch or rebuild, parked ones included. */
  readonly failed: number;
  /** Parked by this pass. */
  readonly parked: number;
  /** Left for the next claim: the pass's lease ran out first. */
  readonly skipped: number;
  /** Put off without using up an attempt (an outage, or `stop()`). */
  readonly deferred: number;
  /** Whether the pass stopped because a dependency was unreachable. */
  readonly outage: boolean;
}

const RELAY_OPTIONS = {
  bus: (value: unknown, what: string, action: string): EventPublisher => {
    const bus = value ?? defaultBus;
    assertPublishAll(bus, what, action);
    return bus as EventPublisher;
  },
  batchSize: integer(1, 100_000, 100),
  pollIntervalSeconds: seconds(1),
  retentionSeconds: number(0, 604_800),
  cleanupIntervalSeconds: seconds(60),
  outageDelaySeconds: seconds(1),
  maxOutageDelaySeconds: seconds(30),
};
const NOTHING: OutboxRelayPass = {
  claimed: 0,
  dispatched: 0,
  failed: 0,
  parked: 0,
  skipped: 0,
  deferred: 0,
  outage: false,
};
// Dispatched events are marked done in groups of this many, or this old.
const MARK_GROUP = 20;
const MARK_GROUP_MS = 200;
// How long stop() waits beyond the dispatch timeout for the pass to end.
const STOP_GRACE_MS = 5000;

/**
 * Dispatches outbox events left undone (a crash, a failed handler), at least
 * once: every `pollIntervalSeconds` it claims the oldest undone events whose
 * lease and delay are over, dispatches them and marks them done. Several
 * relays may run at once (`FOR UPDATE SKIP LOCKED`).
 *
 * @example Start the relay next to the units of work
 * ```ts
 * import postgres from "postgres";
 * import { defaultBus } from "@aftercommit/core";
 * import {
 *   migrateOutbox,
 *   OutboxRelay,
 *   PostgresUnitOfWork,
 * } from "@aftercommit/core/postgres";
 *
 * const sql = postgres(Deno.env.get("DATABASE_URL")!);
 * await migrateOutbox(sql);
 * const uow = new PostgresUnitOfWork(sql, { bus: defaultBus, outbox: true });
 * await using relay = new OutboxRelay(sql, { bus: defaultBus }).start();
 * // … serve requests with uow.run(…) …
 * ```
 */
export class OutboxRelay implements AsyncDisposable {
  readonly #sql: Sql;
  readonly #outbox: Outbox;
  readonly #config: Read<typeof RELAY_OPTIONS>;
  #outageDelayMs = 0;
  #loop: Promise<void> | undefined;
  #unobserve: (() => void) | undefined;
  #stopping = false;
  #wake: (() => void) | undefined;
  #lastCleanup = -Infinity;

  /**
   * Creates a relay with the outbox options the units of work have;
   * {@linkcode OutboxRelay.start} starts it.
   *
   * @throws {TypeError} When `sql` is not a postgres.js client or an option
   * has the wrong type; a RangeError when a number is out of range.
   */
  constructor(sql: PostgresOutboxClient, options: OutboxRelayOptions = {}) {
    const action = "create OutboxRelay";
    assertClient(sql, action);
    this.#outbox = new Outbox(options, action);
    this.#config = readOptions(options, RELAY_OPTIONS, action);
    this.#sql = sql;
  }

  /** Whether the relay has been started and not stopped. */
  get running(): boolean {
    return this.#loop !== undefined && !this.#stopping;
  }

  /**
   * Starts the passes (a failed one is logged); does nothing if running.
   *
   * @returns The relay, for `await using relay = new OutboxRelay(…).start()`.
   * @throws {TypeError} When the relay was stopped.
   */
  start(): this {
    if (this.#stopping) {
      fail("start OutboxRelay", "it was stopped; create a new one");
    }
    if (this.#loop === undefined) {
      logger.info("Outbox relay started on {table}", {
        table: this.#outbox.table.name,
      });
      this.#loop = this.#run();
      this.#unobserve = this.#observe();
    }
    return this;
  }

  // With a meter provider: gauges of the pending and parked events, counted
  // (through the partial indexes) at each collection while the relay runs.
  #observe(): (() => void) | undefined {
    const m = meter();
    if (m === undefined) return undefined;
    const unit = "{event}";
    const pending = m.createObservableGauge("aftercommit.outbox.pending", {
      description: "Undone events in the outbox, not parked",
      unit,
    });
    const parked = m.createObservableGauge("aftercommit.outbox.parked", {
      description: "Parked events in the outbox, waiting for a repair",
      unit,
    });
    const [sql, table] = [this.#sql, this.#outbox.table.name];
    const attributes = { "db.collection.name": table };
    const callback = async (result: BatchObservableResult): Promise<void> => {
      try {
        const [row] = await sql<[{ pending: number; parked: number }]>`select
            (select count(*) from ${sql(table)}
              where done_at is null and parked_at is null)::int as pending,
            (select count(*) from ${sql(table)}
              where parked_at is not null and done_at is null)::int as parked`;
        result.observe(pending, row.pending, attributes);
        result.observe(parked, row.parked, attributes);
      } catch (error) {
        // No reading this time; the next collection asks again.
        logger.debug("Could not count the outbox for metrics: {errorType}", {
          errorType: errorType(error),
        });
      }
    };
    m.addBatchObservableCallback(callback, [pending, parked]);
    return () => m.removeBatchObservableCallback(callback, [pending, parked]);
  }

  /**
   * Runs one pass: claims up to `batchSize` events and dispatches them in
   * order; an outage stops the pass and puts the rest off. To drain the
   * outbox on demand: `while ((await relay.runOnce()).claimed > 0);`.
   *
   * @throws The driver's error when the claim fails (nothing is claimed).
   */
  async runOnce(): Promise<OutboxRelayPass> {
    const { table, leaseSeconds } = this.#outbox;
    const sentAt = performance.now();
    const rows = await table.claim(
      this.#sql,
      this.#config.batchSize,
      leaseSeconds,
    );
    if (rows.length === 0) return NOTHING;
    if (!tracing()) return await this.#pass(rows, sentAt);
    return await inSpan("outbox relay pass", {
      attributes: {
        "messaging.system": MESSAGING_SYSTEM,
        "messaging.operation.type": "receive",
        "messaging.operation.name": "outbox relay pass",
        "messaging.batch.message_count": rows.length,
        "db.collection.name": table.name,
      },
    }, async (span) => {
      const pass = await this.#pass(rows, sentAt);
      span.setAttributes({
        "aftercommit.outbox.dispatched": pass.dispatched,
        "aftercommit.outbox.failed": pass.failed,
        "aftercommit.outbox.parked": pass.parked,
        "aftercommit.outbox.outage": pass.outage,
      });
      return pass;
    });
  }

  // Dispatches the claimed rows, in order.
  async #pass(rows: ClaimedRow[], sentAt: number): Promise<OutboxRelayPass> {
    const [outbox, sql, bus] = [this.#outbox, this.#sql, this.#config.bus];
    const backoff = this.#nextOutageDelayMs() / 1000;
    const lease = new Lease(rows.map((r) => r.id), outbox.leaseSeconds, sentAt);
    const pass = { ...NOTHING, claimed: rows.length };
    let unmarked: string[] = [];
    let unmarkedSince = 0;
    const flush = async (): Promise<void> => {
      const ids = unmarked;
      unmarked = [];
      if (ids.length > 0 && await outbox.markDone(sql, ids)) {
        pass.dispatched += ids.length;
        lease.release(ids);
      }
    };
    let index = 0;
    for (; index < rows.length && !this.#stopping; index++) {
      const row = rows[index]!;
      if (lease.remainingMs() <= 0) {
        pass.skipped++;
        continue;
      }
      const failure = await outbox.dispatchRow(sql, bus, row, lease, backoff);
      if (failure === undefined) {
        if (unmarked.length === 0) unmarkedSince = performance.now();
        unmarked.push(row.id);
        if (
          unmarked.length >= MARK_GROUP ||
          performance.now() - unmarkedSince >= MARK_GROUP_MS
        ) {
          await flush();
        }
      } else if (failure.outcome === "lease-lost") {
        pass.skipped++;
      } else if (failure.outcome === "outage") {
        pass.deferred++;
        pass.outage = true;
        index++;
        break;
      } else {
        pass.failed++;
        if (failure.outcome === "parked") pass.parked++;
      }
    }
    await flush();
    // The rest (never dispatched, so still leased) wait out the backoff
    // after an outage; on stop() they are free for another relay at once.
    const rest = rows.slice(index).map((r) => r.id);
    if (rest.length > 0 && (pass.outage || this.#stopping)) {
      await outbox.deferOutage(sql, rest, pass.outage ? backoff : 0);
      pass.deferred += rest.length;
    }
    logger.info(
      "Outbox relay dispatched {dispatched} of {claimed} claimed events ({failed} failed, {parked} parked, {skipped} left for later, {deferred} put off)",
      pass,
    );
    return pass;
  }

  /**
   * Deletes events done for longer than `retentionSeconds`, 1,000 at a time;
   * the running relay calls it every `cleanupIntervalSeconds`.
   *
   * @returns How many events were deleted.
   * @throws The driver's error when the statement fails.
   */
  async cleanup(): Promise<number> {
    const sql = this.#sql;
    const total = await deleteInBatches(
      sql,
      this.#outbox.table.name,
      ["id"],
      sql`done_at is not null and done_at <
        now() - ${this.#config.retentionSeconds}::float8 * interval '1 second'`,
      () => this.#stopping,
    );
    if (total > 0) {
      logger.debug("Deleted {count} done outbox events", { count: total });
    }
    return total;
  }

  /**
   * Stops the relay: the dispatch under way finishes (or times out), the
   * dispatched events are marked done and the rest of the batch is handed
   * back. Returns within the dispatch timeout plus 5 s even if the database
   * hangs (the pass then ends by itself).
   */
  async stop(): Promise<void> {
    const wasRunning = this.running;
    this.#stopping = true;
    this.#unobserve?.();
    this.#unobserve = undefined;
    this.#wake?.();
    if (this.#loop === undefined) return;
    const table = this.#outbox.table.name;
    const ms = this.#outbox.dispatchTimeoutSeconds * 1000 + STOP_GRACE_MS;
    if (!await withDeadline(this.#loop.then(() => true), ms)) {
      logger.warn(
        "Outbox relay on {table} did not finish its pass within {ms} ms of stop(); returning, the pass ends by itself",
        { table, ms },
      );
    } else if (wasRunning) {
      logger.info("Outbox relay stopped on {table}", { table });
    }
  }

  /** Same as {@linkcode OutboxRelay.stop}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  async #run(): Promise<void> {
    const config = this.#config;
    while (!this.#stopping) {
      let full = false;
      let outage = false;
      try {
        const pass = await this.runOnce();
        outage = pass.outage;
        full = !outage && pass.claimed === config.batchSize;
        const now = performance.now();
        if (
          !outage && !this.#stopping &&
          now - this.#lastCleanup >= config.cleanupIntervalSeconds * 1000
        ) {
          this.#lastCleanup = now;
          await this.cleanup();
        }
      } catch (error) {
        outage = isOutage(error);
        if (!outage) {
          const missing = this.#outbox.table.missing(error);
          logger.error(
            `Outbox relay pass failed: ${
              missing ? "{missing}" : "{errorType}"
            }`,
            { errorType: errorType(error), missing },
          );
        } else if (this.#outageDelayMs === 0) {
          logger.warn(
            "Outbox relay cannot reach the database ({errorType}); retrying with backoff",
            { errorType: errorType(error) },
          );
        }
      }
      if (this.#stopping) break;
      if (outage) {
        const delay = this.#nextOutageDelayMs();
        this.#outageDelayMs = Math.min(
          delay * 2,
          Math.max(config.maxOutageDelaySeconds * 1000, delay),
        );
        await this.#sleep(delay);
        continue;
      }
      if (this.#outageDelayMs !== 0) {
        logger.info("Outbox relay on {table} is dispatching again", {
          table: this.#outbox.table.name,
        });
      }
      this.#outageDelayMs = 0;
      if (!full) await this.#sleep(config.pollIntervalSeconds * 1000);
    }
  }

  // The wait after the current outage's next failed pass.
  #nextOutageDelayMs(): number {
    return this.#outageDelayMs || this.#config.outageDelaySeconds * 1000;
  }

  // Waits `ms`, or until stop() wakes it.
  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}
