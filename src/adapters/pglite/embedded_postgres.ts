/**
 * Embedded PostgreSQL: PGlite (PostgreSQL compiled to WASM) served on a
 * loopback port by `@electric-sql/pglite-socket`, so `npm:postgres` reaches it
 * like a server.
 *
 * Limits (PGlite 0.5, pglite-socket 0.2):
 * - One session, so one connection at a time (`maxConnections: 1`); clients
 *   use `max: 1`, and code that waits for a second connection while holding
 *   the first deadlocks. pglite-socket's multiplexing mode is not used: it
 *   interleaves the extended-protocol messages of different connections on
 *   the one session, where they share the unnamed portal.
 * - The connection is kept (no maximum lifetime): a reconnect can race the
 *   server releasing the previous one and be turned away.
 * - No TLS, no cancel requests (`statement_timeout` works), one database
 *   (`postgres`); any user name is accepted.
 * - Startup takes seconds: share one instance per test file or process.
 *
 * @module
 */
import { PGlite } from "@electric-sql/pglite";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";
import { getLogger } from "@logtape/logtape";
import { callable, integer, readOptions, text } from "../../internal/rules.ts";

const logger = getLogger(["aftercommit", "embedded"]);

/** Options of {@linkcode startEmbeddedPostgres}. */
export interface EmbeddedPostgresOptions {
  /**
   * A folder to keep the database in across restarts, created when missing.
   * Open a folder from one instance at a time.
   *
   * @default {undefined (in memory: the data is gone when the database stops)}
   */
  readonly dataDir?: string;
  /**
   * The loopback port to listen on; `0` picks a free one.
   *
   * @default {0}
   */
  readonly port?: number;
}

/** A notice from the server, as postgres.js reports it. */
export interface EmbeddedNotice {
  /** The SQLSTATE code. */
  readonly code?: string;
  /** The notice's text. */
  readonly message?: string;
}

/**
 * The postgres.js options that keep a client within the embedded server's
 * limits: pass them to `postgres(db.url, { ...db.clientOptions, … })`.
 */
export interface EmbeddedClientOptions {
  /** One connection: PGlite has one session. */
  readonly max: 1;
  /** Never recycle the connection (a reconnect could be turned away). */
  readonly max_lifetime: null;
  /** Notices go to the log (`["aftercommit", "embedded"]`, debug). */
  readonly onnotice: (notice: EmbeddedNotice) => void;
}

/** A client that {@linkcode EmbeddedPostgres.close} can end: a postgres.js `Sql` fits. */
export interface EndableClient {
  /** Closes the client's connections, waiting `timeout` seconds for queries. */
  end(options?: { timeout?: number }): Promise<void>;
}

const CLIENT_OPTIONS: EmbeddedClientOptions = Object.freeze({
  max: 1,
  max_lifetime: null,
  onnotice: (notice: EmbeddedNotice): void =>
    logger.debug("PostgreSQL notice {code}: {notice}", {
      code: notice.code,
      notice: notice.message,
    }),
});

/**
 * A running embedded PostgreSQL, from {@linkcode startEmbeddedPostgres};
 * stop it with `close()` or `await using`.
 */
export class EmbeddedPostgres implements AsyncDisposable {
  /** The postgres.js options {@linkcode EmbeddedPostgres.connect} uses. */
  readonly clientOptions: EmbeddedClientOptions = CLIENT_OPTIONS;
  /** `postgres://postgres@127.0.0.1:<port>/postgres`, one connection at a time. */
  readonly url: string;
  readonly #pglite: PGlite;
  readonly #server: PGLiteSocketServer;
  readonly #clients = new Set<EndableClient>();
  #closing: Promise<void> | undefined;

  private constructor(
    pglite: PGlite,
    server: PGLiteSocketServer,
    /** The loopback port the server listens on. */
    readonly port: number,
    /** The data folder, or `undefined` when the database is in memory. */
    readonly dataDir: string | undefined,
  ) {
    this.#pglite = pglite;
    this.#server = server;
    this.url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  }

  /**
   * Starts PGlite and its socket server; {@linkcode startEmbeddedPostgres}
   * calls it.
   *
   * @param options The data folder and the port.
   * @returns The running database.
   * @throws {TypeError} When `dataDir` is not a non-empty string or `port`
   * not an integer.
   * @throws {RangeError} When `port` is not a port number.
   * @throws The error of PGlite or of the socket server (a port in use, a
   * data folder another process holds); nothing is left running then.
   */
  static async start(
    options: EmbeddedPostgresOptions = {},
  ): Promise<EmbeddedPostgres> {
    const { dataDir, port } = readOptions(options, {
      dataDir: text(undefined, "leave it out to keep the database in memory"),
      port: integer(0, 65535, 0),
    }, "start embedded PostgreSQL");
    const pglite = await PGlite.create(dataDir);
    const server = new PGLiteSocketServer({
      db: pglite,
      host: "127.0.0.1",
      port,
      maxConnections: 1,
    });
    try {
      await server.start();
    } catch (error) {
      await pglite.close();
      throw error;
    }
    const actual = Number(server.getServerConn().split(":").pop());
    logger.info("Started embedded PostgreSQL on port {port} ({storage})", {
      port: actual,
      storage: dataDir === undefined ? "memory" : "disk",
    });
    return new EmbeddedPostgres(pglite, server, actual, dataDir);
  }

  /**
   * Creates a client with `factory` (postgres.js's default export) on
   * {@linkcode EmbeddedPostgres.url} with
   * {@linkcode EmbeddedPostgres.clientOptions}, and ends it on `close()`.
   * End a client before connecting another.
   *
   * @typeParam C The client's type.
   * @param factory `postgres`, or a function that calls it with more options.
   * @returns The client; it connects on its first query.
   * @throws {TypeError} When `factory` is not a function, or the database
   * is closed.
   *
   * @example Connect postgres.js with more options
   * ```ts
   * import assert from "node:assert/strict";
   * import postgres from "postgres";
   * import { startEmbeddedPostgres } from "@aftercommit/core/embedded";
   *
   * await using db = await startEmbeddedPostgres();
   * const sql = db.connect((url, options) =>
   *   postgres(url, { ...options, transform: postgres.camel })
   * );
   * const [row] = await sql`select 1 as some_value`;
   * assert.equal(row?.someValue, 1);
   * ```
   */
  connect<C extends EndableClient>(
    factory: (url: string, options: EmbeddedClientOptions) => C,
  ): C {
    const action = "connect to embedded PostgreSQL";
    callable()(factory, "factory (postgres, from npm:postgres)", action);
    if (this.#closing) {
      throw new TypeError(`Cannot ${action}: it is closed; start a new one`);
    }
    const client = factory(this.url, CLIENT_OPTIONS);
    this.#clients.add(client);
    return client;
  }

  /**
   * Ends the clients made by {@linkcode EmbeddedPostgres.connect}, stops the
   * socket server and closes PGlite (flushing a data folder). Calling it
   * again returns the same promise.
   *
   * @returns A promise that settles when everything is stopped.
   */
  close(): Promise<void> {
    return this.#closing ??= (async () => {
      try {
        await Promise.allSettled(
          [...this.#clients].map((client) => client.end({ timeout: 5 })),
        );
      } finally {
        try {
          await this.#server.stop();
        } finally {
          await this.#pglite.close();
          logger.info("Stopped embedded PostgreSQL on port {port}", {
            port: this.port,
          });
        }
      }
    })();
  }

  /** Same as {@linkcode EmbeddedPostgres.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Starts an embedded PostgreSQL (PGlite) reachable by `npm:postgres` on a
 * loopback port: in memory by default, or kept in `options.dataDir`.
 *
 * @param options The data folder and the port.
 * @returns The running database; stop it with `close()` or `await using`.
 * @throws {TypeError} When `options.dataDir` is not a non-empty string.
 * @throws {RangeError} When `options.port` is not a port number.
 *
 * @example Keep the data in a folder across restarts
 * ```ts
 * import assert from "node:assert/strict";
 * import postgres from "postgres";
 * import { startEmbeddedPostgres } from "@aftercommit/core/embedded";
 *
 * const dataDir = await Deno.makeTempDir();
 * {
 *   await using db = await startEmbeddedPostgres({ dataDir });
 *   const sql = db.connect(postgres);
 *   await sql`create table notes (body text)`;
 *   await sql`insert into notes values ('kept')`;
 * }
 * {
 *   await using db = await startEmbeddedPostgres({ dataDir });
 *   const rows = await db.connect(postgres)`select body from notes`;
 *   assert.deepEqual(rows.map((row) => row.body), ["kept"]);
 * }
 * await Deno.remove(dataDir, { recursive: true });
 * ```
 */
export function startEmbeddedPostgres(
  options?: EmbeddedPostgresOptions,
): Promise<EmbeddedPostgres> {
  return EmbeddedPostgres.start(options);
}
