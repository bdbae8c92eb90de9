/**
 * The Unit of Work base: one transaction per `run`, and the events its
 * aggregates recorded published after the commit, never before.
 *
 * This module loads no database driver; adapters such as
 * `@aftercommit/core/postgres` extend {@linkcode UnitOfWork}.
 *
 * @module
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { getLogger } from "@logtape/logtape";
import { AggregateRoot } from "../domain/aggregate_root.ts";
import { recordOrderOf, stampRecordOrder } from "../domain/record_order.ts";
import { DebugGate } from "./_debug_gate.ts";
import { assertDelaySeconds, assertFutureDate } from "./_delay.ts";
import { describe } from "../internal/describe.ts";
import { errorType } from "../internal/loggable_error.ts";
import { assertPublishAll, fail } from "../internal/rules.ts";
import { inSpan, tracing } from "../internal/telemetry.ts";
import { defaultBus, type EventBus } from "./event_bus.ts";

const logger = getLogger(["aftercommit", "uow"]);
const debugGate = new DebugGate(logger);

/**
 * When a delayed event may be delivered: `delaySeconds` after the commit, or
 * `at` a moment. Give one of the two. Only a unit of work with an outbox
 * can hold an event until then (`PostgresUnitOfWork` with `outbox: true`).
 */
export interface PublishAfterCommitOptions {
  /**
   * Seconds after the commit before the event may be delivered (counted on
   * the database's clock, from the write of the event). A finite number, 0
   * or more; 0 means no delay.
   *
   * @default {0}
   */
  readonly delaySeconds?: number;
  /**
   * The moment from which the event may be delivered: a valid `Date` that
   * is not in the past when `publishAfterCommit` is called.
   *
   * @default {undefined (as soon as the transaction commits)}
   */
  readonly at?: Date;
}

/**
 * A delayed event's "not before", as a unit of work hands it to
 * {@linkcode UnitOfWork.beforeCommit}: seconds after the write, or a moment.
 */
export type EventDelay =
  | { readonly delaySeconds: number; readonly at?: undefined }
  | { readonly at: Date; readonly delaySeconds?: undefined };

/**
 * What `work` receives besides the driver's transaction handle: a way to
 * name the aggregates whose events publish after the commit, and to add
 * events that no aggregate owns.
 */
export interface UnitOfWorkContext {
  /**
   * Tracks an aggregate: after the commit, the events it recorded (before or
   * after this call, until `work` returns) are published. Tracking the same
   * aggregate twice tracks it once. Repositories usually call it.
   *
   * @typeParam A The aggregate's type.
   * @param aggregate An {@linkcode AggregateRoot}.
   * @returns The same aggregate, so a repository can write `return tx.track(user)`.
   * @throws {TypeError} When `aggregate` is not an `AggregateRoot`, or when
   * `work` has already returned.
   */
  track<A extends AggregateRoot>(aggregate: A): A;
  /**
   * Publishes `event` after the commit, in the order it was added among the
   * events the tracked aggregates recorded; dropped on rollback.
   *
   * With `{ delaySeconds }` or `{ at }` (outbox mode only) the event is
   * written to the outbox with that "not before", is not dispatched right
   * after the commit, and the outbox relay delivers it once its time has
   * come (at its next pass: no earlier, up to `pollIntervalSeconds` later).
   *
   * @param event The event: any class instance.
   * @param options A delay: `delaySeconds` or `at`.
   * @throws {TypeError} When `event` is not an object, when `work` has
   * already returned, when `options` is not an object or has both
   * `delaySeconds` and `at`, or when a delay is asked of a unit of work
   * without an outbox.
   * @throws {RangeError} When `delaySeconds` is negative or not finite, or
   * `at` is an invalid `Date` or in the past.
   */
  publishAfterCommit(event: object, options?: PublishAfterCommitOptions): void;
}

/**
 * The part of an event bus a Unit of Work uses: {@linkcode EventBus} has it.
 *
 * `batch`, when present, runs `work` (which may call `publishAll` several
 * times) as one batch: a batching job queue's publisher writes the jobs of
 * all those calls at once, when `work` has finished. The outbox dispatches
 * the events of one run inside it.
 */
export type EventPublisher = Pick<EventBus, "publishAll"> & {
  batch?<T>(work: () => Promise<T>): Promise<T>;
};

/** Options of {@linkcode UnitOfWork}. */
export interface UnitOfWorkOptions {
  /**
   * The bus the events are published on after each commit.
   *
   * @default {defaultBus}
   */
  readonly bus?: EventPublisher;
}

/**
 * Options of {@linkcode PublishAfterCommitError} and
 * {@linkcode CommitOutcomeUnknownError}.
 */
export interface PublishAfterCommitErrorOptions extends ErrorOptions {
  /**
   * Whether an outbox keeps the run's events, so that the relay delivers
   * them (the failed ones, or all of them if an unknown commit did commit).
   *
   * @default {false}
   */
  readonly relayWillRetry?: boolean;
}

/** Options of {@linkcode CommitOutcomeUnknownError}. */
export type CommitOutcomeUnknownErrorOptions = PublishAfterCommitErrorOptions;

/**
 * The base of the errors a {@linkcode UnitOfWork} throws for a transaction
 * that did not commit, or that committed but whose events did not all
 * publish. `committed` tells the two apart; `cause` holds the driver's or the
 * handler's error; `relayWillRetry` says whether an outbox keeps the events.
 *
 * An error thrown by `work` itself is not wrapped: `run` rethrows it as is,
 * after the rollback.
 *
 * @example Tell "nothing happened" from "saved, but a handler failed"
 * ```ts
 * import assert from "node:assert/strict";
 * import { CommitError, UnitOfWorkError } from "@aftercommit/core";
 *
 * function describeFailure(error: unknown): string {
 *   if (error instanceof UnitOfWorkError) {
 *     return error.committed ? "saved, follow-up failed" : "not saved";
 *   }
 *   return "not saved: the work failed";
 * }
 * assert.equal(describeFailure(new Error("boom")), "not saved: the work failed");
 * assert.equal(describeFailure(new CommitError("refused")), "not saved");
 * ```
 */
export abstract class UnitOfWorkError extends Error {
  /**
   * Whether the transaction's changes were committed: `undefined` only for a
   * {@linkcode CommitOutcomeUnknownError}, when the database could not be
   * asked.
   */
  abstract readonly committed: boolean | undefined;
  /**
   * Whether an outbox keeps the events, for the relay to deliver (`false`
   * without an outbox: events that did not publish are lost).
   */
  readonly relayWillRetry: boolean;

  /**
   * Wraps the driver's or the handler's error.
   *
   * @param message What failed, without field values.
   * @param options `cause`: the wrapped error; `relayWillRetry`.
   */
  constructor(message: string, options?: PublishAfterCommitErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.relayWillRetry = options?.relayWillRetry ?? false;
  }
}

/**
 * The transaction did not commit: it could not begin, the connection failed
 * while `work` ran, the pre-commit step failed, or the database refused the
 * `COMMIT` (a deferred constraint, a serialization failure). No event was
 * published. `cause` is the driver's error.
 *
 * When the connection is lost during the `COMMIT` itself, an adapter that
 * can ask the database (the postgres.js one does) finds out before it
 * answers: a transaction that did commit is reported as committed, and one
 * whose outcome cannot be learnt as a {@linkcode CommitOutcomeUnknownError}.
 *
 * @example Retry on a serialization failure
 * ```ts
 * import assert from "node:assert/strict";
 * import { CommitError } from "@aftercommit/core";
 *
 * function isRetryable(error: unknown): boolean {
 *   return error instanceof CommitError &&
 *     (error.cause as { code?: string } | undefined)?.code === "40001";
 * }
 * const conflict = Object.assign(new Error("could not serialize"), { code: "40001" });
 * assert.equal(isRetryable(new CommitError("refused", { cause: conflict })), true);
 * assert.equal(isRetryable(new Error("boom")), false);
 * ```
 */
export class CommitError extends UnitOfWorkError {
  /** Always `false`: the changes were not committed. */
  readonly committed: false = false;
}

/**
 * The connection was lost while `COMMIT` was in flight, and the database
 * could not be reached within the bound to ask whether the transaction
 * committed (or, after a crash restart, could no longer tell: see the
 * postgres adapter). `committed` is `undefined`: the changes may or may not be
 * saved. No event was published; in outbox mode (`relayWillRetry: true`) the
 * relay delivers them if the transaction did commit.
 *
 * A Unit of Work throws it only when it cannot find the truth out: when the
 * database answers, a committed transaction is reported as committed (its
 * events are published) and an aborted one as a {@linkcode CommitError}.
 *
 * @example Check before retrying a request whose outcome is unknown
 * ```ts
 * import assert from "node:assert/strict";
 * import { CommitOutcomeUnknownError } from "@aftercommit/core";
 *
 * const error = new CommitOutcomeUnknownError(
 *   "Unit of work outcome unknown: the connection was lost during COMMIT",
 * );
 * assert.equal(error.committed, undefined);
 * assert.equal(error.relayWillRetry, false);
 * ```
 */
export class CommitOutcomeUnknownError extends UnitOfWorkError {
  /** Always `undefined`: whether the changes were committed is unknown. */
  readonly committed: undefined = undefined;
}

/**
 * The transaction committed, then publishing its events failed: a handler
 * threw (`cause` is its error, or an `AggregateError` under the `"collect"`
 * policy or when several events failed). The data is saved.
 *
 * Without an outbox, the events after the failing handler were not
 * published and never will be. With the outbox of
 * `@aftercommit/core/postgres`, `relayWillRetry` is `true`: the failed events
 * stay in the outbox and the relay dispatches them again, so a caller may
 * treat the request as done.
 *
 * @example Treat a handler failure after the commit as a saved request
 * ```ts
 * import assert from "node:assert/strict";
 * import { PublishAfterCommitError } from "@aftercommit/core";
 *
 * const error = new PublishAfterCommitError(
 *   "Unit of work committed, but publishing its events failed",
 *   { cause: new Error("mail server down"), relayWillRetry: true },
 * );
 * assert.deepEqual([error.committed, error.relayWillRetry], [true, true]);
 * ```
 */
export class PublishAfterCommitError extends UnitOfWorkError {
  /** Always `true`: the changes were committed. */
  readonly committed: true = true;
}

// The events of one `run`. Never shared between runs.
class Scope implements UnitOfWorkContext {
  state: "open" | "committing" | "closed" = "open";
  readonly #aggregates: AggregateRoot[] = [];
  readonly #explicit: object[] = [];
  #delays: Map<object, EventDelay> | undefined;

  constructor(
    readonly resource: object,
    readonly parent: Scope | undefined,
    readonly acceptsDelays: boolean,
  ) {}

  // Arrow functions: adapters hand them out unbound in their contexts.
  readonly track = <A extends AggregateRoot>(aggregate: A): A => {
    if (!(aggregate instanceof AggregateRoot)) {
      throw new TypeError(
        `Cannot track ${
          describe(aggregate)
        }: expected an AggregateRoot; extend AggregateRoot, or use publishAfterCommit(event) for an event no aggregate owns`,
      );
    }
    this.#assertOpen("track an aggregate");
    if (!this.#aggregates.includes(aggregate)) this.#aggregates.push(aggregate);
    return aggregate;
  };

  readonly publishAfterCommit = (
    event: object,
    options?: PublishAfterCommitOptions,
  ): void => {
    const action = "publish after commit";
    if (event === null || typeof event !== "object") {
      fail(
        action,
        `expected an event object (a class instance), received ${
          describe(event)
        }`,
      );
    }
    const delay = options === undefined ? undefined : this.#delayOf(options);
    this.#assertOpen("publish an event after commit");
    stampRecordOrder(event);
    this.#explicit.push(event);
    if (delay !== undefined) (this.#delays ??= new Map()).set(event, delay);
  };

  #delayOf(options: PublishAfterCommitOptions): EventDelay | undefined {
    const action = "publish after commit";
    if (options === null || typeof options !== "object") {
      fail(
        action,
        `options must be an object such as { delaySeconds: 60 } or { at: date }, received ${
          describe(options)
        }`,
      );
    }
    const { delaySeconds, at } = options;
    if (delaySeconds !== undefined && at !== undefined) {
      fail(action, "pass options.delaySeconds or options.at, not both");
    }
    let delay: EventDelay | undefined;
    if (at !== undefined) {
      assertFutureDate(at, "options.at", action);
      delay = { at };
    } else if (delaySeconds !== undefined) {
      assertDelaySeconds(delaySeconds, "options.delaySeconds", action);
      if (delaySeconds > 0) delay = { delaySeconds };
    }
    if (delay !== undefined && !this.acceptsDelays) {
      fail(
        `${action} with a delay`,
        "this unit of work has no outbox to hold the event until its time; use outbox mode (PostgresUnitOfWork with outbox: true, and an OutboxRelay), or publish without a delay",
      );
    }
    return delay;
  }

  #assertOpen(action: string): void {
    if (this.state !== "open") {
      fail(
        action,
        "this unit of work's work has already returned; call it inside the function given to run()",
      );
    }
  }

  /**
   * Pulls every event, in the order recorded, and closes the scope to new
   * ones; with each event's delay (parallel), or undefined when none has one.
   */
  collect(): [object[], (EventDelay | undefined)[] | undefined] {
    this.state = "committing";
    const aggregates = this.#aggregates;
    let events = this.#explicit;
    if (aggregates.length === 1 && events.length === 0) {
      events = aggregates[0]!.pullEvents();
    } else if (aggregates.length > 0) {
      events = [...aggregates.flatMap((a) => a.pullEvents()), ...events]
        // Stable: events without a recorded order keep their place at the end.
        .sort((a, b) => recordOrderOf(a) - recordOrderOf(b));
    }
    const delays = this.#delays;
    return [events, delays && events.map((event) => delays.get(event))];
  }

  /** Drops the events of a rolled-back run, so a retry cannot publish them. */
  discard(): void {
    if (this.state === "open") {
      for (const aggregate of this.#aggregates) aggregate.pullEvents();
    }
    this.state = "closed";
  }
}

// Which runs are open in the current async flow, to refuse a nested run
// (which would wait for a second connection, or deadlock on a pool of one,
// and would not be part of the outer transaction anyway).
const openScopes = new AsyncLocalStorage<Scope>();

const NOT_COMMITTED = {
  "begin": "Unit of work not committed: the transaction could not begin",
  "work": "Unit of work not committed: the transaction failed while work ran",
  "before-commit":
    "Unit of work not committed: the pre-commit step failed, so the transaction rolled back",
  "commit": "Unit of work not committed: COMMIT failed",
};

/**
 * A Unit of Work: {@linkcode UnitOfWork.run} runs a function in one database
 * transaction, and after the commit publishes the events that the tracked
 * aggregates recorded, plus the explicit ones, in the order they were
 * recorded. On rollback nothing is published.
 *
 * Adapters extend it for one driver by implementing
 * {@linkcode UnitOfWork.transaction} and {@linkcode UnitOfWork.createContext};
 * an outbox also overrides {@linkcode UnitOfWork.beforeCommit} (which
 * returns what it wrote) and {@linkcode UnitOfWork.publishCommitted} (which
 * receives it). Events are collected per `run`, so concurrent runs on one
 * instance each publish exactly their own.
 *
 * @typeParam H The driver's transaction handle (for postgres.js, a `TransactionSql`).
 * @typeParam C The context `work` receives.
 * @typeParam W What `beforeCommit` hands to `publishCommitted` for one run.
 *
 * @example A Unit of Work over an in-memory "database"
 * ```ts
 * import assert from "node:assert/strict";
 * import {
 *   AggregateRoot,
 *   EventBus,
 *   UnitOfWork,
 *   type UnitOfWorkContext,
 * } from "@aftercommit/core";
 *
 * class Deposited {
 *   constructor(readonly amount: number) {}
 * }
 * class Account extends AggregateRoot {
 *   balance = 0;
 *   deposit(amount: number): void {
 *     this.balance += amount;
 *     this.recordEvent(new Deposited(amount));
 *   }
 * }
 *
 * type Rows = Map<string, number>;
 * interface MemoryContext extends UnitOfWorkContext {
 *   rows: Rows;
 * }
 *
 * class MemoryUnitOfWork extends UnitOfWork<Rows, MemoryContext> {
 *   readonly committed: Rows = new Map();
 *   protected override async transaction<T>(
 *     body: (rows: Rows) => Promise<T>,
 *   ): Promise<T> {
 *     const rows = new Map(this.committed);
 *     const result = await body(rows); // throws: nothing is copied back
 *     for (const [key, value] of rows) this.committed.set(key, value);
 *     return result;
 *   }
 *   protected override createContext(
 *     rows: Rows,
 *     context: UnitOfWorkContext,
 *   ): MemoryContext {
 *     return { rows, track: context.track, publishAfterCommit: context.publishAfterCommit };
 *   }
 * }
 *
 * const bus = new EventBus();
 * const deposits: number[] = [];
 * bus.register(Deposited, (e) => {
 *   deposits.push(e.amount);
 * });
 * const uow = new MemoryUnitOfWork({ bus });
 * await uow.run((tx) => {
 *   const account = tx.track(new Account());
 *   account.deposit(10);
 *   tx.rows.set("a1", account.balance);
 * });
 * assert.deepEqual(deposits, [10]); // published after the commit
 * assert.equal(uow.committed.get("a1"), 10);
 * ```
 */
export abstract class UnitOfWork<H, C extends UnitOfWorkContext, W = void> {
  /** The bus events are published on after each commit. */
  readonly bus: EventPublisher;

  /**
   * Creates a Unit of Work that publishes on `options.bus`.
   *
   * @param options The bus.
   * @throws {TypeError} When `options.bus` has no `publishAll` method.
   */
  constructor(options: UnitOfWorkOptions = {}) {
    const bus = options.bus ?? defaultBus;
    assertPublishAll(bus, "options.bus", "create unit of work");
    this.bus = bus;
  }

  /**
   * Runs `work` in a new transaction. When `work` resolves, commits, then
   * publishes the collected events through the bus, one after another.
   *
   * - `work` throws: rolls back, publishes nothing, rethrows `work`'s error.
   * - The transaction does not commit: publishes nothing, throws a
   *   {@linkcode CommitError} whose `cause` is the driver's error.
   * - A handler throws after the commit: throws a
   *   {@linkcode PublishAfterCommitError} (`committed: true`) whose `cause`
   *   is the handler's error.
   *
   * A handler may call `run` again: that is a new transaction, whose events
   * publish after its own commit. Calling `run` from inside `work` (while the
   * transaction is open) is refused.
   *
   * @typeParam T What `work` returns.
   * @param work The function to run in the transaction. It receives the
   * context: the driver's transaction handle, `track` and `publishAfterCommit`.
   * @returns What `work` returned, once the events are published.
   * @throws {TypeError} When `work` is not a function, or when `run` is
   * called inside the open transaction of a unit of work on the same
   * resource.
   * @throws {CommitError} When the transaction did not commit.
   * @throws {CommitOutcomeUnknownError} When the connection was lost during
   * `COMMIT` and the adapter could not learn the outcome.
   * @throws {PublishAfterCommitError} When it committed and a handler failed.
   * @throws `work`'s own error, after the rollback.
   */
  run<T>(work: (context: C) => T | PromiseLike<T>): Promise<T> {
    if (!tracing()) return this.#run(work);
    return inSpan("uow.run", {}, async (span) => {
      let outcome = "committed";
      try {
        return await this.#run(work);
      } catch (error) {
        const committed = error instanceof UnitOfWorkError
          ? error.committed
          : false;
        outcome = committed === undefined
          ? "unknown"
          : committed
          ? "committed"
          : "rolled-back";
        throw error;
      } finally {
        span.setAttribute("aftercommit.uow.outcome", outcome);
      }
    });
  }

  // One run, start to end: refuse nesting, run `work` and the pre-commit
  // step in the transaction, classify a failure, publish after the commit.
  async #run<T>(work: (context: C) => T | PromiseLike<T>): Promise<T> {
    if (typeof work !== "function") {
      fail(
        "run unit of work",
        `expected a function that receives the transaction context, received ${
          describe(work)
        }; pass (tx) => { … }`,
      );
    }
    const resource = this.resource;
    const outer = openScopes.getStore();
    for (let s = outer; s !== undefined; s = s.parent) {
      if (s.resource === resource && s.state !== "closed") {
        fail(
          "run a unit of work inside another one's open transaction",
          "it would need a second connection and would not be part of the open transaction; use the outer context inside work, or start the new unit of work from an event handler, which runs after the commit",
        );
      }
    }
    const scope = new Scope(resource, outer, this.acceptsDelayedEvents);
    let stage: keyof typeof NOT_COMMITTED = "begin";
    let workFailed = false;
    let committed: { result: T; events: object[]; written: W };
    try {
      committed = await openScopes.run(
        scope,
        () =>
          this.transaction(async (handle) => {
            stage = "work";
            let result: T;
            try {
              result = await work(this.createContext(handle, scope));
            } catch (error) {
              workFailed = true;
              throw error;
            }
            stage = "before-commit";
            const [events, delays] = scope.collect();
            const written = await this.beforeCommit(handle, events, delays);
            stage = "commit";
            return { result, events, written };
          }),
      );
    } catch (error) {
      scope.discard();
      if (workFailed) {
        logger.info("Rolled back unit of work: work threw {errorType}", {
          errorType: errorType(error),
        });
        throw error;
      }
      const unknown = error instanceof CommitOutcomeUnknownError;
      const message = unknown ? error.message : NOT_COMMITTED[stage];
      logger.error("{message}: {errorType}", {
        message,
        errorType: errorType(unknown ? error.cause : error),
      });
      throw unknown ? error : new CommitError(message, { cause: error });
    }
    scope.state = "closed";
    const { result, events, written } = committed;
    const debug = debugGate.enabled;
    if (debug) {
      logger.debug(
        "Committed unit of work with {eventCount} events to publish",
        { eventCount: events.length },
      );
    }
    if (events.length === 0) return result;
    try {
      await this.publishCommitted(events, written);
    } catch (error) {
      if (error instanceof PublishAfterCommitError) throw error;
      logger.error(
        "Unit of work committed, but publishing its {eventCount} events failed: {errorType}",
        { eventCount: events.length, errorType: errorType(error) },
      );
      throw new PublishAfterCommitError(
        "Unit of work committed, but publishing its events failed",
        { cause: error },
      );
    }
    if (debug) {
      logger.debug("Published {eventCount} events after commit", {
        eventCount: events.length,
      });
    }
    return result;
  }

  /**
   * The object whose transactions must not nest: by default this unit of
   * work; adapters return their connection pool, so that two units of work
   * on one pool also refuse to nest.
   */
  protected get resource(): object {
    return this;
  }

  /**
   * Whether `publishAfterCommit` accepts a delay: only a unit of work that
   * writes its events to an outbox can hold one until its time.
   */
  protected get acceptsDelayedEvents(): boolean {
    return false;
  }

  /**
   * Runs `body` in one transaction: begins, awaits `body`, commits when it
   * resolves, rolls back and rethrows when it rejects. It must reject when
   * the transaction fails to begin or commit.
   *
   * @typeParam T What `body` resolves to.
   * @param body The work, the event collection and the pre-commit step.
   * @returns What `body` resolved to, after the commit.
   */
  protected abstract transaction<T>(
    body: (handle: H) => Promise<T>,
  ): Promise<T>;

  /**
   * Builds the context `work` receives from the driver's handle and the
   * run's {@linkcode UnitOfWorkContext} (whose methods are bound; copy them
   * as they are).
   *
   * @param handle The driver's transaction handle.
   * @param context `track` and `publishAfterCommit` for this run.
   * @returns The context given to `work`.
   */
  protected abstract createContext(handle: H, context: UnitOfWorkContext): C;

  /**
   * Called inside the transaction, after `work` resolved and before the
   * commit, with every event the run will publish, in order. Does nothing by
   * default; an outbox overrides it to write the events in the same
   * transaction, and returns what it wrote: that value reaches
   * {@linkcode UnitOfWork.publishCommitted} of the same run. If it throws,
   * the transaction rolls back and `run` throws a {@linkcode CommitError}.
   *
   * @param _handle The driver's transaction handle.
   * @param _events The events to publish after the commit (do not modify).
   * @param _delays The delay of each event, parallel to `_events`
   * (`undefined` for an event without one), or `undefined` when no event
   * has a delay. Only given when {@linkcode UnitOfWork.acceptsDelayedEvents}
   * is `true`: the adapter must hold delayed events until their time and
   * leave them out of its dispatch.
   * @returns What the run wrote, for `publishCommitted`.
   */
  protected beforeCommit(
    _handle: H,
    _events: readonly object[],
    _delays?: readonly (EventDelay | undefined)[],
  ): W | Promise<W> {
    return undefined as W;
  }

  /**
   * Called after the commit with the events to publish (never with none):
   * publishes them on the bus. An outbox overrides it to dispatch the events
   * and then mark them done. A {@linkcode PublishAfterCommitError} it throws
   * reaches the caller of `run` as is; any other error is wrapped in one.
   *
   * @param events The committed events, in order (do not modify).
   * @param _written What `beforeCommit` returned for this run.
   * @returns A promise that settles when the events are published.
   */
  protected publishCommitted(
    events: readonly object[],
    _written: W,
  ): Promise<void> {
    return this.bus.publishAll(events);
  }
}
