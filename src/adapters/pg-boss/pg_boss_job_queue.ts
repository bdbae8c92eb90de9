/**
 * {@linkcode PgBossJobQueue}: the {@linkcode JobQueue} port on pg-boss.
 *
 * @module
 */
import { getLogger } from "@logtape/logtape";
import type { PgBoss, PGliteLike } from "pg-boss";
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
  connectConfig,
  type JobQueueBackend,
  type PgBossJobQueueOptions,
  startBoss,
} from "./options.ts";
import {
  type JobSchedule,
  type ScheduleOptions,
  Schedules,
} from "./schedules.ts";
import { type QueueAccess, startWorker } from "./_worker.ts";
import { LocalStarts, untilAbort } from "./_local_start.ts";
import { sendJobs } from "./_send_jobs.ts";

// For src/cli, which imports them from here.
export type { DeadLetterSelection } from "./dead_letters.ts";

const logger = getLogger(["aftercommit", "jobs"]);

/**
 * A durable job queue on [pg-boss](https://github.com/timgit/pg-boss), on a
 * PostgreSQL server (a URL) or an embedded PGlite database (an instance the
 * caller opens and closes). Queues are created on first use with
 * {@linkcode DEFAULT_QUEUE_SETTINGS}; an enqueue with a key is idempotent (a
 * UUID v5 id); a job for a queue this process works, with a loop free, is
 * written claimed and run at once (the queue's expiry retries it if the
 * process dies). Failed attempts are logged under `["aftercommit", "jobs"]`,
 * never with their data.
 *
 * @example Enqueue idempotently and work, on an embedded database
 * ```ts
 * import assert from "node:assert/strict";
 * import { PGlite } from "@electric-sql/pglite";
 * import { PgBossJobQueue } from "@aftercommit/core/pg-boss";
 *
 * await using pglite = await PGlite.create();
 * await using jobs = await PgBossJobQueue.connect(pglite, { supervise: false });
 * const done = Promise.withResolvers<string>();
 * await jobs.work<{ userId: string }>("send-welcome-email", (job) => {
 *   done.resolve(job.data.userId);
 * });
 * const id = await jobs.enqueue("send-welcome-email", { userId: "u1" }, { key: "evt-1" });
 * assert.deepEqual(id, PgBossJobQueue.jobIdFor("send-welcome-email", "evt-1"));
 * assert.deepEqual(await jobs.enqueue("send-welcome-email", {}, { key: "evt-1" }), null);
 * assert.deepEqual(await done.promise, "u1");
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
    insertStarted: (name, jobs) => this.#local.insertStarted(name, jobs),
    giveBack: (worker, jobs) => this.#local.giveBack(worker, jobs),
  };
  #stopping: Promise<void> | undefined;

  /** Whether the jobs live on a PostgreSQL server or in embedded PGlite. */
  readonly backend: JobQueueBackend;

  private constructor(boss: PgBoss, config: ConnectConfig) {
    this.#boss = boss;
    this.#config = config;
    this.backend = config.backend;
    this.#deadLetters = new DeadLetters(boss, this.#queueAccess);
    this.#schedules = new Schedules(boss, this.#queueAccess);
    this.#local = new LocalStarts(boss, config.schema);
  }

  /**
   * Starts pg-boss on the jobs database, installing or migrating its schema.
   *
   * @param database A `postgres://` URL, or a PGlite instance (which `stop()`
   * does not close).
   * @returns A started queue; stop it with `await using` or `stop()`.
   * @throws {TypeError} When the database or an option is invalid (the URL
   * is never repeated).
   * @throws {Error} When pg-boss cannot start (its error as `cause`).
   */
  static async connect(
    database: string | PGliteLike,
    options: PgBossJobQueueOptions = {},
  ): Promise<PgBossJobQueue> {
    const config = connectConfig(database, options);
    const boss = await startBoss(config);
    return new PgBossJobQueue(boss, config);
  }

  /**
   * The id `enqueue(name, data, { key })` gives a job: a UUID v5 of the queue
   * name and the key, the same in every process.
   *
   * @throws {TypeError} When the name or the key is invalid.
   */
  static jobIdFor(name: string, key: string): string {
    return prepareJob({ name, data: null, options: { key } }, "derive job id")
      .id;
  }

  /**
   * The dead-letter queue of queue `name`: `name` + `"__dead"`.
   *
   * @throws {TypeError} When the name is invalid.
   */
  static deadLetterQueueName(name: string): string {
    assertQueueName(name, "name dead-letter queue");
    return name + DEAD_LETTER_SUFFIX;
  }

  /**
   * Checks a job as `enqueue` does and gives it its id, writing nothing (for
   * `BatchingJobQueue`). Throws as `enqueue`.
   */
  prepare(request: JobRequest): PreparedJob {
    return prepareJob(request);
  }

  /**
   * A health probe: whether `select 1` on the jobs database answers within
   * `timeoutSeconds` (`false` once stopped; a failure logs a warning).
   *
   * @throws {TypeError} When `timeoutSeconds` is not a number (`RangeError`:
   * below 0.01).
   */
  async ping(timeoutSeconds = 1): Promise<boolean> {
    number(0.01)(timeoutSeconds, "timeoutSeconds", "ping job queue");
    if (this.#stopping !== undefined) return false;
    const signal = AbortSignal.timeout(timeoutSeconds * 1000);
    try {
      // pg-boss's executeSql() takes no signal: the wait ends at the abort.
      const selected = this.#boss.getDb().executeSql("select 1");
      if (await untilAbort(signal, selected)) {
        throw new Error(
          `No answer from the jobs database in ${timeoutSeconds} s`,
        );
      }
      return true;
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
   * completed, creation → first start p50 and p99.
   *
   * @throws {TypeError} When an option is invalid (`RangeError`: out of range).
   * @throws {Error} When the queue is stopped.
   */
  stats(options: JobQueueStatsOptions = {}): Promise<JobQueueStats> {
    this.#assertRunning("read job queue stats");
    return readJobQueueStats(this.#boss, this.#config.schema, options);
  }

  /**
   * `enqueueMany` of one job.
   *
   * @param name The queue name: letters, digits, `_`, `-`, `.` and `/`.
   * @param data Data that survives a JSON round trip.
   * @returns The job id, or `null` when its key (or id) is used in this
   * queue (until the job is deleted, see `deleteAfterSeconds`).
   */
  async enqueue<T>(
    name: string,
    data: T,
    options?: EnqueueOptions,
  ): Promise<string | null> {
    const job = prepareJob(
      options === undefined ? { name, data } : { name, data, options },
    );
    this.#assertRunning(`enqueue job on queue "${name}"`);
    return (await sendJobs(this.#boss, this.#queueAccess, [job]))[0]!;
  }

  /**
   * Adds jobs with one atomic `INSERT` per queue (queues in parallel) and
   * wakes the workers; retrying with keys creates what is missing.
   *
   * @returns The ids in order; `null` where the key (or id) was used.
   * @throws {TypeError} When a request is invalid (nothing is written then).
   * @throws {Error} When the queue is stopped.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { PGlite } from "@electric-sql/pglite";
   * import { PgBossJobQueue } from "@aftercommit/core/pg-boss";
   *
   * await using pglite = await PGlite.create();
   * await using jobs = await PgBossJobQueue.connect(pglite, { supervise: false });
   * const ids = await jobs.enqueueMany([
   *   { name: "send-welcome-email", data: { userId: "u1" }, options: { key: "e1" } },
   *   { name: "send-welcome-email", data: { userId: "u1" }, options: { key: "e1" } },
   * ]);
   * assert.deepEqual(ids, [PgBossJobQueue.jobIdFor("send-welcome-email", "e1"), null]);
   * ```
   */
  async enqueueMany(jobs: readonly JobRequest[]): Promise<(string | null)[]> {
    const prepared = prepareJobs(jobs);
    this.#assertRunning("enqueue jobs");
    return prepared.length === 0
      ? []
      : await sendJobs(this.#boss, this.#queueAccess, prepared);
  }

  /**
   * Sends a job to queue `name` on a recurring schedule (pg-boss's cron),
   * replaced when set again (same name and `key`), from a process connected
   * with `runSchedules: true`.
   *
   * @param cron Five cron fields (`"0 3 * * *"`) or an RFC 5545 rule
   * (`"FREQ=WEEKLY;BYDAY=MO;BYHOUR=9"`).
   * @throws {TypeError} When an argument, the cron or the time zone is invalid.
   * @throws {Error} When the queue is stopped.
   *
   * @example Every night at 03:30 in Paris
   * ```ts
   * import assert from "node:assert/strict";
   * import { PGlite } from "@electric-sql/pglite";
   * import { PgBossJobQueue } from "@aftercommit/core/pg-boss";
   *
   * await using pglite = await PGlite.create();
   * await using jobs = await PgBossJobQueue.connect(pglite, { supervise: false });
   * await jobs.schedule("purge-inbox", "30 3 * * *", null, { timeZone: "Europe/Paris" });
   * assert.deepEqual(await jobs.schedules(), [
   *   { name: "purge-inbox", key: "", cron: "30 3 * * *", timeZone: "Europe/Paris" },
   * ]);
   * await jobs.unschedule("purge-inbox");
   * assert.deepEqual(await jobs.schedules(), []);
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

  /**
   * Removes the schedule of queue `name` with `options.key` (or the unnamed
   * one), if any; jobs it sent stay. Throws as `schedule`.
   */
  unschedule(
    name: string,
    options: { readonly key?: string } = {},
  ): Promise<void> {
    return this.#schedules.unschedule(name, options);
  }

  /**
   * Lists the schedules (not their data), of every queue or of queue `name`.
   * Throws as `schedule`.
   */
  schedules(name?: string): Promise<JobSchedule[]> {
    return this.#schedules.list(name);
  }

  /**
   * Runs `handler` for the jobs of queue `name` in this process. A handler
   * that throws fails the attempt: logged, retried, then dead-lettered.
   *
   * @returns The worker's id.
   * @throws {TypeError} When an argument is invalid.
   * @throws {Error} When the queue is stopped.
   */
  async work<T>(
    name: string,
    handler: JobHandler<T>,
    options: WorkOptions = {},
  ): Promise<string> {
    const { workId, local } = await startWorker(
      this.#boss,
      this.#queueAccess,
      name,
      handler,
      options,
    );
    this.#local.add(local);
    return workId;
  }

  /**
   * Lists dead letters (jobs whose retries were used up), oldest first,
   * without their data unless `includeData` (it may hold personal data).
   *
   * @throws {TypeError} When an option is invalid (`RangeError`: out of range).
   * @throws {Error} When the queue is stopped.
   *
   * @example Retry what failed for good, after a fix
   * ```ts
   * import assert from "node:assert/strict";
   * import { PGlite } from "@electric-sql/pglite";
   * import { PgBossJobQueue } from "@aftercommit/core/pg-boss";
   *
   * await using pglite = await PGlite.create();
   * await using jobs = await PgBossJobQueue.connect(pglite, {
   *   queueDefaults: { retryLimit: 0 },
   *   supervise: false,
   * });
   * const failed = Promise.withResolvers<void>();
   * await jobs.work("send-welcome-email", () => {
   *   failed.resolve();
   *   throw new Error("mail server down");
   * });
   * await jobs.enqueue("send-welcome-email", { userId: "u1" });
   * await failed.promise;
   * let letters = await jobs.deadLetters();
   * while (letters.length === 0) letters = await jobs.deadLetters();
   * assert.deepEqual(letters[0]?.error, "Error: mail server down");
   * assert.deepEqual(await jobs.retryDeadLetters({ queue: "send-welcome-email" }), 1);
   * ```
   */
  deadLetters(options: DeadLetterListOptions = {}): Promise<DeadLetter[]> {
    return this.#deadLetters.list(options);
  }

  /**
   * Counts the dead letters of `selection`: `{ ids }`, `{ queue }` (the
   * original queue) or `{ all: true }`. Throws as `deleteDeadLetters`.
   */
  countDeadLetters(selection: DeadLetterSelection): Promise<number> {
    return this.#deadLetters.count(selection);
  }

  /**
   * Moves dead letters back to their queue as new jobs (new ids, fresh
   * retries, the queue's current settings) and returns how many. Throws as
   * `deleteDeadLetters`.
   */
  retryDeadLetters(selection: DeadLetterSelection): Promise<number> {
    return this.#deadLetters.retry(selection);
  }

  /**
   * Deletes dead letters for good; returns how many.
   *
   * @throws {TypeError} When the selection is invalid; nothing changes then.
   * @throws {Error} When the queue is stopped.
   */
  deleteDeadLetters(selection: DeadLetterSelection): Promise<number> {
    return this.#deadLetters.delete(selection);
  }

  /**
   * Stops fetching, waits for running handlers (up to `stopTimeoutSeconds`,
   * then aborts their signals) and closes pg-boss's connections (not a PGlite
   * instance). Queued jobs stay. Calling it again returns the same promise.
   */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  /** {@linkcode PgBossJobQueue.stop}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  // Jobs handed over at their insert are waited for beside those pg-boss
  // fetched, on pg-boss's still open pool.
  async #stop(): Promise<void> {
    const timeout = this.#config.stopTimeoutMs;
    await Promise.all([
      this.#boss.stop({ graceful: true, timeout, close: false }),
      this.#local.stop(timeout),
    ]);
    await this.#boss.stop({ graceful: true, timeout });
  }

  #assertRunning(action: string): void {
    if (this.#stopping !== undefined) {
      throw new Error(`Cannot ${action}: the job queue is stopped`);
    }
  }

  #ensureQueue(name: string): Promise<void> {
    let created = this.#queues.get(name);
    if (created === undefined) {
      created = this.#createQueue(name);
      this.#queues.set(name, created);
      // A failed creation is tried again on the next use.
      created.catch(() => this.#queues.delete(name));
    }
    return created;
  }

  async #createQueue(name: string): Promise<void> {
    const options = this.#config.queueOptions(name);
    if (options.deadLetter) await this.#ensureQueue(options.deadLetter);
    // create_queue ignores a queue that exists: its settings stay.
    await this.#boss.createQueue(name, options);
  }
}
