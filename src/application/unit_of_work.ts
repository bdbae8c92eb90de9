// The Unit of Work base: one transaction per `run`, its events published
// after the commit. Adapters such as `@aftercommit/core/postgres` extend it.
import { AsyncLocalStorage } from "node:async_hooks";
import { getLogger } from "@logtape/logtape";
import { AggregateRoot } from "../domain/aggregate_root.ts";
import { recordOrderOf, stampRecordOrder } from "../domain/record_order.ts";
import { DebugGate } from "./_debug_gate.ts";
import { assertDelaySeconds, assertFutureDate } from "./_delay.ts";
import { describe } from "../internal/describe.ts";
import { errorType } from "../internal/loggable_error.ts";
import { assertPublishAll, expected, fail } from "../internal/rules.ts";
import { inSpan, tracing } from "../internal/telemetry.ts";
import { defaultBus, type EventBus } from "./event_bus.ts";

const logger = getLogger(["aftercommit", "uow"]);
const debugGate = new DebugGate(logger);

/** When a delayed event may be delivered (needs an outbox): one of the two. */
export interface PublishAfterCommitOptions {
  /**
   * Seconds after the commit, on the database's clock.
   * @default {0}
   */
  readonly delaySeconds?: number;
  /** The moment from which the event may be delivered; not in the past. */
  readonly at?: Date;
}

/** A delayed event's "not before": seconds after the write, or a moment. */
export type EventDelay =
  | { readonly delaySeconds: number; readonly at?: undefined }
  | { readonly at: Date; readonly delaySeconds?: undefined };

/** What `work` receives besides the driver's transaction handle. */
export interface UnitOfWorkContext {
  /** Tracks an aggregate: its events are published after the commit. */
  track<A extends AggregateRoot>(aggregate: A): A;
  /** Publishes `event` after the commit, in recording order; not on rollback. */
  publishAfterCommit(event: object, options?: PublishAfterCommitOptions): void;
}

/** The part of an event bus a Unit of Work uses; `batch` runs one job batch. */
export type EventPublisher = Pick<EventBus, "publishAll"> & {
  batch?<T>(work: () => Promise<T>): Promise<T>;
};

/** Options of {@linkcode UnitOfWork}. */
export interface UnitOfWorkOptions {
  /**
   * The bus events are published on after each commit.
   * @default {defaultBus}
   */
  readonly bus?: EventPublisher;
}

/**
 * Options of {@linkcode UnitOfWorkError} and its subclasses. It is named
 * after the first of them, {@linkcode PublishAfterCommitError}, and kept so.
 */
export interface PublishAfterCommitErrorOptions extends ErrorOptions {
  /**
   * Whether an outbox keeps the run's events for the relay.
   * @default {false}
   */
  readonly relayWillRetry?: boolean;
}

/** Options of {@linkcode CommitOutcomeUnknownError}. */
export type CommitOutcomeUnknownErrorOptions = PublishAfterCommitErrorOptions;

/** What {@linkcode UnitOfWork.run} throws when it did not commit or publish. */
export abstract class UnitOfWorkError extends Error {
  /** Whether the changes were committed; `undefined` when unknown. */
  abstract readonly committed: boolean | undefined;
  /** Whether an outbox keeps the events (without one, they are lost). */
  readonly relayWillRetry: boolean;

  /** Wraps `options.cause`; `message` names no field values. */
  constructor(message: string, options?: PublishAfterCommitErrorOptions) {
    super(message, options);
    this.name = new.target.name;
    this.relayWillRetry = options?.relayWillRetry ?? false;
  }
}

/** The transaction did not commit; no event was published. */
export class CommitError extends UnitOfWorkError {
  /** Always `false`. */
  readonly committed: false = false;
}

/** The connection was lost during `COMMIT`: whether it committed is unknown. */
export class CommitOutcomeUnknownError extends UnitOfWorkError {
  /** Always `undefined`. */
  readonly committed: undefined = undefined;
}

/** The transaction committed, then a handler failed (`cause`). */
export class PublishAfterCommitError extends UnitOfWorkError {
  /** Always `true`. */
  readonly committed: true = true;
}

const NOT_COMMITTED = {
  "begin": "Unit of work not committed: the transaction could not begin",
  "work": "Unit of work not committed: the transaction failed while work ran",
  "before-commit":
    "Unit of work not committed: the pre-commit step failed, so the transaction rolled back",
  // Also the outbox INSERT's failure: it goes out with the COMMIT.
  "commit": "Unit of work not committed: COMMIT failed",
};

// One `run`: how far it got and its events; `work`'s context.
class Scope implements UnitOfWorkContext {
  stage: keyof typeof NOT_COMMITTED | "threw" | "closed" = "begin";
  readonly #aggregates: AggregateRoot[] = [];
  readonly #events: object[] = [];
  #delays: Map<object, EventDelay> | undefined;

  constructor(
    readonly resource: object,
    readonly acceptsDelays: boolean,
    readonly outer: Scope | undefined,
  ) {}

  // Arrow functions: adapters hand them out unbound in their contexts.
  readonly track = <A extends AggregateRoot>(aggregate: A): A => {
    if (!(aggregate instanceof AggregateRoot)) {
      fail(
        `track ${describe(aggregate)}`,
        "expected an AggregateRoot; extend AggregateRoot, or use publishAfterCommit(event) for an event no aggregate owns",
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
      expected(action, "an event object (a class instance)", event);
    }
    let delay: EventDelay | undefined;
    if (options !== undefined) {
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
      if (at !== undefined) assertFutureDate(at, "options.at", action);
      else if (delaySeconds !== undefined) {
        assertDelaySeconds(delaySeconds, "options.delaySeconds", action);
      }
      delay = at ? { at } : delaySeconds ? { delaySeconds } : undefined;
      if (delay !== undefined && !this.acceptsDelays) {
        fail(
          `${action} with a delay`,
          "this unit of work has no outbox to hold the event until its time; use outbox mode (PostgresUnitOfWork with outbox: true, and an OutboxRelay), or publish without a delay",
        );
      }
    }
    this.#assertOpen("publish an event after commit");
    stampRecordOrder(event);
    this.#events.push(event);
    if (delay !== undefined) (this.#delays ??= new Map()).set(event, delay);
  };

  #assertOpen(action: string): void {
    // Until the rollback, a continuation of work that threw may still record.
    if (this.stage !== "work" && this.stage !== "threw") {
      fail(
        action,
        "this unit of work's work has already returned; call it inside the function given to run()",
      );
    }
  }

  // Every event in the order recorded, and their delays. A rolled-back run
  // calls it too, so a retry cannot publish its aggregates' events.
  close(): [object[], (EventDelay | undefined)[] | undefined] {
    this.stage = "before-commit";
    const aggregates = this.#aggregates;
    let events = this.#events;
    if (aggregates.length === 1 && events.length === 0) {
      events = aggregates[0]!.pullEvents();
    } else if (aggregates.length > 0) {
      events = [...aggregates.flatMap((a) => a.pullEvents()), ...events]
        // Stable: events without a recorded order keep their place at the end.
        .sort((a, b) => recordOrderOf(a) - recordOrderOf(b));
    }
    const delays = this.#delays;
    return [events, delays && events.map((e) => delays.get(e))];
  }
}

// The runs whose transaction is open in this async flow: a nested run would
// need a second connection (a deadlock on a pool of one) and not join it.
const openScopes = new AsyncLocalStorage<Scope>();

/**
 * {@linkcode UnitOfWork.run} runs a function in one database transaction
 * and, after the commit, publishes the events recorded, in order; on
 * rollback, none. An adapter implements `transaction` and `createContext`.
 *
 * @typeParam H The driver's transaction handle.
 * @typeParam C The context `work` receives.
 * @typeParam W What `beforeCommit` hands to `publishCommitted` for one run.
 *
 * @example Published after the commit, never on rollback
 * ```ts
 * import assert from "node:assert/strict";
 * import { EventBus, UnitOfWork, type UnitOfWorkContext } from "@aftercommit/core";
 *
 * // No database: `body` resolving is the commit.
 * class NoDatabase extends UnitOfWork<null, UnitOfWorkContext> {
 *   protected override transaction<T>(body: (handle: null) => Promise<T>) {
 *     return body(null);
 *   }
 *   protected override createContext(_: null, context: UnitOfWorkContext) {
 *     return context;
 *   }
 * }
 * class Deposited {
 *   constructor(readonly amount: number) {}
 * }
 * const bus = new EventBus();
 * const seen: number[] = [];
 * bus.register(Deposited, (e) => void seen.push(e.amount));
 * const uow = new NoDatabase({ bus });
 * await uow.run((tx) => tx.publishAfterCommit(new Deposited(10)));
 * await assert.rejects(uow.run((tx) => {
 *   tx.publishAfterCommit(new Deposited(20));
 *   throw new Error("rolled back");
 * }));
 * assert.deepEqual(seen, [10]);
 * ```
 */
export abstract class UnitOfWork<H, C extends UnitOfWorkContext, W = void> {
  /** The bus events are published on after each commit. */
  readonly bus: EventPublisher;

  /** Creates a Unit of Work; a `TypeError` if `options.bus` lacks `publishAll`. */
  constructor(options: UnitOfWorkOptions = {}) {
    const bus = options.bus ?? defaultBus;
    assertPublishAll(bus, "options.bus", "create unit of work");
    this.bus = bus;
  }

  /**
   * Runs `work` in a new transaction, commits, publishes the collected
   * events and returns what `work` returned. `run` inside `work` is refused.
   *
   * @throws {UnitOfWorkError} When it did not commit, or a handler failed.
   * @throws `work`'s own error, after the rollback.
   */
  run<T>(work: (context: C) => T | PromiseLike<T>): Promise<T> {
    if (!tracing()) return this.#run(work);
    return inSpan("uow.run", {}, async (span) => {
      let committed: boolean | undefined = true;
      try {
        return await this.#run(work);
      } catch (error) {
        committed = error instanceof UnitOfWorkError && error.committed;
        throw error;
      } finally {
        span.setAttribute(
          "aftercommit.uow.outcome",
          committed
            ? "committed"
            : committed === false
            ? "rolled-back"
            : "unknown",
        );
      }
    });
  }

  async #run<T>(work: (context: C) => T | PromiseLike<T>): Promise<T> {
    if (typeof work !== "function") {
      expected(
        "run unit of work",
        "a function that receives the transaction context",
        work,
        "pass (tx) => { … }",
      );
    }
    const resource = this.resource;
    const outer = openScopes.getStore();
    for (let s = outer; s !== undefined; s = s.outer) {
      if (s.resource === resource && s.stage !== "closed") {
        fail(
          "run a unit of work inside another one's open transaction",
          "it would need a second connection and would not be part of the open transaction; use the outer context inside work, or start the new unit of work from an event handler, which runs after the commit",
        );
      }
    }
    const scope = new Scope(resource, this.acceptsDelayedEvents, outer);
    let committed: { result: T; events: object[]; written: W };
    try {
      committed = await openScopes.run(
        scope,
        () =>
          this.transaction(async (handle) => {
            if (scope.stage !== "begin") {
              // A second attempt would publish the first one's events.
              fail(
                "run the work of a unit of work twice",
                "an adapter's transaction() calls its body once; to retry, call run() again, which starts from no events",
              );
            }
            scope.stage = "work";
            let result: T;
            try {
              result = await work(this.createContext(handle, scope));
            } catch (error) {
              scope.stage = "threw";
              throw error;
            }
            const [events, delays] = scope.close();
            const written = await this.beforeCommit(handle, events, delays);
            scope.stage = "commit";
            return { result, events, written };
          }),
      );
    } catch (error) {
      const stage = scope.stage;
      if (stage === "work" || stage === "threw") scope.close();
      scope.stage = "closed";
      if (stage === "threw") {
        logger.info("Rolled back unit of work: work threw {errorType}", {
          errorType: errorType(error),
        });
        throw error;
      }
      const unknown = error instanceof CommitOutcomeUnknownError;
      const message = unknown
        ? error.message
        : NOT_COMMITTED[stage as keyof typeof NOT_COMMITTED];
      logger.error("{message}: {errorType}", {
        message,
        errorType: errorType(unknown ? error.cause : error),
      });
      throw unknown ? error : new CommitError(message, { cause: error });
    }
    scope.stage = "closed";
    const { result, events, written } = committed;
    const debug = debugGate.enabled;
    const eventCount = events.length;
    if (debug) {
      logger.debug(
        "Committed unit of work with {eventCount} events to publish",
        { eventCount },
      );
    }
    if (eventCount === 0) return result;
    try {
      await this.publishCommitted(events, written);
    } catch (error) {
      if (error instanceof PublishAfterCommitError) throw error;
      logger.error(
        "Unit of work committed, but publishing its {eventCount} events failed: {errorType}",
        { eventCount, errorType: errorType(error) },
      );
      throw new PublishAfterCommitError(
        "Unit of work committed, but publishing its events failed",
        { cause: error },
      );
    }
    if (debug) {
      logger.debug("Published {eventCount} events after commit", {
        eventCount,
      });
    }
    return result;
  }

  /** What must not hold two nested transactions: an adapter's pool. */
  protected get resource(): object {
    return this;
  }

  /** Whether `publishAfterCommit` accepts a delay (only with an outbox). */
  protected get acceptsDelayedEvents(): boolean {
    return false;
  }

  /**
   * Runs `body` once in one transaction: commits when it resolves, else rolls
   * back. A second call of `body` is refused: retry with a new `run`. The
   * body's result has `written`, what `beforeCommit` returned, for an adapter
   * that sends it with the COMMIT.
   */
  protected abstract transaction<T>(
    body: (handle: H) => Promise<T>,
  ): Promise<T>;

  /** Builds `work`'s context from the handle and the run's bound functions. */
  protected abstract createContext(handle: H, context: UnitOfWorkContext): C;

  /**
   * Called before the commit with the events and their delays (`undefined`
   * when none has one); an outbox writes them. Returns `publishCommitted`'s W.
   */
  protected beforeCommit(
    _handle: H,
    _events: readonly object[],
    _delays?: readonly (EventDelay | undefined)[],
  ): W | Promise<W> {
    return undefined as W;
  }

  /** Publishes a run's committed events (never none) on the bus. */
  protected publishCommitted(
    events: readonly object[],
    _written: W,
  ): Promise<void> {
    return this.bus.publishAll(events);
  }
}
