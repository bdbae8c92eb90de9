/**
 * The Unit of Work over `npm:postgres` (postgres.js).
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import {
  PublishAfterCommitError,
  UnitOfWork,
  type UnitOfWorkContext,
  type UnitOfWorkOptions,
} from "../../application/unit_of_work.ts";
import { describe } from "../../application/_describe.ts";
import { Outbox, type PreparedBatch } from "./_outbox.ts";
import {
  assertClient,
  type OutboxCheckpoint,
  type OutboxOptions,
} from "./outbox.ts";

const outboxLogger = getLogger(["aftercommit", "outbox"]);

/** The transaction isolation levels PostgreSQL implements. */
export type IsolationLevel =
  | "read committed"
  | "repeatable read"
  | "serializable";

const ISOLATION_LEVELS: readonly IsolationLevel[] = [
  "read committed",
  "repeatable read",
  "serializable",
];

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
   * bus, then marked done in one update. An event whose dispatch fails is
   * kept with its attempt count and last error, and the
   * {@linkcode OutboxRelay} dispatches it again, as it does events left
   * undone by a crash. Every event class must be registered in the
   * registry, and every event must have an `eventId`: an unregistered class
   * fails the run before the commit (a {@linkcode CommitError}), so nothing
   * is lost. Run {@linkcode migrateOutbox} once before.
   *
   * @default {false (events are published after the commit and lost if the process dies first)}
   */
  readonly outbox?: boolean | OutboxOptions;
}

/**
 * The part of a postgres.js client (`postgres(url)`) the Unit of Work uses:
 * `sql.begin(options, fn)`.
 */
export interface PostgresClient {
  /**
   * Runs `fn` in a transaction: `BEGIN`, then `COMMIT` when it resolves,
   * `ROLLBACK` when it rejects.
   *
   * @param options What follows `BEGIN`, such as `isolation level serializable`.
   * @param fn The work, given the transaction's `sql`.
   * @returns What `fn` resolved to.
   */
  // deno-lint-ignore no-explicit-any
  begin(options: string, fn: (sql: any) => Promise<unknown>): Promise<unknown>;
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

/**
 * A Unit of Work over a postgres.js client: each `run` is one `sql.begin`
 * transaction, and the events of the tracked aggregates are published after
 * its `COMMIT`.
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
  PostgresContext<PostgresTransactionOf<S>>
> {
  readonly #sql: S;
  readonly #begin: string;
  readonly #outbox: Outbox | undefined;
  // The batch each run wrote, from beforeCommit to publishCommitted, keyed
  // by the run's own events array.
  readonly #written = new WeakMap<readonly object[], PreparedBatch>();

  /**
   * Creates a Unit of Work on a postgres.js client (a pool).
   *
   * @param sql The client, as returned by `postgres(url, options)`.
   * @param options The bus to publish on and the isolation level.
   * @throws {TypeError} When `sql` is not a postgres.js client, or
   * `options.isolationLevel` or `options.bus` is invalid.
   */
  constructor(
    sql: S,
    options: PostgresUnitOfWorkOptions = {},
  ) {
    super(options);
    if (
      typeof sql !== "function" ||
      typeof (sql as { begin?: unknown }).begin !== "function"
    ) {
      throw new TypeError(
        `Cannot create PostgresUnitOfWork: expected a postgres.js client, received ${
          describe(sql)
        }; pass the client that postgres(url) returns`,
      );
    }
    const level = options.isolationLevel;
    if (level !== undefined && !ISOLATION_LEVELS.includes(level)) {
      throw new TypeError(
        `Cannot create PostgresUnitOfWork: unknown isolationLevel ${
          JSON.stringify(level)
        }, expected one of ${ISOLATION_LEVELS.map((l) => `"${l}"`).join(", ")}`,
      );
    }
    this.#sql = sql;
    this.#begin = level === undefined ? "" : `isolation level ${level}`;
    const outbox = options.outbox ?? false;
    if (outbox !== false) {
      const action = "create PostgresUnitOfWork in outbox mode";
      assertClient(sql, action);
      this.#outbox = new Outbox(outbox === true ? {} : outbox, action);
    }
  }

  /** Whether this unit of work writes its events to the outbox. */
  get outboxMode(): boolean {
    return this.#outbox !== undefined;
  }

  /**
   * The client: two units of work on one client refuse to nest.
   *
   * @returns The postgres.js client.
   */
  protected override get resource(): object {
    return this.#sql;
  }

  /**
   * Runs `body` in `sql.begin`: `BEGIN`, then `COMMIT` when it resolves or
   * `ROLLBACK` when it rejects.
   *
   * @typeParam T What `body` resolves to.
   * @param body The work of one run.
   * @returns What `body` resolved to, after the commit.
   */
  protected override transaction<T>(
    body: (handle: PostgresTransactionOf<S>) => Promise<T>,
  ): Promise<T> {
    // `body` returns a promise, never an array, so postgres.js does not
    // unwrap it: the result is `T`.
    return this.#sql.begin(this.#begin, body) as Promise<T>;
  }

  /**
   * Gives `work` the transaction's `sql` with `track` and `publishAfterCommit`.
   *
   * @param handle The transaction's `sql`.
   * @param context `track` and `publishAfterCommit` of this run.
   * @returns The context `work` receives.
   */
  protected override createContext(
    handle: PostgresTransactionOf<S>,
    context: UnitOfWorkContext,
  ): PostgresContext<PostgresTransactionOf<S>> {
    return {
      sql: handle,
      track: context.track,
      publishAfterCommit: context.publishAfterCommit,
    };
  }

  /**
   * In outbox mode, writes the events to the outbox table in one insert,
   * leased to this process, inside the transaction.
   *
   * @param handle The transaction's `sql`.
   * @param events The events the run will publish.
   * @returns A promise that settles when the events are written.
   * @throws {TypeError} When an event's class is not registered or the event
   * cannot be serialized; the transaction then rolls back.
   */
  protected override async beforeCommit(
    handle: PostgresTransactionOf<S>,
    events: readonly object[],
  ): Promise<void> {
    const outbox = this.#outbox;
    if (outbox === undefined || events.length === 0) return;
    const batch = outbox.prepare(events);
    await outbox.table.insert(handle, batch.json, outbox.leaseSeconds);
    this.#written.set(events, batch);
    if (outboxLogger.isEnabledFor("debug")) {
      outboxLogger.debug("Wrote {eventCount} events to the outbox", {
        eventCount: batch.items.length,
      });
    }
  }

  /**
   * In outbox mode, dispatches the committed events one by one, records a
   * failure on its event's row, and marks the others done in one update.
   * Without outbox mode, publishes them on the bus.
   *
   * @param events The committed events.
   * @returns A promise that settles when the events are dispatched and marked.
   * @throws {PublishAfterCommitError} When a handler failed, with
   * `relayWillRetry: true` unless every failed event was parked.
   */
  protected override async publishCommitted(
    events: readonly object[],
  ): Promise<void> {
    const outbox = this.#outbox;
    const batch = this.#written.get(events);
    if (outbox === undefined || batch === undefined) {
      return super.publishCommitted(events);
    }
    this.#written.delete(events);
    const { items } = batch;
    await this.outboxCheckpoint("committed", items.map((item) => item.id));
    const sql = this.#sql as unknown as Parameters<Outbox["dispatch"]>[0];
    const failed = new Set<string>();
    const errors: unknown[] = [];
    let retried = false;
    for (const item of items) {
      const failure = await outbox.dispatch(sql, this.bus, item);
      if (failure !== undefined) {
        failed.add(item.id);
        errors.push(failure.error);
        if (!failure.parked) retried = true;
      }
    }
    const done = [...new Set(items.map((item) => item.id))].filter((id) =>
      !failed.has(id)
    );
    await this.outboxCheckpoint("dispatched", done);
    await outbox.markDone(sql, done);
    if (errors.length > 0) {
      throw new PublishAfterCommitError(
        retried
          ? `Unit of work committed, but dispatching ${errors.length} of its ${items.length} events failed; the outbox keeps them and the relay will dispatch them again`
          : `Unit of work committed, but dispatching ${errors.length} of its ${items.length} events failed; they reached the attempt limit and are parked in the outbox`,
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
   * before the events are marked done). A test subclass blocks here so that
   * a child process can be killed at that point. Applications do not
   * override it.
   *
   * @param _stage Where the run stands.
   * @param _eventIds The ids of the run's events (at `"dispatched"`, those
   * about to be marked done).
   * @returns Nothing, or a promise to wait for.
   */
  protected outboxCheckpoint(
    _stage: OutboxCheckpoint,
    _eventIds: readonly string[],
  ): void | Promise<void> {}
}
