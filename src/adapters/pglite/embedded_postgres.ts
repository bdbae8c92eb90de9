// Embedded PostgreSQL: PGlite served on a loopback port by pglite-socket, one
// connection at a time (its limits are in README.md, "Embedded PostgreSQL").
import { PGlite } from "@electric-sql/pglite";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";
import { getLogger } from "@logtape/logtape";
import {
  callable,
  expected,
  fail,
  integer,
  readOptions,
  text,
} from "../../internal/rules.ts";

const logger = getLogger(["aftercommit", "embedded"]);

/** Options of {@linkcode startEmbeddedPostgres}. */
export interface EmbeddedPostgresOptions {
  /** A folder that keeps the data across restarts. Default: in memory. */
  readonly dataDir?: string;
  /** The loopback port; `0` picks a free one. Default: 0. */
  readonly port?: number;
}

/** A notice from the server, as postgres.js reports it. */
export interface EmbeddedNotice {
  /** The SQLSTATE code. */
  readonly code?: string;
  /** The notice's text. */
  readonly message?: string;
}

/** The postgres.js options that keep a client within the server's limits. */
export interface EmbeddedClientOptions {
  /** One connection: PGlite has one session. */
  readonly max: 1;
  /** Never recycle the connection: a reconnect could be turned away. */
  readonly max_lifetime: null;
  /** Notices go to the log (`["aftercommit", "embedded"]`, debug). */
  readonly onnotice: (notice: EmbeddedNotice) => void;
}

/** A client {@linkcode EmbeddedPostgres.close} can end, such as a `Sql`. */
export interface EndableClient {
  /** Closes the client's connections, waiting `timeout` s for queries. */
  end(options?: { timeout?: number }): Promise<void>;
}

const CLIENT_OPTIONS: EmbeddedClientOptions = Object.freeze({
  max: 1,
  max_lifetime: null,
  onnotice: ({ code, message: notice }: EmbeddedNotice): void =>
    logger.debug("PostgreSQL notice {code}: {notice}", { code, notice }),
});

/** A running embedded PostgreSQL; stop it with `close()` or `await using`. */
export class EmbeddedPostgres implements AsyncDisposable {
  /** The postgres.js options {@linkcode EmbeddedPostgres.connect} uses. */
  readonly clientOptions: EmbeddedClientOptions = CLIENT_OPTIONS;
  /** `postgres://postgres@127.0.0.1:<port>/postgres`. */
  readonly url: string;
  readonly #clients = new Set<EndableClient>(); // ended by close()
  readonly #open = new Set<EndableClient>(); // until their end() settles
  #closing: Promise<void> | undefined;

  private constructor(
    private readonly pglite: PGlite,
    private readonly server: PGLiteSocketServer,
    /** The loopback port the server listens on. */
    readonly port: number,
    /** The data folder, or `undefined` when the database is in memory. */
    readonly dataDir: string | undefined,
  ) {
    this.url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  }

  /** Same as {@linkcode startEmbeddedPostgres}. */
  static async start(
    options?: EmbeddedPostgresOptions,
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
    await server.start().catch(async (error) => {
      await pglite.close();
      throw error;
    });
    const actual = Number(server.getServerConn().split(":").pop());
    logger.info("Started embedded PostgreSQL on port {port} ({storage})", {
      port: actual,
      storage: dataDir === undefined ? "memory" : "disk",
    });
    return new EmbeddedPostgres(pglite, server, actual, dataDir);
  }

  /**
   * Creates a client with `factory` (`postgres`, or a function calling it) on
   * `url` with `clientOptions`, ended on `close()`. One at a time: await the
   * client's `end()` before connecting another.
   *
   * @throws {TypeError} When `factory` is not a function, after `close()`, or
   * while a client of `connect()` is open.
   */
  connect<C extends EndableClient>(
    factory: (url: string, options: EmbeddedClientOptions) => C,
  ): C {
    const action = "connect to embedded PostgreSQL";
    callable()(factory, "factory (postgres, from npm:postgres)", action);
    if (this.#closing) fail(action, "it is closed; start a new one");
    if (this.#open.size > 0) {
      fail(
        action,
        "a client of connect() is still open, and the server serves one connection at a time (a second client would wait forever); share that client, or await its end() first",
      );
    }
    const client = factory(this.url, CLIENT_OPTIONS);
    const end = (client as Partial<EndableClient> | null)?.end;
    if (typeof end !== "function") {
      expected(
        action,
        "the factory to return a client with an end() method",
        client,
        "return the client itself, such as postgres(url, options)",
      );
    }
    this.#clients.add(client);
    // Open until its end() settles: connecting before then would wait. A
    // client whose end() cannot be replaced (frozen) is not counted.
    const tracked = (options?: { timeout?: number }) =>
      new Promise<void>((resolve) => resolve(end.call(client, options)))
        .finally(() => {
          this.#open.delete(client);
          this.#clients.delete(client);
        });
    try {
      client.end = tracked;
    } catch { /* read-only */ }
    if (client.end === tracked) this.#open.add(client);
    return client;
  }

  /** Ends the clients of `connect()`, stops the server and PGlite; idempotent. */
  close(): Promise<void> {
    return this.#closing ??= (async () => {
      await Promise.allSettled(
        [...this.#clients].map((c) =>
          new Promise((resolve) => resolve(c.end({ timeout: 5 })))
        ),
      );
      try {
        await this.server.stop();
      } finally {
        await this.pglite.close();
        logger.info("Stopped embedded PostgreSQL on port {port}", {
          port: this.port,
        });
      }
    })();
  }

  /** Same as {@linkcode EmbeddedPostgres.close}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Starts an embedded PostgreSQL (PGlite) on a loopback port, in memory or in
 * `options.dataDir`; stop it with `close()` or `await using`.
 *
 * @throws {TypeError} When an option is invalid (`RangeError`: not a port);
 * PGlite's or the server's error, with nothing left running.
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
 *   await db.connect(postgres)`create table notes as select 'kept' as body`;
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
