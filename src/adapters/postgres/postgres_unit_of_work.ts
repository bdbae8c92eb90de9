/**
 * The Unit of Work over `npm:postgres` (postgres.js).
 *
 * @module
 */
import {
  UnitOfWork,
  type UnitOfWorkContext,
  type UnitOfWorkOptions,
} from "../../application/unit_of_work.ts";
import { describe } from "../../application/_describe.ts";

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
}
