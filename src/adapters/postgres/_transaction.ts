// The one transaction path of the postgres adapter: a connection reserved
// from the pool, then BEGIN … COMMIT on it. Not sql.begin: postgres.js 3.4.9
// can send sql.begin's BEGIN without reserving the connection, so that other
// callers' queries run inside the transaction (porsager/postgres#1189).
import type postgres from "postgres";
import { isConnectionError } from "../../internal/connection_error.ts";
import { describe } from "../../internal/describe.ts";
import { fail } from "../../internal/rules.ts";

/** A postgres.js client (a pool), or a reserved connection. */
// deno-lint-ignore no-explicit-any
export type Sql = postgres.Sql<any>;

/** What runs a statement: a client, a transaction or a reserved connection. */
export type Query = postgres.ISql;

/** What BEGIN's round trip read: the transaction id and the server's start. */
export interface Begun {
  readonly xid: string;
  readonly started: string;
  /**
   * When the server's statistics were last reset: crash recovery resets
   * them (a clean restart keeps them), with or without a new postmaster.
   */
  readonly reset: string | null;
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

const LAST = Symbol("statements sent with COMMIT");

/**
 * Sends `statement` (a query on the transaction's connection, not awaited
 * yet) as the transaction's last: `COMMIT` follows it at once, in the same
 * round trip, and its error, if any, is what the commit throws.
 */
export function withCommit(tx: unknown, statement: Promise<unknown>): void {
  const last = (tx as { [LAST]?: Promise<unknown>[] })[LAST];
  if (last === undefined) throw new TypeError("Not a reserved transaction");
  last.push(statement.then(() => undefined, (error) => ({ error })));
}

/**
 * Runs `body` in a transaction on a reserved connection: `begin`, then
 * COMMIT when it resolves, ROLLBACK when it rejects.
 *
 * With `lostCommit`, the transaction id is read in BEGIN's round trip, and a
 * COMMIT that fails with a lost connection is settled by `lostCommit(begun,
 * error)`: true resolves with `body`'s result, false rethrows the error.
 */
export async function reservedTransaction<T>(
  sql: Sql,
  begin: string,
  body: (conn: postgres.ReservedSql) => Promise<T>,
  lostCommit?: (begun: Begun, error: unknown) => Promise<boolean>,
): Promise<T> {
  const last: Promise<unknown>[] = [];
  const conn = Object.assign(await sql.reserve(), { [LAST]: last });
  // After a lost connection the pool takes it back by itself; releasing it
  // would hand a closed connection out as open.
  let lost = false;
  try {
    let begun: Begun = { xid: "", started: "", reset: null };
    let result: T;
    try {
      // `begin` is one of a few fixed texts (the isolation level), no
      // input; the id query goes out with it (a prepared statement: a
      // multi-statement simple query measured slower).
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
    } catch (error) {
      await Promise.all(last);
      lost = isConnectionError(error) || !await rollback(conn);
      throw error;
    }
    let done;
    let outcomes: unknown[];
    try {
      [done, ...outcomes] = await Promise.all([conn`commit`, ...last]);
    } catch (error) {
      if (!isConnectionError(error)) throw error;
      lost = true;
      if (lostCommit !== undefined && await lostCommit(begun, error)) {
        return result;
      }
      throw error;
    }
    const refused = outcomes.find((o) => o !== undefined);
    if (refused !== undefined) throw (refused as { error: unknown }).error;
    if (done.command !== "COMMIT") {
      // PostgreSQL answers COMMIT with ROLLBACK when a statement failed
      // earlier and the caller caught its error.
      throw new Error(
        "COMMIT rolled the transaction back: a statement failed earlier in it (SQLSTATE 25P02); let a failed query's error reach run(), or use tx.sql.savepoint() around a statement that may fail",
      );
    }
    return result;
  } catch (error) {
    if (isConnectionError(error)) lost = true;
    throw error;
  } finally {
    if (!lost) conn.release();
  }
}

// Rolls back; false when the connection is gone (it must not be released).
async function rollback(conn: postgres.ReservedSql): Promise<boolean> {
  try {
    await conn`rollback`;
    return true;
  } catch (error) {
    return !isConnectionError(error);
  }
}
