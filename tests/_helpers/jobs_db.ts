// The jobs database of one test file: embedded PGlite by default, or a fresh
// database on the server named by TEST_JOB_QUEUE_DATABASE_URL, dropped when
// the test file is done with it.
import { createServerDatabase } from "./server_database.ts";
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
      PgBossJobQueue.connect(undefined, {
        ...testDefaults,
        pglite,
        ...options,
      }),
    [Symbol.asyncDispose]: () => pglite.close(),
  };
}

async function openDurableEmbedded(): Promise<JobsDatabase> {
  const dataDir = await Deno.makeTempDir({ prefix: "aftercommit_jobs_" });
  return {
    backend: "embedded",
    connect: (options) =>
      PgBossJobQueue.connect(undefined, {
        ...testDefaults,
        dataDir,
        ...options,
      }),
    [Symbol.asyncDispose]: () => Deno.remove(dataDir, { recursive: true }),
  };
}

async function openServer(serverUrl: string): Promise<JobsDatabase> {
  const db = await createServerDatabase(serverUrl, "aftercommit_jobs_test");
  const url = new URL(db.url);
  return {
    backend: "server",
    connect: (options) =>
      PgBossJobQueue.connect(url.href, { ...testDefaults, ...options }),
    [Symbol.asyncDispose]: () => db.drop(),
  };
}

/** A queue name no other test of the file uses. */
export function uniqueQueueName(prefix: string): string {
  return `${prefix}-${crypto.randomUUID().slice(0, 8)}`;
}

/**
 * Waits for `promise`, failing with `what` after `ms` instead of hanging the
 * test run when the awaited thing never happens.
 */
export async function waitFor<T>(
  promise: Promise<T>,
  what: string,
  ms = 15_000,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`Timed out after ${ms} ms waiting for ${what}`)),
      ms,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
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
