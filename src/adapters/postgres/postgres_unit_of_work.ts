/**
 * The Unit of Work over `npm:postgres` (postgres.js).
 *
 * @module
 */
import type postgres from "postgres";
import { getLogger } from "@logtape/logtape";
import {
  CommitOutcomeUnknownError,
  type EventDelay,
  PublishAfterCommitError,
  UnitOfWork,
  type UnitOfWorkContext,
  type UnitOfWorkOptions,
} from "../../application/unit_of_work.ts";
import { isConnectionError } from "../../internal/connection_error.ts";
import { errorType } from "../../internal/loggable_error.ts";
import { describe } from "../../internal/describe.ts";
import { fail, number, oneOf, readOptions } from "../../internal/rules.ts";
import { isOutage, Outbox, PreparedBatch } from "./_outbox.ts";
import type { OutboxCheckpoint, OutboxOptions } from "./outbox.ts";
import {
  assertClient,
  type Begun,
  reservedTransaction,
  type Sql,
  withCommit,
} from "./_transaction.ts";

const logger = getLogger(["aftercommit", "uow"]);

/** The transaction isolation levels PostgreSQL implements. */
export type IsolationLevel =
  | "read committed"
  | "repeatable read"
  | "serializable";

/** Options of {@linkcode PostgresUnitOfWork}. */
export interface PostgresUnitOfWorkOptions extends UnitOfWorkOptions {
  /**
   * The isolation level of every transaction.
   *
   * @default {the server's default_transaction_isolation, usually "read committed"}
   */
  readonly isolationLevel?: IsolationLevel;
  /**
   * Outbox mode: `true` (default outbox options) or the outbox options.
   *
   * Inside the transaction, the events to publish are written to the outbox
   * table in one insert; after the commit they are dispatched through the
   * bus (in one batch when the bus has `batch`), then marked done in one
   * update. An event whose dispatch fails is kept with its attempt count
   * and last error, and the {@linkcode OutboxRelay} dispatches it again, as
   * it does events left undone by a crash. Every event class must be
   * registered in the registry, and every event must have an `eventId`: an
   * unregistered class fails the run before the commit (a
   * {@linkcode CommitError}), so nothing is lost. Run
   * {@linkcode migrateOutbox} once before.
   *
   * @default {false (events are published after the commit and lost if the process dies first)}
   */
  readonly outbox?: boolean | OutboxOptions;
  /**
   * How long, in seconds, `run` keeps asking the database whether a
   * transaction committed when the connection was lost during its `COMMIT`
   * (with `pg_xact_status()`, on another connection of the pool). Past it,
   * `run` throws a {@linkcode CommitOutcomeUnknownError}.
   *
   * @default {15}
   */
  readonly commitCheckSeconds?: number;
}

/**
 * A connection of a postgres.js pool reserved for one caller, as
 * `sql.reserve()` returns it (a `postgres.ReservedSql`).
 */
export interface PostgresReservedConnection {
  /**
   * Runs one query on this connection.
   *
   * @param strings The query's text around its parameters.
   * @param values The parameters, or identifiers made with `sql(name)`.
   * @returns The rows.
   */
  // deno-lint-ignore no-explicit-any
  (strings: TemplateStringsArray, ...values: any[]): PromiseLike<unknown>;
  /** Gives the connection back to the pool. */
  release(): void;
}

/**
 * A postgres.js client, as `postgres(url)` returns it (a `postgres.Sql`):
 * the adapter reserves a connection for each transaction; `begin` gives the
 * transaction's type.
 */
export interface PostgresClient {
  /**
   * Runs one query on the pool.
   *
   * @param strings The query's text around its parameters.
   * @param values The parameters.
   * @returns The rows.
   */
  // deno-lint-ignore no-explicit-any
  (strings: TemplateStringsArray, ...values: any[]): PromiseLike<unknown>;
  /**
   * Runs `fn` in a transaction. The Unit of Work does not call it; its
   * signature types `tx.sql`.
   *
   * @param options What follows `BEGIN`, such as `isolation level serializable`.
   * @param fn The work, given the transaction's `sql`.
   * @returns What `fn` resolved to.
   */
  // deno-lint-ignore no-explicit-any
  begin(options: string, fn: (sql: any) => Promise<unknown>): Promise<unknown>;
  /**
   * Reserves one connection of the pool until it is released.
   *
   * @returns The reserved connection.
   */
  reserve(): Promise<PostgresReservedConnection>;
}

/**
 * The transaction's `sql` of a client: for `postgres.Sql<T>`,
 * `postgres.TransactionSql<T>`.
 *
 * @typeParam S The client's type.
 */
export type PostgresTransactionOf<S extends PostgresClient> = Parameters<
  Parameters<S["begin"]>[1]
>[0];

/**
 * What `work` receives in {@linkcode PostgresUnitOfWork.run}.
 *
 * @typeParam Tx The transaction's `sql` (`postgres.TransactionSql`).
 */
export interface PostgresContext<Tx> extends UnitOfWorkContext {
  /** The transaction's `sql`: every query made with it is in the transaction. */
  readonly sql: Tx;
}

const ISOLATION_LEVELS = [
  "read committed",
  "repeatable read",
  "serializable",
] as const;

/**
 * A Unit of Work over a postgres.js client: each `run` is one transaction
 * on a connection reserved from the pool, and the events of the tracked
 * aggregates are published after its `COMMIT`.
 *
 * Runs on a pool are independent: 50 concurrent runs use up to `max`
 * connections and each publishes only its own events. On a client with
 * `max: 1` (as with embedded PGlite) they queue for the connection, so a run
 * must not wait for another run from inside its work (that is refused).
 *
 * The client's types flow through: with `postgres.Sql<T>`, `tx.sql` is a
 * `postgres.TransactionSql<T>`.
 *
 * @typeParam S The client's type, inferred from the constructor's argument.
 *
 * @example Register a user and publish UserRegistered after the commit
 * ```ts
 * import postgres from "postgres";
 * import { AggregateRoot, defaultBus } from "@aftercommit/core";
 * import { PostgresUnitOfWork } from "@aftercommit/core/postgres";
 *
 * class UserRegistered {
 *   constructor(readonly userId: string) {}
 * }
 * class User extends AggregateRoot {
 *   constructor(readonly id: string, readonly email: string) {
 *     super();
 *   }
 *   static register(email: string): User {
 *     const user = new User(crypto.randomUUID(), email);
 *     user.recordEvent(new UserRegistered(user.id));
 *     return user;
 *   }
 * }
 *
 * const sql = postgres(Deno.env.get("DATABASE_URL")!);
 * const uow = new PostgresUnitOfWork(sql, { bus: defaultBus });
 * const userId = await uow.run(async (tx) => {
 *   const user = tx.track(User.register("ada@example.com"));
 *   await tx.sql`insert into users (id, email) values (${user.id}, ${user.email})`;
 *   return user.id;
 * }); // COMMIT, then UserRegistered is published on defaultBus
 * ```
 */
export class PostgresUnitOfWork<S extends PostgresClient> extends UnitOfWork<
  PostgresTransactionOf<S>,
  PostgresContext<PostgresTransactionOf<S>>,
  object | undefined
> {
  readonly #sql: Sql;
  readonly #begin: string;
  readonly #commitCheckMs: number;
  readonly #outbox: Outbox | undefined;

  /**
   * Creates a Unit of Work on a postgres.js client (a pool).
   *
   * @param sql The client, as returned by `postgres(url, options)`.
   * @param options The bus, the isolation level, outbox mode and the commit
   * check's bound.
   * @throws {TypeError} When `sql` is not a postgres.js client, or an
   * option is invalid.
   * @throws {RangeError} When `commitCheckSeconds` is negative.
   */
  constructor(sql: S, options: PostgresUnitOfWorkOptions = {}) {
    super(options);
    const action = "create PostgresUnitOfWork";
    assertClient(sql, action);
    const { isolationLevel, commitCheckSeconds, outbox } = readOptions(
      options,
      {
        isolationLevel: oneOf(ISOLATION_LEVELS),
        commitCheckSeconds: number(0, 15),
        outbox: (value) => value ?? false,
      },
      action,
    );
    this.#sql = sql;
    this.#begin = isolationLevel === undefined
      ? "begin"
      : `begin isolation level ${isolationLevel}`;
    this.#commitCheckMs = commitCheckSeconds * 1000;
    if (outbox !== false) {
      this.#outbox = new Outbox(
        outbox === true ? {} : outbox,
        `${action} in outbox mode`,
        "options.outbox",
      );
    }
  }

  /** Whether this unit of work writes its events to the outbox. */
  get outboxMode(): boolean {
    return this.#outbox !== undefined;
  }

  /** In outbox mode, delayed events are written with their "not before". */
  protected override get acceptsDelayedEvents(): boolean {
    return this.#outbox !== undefined;
  }

  /** The client: two units of work on one client refuse to nest. */
  protected override get resource(): object {
    return this.#sql;
  }

  /**
   * Runs `body` in a transaction on a reserved connection: `BEGIN`, then
   * `COMMIT` when it resolves or `ROLLBACK` when it rejects. A connection
   * lost during `COMMIT` is resolved by asking the database.
   *
   * @throws {CommitOutcomeUnknownError} When the connection was lost during
   * `COMMIT` and the database could not be asked within `commitCheckSeconds`.
   */
  protected override transaction<T>(
    body: (handle: PostgresTransactionOf<S>) => Promise<T>,
  ): Promise<T> {
    return reservedTransaction(
      this.#sql,
      this.#begin,
      (conn) => body(withSavepoint(conn) as PostgresTransactionOf<S>),
      (begun, error) => this.#committed(begun, error),
    );
  }

  /** Gives `work` the transaction's `sql` with `track` and `publishAfterCommit`. */
  protected override createContext(
    handle: PostgresTransactionOf<S>,
    { track, publishAfterCommit }: UnitOfWorkContext,
  ): PostgresContext<PostgresTransactionOf<S>> {
    return { sql: handle, track, publishAfterCommit };
  }

  /**
   * In outbox mode, writes the events to the outbox table in one insert,
   * leased to this process, inside the transaction: the insert is sent with
   * the `COMMIT`, and an error of the insert fails the commit.
   *
   * @returns The batch written, for {@linkcode PostgresUnitOfWork.publishCommitted}.
   * @throws {TypeError} When an event's class is not registered or the event
   * cannot be serialized; the transaction then rolls back.
   */
  protected override beforeCommit(
    handle: PostgresTransactionOf<S>,
    events: readonly object[],
    delays?: readonly (EventDelay | undefined)[],
  ): object | undefined {
    const outbox = this.#outbox;
    if (outbox === undefined || events.length === 0) return undefined;
    const batch = outbox.prepare(events, delays);
    // The insert goes out with the COMMIT, in one round trip.
    withCommit(
      handle,
      outbox.table.insert(handle, batch.json, outbox.leaseSeconds),
    );
    return batch;
  }

  /**
   * In outbox mode, dispatches the committed events one by one (in one
   * `bus.batch` when the bus has it), records a failure on its event's row,
   * and marks the others done in one update. Without outbox mode, publishes
   * them on the bus.
   *
   * @throws {PublishAfterCommitError} When a handler failed, with
   * `relayWillRetry: true` unless every failed event was parked.
   */
  protected override async publishCommitted(
    events: readonly object[],
    written: object | undefined,
  ): Promise<void> {
    const outbox = this.#outbox;
    if (outbox === undefined || !(written instanceof PreparedBatch)) {
      return super.publishCommitted(events, written);
    }
    // Delayed events wait in the outbox for the relay.
    const items = written.items.filter((item) => item.delayed !== true);
    if (items.length === 0) return;
    await this.outboxCheckpoint("committed", items.map((item) => item.id));
    const sql = this.#sql;
    const bus = this.bus;
    const failed = new Set<string>();
    const errors: unknown[] = [];
    let retried = false;
    const dispatchAll = async () => {
      for (const item of items) {
        const failure = await outbox.dispatch(sql, bus, item);
        if (failure !== undefined) {
          failed.add(item.id);
          errors.push(failure.error);
          if (!failure.parked) retried = true;
        }
      }
    };
    try {
      await (bus.batch === undefined ? dispatchAll() : bus.batch(dispatchAll));
    } catch (error) {
      // The batch's own write failed after every dispatch: what they handed
      // to it is lost, so none of them counts as done.
      const rest = items.filter((item) => !failed.has(item.id));
      if (isOutage(error)) {
        await outbox.deferOutage(
          sql,
          rest.map((item) => item.id),
          outbox.retryDelaySeconds,
          rest[0],
          error,
        );
      } else {
        for (const item of rest) await outbox.recordFailure(sql, item, error);
      }
      for (const item of rest) failed.add(item.id);
      errors.push(error);
      retried = true;
    }
    const done = [...new Set(items.map((item) => item.id))]
      .filter((id) => !failed.has(id));
    await this.outboxCheckpoint("dispatched", done);
    await outbox.markDone(sql, done);
    if (errors.length > 0) {
      throw new PublishAfterCommitError(
        `Unit of work committed, but dispatching ${failed.size} of its ${items.length} events failed; ${
          retried
            ? "the outbox keeps them and the relay will dispatch them again"
            : "they reached the attempt limit and are parked in the outbox"
        }`,
        {
          cause: errors.length === 1
            ? errors[0]
            : new AggregateError(errors, "Several events failed to dispatch"),
          relayWillRetry: retried,
        },
      );
    }
  }

  /**
   * A seam for crash tests; does nothing. In outbox mode it is awaited at
   * two points of every run with events: `"committed"` (after the `COMMIT`,
   * before any event is dispatched) and `"dispatched"` (after dispatching,
   * before the events are marked done). Applications do not override it.
   *
   * @param _stage Where the run stands.
   * @param _eventIds The ids of the run's events (at `"dispatched"`, those
   * about to be marked done).
   */
  protected outboxCheckpoint(
    _stage: OutboxCheckpoint,
    _eventIds: readonly string[],
  ): void | Promise<void> {}

  // Whether the transaction committed, asked on the pool until the
  // database answers or the bound passes.
  async #committed(begun: Begun, cause: unknown): Promise<boolean> {
    const deadline = performance.now() + this.#commitCheckMs;
    let delay = 25;
    let crashed = false;
    for (let left; (left = deadline - performance.now()) > 0;) {
      const status = await withDeadline(xactStatus(this.#sql, begun), left);
      if (typeof status === "boolean") {
        logger.warn(
          "The connection was lost during COMMIT ({errorType}); the database says the transaction {status}",
          {
            errorType: errorType(cause),
            status: status ? "committed" : "did not commit",
          },
        );
        return status;
      }
      // No answer yet (the server is restarting), or the old session is
      // still finishing ("in progress").
      if (status === "unknown" || status === "ambiguous") {
        if (status === "ambiguous") crashed = true;
        break;
      }
      await new Promise((resolve) =>
        setTimeout(resolve, Math.min(delay, left))
      );
      delay = Math.min(delay * 2, 1000);
    }
    const outbox = this.#outbox !== undefined;
    throw new CommitOutcomeUnknownError(
      `Unit of work outcome unknown: the connection was lost during COMMIT and ${
        crashed
          ? "the server crashed since, so the id it says committed may be another transaction's"
          : "the database could not say whether the transaction committed"
      }; ${
        outbox
          ? "if it did, the outbox relay delivers its events"
          : "its events were not published"
      }`,
      { cause, relayWillRetry: outbox },
    );
  }
}

// The reserved connection as the transaction's `sql`, with the `savepoint`
// of postgres.js's own transactions.
function withSavepoint(conn: postgres.ReservedSql): unknown {
  let count = 0;
  return Object.assign(conn, {
    async savepoint<T>(
      name: string | ((sql: unknown) => T | Promise<T>),
      fn?: (sql: unknown) => T | Promise<T>,
    ): Promise<T> {
      const work = typeof name === "function" ? name : fn;
      if (typeof work !== "function") {
        fail(
          "create a savepoint",
          `expected a function that receives the transaction's sql, received ${
            describe(work)
          }`,
        );
      }
      const id = conn(
        `s${count++}${typeof name === "string" ? `_${name}` : ""}`,
      );
      await conn`savepoint ${id}`;
      try {
        return await work(conn);
      } catch (error) {
        await conn`rollback to ${id}`;
        throw error;
      }
    },
  });
}

// `promise`, or undefined once `ms` pass (the promise is left to settle).
function withDeadline<T>(
  promise: Promise<T>,
  ms: number,
): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

// What the server says of the transaction `begun`: true committed, false not,
// "retry" (no answer, or still in progress), "unknown" (it cannot tell),
// "ambiguous" (committed, but after a crash that may have reused the id).
//
// A crash (an immediate shutdown, or a backend dying, after which the
// postmaster recovers without restarting) can lose a transaction whose WAL
// was never flushed, and the server then hands its id out again: after a
// crash, "committed" may be another transaction's. Crash recovery resets
// the server's statistics (a clean restart keeps them), so a reset since
// BEGIN says a crash may have happened. Then an id at or above the next id
// of the latest checkpoint was not ours; below it, it cannot be told.
async function xactStatus(
  sql: Sql,
  begun: Begun,
): Promise<boolean | "retry" | "unknown" | "ambiguous"> {
  let row;
  try {
    [row] = await sql<
      [{ status: string; started: string; reset: string | null }]
    >`select pg_xact_status(${begun.xid}::xid8) as status,
        pg_postmaster_start_time()::text as started,
        (select stats_reset::text from pg_stat_wal) as reset`;
  } catch (error) {
    if (isConnectionError(error)) return "retry";
    // "transaction ID … is in the future": assigned before a crash, never
    // written, and not handed out again yet.
    return (error as { code?: string }).code === "22023" ? false : "unknown";
  }
  const { status, started, reset } = row;
  if (reset === begun.reset) {
    if (status === "committed") return true;
    // Restarted cleanly: ours cannot still be in progress.
    return status === "aborted" || started !== begun.started ? false : "retry";
  }
  // A crash since BEGIN: not committed means lost (an id in progress now is
  // another transaction's).
  if (status !== "committed") return false;
  try {
    const [{ next_xid }] = await sql<[{ next_xid: string }]>`
      select next_xid from pg_control_checkpoint()`;
    const [epoch, xid] = next_xid.split(":").map(BigInt);
    return BigInt(begun.xid) >= ((epoch! << 32n) | xid!) ? false : "ambiguous";
  } catch (error) {
    return isConnectionError(error) ? "retry" : "unknown";
  }
}
