// The postgres adapter's one transaction path: BEGIN … COMMIT on a reserved
// connection. Not sql.begin: postgres.js 3.4.9 can send its BEGIN without
// reserving the connection, letting others' queries in (porsager/postgres#1189).
import type postgres from "postgres";
import { isConnectionError } from "../../internal/connection_error.ts";
import { describe } from "../../internal/describe.ts";
import { fail } from "../../internal/rules.ts";

/** A postgres.js client (a pool), or a reserved connection. */
// deno-lint-ignore no-explicit-any
export type Sql = postgres.Sql<any>;

/** What runs a statement: a client, a transaction or a reserved connection. */
export type Query = postgres.ISql;

/** A pool connection reserved for one caller, as `sql.reserve()` returns it. */
export interface PostgresReservedConnection {
  /** Runs one query on this connection. */
  // deno-lint-ignore no-explicit-any
  (strings: TemplateStringsArray, ...values: any[]): PromiseLike<unknown>;
  /** Gives the connection back to the pool. */
  release(): void;
}

/** A postgres.js client, as `postgres(url)` returns it (a `postgres.Sql`). */
export interface PostgresClient {
  /** Runs one query on the pool. */
  // deno-lint-ignore no-explicit-any
  (strings: TemplateStringsArray, ...values: any[]): PromiseLike<unknown>;
  /** Runs `fn` in a transaction; not called, its signature types `tx.sql`. */
  // deno-lint-ignore no-explicit-any
  begin(options: string, fn: (sql: any) => Promise<unknown>): Promise<unknown>;
  /** Reserves one connection of the pool until it is released. */
  reserve(): Promise<PostgresReservedConnection>;
}

/** What BEGIN's round trip read, for the commit check after a lost COMMIT. */
export interface Begun {
  readonly xid: string;
  readonly started: string;
  readonly reset: string | null; // crash recovery resets the statistics
}

/** Throws unless `sql` is a postgres.js client (with `reserve()`). */
export function assertClient(sql: unknown, action: string): asserts sql is Sql {
  if (
    typeof sql !== "function" ||
    typeof (sql as { reserve?: unknown }).reserve !== "function"
  ) {
    fail(
      action,
      `expected a postgres.js client with reserve() (postgres.js 3.4 or later), received ${
        describe(sql)
      }; pass the client that postgres(url) returns`,
    );
  }
}

/** `promise`, or `undefined` once `ms` pass (the promise is left to settle). */
export function withDeadline<T>(
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

/**
 * Runs `body` on a reserved connection between `begin` and COMMIT (ROLLBACK
 * when it rejects). `lostCommit(begun, error)` settles a COMMIT that lost
 * its connection: true resolves, false rethrows the driver's error, and it
 * may throw an error of its own instead. `sentWithCommit(result)`
 * gives a statement `body` started and did not await: it is awaited with the
 * COMMIT (one round trip), and its failure fails the transaction.
 */
export async function reservedTransaction<T>(
  sql: Sql,
  begin: string,
  body: (conn: postgres.ReservedSql) => Promise<T>,
  lostCommit?: (begun: Begun, error: unknown) => Promise<boolean>,
  sentWithCommit?: (result: T) => Promise<unknown> | undefined,
): Promise<T> {
  const conn = await sql.reserve();
  // The pool takes a lost connection back by itself; releasing it would
  // hand a closed connection out as open.
  let lost = false;
  try {
    let begun: Begun = { xid: "", started: "", reset: null };
    let result: T;
    let last: Promise<{ error: unknown } | void> | undefined;
    try {
      // The id query is pipelined with BEGIN as a prepared statement: one
      // multi-statement simple query measured slower.
      if (lostCommit === undefined) await conn.unsafe(begin);
      else {
        [, [begun]] = await Promise.all([
          conn.unsafe(begin),
          conn<[Begun]>`select pg_current_xact_id()::text as xid,
            pg_postmaster_start_time()::text as started,
            (select stats_reset::text from pg_stat_wal) as reset`,
        ]);
      }
      result = await body(conn);
      last = sentWithCommit?.(result)?.then(() => {}, (error) => ({ error }));
    } catch (error) {
      lost = isConnectionError(error) ||
        await conn`rollback`.then(() => false, isConnectionError);
      throw error;
    }
    let done, refused;
    try {
      [done, refused] = await Promise.all([conn`commit`, last]);
    } catch (error) {
      lost = isConnectionError(error);
      if (lost && await lostCommit?.(begun, error)) return result;
      throw error;
    }
    if (refused !== undefined) throw refused.error;
    if (done.command !== "COMMIT") {
      // A statement failed earlier and the caller caught its error.
      throw new Error(
        "COMMIT rolled the transaction back: a statement failed earlier in it (SQLSTATE 25P02); let a failed query's error reach run(), or use tx.sql.savepoint() around a statement that may fail",
      );
    }
    return result;
  } finally {
    if (!lost) conn.release();
  }
}
