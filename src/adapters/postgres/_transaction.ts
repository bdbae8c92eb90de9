// The one transaction path of the postgres adapter: a connection reserved
// from the pool, then BEGIN … COMMIT on it. Not sql.begin: postgres.js 3.4.9
// can send sql.begin's BEGIN without reserving the connection, so that other
// callers' queries run inside the transaction (porsager/postgres#1189).
import { isConnectionError } from "../../application/_connection_error.ts";
import type { PostgresReservedConnection } from "./postgres_unit_of_work.ts";

/**
 * Runs `body` in a transaction on a reserved connection: `begin`, then
 * COMMIT when it resolves, ROLLBACK when it rejects.
 *
 * With `lostCommit`, the transaction id is read in BEGIN's round trip, and a
 * COMMIT that fails with a lost connection is settled by `lostCommit(xid,
 * error)`: true resolves with `body`'s result, false rethrows the error.
 */
export async function reservedTransaction<T>(
  sql: { reserve(): Promise<PostgresReservedConnection> },
  begin: string,
  body: (conn: PostgresReservedConnection) => Promise<T>,
  lostCommit?: (xid: string, error: unknown) => Promise<boolean>,
): Promise<T> {
  const conn = await sql.reserve();
  // After a lost connection the pool takes it back by itself; releasing it
  // would hand a closed connection out as open.
  let lost = false;
  try {
    let xid = "";
    let result: T;
    try {
      if (lostCommit === undefined) await conn.unsafe(begin);
      else {
        const [, begun] = await Promise.all([
          conn.unsafe(begin),
          conn`select pg_current_xact_id()::text as xid`,
        ]);
        xid = begun[0]!.xid as string;
      }
      result = await body(conn);
    } catch (error) {
      lost = isConnectionError(error) || !await rollback(conn);
      throw error;
    }
    let done;
    try {
      done = await conn`commit`;
    } catch (error) {
      if (!isConnectionError(error)) throw error;
      lost = true;
      if (lostCommit !== undefined && await lostCommit(xid, error)) {
        return result;
      }
      throw error;
    }
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
async function rollback(conn: PostgresReservedConnection): Promise<boolean> {
  try {
    await conn`rollback`;
    return true;
  } catch (error) {
    return !isConnectionError(error);
  }
}
