import { getLogger } from "@logtape/logtape";
import type { JobInsert, PgBoss, PGliteLike } from "pg-boss";
import {
  assertQueueName,
  type EnqueueOptions,
  type JobHandler,
  type JobQueue,
  type JobRequest,
  type PreparedJob,
  prepareJob,
  prepareJobs,
  type WorkOptions,
} from "../../application/job_queue.ts";
import { loggableError } from "../../internal/loggable_error.ts";
import { number } from "../../internal/rules.ts";
import { inSpan, SpanKind, tracing } from "../../internal/telemetry.ts";
import {
  type JobQueueStats,
  type JobQueueStatsOptions,
  readJobQueueStats,
} from "./job_queue_stats.ts";
import {
  DEAD_LETTER_SUFFIX,
  type DeadLetter,
  type DeadLetterListOptions,
  DeadLetters,
  type DeadLetterSelection,
} from "./dead_letters.ts";
import {
  type ConnectConfig,
  type JobQueueBackend,
  type PgBossJobQueueOptions,
  startBoss,
} from "./options.ts";
import {
  type JobSchedule,
  type ScheduleOptions,
  Schedules,
} from "./schedules.ts";
import { type QueueAccess, stamped, startWorker } from "./_worker.ts";
import { LocalStarts, untilAbort } from "./_local_start.ts";

const logger = getLogger(["aftercommit", "jobs"]);

/**
 * A durable job queue on [pg-boss](https://github.com/timgit/pg-boss), on a
 * PostgreSQL server or an embedded PGlite database, with retries, dead
 * letters and idempotent enqueue by key.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { PGlite } from "@electric-sql/pglite";
 * import { PgBossJobQueue } from "@aftercommit/core/pg-boss";
 *
 * await using pglite = await PGlite.create();
 * await using jobs = await PgBossJobQueue.connect(pglite, { supervise: false });
 * const done = Promise.withResolvers<unknown>();
 * await jobs.work("welcome", (job) => done.resolve(job.data));
 * const id = await jobs.enqueue("welcome", { userId: "u1" }, { key: "evt-1" });
 * assert.deepEqual(id, PgBossJobQueue.jobIdFor("welcome", "evt-1"));
 * assert.deepEqual(await done.promise, { userId: "u1" });
 * ```
 */
export class PgBossJobQueue implements JobQueue, AsyncDisposable {
  readonly #boss: PgBoss;
  readonly #config: ConnectConfig;
  readonly #queues = new Map<string, Promise<void>>();
  readonly #deadLetters: DeadLetters;
  readonly #schedules: Schedules;
  readonly #local: LocalStarts;
  readonly #queueAccess: QueueAccess = {
    assertRunning: (action) => this.#assertRunning(action),
    ensureQueue: (name) => this.#ensureQueue(name),
    wake: (name) => this.#local.wake(name),
  };
  #stopping: Promise<void> | undefined;

  /** Whether the jobs live on a PostgreSQL server or in embedded PGlite. */
  readonly backend: JobQueueBackend;

  private constructor(boss: PgBoss, config: ConnectConfig) {
    this.#boss = boss;
    this.#config = config;
    this.backend = config.backend;
    this.#deadLetters = new DeadLetters(boss, this.#queueAccess, config.schema);
    this.#schedules = new Schedules(boss, this.#queueAccess);
    this.#local = new LocalStarts(boss, config.schema);
  }

  /**
   * Starts pg-boss on `database` (a `postgres://` URL, or a PGlite instance
   * that `stop()` does not close), installing or migrating its schema
   * (with `migrate: false`, a `TypeError` when it is missing or of another
   * version).
   * @throws {TypeError} When the database or an option is invalid.
   */
  static async connect(
    database: string | PGliteLike,
    options: PgBossJobQueueOptions = {},
  ): Promise<PgBossJobQueue> {
    const { boss, config } = await startBoss(database, options);
    return new PgBossJobQueue(boss, config);
  }

  /**
   * The id `enqueue(name, data, { key })` gives a job: a UUID v5 of the queue
   * name and the key (a TypeError when either is invalid).
   */
  static jobIdFor(name: string, key: string): string {
    return prepareJob({ name, data: null, options: { key } }, "derive job id")
      .id;
  }

  /** The dead-letter queue of queue `name`: `name` + `"__dead"`. */
  static deadLetterQueueName(name: string): string {
    assertQueueName(name, "name dead-letter queue");
    return name + DEAD_LETTER_SUFFIX;
  }

  /** Checks a job as `enqueue` does and gives it its id, writing nothing. */
  prepare(request: JobRequest): PreparedJob {
    return prepareJob(request);
  }

  /**
   * Whether `select 1` on the jobs database answers within `timeoutSeconds`
   * (`false` once stopped; a failure logs a warning).
   */
  async ping(timeoutSeconds = 1): Promise<boolean> {
    number(0.01)(timeoutSeconds, "timeoutSeconds", "ping job queue");
    if (this.#stopping !== undefined) return false;
    const signal = AbortSignal.timeout(timeoutSeconds * 1000);
    try {
      // pg-boss's executeSql() takes no signal: the wait ends at the abort.
      const selected = this.#boss.getDb().executeSql("select 1");
      if (!await untilAbort(signal, selected)) return true;
      throw new Error(`No answer within ${timeoutSeconds} s`);
    } catch (error) {
      if (this.#stopping === undefined) {
        logger.warn("Job queue health check failed: {error}", {
          error: loggableError(error),
        });
      }
      return false;
    }
  }

  /**
   * Counts jobs by queue and state, and in the last `windowSeconds`: jobs
   * completed, p50 and p99 from when each could start (its enqueue, or its
   * `startAfter` if later) to its first start.
   */
  stats(options: JobQueueStatsOptions = {}): Promise<JobQueueStats> {
    this.#assertRunning("read job queue stats");
    return readJobQueueStats(this.#boss, this.#config.schema, options);
  }

  /**
   * `enqueueMany` of one job: its id, or `null` when its key (or id) was used.
   */
  async enqueue<T>(
    name: string,
    data: T,
    options?: EnqueueOptions,
  ): Promise<string | null> {
    const job = prepareJob({ name, data, options });
    this.#assertRunning(`enqueue job on queue "${name}"`);
    return (await this.#send([job]))[0]!;
  }

  /**
   * Adds jobs with one atomic `INSERT` per queue and wakes the workers;
   * returns the ids in order, `null` where the key (or id) was used.
   * @throws {TypeError} When a request is invalid (nothing is written then).
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { PGlite } from "@electric-sql/pglite";
   * import { PgBossJobQueue } from "@aftercommit/core/pg-boss";
   *
   * await using pglite = await PGlite.create();
   * await using jobs = await PgBossJobQueue.connect(pglite, { supervise: false });
   * const job = { name: "welcome", data: {}, options: { key: "e1" } };
   * const ids = await jobs.enqueueMany([job, job]);
   * assert.deepEqual(ids, [PgBossJobQueue.jobIdFor("welcome", "e1"), null]);
   * ```
   */
  async enqueueMany(jobs: readonly JobRequest[]): Promise<(string | null)[]> {
    const prepared = prepareJobs(jobs);
    this.#assertRunning("enqueue jobs");
    return prepared.length === 0 ? [] : await this.#send(prepared);
  }

  /**
   * Sends a job to queue `name` on a recurring schedule (pg-boss's cron:
   * five fields or an RFC 5545 rule), replaced when set again (same name and
   * `key`), from the processes connected with `runSchedules: true`.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { PGlite } from "@electric-sql/pglite";
   * import { PgBossJobQueue } from "@aftercommit/core/pg-boss";
   *
   * await using pglite = await PGlite.create();
   * await using jobs = await PgBossJobQueue.connect(pglite, { supervise: false });
   * await jobs.schedule("purge", "30 3 * * *", null, { timeZone: "Europe/Paris" });
   * assert.deepEqual(await jobs.schedules(), [
   *   { name: "purge", key: "", cron: "30 3 * * *", timeZone: "Europe/Paris" },
   * ]);
   * ```
   */
  schedule(
    name: string,
    cron: string,
    data: unknown = null,
    options: ScheduleOptions = {},
  ): Promise<void> {
    return this.#schedules.schedule(name, cron, data, options);
  }

  /** Removes the schedule of queue `name` and `options.key`, if any. */
  unschedule(
    name: string,
    options: { readonly key?: string } = {},
  ): Promise<void> {
    return this.#schedules.unschedule(name, options);
  }

  /** Lists the schedules, of every queue or of queue `name`. */
  schedules(name?: string): Promise<JobSchedule[]> {
    return this.#schedules.list(name);
  }

  /**
   * Runs `handler` for the jobs of queue `name` in this process and returns
   * the worker's id. A handler that throws fails the attempt: logged (never
   * with the data), retried, then dead-lettered.
   */
  async work<T>(
    name: string,
    handler: JobHandler<T>,
    options: WorkOptions = {},
  ): Promise<string> {
    const queue = this.#queueAccess;
    return await startWorker(
      this.#boss,
      queue,
      this.#local,
      name,
      handler,
      options,
    );
  }

  /**
   * Lists dead letters (jobs whose retries were used up), oldest first,
   * without their data unless `includeData`.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { PGlite } from "@electric-sql/pglite";
   * import { PgBossJobQueue } from "@aftercommit/core/pg-boss";
   *
   * await using pglite = await PGlite.create();
   * const options = { queueDefaults: { retryLimit: 0 }, supervise: false };
   * await using jobs = await PgBossJobQueue.connect(pglite, options);
   * await jobs.work("welcome", () => Promise.reject(new Error("mail down")));
   * await jobs.enqueue("welcome", { userId: "u1" });
   * let letters = await jobs.deadLetters();
   * while (letters.length === 0) letters = await jobs.deadLetters();
   * assert.deepEqual(letters[0]?.error, "Error: mail down");
   * assert.deepEqual(await jobs.retryDeadLetters({ queue: "welcome" }), 1);
   * ```
   */
  deadLetters(options: DeadLetterListOptions = {}): Promise<DeadLetter[]> {
    return this.#deadLetters.list(options);
  }

  /** Counts the dead letters of `{ ids }`, `{ queue }` or `{ all: true }`. */
  countDeadLetters(selection: DeadLetterSelection): Promise<number> {
    return this.#deadLetters.count(selection);
  }

  /** Moves dead letters back to their queue as new jobs; returns how many. */
  retryDeadLetters(selection: DeadLetterSelection): Promise<number> {
    return this.#deadLetters.retry(selection);
  }

  /** Deletes dead letters for good; returns how many. */
  deleteDeadLetters(selection: DeadLetterSelection): Promise<number> {
    return this.#deadLetters.delete(selection);
  }

  /**
   * Stops fetching, waits for running handlers (up to `stopTimeoutSeconds`,
   * then aborts their signals) and closes pg-boss's connections.
   */
  stop(): Promise<void> {
    // Jobs handed over at their insert are waited for beside those pg-boss
    // fetched, on pg-boss's still open pool.
    const timeout = this.#config.stopTimeoutMs;
    this.#stopping ??= Promise.all([
      this.#boss.stop({ graceful: true, timeout, close: false }),
      this.#local.stop(timeout),
    ]).then(() => this.#boss.stop({ graceful: true, timeout }));
    return this.#stopping;
  }

  /** {@linkcode PgBossJobQueue.stop}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  #assertRunning(action: string): void {
    if (this.#stopping !== undefined) {
      throw new Error(
        `Cannot ${action}: the job queue is stopped; stop() it only after the last enqueue and work, or connect a new one`,
      );
    }
  }

  // Creates queue `name` (and its dead-letter queue first) on first use; a
  // failed creation is tried again on the next. create_queue ignores a queue
  // that exists: its settings stay.
  #ensureQueue(name: string): Promise<void> {
    let created = this.#queues.get(name);
    if (created === undefined) {
      const options = this.#config.queueOptions(name);
      const { deadLetter } = options;
      created = Promise.resolve(deadLetter && this.#ensureQueue(deadLetter))
        .then(() => this.#boss.createQueue(name, options));
      this.#queues.set(name, created);
      created.catch(() => this.#queues.delete(name));
    }
    return created;
  }

  // One INSERT per queue, in a producer span when tracing is on.
  #send(jobs: readonly PreparedJob[]): Promise<(string | null)[]> {
    if (!tracing()) return this.#insert(jobs);
    const name = jobs.every((j) => j.name === jobs[0]!.name)
      ? jobs[0]!.name
      : undefined;
    return inSpan(name === undefined ? "enqueue" : `enqueue ${name}`, {
      kind: SpanKind.PRODUCER,
      attributes: {
        "messaging.system": "pg-boss",
        "messaging.operation.type": "send",
        "messaging.operation.name": "enqueue",
        ...(name === undefined ? {} : { "messaging.destination.name": name }),
        "messaging.batch.message_count": jobs.length,
      },
    }, async (span) => {
      const ids = await this.#insert(jobs);
      if (ids.length === 1) {
        if (ids[0] !== null) span.setAttribute("messaging.message.id", ids[0]!);
        span.setAttribute("aftercommit.job.duplicate", ids[0] === null);
      }
      return ids;
    });
  }

  // Jobs all ready now may start at their insert on a free local worker;
  // otherwise pg-boss inserts them and the queue's workers are woken.
  async #insert(jobs: readonly PreparedJob[]): Promise<(string | null)[]> {
    // The same id twice in one INSERT is an error in pg-boss: a duplicate.
    const seen = new Set<string>();
    const unique = jobs.filter(({ id }) => !seen.has(id) && seen.add(id));
    const stamp = stamped();
    const used = new Set<string>(); // Ids pg-boss did not insert.
    await Promise.all([...Map.groupBy(unique, (job) => job.name)].map(
      async ([name, group]) => {
        let delayed = 0;
        const inserts = group.map(({ id, data, startAfter, options }) => {
          const { priority } = options;
          const insert: JobInsert = { id, data: stamp(data, startAfter) };
          if (priority !== undefined) insert.priority = priority;
          if (startAfter !== undefined) {
            insert.startAfter = startAfter;
            delayed++;
          }
          return insert;
        });
        await this.#ensureQueue(name);
        const started = delayed > 0
          ? undefined
          : await this.#local.insertStarted(name, inserts);
        const ids = started ??
          await this.#boss.insert(name, inserts, { returnId: true }) ?? [];
        if (ids.length < inserts.length) {
          const created = new Set(ids);
          for (const { id } of inserts) if (!created.has(id!)) used.add(id!);
        }
        if (ids.length > 0 && delayed < inserts.length && !started) {
          this.#local.wake(name);
        }
      },
    ));
    // `seen.delete`: a repeat of an id in the call is a duplicate too.
    return jobs.map(({ id }) => seen.delete(id) && !used.has(id) ? id : null);
  }
}
