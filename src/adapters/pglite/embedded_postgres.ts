/**
 * Embedded PostgreSQL: PGlite (PostgreSQL compiled to WASM) served on a
 * loopback port by `@electric-sql/pglite-socket`, so `npm:postgres` reaches it
 * like a server.
 *
 * Limits (PGlite 0.5, pglite-socket 0.2):
 * - One session. PGlite runs one backend, so the socket server accepts one
 *   connection at a time (`maxConnections: 1`); a second concurrent
 *   connection is turned away. The client here therefore uses `max: 1`:
 *   concurrent queries and transactions queue for that one connection, and
 *   code that waits for a second connection while holding the first
 *   deadlocks. Open one client at a time
 *   ({@linkcode EmbeddedPostgres.connect}), and end it before another
 *   connects.
 * - pglite-socket has a multiplexing mode (`maxConnections > 1`). It keeps a
 *   transaction's queries together, but outside a transaction it interleaves
 *   the extended-protocol messages (Parse, Bind, Execute) of different
 *   connections on PGlite's single session, where they share the unnamed
 *   portal; postgres.js uses that protocol for every query, so the mode is
 *   not used here.
 * - The connection is kept (no idle timeout, no maximum lifetime): a
 *   reconnect can race the server releasing the previous connection and be
 *   turned away.
 * - No TLS, no cancel requests (`statement_timeout` still works), one
 *   database (`postgres`); any user name is accepted.
 * - Startup takes seconds: share one instance per test file or process.
 *
 * @module
 */
import { PGlite } from "@electric-sql/pglite";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";
import { getLogger } from "@logtape/logtape";

const logger = getLogger(["aftercommit", "embedded"]);

/** Options of {@linkcode startEmbeddedPostgres}. */
export interface EmbeddedPostgresOptions {
  /**
   * A folder to keep the database in, across restarts. It is created when
   * missing. Open a folder from one instance at a time.
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
 * limits. {@linkcode EmbeddedPostgres.connect} passes them; pass them
 * yourself to `postgres(db.url, { ...db.clientOptions, … })`.
 */
export interface EmbeddedClientOptions {
  /** One connection: PGlite has one session. */
  readonly max: 1;
  /** Never recycle the connection (a reconnect could be turned away). */
  readonly max_lifetime: null;
  /** Notices go to the log (`["aftercommit", "embedded"]`, debug) instead of being printed. */
  readonly onnotice: (notice: EmbeddedNotice) => void;
}

/** A client that {@linkcode EmbeddedPostgres.close} can end: a postgres.js `Sql` fits. */
export interface EndableClient {
  /**
   * Closes the client's connections.
   *
   * @param options How long to wait for running queries, in seconds.
   * @returns A promise that settles once the connections are closed.
   */
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
 * A running embedded PostgreSQL. Stop it with
 * {@linkcode EmbeddedPostgres.close} or `await using`.
 *
 * @example Start, query, stop
 * ```ts
 * import postgres from "postgres";
 * import { startEmbeddedPostgres } from "@aftercommit/core/embedded";
 *
 * await using db = await startEmbeddedPostgres();
 * const sql = db.connect(postgres); // max: 1, ended by db.close()
 * const [row] = await sql`select 1 + 1 as two`;
 * console.log(row?.two); // 2
 * ```
 */
export class EmbeddedPostgres implements AsyncDisposable {
  readonly #pglite: PGlite;
  readonly #server: PGLiteSocketServer;
  readonly #clients = new Set<EndableClient>();
  readonly #url: string;
  readonly #port: number;
  readonly #dataDir: string | undefined;
  #closing: Promise<void> | undefined;

  private constructor(
    pglite: PGlite,
    server: PGLiteSocketServer,
    port: number,
    dataDir: string | undefined,
  ) {
    this.#pglite = pglite;
    this.#server = server;
    this.#port = port;
    this.#dataDir = dataDir;
    this.#url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  }

  /**
   * Starts PGlite and its socket server. Prefer
   * {@linkcode startEmbeddedPostgres}, which calls it.
   *
   * @param options The data folder and the port.
   * @returns The running database.
   * @throws {TypeError} When an option has the wrong type or range.
   * @throws The error of PGlite or of the socket server (a port in use, a
   * data folder another process holds); nothing is left running then.
   */
  static async start(
    options: EmbeddedPostgresOptions = {},
  ): Promise<EmbeddedPostgres> {
    const { dataDir, port = 0 } = options;
    if (dataDir !== undefined && (typeof dataDir !== "string" || !dataDir)) {
      throw new TypeError(
        `Cannot start embedded PostgreSQL: dataDir must be a non-empty folder path, received ${
          JSON.stringify(dataDir)
        }; leave it out to keep the database in memory`,
      );
    }
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw new RangeError(
        `Cannot start embedded PostgreSQL: port must be an integer from 0 to 65535, received ${
          JSON.stringify(port)
        }; use 0 for a free port`,
      );
    }
    const pglite = dataDir === undefined
      ? await PGlite.create()
      : await PGlite.create(dataDir);
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
    const actualPort = Number(server.getServerConn().split(":").pop());
    logger.info(
      "Started embedded PostgreSQL on port {port} ({storage})",
      { port: actualPort, storage: dataDir === undefined ? "memory" : "disk" },
    );
    return new EmbeddedPostgres(pglite, server, actualPort, dataDir);
  }

  /**
   * Creates a client with `factory` (postgres.js's default export) on
   * {@linkcode EmbeddedPostgres.url} with
   * {@linkcode EmbeddedPostgres.clientOptions}, and ends it on
   * {@linkcode EmbeddedPostgres.close}. The server serves one connection at
   * a time: end a client before connecting another.
   *
   * @typeParam C The client's type.
   * @param factory `postgres`, or a function that calls it with more options.
   * @returns The client; it connects on its first query.
   * @throws {TypeError} When `factory` is not a function, or the database
   * is closed.
   *
   * @example Connect postgres.js
   * ```ts
   * import postgres from "postgres";
   * import { startEmbeddedPostgres } from "@aftercommit/core/embedded";
   *
   * await using db = await startEmbeddedPostgres();
   * const sql = db.connect((url, options) =>
   *   postgres(url, { ...options, transform: postgres.camel })
   * );
   * const [row] = await sql`select 1 as some_value`;
   * console.log(row?.someValue); // 1
   * ```
   */
  connect<C extends EndableClient>(
    factory: (url: string, options: EmbeddedClientOptions) => C,
  ): C {
    if (typeof factory !== "function") {
      throw new TypeError(
        `Cannot connect to embedded PostgreSQL: expected a client factory such as postgres (the default export of npm:postgres), received ${typeof factory}`,
      );
    }
    if (this.#closing !== undefined) {
      throw new TypeError(
        "Cannot connect to embedded PostgreSQL: it is closed; start a new one",
      );
    }
    const client = factory(this.#url, CLIENT_OPTIONS);
    this.#clients.add(client);
    return client;
  }

  /** The postgres.js options {@linkcode EmbeddedPostgres.connect} uses. */
  get clientOptions(): EmbeddedClientOptions {
    return CLIENT_OPTIONS;
  }

  /**
   * The connection URL (`postgres://postgres@127.0.0.1:<port>/postgres`), for
   * a client of your own; pass it {@linkcode EmbeddedPostgres.clientOptions}.
   * Only one connection is served at a time.
   */
  get url(): string {
    return this.#url;
  }

  /** The loopback port the server listens on. */
  get port(): number {
    return this.#port;
  }

  /** The data folder, or `undefined` when the database is in memory. */
  get dataDir(): string | undefined {
    return this.#dataDir;
  }

  /**
   * Ends the clients made by {@linkcode EmbeddedPostgres.connect}, stops
   * the socket server and closes PGlite (flushing
   * a data folder). Calling it again returns the same promise.
   *
   * @returns A promise that settles when everything is stopped.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    try {
      await Promise.allSettled(
        [...this.#clients].map((client) => client.end({ timeout: 5 })),
      );
      this.#clients.clear();
    } finally {
      try {
        await this.#server.stop();
      } finally {
        await this.#pglite.close();
        logger.info("Stopped embedded PostgreSQL on port {port}", {
          port: this.#port,
        });
      }
    }
  }

  /**
   * Same as {@linkcode EmbeddedPostgres.close}, for `await using`.
   *
   * @returns A promise that settles when everything is stopped.
   */
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
 *   console.log(rows.length); // 1
 * }
 * await Deno.remove(dataDir, { recursive: true });
 * ```
 */
export function startEmbeddedPostgres(
  options?: EmbeddedPostgresOptions,
): Promise<EmbeddedPostgres> {
  return EmbeddedPostgres.start(options);
}
