// The jobs database of one test file: embedded PGlite by default, or a fresh
// database on the server named by TEST_JOB_QUEUE_DATABASE_URL, dropped when
// the test file is done with it.
import postgres from "postgres";
import { createServerDatabase } from "./server_database.ts";
import { waitFor } from "./poll.ts";
import type { PGlite } from "@electric-sql/pglite";
import {
  PgBossJobQueue,
  type PgBossJobQueueOptions,
} from "../../src/adapters/pg-boss/mod.ts";

/** Which backend a test file runs on. */
export type JobsBackend = "embedded" | "server";

/** Options of {@linkcode openJobsDatabase}. */
export interface JobsDatabaseOptions {
  /**
   * Embedded only: keep the database in a temporary directory instead of in
   * memory, so a queue can be stopped and connected again to the same jobs.
   * Each `connect` then opens (and its `stop` closes) its own PGlite on that
   * directory. A server database is always durable.
   */
  readonly durable?: boolean;
}

/** A jobs database for one test file. */
export interface JobsDatabase extends AsyncDisposable {
  readonly backend: JobsBackend;
  /**
   * Connects a queue to this database. Tests get fast settings: maintenance
   * off, a short stop timeout; `options` override them.
   */
  connect(options?: PgBossJobQueueOptions): Promise<PgBossJobQueue>;
  /** Runs one statement on the jobs database (not for durable embedded ones). */
  query(text: string, params?: unknown[]): Promise<Record<string, unknown>[]>;
}

const testDefaults: PgBossJobQueueOptions = {
  supervise: false,
  stopTimeoutSeconds: 5,
};

/** Opens the jobs database of one test file. Use with `await using`. */
export async function openJobsDatabase(
  options: JobsDatabaseOptions = {},
): Promise<JobsDatabase> {
  const serverUrl = Deno.env.get("TEST_JOB_QUEUE_DATABASE_URL");
  if (serverUrl === undefined || serverUrl === "") {
    return options.durable ? await openDurableEmbedded() : await openEmbedded();
  }
  return await openServer(serverUrl);
}

async function openEmbedded(): Promise<JobsDatabase> {
  const { PGlite } = await import("@electric-sql/pglite");
  const pglite: PGlite = await PGlite.create();
  return {
    backend: "embedded",
    connect: (options) =>
      PgBossJobQueue.connect(pglite, { ...testDefaults, ...options }),
    query: async (text, params) =>
      (await pglite.query<Record<string, unknown>>(text, params)).rows,
    [Symbol.asyncDispose]: () => pglite.close(),
  };
}

async function openDurableEmbedded(): Promise<JobsDatabase> {
  const dataDir = await Deno.makeTempDir({ prefix: "aftercommit_jobs_" });
  return {
    backend: "embedded",
    connect: (options) =>
      connectJobQueue({ dataDir }, { ...testDefaults, ...options }),
    query: () => Promise.reject(new Error("no query on a durable database")),
    [Symbol.asyncDispose]: () => Deno.remove(dataDir, { recursive: true }),
  };
}

async function openServer(serverUrl: string): Promise<JobsDatabase> {
  const db = await createServerDatabase(serverUrl, "aftercommit_jobs_test");
  const url = new URL(db.url);
  const sql = postgres(url.href, { max: 1, onnotice: () => {} });
  return {
    backend: "server",
    connect: (options) =>
      PgBossJobQueue.connect(url.href, { ...testDefaults, ...options }),
    query: async (text, params) =>
      // Plain arrays of plain objects, as on the embedded database.
      (await sql.unsafe(text, params as never[])).map((row) => ({ ...row })),
    [Symbol.asyncDispose]: async () => {
      await sql.end();
      await db.drop();
    },
  };
}

/**
 * Connects a queue to a server URL, or to an embedded PGlite database in
 * `dataDir` that the queue's `stop()` closes after pg-boss has stopped (the
 * adapter never closes a PGlite it was given).
 */
export async function connectJobQueue(
  where: string | { readonly dataDir: string },
  options?: PgBossJobQueueOptions,
): Promise<PgBossJobQueue> {
  if (typeof where === "string") return PgBossJobQueue.connect(where, options);
  const { PGlite } = await import("@electric-sql/pglite");
  const pglite = await PGlite.create(where.dataDir);
  try {
    const jobs = await PgBossJobQueue.connect(pglite, options);
    const stop = jobs.stop.bind(jobs);
    let stopping: Promise<void> | undefined;
    jobs.stop = () => stopping ??= stop().finally(() => pglite.close());
    return jobs;
  } catch (error) {
    await pglite.close();
    throw error;
  }
}

/** Re-exported: the pg-boss tests take it from here. */
export { waitFor };

/** A queue name no other test of the file uses. */
export function uniqueQueueName(prefix: string): string {
  return `${prefix}-${crypto.randomUUID().slice(0, 8)}`;
}

/** Collects values until `count` have arrived. */
export class Collector<T> {
  readonly items: T[] = [];
  readonly #waiters: { count: number; resolve: () => void }[] = [];

  push(item: T): void {
    this.items.push(item);
    for (const waiter of [...this.#waiters]) {
      if (this.items.length >= waiter.count) {
        this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
        waiter.resolve();
      }
    }
  }

  /** Resolves once `count` items have arrived (fails after a timeout). */
  async atLeast(count: number, what = `${count} items`): Promise<T[]> {
    if (this.items.length < count) {
      const { promise, resolve } = Promise.withResolvers<void>();
      this.#waiters.push({ count, resolve });
      await waitFor(promise, what);
    }
    return this.items;
  }
}
