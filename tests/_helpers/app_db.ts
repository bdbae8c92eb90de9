// The application database of one test file: embedded PGlite by default, or
// a fresh database on the server named by TEST_DATABASE_URL, dropped when the
// test file is done with it.
import postgres from "postgres";
import { startEmbeddedPostgres } from "../../src/adapters/pglite/mod.ts";
import { createServerDatabase } from "./server_database.ts";

/** Which backend a test file runs on. */
export type Backend = "embedded" | "server";

/** A database for one test file. */
export interface AppDatabase extends AsyncDisposable {
  readonly backend: Backend;
  /** The client the code under test uses: a pool on the server, `max: 1` embedded. */
  readonly sql: postgres.Sql;
  /**
   * A client for assertions. On the server it is a separate connection, so
   * it sees only committed data. Embedded PGlite has one session, so it is
   * `sql` itself.
   */
  readonly observer: postgres.Sql;
}

const quiet = { onnotice: () => {} } as const;

/**
 * Opens the database of one test file. Use with `await using`.
 *
 * @param pool The pool size on the server (embedded PGlite always has 1).
 */
export async function openAppDatabase(pool = 10): Promise<AppDatabase> {
  const serverUrl = Deno.env.get("TEST_DATABASE_URL");
  if (serverUrl === undefined || serverUrl === "") {
    const db = await startEmbeddedPostgres();
    const sql = db.connect(postgres);
    return {
      backend: "embedded",
      sql,
      observer: sql,
      [Symbol.asyncDispose]: () => db.close(),
    };
  }
  const db = await createServerDatabase(serverUrl, "aftercommit_test");
  const url = new URL(db.url);
  const sql = postgres(url.href, { ...quiet, max: pool });
  const observer = postgres(url.href, { ...quiet, max: 1 });
  return {
    backend: "server",
    sql,
    observer,
    async [Symbol.asyncDispose]() {
      try {
        await Promise.all([
          sql.end({ timeout: 5 }),
          observer.end({ timeout: 5 }),
        ]);
      } finally {
        await db.drop();
      }
    },
  };
}

/** A connection to an application database this process does not own. */
export interface AppConnection extends AsyncDisposable {
  readonly sql: postgres.Sql;
}

/**
 * Connects to an application database that outlives the process, as a
 * crash test's child and the process taking over after it do: a PGlite
 * data folder (embedded, one process at a time), or a server URL with a
 * pool of `max`.
 */
export async function connectApp(
  backend: Backend,
  where: string,
  max: number,
): Promise<AppConnection> {
  if (backend === "embedded") {
    const db = await startEmbeddedPostgres({ dataDir: where });
    return {
      sql: db.connect(postgres),
      [Symbol.asyncDispose]: () => db.close(),
    };
  }
  const sql = postgres(where, { ...quiet, max });
  return { sql, [Symbol.asyncDispose]: () => sql.end({ timeout: 5 }) };
}
